"""The report's parts for the analyses no other BIQA toolkit has: confidence intervals, the
range-effect index and the Krasula et al. (2016) analysis.

Each function takes the report builder of :mod:`biqa_bench.report.build` (its ``section``,
``table``, ``figure`` and ``records`` methods) and adds its section; the science is in
:mod:`biqa_bench.evaluation.intervals`, :mod:`~biqa_bench.evaluation.range_effect` and
:mod:`~biqa_bench.evaluation.krasula`.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from ..errors import AnalysisError
from ..evaluation.intervals import records_with_intervals
from ..store import is_whole, split_order
from . import figures as F
from . import tables as T
from .latex import file_stem

# --------------------------------------------------------------------------- range-effect index


def range_effect_table(summary: pd.DataFrame, decimals: int = 3, ci: bool = True, name: str = "range_effect") -> T.Table:
    """Methods x datasets: the range-effect index (mean over splits) with its 95 % interval."""
    frame = summary[summary["train_dataset"].fillna(summary["dataset"]) == summary["dataset"]]
    datasets = sorted(frame["dataset"].unique(), key=str)
    methods = sorted(frame["method"].unique(), key=str)
    columns = pd.MultiIndex.from_tuples([(str(d), "REI") for d in datasets])
    grid = {key: pd.DataFrame(np.nan, index=pd.Index(methods, name="method"), columns=columns)
            for key in ("rei", "rei_ci_low", "rei_ci_high")}
    partial = pd.DataFrame(False, index=grid["rei"].index, columns=columns)
    for row in frame.itertuples(index=False):
        for key in grid:
            grid[key].loc[row.method, (str(row.dataset), "REI")] = getattr(row, key)
        partial.loc[row.method, (str(row.dataset), "REI")] = 0 < row.n_splits < row.n_splits_total
    splits = sorted(set(frame["n_splits_total"].astype(int))) if len(frame) else [0]
    caption = (
        "Range-effect index: the n-weighted mean of the SROCC inside the five ACR ranges (those with enough items) "
        "divided by the SROCC on the whole test split; 1 means no rank correlation is lost inside the ranges, 0 that "
        "the method only tells the ranges apart. Mean over "
        + (f"{splits[0]} splits" if len(splits) == 1 else f"{splits[0]}-{splits[-1]} splits")
        + ". Best in bold, second underlined."
    )
    table = T.Table(name, "Range-effect index", caption, grid["rei"], {c: "higher" for c in columns}, decimals,
                    partial=partial)
    if ci:
        table.low, table.high = grid["rei_ci_low"], grid["rei_ci_high"]
        table.caption += (" After each figure its 95 % interval: the t-interval over splits (\u00b1), or the BCa "
                          "bootstrap over test images for a figure resting on one run.")
    return table


def range_effect_section(b, test: pd.DataFrame, min_items: int, ci: bool, n_boot: int, seed: int,
                         every_run: bool = False) -> None:
    """The range-effect index: records, table and figure (see :mod:`biqa_bench.evaluation.range_effect`)."""
    from ..evaluation.range_effect import range_effect_records, range_effect_summary

    records = records_with_intervals(range_effect_records, test, n_boot if ci else 0, seed, every_run,
                                     min_items=min_items)
    summary = range_effect_summary(records)
    b.records("range_effect", records)
    if not np.isfinite(summary["rei"].astype(float)).any():
        b.skipped["range-effect index"] = f"no test split has an ACR range with {min_items} or more items"
        return
    section = b.section(
        "Range-effect index",
        "How much of a method's rank correlation survives inside narrow quality ranges: the n-weighted mean of its "
        f"SROCC in the ACR ranges that hold at least {min_items} test items, divided by its SROCC on the whole test "
        "split (1: nothing lost; 0: it only separates the ranges). Undefined where no range is defined or the "
        "overall SROCC is not positive.",
    )
    b.table(section, range_effect_table(summary, b.decimals, ci))
    b.figure(section, F.range_effect_figure(summary), "range_effect",
             "Range-effect index per dataset and method (mean over splits); error bars: 95 % interval"
             + (" (t over splits, or the bootstrap for a one-run figure)." if ci else " where computed (biqa report --ci).")
             + " Dashed line: 1, no correlation lost inside the ranges.")


# --------------------------------------------------------------------------- Krasula


def krasula_table(records: pd.DataFrame, dataset: str, decimals: int = 3, name: str | None = None) -> T.Table:
    """Methods x (AUC different/similar, AUC better/worse, share correct) on one dataset, mean
    over splits with the t-interval over them. The records' percent correct is shown as a share
    (0-1) so that it takes the table's decimals like the AUCs."""
    from ..evaluation.intervals import t_interval

    frame = records[records["dataset"] == dataset]
    methods = sorted(frame["method"].unique(), key=str)
    labels = {"auc_ds": ("AUC", "different/similar"), "auc_bw": ("AUC", "better/worse"),
              "percent_correct": ("", "share correct")}
    columns = pd.MultiIndex.from_tuples(list(labels.values()))
    index = pd.Index(methods, name="method")
    values, low, high = (pd.DataFrame(np.nan, index=index, columns=columns) for _ in range(3))
    for method in methods:
        for key, column in labels.items():
            scale = 0.01 if key == "percent_correct" else 1.0
            interval = t_interval(scale * frame.loc[frame["method"] == method, key].astype(float))
            values.loc[method, column] = interval.estimate
            low.loc[method, column], high.loc[method, column] = interval.low, interval.high
    splits = frame["split"].nunique()
    pairs = frame.groupby("split")[["n_different", "n_similar"]].first().mean()
    caption = (
        f"Krasula et al. (2016) analysis on {dataset}: pairs of test images are different when Welch's t-test on "
        f"their MOS (from MOS, std and number of ratings) rejects equality at alpha = {frame['alpha'].iloc[0]:g}, "
        f"else similar (per split about {pairs['n_different']:.0f} different and {pairs['n_similar']:.0f} similar "
        "pairs). AUC of the absolute score difference for different vs similar pairs, of the signed difference for "
        "better vs worse (different pairs both ways round), and the share (0-1) of different pairs ordered correctly. "
        f"Mean over {splits} split{'s' if splits != 1 else ''}"
        + (" with the 95 % t-interval over them (\u00b1)" if splits > 1 else "")
        + ". Best in bold, second underlined."
    )
    table = T.Table(name or f"krasula_{dataset}", f"Krasula analysis on {dataset}", caption, values,
                    {c: "higher" for c in columns}, decimals)
    table.low, table.high = low, high
    return table


