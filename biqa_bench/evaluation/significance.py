"""Statistical significance of differences between methods (REQA Table III and per-image tests).

Over splits: the per-split values of one metric for methods run on the SAME split files
(:func:`compare_methods`). Because the splits are shared, the paired t-test is the default;
Welch's t-test and the Wilcoxon signed-rank test are alternatives. The result holds

* ``decision``: 1 / 0 / -1 when the row method is statistically better than / indistinguishable
  from / worse than the column method (for RMSE lower is better, handled here);
* ``pvalue``: two-sided p-values (symmetric), or for ``alternative='greater'`` the p-value of
  "row better than column";
* ``pvalue_adjusted``: Holm-adjusted p-values when ``holm=True`` (the decisions use them). The
  family is the k(k-1)/2 unordered pairs for two-sided tests and the k(k-1) ordered pairs for
  one-sided tests;
* ``mean_difference``: mean over splits of (row - column) in the metric's own units.

On one test set of per-image predictions (:func:`per_image_tests`):

* :func:`residual_f_test`: F = var(residuals A) / var(residuals B) after each method's logistic
  mapping (Sheikh et al. 2006); the residuals' kurtosis (Pearson's, ``fisher=False``, 3 for a
  Gaussian) is reported because the test assumes roughly Gaussian residuals, kurtosis in 2-4.
* :func:`williams_test`: Williams' t for two dependent correlations sharing the ground truth,
  in the form of Steiger (1980), eq. 7, df = n - 3.
* :func:`bootstrap_difference`: seeded paired bootstrap percentile CI for SROCC(A) - SROCC(B)
  or PLCC(A) - PLCC(B); for PLCC the logistic mappings are fitted once on the whole test set
  and not re-fitted per resample (cheaper; it ignores the mapping's own variability).

Result objects follow scipy's style: ``statistic``, ``pvalue``, ``confidence_interval``.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import AnalysisError
from ..store import is_whole, split_order, split_value
from .logistic import fit_logistic
from .ranges import check_predictions

TESTS = ("paired", "welch", "wilcoxon")
ALTERNATIVES = ("two-sided", "greater")
LOWER_IS_BETTER = {"rmse"}


# --------------------------------------------------------------------------- over splits


@dataclass(frozen=True)
class SignificanceResult:
    metric: str
    test: str
    alternative: str
    alpha: float
    holm: bool
    higher_is_better: bool
    methods: tuple[str, ...]
    splits: tuple[int, ...]
    decision: pd.DataFrame  # int: 1 row better, 0 indistinguishable, -1 row worse
    pvalue: pd.DataFrame
    pvalue_adjusted: pd.DataFrame  # equals pvalue when holm is False
    mean_difference: pd.DataFrame  # mean over splits of row - column, metric units
    statistic: pd.DataFrame  # the test statistic of row against column
    df: pd.DataFrame  # degrees of freedom of the t-tests (Welch: fractional); NaN for Wilcoxon
    notes: tuple[str, ...] = ()  # caveats worth showing next to the matrix

    @property
    def matrix(self) -> pd.DataFrame:
        """The 1/0/-1 decision matrix (alias of ``decision``)."""
        return self.decision

    def to_dict(self) -> dict:
        def matrix(frame: pd.DataFrame) -> dict:
            return {
                str(row): {str(col): (None if pd.isna(v) else (int(v) if frame is self.decision else float(v)))
                           for col, v in frame.loc[row].items()}
                for row in frame.index
            }

        return {
            "metric": self.metric,
            "test": self.test,
            "alternative": self.alternative,
            "alpha": self.alpha,
            "holm": self.holm,
            "higher_is_better": self.higher_is_better,
            "methods": list(self.methods),
            "splits": list(self.splits),
            "decision": matrix(self.decision),
            "pvalue": matrix(self.pvalue),
            "pvalue_adjusted": matrix(self.pvalue_adjusted),
            "mean_difference": matrix(self.mean_difference),
            "statistic": matrix(self.statistic),
            "df": matrix(self.df),
            "notes": list(self.notes),
        }


def _values_table(values, metric: str) -> dict[str, dict[int, float]]:
    """Accept {method: {split: value}} or a long DataFrame (method, split, <metric> or value)."""
    if isinstance(values, pd.DataFrame):
        column = metric if metric in values.columns else "value"
        missing = [c for c in ("method", "split", column) if c not in values.columns]
        if missing:
            raise AnalysisError(f"per-split values lack columns {missing}; pass method, split and '{metric}'")
        duplicated = values.duplicated(["method", "split"])
        if duplicated.any():
            row = values[duplicated].iloc[0]
            raise AnalysisError(
                f"method '{row['method']}' has several values for split {row['split']}; "
                "filter to one dataset (e.g. --dataset) first"
            )
        table: dict[str, dict[int, float]] = {}
        for method, split, value in zip(values["method"], values["split"], values[column]):
            table.setdefault(str(method), {})[int(split)] = float(value)
        return table
    return {str(m): {int(s): float(v) for s, v in per_split.items()} for m, per_split in values.items()}


def _validate(table: dict[str, dict[int, float]], metric: str) -> tuple[list[str], list[int]]:
    methods = list(table)
    if len(methods) < 2:
        raise AnalysisError(f"significance needs at least 2 methods, got {methods}; run more methods on the same splits")
    reference = methods[0]
    splits = sorted(table[reference])
    for method in methods[1:]:
        if sorted(table[method]) != splits:
            raise AnalysisError(
                f"methods '{reference}' and '{method}' were run on different splits "
                f"({splits} vs {sorted(table[method])}); run every method on the same split files"
            )
    if len(splits) < 2:
        raise AnalysisError(
            f"significance over splits needs at least 2 splits, got {len(splits)}; "
            "run with more repeats (e.g. --repeats 10), or use per-image tests on one test set"
        )
    for method in methods:
        bad = [s for s in splits if not np.isfinite(table[method][s])]
        if bad:
            raise AnalysisError(
                f"method '{method}' has no defined {metric} on splits {bad} (NaN: constant or missing "
                "predictions?); re-run it on those splits or leave it out"
            )
    return methods, splits


def holm_adjust(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (same order as given)."""
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    adjusted_sorted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return adjusted


