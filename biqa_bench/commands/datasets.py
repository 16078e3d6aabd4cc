"""`biqa datasets ...`: list, info, add, root, check, synth."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..cli_common import console, json_records, print_json, progress_bar, run_command
from ..errors import DatasetError

app = typer.Typer(help="List, inspect, register and check datasets.", no_args_is_help=True)


def register(main: typer.Typer) -> None:
    main.add_typer(app, name="datasets")


@app.command("list")
@run_command
def list_datasets(as_json: bool = typer.Option(False, "--json", help="Print JSON records instead of a table.")) -> None:
    """List every registered dataset (built-in, embedded and your own).

    Example: biqa datasets list
    """
    import pandas as pd

    from ..config import dataset_root
    from ..datasets.registry import registered

    rows = []
    for name, entry in sorted(registered().items()):
        info = entry.info
        root = dataset_root(name)
        rows.append(
            {
                "name": name,
                "kind": info.kind,
                "score": info.score_type,
                "range": f"{info.score_range[0]:g}-{info.score_range[1]:g}",
                "higher_is_better": info.higher_is_better,
                "items": info.n_items,
                "contents": info.n_contents,
                "root": "embedded" if not info.needs_root else (str(root) if root else "-"),
            }
        )
    frame = pd.DataFrame(rows)
    if as_json:
        print_json(json_records(frame))
        return
    table = Table(title="Datasets")
    for column in frame.columns:
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
    from ..config import dataset_root
    from ..datasets.registry import get_entry

    meta = get_entry(name).info
    console.print(f"[bold]{meta.name}[/] ({meta.kind}) {meta.description}")
    console.print(f"score: {meta.score_type} on {meta.score_range[0]:g}-{meta.score_range[1]:g}, "
                  f"{'higher' if meta.higher_is_better else 'lower'} is better")
    console.print(f"items: {meta.n_items or '-'}; contents: {meta.n_contents or '-'}")
    for option, text in meta.options.items():
        console.print(f"option {option}: {text}  (use --dataset {name}:{option}=VALUE)")
    console.print(f"download: {meta.download or '-'}")
    root = dataset_root(name)
    console.print(f"root: {root if root else ('embedded (built on first use)' if not meta.needs_root else 'not set: biqa datasets root ' + name + ' DIR')}")


@app.command("root")
@run_command
def set_root(name: str = typer.Argument(..., help="Dataset name."), folder: Path = typer.Argument(..., help="Where it is unpacked.")) -> None:
    """Remember where a dataset is unpacked (in the user config file).

    Example: biqa datasets root koniq ~/data/koniq10k
    """
    from ..config import set_dataset_root
    from ..datasets.registry import get_entry

    get_entry(name)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder; unpack the dataset there first")
    path = set_dataset_root(name, folder)
    console.print(f"{name}: root {folder.resolve()} saved in {path}")


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

    info = add_custom_dataset(
        name, csv, root, score_range, lower_better, path_column, score_column, std_column, content_column,
        kind="synthetic" if synthetic else "authentic",
    )
    console.print(f"registered dataset '{info.name}' ({info.score_type} {info.score_range[0]:g}-{info.score_range[1]:g})")


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
    import json

    from ..datasets.check import check_dataset
    from ..datasets.registry import load_dataset

    dataset = load_dataset(name, root)
    with progress_bar(not as_json) as report:
        result = check_dataset(dataset, workers=workers, progress=lambda done, total: report("checking images", done, total))
    if as_json:
        print_json(json.dumps(result.to_dict(), indent=1, default=str))
    else:
        console.print(f"{dataset.name}: {result.n_items} items, {result.n_contents} contents, "
                      f"scores {result.score_min:g}..{result.score_max:g}")
        for label, names in (("missing", result.missing), ("unreadable", result.unreadable), ("unlabelled", result.unlabelled)):
            for item in names:
                console.print(f"  {label}: {item}")
    if not result.ok:
        raise DatasetError(
            f"{dataset.name}: {len(result.missing)} missing, {len(result.unreadable)} unreadable, "
            f"{len(result.unlabelled)} unlabelled files under {dataset.root}; re-download them or pass --skip-broken to runs"
        )


@app.command("synth")
@run_command
def synth(
    images: Path = typer.Option(..., "--images", help="Folder of pristine images."),
    name: str = typer.Option(..., "--name", help="Name to register the generated dataset under."),
    kind: str = typer.Option("synthetic", "--kind", help="synthetic (single distortions) or authentic (blends)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: the cache folder)."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random choice (written to the manifest)."),
    workers: int = typer.Option(2, "--workers", help="Worker processes."),
) -> None:
    """Generate a distorted dataset with pseudo-MOS labels from your own pristine images.

    Resumable: re-running continues where it stopped. Example: biqa datasets synth --images ~/pristine --name mysynth
    """
    from ..config import cache_dir
    from ..datasets.custom import add_custom_dataset
    from ..synth import synthesize_folder

    if kind not in ("synthetic", "authentic"):
        raise DatasetError(f"--kind must be 'synthetic' or 'authentic', not '{kind}'")
    out = out or cache_dir() / "synth" / name
    with progress_bar() as report:
        folder = synthesize_folder(
            images, out, kind=kind, seed=seed, workers=workers,
            progress=lambda done, total: report(f"generating {name}", done, total),
        )
    add_custom_dataset(name, Path(folder) / "labels.csv", Path(folder), (0.0, 100.0), path_column="path",
                       score_column="score", content_column="content", kind="synthetic" if kind == "synthetic" else "authentic")
    console.print(f"generated {folder} and registered it as '{name}'")
