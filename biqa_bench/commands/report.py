"""`biqa report`: tables (LaTeX/Markdown/CSV), figures and a standalone report.tex from a results folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..cli_common import console, run_command
from ..config import DEFAULT_RESULTS


def register(app: typer.Typer) -> None:
    app.command("report")(report)


@run_command
def report(
    results: Path = typer.Argument(DEFAULT_RESULTS, help="Results folder written by `biqa train` / `biqa demo`."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default: RESULTS/report)."),
    decimals: int = typer.Option(3, "--decimals", min=0, max=6, help="Decimals printed in the tables."),
    aggregate: str = typer.Option("mean", "--aggregate", help="How figures are combined over splits: mean or median."),
    pdf: bool = typer.Option(False, "--pdf", help="Also compile report.pdf (needs pdflatex on PATH)."),
    min_items: int = typer.Option(10, "--min-items", help="Fewest items for a quality range or subset to be defined."),
    low_quality_rule: str = typer.Option("nominal", "--low-quality-rule",
                                         help="nominal (quality below 25, IEIT) or quantile (lowest quarter of each test split)."),
    ci: bool = typer.Option(False, "--ci", help="95 % interval in every table cell (t over splits; bootstrap for one-run figures)."),
    n_boot: int = typer.Option(1000, "--n-boot", help="With --ci: BCa bootstrap resamples (0: no bootstrap)."),
    seed: int = typer.Option(0, "--seed", min=0, help="With --ci: seed of the bootstrap."),
    boot_every_run: bool = typer.Option(False, "--boot-every-run", help="With --ci: bootstrap every run into the records."),
) -> None:
    """Write publication tables, figures and a standalone report.tex for a results folder.

    Tables in LaTeX booktabs, Markdown and CSV, figures in PNG and PDF, in the layouts of the
    REQA, IEIT and QAMT papers; best value per column (per pair and metric in the cross-dataset
    table by pair, REQA Table IV) in bold, second underlined.

    With --ci every cell carries its 95 % interval: LaTeX `0.912 {\\scriptsize ±0.008}` (or
    \\[low, high] where it is not symmetric), Markdown inline, CSV columns `... CI low/high`.

    Example: biqa report results --out paper/ --decimals 3 --aggregate median --pdf
    Example: biqa report results --ci --n-boot 2000 --seed 1
    """
    from ..errors import BiqaError
    from ..evaluation.intervals import check_n_boot
    from ..report.build import build_report

    if aggregate not in ("mean", "median"):
        raise BiqaError(f"--aggregate must be 'mean' or 'median', not '{aggregate}'")
    check_n_boot(n_boot)
    target = out or Path(results) / "report"
    result = build_report(results, target, decimals=decimals, aggregate=aggregate, pdf=pdf, min_items=min_items,
                          low_quality_rule=low_quality_rule, ci=ci, n_boot=n_boot, seed=seed,
                          boot_every_run=boot_every_run)
    console.print(f"[bold]report[/] {result.out_dir}: {len(result.tables)} tables, {len(result.figures)} figures")
    console.print(f"  sections: {', '.join(result.sections)}")
    console.print(f"  splits: {'; '.join(result.splits)}", highlight=False)
    for analysis, why in result.skipped.items():
        console.print(f"  [dim]left out {analysis}: {why}[/]")
    console.print(f"  LaTeX: {result.tex}" + (f"  PDF: {result.pdf}" if result.pdf else "") + f"  Markdown: {result.markdown}")