def _signed_rank_direction(d: np.ndarray) -> float:
    d = d[d != 0]
    if len(d) == 0:
        return 0.0
    ranks = stats.rankdata(np.abs(d))
    return float(np.sign(np.sum(np.sign(d) * ranks)))


def _pair_test(x: np.ndarray, y: np.ndarray, test: str, alternative: str) -> tuple[float, float, float, float]:
    """(statistic, pvalue, direction, df) of "x better than y", where larger x is better."""
    d = x - y
    df = float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if test == "paired":
            df = float(len(x) - 1)
            if np.all(d == 0):
                return 0.0, 1.0, 0.0, df
            result = stats.ttest_rel(x, y, alternative=alternative)
            statistic = float(result.statistic)
            direction = float(np.sign(np.mean(d)))
        elif test == "welch":
            if np.all(x == x[0]) and np.all(y == y[0]) and x[0] == y[0]:
                return 0.0, 1.0, 0.0, df
            result = stats.ttest_ind(x, y, equal_var=False, alternative=alternative)
            statistic = float(result.statistic)
            df = float(result.df)
            direction = float(np.sign(np.mean(x) - np.mean(y)))
        elif test == "wilcoxon":
            if np.all(d == 0):
                return 0.0, 1.0, 0.0, df
            result = stats.wilcoxon(x, y, alternative=alternative)
            statistic = float(result.statistic)
            direction = _signed_rank_direction(d)
        else:
            raise AnalysisError(f"unknown test '{test}'; use one of {', '.join(TESTS)}")
    pvalue = float(result.pvalue)
    if not np.isfinite(pvalue):
        pvalue = 1.0
    return statistic, pvalue, direction, df


