"""The range-effect index: how much of a method's rank correlation survives inside narrow quality ranges.

Definition (one number per method, dataset and split)::

    REI = ( sum_r n_r * SROCC_r / sum_r n_r ) / SROCC_all

where ``r`` runs over the five ACR ranges Bad .. Excellent of the ground-truth quality
(:mod:`biqa_bench.evaluation.ranges`) that are *defined* on the test split (at least
``min_items`` items, truth and predictions not constant), ``n_r`` is the number of test items in
range ``r``, ``SROCC_r`` the SROCC on those items and ``SROCC_all`` the SROCC on the whole test
split. REQA observes that correlations collapse inside narrow ranges; it names a single statistic
for this as future work. This is ours.

Reading it: 1 means the method ranks images inside each quality range as well as over the whole
scale; 0 that inside a range its ranking is no better than chance (it only separates the
ranges); negative values that it ranks backwards inside ranges. Because a range holds a narrow
slice of quality, even a good method usually scores well below 1 (the spread of the truth
inside a range is small compared with the noise of the labels); compare methods on one dataset,
not figures across datasets. The index is undefined (NaN) when no range is defined or the
overall SROCC is not positive (a ratio to a correlation at or below 0 means nothing).

Intervals: over splits, the t-interval of the per-split indices
(:func:`biqa_bench.evaluation.intervals.t_interval`); per run, the BCa bootstrap over test items
(:func:`range_effect_bootstrap`, :func:`scipy.stats.bootstrap`, seeded), which resamples the
whole test split and recomputes every range's SROCC and the overall SROCC on each resample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .intervals import CONFIDENCE, Interval, average_ranks, pearson_last_axis, scipy_bootstrap, t_interval
from .ranges import GROUP_KEYS, RANGE_EDGES, RANGE_NAMES, acr_class, check_predictions

RECORD_COLUMNS = ["method", "train_dataset", "dataset", "split", "n", "n_ranges", "srocc_all", "srocc_ranges", "rei",
                  "rei_boot_low", "rei_boot_high", "n_boot", "boot_seed"]


@dataclass(frozen=True)
class RangeEffect:
    index: float  # the range-effect index (NaN when undefined)
    srocc_all: float  # SROCC on the whole test split
    srocc_ranges: float  # n-weighted mean of the defined ranges' SROCC
    n_ranges: int  # defined ranges
    range_srocc: dict  # range name -> SROCC (NaN where not defined)
    range_n: dict  # range name -> items


def _masked_spearman(truth: np.ndarray, prediction: np.ndarray, mask: np.ndarray, supports) -> tuple[np.ndarray, np.ndarray]:
    """SROCC of the masked entries of each row of (..., n) arrays, and how many entries each row has.

    Ranks are among the masked entries only (ties averaged), by counting against the supports.
    """
    n = truth.shape[-1]
    rows = truth.reshape(-1, n)
    preds = prediction.reshape(-1, n)
    keep = mask.reshape(-1, n).astype(float)
    count = keep.sum(axis=1)
    ranked = []
    for values, support in ((rows, supports[0]), (preds, supports[1])):
        dense = np.searchsorted(support, values)
        k = len(support)
        index = (np.arange(len(values))[:, None] * k + dense)
        counts = np.bincount(index.ravel(), weights=keep.ravel(), minlength=len(values) * k).reshape(len(values), k)
        below = np.cumsum(counts, axis=1) - counts
        row = np.arange(len(values))[:, None]
        ranked.append(below[row, dense] + (counts[row, dense] + 1) / 2.0)
    rank_t, rank_p = ranked
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_t = (rank_t * keep).sum(axis=1, keepdims=True) / count[:, None]
        mean_p = (rank_p * keep).sum(axis=1, keepdims=True) / count[:, None]
        dt, dp = (rank_t - mean_t) * keep, (rank_p - mean_p) * keep
        rho = (dt * dp).sum(axis=1) / np.sqrt((dt * dt).sum(axis=1) * (dp * dp).sum(axis=1))
    return rho.reshape(truth.shape[:-1]), count.reshape(truth.shape[:-1])


def _index_statistic(min_items: int, supports):
    """A vectorised REI statistic over (..., n) resamples of (truth, prediction)."""

    def statistic(truth, prediction, axis=-1):
        truth = np.moveaxis(np.asarray(truth, dtype=float), axis, -1)
        prediction = np.moveaxis(np.asarray(prediction, dtype=float), axis, -1)
        ranks_t, ranks_p = average_ranks(truth, supports[0]), average_ranks(prediction, supports[1])
        overall = pearson_last_axis(ranks_t, ranks_p)
        classes = np.searchsorted(np.asarray(RANGE_EDGES[1:-1]), truth, side="right")  # as acr_class
        weighted = np.zeros(truth.shape[:-1])
        total = np.zeros(truth.shape[:-1])
        for index in range(len(RANGE_NAMES)):
            rho, count = _masked_spearman(truth, prediction, classes == index, supports)
            defined = (count >= min_items) & np.isfinite(rho)
            weighted += np.where(defined, count * np.nan_to_num(rho), 0.0)
            total += np.where(defined, count, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_in_ranges = np.where(total > 0, weighted / np.where(total > 0, total, 1.0), np.nan)
            return np.where(overall > 0, mean_in_ranges / overall, np.nan)

    return statistic


def range_effect_index(truth, prediction, min_items: int = 10) -> RangeEffect:
    """The range-effect index of one test split (see the module docstring)."""
    from .metrics import srocc

    truth = np.asarray(truth, dtype=float)
    prediction = np.asarray(prediction, dtype=float)
    classes = acr_class(truth)
    overall = srocc(truth, prediction)
    per_range, sizes = {}, {}
    weighted = total = 0.0
    for index, name in enumerate(RANGE_NAMES):
        inside = classes == index
        sizes[name] = int(inside.sum())
        value = srocc(truth[inside], prediction[inside]) if inside.sum() >= min_items else float("nan")
        per_range[name] = value
        if np.isfinite(value):
            weighted += sizes[name] * value
            total += sizes[name]
    in_ranges = weighted / total if total else float("nan")
    index = in_ranges / overall if total and np.isfinite(overall) and overall > 0 else float("nan")
    n_ranges = int(sum(np.isfinite(v) for v in per_range.values()))
    return RangeEffect(float(index), float(overall), float(in_ranges), n_ranges, per_range, sizes)


def range_effect_bootstrap(truth, prediction, min_items: int = 10, n_boot: int = 1000, seed: int = 0,
                           confidence_level: float = CONFIDENCE) -> Interval:
    """BCa bootstrap interval of the range-effect index over the test items (seeded)."""
    truth = np.asarray(truth, dtype=float)
    prediction = np.asarray(prediction, dtype=float)
    estimate = range_effect_index(truth, prediction, min_items).index
    if len(truth) < 3 or not np.isfinite(estimate):
        return Interval(estimate, float("nan"), float("nan"), confidence_level, "BCa bootstrap", len(truth))
    statistic = _index_statistic(min_items, (np.unique(truth), np.unique(prediction)))
    batch = max(1, min(int(n_boot), 1_000_000 // max(len(truth), 1)))
    result = scipy_bootstrap((truth, prediction), statistic, n_boot, seed, confidence_level, batch=batch)
    ci = result.confidence_interval
    return Interval(estimate, float(ci.low), float(ci.high), confidence_level, "BCa bootstrap", len(truth))


def range_effect_records(predictions: pd.DataFrame, min_items: int = 10, n_boot: int = 0, seed: int = 0) -> pd.DataFrame:
    """One record per (method, train dataset, dataset, split): the index, its parts and, with
    ``n_boot`` > 0, its bootstrap interval over the test items."""
    frame = check_predictions(predictions)
    rows = []
    for keys, group in frame.groupby(GROUP_KEYS, sort=True, dropna=False):
        truth = group["quality"].to_numpy(dtype=float)
        prediction = group["prediction"].to_numpy(dtype=float)
        effect = range_effect_index(truth, prediction, min_items)
        row = dict(zip(GROUP_KEYS, keys))
        row.update(n=int(len(group)), n_ranges=effect.n_ranges, srocc_all=effect.srocc_all,
                   srocc_ranges=effect.srocc_ranges, rei=effect.index)
        if n_boot:
            interval = range_effect_bootstrap(truth, prediction, min_items, n_boot, seed)
            row.update(rei_boot_low=interval.low, rei_boot_high=interval.high, n_boot=int(n_boot), boot_seed=int(seed))
        else:
            row.update(rei_boot_low=float("nan"), rei_boot_high=float("nan"), n_boot=0, boot_seed=int(seed))
        rows.append(row)
    return pd.DataFrame(rows, columns=RECORD_COLUMNS)


def range_effect_summary(records: pd.DataFrame, confidence_level: float = CONFIDENCE) -> pd.DataFrame:
    """Per (method, train dataset, dataset): mean index over the splits where it is defined, the
    t-interval over them (or, resting on one split, that run's bootstrap interval), splits used."""
    rows = []
    for key, group in records.groupby(["method", "train_dataset", "dataset"], sort=True, dropna=False):
        defined = group[np.isfinite(group["rei"].astype(float))]
        interval = t_interval(defined["rei"], confidence_level)
        if interval.n == 1 and np.isfinite(float(defined["rei_boot_low"].iloc[0])):
            interval = Interval(interval.estimate, float(defined["rei_boot_low"].iloc[0]),
                                float(defined["rei_boot_high"].iloc[0]), confidence_level, "BCa bootstrap",
                                int(defined["n"].iloc[0]))
        rows.append({**dict(zip(["method", "train_dataset", "dataset"], key)), "n_splits": int(len(defined)),
                     "n_splits_total": int(len(group)), "rei": interval.estimate, "rei_ci_low": interval.low,
                     "rei_ci_high": interval.high, "ci_kind": interval.kind if interval.defined else "",
                     "srocc_all": float(defined["srocc_all"].mean()) if len(defined) else float("nan"),
                     "srocc_ranges": float(defined["srocc_ranges"].mean()) if len(defined) else float("nan")})
    return pd.DataFrame(rows, columns=["method", "train_dataset", "dataset", "n_splits", "n_splits_total", "rei",
                                       "rei_ci_low", "rei_ci_high", "ci_kind", "srocc_all", "srocc_ranges"])
