"""Publication tables: one :class:`Table` model, its builders and its renderers.

A :class:`Table` holds the numbers (rows = methods, columns = a two-level index of
``(group, label)``, e.g. ``("CLIVE", "SROCC")``), which columns are better high or low, and
the number of decimals. Builders turn tidy evaluation records into the layouts of the papers:

* :func:`overall_table`      -- SROCC/PLCC per dataset + size-weighted average (REQA Table II,
  IEIT Table III, QAMT Tables 1-2);
* :func:`ranges_table`       -- SROCC and PLCC in the five ACR ranges (REQA Table I);
* :func:`low_quality_table`  -- the low-quality subset per dataset (IEIT Table II);
* :func:`cross_table`        -- train -> test pairs as columns (IEIT Table IV, QAMT Table 3);
* :func:`cross_pairs_table`  -- the same with pairs as rows, methods across (REQA Table IV);
* :func:`significance_table` -- the 1 / 0 / -1 matrix (REQA Table III).

Renderers: :func:`to_latex` (booktabs), :func:`to_markdown`, :func:`to_csv`.

Marking rule. Per column (per row and column group in REQA Table IV's layout), values are compared as printed (rounded to ``decimals``); a value's
rank is 1 + the number of values strictly better, so ties share a rank: rank 1 is bold, rank 2
underlined. Two methods tied for best are both bold and no value is underlined (nobody is
second with one method ahead of it and one level with it). Columns with fewer than two defined
values are not marked, and with exactly two only the best is (second would mean last). Undefined values (NaN) print as an en dash.
A value with a dagger (below) does not compete: a mean over fewer splits is not comparable with
the others.

Splits. Each value is the mean (or median) over the splits on which it is defined; a value
resting on fewer splits than were run carries a dagger, and a note under the table says what
the mark means and, per value, how many splits entered it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..store import atomic_write_text, is_whole
from .latex import file_stem, latex_escape

METRIC_LABELS = {"srocc": "SROCC", "krocc": "KROCC", "plcc": "PLCC", "plcc_raw": "PLCC (raw)", "rmse": "RMSE"}
HIGHER_BETTER = {"srocc", "krocc", "plcc", "plcc_raw"}
LOWER_BETTER = {"rmse"}
RANGE_ORDER = ["Excellent", "Good", "Fair", "Poor", "Bad"]  # REQA Table I's column order
AGGREGATES = ("mean", "median")
WEIGHTED = "Weighted avg."
DASH = "\u2013"
DAGGER = "\u2020"


def metric_direction(metric: str) -> str | None:
    if metric in HIGHER_BETTER:
        return "higher"
    if metric in LOWER_BETTER:
        return "lower"
    return None


@dataclass
class Table:
    """A table of numbers with its layout. ``values`` has a 2-level column index (group, label)."""

    name: str  # file stem, e.g. "overall"
    title: str  # short heading for the report section
    caption: str  # plain text; renderers escape it
    values: pd.DataFrame
    better: dict = field(default_factory=dict)  # column -> "higher" | "lower" | None
    decimals: int = 3
    row_header: str = "Method"
    partial: pd.DataFrame | None = None  # True where a value rests on fewer splits than were run
    integer: bool = False  # print as integers (the significance matrix)
    highlight: bool = True
    # Which cells compete for bold/underline: "column" (each column, the methods down it) or
    # "row-group" (within each row, the columns of one group: methods across, REQA Table IV).
    compare: str = "column"
    # Where a dagger is set, which mean rests on how many splits ("psnr on toy, PLCC: 1 of 2 splits").
    split_notes: list[str] = field(default_factory=list)
    # 95 % interval bounds per cell (same shape as values), set by the builders' ci=True
    low: pd.DataFrame | None = None
    high: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        self.name = file_stem(self.name)
        if not isinstance(self.values.columns, pd.MultiIndex):
            self.values = self.values.copy()
            self.values.columns = pd.MultiIndex.from_tuples([("", str(c)) for c in self.values.columns])
        if self.partial is not None:
            self.partial = self.partial.reindex(index=self.values.index, columns=self.values.columns).fillna(False).astype(bool)

    def rounded(self) -> pd.DataFrame:
        return self.values.astype(float).round(0 if self.integer else self.decimals)

    def ranks(self) -> pd.DataFrame:
        """Per cell: 1 (best), 2 (second best) or 0 (not marked); see the module docstring."""
        rounded = self.rounded()
        ranks = pd.DataFrame(0, index=rounded.index, columns=rounded.columns)
        if not self.highlight:
            return ranks
        if self.compare == "column":
            contests = [(list(range(len(rounded))), [c]) for c in range(len(rounded.columns))]
        elif self.compare == "row-group":
            groups: dict[str, list[int]] = {}
            for c, (group, _) in enumerate(rounded.columns):
                groups.setdefault(group, []).append(c)
            contests = [([r], cols) for r in range(len(rounded)) for cols in groups.values()]
        else:
            raise ValueError(f"compare must be 'column' or 'row-group', not {self.compare!r}")
        for rows, cols in contests:
            direction = self.better.get(rounded.columns[cols[0]])
            if direction not in ("higher", "lower"):
                continue
            values = rounded.iloc[rows, cols].to_numpy(dtype=float).ravel()
            defined = ~np.isnan(values)
            if self.partial is not None:  # a mean over fewer splits is not comparable: it does not compete
                defined &= ~self.partial.iloc[rows, cols].to_numpy(dtype=bool).ravel()
            if defined.sum() < 2:
                continue
            signed = values if direction == "higher" else -values
            # with two values "second" would just mean "last": underline only from three on
            worst_marked = 2 if defined.sum() >= 3 else 1
            cells = [(r, c) for r in rows for c in cols]
            for i in np.flatnonzero(defined):
                rank = 1 + int(np.sum(signed[defined] > signed[i]))
                if rank <= worst_marked:
                    ranks.iat[cells[i]] = rank
        return ranks

    def is_partial(self, row: int, col: int) -> bool:
        return bool(self.partial is not None and self.partial.iloc[row, col])

    def format_number(self, value: float) -> str:
        """The number as printed, or None for an undefined value."""
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return None
        if self.integer:
            return f"{int(round(value))}"
        return f"{value:.{self.decimals}f}"

    @property
    def has_groups(self) -> bool:
        return any(group for group, _ in self.values.columns)


# --------------------------------------------------------------------------- aggregation


def _with_status(records: pd.DataFrame, metrics) -> pd.DataFrame:
    frame = records.copy()
    if "train_dataset" not in frame.columns:
        frame["train_dataset"] = frame["dataset"]
    frame["train_dataset"] = frame["train_dataset"].fillna(frame["dataset"])
    if "status" in frame.columns:
        undefined = frame["status"].astype(str) == "undefined"
        frame.loc[undefined, list(metrics)] = np.nan
    return frame


def summarise(records: pd.DataFrame, keys, metrics, aggregate: str = "mean", bound: str | None = None) -> pd.DataFrame:
    """Aggregate per-split records over splits.

    Returns one row per ``keys`` with, for each metric, the aggregate over the splits where
    it is defined, ``<metric>_splits`` (how many), plus ``n`` (mean items per split) and
    ``n_splits`` (splits run). With ``bound='low'`` or ``'high'`` each metric holds that bound
    of the cell's 95 % interval instead (:func:`biqa_bench.evaluation.intervals.cell_interval`:
    the t-interval of the mean over splits, or the one run's bootstrap interval).
    """
    if aggregate not in AGGREGATES:
        from ..errors import BiqaError

        raise BiqaError(f"aggregate must be one of {AGGREGATES}, not '{aggregate}'")
    frame = _with_status(records, metrics)
    rows = []
    for key, group in frame.groupby(list(keys), sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(keys, key))
        row["n"] = float(group["n"].mean()) if "n" in group else float("nan")
        row["n_splits"] = int(group["split"].nunique()) if "split" in group else len(group)
        for metric in metrics:
            values = group[metric].astype(float).dropna()
            row[metric] = float(getattr(values, aggregate)()) if len(values) else float("nan")
            row[f"{metric}_splits"] = int(len(values))
            if bound is not None:
                row[metric] = getattr(_cell_interval(group, metric), bound)
        rows.append(row)
    columns = list(keys) + ["n", "n_splits"] + [c for m in metrics for c in (m, f"{m}_splits")]
    return pd.DataFrame(rows, columns=columns)


def _cell_interval(group: pd.DataFrame, metric: str):
    from ..evaluation.intervals import Interval, cell_interval, clip_to_metric

    defined = group[group[metric].notna()]
    run = None
    low, high = f"{metric}_boot_low", f"{metric}_boot_high"
    if len(defined) == 1 and low in defined.columns and pd.notna(defined[low].iloc[0]):
        run = Interval(float(defined[metric].iloc[0]), float(defined[low].iloc[0]), float(defined[high].iloc[0]),
                       0.95, "BCa bootstrap", int(defined["n"].iloc[0]) if "n" in defined else 0)
    return clip_to_metric(cell_interval(defined[metric].astype(float), run), metric)


def with_intervals(table: Table, build) -> Table:
    """``table`` with its cells' interval bounds: ``build(bound)`` makes the same table from the
    lower / upper bounds (weighted averages then average the bounds: as if the datasets' errors
    were perfectly correlated, so their interval is, if anything, too wide)."""
    table.low = build("low").values.reindex(index=table.values.index, columns=table.values.columns)
    table.high = build("high").values.reindex(index=table.values.index, columns=table.values.columns)
    table.caption += (" After each figure its 95 % interval: the t-interval of the mean over splits (\u00b1), or the "
                      "BCa bootstrap over test images where a figure rests on one run; [low, high] where the interval "
                      "is not symmetric (a bootstrap, or a correlation's interval clipped at 1).")
    return table


def _split_phrase(summary: pd.DataFrame, aggregate: str) -> str:
    counts = sorted(set(int(c) for c in summary["n_splits"])) if len(summary) else [0]
    if len(counts) == 1:
        how = f"{counts[0]} split" + ("s" if counts[0] != 1 else "")
    else:
        how = f"{counts[0]}-{counts[-1]} splits"
    return f"{aggregate.capitalize()} over {how}."


def _whole_phrase(frame: pd.DataFrame) -> str:
    """The caption's label of whole-dataset runs (split 'whole'): one figure on every labelled
    item, not an aggregate over test splits."""
    if "split" not in frame.columns:
        return ""
    whole = frame[frame["split"].map(is_whole).astype(bool)]
    if whole.empty:
        return ""
    pairs = "; ".join(
        f"{', '.join(sorted(set(group['method']), key=str))} on {dataset}"
        for dataset, group in whole.groupby("dataset", sort=True)
    )
    return f" Whole-dataset runs (every labelled item, no split; one figure each): {pairs}."


def _pivot(summary: pd.DataFrame, row_key: str, group_key: str, metrics, groups, labels=None):
    """values/partial DataFrames with columns (group, metric label) in the given group order."""
    rows = sorted(summary[row_key].unique(), key=str)
    columns, better = [], {}
    values = {}
    partial = {}
    indexed = summary.set_index([row_key, group_key])
    for group in groups:
        for metric in metrics:
            column = (str(group), (labels or METRIC_LABELS).get(metric, metric))
            columns.append(column)
            better[column] = metric_direction(metric)
            col_values, col_partial = [], []
            for row in rows:
                if (row, group) in indexed.index:
                    entry = indexed.loc[(row, group)]
                    col_values.append(float(entry[metric]))
                    col_partial.append(bool(0 < entry[f"{metric}_splits"] < entry["n_splits"]))
                else:
                    col_values.append(float("nan"))
                    col_partial.append(False)
            values[column] = col_values
            partial[column] = col_partial
    index = pd.Index(rows, name=row_key)
    mi = pd.MultiIndex.from_tuples(columns)
    values_frame = pd.DataFrame(values, index=index)[columns]
    values_frame.columns = mi
    partial_frame = pd.DataFrame(partial, index=index)[columns]
    partial_frame.columns = mi
    return values_frame, partial_frame, better


def split_notes(summary: pd.DataFrame, row_key: str, group_key: str | None, metrics, joiner: str = " on ") -> list[str]:
    """One note per value of a summary that rests on fewer splits than were run:
    "<row> on <group>, <METRIC>: k of n splits" (the dagger's explanation)."""
    notes = []
    for _, entry in summary.iterrows():
        for metric in metrics:
            entered, total = int(entry[f"{metric}_splits"]), int(entry["n_splits"])
            if 0 < entered < total:
                where = f"{entry[row_key]}{joiner}{entry[group_key]}" if group_key else str(entry[row_key])
                notes.append(f"{where}, {METRIC_LABELS.get(metric, metric)}: {entered} of {total} splits")
    return notes


def dataset_weights(summary: pd.DataFrame, dataset_key: str = "dataset") -> pd.Series:
    """Weight of each dataset: its number of test items (mean over splits and methods)."""
    return summary.groupby(dataset_key)["n"].mean()


def weighted_average(values: pd.DataFrame, weights: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Row-wise average of ``values`` (columns = datasets) weighted by ``weights``, over the
    datasets where a row is defined; the second series says where some were missing."""
    w = weights.reindex(values.columns).to_numpy(dtype=float)
    data = values.to_numpy(dtype=float)
    defined = ~np.isnan(data)
    total = np.where(defined, w, 0.0).sum(axis=1)
    sums = np.where(defined, data * w, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        average = np.where(total > 0, sums / np.where(total > 0, total, 1.0), np.nan)
    incomplete = defined.any(axis=1) & ~defined.all(axis=1)
    return pd.Series(average, index=values.index), pd.Series(incomplete, index=values.index)


def _add_weighted(values, partial, better, weights, metrics, group_name=WEIGHTED, datasets=None):
    datasets = list(datasets if datasets is not None else weights.index)
    for metric in metrics:
        label = METRIC_LABELS.get(metric, metric)
        per_dataset = pd.DataFrame({d: values[(str(d), label)] for d in datasets})
        w = pd.Series({d: weights[d] for d in datasets})
        average, incomplete = weighted_average(per_dataset, w)
        column = (group_name, label)
        values[column] = average
        partial[column] = incomplete | pd.DataFrame({d: partial[(str(d), label)] for d in datasets}).any(axis=1)
        better[column] = metric_direction(metric)
    return values, partial, better


# --------------------------------------------------------------------------- builders


def overall_table(
    records: pd.DataFrame,
    metrics=("srocc", "plcc"),
    aggregate: str = "mean",
    decimals: int = 3,
    name: str = "overall",
    ci: bool = False,
    bound: str | None = None,
) -> Table:
    """Methods x (dataset, metric) on the whole test splits, with a size-weighted average.

    ``records``: evaluation records (RECORD_FIELDS); rows whose ``subset`` is not ``'test'``
    are ignored when a ``subset`` column is present. Cross-dataset rows (``train_dataset``
    differing from ``dataset``) are ignored too.
    """
    frame = records
    if "subset" in frame.columns:
        frame = frame[frame["subset"].astype(str) == "test"]
    frame = _with_status(frame, metrics)
    frame = frame[frame["train_dataset"] == frame["dataset"]]
    summary = summarise(frame, ["method", "dataset"], metrics, aggregate, bound)
    datasets = sorted(summary["dataset"].unique(), key=str)
    values, partial, better = _pivot(summary, "method", "dataset", metrics, datasets)
    weights = dataset_weights(summary)
    weighted_note = ""
    if len(datasets) > 1:
        values, partial, better = _add_weighted(values, partial, better, weights, metrics, datasets=datasets)
        sizes = ", ".join(f"{d} {weights[d]:.0f}" for d in datasets)
        weighted_note = (
            f" The weighted average weights each dataset by its number of test items ({sizes}), "
            "over the datasets where the method has a value."
        )
    labels = " and ".join(METRIC_LABELS.get(m, m) for m in metrics)
    notes = []
    if "plcc" in metrics:
        notes.append("PLCC after the 4-parameter logistic mapping")
    if "rmse" in metrics:
        notes.append("RMSE in quality points on the 0-100 scale, after the logistic mapping")
    note = f" ({'; '.join(notes)})" if notes else ""
    caption = (
        f"{labels} on the test splits of each dataset{note}. "
        f"{_split_phrase(summary, aggregate)}{_whole_phrase(frame)}{weighted_note} Best in bold, second underlined."
    )
    title = "Overall performance" if metrics != ("rmse",) and list(metrics) != ["rmse"] else "Overall RMSE"
    table = Table(name, title, caption, values, better, decimals, partial=partial,
                  split_notes=split_notes(summary, "method", "dataset", metrics))
    if ci:
        table = with_intervals(table, lambda b: overall_table(records, metrics, aggregate, decimals, name, bound=b))
    return table


def ranges_table(
    records: pd.DataFrame,
    dataset: str,
    metrics=("srocc", "plcc"),
    aggregate: str = "mean",
    decimals: int = 3,
    name: str | None = None,
    ci: bool = False,
    bound: str | None = None,
) -> Table:
    """Methods x (metric, ACR range) on one dataset (REQA Table I), from range records."""
    frame = records[records["dataset"] == dataset]
    frame = _with_status(frame, metrics)
    frame = frame[(frame["train_dataset"] == frame["dataset"]) & frame["subset"].isin(RANGE_ORDER)]
    summary = summarise(frame, ["method", "subset"], metrics, aggregate, bound)
    ranges = [r for r in RANGE_ORDER if r in set(summary["subset"])]
    columns_values, columns_partial, better = [], [], {}
    for metric in metrics:
        v, p, b = _pivot(summary, "method", "subset", [metric], ranges)
        label = METRIC_LABELS.get(metric, metric)
        v.columns = pd.MultiIndex.from_tuples([(label, r) for r, _ in v.columns])
        p.columns = v.columns
        better.update({(label, r): metric_direction(metric) for r in ranges})
        columns_values.append(v)
        columns_partial.append(p)
    values = pd.concat(columns_values, axis=1)
    partial = pd.concat(columns_partial, axis=1)
    sizes = summary.groupby("subset")["n"].mean()
    size_text = ", ".join(f"{r} {sizes[r]:.0f}" for r in ranges)
    caption = (
        f"{' and '.join(METRIC_LABELS[m] for m in metrics)} in the five ACR quality ranges on {dataset} "
        f"(items per range and split: {size_text}). PLCC uses the logistic fitted on the whole test split. "
        f"{_split_phrase(summary, aggregate)}{_whole_phrase(frame)} {DASH}: not defined (too few items or constant scores). "
        "Best in bold, second underlined."
    )
    table = Table(name or f"ranges_{dataset}", f"Five quality ranges on {dataset}", caption, values, better,
                  decimals, partial=partial, split_notes=split_notes(summary, "method", "subset", metrics, ", "))
    if ci:
        table = with_intervals(table, lambda b: ranges_table(records, dataset, metrics, aggregate, decimals, name, bound=b))
    return table


def low_quality_table(
    records: pd.DataFrame,
    metrics=("srocc", "plcc"),
    aggregate: str = "mean",
    decimals: int = 3,
    definition: str = "quality below 25 on the 0-100 scale, the lowest quarter of the nominal score range",
    name: str = "low_quality",
    ci: bool = False,
    bound: str | None = None,
) -> Table:
    """Methods x (dataset, metric) on the low-quality subset, with a weighted average (IEIT Table II)."""
    frame = _with_status(records, metrics)
    frame = frame[(frame["subset"] == "low_quality") & (frame["train_dataset"] == frame["dataset"])]
    summary = summarise(frame, ["method", "dataset"], metrics, aggregate, bound)
    datasets = sorted(summary["dataset"].unique(), key=str)
    values, partial, better = _pivot(summary, "method", "dataset", metrics, datasets)
    weights = dataset_weights(summary)
    weighted_note = ""
    if len(datasets) > 1:
        values, partial, better = _add_weighted(values, partial, better, weights, metrics, datasets=datasets)
        weighted_note = " The weighted average weights each dataset by its number of low-quality test items."
    sizes = ", ".join(f"{d} {weights[d]:.0f}" for d in datasets)
    caption = (
        f"{' and '.join(METRIC_LABELS[m] for m in metrics)} on the low-quality test items: {definition} "
        f"(items per split: {sizes}). PLCC uses the logistic fitted on the whole test split. "
        f"{_split_phrase(summary, aggregate)}{_whole_phrase(frame)}{weighted_note} {DASH}: not defined. Best in bold, second underlined."
    )
    table = Table(name, "Low-quality images", caption, values, better, decimals, partial=partial,
                  split_notes=split_notes(summary, "method", "dataset", metrics))
    if ci:
        table = with_intervals(table, lambda b: low_quality_table(records, metrics, aggregate, decimals, definition, name,
                                                                  bound=b))
    return table


def _cross_records(records: pd.DataFrame, metrics) -> pd.DataFrame:
    """The cross-dataset records (train_dataset != dataset) with a ``pair`` label "train \u2192 test"."""
    frame = _with_status(records, metrics)
    if "subset" in frame.columns:
        frame = frame[frame["subset"].isin(["test", "all"]) | frame["subset"].isna()]
    frame = frame[frame["train_dataset"] != frame["dataset"]].copy()
    frame["pair"] = frame["train_dataset"].astype(str) + " \u2192 " + frame["dataset"].astype(str)
    return frame


def cross_table(
    records: pd.DataFrame,
    metrics=("srocc", "plcc"),
    aggregate: str = "mean",
    decimals: int = 3,
    name: str = "cross",
    ci: bool = False,
    bound: str | None = None,
) -> Table:
    """Methods x (train -> test, metric) for cross-dataset records (train_dataset != dataset).

    Per training set with two or more test sets, a size-weighted average over its test sets
    follows its columns (IEIT Table IV).
    """
    frame = _cross_records(records, metrics)
    summary = summarise(frame, ["method", "train_dataset", "dataset", "pair"], metrics, aggregate, bound)
    weights = summary.groupby("dataset")["n"].mean()
    parts_v, parts_p, better = [], [], {}
    for train in sorted(summary["train_dataset"].unique(), key=str):
        sub = summary[summary["train_dataset"] == train]
        pairs = sorted(sub["pair"].unique(), key=str)
        v, p, b = _pivot(summary.drop(columns=["train_dataset", "dataset"]), "method", "pair", metrics, pairs)
        better.update(b)
        if len(pairs) > 1:
            tests = [pair.split(" \u2192 ", 1)[1] for pair in pairs]
            for metric in metrics:
                label = METRIC_LABELS.get(metric, metric)
                per = pd.DataFrame({t: v[(pair, label)] for t, pair in zip(tests, pairs)})
                average, incomplete = weighted_average(per, weights.reindex(tests))
                column = (f"{train} \u2192 {WEIGHTED.lower()}", label)
                v[column] = average
                p[column] = incomplete | pd.DataFrame({t: p[(pair, label)] for t, pair in zip(tests, pairs)}).any(axis=1)
                better[column] = metric_direction(metric)
        parts_v.append(v)
        parts_p.append(p)
    has_average = any(group.endswith(WEIGHTED.lower()) for v in parts_v for group, _ in v.columns)
    values = pd.concat(parts_v, axis=1) if parts_v else pd.DataFrame()
    partial = pd.concat(parts_p, axis=1) if parts_p else None
    if len(values):
        methods = sorted(summary["method"].unique(), key=str)
        values = values.reindex(methods)
        partial = partial.reindex(methods).fillna(False).astype(bool)
    caption = (
        f"Cross-dataset {' and '.join(METRIC_LABELS[m] for m in metrics)}: trained on the first dataset, "
        f"tested on every item of the second (PLCC after the logistic fitted on the test set). "
        f"{_split_phrase(summary, aggregate)}"
        f"{' Weighted averages weight each test set by its number of items.' if has_average else ''} "
        "Best in bold, second underlined."
    )
    table = Table(name, "Cross-dataset tests", caption, values, better, decimals, partial=partial,
                  split_notes=split_notes(summary, "method", "pair", metrics))
    if ci:
        table = with_intervals(table, lambda b: cross_table(records, metrics, aggregate, decimals, name, bound=b))
    return table


def cross_pairs_table(
    records: pd.DataFrame,
    metrics=("srocc", "plcc"),
    aggregate: str = "mean",
    decimals: int = 3,
    name: str = "cross_pairs",
    ci: bool = False,
    bound: str | None = None,
) -> Table:
    """REQA Table IV's layout of the cross-dataset tests: one row per (training, testing) pair,
    the methods across, one column group per metric; the best method of each pair and metric is
    bold, the second underlined."""
    frame = _cross_records(records, metrics)
    summary = summarise(frame, ["method", "pair"], metrics, aggregate, bound)
    methods = sorted(summary["method"].unique(), key=str)
    values, partial, better = _pivot(summary, "pair", "method", metrics, methods)
    order = [(METRIC_LABELS.get(m, m), method) for m in metrics for method in methods]
    swap = lambda frame: frame.set_axis(frame.columns.swaplevel(), axis=1)[order]  # noqa: E731
    values, partial = swap(values), swap(partial)
    better = {(label, method): direction for (method, label), direction in better.items()}
    caption = (
        f"Cross-dataset {' and '.join(METRIC_LABELS[m] for m in metrics)} by training {DASH} testing pair "
        f"(REQA Table IV's layout): trained on all of the first dataset, tested on every item of the second "
        f"(PLCC after the logistic fitted on the test set). {_split_phrase(summary, aggregate)} "
        "Per pair and metric, the best method in bold, the second underlined."
    )
    table = Table(name, "Cross-dataset tests by pair", caption, values, better, decimals,
                  row_header="Training \u2192 testing", partial=partial, compare="row-group",
                  split_notes=split_notes(summary, "method", "pair", metrics))
    if ci:
        table = with_intervals(table, lambda b: cross_pairs_table(records, metrics, aggregate, decimals, name, bound=b))
    return table


def significance_table(
    matrix: pd.DataFrame,
    metric: str = "srocc",
    dataset: str | None = None,
    test: str = "paired t-test",
    alpha: float = 0.05,
    name: str | None = None,
    caption: str | None = None,
    title: str | None = None,
) -> Table:
    """The 1 / 0 / -1 matrix: row statistically better than / indistinguishable from / worse
    than column (REQA Table III). ``matrix`` is indexed and columned by method. ``caption`` and
    ``title`` replace the per-split wording (e.g. for the per-image F-test)."""
    values = matrix.astype(float).copy()
    values.index = pd.Index([str(i) for i in values.index], name="method")
    values.columns = pd.MultiIndex.from_tuples([("", str(c)) for c in matrix.columns])
    where = f" on {dataset}" if dataset else ""
    caption = caption or (
        f"Statistical significance of the per-split {METRIC_LABELS.get(metric, metric)}{where} "
        f"({test}, alpha = {alpha:g}): 1 / 0 / {DASH}1 means the row method is statistically better than / "
        "indistinguishable from / worse than the column method."
    )
    stem = name or ("significance" + (f"_{dataset}" if dataset else ""))
    return Table(stem, title or f"{METRIC_LABELS.get(metric, metric)} significance{where}", caption, values, {}, 0, integer=True, highlight=False)


# --------------------------------------------------------------------------- renderers


def _latex_number(text: str) -> str:
    return text.replace("-", "$-$", 1) if text.startswith("-") else text


def _cell(table: Table, r: int, c: int, ranks: pd.DataFrame, style: str) -> str:
    text = table.format_number(table.values.iat[r, c])
    if text is None:
        return "--" if style == "latex" else DASH
    rank = ranks.iat[r, c]
    if style == "latex":
        text = _latex_number(text)
        if rank == 1:
            text = f"\\textbf{{{text}}}"
        elif rank == 2:
            text = f"\\underline{{{text}}}"
        if table.is_partial(r, c):
            text += "$^{\\dagger}$"
        interval = interval_text(table, r, c)
        if interval:
            text += f" {{\\scriptsize {latex_escape(interval)}}}"
    else:
        if rank == 1:
            text = f"**{text}**"
        elif rank == 2:
            text = f"<ins>{text}</ins>"
        if table.is_partial(r, c):
            text += DAGGER
        interval = interval_text(table, r, c)
        if interval:
            text += f" {interval}"
    return text


def interval_text(table: Table, r: int, c: int) -> str:
    """A cell's interval as printed: '±0.008' when symmetric at the table's decimals (the
    t-interval), '[0.891, 0.925]' otherwise (a bootstrap); '' when there is none."""
    if table.low is None or table.high is None:
        return ""
    from ..evaluation.intervals import format_interval

    value, low, high = (float(frame.iat[r, c]) for frame in (table.values, table.low, table.high))
    return format_interval(value, low, high, table.decimals)


def _full_caption(table: Table, style: str) -> str:
    return latex_escape(table.caption) if style == "latex" else table.caption


def dagger_note(table: Table) -> str:
    """The note under a table that has daggers: what the mark means, and per value the splits
    its mean rests on. Empty when no value carries one."""
    if table.partial is None or not table.partial.to_numpy().any():
        return ""
    note = (f"{DAGGER} Mean over fewer splits than were run (the metric was not defined on the others)"
            + (" or, for an average, over fewer datasets" if any(WEIGHTED.lower() in str(g).lower() for g, _ in table.values.columns) else ""))
    if table.split_notes:
        note += ": " + "; ".join(table.split_notes)
    return note + "."


def to_latex(table: Table, label_prefix: str = "tab:") -> str:
    """A booktabs ``table`` environment (needs booktabs and graphicx) that shrinks to the line width."""
    ranks = table.ranks()
    columns = list(table.values.columns)
    lines = [
        "% generated by biqa report; needs \\usepackage{booktabs,graphicx}",
        "\\begin{table}[htbp]",
        "\\centering",
        f"\\caption{{{_full_caption(table, 'latex')}}}",
        f"\\label{{{label_prefix}{table.name}}}",
        "\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}{%",
        "\\begin{tabular}{l" + "c" * len(columns) + "}",
        "\\toprule",
    ]
    if table.has_groups:
        cells, rules, start = [""], [], 2
        groups: list[tuple[str, int]] = []
        for group, _ in columns:
            if groups and groups[-1][0] == group:
                groups[-1] = (group, groups[-1][1] + 1)
            else:
                groups.append((group, 1))
        for group, span in groups:
            cells.append(f"\\multicolumn{{{span}}}{{c}}{{{latex_escape(group)}}}" if span > 1 else latex_escape(group))
            if group:
                rules.append(f"\\cmidrule(lr){{{start}-{start + span - 1}}}")
            start += span
        lines.append(" & ".join(cells) + " \\\\")
        if rules:
            lines.append("".join(rules))
    header = [latex_escape(table.row_header)] + [latex_escape(label) for _, label in columns]
    lines.append(" & ".join(header) + " \\\\")
    lines.append("\\midrule")
    for r, row in enumerate(table.values.index):
        cells = [latex_escape(str(row))] + [_cell(table, r, c, ranks, "latex") for c in range(len(columns))]
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}}"]
    note = dagger_note(table)
    if note:
        lines += ["", "\\smallskip", f"\\parbox{{\\linewidth}}{{\\footnotesize {latex_escape(note)}}}"]
    lines += ["\\end{table}", ""]
    return "\n".join(lines)


def _md_escape(text: str) -> str:
    for char in ("\\", "|", "*", "_", "<", ">"):
        text = text.replace(char, "\\" + char)
    return text


def to_markdown(table: Table) -> str:
    """A GitHub Markdown table: bold best, <ins>underlined</ins> second, caption below."""
    ranks = table.ranks()
    columns = list(table.values.columns)
    header = [_md_escape(table.row_header)] + [_md_escape(f"{g} {l}".strip()) for g, l in columns]
    lines = [f"**{_md_escape(table.title)}**", "", "| " + " | ".join(header) + " |",
             "|" + "|".join([":---"] + ["---:"] * len(columns)) + "|"]
    for r, row in enumerate(table.values.index):
        cells = [_md_escape(str(row))] + [_cell(table, r, c, ranks, "markdown") for c in range(len(columns))]
        lines.append("| " + " | ".join(cells) + " |")
    note = dagger_note(table)
    lines += [""] + ([note, ""] if note else []) + [_full_caption(table, "markdown"), ""]
    return "\n".join(lines)


def to_csv(table: Table) -> str:
    """Full-precision numbers; one column per (group, label), named ``group label``; empty = undefined."""
    frame = table.values.copy()
    frame.columns = [f"{g} {l}".strip() for g, l in frame.columns]
    if table.low is not None and table.high is not None:  # each figure followed by its interval's bounds
        low, high = table.low.copy(), table.high.copy()
        low.columns = [f"{c} CI low" for c in frame.columns]
        high.columns = [f"{c} CI high" for c in frame.columns]
        order = [name for trio in zip(frame.columns, low.columns, high.columns) for name in trio]
        frame = pd.concat([frame, low, high], axis=1)[order]
    frame.index = frame.index.rename(table.row_header.lower())
    if table.integer:
        frame = frame.astype("Int64")
    return frame.to_csv()


def write_table(table: Table, out_dir: Path) -> list[Path]:
    """Write ``<name>.tex``, ``<name>.md`` and ``<name>.csv`` into ``out_dir``."""
    out_dir = Path(out_dir)
    paths = []
    for suffix, render in ((".tex", to_latex), (".md", to_markdown), (".csv", to_csv)):
        path = out_dir / f"{table.name}{suffix}"
        atomic_write_text(path, render(table))
        paths.append(path)
    return paths
