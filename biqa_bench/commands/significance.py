"""`biqa significance`: which methods are statistically better than which (REQA Table III).

Over splits (default): per-split values of one metric for every method of a results folder,
verified to come from the same split files, compared pairwise. Per image (``--per-image A,B``):
the F-test, Williams' test and a paired bootstrap for two methods on one test set.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.table import Table

from ..cli_common import comma_list, console, print_json, run_command
from ..config import DEFAULT_RESULTS
from ..errors import AnalysisError
from ..evaluation.metrics import METRICS

if TYPE_CHECKING:
    import pandas as pd

    from ..evaluation.significance import PerImageTests, SignificanceResult

# ..evaluation.significance (scipy.stats) is imported where it is used: `biqa --help` imports this module.


def register(main: typer.Typer) -> None:
    main.command("significance")(significance)


def _split_option(text: str | None) -> int | str | None:
    """--split: a split index, or 'whole' (whole-dataset runs)."""
    from ..store import WHOLE

    if text is None or text == WHOLE:
        return text
    try:
        return int(text)
    except ValueError:
        raise AnalysisError(f"--split takes a split index (0, 1, ...) or 'whole', not '{text}'") from None


def _split_stem(split: int | str) -> str:
    return "whole" if split == "whole" else f"split{split}"


def _render_krasula(records: "pd.DataFrame", details: dict, reasons: dict) -> None:
    from ..evaluation.intervals import format_interval, t_interval

    for name, (split, result) in details.items():
        frame = records[records["dataset"] == name]
        n_splits = frame["split"].nunique()
        table = Table(title=f"Krasula analysis on {name}: mean over {n_splits} split(s) [95 % t-interval]; "
                            f"alpha={result.alpha:g} (Welch's t-test on MOS from std and counts)")
        for column in ("method", "AUC different/similar", "AUC better/worse", "% correct"):
            table.add_column(column, justify="left" if column == "method" else "right")
        for method in result.methods:
            cells = []
            for key, decimals in (("auc_ds", 3), ("auc_bw", 3), ("percent_correct", 1)):
                interval = t_interval(frame.loc[frame["method"] == method, key])
                cells.append(f"{interval.estimate:.{decimals}f} "
                             f"{format_interval(interval.estimate, interval.low, interval.high, decimals)}".rstrip())
            table.add_row(method, *cells)
        console.print(table)
        console.print(f"{_split_label(split)}: {result.n_items} images, {result.n_different} different and "
                      f"{result.n_similar} similar pairs", highlight=False)
        if len(result.methods) > 1:
            for label, pvalue in (("different/similar", result.pvalue_ds), ("better/worse", result.pvalue_bw)):
                console.print(f"DeLong p-values, AUC {label} (row vs column, two-sided), {_split_label(split)}:")
                console.print(pvalue.to_string(float_format=lambda v: f"{v:.3g}", na_rep="·"), highlight=False)
        for note in result.notes:
            console.print(f"[yellow]note:[/] {note}")
    for name, reason in reasons.items():
        console.print(f"[dim]{name}: left out, {reason}[/]", highlight=False)


def _split_label(split: int | str) -> str:
    return "whole dataset" if split == "whole" else f"split {split}"


def _krasula_command(results: Path, alpha: float, dataset: str | None, split: str | None, as_json: bool,
                     target: Path) -> None:
    """biqa significance --krasula: CSVs of the records and DeLong p-values, then JSON or tables."""
    from ..store import atomic_write_csv, safe_name

    from ..evaluation.results import krasula_results

    records, details, reasons = krasula_results(results, alpha, dataset, _split_option(split))
    atomic_write_csv(target / "krasula_records.csv", records)
    for name, (chosen, result) in details.items():
        for key, frame in (("ds", result.pvalue_ds), ("bw", result.pvalue_bw)):
            atomic_write_csv(target / f"krasula_{safe_name(name)}_{_split_stem(chosen)}_delong_{key}.csv",
                             frame.rename_axis("method").reset_index())
    if as_json:
        payload = {"records": json.loads(records.to_json(orient="records")), "left_out": reasons,
                   "delong": {name: {"split": chosen, "different_similar": json.loads(r.pvalue_ds.to_json()),
                                     "better_worse": json.loads(r.pvalue_bw.to_json())}
                              for name, (chosen, r) in details.items()}}
        print_json(json.dumps(payload, indent=1))
        return
    _render_krasula(records, details, reasons)
    console.print(f"CSVs in {target}")


# ---------------------------------------------------------------- command


def _render(result: SignificanceResult, train_dataset: str, test_dataset: str) -> None:
    where = test_dataset if train_dataset == test_dataset else f"{train_dataset} -> {test_dataset}"
    direction = "lower is better" if not result.higher_is_better else "higher is better"
    title = (f"{where}: {result.metric.upper()} ({direction}), {result.test} test, {result.alternative}, "
             f"alpha={result.alpha}{', Holm' if result.holm else ''}, {len(result.splits)} splits")
    table = Table(title=title, caption="1: row better than column, 0: indistinguishable, -1: row worse. "
                  "Cells: decision (p-value, mean difference row - column)")
    table.add_column("method")
    for method in result.methods:
        table.add_column(method, justify="center")
    p = result.pvalue_adjusted
    for row in result.methods:
        cells = []
        for col in result.methods:
            if row == col:
                cells.append("·")
                continue
            decision = int(result.decision.loc[row, col])
            colour = {1: "green", -1: "red", 0: "white"}[decision]
            cells.append(f"[{colour}]{decision}[/] (p={p.loc[row, col]:.3g}, "
                         f"{result.mean_difference.loc[row, col]:+.3f})")
        table.add_row(row, *cells)
    console.print(table)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}")


def _render_per_image(result: PerImageTests) -> None:
    f, w, b = result.f_test, result.williams, result.bootstrap
    where = "whole dataset" if result.split == "whole" else f"split {result.split}"
    table = Table(title=f"{result.method_a} vs {result.method_b} on {result.dataset}, {where} ({result.n} images)")
    for column in ("test", "statistic", "p-value", "note"):
        table.add_column(column)
    kurtosis_note = (f"residual kurtosis {f.kurtosis_a:.2f} / {f.kurtosis_b:.2f}"
                     + ("" if f.kurtosis_ok else " (outside 2-4: the F-test's Gaussian assumption is doubtful)"))
    table.add_row("F (residual variance A/B)", f"{f.statistic:.4f}", f"{f.pvalue:.4g}",
                  f"df=({f.df_numerator}, {f.df_denominator}); {kurtosis_note}")
    table.add_row(f"Williams ({b.metric.upper()} A vs B)", f"{w.statistic:.4f}", f"{w.pvalue:.4g}",
                  f"df={w.df}, r(truth,A)={w.r12:.3f}, r(truth,B)={w.r13:.3f}, r(A,B)={w.r23:.3f}, {w.alternative}")
    ci = b.confidence_interval
    table.add_row(f"bootstrap {b.metric.upper()}(A) - {b.metric.upper()}(B)", f"{b.statistic:+.4f}", "",
                  f"{b.confidence_level:.0%} CI [{ci.low:+.4f}, {ci.high:+.4f}], {b.n_resamples} resamples, seed {b.seed}")
    console.print(table)


@run_command
def significance(
    results: Path = typer.Argument(DEFAULT_RESULTS, help="Results folder."),
    metric: str = typer.Option("srocc", "--metric", help=f"Metric to compare: {', '.join(METRICS)} (RMSE: lower is better)."),
    test: str = typer.Option("paired", "--test", help="paired (t-test, default: splits are shared), welch or wilcoxon."),
    alternative: str = typer.Option("two-sided", "--alternative", help="two-sided, or greater (one-sided: row better than column)."),
    alpha: float = typer.Option(0.05, "--alpha", help="Significance level."),
    holm: bool = typer.Option(False, "--holm", help="Holm correction across the pairs."),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="Only this test dataset."),
    per_image: Optional[str] = typer.Option(None, "--per-image", help="A,B: F-test, Williams' test and bootstrap CI for two methods on one test set."),
    split: Optional[str] = typer.Option(None, "--split", help="With --per-image: which split's test set (an index, or 'whole')."),
    resamples: int = typer.Option(2000, "--resamples", help="With --per-image: bootstrap resamples."),
    seed: int = typer.Option(0, "--seed", min=0, help="With --per-image: bootstrap seed."),
    krasula: bool = typer.Option(False, "--krasula", help="Krasula et al. 2016: AUCs of different/similar and better/worse pairs, DeLong's test."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write CSVs (default: RESULTS/significance)."),
) -> None:
    """Pairwise significance of the differences between methods over shared splits (REQA Table III).

    Prints the 1/0/-1 matrix (row better/indistinguishable/worse than column) with p-values and mean
    differences, and writes them as CSVs. With --per-image A,B: tests on one test set instead.

    Example: biqa significance results --metric srocc --test paired --holm
    Example: biqa significance results --per-image brisque,cnniqa --dataset synthetic --split 0 --metric plcc
    Example: biqa significance results --krasula --alpha 0.05
    """
    from ..evaluation.results import image_tests, significance_frames, significance_results
    from ..evaluation.significance import ALTERNATIVES, TESTS
    from ..store import atomic_write_csv, atomic_write_text, safe_name

    if test not in TESTS:
        raise AnalysisError(f"unknown --test '{test}'; use one of {', '.join(TESTS)}")
    if alternative not in ALTERNATIVES:
        raise AnalysisError(f"unknown --alternative '{alternative}'; use one of {', '.join(ALTERNATIVES)}")
    target = Path(out) if out is not None else Path(results) / "significance"
    if krasula:
        if per_image:
            raise AnalysisError("--krasula and --per-image are two analyses; run them one at a time")
        _krasula_command(results, alpha, dataset, split, as_json, target)
        return
    if per_image:
        names = comma_list(per_image)
        if len(names) != 2:
            raise AnalysisError(f"--per-image takes two methods as A,B, not '{per_image}'")
        if metric not in ("srocc", "plcc"):
            raise AnalysisError(f"--per-image compares srocc or plcc, not '{metric}'; pass --metric plcc")
        result = image_tests(results, names[0], names[1], dataset=dataset, split=_split_option(split), metric=metric,
                             alternative="greater" if alternative == "greater" else "two-sided",
                             n_resamples=resamples, seed=seed)
        name = f"per_image_{safe_name(result.method_a)}_vs_{safe_name(result.method_b)}_{safe_name(result.dataset)}_{_split_stem(result.split)}.json"
        atomic_write_text(target / name, json.dumps(result.to_dict(), indent=1) + "\n")
        if as_json:
            print_json(json.dumps(result.to_dict(), indent=1))
            return
        _render_per_image(result)
        console.print(f"written: {target / name}")
        return
    outcome = significance_results(results, metric, test, alternative, alpha, holm, dataset)
    payload = []
    for (train_dataset, test_dataset), result in outcome.items():
        stem = safe_name(test_dataset) if train_dataset == test_dataset else f"{safe_name(train_dataset)}_to_{safe_name(test_dataset)}"
        for kind, frame in significance_frames(result).items():
            atomic_write_csv(target / f"{stem}_{metric}_{kind}.csv", frame)
        payload.append({"train_dataset": train_dataset, "dataset": test_dataset, **result.to_dict()})
    if as_json:
        print_json(json.dumps(payload, indent=1))
        return
    for (train_dataset, test_dataset), result in outcome.items():
        _render(result, train_dataset, test_dataset)
    console.print(f"CSVs in {target}")
