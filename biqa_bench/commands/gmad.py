"""`biqa gmad select | simulate | analyze`: the gMAD competition from pool scores to rankings.

The science lives in :mod:`biqa_bench.evaluation.gmad`, the pool in :mod:`biqa_bench.datasets.folder`,
the methods' scores on it in :func:`biqa_bench.runner.pool_scores`, the output folders (their
layout is documented there) in :mod:`biqa_bench.report.gmad`; this module parses options, calls
them and renders tables.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import pandas as pd
import typer
from rich.table import Table

from ..config import DEFAULT_RESULTS
from ..errors import AnalysisError, BiqaError
from ..evaluation import gmad
from ..datasets.folder import load_pool, looks_like_path
from ..report.gmad import POOL_ITEMS, POOL_SCORES, pool_items_table, sibling, write_analysis, write_selection
from ..store import atomic_write_csv

from ..cli_common import check_device, comma_list, console, json_records, print_json, progress_bar, run_command

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

def register(app: typer.Typer) -> None:
    app.add_typer(gmad_app, name="gmad")


# ---------------------------------------------------------------- the pool and its scores


def _truth(spec: Optional[str], pairs_path: Path) -> pd.Series:
    """Ground-truth quality: a CSV (item_id, quality), a dataset spec, or the pool's own labels."""
    if spec is None:
        items_path = sibling(pairs_path, POOL_ITEMS)
        if items_path is None:
            raise AnalysisError(
                f"no {POOL_ITEMS} next to {pairs_path}; pass --truth DATASET or --truth CSV (item_id, quality)"
            )
        frame = gmad.read_table(items_path, "pool items", ["item_id", "quality"])
        if frame["quality"].isna().all():
            raise AnalysisError(
                f"{items_path}: the pool is unlabelled; pass --truth DATASET or --truth CSV (item_id, quality)"
            )
    elif Path(spec).expanduser().is_file():
        frame = gmad.read_table(Path(spec).expanduser(), "ground truth", ["item_id", "quality"])
    elif looks_like_path(spec):
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
    from ..runner import pool_scores

    device = check_device(device)
    names = comma_list(methods)
    if len(names) < 2:
        raise BiqaError(f"--methods needs at least two methods separated by commas, got '{methods}'")
    dataset = load_pool(pool)
    with progress_bar(not quiet) as report:
        scores = pool_scores(names, dataset, results, device=device, progress=report)
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
    pool_scores_path = pool_scores_path or sibling(pairs_path, POOL_SCORES)
    pool_scores = gmad.read_table(pool_scores_path, "pool scores", ["item_id", "method", "score"]) if pool_scores_path else None
    items_path = sibling(pairs_path, POOL_ITEMS) if figures else None
    pool_items = gmad.read_table(items_path, "pool items", ["item_id", "path"]) if items_path else None
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