def compare_methods(
    values,
    metric: str = "srocc",
    test: str = "paired",
    alternative: str = "two-sided",
    alpha: float = 0.05,
    holm: bool = False,
    higher_is_better: bool | None = None,
) -> SignificanceResult:
    """Pairwise significance matrix over per-split values (see the module docstring).

    ``values``: ``{method: {split_index: value}}`` or a long DataFrame with ``method``,
    ``split`` and a ``metric`` (or ``value``) column. All methods must have the same splits.
    """
    if test not in TESTS:
        raise AnalysisError(f"unknown test '{test}'; use one of {', '.join(TESTS)}")
    if alternative not in ALTERNATIVES:
        raise AnalysisError(f"unknown alternative '{alternative}'; use one of {', '.join(ALTERNATIVES)}")
    if not 0 < alpha < 1:
        raise AnalysisError(f"alpha must lie in (0, 1), not {alpha}")
    if higher_is_better is None:
        higher_is_better = metric not in LOWER_IS_BETTER
    table = _values_table(values, metric)
    methods, splits = _validate(table, metric)
    raw = {m: np.array([table[m][s] for s in splits]) for m in methods}
    # Flip lower-is-better metrics so that "larger is better" everywhere in the tests.
    oriented = {m: v if higher_is_better else -v for m, v in raw.items()}
    k = len(methods)
    pvalue = np.full((k, k), np.nan)
    statistic = np.full((k, k), np.nan)
    dof = np.full((k, k), np.nan)
    direction = np.zeros((k, k))
    mean_difference = np.zeros((k, k))
    for i, j in itertools.permutations(range(k), 2):
        mean_difference[i, j] = float(np.mean(raw[methods[i]] - raw[methods[j]]))
        if alternative == "two-sided" and j < i:
            continue  # symmetric: filled from (j, i)
        s, p, dirn, df = _pair_test(oriented[methods[i]], oriented[methods[j]], test, alternative)
        statistic[i, j], pvalue[i, j], direction[i, j], dof[i, j] = s, p, dirn, df
        if alternative == "two-sided":
            statistic[j, i] = -s if test != "wilcoxon" else s
            pvalue[j, i], direction[j, i], dof[j, i] = p, -dirn, df
    if alternative == "two-sided":
        family = [(i, j) for i, j in itertools.combinations(range(k), 2)]
    else:
        family = list(itertools.permutations(range(k), 2))
    adjusted = pvalue.copy()
    if holm:
        adj = holm_adjust([pvalue[i, j] for i, j in family])
        for (i, j), a in zip(family, adj):
            adjusted[i, j] = a
            if alternative == "two-sided":
                adjusted[j, i] = a
    decision = np.zeros((k, k), dtype=int)
    for i, j in itertools.permutations(range(k), 2):
        if alternative == "two-sided":
            if adjusted[i, j] < alpha:
                decision[i, j] = int(direction[i, j])
        elif adjusted[i, j] < alpha:
            decision[i, j] = 1
        elif adjusted[j, i] < alpha:
            decision[i, j] = -1
    notes = []
    if test == "wilcoxon":
        # The exact signed-rank test cannot go below 1/2^n (one-sided) or 2/2^n (two-sided).
        smallest = (2.0 if alternative == "two-sided" else 1.0) / 2 ** len(splits)
        if smallest >= alpha:
            notes.append(
                f"Wilcoxon with {len(splits)} splits cannot reach p < {alpha} (smallest possible p = {smallest:.3g}); "
                "use more splits or the paired t-test"
            )
    frame = lambda a: pd.DataFrame(a, index=methods, columns=methods)  # noqa: E731
    return SignificanceResult(
        metric=metric,
        test=test,
        alternative=alternative,
        alpha=alpha,
        holm=holm,
        higher_is_better=higher_is_better,
        methods=tuple(methods),
        splits=tuple(splits),
        decision=frame(decision),
        pvalue=frame(pvalue),
        pvalue_adjusted=frame(adjusted),
        mean_difference=frame(mean_difference),
        statistic=frame(statistic),
        df=frame(dof),
        notes=tuple(notes),
    )


