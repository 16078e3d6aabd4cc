"""Analyses of a results folder: each reads the runs' predictions through :mod:`biqa_bench.store`
and hands them to the pure functions of this package (``biqa eval``, ``biqa significance``).

* :func:`evaluate_results` - per-split records of every run and their summary over splits;
* :func:`significance_results` - one significance matrix per (train dataset, test dataset);
* :func:`image_tests` - the per-image tests of two methods on one test set;
* :func:`range_effect_results` - the range-effect index per split and its summary;
* :func:`krasula_results` - the Krasula et al. (2016) analysis (``biqa significance --krasula``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ..errors import AnalysisError
from ..store import load_predictions
from .metrics import METRICS

if TYPE_CHECKING:
    from .significance import PerImageTests, SignificanceResult


def evaluate_results(results: Path, ranges: bool, low_quality: bool, min_items: int, rule: str, fraction: float,
                     ci: bool = False, n_boot: int = 0, seed: int = 0, boot_every_run: bool = False):
    """Records, summary and notes for a results folder (overall, plus ranges / low-quality on
    request); whole-dataset runs of different methods on one dataset are cut to their common items.

    ``ci``: summaries with 95 % intervals; records of figures resting on one run (or of every
    run with ``boot_every_run``) with their BCa bootstrap interval (``n_boot`` resamples, ``seed``;
    :func:`biqa_bench.evaluation.intervals.records_with_intervals`).
    """
    from ..evaluation.intervals import check_n_boot, records_with_intervals
    from ..evaluation.metrics import common_whole_items, evaluate_predictions
    from ..evaluation.ranges import aggregate_records, check_low_quality, low_quality_records, range_records
    from ..store import dataset_infos, find_runs

    check_low_quality(rule, fraction)  # also without --low-quality: a mistyped option is not ignored
    if ci:
        check_n_boot(n_boot)
    boot = n_boot if ci else 0
    runs = find_runs(results)
    predictions = load_predictions(results, runs)
    common = common_whole_items(predictions[predictions["subset"] == "test"])
    predictions = common.predictions
    parts = [records_with_intervals(evaluate_predictions, predictions, boot, seed, boot_every_run)]
    if ranges:
        parts.append(records_with_intervals(range_records, predictions, boot, seed, boot_every_run, min_items=min_items))
    if low_quality:
        infos = dataset_infos(runs)
        parts.append(records_with_intervals(low_quality_records, predictions, boot, seed, boot_every_run, infos=infos,
                                            rule=rule, fraction=fraction, min_items=min_items))
    records = pd.concat(parts, ignore_index=True)
    return records, aggregate_records(records, ci=ci), common.notes()


def range_effect_results(results: Path, min_items: int, ci: bool = False, n_boot: int = 0, seed: int = 0,
                         boot_every_run: bool = False):
    """Range-effect index records (per split) and summary (per method and dataset) of a results
    folder (whole-dataset runs of different methods cut to their common items, as in :func:`evaluate_results`)."""
    from ..evaluation.intervals import records_with_intervals
    from ..evaluation.metrics import common_whole_items
    from ..evaluation.range_effect import range_effect_records, range_effect_summary

    predictions = load_predictions(results)
    predictions = common_whole_items(predictions[predictions["subset"] == "test"]).predictions
    records = records_with_intervals(range_effect_records, predictions, n_boot if ci else 0, seed, boot_every_run,
                                     min_items=min_items)
    return records, range_effect_summary(records)


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

    from .significance import check_split_hashes, compare_methods, split_metric_table, without_whole_runs
    from ..store import runs_table

    if metric not in METRICS:
        raise AnalysisError(f"unknown metric '{metric}'; use one of {', '.join(METRICS)}")
    if not 0.0 < alpha < 1.0:
        raise AnalysisError(f"--alpha must lie in (0, 1), not {alpha:g}; e.g. --alpha 0.05")
    predictions = load_predictions(results)
    runs = runs_table(results)
    if dataset is not None:
        check_known("dataset", dataset, predictions["dataset"], results, "--dataset")
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


def image_tests(results: Path, method_a: str, method_b: str, dataset: str | None = None, split: int | str | None = None,
                **options) -> PerImageTests:
    """Per-image tests of two methods on one test set of a results folder (``split='whole'``:
    their whole-dataset runs, compared on the items both predicted).

    The test set is checked here first, so a typo gets a did-you-mean and a missing
    --dataset/--split the list of what there is; ``options`` go to
    :func:`biqa_bench.evaluation.significance.per_image_tests`.
    """
    from .metrics import common_whole_items
    from .significance import per_image_tests
    from ..store import split_order, split_value

    predictions = load_predictions(results)
    for method in (method_a, method_b):
        check_known("method", method, predictions["method"], results, "--per-image")
    if dataset is not None:
        check_known("dataset", dataset, predictions["dataset"], results, "--dataset")
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
        needed.append(f"--split ({span_text(splits)})")
    if needed:
        example = (f" --dataset {datasets[0]}" if dataset is None and len(datasets) > 1 else "") + \
                  (f" --split {splits[0]}" if split is None and len(splits) > 1 else "")
        raise AnalysisError(f"per-image tests need exactly one test set; pass {' and '.join(needed)}, e.g.{example}")
    return per_image_tests(tested, method_a, method_b, dataset=dataset, split=split, **options)


def krasula_results(results: Path, alpha: float = 0.05, dataset: str | None = None, split: int | str | None = None):
    """The Krasula analysis of a results folder: per-split records (AUCs, percent correct), the
    full result (DeLong matrices, ROC curves) of one split per dataset (``split``, default the
    lowest), and per dataset left out the reason. AnalysisError when no dataset can be analysed."""
    from ..evaluation.krasula import krasula_records, krasula_test_set
    from ..store import dataset_infos, split_order, split_value

    if not 0.0 < alpha < 1.0:
        raise AnalysisError(f"--alpha must lie in (0, 1), not {alpha:g}; e.g. --alpha 0.05")
    predictions = load_predictions(results)
    if dataset is not None:
        check_known("dataset", dataset, predictions["dataset"], results, "--dataset")
        predictions = predictions[predictions["dataset"] == dataset]
    infos = dataset_infos(results)
    records, reasons = krasula_records(predictions, alpha=alpha, infos=infos)
    if records.empty:
        why = "; ".join(f"{d}: {r}" for d, r in reasons.items()) or "no test predictions"
        raise AnalysisError(f"no dataset in {results} has per-image std and numbers of ratings for the Krasula analysis ({why})")
    details = {}
    for name in sorted(records["dataset"].unique(), key=str):
        splits = sorted({split_value(v) for v in records.loc[records["dataset"] == name, "split"]}, key=split_order)
        if split is not None and split not in splits:
            raise AnalysisError(f"--split {split}: {name} has Krasula results for splits {span_text(splits)} only")
        chosen = splits[0] if split is None else split
        info = infos.get(name)
        details[name] = krasula_test_set(predictions, name, chosen, alpha,
                                         True if info is None else bool(info.higher_is_better))
        details[name] = (chosen, details[name])
    return records, details, reasons


def span_text(values: list) -> str:
    if len(values) > 2 and all(isinstance(v, int) for v in values) and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}..{values[-1]}"
    return ", ".join(map(str, values))


def check_known(what: str, name: str, present, results: Path, option: str) -> None:
    """AnalysisError with a did-you-mean when ``name`` is not among the ``present`` values."""
    from ..errors import did_you_mean

    known = sorted({str(v) for v in present})
    if name not in known:
        raise AnalysisError(
            f"no predictions of {what} '{name}' in {results}.{did_you_mean(name, known)} "
            f"Fix {option}; {what}s present: {', '.join(known)}"
        )