def krasula_section(b, test: pd.DataFrame, infos: Mapping, alpha: float = 0.05) -> None:
    """Per dataset with std and counts: the Krasula table, DeLong's significance matrices and the
    ROC figure of the lowest split; datasets without them are listed with the reason."""
    from ..evaluation.krasula import krasula_records, krasula_test_set

    if test["method"].nunique() < 1:
        return
    records, reasons = krasula_records(test, alpha=alpha, infos=infos)
    for dataset, reason in reasons.items():
        b.skipped[f"Krasula analysis on {dataset}"] = reason
    if records.empty:
        return
    b.records("krasula", records)
    section = b.section(
        "Krasula analysis",
        "Following Krasula et al. (QoMEX 2016): can a method's score differences tell which pairs of test images "
        "observers rated significantly differently, and which of the two is better? Significance of AUC differences: "
        "DeLong's test for correlated ROC curves on the pairs of the lowest split (two-sided; pairs share images, so "
        "the test is somewhat optimistic). On the embedded sets the six full-reference metrics behind the pseudo-MOS "
        "act as the raters (std over them, 6 ratings).",
    )
    for dataset in sorted(records["dataset"].unique(), key=str):
        b.table(section, krasula_table(records, dataset, b.decimals))
        split = min(records.loc[records["dataset"] == dataset, "split"], key=split_order)
        label = "whole dataset" if is_whole(split) else f"split {split}"
        info = infos.get(dataset) if infos else None
        try:
            result = krasula_test_set(test, dataset, split, alpha, True if info is None else bool(info.higher_is_better))
        except AnalysisError as exc:
            b.skipped[f"Krasula significance on {dataset}"] = str(exc)
            continue
        if len(result.methods) >= 2:
            for analysis, decision, pvalue in (("different/similar", result.decision_ds, result.pvalue_ds),
                                               ("better/worse", result.decision_bw, result.pvalue_bw)):
                key = "ds" if analysis.startswith("different") else "bw"
                caption = (
                    f"DeLong's test of AUC ({analysis}) differences on {dataset}, {label} ({result.n_items} images): "
                    f"1 / 0 / {T.DASH}1 means the row method's AUC is significantly larger than / indistinguishable "
                    f"from / smaller than the column method's (alpha = {alpha:g}, two-sided, no correction for "
                    "multiple comparisons)."
                )
                b.table(section, T.significance_table(decision, dataset=dataset, name=f"krasula_delong_{key}_{dataset}",
                                                      caption=caption, title=f"DeLong, AUC {analysis}, {dataset}"))
                b.records(f"krasula_delong_{key}_pvalues_{file_stem(dataset)}", pvalue.reset_index(names="method"))
        b.figure(section, F.krasula_roc_figure(result, f"Krasula analysis on {dataset}, {label}"),
                 f"krasula_roc_{dataset}",
                 f"ROC curves of the Krasula analysis on {dataset} ({label}): left, different vs similar pairs "
                 "by the absolute score difference; right, better vs worse by the signed difference.")
