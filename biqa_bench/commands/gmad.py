"""`biqa gmad select | simulate | analyze`: the gMAD competition from pool scores to rankings.

The science lives in :mod:`biqa_bench.evaluation.gmad`; this module finds the pool and the
methods' scores on it, writes the output folders and renders tables. The helpers
:func:`write_selection` and :func:`write_analysis` are what ``biqa demo`` calls too.

Output of ``select`` (``--out DIR``)::

    DIR/pairs.csv          one row per (defender, attacker, level); status ok | empty
    DIR/pool_scores.csv    item_id, method, score: every method's score on the pool
    DIR/pool_items.csv     item_id, path (absolute), quality (empty for an unlabelled folder)
    DIR/selection.json     methods, pool, levels, tolerance, counts
    DIR/figures/<defender>-vs-<attacker>.png
    DIR/test_images/<pair_id>_1.<ext>, <pair_id>_2.<ext>, key.csv   (for a subjective test)

Output of ``analyze`` (``--out DIR``): per_pair.csv, aggressiveness.csv, resistance.csv,
ranking.csv, gmad.json and, when the pool's images are known, figures with the observers' verdict.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd
import typer
from rich.table import Table

from ..config import DEFAULT_RESULTS
from ..errors import AnalysisError, BiqaError, DatasetError, MethodError
from ..evaluation import gmad
from ..store import atomic_write_csv, atomic_write_json

from ..cli_common import check_device, console, json_records, print_json, progress_bar, run_command

gmad_app = typer.Typer(
    help=(
        "The gMAD competition (Ma et al., TPAMI 2020): find image pairs on an unlabelled pool that one "
        "method (the defender) rates equal and another (the attacker) rates most differently, then "
        "score aggressiveness and resistance from subjective (or simulated) judgments.\n\n"
        "Example: biqa gmad select --methods brisque,resnet50 --pool koniq --out gmad && "
        "biqa gmad simulate --pairs gmad/pairs.csv --out gmad/judgments.csv && "
        "biqa gmad analyze --pairs gmad/pairs.csv --judgments gmad/judgments.csv --out gmad/analysis"
    ),
    no_args_is_help=True,
)

POOL_SCORES = "pool_scores.csv"
POOL_ITEMS = "pool_items.csv"


def register(app: typer.Typer) -> None:
    app.add_typer(gmad_app, name="gmad")


# ---------------------------------------------------------------- the pool and its scores


def load_pool(pool: str):
    """A registered dataset spec, or a folder of images (unlabelled, every image an item)."""
    from ..datasets.registry import load_dataset

    path = Path(pool).expanduser()
    if path.is_dir():
        return folder_pool(path)
    if _looks_like_path(pool):
        raise DatasetError(f"{path}: no such folder; pass --pool a folder of images or a dataset name (`biqa datasets list`)")
    return load_dataset(pool)


def _looks_like_path(text: str) -> bool:
    """A pool or truth spec meant as a file or folder rather than a dataset name."""
    return "/" in text or "\\" in text or text.startswith((".", "~")) or Path(text).suffix.lower() == ".csv"


def folder_pool(folder: Path):
    """A folder of images as an unlabelled dataset (item id = path relative to the folder)."""
    from ..datasets._files import IMAGE_EXTENSIONS
    from ..predict import images_dataset

    folder = Path(folder).resolve()
    try:
        dataset = images_dataset([folder], name=f"folder@{folder.name}")
    except DatasetError:
        dataset = None
    if dataset is None or len(dataset.items) < 2:
        found = 0 if dataset is None else len(dataset.items)
        raise DatasetError(f"{folder}: found {found} image(s); a gMAD pool needs many images ({sorted(IMAGE_EXTENSIONS)})")
    return dataset


def _pool_scores(
    methods: Sequence[str],
    pool,
    results_dir: Path,
    device: str = "cpu",
    progress=None,
) -> pd.DataFrame:
    """Each method's score on the pool (``item_id, method, score``), from the results folder.

    For each method, in order: predictions already in ``results_dir`` for the pool dataset
    (test subsets of runs trained on it, or imported predictions; the lowest split index when
    there are several), else the trained run with the lowest split predicts the whole pool
    (:func:`biqa_bench.runner.predict_with_run`, cached in the run folder).
    """
    from ..store import find_runs

    runs = find_runs(results_dir)
    if not runs:
        raise MethodError(f"{results_dir}: no complete runs; train the methods first (`biqa train`) or pass --results")
    tables = []
    for method in methods:
        mine = sorted((r for r in runs if r.method == method), key=lambda r: (r.split, str(r.folder)))
        if not mine:
            known = sorted({r.method for r in runs})
            from ..errors import did_you_mean

            raise MethodError(
                f"no run of method '{method}' in {results_dir}.{did_you_mean(method, known)} "
                f"Methods with runs: {', '.join(known)}; train it with `biqa train --method {method}`"
            )
        scored = None
        for run in mine:
            predictions = run.predictions()
            on_pool = predictions[predictions["dataset"] == pool.name]
            if len(on_pool):
                scored = on_pool[["item_id", "prediction"]]
                break
        if scored is None:
            from ..runner import predict_with_run

            predictions = predict_with_run(mine[0].folder, pool, device=device, progress=progress)
            scored = predictions[["item_id", "prediction"]]
        tables.append(pd.DataFrame({"item_id": scored["item_id"].astype(str).to_numpy(), "method": method,
                                    "score": scored["prediction"].to_numpy(float)}))
    return pd.concat(tables, ignore_index=True)


def pool_items_table(pool) -> pd.DataFrame:
    items = pool.with_abspaths()
    return pd.DataFrame({"item_id": items["item_id"].astype(str), "path": items["path"], "quality": items["quality"]})


# ---------------------------------------------------------------- helpers shared with `biqa demo`


def write_selection(
    scores: pd.DataFrame,
    methods: Sequence[str],
    out: Path,
    pool_items: pd.DataFrame | None = None,
    levels: int = gmad.DEFAULT_LEVELS,
    tolerance: float = gmad.DEFAULT_TOLERANCE,
    figures: bool = True,
    export: bool = True,
    pool_name: str = "",
    band: float | None = None,
) -> pd.DataFrame:
    """Select the pairs and write the ``select`` output folder; returns the pairs table.

    ``pool_items`` (item_id, path absolute, quality) enables the figures and the test folder.
    """
    out = Path(out)
    pairs = gmad.select_all(scores, methods, levels=levels, tolerance=tolerance, band=band)
    atomic_write_csv(out / "pairs.csv", pairs)
    # the pool is what every method scored: the level weights of `analyze` are shares of it
    common = set(gmad.common_pool(scores, list(methods)).index)
    kept = scores[scores["method"].isin(methods) & scores["item_id"].astype(str).isin(common)]
    atomic_write_csv(out / POOL_SCORES, kept[["item_id", "method", "score"]])
    if pool_items is not None:
        atomic_write_csv(out / POOL_ITEMS, pool_items)
        paths = dict(zip(pool_items["item_id"].astype(str), pool_items["path"]))
        if figures:
            gmad.pair_figures(pairs, paths, out / "figures")
        if export:
            gmad.export_pairs(pairs, paths, out / "test_images")
    atomic_write_json(
        out / "selection.json",
        {
            "methods": list(methods),
            "pool": pool_name,
            "pool_size": int(pairs["pool_size"].max()),
            "levels": int(levels),
            "tolerance_fraction_of_level": float(tolerance),
            "pairs": int((pairs["status"] == "ok").sum()),
            "empty_levels": int((pairs["status"] != "ok").sum()),
        },
    )
    return pairs


def run_simulated(
    scores: pd.DataFrame,
    truth: pd.Series,
    methods: Sequence[str],
    out: Path,
    pool_items: pd.DataFrame | None = None,
    levels: int = gmad.DEFAULT_LEVELS,
    tolerance: float = gmad.DEFAULT_TOLERANCE,
    n_subjects: int = 20,
    noise: float = 5.0,
    scale: str = "-100..100",
    seed: int = 0,
    pool_name: str = "",
) -> gmad.GmadResult:
    """The whole competition with simulated observers (what `biqa demo` runs).

    Writes ``out/pairs.csv`` (and figures, test images), ``out/judgments.csv`` and ``out/analysis/``.
    """
    out = Path(out)
    pairs = write_selection(scores, methods, out, pool_items, levels, tolerance, pool_name=pool_name)
    judgments = gmad.simulate_judgments(pairs, truth, n_subjects=n_subjects, noise=noise, seed=seed, scale=scale)
    atomic_write_csv(out / "judgments.csv", judgments)
    pool_scores = pd.read_csv(out / POOL_SCORES, dtype={"item_id": str, "method": str})
    return write_analysis(pairs, judgments, out / "analysis", pool_scores, pool_items, scale=scale)


def _sibling(pairs_path: Path, name: str) -> Path | None:
    candidate = Path(pairs_path).parent / name
    return candidate if candidate.is_file() else None


def write_analysis(
    pairs: pd.DataFrame,
    judgments: pd.DataFrame,
    out: Path,
    pool_scores: pd.DataFrame | None = None,
    pool_items: pd.DataFrame | None = None,
    scale: str | None = None,
    screen: bool | None = None,
) -> gmad.GmadResult:
    """Analyse and write the ``analyze`` output folder; returns the result."""
    out = Path(out)
    result = gmad.analyze(pairs, judgments, pool_scores, scale=scale, screen=screen)
    atomic_write_csv(out / "per_pair.csv", result.per_pair)
    atomic_write_csv(out / "aggressiveness.csv", result.aggressiveness.reset_index())
    atomic_write_csv(out / "resistance.csv", result.resistance.reset_index())
    atomic_write_csv(out / "ranking.csv", result.ranking)
    atomic_write_json(out / "gmad.json", result.to_dict())
    if pool_items is not None:
        paths = dict(zip(pool_items["item_id"].astype(str), pool_items["path"]))
        preferences = result.per_pair.set_index("pair_id")["mean"].to_dict()
        gmad.pair_figures(pairs, paths, out / "figures", preferences)
    return result


def _read_table(path: Path, what: str, columns: Sequence[str]) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype={"item_id": str, "method": str})
    except FileNotFoundError:
        raise AnalysisError(f"{path}: {what} not found; check the path") from None
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise AnalysisError(f"{path}: cannot read {what} ({exc})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise AnalysisError(f"{path}: {what} lacks columns {missing}")
    return frame


def _truth(spec: Optional[str], pairs_path: Path) -> pd.Series:
    """Ground-truth quality: a CSV (item_id, quality), a dataset spec, or the pool's own labels."""
    if spec is None:
        items_path = _sibling(pairs_path, POOL_ITEMS)
        if items_path is None:
            raise AnalysisError(
                f"no {POOL_ITEMS} next to {pairs_path}; pass --truth DATASET or --truth CSV (item_id, quality)"
            )
        frame = _read_table(items_path, "pool items", ["item_id", "quality"])
        if frame["quality"].isna().all():
            raise AnalysisError(
                f"{items_path}: the pool is unlabelled; pass --truth DATASET or --truth CSV (item_id, quality)"
            )
    elif Path(spec).expanduser().is_file():
        frame = _read_table(Path(spec).expanduser(), "ground truth", ["item_id", "quality"])
    elif _looks_like_path(spec):
        raise AnalysisError(f"{spec}: ground-truth CSV not found; pass --truth a CSV (item_id, quality) or a dataset name")
    else:
        from ..datasets.registry import load_dataset

        frame = load_dataset(spec).items
    return pd.Series(frame["quality"].to_numpy(float), index=frame["item_id"].astype(str))


