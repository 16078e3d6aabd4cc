"""Fine-grained evaluation: the five ACR ranges (REQA Table I) and the low-quality subset (IEIT Table II).

Ranges live on the 0-100 ``quality`` scale (higher is better, see the dataset registry):
Bad [0,20), Poor [20,40), Fair [40,60), Good [60,80), Excellent [80,100]. A boundary value
belongs to the range above it (quality exactly 40 is Fair), and 100 is Excellent. Quality
outside 0-100 (a score outside the nominal interval, which some databases have) is clipped
into the end ranges: below 0 counts as Bad, above 100 as Excellent.

PLCC and RMSE of a range use the predictions mapped by the logistic fitted on the WHOLE test
split of that (method, dataset, split) -- a method is not re-fitted per range, which would
flatter it on narrow ranges. RMSE is therefore in quality units (0-100). SROCC and KROCC use the
raw predictions. A range with fewer than ``min_items`` items, or whose truth or predictions are
constant, gets ``status='undefined'``, a ``reason`` and NaN metrics: never a crash.

Records follow :data:`biqa_bench.evaluation.metrics.RECORD_FIELDS` plus ``train_dataset``,
``status`` and ``reason``; ``subset`` holds the range name (or ``'low_quality'``).

If the predictions table has a ``subset`` column holding ``'test'`` rows (the runner's split
subset), only those rows are evaluated; otherwise every row is taken as a test item.
"""

from __future__ import annotations

import re
from typing import Mapping

import numpy as np
import pandas as pd

from ..datasets.registry import DatasetInfo
from ..errors import AnalysisError
from ..store import is_whole, split_value
from .intervals import boot_columns, bootstrap_columns, cell_interval, clip_to_metric
from .logistic import LogisticFit, fit_logistic
from .metrics import METRICS, RECORD_FIELDS, score_predictions

