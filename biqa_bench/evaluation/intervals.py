"""Confidence intervals of the evaluation figures: over splits and, per run, over test images.

Two kinds, both 95 % by default:

* **over splits** (:func:`t_interval`): the mean of a figure over the repeated splits plus or
  minus ``t_{1-a/2, k-1} * s / sqrt(k)`` (Student's t, ``s`` the standard deviation with
  ddof=1 over the ``k`` splits where the figure is defined). It says how well the mean over
  splits is known; it needs two or more splits. Splits overlap (each image is in several test
  sets), so the splits are not independent replicates and this interval is, if anything, too
  narrow -- the usual caveat of repeated random splits.
* **per run, over test images** (:func:`bootstrap_interval`): the BCa bootstrap of SROCC, KROCC
  or PLCC on one test set (or one subset of it: a quality range, the low-quality images), by
  :func:`scipy.stats.bootstrap` with ``paired=True`` (truth and prediction resampled together),
  seeded. PLCC is taken after the 4-parameter logistic fitted once on the whole test split (as
  the point figure); the mapping is not re-fitted per resample.

A table cell shows the interval over splits where two or more splits define it, and otherwise
(one split, e.g. a cross-dataset test) the run's bootstrap interval: :func:`cell_interval`.

Result objects follow scipy's style (``low``, ``high``, ``confidence_level``).
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from ..errors import AnalysisError

CONFIDENCE = 0.95
#: metrics with a per-run bootstrap interval (RMSE is left out: its scale differs per dataset and
#: a bootstrap of a residual RMSE is rarely reported)
BOOTSTRAP_METRICS = ("srocc", "krocc", "plcc")
DEFAULT_N_BOOT = 1000


@dataclass(frozen=True)
class Interval:
    """A confidence interval of ``estimate``; ``kind`` is 't over splits' or 'BCa bootstrap'."""

    estimate: float
    low: float
    high: float
    confidence_level: float
    kind: str
    n: int  # splits (t) or items (bootstrap)

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2.0

    @property
    def defined(self) -> bool:
        return bool(np.isfinite(self.low) and np.isfinite(self.high))


def check_n_boot(n_boot: int) -> None:
    """``--n-boot`` is 0 (no bootstrap) or 2 or more resamples; else an AnalysisError saying so."""
    if n_boot < 0 or n_boot == 1:
        raise AnalysisError(f"--n-boot must be 0 (no bootstrap) or 2 or more resamples (e.g. 1000), not {n_boot}")


def _check_level(confidence_level: float) -> None:
    if not 0.0 < confidence_level < 1.0:
        raise AnalysisError(f"confidence level must lie in (0, 1), not {confidence_level}")


def t_interval(values, confidence_level: float = CONFIDENCE) -> Interval:
    """Student-t interval of the mean of ``values`` (NaNs left out); NaN bounds for fewer than two."""
    from scipy import stats

    _check_level(confidence_level)
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    k = len(values)
    mean = float(values.mean()) if k else float("nan")
    if k < 2:
        return Interval(mean, float("nan"), float("nan"), confidence_level, "t over splits", k)
    sem = float(values.std(ddof=1)) / np.sqrt(k)
    half = float(stats.t.ppf(0.5 + confidence_level / 2.0, k - 1)) * sem
    return Interval(mean, mean - half, mean + half, confidence_level, "t over splits", k)


# --------------------------------------------------------------------------- vectorised statistics


def pearson_last_axis(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=-1, keepdims=True)
    y = y - y.mean(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x * y).sum(axis=-1) / np.sqrt((x * x).sum(axis=-1) * (y * y).sum(axis=-1))


def average_ranks(values, support=None) -> np.ndarray:
    """Average ranks (ties share the mean of their ranks, as :func:`scipy.stats.rankdata`) along
    the last axis of a (..., n) array.

    ``support``: the sorted distinct values every entry is drawn from (a bootstrap or jackknife
    resample of one sample). With it, ranks come from counting instead of sorting each row, which
    makes resampled SROCC several times faster; without it, scipy's rankdata is used.
    """
    from scipy import stats

    values = np.asarray(values, dtype=float)
    if support is None or values.ndim == 1:
        return stats.rankdata(values, axis=-1)
    n = values.shape[-1]
    flat = values.reshape(-1, n)
    rows = len(flat)
    dense = np.searchsorted(support, flat)  # index of each value among the support
    k = len(support)
    counts = np.bincount((np.arange(rows)[:, None] * k + dense).ravel(), minlength=rows * k).reshape(rows, k)
    below = np.cumsum(counts, axis=1) - counts  # entries smaller than each support value
    row = np.arange(rows)[:, None]
    ranks = below[row, dense] + (counts[row, dense] + 1) / 2.0
    return ranks.reshape(values.shape)


def spearman_statistic(truth, prediction, axis: int = -1, supports=(None, None)) -> np.ndarray:
    """SROCC along ``axis`` of (..., n) arrays: Pearson of average ranks (scipy's definition);
    ``supports``: the sorted distinct values of truth and prediction (see :func:`average_ranks`)."""
    truth = np.moveaxis(np.asarray(truth, dtype=float), axis, -1)
    prediction = np.moveaxis(np.asarray(prediction, dtype=float), axis, -1)
    return pearson_last_axis(average_ranks(truth, supports[0]), average_ranks(prediction, supports[1]))


def pearson_statistic(truth, prediction, axis: int = -1) -> np.ndarray:
    """PLCC along ``axis`` of (..., n) arrays."""
    truth = np.moveaxis(np.asarray(truth, dtype=float), axis, -1)
    prediction = np.moveaxis(np.asarray(prediction, dtype=float), axis, -1)
    return pearson_last_axis(truth, prediction)


def kendall_statistic(truth, prediction, axis: int = -1) -> np.ndarray:
    """KROCC (tau-b) along ``axis``; one scipy call per resample (slower than the others)."""
    from scipy import stats

    truth = np.moveaxis(np.asarray(truth, dtype=float), axis, -1)
    prediction = np.moveaxis(np.asarray(prediction, dtype=float), axis, -1)
    flat_t = truth.reshape(-1, truth.shape[-1])
    flat_p = prediction.reshape(-1, prediction.shape[-1])
    out = np.empty(len(flat_t))
    for i, (t, p) in enumerate(zip(flat_t, flat_p)):
        out[i] = stats.kendalltau(t, p).statistic if np.ptp(t) > 0 and np.ptp(p) > 0 else np.nan
    return out.reshape(truth.shape[:-1])


STATISTICS = {"srocc": spearman_statistic, "plcc": pearson_statistic, "krocc": kendall_statistic}


def _rng_keyword() -> str:
    # scipy >= 1.15 names the generator `rng`; older versions `random_state` (same meaning)
    from scipy import stats

    return "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"


def scipy_bootstrap(data: tuple, statistic, n_boot: int, seed: int, confidence_level: float = CONFIDENCE,
                    method: str = "BCa", batch: int | None = None):
    """:func:`scipy.stats.bootstrap` of a paired, vectorised ``statistic`` with a seeded generator.

    The one place this package calls scipy's bootstrap, so every interval is drawn the same way.
    Returns scipy's result object.
    """
    from scipy import stats

    if n_boot < 2:
        raise AnalysisError(f"--n-boot must be at least 2 (1000 or more for a 95 % interval), not {n_boot}")
    _check_level(confidence_level)
    with warnings.catch_warnings():
        # degenerate resamples (a constant subset) give NaN statistics; scipy warns, we report NaN bounds
        warnings.simplefilter("ignore")
        return stats.bootstrap(
            data, statistic, paired=True, vectorized=True, n_resamples=int(n_boot),
            confidence_level=confidence_level, method=method, batch=batch,
            **{_rng_keyword(): np.random.default_rng(seed)},
        )


def bootstrap_interval(
    truth,
    prediction,
    metric: str = "srocc",
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    confidence_level: float = CONFIDENCE,
    mapped=None,
) -> Interval:
    """BCa bootstrap interval over the items of one test set (see the module docstring).

    For ``metric='plcc'`` pass ``mapped`` (the predictions after the whole split's logistic);
    without it the logistic is fitted here on these items. Fewer than three items or a metric
    undefined on the items gives NaN bounds.
    """
    if metric not in STATISTICS:
        raise AnalysisError(f"no bootstrap for metric '{metric}'; use one of {', '.join(BOOTSTRAP_METRICS)}")
    truth = np.asarray(truth, dtype=float)
    prediction = np.asarray(prediction, dtype=float)
    if metric == "plcc":
        if mapped is None:
            from .logistic import fit_logistic

            mapped = fit_logistic(prediction, truth).predict(prediction)
        prediction = np.asarray(mapped, dtype=float)
    n = len(truth)
    statistic = STATISTICS[metric]
    if metric == "srocc":  # resamples hold only the sample's own values: rank them by counting
        supports = (np.unique(truth), np.unique(prediction))
        statistic = lambda t, p, axis=-1: spearman_statistic(t, p, axis, supports)  # noqa: E731
    estimate = float(statistic(truth, prediction)) if n >= 2 else float("nan")
    if n < 3 or not np.isfinite(estimate):
        return Interval(estimate, float("nan"), float("nan"), confidence_level, "BCa bootstrap", n)
    # keep a batch of resamples to about 4 million values, so a 10,000-item test set stays in memory
    batch = max(1, min(int(n_boot), 4_000_000 // max(n, 1)))
    result = scipy_bootstrap((truth, prediction), statistic, n_boot, seed, confidence_level, batch=batch)
    ci = result.confidence_interval
    return Interval(estimate, float(ci.low), float(ci.high), confidence_level, "BCa bootstrap", n)


#: metrics that live in [-1, 1]: a t-interval reaching past 1 is clipped (:func:`clip_to_metric`)
CORRELATIONS = ("srocc", "krocc", "plcc", "plcc_raw")


def clip_to_metric(interval: Interval, metric: str) -> Interval:
    """The interval clipped to the metric's possible values (correlations: [-1, 1]). A t-interval
    of few splits can reach past 1; 'SROCC 0.98 +- 0.04' would promise the impossible."""
    if metric not in CORRELATIONS or not interval.defined:
        return interval
    return Interval(interval.estimate, max(interval.low, -1.0), min(interval.high, 1.0), interval.confidence_level,
                    interval.kind, interval.n)


def cell_interval(split_values, run_interval: Interval | None = None, confidence_level: float = CONFIDENCE) -> Interval:
    """The interval a table cell shows: over splits when two or more define it, else the single
    run's bootstrap interval (when given)."""
    over_splits = t_interval(split_values, confidence_level)
    if over_splits.n >= 2 or run_interval is None:
        return over_splits
    return run_interval


def boot_columns(metrics=BOOTSTRAP_METRICS) -> list[str]:
    """The record columns a per-run bootstrap adds."""
    return [f"{m}_boot_{side}" for m in metrics for side in ("low", "high")] + ["n_boot", "boot_seed"]


def bootstrap_columns(truth, prediction, mapped, n_boot: int, seed: int, confidence_level: float = CONFIDENCE,
                      metrics=("srocc", "plcc")) -> dict:
    """``<metric>_boot_low`` / ``_high`` of one record's items, with ``n_boot`` and ``boot_seed``
    (``mapped``: the predictions after the whole split's logistic, for PLCC)."""
    out: dict = {}
    for metric in metrics:
        interval = bootstrap_interval(truth, prediction, metric, n_boot, seed, confidence_level,
                                      mapped=mapped if metric == "plcc" else None)
        out[f"{metric}_boot_low"], out[f"{metric}_boot_high"] = interval.low, interval.high
    out["n_boot"], out["boot_seed"] = int(n_boot), int(seed)
    return out


def format_interval(value: float, low: float, high: float, decimals: int = 3) -> str:
    """An interval as printed after its figure: '\u00b10.008' when symmetric at ``decimals`` (a
    t-interval), '[0.891, 0.925]' otherwise (a bootstrap, a clipped interval); '' when undefined."""
    if not (np.isfinite(value) and np.isfinite(low) and np.isfinite(high)):
        return ""
    below, above = round(value - low, decimals), round(high - value, decimals)
    if abs(below - above) < 0.5 * 10 ** -decimals:
        return f"\u00b1{max(below, above):.{decimals}f}"
    return f"[{low:.{decimals}f}, {high:.{decimals}f}]"


RUN_KEYS = ["method", "train_dataset", "dataset"]


def one_run_rows(predictions: pd.DataFrame) -> pd.Series:
    """True for the rows of (method, train dataset, dataset) groups that have one split only:
    their table cells rest on one run, so their interval is the run's bootstrap."""
    frame = predictions.assign(train_dataset=predictions["train_dataset"].fillna(predictions["dataset"])) \
        if "train_dataset" in predictions.columns else predictions.assign(train_dataset=predictions["dataset"])
    splits = frame.groupby(RUN_KEYS, dropna=False)["split"].transform("nunique")
    return splits == 1


def records_with_intervals(make: Callable[..., pd.DataFrame], predictions: pd.DataFrame, n_boot: int, seed: int,
                           every_run: bool = False, **options) -> pd.DataFrame:
    """``make(predictions, n_boot=..., seed=..., **options)`` with the per-run bootstrap only where
    a cell rests on one run (or on every run with ``every_run``): the bootstrap of thousands of
    runs costs minutes, and where there are two or more splits the cells show the t-interval."""
    import pandas as pd

    if not n_boot:
        return make(predictions, **options)
    single = np.ones(len(predictions), dtype=bool) if every_run else one_run_rows(predictions).to_numpy()
    parts = []
    if single.any():
        parts.append(make(predictions[single], n_boot=n_boot, seed=seed, **options))
    if (~single).any():
        parts.append(make(predictions[~single], **options))
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
