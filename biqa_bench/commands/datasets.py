"""`biqa datasets ...`: list, info, add, remove, root, check, synth."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..cli_common import console, print_json, progress_bar, run_command, warn
from ..errors import DatasetError

app = typer.Typer(
    help=(
        "List, inspect, register and check datasets.\n\n"
        "Example: biqa datasets info koniq && biqa datasets root koniq ~/data/koniq10k && biqa datasets check koniq"
    ),
    no_args_is_help=True,
)

SHOWN_PER_KIND = 20  # `datasets check` lists this many files per kind of problem; --json has them all


def _custom_spec(name: str) -> dict | None:
    from ..config import load_config

    return load_config().get("datasets", {}).get(name)


def _root_text(name: str, info) -> str:
    """Where a dataset's images are: the remembered root, a user dataset's folder, or 'embedded'."""
    from ..config import dataset_root

    root = dataset_root(name)
    if root:
        return str(root)
    spec = _custom_spec(name)
    if spec is not None:
        return str(spec["root"])
    return "embedded" if not info.needs_root else "-"


def register(main: typer.Typer) -> None:
    main.add_typer(app, name="datasets")


@app.command("list")
@run_command
def list_datasets(as_json: bool = typer.Option(False, "--json", help="Print JSON records instead of a table.")) -> None:
    """List every registered dataset (built-in, embedded and your own).

    Example: biqa datasets list
    """
    from ..datasets.registry import registered

    rows = []
    for name, entry in sorted(registered().items()):
        info = entry.info
        rows.append(
            {
                "name": name,
                "kind": info.kind,
                "score": info.score_type,
                "range": f"{info.score_range[0]:g}..{info.score_range[1]:g}",
                "higher_is_better": info.higher_is_better,
                "items": info.n_items,
                "contents": info.n_contents,
                "root": _root_text(name, info),
            }
        )
    if as_json:
        print_json(json.dumps(rows, indent=1))
        return
    table = Table(title="Datasets")
    for column in rows[0] if rows else ():
        table.add_column(column)
    for row in rows:
        table.add_row(*["-" if v is None else str(v) for v in row.values()])
    console.print(table)


@app.command("info")
@run_command
def info(name: str = typer.Argument(..., help="Dataset name, e.g. koniq.")) -> None:
    """Print a dataset's metadata, options and where to download it.

    Example: biqa datasets info koniq
    """
    from ..datasets.registry import get_entry

    meta = get_entry(name).info
    console.print(f"[bold]{meta.name}[/] ({meta.kind}) {meta.description}")
    console.print(f"score: {meta.score_type} on {meta.score_range[0]:g}-{meta.score_range[1]:g}, "
                  f"{'higher' if meta.higher_is_better else 'lower'} is better")
    console.print(f"items: {meta.n_items or '-'}; contents: {meta.n_contents or '-'}")
    for option, text in meta.options.items():
        console.print(f"option {option}: {text}  (use --dataset {name}:{option}=VALUE)")
    console.print(f"download: {meta.download or '-'}")
    root = _root_text(name, meta)
    if root == "embedded":
        root = "embedded (built on first use)"
    elif root == "-":
        root = f"not set: biqa datasets root {name} DIR"
    console.print(f"root: {root}")


@app.command("root")
@run_command
def set_root(
    name: str = typer.Argument(..., help="Dataset name."),
    folder: Optional[Path] = typer.Argument(None, help="Where it is unpacked (omit to show the current root)."),
    unset: bool = typer.Option(False, "--unset", help="Forget the remembered root."),
) -> None:
    """Remember where a dataset is unpacked (in the config file in use), show it, or forget it.

    Example: biqa datasets root koniq ~/data/koniq10k   (biqa datasets root koniq --unset forgets it)
    """
    from ..config import config_path, dataset_root_source, root_variable, set_dataset_root, unset_dataset_root
    from ..datasets.registry import get_entry

    get_entry(name)
    if unset:
        if folder is not None:
            raise DatasetError(f"--unset forgets {name}'s root and takes no folder; drop {folder} or --unset")
        path = unset_dataset_root(name)
        if path is None:
            console.print(f"{name}: no root remembered in {config_path()}; nothing to forget", highlight=False)
        else:
            console.print(f"{name}: root forgotten in {path}", highlight=False)
        if root_variable(name) in os.environ:
            warn(f"{root_variable(name)} is set in the environment and still gives {name}'s root")
        return
    if folder is None:
        root, source = dataset_root_source(name)
        if root is None:
            console.print(f"{name}: no root set (config {config_path()}); biqa datasets root {name} DIR sets one",
                          highlight=False)
        else:
            console.print(f"{name}: {root} (from {source})", highlight=False)
        return
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder; unpack the dataset there first")
    path = set_dataset_root(name, folder)
    console.print(f"{name}: root {folder.resolve()} saved in {path}", highlight=False)
    if root_variable(name) in os.environ:
        warn(f"{root_variable(name)} is set in the environment and overrides this root while it is set")


@app.command("remove")
@run_command
def remove(name: str = typer.Argument(..., help="A dataset you registered (biqa datasets add or synth).")) -> None:
    """Unregister a dataset you added (its labels and images stay on disk) and forget its root.

    Example: biqa datasets remove mydb
    """
    from ..config import config_path, unset_dataset_root
    from ..datasets.custom import remove_custom_dataset
    from ..datasets.registry import get_entry

    get_entry(name)  # an unknown name: did-you-mean
    if _custom_spec(name) is None:
        raise DatasetError(
            f"'{name}' is a built-in dataset and cannot be removed; "
            f"`biqa datasets root {name} --unset` forgets its root"
        )
    spec = remove_custom_dataset(name)
    unset_dataset_root(name)
    console.print(f"removed dataset '{name}' from {config_path()} (its files stay: labels {spec['csv']}, "
                  f"images {spec['root']})", highlight=False)


@app.command("add")
@run_command
def add(
    name: str = typer.Argument(..., help="Name for your dataset."),
    csv: Path = typer.Option(..., "--csv", help="Labels CSV: one row per image."),
    root: Path = typer.Option(..., "--root", help="Folder the CSV's image paths are relative to."),
    score_range: tuple[float, float] = typer.Option(..., "--score-range", help="Nominal score range LO HI."),
    lower_better: bool = typer.Option(False, "--lower-better", help="Scores are DMOS (lower is better)."),
    path_column: str = typer.Option("path", "--path-column", help="CSV column with image paths."),
    score_column: str = typer.Option("score", "--score-column", help="CSV column with scores."),
    std_column: Optional[str] = typer.Option(None, "--std-column", help="CSV column with score std (optional)."),
    content_column: Optional[str] = typer.Option(None, "--content-column", help="CSV column grouping images by content (reference)."),
    synthetic: bool = typer.Option(False, "--synthetic", help="Mark as a synthetic-distortion dataset."),
) -> None:
    """Register your own dataset from a labels CSV and an image folder.

    Example: biqa datasets add mydb --csv labels.csv --root images/ --score-range 1 5
    """
    from ..datasets.custom import add_custom_dataset

    _check_new_name(name)
    if not score_range[0] < score_range[1]:
        raise DatasetError(f"--score-range takes LO HI with LO < HI, not {score_range[0]:g} {score_range[1]:g}")
    _check_labels_csv(csv, root, path_column)
    info = add_custom_dataset(
        name, csv, root, score_range, lower_better, path_column, score_column, std_column, content_column,
        kind="synthetic" if synthetic else "authentic",
    )
    console.print(f"registered dataset '{info.name}' ({info.score_type} {info.score_range[0]:g}-{info.score_range[1]:g})")
    _warn_after_add(name)


def _check_new_name(name: str) -> None:
    from ..datasets.registry import registered

    entry = registered().get(name)
    if entry is not None and _custom_spec(name) is None:
        raise DatasetError(f"'{name}' is a built-in dataset; choose another name")
    if ":" in name or "/" in name or not name.strip():
        raise DatasetError(f"dataset name '{name}' may not be empty or contain ':' or '/'; choose another name")


def _check_labels_csv(csv: Path, root: Path, path_column: str) -> None:
    """Catch the commonest mistakes before registering: an empty CSV, or a --root where no image is."""
    import pandas as pd

    if not csv.is_file() or not root.is_dir():
        return  # the library names the missing file or folder
    try:
        table = pd.read_csv(csv)
    except pd.errors.EmptyDataError:
        raise DatasetError(f"{csv}: the labels CSV is empty; it needs a header (e.g. path,score) and one row per image") from None
    except (OSError, pd.errors.ParserError, UnicodeDecodeError):
        return  # the library reports unreadable files
    if len(table) == 0:
        raise DatasetError(f"{csv}: the labels CSV has a header but no rows; add one row per image")
    if path_column not in table.columns:
        return
    paths = table[path_column].dropna().astype(str).tolist()
    if paths and not any((root / p).is_file() for p in paths):
        raise DatasetError(
            f"{root}: none of the {len(paths)} images named in {csv} exists there (e.g. {root / paths[0]}); "
            f"pass --root the folder the '{path_column}' column is relative to"
        )


def _warn_after_add(name: str) -> None:
    """Warnings that do not stop registration: a few missing images, scores outside the range."""
    from ..datasets.registry import load_dataset

    dataset = load_dataset(name)
    items = dataset.items
    missing = [p for p in items["path"] if not dataset.abspath(p).is_file()]
    if missing:
        warn(f"{len(missing)} of {len(items)} labelled images are missing under {dataset.root} "
             f"(e.g. {missing[0]}); list them with `biqa datasets check {name}`")
    low, high = dataset.info.score_range
    scores = items["score"].astype(float)
    outside = int(((scores < low) | (scores > high)).sum())
    if outside:
        warn(f"{outside} scores lie outside --score-range {low:g} {high:g} (they span {scores.min():g}..{scores.max():g}); "
             f"if the range is wrong, re-add with the right --score-range")


@app.command("check")
@run_command
def check(
    name: str = typer.Argument(..., help="Dataset name (with options, e.g. koniq:scale=mos)."),
    root: Optional[Path] = typer.Option(None, "--root", help="Dataset folder (default: the remembered root)."),
    workers: int = typer.Option(2, "--workers", help="Parallel decoders."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Verify that every labelled image exists and decodes; list missing, unreadable and unlabelled files.

    Exits non-zero when anything is wrong. Example: biqa datasets check clive --root ~/data/ChallengeDB_release
    """
    from ..datasets.check import check_dataset
    from ..datasets.registry import load_dataset

    if root is not None and not root.is_dir():
        raise DatasetError(f"{root}: no such folder; pass --root the folder the dataset is unpacked in")
    dataset = load_dataset(name, root)
    if not Path(dataset.root).is_dir():
        raise DatasetError(
            f"dataset '{dataset.name}': its folder {dataset.root} does not exist; "
            f"pass --root DIR or run `biqa datasets root {dataset.name} DIR`"
        )
    from ..methods import min_image_sides

    with progress_bar(not as_json) as report:
        result = check_dataset(dataset, workers=workers, progress=lambda done, total: report("checking images", done, total),
                               min_sides=min_image_sides())
    if as_json:
        print_json(json.dumps(result.to_dict(), indent=1, default=str))
    else:
        console.print(f"{dataset.name}: {result.n_items} items, {result.n_contents} contents, "
                      f"scores {result.score_min:g}..{result.score_max:g}")
        if result.n_expected and result.n_expected != result.n_items:
            console.print(f"  [yellow]the official release has {result.n_expected} items[/]")
        for label, names in (("missing", result.missing), ("unreadable", result.unreadable), ("unlabelled", result.unlabelled)):
            for item in names[:SHOWN_PER_KIND]:
                reason = f"  ({result.errors[item]})" if label == "unreadable" and item in result.errors else ""
                console.print(f"  {label}: {item}{reason}", highlight=False)
            if len(names) > SHOWN_PER_KIND:
                console.print(f"  ... and {len(names) - SHOWN_PER_KIND} more {label} (all of them: --json)")
        if result.ok:
            console.print(f"  all {result.n_items} images present and readable")
        for method, small in result.too_small.items():  # usable by other methods: not a failure
            paths = small["paths"]
            shown = ", ".join(paths[:3]) + (", ..." if len(paths) > 3 else "")
            console.print(f"  too small for {method} (shorter side < {small['min_side']} px): {len(paths)} of "
                          f"{result.n_items} ({shown}); `biqa train -m {method} --skip-broken` leaves them out", highlight=False)
    if result.rescaled:
        modes = ", ".join(sorted(set(result.rescaled.values())))
        shown = ", ".join(list(result.rescaled)[:3]) + (", ..." if len(result.rescaled) > 3 else "")
        warn(f"{len(result.rescaled)} of {result.n_items} images have a high bit depth ({modes}: {shown}); "
             "every method reads them rescaled to 8-bit RGB (16-bit: v/257, float: v*255 from 0..1)")
    if not result.ok:
        fixes = []
        if result.missing or result.unreadable:
            fixes.append("re-download the missing/unreadable files or pass --skip-broken to `biqa train`")
        if result.unlabelled:
            fixes.append("remove the unlabelled files or check that --root is the right release")
        raise DatasetError(
            f"{dataset.name}: {len(result.missing)} missing, {len(result.unreadable)} unreadable, "
            f"{len(result.unlabelled)} unlabelled files under {dataset.root}; " + "; ".join(fixes)
        )