RANGE_NAMES = ["Bad", "Poor", "Fair", "Good", "Excellent"]
RANGE_EDGES = [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
LOW_QUALITY = "low_quality"
GROUP_KEYS = ["method", "train_dataset", "dataset", "split"]
OUTPUT_COLUMNS = ["method", "train_dataset"] + RECORD_FIELDS[1:] + ["status", "reason"]
OK = "ok"
UNDEFINED = "undefined"


# --------------------------------------------------------------------------- ACR classes


def quality_counts(quality) -> list[int]:
    """How many of the 0-100 qualities fall in each 1-point bin [k, k + 1) (the last one [99, 100];
    values outside are clipped, NaNs left out): the whole dataset's distribution, which run
    manifests keep so that a report can draw it (IEIT Fig. 4) where only test items are in the
    predictions. Any integer bin edges, such as the low-quality threshold 25, rebin it exactly."""
    values = np.asarray(quality, dtype=float)
    values = np.clip(values[np.isfinite(values)], 0.0, 100.0)
    counts, _ = np.histogram(values, bins=np.arange(0, 101))
    return [int(c) for c in counts]


def acr_class(quality) -> np.ndarray:
    """ACR class index 0 (Bad) .. 4 (Excellent) of quality values; out-of-range values clipped."""
    quality = np.asarray(quality, dtype=float)
    if np.isnan(quality).any():
        raise AnalysisError("acr_class: quality contains NaN; drop those items first")
    # searchsorted(side='right') puts a boundary value (e.g. 40) into the range above it.
    index = np.searchsorted(np.asarray(RANGE_EDGES[1:-1]), quality, side="right")
    return index.astype(int)


def acr_range(quality) -> np.ndarray:
    """ACR range name of each quality value (see :func:`acr_class`)."""
    return np.asarray(RANGE_NAMES, dtype=object)[acr_class(quality)]


# --------------------------------------------------------------------------- input checks


def select_test_rows(predictions: pd.DataFrame) -> pd.DataFrame:
    """The test rows of a predictions table (all rows when there is no ``'test'`` subset)."""
    if "subset" in predictions.columns and (predictions["subset"] == "test").any():
        return predictions[predictions["subset"] == "test"]
    return predictions


def check_predictions(predictions: pd.DataFrame, required=("method", "dataset", "split", "quality", "prediction")) -> pd.DataFrame:
    """Validate a predictions table: needed columns present, no NaN prediction or quality.

    Returns the test rows with ``train_dataset`` filled in (the dataset itself when absent).
    """
    missing = [c for c in required if c not in predictions.columns]
    if missing:
        raise AnalysisError(
            f"predictions table lacks columns {missing}; load it with biqa_bench.store.load_predictions"
        )
    frame = select_test_rows(predictions).copy()
    if "train_dataset" not in frame.columns:
        frame["train_dataset"] = frame["dataset"]
    for column in ("prediction", "quality"):
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = ~np.isfinite(values.to_numpy(dtype=float))
        if bad.any():
            first = frame.loc[bad].iloc[0]
            where = f"method '{first['method']}' on '{first['dataset']}' split {first['split']}"
            items = frame.loc[bad, "item_id"].head(3).tolist() if "item_id" in frame.columns else []
            raise AnalysisError(
                f"{int(bad.sum())} missing/NaN {column} values (first: {where}, items {items}); "
                "re-run that method (delete its run folder and run again) or drop those items"
            )
        frame[column] = values.astype(float)
    return frame


# --------------------------------------------------------------------------- records


def too_few_items(n: int, min_items: int) -> str:
    """The reason of a subset with too few items (one format: :func:`merge_reasons` reads it back)."""
    return f"only {n} item{'s' if n != 1 else ''}, fewer than the {min_items} needed"


_TOO_FEW = re.compile(r"^only (\d+) items?, fewer than the (\d+) needed$")


def merge_reasons(reasons) -> str:
    """One sentence for the per-split reasons of a subset not defined on any split: alike
    reasons once, with how many splits gave them; too-few-item reasons with their counts
    ("only 1-2 items in each of 5 splits, fewer than the 10 needed")."""
    reasons = [str(r) for r in reasons]
    total = len(reasons)
    too_few: dict[int, list[int]] = {}
    others: dict[str, int] = {}
    for reason in reasons:
        match = _TOO_FEW.match(reason)
        if match:
            too_few.setdefault(int(match.group(2)), []).append(int(match.group(1)))
        else:
            others[reason] = others.get(reason, 0) + 1

    def where(count: int) -> str:
        if total == 1:
            return ""
        return f" in each of the {total} splits" if count == total else f" in {count} of {total} splits"

    parts = []
    for needed, counts in sorted(too_few.items()):
        lo, hi = min(counts), max(counts)
        many = f"{lo}-{hi} items" if lo != hi else f"{lo} item{'s' if lo != 1 else ''}"
        parts.append(f"only {many}{where(len(counts))}, fewer than the {needed} needed")
    parts += [f"{reason}{where(count)}" for reason, count in sorted(others.items())]
    return "; ".join(parts)


def _status(truth: np.ndarray, prediction: np.ndarray, min_items: int) -> tuple[str, str]:
    n = len(truth)
    if n == 0:
        return UNDEFINED, "no items"
    if n < min_items:
        return UNDEFINED, too_few_items(n, min_items)
    if np.ptp(truth) == 0:
        return UNDEFINED, "ground truth is constant"
    if np.ptp(prediction) == 0:
        return UNDEFINED, "predictions are constant"
    return OK, ""


def subset_record(keys: Mapping, truth, prediction, mapping: LogisticFit, min_items: int = 10, n_boot: int = 0,
                  seed: int = 0) -> dict:
    """One record for a subset of a test split, with PLCC/RMSE under a mapping fitted elsewhere;
    ``n_boot`` > 0 adds the BCa bootstrap intervals of SROCC and PLCC over the subset's items."""
    truth = np.asarray(truth, dtype=float)
    prediction = np.asarray(prediction, dtype=float)
    status, reason = _status(truth, prediction, min_items)
    record = {k: keys.get(k) for k in OUTPUT_COLUMNS if k in keys}
    record["n"] = int(len(truth))
    if status == OK:
        scores = score_predictions(truth, prediction, mapping=mapping)
        record.update({m: getattr(scores, m) for m in METRICS})
        if not mapping.success:
            reason = f"on the whole test split {mapping.fallback_note()}"
        if n_boot:
            record.update(bootstrap_columns(truth, prediction, mapping.predict(prediction), n_boot, seed))
    else:
        record.update({m: float("nan") for m in METRICS})
    record["status"] = status
    record["reason"] = reason
    return record


def _records_frame(records: list[dict]) -> pd.DataFrame:
    extra = [c for c in boot_columns(("srocc", "plcc")) if any(c in r for r in records)]
    frame = pd.DataFrame.from_records(records, columns=OUTPUT_COLUMNS + extra)
    for metric in METRICS:
        frame[metric] = frame[metric].astype(float)
    return frame


def _split_groups(frame: pd.DataFrame):
    for keys, group in frame.groupby(GROUP_KEYS, sort=True, dropna=False):
        truth = group["quality"].to_numpy(dtype=float)
        prediction = group["prediction"].to_numpy(dtype=float)
        mapping = fit_logistic(prediction, truth)
        yield dict(zip(GROUP_KEYS, keys)), group, truth, prediction, mapping


def range_records(predictions: pd.DataFrame, min_items: int = 10, n_boot: int = 0, seed: int = 0) -> pd.DataFrame:
    """Metrics per ACR range and (method, train dataset, dataset, split); see the module docstring.
    ``n_boot`` > 0: each record's bootstrap interval too (:func:`subset_record`)."""
    frame = check_predictions(predictions)
    records = []
    for keys, _group, truth, prediction, mapping in _split_groups(frame):
        classes = acr_class(truth)
        for index, name in enumerate(RANGE_NAMES):
            in_range = classes == index
            record = subset_record({**keys, "subset": name}, truth[in_range], prediction[in_range], mapping, min_items,
                                   n_boot, seed)
            records.append(record)
    return _records_frame(records)


#: Rules that define the low-quality subset (see :func:`low_quality_mask`).
LOW_QUALITY_RULES = ("nominal", "quantile")


def check_low_quality(rule: str, fraction: float) -> None:
    """A one-line :class:`AnalysisError` for a low-quality rule or fraction that cannot be used."""
    if rule not in LOW_QUALITY_RULES:
        raise AnalysisError(f"unknown low-quality rule '{rule}'; use 'nominal' or 'quantile'")
    if not 0 < fraction < 1:
        raise AnalysisError(f"low-quality fraction must lie in (0, 1), not {fraction}")


def low_quality_mask(score, info_or_range, rule: str = "nominal", fraction: float = 0.25, higher_is_better: bool | None = None) -> np.ndarray:
    """Which items are low quality.

    ``rule='nominal'`` (IEIT's definition, the default): the score lies in the worst ``fraction``
    of the dataset's nominal score interval, honouring direction -- for a MOS in [lo, hi] that is
    ``score < lo + fraction*(hi-lo)`` (KonIQ 1-5: MOS < 2.0), for a DMOS the top of the scale,
    ``score > hi - fraction*(hi-lo)``; equivalently ``quality < 100*fraction``.
    ``rule='quantile'``: the lowest ``fraction`` of the given items by quality (ties at the
    cut-off included).

    ``info_or_range`` is a :class:`DatasetInfo` or a ``(lo, hi)`` tuple; with a tuple,
    ``higher_is_better`` (default True) gives the direction.
    """
    if isinstance(info_or_range, DatasetInfo):
        lo, hi = info_or_range.score_range
        direction = info_or_range.higher_is_better if higher_is_better is None else higher_is_better
    else:
        lo, hi = (float(v) for v in info_or_range)
        direction = True if higher_is_better is None else higher_is_better
        if not hi > lo:
            raise AnalysisError(f"low_quality_mask: score range {info_or_range} must be increasing")
    check_low_quality(rule, fraction)
    score = np.asarray(score, dtype=float)
    if np.isnan(score).any():
        raise AnalysisError("low_quality_mask: scores contain NaN; drop those items first")
    if rule == "nominal":
        if direction:
            return score < lo + fraction * (hi - lo)
        return score > hi - fraction * (hi - lo)
    quality = score if direction else -score
    if len(quality) == 0:
        return np.zeros(0, dtype=bool)
    return quality <= np.quantile(quality, fraction)


def low_quality_records(
    predictions: pd.DataFrame,
    infos: Mapping[str, DatasetInfo] | DatasetInfo | None = None,
    rule: str = "nominal",
    fraction: float = 0.25,
    min_items: int = 10,
    n_boot: int = 0,
    seed: int = 0,
) -> pd.DataFrame:
    """Metrics on the low-quality subset per (method, train dataset, dataset, split).

    ``infos`` maps dataset names to :class:`DatasetInfo` (or is one info for all); with the
    nominal rule and an info at hand the mask is taken on ``score``, otherwise on ``quality``
    (``quality < 100*fraction``, the same set up to rounding). The quantile rule needs no info.
    """
    frame = check_predictions(predictions)
    records = []
    for keys, group, truth, prediction, mapping in _split_groups(frame):
        info = infos.get(keys["dataset"]) if isinstance(infos, Mapping) else infos
        if rule == "nominal" and info is not None and "score" in group.columns:
            mask = low_quality_mask(group["score"].to_numpy(dtype=float), info, rule, fraction)
        else:
            mask = low_quality_mask(truth, (0.0, 100.0), rule, fraction, higher_is_better=True)
        records.append(subset_record({**keys, "subset": LOW_QUALITY}, truth[mask], prediction[mask], mapping, min_items,
                                     n_boot, seed))
    return _records_frame(records)


def _run_interval(ok: pd.DataFrame, metric: str, confidence_level: float):
    """The bootstrap interval of the one defined split of a group, if its record carries one."""
    from .intervals import Interval

    low, high = f"{metric}_boot_low", f"{metric}_boot_high"
    ok = ok[ok[metric].notna()]
    if len(ok) != 1 or low not in ok.columns or not np.isfinite(float(ok[low].iloc[0])):
        return None
    return Interval(float(ok[metric].iloc[0]), float(ok[low].iloc[0]), float(ok[high].iloc[0]), confidence_level,
                    "BCa bootstrap", int(ok["n"].iloc[0]))


def _mapping_note(ok: pd.DataFrame) -> str:
    """'split 1: <why>' for each split whose logistic fit failed (empty when all succeeded)."""
    if "mapping_ok" not in ok.columns:
        return ""
    failed = ok[ok["mapping_ok"].astype(str).str.lower().isin(["false", "0"])]
    messages = failed["mapping_message"] if "mapping_message" in failed.columns else pd.Series("", index=failed.index)
    return "; ".join(f"split {split_value(split)}: {message}" for split, message in zip(failed["split"], messages.fillna("")))


def aggregate_records(records: pd.DataFrame, ci: bool = False, confidence_level: float = 0.95) -> pd.DataFrame:
    """Mean, median and std (ddof=1) over splits per (method, train dataset, dataset, subset).

    Only splits with ``status='ok'`` enter a mean, and of those only the ones where the metric
    is defined (PLCC is not where the logistic mapping is flat): ``<metric>_splits`` says per
    metric how many entered, ``n_splits`` how many splits are ok and ``n_splits_total`` how many
    there were. A group with no defined split is ``undefined`` (its reasons merged into one
    sentence by :func:`merge_reasons`); a std over one split is NaN. ``mapping`` lists the
    splits whose logistic fit failed or was flat, with the reason, where records carry
    ``mapping_ok`` / ``mapping_message``. ``whole`` is True for
    the one record of a whole-dataset run (split ``whole``: no split, so no spread over splits).
    ``ci`` adds ``<metric>_ci_low`` and ``_ci_high``: the t-interval over the splits that entered
    the mean, or for a figure resting on one split its run's bootstrap interval where the records
    carry one (:func:`biqa_bench.evaluation.intervals.cell_interval`), and ``ci_kind`` saying which.
    """
    frame = records.copy()
    if "train_dataset" not in frame.columns:
        frame["train_dataset"] = frame["dataset"]
    # Records from elsewhere (e.g. whole-split records of metrics.evaluate_predictions) may lack
    # a status: defined when any metric is.
    inferred = np.where(frame[METRICS].notna().any(axis=1), OK, UNDEFINED)
    if "status" not in frame.columns:
        frame["status"] = inferred
    frame["status"] = frame["status"].where(frame["status"].notna(), pd.Series(inferred, index=frame.index))
    if "reason" not in frame.columns:
        frame["reason"] = ""
    frame["reason"] = frame["reason"].fillna("")
    frame.loc[(frame["status"] == UNDEFINED) & (frame["reason"] == ""), "reason"] = "metrics undefined"
    keys = ["method", "train_dataset", "dataset", "subset"]
    rows = []
    for key, group in frame.groupby(keys, sort=False, dropna=False):
        ok = group[group["status"] == OK]
        row = dict(zip(keys, key))
        row["n_splits"] = int(len(ok))
        row["n_splits_total"] = int(len(group))
        row["whole"] = bool("split" in group and group["split"].map(is_whole).all())
        row["n_mean"] = float(group["n"].mean())
        for metric in METRICS:
            values = ok[metric].astype(float).dropna()
            row[f"{metric}_mean"] = float(values.mean()) if len(values) else float("nan")
            row[f"{metric}_median"] = float(values.median()) if len(values) else float("nan")
            row[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
            row[f"{metric}_splits"] = int(len(values))
            if ci:
                interval = clip_to_metric(cell_interval(values, _run_interval(ok, metric, confidence_level),
                                                        confidence_level), metric)
                row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = interval.low, interval.high
                if metric == "srocc":
                    row["ci_kind"] = interval.kind if interval.defined else ""
        if len(ok):
            row["status"], row["reason"] = OK, ""
        else:
            row["status"], row["reason"] = UNDEFINED, merge_reasons(group["reason"])
        row["mapping"] = _mapping_note(ok)
        rows.append(row)
    result = pd.DataFrame(rows)
    if len(result):
        # Whole-split subsets ('test', 'all', ...) first, then the ranges Bad..Excellent, then low quality.
        order = {name: i + 1 for i, name in enumerate(RANGE_NAMES + [LOW_QUALITY])}
        result = result.sort_values(
            ["method", "train_dataset", "dataset", "subset"],
            key=lambda s: s.map(lambda v: order.get(v, 0)) if s.name == "subset" else s.astype(str),
            kind="stable",
        ).reset_index(drop=True)
    return result