def split_metric_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """Every metric per (method, train dataset, dataset, split) on the test rows, validated.

    The figures are those of :func:`biqa_bench.evaluation.metrics.evaluate_predictions` (PLCC
    and RMSE after the logistic fitted on that split's test items); this adds the checks of
    :func:`check_predictions` (needed columns, no NaN).
    """
    from .metrics import evaluate_predictions

    return evaluate_predictions(check_predictions(predictions))


def without_whole_runs(predictions: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The rows of split runs only, and a note per dataset whose whole-dataset runs were left out:
    a whole-dataset run has one test set, so it has no per-split values to test (its per-image
    tests are :func:`per_image_tests` with ``split='whole'``)."""
    whole = predictions["split"].map(is_whole).astype(bool)
    notes = [
        f"whole-dataset runs on {dataset} ({', '.join(sorted(set(group['method']), key=str))}) have no splits to "
        f"test over: compare two with --per-image A,B --split whole"
        for dataset, group in predictions[whole].groupby("dataset", sort=True)
    ]
    return predictions[~whole], notes


def check_split_hashes(runs: pd.DataFrame) -> None:
    """Verify that all methods used the same split file per (train dataset, split).

    ``runs`` has columns method, train_dataset, split, split_hash and folder (one row per run).
    A missing hash or two hashes for one (train dataset, split) raise :class:`AnalysisError`.
    """
    for row in runs.itertuples(index=False):
        if not isinstance(row.split_hash, str) or not row.split_hash:
            raise AnalysisError(
                f"{row.folder}: manifest.json has no split_hash, so its splits cannot be verified; "
                "re-run that method with `biqa train` (current version) or leave it out"
            )
    for (train_dataset, split), group in runs.groupby(["train_dataset", "split"], sort=True):
        hashes = group.drop_duplicates("split_hash")
        if len(hashes) > 1:
            first, second = hashes.iloc[0], hashes.iloc[1]
            raise AnalysisError(
                f"methods '{first['method']}' and '{second['method']}' used different split files for "
                f"{train_dataset} split {split} ({first['folder']} vs {second['folder']}); "
                "run all methods with the same split file (biqa train --splits FILE)"
            )


# --------------------------------------------------------------------------- per image


@dataclass(frozen=True)
class ConfidenceInterval:
    low: float
    high: float


@dataclass(frozen=True)
class FTestResult:
    statistic: float  # var(residuals A) / var(residuals B)
    pvalue: float
    df_numerator: int
    df_denominator: int
    alternative: str
    variance_a: float
    variance_b: float
    kurtosis_a: float  # Pearson kurtosis (3 for a Gaussian)
    kurtosis_b: float

    @property
    def kurtosis_ok(self) -> bool:
        """Whether both residual kurtoses lie in 2-4, where the F-test's Gaussian assumption is tenable."""
        return bool(2 <= self.kurtosis_a <= 4 and 2 <= self.kurtosis_b <= 4)


def _alternative_p(cdf: float, sf: float, alternative: str) -> float:
    if alternative == "two-sided":
        return float(min(1.0, 2 * min(cdf, sf)))
    if alternative == "greater":
        return float(sf)
    if alternative == "less":
        return float(cdf)
    raise AnalysisError(f"unknown alternative '{alternative}'; use two-sided, greater or less")


def residual_f_test(residuals_a, residuals_b, alternative: str = "two-sided") -> FTestResult:
    """F-test of var(A) against var(B) (sample variances, ddof=1).

    ``alternative='greater'``: var(A) > var(B), i.e. B predicts better; ``'less'``: A better.
    """
    a = np.asarray(residuals_a, dtype=float)
    b = np.asarray(residuals_b, dtype=float)
    for name, r in (("A", a), ("B", b)):
        if r.ndim != 1 or len(r) < 3:
            raise AnalysisError(f"F-test: residuals {name} need at least 3 values, got {r.size}")
        if not np.all(np.isfinite(r)):
            raise AnalysisError(f"F-test: residuals {name} contain NaN; drop those items or re-run the method")
    variance_a, variance_b = float(np.var(a, ddof=1)), float(np.var(b, ddof=1))
    if variance_b == 0:
        raise AnalysisError("F-test: residuals B have zero variance (a perfect fit?); the ratio is undefined")
    statistic = variance_a / variance_b
    dfn, dfd = len(a) - 1, len(b) - 1
    pvalue = _alternative_p(stats.f.cdf(statistic, dfn, dfd), stats.f.sf(statistic, dfn, dfd), alternative)
    return FTestResult(
        statistic=statistic,
        pvalue=pvalue,
        df_numerator=dfn,
        df_denominator=dfd,
        alternative=alternative,
        variance_a=variance_a,
        variance_b=variance_b,
        kurtosis_a=float(stats.kurtosis(a, fisher=False)),
        kurtosis_b=float(stats.kurtosis(b, fisher=False)),
    )


def mapped_residuals(truth, prediction) -> np.ndarray:
    """truth - logistic(prediction), the logistic fitted on these items."""
    truth, prediction = _checked_pair(truth, prediction, "prediction")
    return truth - fit_logistic(prediction, truth).predict(prediction)


def f_test(truth, prediction_a, prediction_b, alternative: str = "two-sided") -> FTestResult:
    """The F-test on residual variances after each method's own logistic mapping (Sheikh et al. 2006)."""
    return residual_f_test(mapped_residuals(truth, prediction_a), mapped_residuals(truth, prediction_b), alternative)


def f_test_matrix(truth, predictions: dict[str, np.ndarray], alpha: float = 0.05) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The per-image F-test for every pair of methods on one test set (the LIVE study's table,
    Sheikh et al. 2006): residual variances after each method's own logistic mapping, two-sided.

    Returns ``(decision, pvalue)`` indexed and columned by method: decision 1 where the row
    method's residual variance is significantly smaller (row better), -1 where larger, 0 else;
    the diagonal is 0 with a NaN p-value. No correction for multiple comparisons.
    """
    if not 0 < alpha < 1:
        raise AnalysisError(f"alpha must lie in (0, 1), not {alpha}")
    methods = sorted(predictions, key=str)
    residuals = {m: mapped_residuals(truth, predictions[m]) for m in methods}
    k = len(methods)
    decision = np.zeros((k, k), dtype=int)
    pvalue = np.full((k, k), np.nan)
    for i, j in itertools.combinations(range(k), 2):
        result = residual_f_test(residuals[methods[i]], residuals[methods[j]])
        pvalue[i, j] = pvalue[j, i] = result.pvalue
        if result.pvalue < alpha:
            sign = 1 if result.variance_a < result.variance_b else -1
            decision[i, j], decision[j, i] = sign, -sign
    frame = lambda a: pd.DataFrame(a, index=methods, columns=methods)  # noqa: E731
    return frame(decision), frame(pvalue)


@dataclass(frozen=True)
class FTestMatrix:
    """The per-image F-test of every pair of methods on one test set (see :func:`f_test_on_common_split`)."""

    split: int | str  # the split index, or "whole" for whole-dataset runs
    n: int
    decision: pd.DataFrame
    pvalue: pd.DataFrame


def f_test_on_common_split(test: pd.DataFrame, alpha: float = 0.05) -> FTestMatrix | None:
    """:func:`f_test_matrix` on the lowest split whose test set every method of ``test`` (one
    dataset's test predictions) predicted, item for item; None when no split qualifies or there
    are fewer than two methods."""
    methods = sorted(test["method"].unique(), key=str)
    if len(methods) < 2:
        return None
    common = set.intersection(*(set(test.loc[test["method"] == m, "split"]) for m in methods))
    for split in sorted(common, key=split_order):
        one = test[test["split"] == split]
        items = [set(one.loc[one["method"] == m, "item_id"]) for m in methods]
        if any(i != items[0] for i in items) or any(one[one["method"] == m]["item_id"].duplicated().any() for m in methods):
            continue
        wide = one.pivot(index="item_id", columns="method", values="prediction")
        truth = one.drop_duplicates("item_id").set_index("item_id")["quality"].loc[wide.index].to_numpy(float)
        decision, pvalue = f_test_matrix(truth, {m: wide[m].to_numpy(float) for m in methods}, alpha)
        return FTestMatrix(split_value(split), len(truth), decision, pvalue)
    return None


@dataclass(frozen=True)
class WilliamsResult:
    statistic: float
    pvalue: float
    df: int
    alternative: str
    r12: float  # truth vs A
    r13: float  # truth vs B
    r23: float  # A vs B
    n: int


def williams_test(r12: float, r13: float, r23: float, n: int, alternative: str = "two-sided") -> WilliamsResult:
    """Williams' t for H0: r12 = r13 with variable 1 (the truth) shared (Steiger 1980, eq. 7).

    t = (r12 - r13) sqrt((n-1)(1+r23)) / sqrt(2 (n-1)/(n-3) |R| + rbar^2 (1-r23)^3),
    |R| = 1 - r12^2 - r13^2 - r23^2 + 2 r12 r13 r23, rbar = (r12+r13)/2, df = n-3.
    ``alternative='greater'``: r12 > r13 (A correlates better with the truth).
    """
    for name, r in (("r12", r12), ("r13", r13), ("r23", r23)):
        if not np.isfinite(r) or abs(r) > 1:
            raise AnalysisError(f"Williams' test: {name}={r} is not a correlation in [-1, 1]")
    if n <= 3:
        raise AnalysisError(f"Williams' test needs more than 3 items, got {n}")
    determinant = 1 - r12**2 - r13**2 - r23**2 + 2 * r12 * r13 * r23
    if determinant <= 0:
        raise AnalysisError("Williams' test: the correlation matrix is singular (identical predictions?)")
    rbar = (r12 + r13) / 2
    denominator = 2 * (n - 1) / (n - 3) * determinant + rbar**2 * (1 - r23) ** 3
    statistic = (r12 - r13) * np.sqrt((n - 1) * (1 + r23)) / np.sqrt(denominator)
    df = n - 3
    pvalue = _alternative_p(stats.t.cdf(statistic, df), stats.t.sf(statistic, df), alternative)
    return WilliamsResult(float(statistic), pvalue, df, alternative, float(r12), float(r13), float(r23), int(n))


def _checked_pair(truth, prediction, name: str) -> tuple[np.ndarray, np.ndarray]:
    truth = np.asarray(truth, dtype=float)
    prediction = np.asarray(prediction, dtype=float)
    if truth.shape != prediction.shape or truth.ndim != 1:
        raise AnalysisError(f"{name}: truth and predictions must be 1-d and of the same length")
    if not (np.all(np.isfinite(truth)) and np.all(np.isfinite(prediction))):
        raise AnalysisError(f"{name}: NaN in truth or predictions; re-run the method or drop those items")
    return truth, prediction


def _correlations(truth, a, b, metric: str) -> tuple[float, float, float]:
    from .metrics import plcc, srocc

    if metric == "srocc":
        corr = srocc
    elif metric == "plcc":
        a = fit_logistic(a, truth).predict(a)
        b = fit_logistic(b, truth).predict(b)
        corr = plcc
    else:
        raise AnalysisError(f"unknown correlation '{metric}'; use srocc or plcc")
    return corr(truth, a), corr(truth, b), corr(a, b)


def williams_from_predictions(truth, prediction_a, prediction_b, metric: str = "plcc", alternative: str = "two-sided") -> WilliamsResult:
    """Williams' test on the correlations of two methods with the truth on one test set.

    ``metric='plcc'``: Pearson on each method's logistic-mapped predictions (what the test is
    for); ``'srocc'``: Spearman correlations plugged in (a common approximation).
    """
    truth, a = _checked_pair(truth, prediction_a, "Williams' test")
    _, b = _checked_pair(truth, prediction_b, "Williams' test")
    r12, r13, r23 = _correlations(truth, a, b, metric)
    return williams_test(r12, r13, r23, len(truth), alternative)


@dataclass(frozen=True)
class BootstrapResult:
    statistic: float  # metric(A) - metric(B) on the full test set
    confidence_interval: ConfidenceInterval
    standard_error: float
    metric: str
    confidence_level: float
    n_resamples: int
    seed: int
    n_degenerate: int = 0  # resamples where a correlation was undefined (dropped)
    bootstrap_distribution: np.ndarray = field(default=None, repr=False)


def _rowwise_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x * y).sum(axis=1) / np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))


def resample_correlations(truth, prediction, indices: np.ndarray, metric: str) -> np.ndarray:
    """The metric on each row of resample ``indices`` (shape: resamples x n), vectorised."""
    t = np.asarray(truth, dtype=float)[indices]
    p = np.asarray(prediction, dtype=float)[indices]
    if metric == "srocc":
        t = stats.rankdata(t, axis=1)
        p = stats.rankdata(p, axis=1)
    return _rowwise_pearson(t, p)


def bootstrap_difference(
    truth,
    prediction_a,
    prediction_b,
    metric: str = "srocc",
    n_resamples: int = 2000,
    confidence_level: float = 0.95,
    seed: int = 0,
    chunk: int = 200,
) -> BootstrapResult:
    """Seeded paired bootstrap (items resampled with replacement, the same items for A and B)
    percentile CI of metric(A) - metric(B); metric is 'srocc' or 'plcc' (see module docstring)."""
    truth, a = _checked_pair(truth, prediction_a, "bootstrap")
    _, b = _checked_pair(truth, prediction_b, "bootstrap")
    if metric not in ("srocc", "plcc"):
        raise AnalysisError(f"unknown bootstrap metric '{metric}'; use srocc or plcc")
    if not 0 < confidence_level < 1:
        raise AnalysisError(f"confidence level must lie in (0, 1), not {confidence_level}")
    n = len(truth)
    if n < 3:
        raise AnalysisError(f"bootstrap needs at least 3 items, got {n}")
    if metric == "plcc":
        a = fit_logistic(a, truth).predict(a)
        b = fit_logistic(b, truth).predict(b)
    full = np.arange(n)[None, :]
    observed = float(resample_correlations(truth, a, full, metric)[0] - resample_correlations(truth, b, full, metric)[0])
    if not np.isfinite(observed):
        raise AnalysisError("bootstrap: the metric is undefined on the full test set (constant truth or predictions)")
    rng = np.random.default_rng(seed)
    differences = []
    for start in range(0, n_resamples, chunk):
        indices = rng.integers(0, n, size=(min(chunk, n_resamples - start), n))
        differences.append(resample_correlations(truth, a, indices, metric) - resample_correlations(truth, b, indices, metric))
    distribution = np.concatenate(differences)
    finite = distribution[np.isfinite(distribution)]
    if len(finite) < 2:
        raise AnalysisError("bootstrap: almost every resample was degenerate; the test set is too small")
    tail = (1 - confidence_level) / 2
    low, high = np.quantile(finite, [tail, 1 - tail])
    return BootstrapResult(
        statistic=observed,
        confidence_interval=ConfidenceInterval(float(low), float(high)),
        standard_error=float(np.std(finite, ddof=1)),
        metric=metric,
        confidence_level=confidence_level,
        n_resamples=n_resamples,
        seed=seed,
        n_degenerate=int(len(distribution) - len(finite)),
        bootstrap_distribution=distribution,
    )


@dataclass(frozen=True)
class PerImageTests:
    method_a: str
    method_b: str
    dataset: str
    split: int | str  # the split index, or 'whole' for whole-dataset runs
    n: int
    f_test: FTestResult
    williams: WilliamsResult
    bootstrap: BootstrapResult

    def to_dict(self) -> dict:
        f, w, bs = self.f_test, self.williams, self.bootstrap
        return {
            "method_a": self.method_a, "method_b": self.method_b, "dataset": self.dataset,
            "split": self.split, "n": self.n,
            "f_test": {"statistic": f.statistic, "pvalue": f.pvalue, "df": [f.df_numerator, f.df_denominator],
                       "kurtosis_a": f.kurtosis_a, "kurtosis_b": f.kurtosis_b, "kurtosis_ok": f.kurtosis_ok},
            "williams": {"statistic": w.statistic, "pvalue": w.pvalue, "df": w.df, "r12": w.r12, "r13": w.r13, "r23": w.r23},
            "bootstrap": {"metric": bs.metric, "statistic": bs.statistic, "low": bs.confidence_interval.low,
                          "high": bs.confidence_interval.high, "confidence_level": bs.confidence_level,
                          "n_resamples": bs.n_resamples, "seed": bs.seed},
        }


def per_image_tests(
    predictions: pd.DataFrame,
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
    """F-test, Williams' test and paired bootstrap for two methods on one test set.

    The test set is one (dataset, split), the split 'whole' for whole-dataset runs; pass
    ``dataset``/``split`` when the table holds several. Items are matched by ``item_id``; both
    methods must cover the same items (whole-dataset runs: cut them to their common items first,
    :func:`biqa_bench.evaluation.metrics.common_whole_items`).
    Truth is ``quality`` (0-100). ``metric`` picks the correlation of Williams' test and the
    bootstrap. ``alternative`` applies to Williams' test ('greater': A correlates better).
    """
    frame = check_predictions(predictions, required=("method", "dataset", "split", "item_id", "quality", "prediction"))
    for method in (method_a, method_b):
        if method not in set(frame["method"]):
            raise AnalysisError(f"no predictions of method '{method}'; methods present: {sorted(set(frame['method']))}")
    frame = frame[frame["method"].isin([method_a, method_b])]
    if dataset is not None:
        frame = frame[frame["dataset"] == dataset]
    if split is not None:
        frame = frame[frame["split"] == split]
    sets = frame[["dataset", "split"]].drop_duplicates()
    if len(sets) != 1:
        found = [f"{d} split {s}" for d, s in sets.itertuples(index=False)] or ["none"]
        raise AnalysisError(
            f"per-image tests need exactly one test set; found {', '.join(found[:6])}; pass --dataset and --split"
        )
    a = frame[frame["method"] == method_a].set_index("item_id")
    b = frame[frame["method"] == method_b].set_index("item_id")
    if a.index.duplicated().any() or b.index.duplicated().any():
        raise AnalysisError("per-image tests: an item appears twice for one method (several train datasets?); filter first")
    if set(a.index) != set(b.index):
        raise AnalysisError(
            f"methods '{method_a}' and '{method_b}' were tested on different items; run both on the same split file"
        )
    b = b.loc[a.index]
    truth = a["quality"].to_numpy(float)
    pa, pb = a["prediction"].to_numpy(float), b["prediction"].to_numpy(float)
    return PerImageTests(
        method_a=method_a,
        method_b=method_b,
        dataset=str(sets.iloc[0]["dataset"]),
        split=split_value(sets.iloc[0]["split"]),
        n=len(truth),
        f_test=f_test(truth, pa, pb),
        williams=williams_from_predictions(truth, pa, pb, metric=metric, alternative=alternative),
        bootstrap=bootstrap_difference(truth, pa, pb, metric=metric, n_resamples=n_resamples,
                                       confidence_level=confidence_level, seed=seed),
    )