@app.command("synth")
@run_command
def synth(
    images: Path = typer.Option(..., "--images", help="Folder of pristine images (at least 161x161, or pass --size)."),
    name: str = typer.Option(..., "--name", help="Name to register the generated dataset under."),
    kind: str = typer.Option("synthetic", "--kind", help="synthetic (single distortions) or authentic (blends)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: the cache folder)."),
    size: Optional[int] = typer.Option(None, "--size", help="Resize each source to this short side and centre-crop a square (default: native size)."),
    per_image: Optional[int] = typer.Option(None, "--per-image", help="Distorted images per source (default: all 39 classes; 28 blends)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of every random choice (written to the manifest)."),
    workers: int = typer.Option(2, "--workers", help="Worker processes."),
) -> None:
    """Generate a distorted dataset with pseudo-MOS labels from your own pristine images.

    Resumable: re-running continues where it stopped. Example: biqa datasets synth --images ~/pristine --name mysynth --size 384
    """
    from ..config import cache_path
    from ..datasets.custom import add_custom_dataset
    from ..datasets.synth import synthesize_folder

    if kind not in ("synthetic", "authentic"):
        raise DatasetError(f"--kind must be 'synthetic' or 'authentic', not '{kind}'")
    _check_new_name(name)
    out = out or cache_path("synth") / name
    with progress_bar() as report:
        folder = synthesize_folder(
            images, out, kind=kind, seed=seed, workers=workers, size=size, per_image=per_image,
            progress=lambda done, total: report(f"generating {name}", done, total),
        )
    add_custom_dataset(name, Path(folder) / "labels.csv", Path(folder), (0.0, 100.0), path_column="path",
                       score_column="score", content_column="content", kind="synthetic" if kind == "synthetic" else "authentic")
    console.print(f"generated {folder} and registered it as '{name}'")


@app.command("cache")
@run_command
def cache(
    name: str = typer.Argument(..., help="Dataset name (with options)."),
    size: str = typer.Option("short512", "--size", help="short<N> (shorter side at most N), original, or HxW such as 384x512."),
    root: Optional[Path] = typer.Option(None, "--root", help="Dataset folder (default: the remembered root)."),
    workers: int = typer.Option(2, "--workers", help="Worker processes decoding in parallel."),
) -> None:
    """Build (or check) the decode-once image cache that `biqa train --image-cache SIZE` reads.

    Decoding each image once into a memory-mapped file makes training read crops ~100x faster
    than decoding JPEGs (see BENCHMARKS.md). Example: biqa datasets cache spaq --size short512
    """
    from ..datasets.registry import load_dataset
    from .core import image_source

    dataset = load_dataset(name, root)
    with progress_bar() as report:
        images = image_source(dataset, size, workers, report)
    console.print(f"{dataset.name}: {len(images)} images at {size} in {images.folder} "
                  f"({images.nbytes / 2**20:.0f} MiB, built in {images.build_seconds:.1f} s)")
