"""`biqa splits`, `biqa methods`, `biqa train`, `biqa import`, `biqa eval`, `biqa cross`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..cli_common import (
    check_device, check_param_types, comma_list, console, err_console, json_records, parse_params, print_json, progress_bar,
    render_summary, resolve_splits, run_command, warn,
)
from ..config import DEFAULT_RESULTS
from ..errors import BiqaError, MethodError

splits_app = typer.Typer(
    help="Make and inspect seeded train/val/test split files. Example: biqa splits make --dataset synthetic --repeats 10",
    no_args_is_help=True,
)
methods_app = typer.Typer(help="List the method adapters. Example: biqa methods list", no_args_is_help=True)

DEEP_FLAGS = ("recipe", "pretrained", "weights", "test_crops", "resume")


def register(main: typer.Typer) -> None:
    main.add_typer(splits_app, name="splits")
    main.add_typer(methods_app, name="methods")
    main.command("train")(train)
    main.command("import")(import_cmd)
    main.command("eval")(eval_cmd)
    main.command("cross")(cross)
    main.command("predict")(predict_cmd)


# ---------------------------------------------------------------- shared helpers

def method_params(method: str, params: list[str] | None, **flags) -> dict:
    """-p key=value pairs plus the deep-method flags the method accepts (others are an error)."""
    import inspect

    from ..methods import method_class

    values = parse_params(params)
    cls = method_class(method)
    accepted = set(inspect.signature(cls.__init__).parameters)
    unknown = sorted(set(values) - accepted)
    if unknown and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(cls.__init__).parameters.values()):
        known = ", ".join(sorted(accepted - {"self"}))
        raise MethodError(f"method '{method}' has no parameter(s) {unknown}; it accepts: {known}")
    for key, value in flags.items():
        if value is None:
            continue
        if key not in accepted:
            raise BiqaError(f"method '{method}' has no '{key}' setting; drop --{key.replace('_', '-')}")
        values[key] = str(value) if isinstance(value, Path) else value
    check_param_types(method, cls, values)
    return values


def load_with_skips(dataset_spec: str, root: Optional[Path], skip_broken: bool, workers: int = 2):
    from ..datasets.registry import load_dataset

    dataset = load_dataset(dataset_spec, root)
    skipped: list[str] = []
    if skip_broken:
        from ..datasets.check import check_dataset

        report = check_dataset(dataset, workers=workers)
        broken = set(report.broken)
        skipped = sorted(dataset.items.loc[dataset.items["path"].isin(broken) | dataset.items["item_id"].isin(broken), "item_id"])
    return dataset, skipped


def skip_too_small(method: str, params: dict, dataset, skipped: list[str], skip_broken: bool, workers: int) -> list[str]:
    """Images below the method's minimum side: a one-line error, or with --skip-broken left out
    (added to ``skipped``, which each run's manifest lists and counts)."""
    from ..datasets.check import too_small_items
    from ..errors import DatasetError
    from ..methods import create_method

    side = create_method(method, **params).min_image_side()
    small = too_small_items(dataset, side, workers, exclude=skipped)
    if not small:
        return skipped
    paths = dataset.items.set_index("item_id").loc[small, "path"].tolist()
    shown = ", ".join(paths[:3]) + (", ..." if len(paths) > 3 else "")
    if not skip_broken:
        raise DatasetError(
            f"{dataset.root}: {len(small)} images of '{dataset.name}' are smaller than {method}'s minimum of {side} px a side "
            f"({shown}); pass --skip-broken to leave them out, or replace them"
        )
    warn(f"leaving out {len(small)} images smaller than {method}'s minimum of {side} px a side ({shown}); "
         "each run's manifest lists them")
    return sorted(set(skipped) | set(small))


def image_source(dataset, spec: str, workers: int, report):
    from ..imagecache import open_image_source

    return open_image_source(dataset, spec, workers, progress=lambda done, total: report("caching images", done, total))


# ---------------------------------------------------------------- splits / methods

@splits_app.command("make")
@run_command
def splits_make(
    dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset name (with options)."),
    repeats: int = typer.Option(10, "--repeats", "-n", help="Number of repeated splits."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the shuffles (saved in the file)."),
    test: float = typer.Option(0.2, "--test", help="Test fraction of the contents."),
    val: float = typer.Option(0.1, "--val", help="Validation fraction carved from train."),
    official: bool = typer.Option(False, "--official", help="Use the dataset's official split (KonIQ-10k)."),
    root: Optional[Path] = typer.Option(None, "--root", help="Dataset folder (default: remembered root)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Split file (default: results/splits/<dataset>-seed<S>-r<N>.json)."),
) -> None:
    """Make repeated seeded 80/20 train/test splits, val carved from train (by content for synthetic sets), and save them.

    Example: biqa splits make --dataset synthetic --repeats 10 --seed 0
    """
    from ..datasets.registry import load_dataset
    from ..splits import default_split_path, make_splits

    data = load_dataset(dataset, root)
    split_set = make_splits(data, repeats=repeats, seed=seed, test_fraction=test, val_fraction=val, official=official)
    path = out or default_split_path(DEFAULT_RESULTS, data.name, seed, repeats, official)
    split_set.save(path)
    first = split_set.splits[0]
    console.print(f"{path}: {len(split_set.splits)} splits of {data.name} "
                  f"(train/val/test {len(first.train)}/{len(first.val)}/{len(first.test)}), hash {split_set.hash}")


@splits_app.command("show")
@run_command
def splits_show(path: Path = typer.Argument(..., help="Split file.")) -> None:
    """Show a split file's dataset, seed and sizes.

    Example: biqa splits show results/splits/synthetic-seed0-r10.json
    """
    from ..splits import load_splits

    split_set = load_splits(path)
    console.print(f"dataset {split_set.dataset} (fingerprint {split_set.fingerprint}), rule {split_set.rule}, "
                  f"seed {split_set.seed}, hash {split_set.hash}")
    for split in split_set.splits:
        console.print(f"  split {split.index}: train {len(split.train)}, val {len(split.val)}, test {len(split.test)}")


@splits_app.command("check")
@run_command
def splits_check(
    path: Path = typer.Argument(..., help="Split file."),
    root: Optional[Path] = typer.Option(None, "--root", help="Dataset folder (default: remembered root)."),
) -> None:
    """Validate a split file against its dataset: same labels, no item or content in two parts, no
    empty part, no unknown item; items in no part are a warning. Exits 2 on an error.

    Example: biqa splits check results/splits/synthetic-seed0-r10.json
    """
    from ..datasets.registry import load_dataset
    from ..splits import load_checked_splits

    split_set, _ = load_checked_splits(path)
    dataset = load_dataset(split_set.dataset, root)
    split_set, check = load_checked_splits(path, dataset)
    for message in check.warnings():
        warn(message)
    console.print(
        f"{path}: {len(split_set.splits)} splits of {dataset.name} valid (no item or content in two parts, "
        f"no empty part, every item in the dataset), hash {split_set.hash}", highlight=False,
    )


def _summary(cls) -> str:
    """A method's one-line summary: the first line of its class docstring."""
    import inspect

    lines = (inspect.getdoc(cls) or "").splitlines()
    return lines[0] if lines else ""


@methods_app.command("list")
@run_command
def methods_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the method adapters (from methods/, $BIQA_METHODS_PATH and entry points).

    Example: biqa methods list
    """
    import inspect
    import json

    from ..methods import discover, method_families

    rows = []
    for name, cls in sorted(discover().items()):
        params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        rows.append({"name": name, "summary": _summary(cls), "params": params, "module": cls.__module__})
    for prefix, factory in sorted(method_families().items()):  # e.g. pyiqa:<metric>
        rows.append({"name": f"{prefix}:<name>", "summary": _summary(factory), "params": [], "module": factory.__module__})
    if as_json:
        print_json(json.dumps(rows, indent=1))
        return
    table = Table(title="Methods")
    for column in ("name", "summary", "params"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], row["summary"], ", ".join(row["params"]))
    console.print(table)


@methods_app.command("info")
@run_command
def methods_info(
    name: str = typer.Argument(..., help="Method name (see `biqa methods list`)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """A method's parameters with their defaults and, for deep methods, every setting of its recipes
    (what `--recipe paper` and `--recipe quick` run), and where its adapter documents its choices.

    Example: biqa methods info reqa
    """
    import inspect
    import json

    from ..methods import method_class

    cls = method_class(name)
    signature = inspect.signature(cls.__init__)
    params = {k: (None if p.default is inspect.Parameter.empty else p.default) for k, p in signature.parameters.items() if k != "self"}
    recipes = {recipe: dict(values) for recipe, values in getattr(cls, "RECIPES", {}).items()}
    source = inspect.getsourcefile(cls) or cls.__module__
    info = {"name": name, "summary": _summary(cls), "params": params, "recipes": recipes, "source": str(source),
            "reference": getattr(cls, "REFERENCE", None)}
    if as_json:
        print_json(json.dumps(info, indent=1, default=str))
        return
    console.print(f"[bold]{name}[/]: {info['summary']}", highlight=False)
    if info["reference"]:
        console.print(f"Paper: {info['reference']}", highlight=False)
    console.print(f"Choices where its paper is silent: the docstring of {source}", highlight=False)
    table = Table(title="Parameters (-p key=value)", caption="None: the recipe's value")
    table.add_column("parameter")
    table.add_column("default")
    for key, value in params.items():
        table.add_row(key, repr(value))
    console.print(table)
    if recipes:
        table = Table(title="Recipes (--recipe)")
        table.add_column("setting")
        for recipe in recipes:
            table.add_column(recipe)
        for key in sorted({k for values in recipes.values() for k in values}):
            table.add_row(key, *[repr(values.get(key, "-")) for values in recipes.values()])
        console.print(table)


# ---------------------------------------------------------------- train / import

@run_command
def train(
    method: str = typer.Option(..., "--method", "-m", help="Method name (see `biqa methods list`)."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset name, with options as name:key=value."),
    splits: Optional[Path] = typer.Option(None, "--splits", help="Split file (default: made once under OUT/splits)."),
    repeats: int = typer.Option(10, "--repeats", "-n", help="Repeats when the split file is made here."),
    seed: int = typer.Option(0, "--seed", min=0, help="Run seed: splits made here and every method seed derive from it."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    out: Path = typer.Option(DEFAULT_RESULTS, "--out", "-o", help="Results folder."),
    root: Optional[Path] = typer.Option(None, "--root", help="Dataset folder (default: remembered root)."),
    param: Optional[list[str]] = typer.Option(None, "--param", "-p", help="Method hyper-parameter key=value (repeatable)."),
    recipe: Optional[str] = typer.Option(None, "--recipe", help="Deep methods: 'paper', 'quick' or 'demo' (see `biqa methods info NAME`)."),
    pretrained: Optional[str] = typer.Option(None, "--pretrained", help="Deep methods: 'imagenet' or 'none'."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Deep methods: ImageNet weights file."),
    test_crops: Optional[int] = typer.Option(None, "--test-crops", help="Deep methods: K seeded test crops (0 = whole image)."),
    resume: Optional[bool] = typer.Option(None, "--resume/--no-resume", help="Deep methods: resume from the last epoch checkpoint."),
    only: Optional[str] = typer.Option(None, "--only", help="Comma-separated split indices to run."),
    skip_broken: bool = typer.Option(False, "--skip-broken", help="Leave out missing, undecodable or too small images (listed in the manifest)."),
    image_cache: str = typer.Option("none", "--image-cache", help="Decode-once cache: none, short512, original or HxW."),
    workers: int = typer.Option(2, "--workers", help="Worker processes for checks and caches."),
    force: bool = typer.Option(False, "--force", help="Overwrite runs that exist with other settings."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Splits trained at once in worker processes (CPU methods)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    whole: bool = typer.Option(False, "--whole", help="Training-free methods (e.g. pyiqa:musiq): one run on every labelled item, no split."),
) -> None:
    """Train and test a method on every split; one run folder per split; re-running resumes.

    Example: biqa train --method brisque --dataset synthetic --repeats 5
    Example: biqa train --method pyiqa:musiq --dataset koniq --whole --device cuda
    """
    from ..jobs import Job, local_executor
    from ..runner import run_jobs, whole_run

    device = check_device(device)
    params = method_params(
        method, param, recipe=recipe, pretrained=pretrained, weights=weights, test_crops=test_crops, resume=resume
    )
    if whole:
        if splits is not None or only is not None:
            raise BiqaError("--whole runs on every labelled item, no split: drop --splits / --only")
        data, skipped = load_with_skips(dataset, root, skip_broken, workers)
        with progress_bar(not quiet) as report:
            image_source(data, image_cache, workers, report)
            outcome = whole_run(method, params, data, out, device=device, seed=seed, progress=report,
                                log=logging.getLogger("biqa"), image_cache=image_cache, skip_items=skipped, force=force)
        what = {"done": "ran", "skipped": "reused", "busy": f"left to the other process running it ({outcome.note})"}
        console.print(f"{method} on the whole of {data.name}: {what.get(outcome.status, outcome.status)}, results in {outcome.folder}")
        return
    try:
        only_splits = [int(i) for i in only.split(",")] if only else None
    except ValueError:
        raise BiqaError(f"--only takes split indices separated by commas, e.g. --only 0,2; not '{only}'") from None
    data, skipped = load_with_skips(dataset, root, skip_broken, workers)
    skipped = skip_too_small(method, params, data, skipped, skip_broken, workers)
    split_set, split_path = resolve_splits(data, splits, out, repeats, seed)
    if only_splits is not None:
        known = {s.index for s in split_set.splits}
        absent = sorted(set(only_splits) - known)
        if absent:
            raise BiqaError(f"--only names splits {absent} that {split_path} does not have (it has {sorted(known)})")
    job = Job(method, params, data, split_set, out, split_file=split_path, seed=seed, device=device,
              image_cache=image_cache, skip_items=tuple(skipped), force=force)
    with progress_bar(not quiet) as report:
        image_source(data, image_cache, workers, report)  # built once here, with progress; the jobs open it
        executor = local_executor(jobs, progress=report, log=logging.getLogger("biqa"))
        outcomes = run_jobs(
            job.for_splits(only_splits), executor,
            on_done=lambda o: console.print(
                f"{method} on {data.name} split {o.split}: {o.status}" + (f", {o.note}" if o.note else f" ({o.seconds:.1f} s)")
            ),
        )
    done = sum(o.status == "done" for o in outcomes)
    busy = sum(o.status == "busy" for o in outcomes)
    console.print(
        f"{method} on {data.name}: {done} splits trained, {len(outcomes) - done - busy} reused"
        + (f", {busy} left to the other process training them (run the same command again later)" if busy else "")
        + f", results in {out}"
    )


@run_command
def import_cmd(
    method: str = typer.Option(..., "--method", "-m", help="Name to file the predictions under."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset the predictions are for."),
    predictions: list[Path] = typer.Option(..., "--predictions", help="CSV item_id,prediction[,split]; one per split or one with a split column."),
    splits: Optional[Path] = typer.Option(None, "--splits", help="Split file the predictions follow."),
    repeats: int = typer.Option(10, "--repeats", "-n", help="Repeats of the default split file."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the default split file."),
    root: Optional[Path] = typer.Option(None, "--root", help="Dataset folder."),
    out: Path = typer.Option(DEFAULT_RESULTS, "--out", "-o", help="Results folder."),
    force: bool = typer.Option(False, "--force", help="Replace runs of the same name that are not imports of these files."),
    whole: bool = typer.Option(False, "--whole", help="One run on the whole dataset (no split): pretrained or opinion-unaware methods."),
    allow_missing: bool = typer.Option(False, "--allow-missing", help="With --whole: leave out labelled items without a prediction (counted in the manifest)."),
) -> None:
    """Import predictions made elsewhere as runs, so any external method can be benchmarked.

    Example: biqa import --method mymodel --dataset koniq --predictions preds.csv --splits results/splits/koniq-seed0-r10.json
    Example: biqa import --method ssim --dataset toyama --predictions ssim.csv --whole
    """
    from ..datasets.registry import load_dataset
    from ..importer import import_predictions, import_whole
    from ..store import read_manifest

    data = load_dataset(dataset, root)
    if whole:
        if splits is not None:
            raise BiqaError("--whole evaluates every labelled item, no split: drop --splits")
        if len(predictions) != 1:
            raise BiqaError(f"--whole takes one --predictions file, not {len(predictions)}")
        folder = import_whole(method, data, predictions[0], out, allow_missing=allow_missing, force=force)
        manifest = read_manifest(folder / "manifest.json")
        left_out = f", {manifest['n_missing']} labelled items without a prediction left out" if manifest["n_missing"] else ""
        console.print(f"imported {method} on the whole of {data.name} ({manifest['n_test']} items{left_out}) into {folder}")
        return
    if allow_missing:
        raise BiqaError("--allow-missing applies to --whole imports only (every test item of a split needs a prediction)")
    split_set, split_path = resolve_splits(data, splits, out, repeats, seed)
    imported = import_predictions(method, data, list(predictions), split_set, out, split_path, force=force)
    if imported.n_ignored:
        counts = ", ".join(f"split {k}: {n}" for k, n in sorted(imported.ignored.items()))
        warn(f"{imported.n_ignored} predictions ignored because their items are not in the split's test part "
             f"({counts}; training, validation or unsplit items); only test items are evaluated")
    if imported.unknown_splits:
        warn(f"predictions for splits {imported.unknown_splits} ignored: {split_path} has no such splits")
    console.print(f"imported {len(imported.folders)} splits of {method} on {data.name} into {out}")


# ---------------------------------------------------------------- eval

@run_command
def eval_cmd(
    results: Path = typer.Argument(DEFAULT_RESULTS, help="Results folder (or one run folder)."),
    ranges: bool = typer.Option(False, "--ranges", help="Also the five ACR ranges (Bad..Excellent)."),
    low_quality: bool = typer.Option(False, "--low-quality", help="Also the low-quality subset (IEIT)."),
    low_quality_rule: str = typer.Option("nominal", "--low-quality-rule", help="nominal (lowest quarter of the score range) or quantile."),
    fraction: float = typer.Option(0.25, "--fraction", help="Low-quality fraction."),
    min_items: int = typer.Option(10, "--min-items", help="Fewest items for a range or subset to be defined."),
    as_json: bool = typer.Option(False, "--json", help="Print flat per-split records as JSON."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write CSVs (default: RESULTS/eval)."),
    ci: bool = typer.Option(False, "--ci", help="95 % intervals: t over splits; BCa bootstrap over test images for one-run figures."),
    n_boot: int = typer.Option(1000, "--n-boot", help="With --ci: bootstrap resamples (0: no bootstrap)."),
    seed: int = typer.Option(0, "--seed", min=0, help="With --ci: seed of the bootstrap (recorded in the records)."),
    boot_every_run: bool = typer.Option(False, "--boot-every-run", help="With --ci: bootstrap every run, not only one-run figures."),
) -> None:
    """Per-run SROCC, KROCC, PLCC (after logistic mapping) and RMSE, summarised over splits, and
    how many splits of each split file have runs ("5 of 6 splits; split 2 missing"); with
    --ranges also the range-effect index (correlation kept inside the ACR ranges).

    Example: biqa eval results --ranges --low-quality --ci
    """
    from ..splits import split_coverage
    from ..store import atomic_write_csv, find_runs

    from ..evaluation.results import evaluate_results, range_effect_results

    records, summary, notes = evaluate_results(results, ranges, low_quality, min_items, low_quality_rule, fraction,
                                               ci, n_boot, seed, boot_every_run)
    target = out or Path(results) / "eval"
    atomic_write_csv(target / "records.csv", records)
    atomic_write_csv(target / "summary.csv", summary)
    effect = None
    if ranges:
        effect_records, effect = range_effect_results(results, min_items, ci, n_boot, seed, boot_every_run)
        atomic_write_csv(target / "range_effect.csv", effect_records)
        atomic_write_csv(target / "range_effect_summary.csv", effect)
    coverage = split_coverage(find_runs(results))
    if as_json:
        for group in coverage:  # stdout is the JSON; a gap still must not pass unnoticed
            if group.missing:
                warn(f"{group.method} on {group.train_dataset}: {group.text}")
        print_json(json_records(records))
        return
    render_summary(summary, f"Evaluation of {results} ({'mean [95 % interval]' if ci else 'mean ± std over splits'})",
                   ci=ci)
    if effect is not None:
        render_range_effect(effect, ci)
    for group in coverage:
        console.print(f"{group.method} on {group.train_dataset}: {group.text}"
                      + (" (run `biqa train` again to fill them)" if group.missing else ""), highlight=False)
    for note in notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    console.print(f"records: {target / 'records.csv'}, summary: {target / 'summary.csv'}"
                  + (f", range-effect index: {target / 'range_effect_summary.csv'}" if effect is not None else ""))


def render_range_effect(summary, ci: bool) -> None:
    """The range-effect index per method and dataset as a Rich table."""
    from ..evaluation.intervals import format_interval

    table = Table(title="Range-effect index (weighted SROCC inside the ACR ranges / overall SROCC; 1 = nothing lost)")
    for column in ("method", "dataset", "splits", "REI", "SROCC in ranges", "SROCC overall"):
        table.add_column(column, justify="left" if column in ("method", "dataset") else "right", no_wrap=True)
    for row in summary.itertuples(index=False):
        value = "–" if row.rei != row.rei else f"{row.rei:.3f}"
        if ci and row.rei == row.rei:
            value = f"{value} {format_interval(row.rei, row.rei_ci_low, row.rei_ci_high)}".rstrip()
        table.add_row(str(row.method), str(row.dataset), f"{row.n_splits}/{row.n_splits_total}", value,
                      f"{row.srocc_ranges:.3f}", f"{row.srocc_all:.3f}")
    console.print(table)


# ---------------------------------------------------------------- predict

@run_command
def predict_cmd(
    run: str = typer.Option(..., "--run", "-r", help="Run folder (results/DATASET/METHOD/split_NN), or a method name: "
                            "training-free (e.g. pyiqa:musiq), or trained in --results."),
    images: Optional[list[Path]] = typer.Option(None, "--images", "-i", help="A folder of images, or image files (repeatable)."),
    files: Optional[list[Path]] = typer.Argument(None, help="More image files."),
    out: Path = typer.Option(..., "--out", "-o", help="Scores CSV to write (item_id, path, prediction)."),
    device: str = typer.Option("auto", "--device", help="auto (a GPU where there is one), cpu, cuda or cuda:N."),
    results: Path = typer.Option(DEFAULT_RESULTS, "--results", help="Where to look for the runs of a method name."),
    param: Optional[list[str]] = typer.Option(None, "--param", "-p", help="Training-free methods: parameter key=value."),
    workers: int = typer.Option(2, "--workers", help="Threads decoding the images first."),
    as_json: bool = typer.Option(False, "--json", help="Print the scores and the unreadable images as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Score any images with a trained run's saved model or a training-free method; higher is better.

    Images that do not decode are listed, not fatal. Deep methods batch on the GPU when --device is
    cuda (auto picks it where there is one).

    Example: biqa predict --run results/koniq/brisque/split_00 --images photos/ --out scores.csv
    """
    import json

    from ..predict import score_images
    from ..store import atomic_write_csv

    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = check_device(device)
    inputs = list(images or []) + list(files or [])
    with progress_bar(not quiet and not as_json) as report:
        result = score_images(run, inputs, device=device, results=results, progress=report,
                              log=logging.getLogger("biqa"), workers=workers, params=parse_params(param) or None)
    if result.scores.empty:
        raise BiqaError(f"none of the {len(result.unreadable)} images decodes (first: {next(iter(result.unreadable))}); "
                        "check the files with an image viewer")
    atomic_write_csv(out, result.scores.assign(method=result.method))
    if as_json:
        print_json(json.dumps({**result.to_dict(), "out": str(out)}, indent=1))
        return
    for path, reason in result.unreadable.items():
        err_console.print(f"[yellow]unreadable:[/] {path} ({reason})", highlight=False, soft_wrap=True)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    left = f"; {len(result.unreadable)} unreadable images left out (listed above)" if result.unreadable else ""
    console.print(f"{result.method} ({result.source}) scored {len(result.scores)} images into {out}{left}", highlight=False)


# ---------------------------------------------------------------- cross

@run_command
def cross(
    method: str = typer.Option(..., "--method", "-m", help="Method name."),
    train_set: str = typer.Option(..., "--train", help="Dataset to train on (all of it; val carved from it)."),
    test_sets: str = typer.Option(..., "--test", help="Comma-separated datasets to test on."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the val carve-out and the method."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    out: Path = typer.Option(DEFAULT_RESULTS, "--out", "-o", help="Results folder."),
    param: Optional[list[str]] = typer.Option(None, "--param", "-p", help="Method hyper-parameter key=value."),
    as_json: bool = typer.Option(False, "--json", help="Print records as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Cross-dataset test: train on all of one dataset, test on others (logistic mapping on a 1-5 scale).

    Example: biqa cross --method brisque --train synthetic --test mixed
    """
    import pandas as pd

    from ..datasets.registry import load_dataset
    from ..evaluation.cross import cross_records
    from ..runner import cross_train, predict_with_run
    from ..store import atomic_write_csv

    device = check_device(device)
    params = method_params(method, param)
    specs = list(dict.fromkeys(comma_list(test_sets)))  # in order, once each
    if not specs:
        raise BiqaError("--test needs at least one dataset, e.g. --test clive,bid")
    train_data = load_dataset(train_set)
    tests = [load_dataset(spec) for spec in specs]  # every test set checked before hours of training
    for test_data in tests:
        if test_data.fingerprint == train_data.fingerprint:
            raise BiqaError(f"--test {test_data.spec}: that is the training set (the model sees all of it); test on other datasets")
    rows = []
    with progress_bar(not quiet) as report:
        folder = cross_train(method, params, train_data, out, device=device, seed=seed, progress=report)
        for test_data in tests:
            predictions = predict_with_run(folder, test_data, device=device, progress=report)
            predictions = predictions.assign(method=method, train_dataset=train_data.name)
            rows.append(cross_records(predictions, test_data.info, train_data.name))
    records = pd.concat(rows, ignore_index=True)
    atomic_write_csv(Path(out) / "cross" / safe_csv_name(method, train_data.name), records)
    if as_json:
        print_json(json_records(records))
        return
    table = Table(title=f"Cross-dataset: {method} trained on {train_data.name}")
    for column in ("test set", "n", "SROCC", "KROCC", "PLCC", "RMSE (1-5)"):
        table.add_column(column)
    for _, row in records.iterrows():
        table.add_row(str(row["dataset"]), str(row["n"]), *[f"{row[m]:.3f}" for m in ("srocc", "krocc", "plcc", "rmse")])
    console.print(table)


def safe_csv_name(method: str, train: str) -> str:
    from ..store import safe_name

    return f"{safe_name(method)}_{safe_name(train)}_records.csv"
