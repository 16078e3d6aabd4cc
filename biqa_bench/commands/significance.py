"""`biqa significance`: which methods are statistically better than which (REQA Table III).

Over splits (default): per-split values of one metric for every method of a results folder,
verified to come from the same split files, compared pairwise. Per image (``--per-image A,B``):
the F-test, Williams' test and a paired bootstrap for two methods on one test set.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import pandas as pd
import typer
from rich.table import Table

from ..cli_common import console, print_json, run_command
from ..config import DEFAULT_RESULTS
from ..errors import AnalysisError
from ..evaluation.metrics import METRICS

if TYPE_CHECKING:
    from ..evaluation.significance import PerImageTests, SignificanceResult

# ..evaluation.significance (scipy.stats) is imported where it is used: `biqa --help` imports this module.


def register(main: typer.Typer) -> None:
    main.command("significance")(significance)


# ---------------------------------------------------------------- library part (no printing)


def significance_results(
    results: Path,
    metric: str = "srocc",
    test: str = "paired",
    alternative: str = "two-sided",
    alpha: float = 0.05,
    holm: bool = False,
    dataset: str | None = None,
) -> dict[tuple[str, str], SignificanceResult]:
    """One significance matrix per (train dataset, test dataset) of a results folder.

    Methods must share split files (the runs' ``split_hash``); otherwise AnalysisError.
    """
    from dataclasses import replace

    from ..evaluation.significance import check_split_hashes, compare_methods, split_metric_table, without_whole_runs
    from ..store import load_predictions, runs_table

    if metric not in METRICS:
        raise AnalysisError(f"unknown metric '{metric}'; use one of {', '.join(METRICS)}")
    if not 0.0 < alpha < 1.0:
        raise AnalysisError(f"--alpha must lie in (0, 1), not {alpha:g}; e.g. --alpha 0.05")
    predictions = load_predictions(results)
    runs = runs_table(results)
    if dataset is not None:
        _check_known("dataset", dataset, predictions["dataset"], results, "--dataset")
        predictions = predictions[predictions["dataset"] == dataset]
        trained = set(predictions["train_dataset"])
        runs = runs[runs["train_dataset"].isin(trained)]
    check_split_hashes(runs)
    predictions, whole_notes = without_whole_runs(predictions)
    if predictions.empty:
        raise AnalysisError(f"{results}: only whole-dataset runs, which have no splits to test over; "
                            "compare two of them per image with --per-image A,B --split whole")
    per_split = split_metric_table(predictions)
    output = {}
    for (train_dataset, test_dataset), group in per_split.groupby(["train_dataset", "dataset"], sort=True):
        try:
            output[(train_dataset, test_dataset)] = compare_methods(
                group[["method", "split", metric]], metric=metric, test=test,
                alternative=alternative, alpha=alpha, holm=holm,
            )
        except AnalysisError as exc:
            raise AnalysisError(f"{test_dataset}: {exc}") from None
        notes = [n for n in whole_notes if f" on {test_dataset} (" in n]
        if notes:
            result = output[(train_dataset, test_dataset)]
            output[(train_dataset, test_dataset)] = replace(result, notes=tuple(result.notes) + tuple(notes))
    return output


def significance_frames(result: SignificanceResult) -> dict[str, pd.DataFrame]:
    """The matrices of a result as CSV-ready frames (method names in the first column)."""
    frames = {"decision": result.decision, "pvalue": result.pvalue, "mean_difference": result.mean_difference}
    if result.holm:
        frames["pvalue_holm"] = result.pvalue_adjusted
    return {name: frame.rename_axis("method").reset_index() for name, frame in frames.items()}


def image_tests(
    results: Path,
    method_a: str,
    method_b: str,
    dataset: str | None = None,
    split: int | str | None = None,
    metric: str = "plcc",
    alternative: str = "two-sided",
    n_resamples: int = 2000,
    confidence_level: float = 0.95,
    seed: int = 0,
) -> PerImageTests:
    """Per-image tests of two methods on one test set of a results folder (``split='whole'``:
    their whole-dataset runs, compared on the items both predicted).

    The test set is checked here first, so a typo gets a did-you-mean and a missing
    --dataset/--split the list of what there is.
    """
    from ..evaluation.metrics import common_whole_items
    from ..evaluation.significance import per_image_tests
    from ..store import load_predictions, split_order, split_value

    predictions = load_predictions(results)
    for method in (method_a, method_b):
        _check_known("method", method, predictions["method"], results, "--per-image")
    if dataset is not None:
        _check_known("dataset", dataset, predictions["dataset"], results, "--dataset")
    tested = predictions[predictions["subset"] == "test"] if "subset" in predictions else predictions
    tested = tested[tested["method"].isin([method_a, method_b])]
    if dataset is not None:
        tested = tested[tested["dataset"] == dataset]
    tested = common_whole_items(tested).predictions
    datasets = sorted(set(tested["dataset"]))
    splits = sorted({split_value(v) for v in tested["split"]}, key=split_order)
    if split is not None and split not in splits:
        where = f" on {dataset}" if dataset else ""
        raise AnalysisError(f"--split {split}: no test predictions of {method_a} and {method_b}{where}; splits present: "
                            f"{', '.join(map(str, splits)) or 'none'}")
    needed = []
    if dataset is None and len(datasets) > 1:
        needed.append(f"--dataset (one of {', '.join(datasets)})")
    if split is None and len(splits) > 1:
        needed.append(f"--split ({_span(splits)})")
    if needed:
        example = (f" --dataset {datasets[0]}" if dataset is None and len(datasets) > 1 else "") + \
                  (f" --split {splits[0]}" if split is None and len(splits) > 1 else "")
        raise AnalysisError(f"per-image tests need exactly one test set; pass {' and '.join(needed)}, e.g.{example}")
    return per_image_tests(
        tested, method_a, method_b, dataset=dataset, split=split, metric=metric,
        alternative=alternative, n_resamples=n_resamples, confidence_level=confidence_level, seed=seed,
    )


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


def _span(values: list) -> str:
    if len(values) > 2 and all(isinstance(v, int) for v in values) and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}..{values[-1]}"
    return ", ".join(map(str, values))


def _check_known(what: str, name: str, present, results: Path, option: str) -> None:
    """AnalysisError with a did-you-mean when ``name`` is not among the ``present`` values."""
    from ..errors import did_you_mean

    known = sorted({str(v) for v in present})
    if name not in known:
        raise AnalysisError(
            f"no predictions of {what} '{name}' in {results}.{did_you_mean(name, known)} "
            f"Fix {option}; {what}s present: {', '.join(known)}"
        )


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
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write CSVs (default: RESULTS/significance)."),
) -> None:
    """Pairwise significance of the differences between methods over shared splits (REQA Table III).

    Prints the 1/0/-1 matrix (row better/indistinguishable/worse than column) with p-values and mean
    differences, and writes them as CSVs. With --per-image A,B: tests on one test set instead.

    Example: biqa significance results --metric srocc --test paired --holm
    Example: biqa significance results --per-image brisque,cnniqa --dataset synthetic --split 0 --metric plcc
    """
    from ..evaluation.significance import ALTERNATIVES, TESTS
    from ..store import atomic_write_csv, atomic_write_text, safe_name

    if test not in TESTS:
        raise AnalysisError(f"unknown --test '{test}'; use one of {', '.join(TESTS)}")
    if alternative not in ALTERNATIVES:
        raise AnalysisError(f"unknown --alternative '{alternative}'; use one of {', '.join(ALTERNATIVES)}")
    target = Path(out) if out is not None else Path(results) / "significance"
    if per_image:
        names = [m.strip() for m in per_image.split(",") if m.strip()]
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