def _summary_table(pairs: pd.DataFrame) -> Table:
    table = Table(title="gMAD pairs per (defender, attacker)")
    for column in ("defender", "attacker", "pairs", "empty levels", "mean attacker gap"):
        table.add_column(column)
    for (defender, attacker), group in pairs.groupby(["defender", "attacker"]):
        ok = group[group["status"] == "ok"]
        gap = (ok["attacker_best"] - ok["attacker_worst"]).mean() if len(ok) else float("nan")
        empty = ", ".join(f"L{k}" for k in group.loc[group["status"] != "ok", "level"]) or "-"
        table.add_row(defender, attacker, str(len(ok)), empty, f"{gap:.3g}")
    return table


def _matrix_table(frame: pd.DataFrame, title: str) -> Table:
    table = Table(title=title)
    table.add_column(f"{frame.index.name} \\ {frame.columns.name}")
    for column in frame.columns:
        table.add_column(str(column), justify="right")
    for name, row in frame.iterrows():
        table.add_row(str(name), *["-" if pd.isna(v) else f"{v:.1f}" for v in row])
    return table


# ---------------------------------------------------------------- commands


@gmad_app.command("select")
@run_command
def select(
    methods: str = typer.Option(..., "--methods", "-m", help="Comma-separated methods (two or more) with runs in --results."),
    pool: str = typer.Option(..., "--pool", help="The pool: a registered dataset (labels not needed) or a folder of images."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (pairs.csv, figures/, test_images/)."),
    levels: int = typer.Option(gmad.DEFAULT_LEVELS, "--levels", help="Equal-width levels of the defender's score range."),
    tolerance: float = typer.Option(
        gmad.DEFAULT_TOLERANCE, "--tolerance",
        help="Half-width of the band around each level's centre, as a fraction of the level width (0-0.5].",
    ),
    band: Optional[float] = typer.Option(
        None, "--band",
        help="Absolute half-width of the band in score units instead of --tolerance (the gMAD toolbox uses 9 on a 0-100 MOS scale).",
    ),
    results: Path = typer.Option(DEFAULT_RESULTS, "--results", help="Results folder holding the methods' runs."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda, for scoring the pool."),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Draw one figure per (defender, attacker)."),
    export: bool = typer.Option(True, "--export/--no-export", help="Copy the pair images into test_images/."),
    as_json: bool = typer.Option(False, "--json", help="Print the pairs as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Select the gMAD pairs of every ordered (defender, attacker) on a pool of images.

    Example: biqa gmad select --methods brisque,resnet50 --pool koniq --out gmad --levels 6
    """
    device = check_device(device)
    names = [m.strip() for m in methods.split(",") if m.strip()]
    if len(names) < 2:
        raise BiqaError(f"--methods needs at least two methods separated by commas, got '{methods}'")
    dataset = load_pool(pool)
    with progress_bar(not quiet) as report:
        scores = _pool_scores(names, dataset, results, device=device, progress=report)
        pairs = write_selection(scores, names, out, pool_items_table(dataset), levels, tolerance,
                                figures=figures, export=export, pool_name=dataset.name, band=band)
    if as_json:
        print_json(json_records(pairs))
        return
    console.print(_summary_table(pairs))
    written = [f"pairs: {out / 'pairs.csv'}"]
    if figures:
        written.append(f"figures: {out / 'figures'}")
    if export:
        written.append(f"test images: {out / 'test_images'}")
    console.print("   ".join(written))
    real = f" (or collect observers' judgments of {out / 'test_images'})" if export else ""
    console.print(f"next: biqa gmad simulate --pairs {out / 'pairs.csv'} --out {out / 'judgments.csv'}{real}",
                  highlight=False)


@gmad_app.command("simulate")
@run_command
def simulate(
    pairs_path: Path = typer.Option(..., "--pairs", help="pairs.csv written by `biqa gmad select`."),
    out: Path = typer.Option(..., "--out", "-o", help="Judgments CSV to write (pair_id, subject, preference)."),
    truth: Optional[str] = typer.Option(
        None, "--truth",
        help="Ground-truth quality: a dataset, or a CSV with item_id, quality. Default: the pool's own labels.",
    ),
    subjects: int = typer.Option(20, "--subjects", help="Number of simulated observers."),
    noise: float = typer.Option(5.0, "--noise", help="Std of each observer's perception noise, in quality points."),
    scale: str = typer.Option("-100..100", "--scale", help="-100..100 (graded) or 2afc (1 / -1)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the observers' noise."),
) -> None:
    """Simulated observers for demos and tests: judgments drawn from a known ground truth.

    Example: biqa gmad simulate --pairs gmad/pairs.csv --out gmad/judgments.csv --subjects 20 --noise 5
    """
    pairs = gmad.read_pairs(pairs_path)
    judgments = gmad.simulate_judgments(pairs, _truth(truth, pairs_path), n_subjects=subjects, noise=noise,
                                        seed=seed, scale=scale)
    atomic_write_csv(out, judgments)
    console.print(f"{len(judgments)} judgments ({subjects} observers, {scale}) -> {out}")


@gmad_app.command("analyze")
@run_command
def analyze(
    pairs_path: Path = typer.Option(..., "--pairs", help="pairs.csv written by `biqa gmad select`."),
    judgments_path: Path = typer.Option(
        ..., "--judgments",
        help="CSV: pair_id, subject, preference (>0: image _1 better; -100..100 graded, or 2afc 1 / -1).",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (matrices, ranking, per-pair CIs, figures)."),
    pool_scores_path: Optional[Path] = typer.Option(
        None, "--pool-scores", help="Pool scores for the level weights (default: pool_scores.csv next to --pairs)."
    ),
    scale: str = typer.Option("auto", "--scale", help="auto, -100..100 or 2afc."),
    screen: Optional[bool] = typer.Option(
        None, "--screen/--no-screen",
        help="BT.500-style screening of outlier ratings and subjects (default: on for -100..100, off for 2afc).",
    ),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Redraw the pair figures with the verdicts."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Aggressiveness, resistance and the ranking they imply, from judgments of the gMAD pairs.

    Example: biqa gmad analyze --pairs gmad/pairs.csv --judgments ratings.csv --out gmad/analysis --json
    """
    pairs = gmad.read_pairs(pairs_path)
    judgments = gmad.read_judgments(judgments_path)
    pool_scores_path = pool_scores_path or _sibling(pairs_path, POOL_SCORES)
    pool_scores = _read_table(pool_scores_path, "pool scores", ["item_id", "method", "score"]) if pool_scores_path else None
    items_path = _sibling(pairs_path, POOL_ITEMS) if figures else None
    pool_items = _read_table(items_path, "pool items", ["item_id", "path"]) if items_path else None
    result = write_analysis(pairs, judgments, out, pool_scores, pool_items, scale=None if scale == "auto" else scale,
                            screen=screen)
    if as_json:
        print_json(json.dumps(result.to_dict(), indent=1, default=str))
        return
    console.print(_matrix_table(result.aggressiveness, "Aggressiveness (row attacks column; -100..100, higher is better)"))
    console.print(_matrix_table(result.resistance, "Resistance (row defends against column; 0..100, higher is better)"))
    ranking = Table(title=f"gMAD ranking ({result.scale} judgments)")
    for column in ("rank", "method", "aggressiveness", "resistance"):
        ranking.add_column(column)
    for row in result.ranking.itertuples():
        ranking.add_row(str(row.rank), row.method, f"{row.aggressiveness:.1f}", f"{row.resistance:.1f}")
    console.print(ranking)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}")
    console.print(f"written to {out}")
