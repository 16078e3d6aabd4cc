"""The Krasula et al. (QoMEX 2016) performance analysis: can a method's score differences tell
which pairs of images observers found different, and which of the two they found better?

From per-image MOS, standard deviation and number of ratings of one test set:

1. **Pairs.** Every unordered pair (i, j) of test images is *different* when the MOS difference
   is significant and *similar* otherwise. The paper takes the test from the individual ratings;
   the databases publish only MOS, std and counts, so we use Welch's two-sample t-test from these
   summaries (:func:`scipy.stats.ttest_ind_from_stats`, ``equal_var=False``, two-sided, level
   ``alpha``, default 0.05). Pairs whose test is undefined (both std 0) are different when their
   MOS differ. Items with fewer than two ratings are left out.
2. **Different vs similar.** Score of a pair: the absolute difference of the method's
   predictions ``|O_i - O_j|``. ``AUC_DS`` is the area under the ROC curve of telling different
   pairs (positives) from similar ones (negatives) by that score: the probability that a random
   different pair has a larger ``|dO|`` than a random similar pair, ties counted half
   (Mann-Whitney).
3. **Better vs worse.** Only the different pairs; each is taken in both orders, as the paper
   does: ``dO = O_better - O_worse`` is a positive ("first is better") and its mirror ``-dO`` a
   negative. ``AUC_BW`` is the ROC area of that classification, and the **percent correct**
   ``C0`` the share of different pairs whose ``dO`` has the sign of the MOS difference
   (``dO = 0`` counts half), the classification at threshold 0.
4. **Significance of AUC differences** between methods: DeLong, DeLong & Clarke-Pearson (1988)
   for correlated ROC curves (the same pairs scored by every method), in the fast form of Sun & Xu
   (2014): ``z = (A_1 - A_2) / sqrt(var_1 + var_2 - 2 cov_12)``, two-sided normal p-value. The
   pairs share images, so they are not independent as DeLong assumes; the variances are therefore
   somewhat optimistic (the paper has the same caveat).

MOS direction follows the dataset (a DMOS is inverted so that "better" means better quality);
predictions are taken as higher-is-better, which every method of this package is.

Result objects follow scipy's style; :class:`KrasulaResult` holds everything per test set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pandas as pd

from ..errors import AnalysisError
from ..store import split_value

ANALYSES = ("different_similar", "better_worse")
REQUIRED = ("std", "n_ratings")


# --------------------------------------------------------------------------- pairs


@dataclass(frozen=True)
class Pairs:
    first: np.ndarray  # item index i (i < j)
    second: np.ndarray  # item index j
    different: np.ndarray  # bool: MOS difference significant
    first_better: np.ndarray  # bool: MOS_i > MOS_j (meaningful where different)
    pvalue: np.ndarray


def significant_pairs(mos, std, n_ratings, alpha: float = 0.05, higher_is_better: bool = True) -> Pairs:
    """Every unordered pair of items with Welch's t-test on their MOS difference (see module docstring)."""
    from scipy import stats

    if not 0.0 < alpha < 1.0:
        raise AnalysisError(f"alpha must lie in (0, 1), not {alpha}")
    mos = np.asarray(mos, dtype=float)
    std = np.asarray(std, dtype=float)
    counts = np.asarray(n_ratings, dtype=float)
    if not (mos.shape == std.shape == counts.shape) or mos.ndim != 1:
        raise AnalysisError("mos, std and n_ratings must be 1-d arrays of one length")
    if not (np.isfinite(mos).all() and np.isfinite(std).all() and np.isfinite(counts).all()):
        raise AnalysisError("mos, std and n_ratings must be finite; drop the items that lack them")
    quality = mos if higher_is_better else -mos
    first, second = np.triu_indices(len(mos), k=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        result = stats.ttest_ind_from_stats(mos[first], std[first], counts[first], mos[second], std[second],
                                            counts[second], equal_var=False)
    pvalue = np.asarray(result.pvalue, dtype=float)
    differ = mos[first] != mos[second]
    different = np.where(np.isfinite(pvalue), pvalue < alpha, differ)
    return Pairs(first, second, different.astype(bool), quality[first] > quality[second], pvalue)


# --------------------------------------------------------------------------- ROC, AUC, DeLong


def auc(positive, negative) -> float:
    """Area under the ROC curve: P(positive > negative) + P(tie) / 2 (Mann-Whitney U / (m n))."""
    from scipy import stats

    positive = np.asarray(positive, dtype=float)
    negative = np.asarray(negative, dtype=float)
    m, n = len(positive), len(negative)
    if m == 0 or n == 0:
        return float("nan")
    ranks = stats.rankdata(np.concatenate([positive, negative]))
    return float((ranks[:m].sum() - m * (m + 1) / 2.0) / (m * n))


def roc_curve(positive, negative) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every threshold (score >= t is called positive), from
    (0, 0) to (1, 1)."""
    positive = np.asarray(positive, dtype=float)
    negative = np.asarray(negative, dtype=float)
    scores = np.concatenate([positive, negative])
    labels = np.concatenate([np.ones(len(positive)), np.zeros(len(negative))])
    order = np.argsort(-scores, kind="stable")
    scores, labels = scores[order], labels[order]
    last = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]  # the last of each run of equal scores
    tp = np.cumsum(labels)[last]
    fp = (last + 1) - tp
    tpr = np.r_[0.0, tp / max(len(positive), 1)]
    fpr = np.r_[0.0, fp / max(len(negative), 1)]
    return fpr, tpr


@dataclass(frozen=True)
class DeLongResult:
    auc: np.ndarray  # per method
    covariance: np.ndarray  # k x k covariance of the AUC estimates
    pvalue: np.ndarray  # k x k two-sided p-values of A_row - A_column (NaN on the diagonal)
    statistic: np.ndarray  # k x k z statistics


def _midranks(x: np.ndarray) -> np.ndarray:
    from scipy import stats

    return stats.rankdata(x, axis=-1)


def delong(positive_scores, negative_scores) -> DeLongResult:
    """DeLong's test for k correlated ROC curves on the same cases.

    ``positive_scores``: (k, m) scores of the m positive cases by each of k methods;
    ``negative_scores``: (k, n). Fast algorithm of Sun & Xu (2014): structural components
    ``V10 = (rank in all - rank among positives) / n`` and ``V01 = 1 - (rank in all - rank among
    negatives) / m``; ``cov = S10 / m + S01 / n``.
    """
    from scipy import stats

    positive = np.atleast_2d(np.asarray(positive_scores, dtype=float))
    negative = np.atleast_2d(np.asarray(negative_scores, dtype=float))
    k, m = positive.shape
    n = negative.shape[1]
    if m < 2 or n < 2:
        raise AnalysisError(f"DeLong's test needs two or more positive and negative cases, got {m} and {n}")
    combined = _midranks(np.concatenate([positive, negative], axis=1))
    v10 = (combined[:, :m] - _midranks(positive)) / n
    v01 = 1.0 - (combined[:, m:] - _midranks(negative)) / m
    aucs = v10.mean(axis=1)
    covariance = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    variance = np.diag(covariance)
    difference = aucs[:, None] - aucs[None, :]
    spread = variance[:, None] + variance[None, :] - 2.0 * covariance
    positive_spread = spread > 0
    z = np.divide(difference, np.sqrt(np.where(positive_spread, spread, 1.0)))
    # identical curves (no spread) differ by nothing or, numerically, by an infinitely sure amount
    z = np.where(positive_spread, z, np.where(difference == 0, 0.0, np.copysign(np.inf, difference)))
    pvalue = 2.0 * stats.norm.sf(np.abs(z))
    np.fill_diagonal(pvalue, np.nan)
    np.fill_diagonal(z, np.nan)
    return DeLongResult(aucs, covariance, pvalue, z)


# --------------------------------------------------------------------------- the analysis


@dataclass(frozen=True)
class KrasulaResult:
    methods: tuple[str, ...]
    n_items: int
    n_pairs: int
    n_different: int
    n_similar: int
    alpha: float
    summary: pd.DataFrame  # per method: auc_ds, auc_bw, percent_correct (0-100)
    pvalue_ds: pd.DataFrame  # DeLong p-values of AUC_DS(row) - AUC_DS(column)
    pvalue_bw: pd.DataFrame
    decision_ds: pd.DataFrame  # 1 / 0 / -1: row's AUC significantly larger / not / smaller
    decision_bw: pd.DataFrame
    roc: dict = field(default_factory=dict, repr=False)  # (analysis, method) -> (fpr, tpr)
    notes: tuple[str, ...] = ()


def _decision(pvalue: np.ndarray, aucs: np.ndarray, alpha: float) -> np.ndarray:
    sign = np.sign(aucs[:, None] - aucs[None, :])
    decision = np.where(np.nan_to_num(pvalue, nan=1.0) < alpha, sign, 0).astype(int)
    np.fill_diagonal(decision, 0)
    return decision


def krasula_analysis(
    mos,
    std,
    n_ratings,
    predictions: Mapping[str, np.ndarray],
    alpha: float = 0.05,
    higher_is_better: bool = True,
    roc: bool = True,
) -> KrasulaResult:
    """The whole analysis on one test set; ``predictions`` maps method names to per-item scores
    in the order of ``mos`` (see the module docstring)."""
    if not predictions:
        raise AnalysisError("the Krasula analysis needs at least one method's predictions")
    counts = np.asarray(n_ratings, dtype=float)
    keep = counts >= 2
    notes = []
    if not keep.all():
        notes.append(f"{int((~keep).sum())} items with fewer than two ratings left out")
    mos = np.asarray(mos, dtype=float)[keep]
    std = np.asarray(std, dtype=float)[keep]
    counts = counts[keep]
    methods = tuple(predictions)
    scores = np.stack([np.asarray(predictions[m], dtype=float)[keep] for m in methods])
    if scores.shape[1] != len(mos) or not np.isfinite(scores).all():
        raise AnalysisError("predictions must be finite and cover the same items as the MOS")
    if len(mos) < 3:
        raise AnalysisError(f"the Krasula analysis needs three or more items, got {len(mos)}")
    pairs = significant_pairs(mos, std, counts, alpha, higher_is_better)
    delta = scores[:, pairs.first] - scores[:, pairs.second]  # k x pairs
    different = pairs.different
    n_diff, n_sim = int(different.sum()), int((~different).sum())
    if n_diff < 2 or n_sim < 2:
        raise AnalysisError(
            f"{len(mos)} items give {n_diff} significantly different and {n_sim} similar pairs; the analysis needs "
            "two or more of each (more items, or a larger --alpha)"
        )
    magnitude = np.abs(delta)
    ds = delong(magnitude[:, different], magnitude[:, ~different])
    oriented = np.where(pairs.first_better[different], delta[:, different], -delta[:, different])
    bw = delong(oriented, -oriented)
    correct = ((oriented > 0) + 0.5 * (oriented == 0)).mean(axis=1) * 100.0
    summary = pd.DataFrame({"method": list(methods), "auc_ds": ds.auc, "auc_bw": bw.auc, "percent_correct": correct})
    frame = lambda values: pd.DataFrame(values, index=list(methods), columns=list(methods))  # noqa: E731
    curves = {}
    if roc:
        for i, method in enumerate(methods):
            curves[("different_similar", method)] = roc_curve(magnitude[i, different], magnitude[i, ~different])
            curves[("better_worse", method)] = roc_curve(oriented[i], -oriented[i])
    return KrasulaResult(
        methods=methods, n_items=int(len(mos)), n_pairs=int(len(different)), n_different=n_diff, n_similar=n_sim,
        alpha=alpha, summary=summary, pvalue_ds=frame(ds.pvalue), pvalue_bw=frame(bw.pvalue),
        decision_ds=frame(_decision(ds.pvalue, ds.auc, alpha)), decision_bw=frame(_decision(bw.pvalue, bw.auc, alpha)),
        roc=curves, notes=tuple(notes),
    )


# --------------------------------------------------------------------------- from a predictions table


def missing_labels(predictions: pd.DataFrame) -> dict[str, str]:
    """Per test dataset of a predictions table: why the analysis cannot run on it ('' when it can)."""
    reasons = {}
    for dataset, group in predictions.groupby("dataset", sort=True):
        lacking = [c for c in REQUIRED if c not in group.columns or group[c].isna().all()]
        if lacking:
            what = " and ".join("per-image standard deviations" if c == "std" else "numbers of ratings" for c in lacking)
            reasons[str(dataset)] = (
                f"its predictions carry no {what} (the dataset does not publish them in the files read, or the runs "
                "predate them: delete the run folders and re-run `biqa train`)"
            )
        else:
            reasons[str(dataset)] = ""
    return reasons


def krasula_test_set(predictions: pd.DataFrame, dataset: str, split: int, alpha: float = 0.05,
                     higher_is_better: bool = True, roc: bool = True) -> KrasulaResult:
    """The analysis on one (dataset, split) test set of a predictions table (within-dataset runs);
    items every method predicted, truth ``score`` with its ``std`` and ``n_ratings``."""
    frame = predictions
    if "subset" in frame.columns:
        frame = frame[frame["subset"] == "test"]
    if "train_dataset" in frame.columns:
        frame = frame[frame["train_dataset"].fillna(frame["dataset"]) == frame["dataset"]]
    frame = frame[(frame["dataset"] == dataset) & (frame["split"] == split)]
    if frame.empty:
        raise AnalysisError(f"no test predictions on {dataset} split {split}")
    reason = missing_labels(frame).get(str(dataset), "")
    if reason:
        raise AnalysisError(f"Krasula analysis on {dataset}: {reason}")
    if frame.duplicated(["method", "item_id"]).any():
        raise AnalysisError(f"{dataset} split {split}: an item appears twice for one method; filter the table first")
    wide = frame.pivot(index="item_id", columns="method", values="prediction").dropna()
    labels = frame.drop_duplicates("item_id").set_index("item_id").loc[wide.index]
    labels = labels[labels[list(REQUIRED) + ["score"]].notna().all(axis=1)]
    wide = wide.loc[labels.index]
    methods = sorted(wide.columns, key=str)
    result = krasula_analysis(labels["score"].to_numpy(float), labels["std"].to_numpy(float),
                              labels["n_ratings"].to_numpy(float), {m: wide[m].to_numpy(float) for m in methods},
                              alpha=alpha, higher_is_better=higher_is_better, roc=roc)
    return result


def krasula_records(predictions: pd.DataFrame, alpha: float = 0.05, infos: Mapping | None = None) -> tuple[pd.DataFrame, dict]:
    """Per (dataset, split, method): AUC_DS, AUC_BW and percent correct for every test set whose
    dataset carries std and counts; and, per dataset, why it was left out (only those left out)."""
    frame = predictions
    if "subset" in frame.columns:
        frame = frame[frame["subset"] == "test"]
    if "train_dataset" in frame.columns:
        frame = frame[frame["train_dataset"].fillna(frame["dataset"]) == frame["dataset"]]
    reasons = {d: r for d, r in missing_labels(frame).items() if r}
    rows = []
    for (dataset, split), _group in frame.groupby(["dataset", "split"], sort=True):
        if str(dataset) in reasons:
            continue
        info = (infos or {}).get(dataset)
        direction = True if info is None else bool(info.higher_is_better)
        try:
            result = krasula_test_set(frame, dataset, split, alpha, direction, roc=False)
        except AnalysisError as exc:
            reasons.setdefault(str(dataset), str(exc))
            continue
        for row in result.summary.itertuples(index=False):
            rows.append({"dataset": dataset, "split": split_value(split), "method": row.method, "n_items": result.n_items,
                         "n_different": result.n_different, "n_similar": result.n_similar, "auc_ds": row.auc_ds,
                         "auc_bw": row.auc_bw, "percent_correct": row.percent_correct, "alpha": alpha})
    columns = ["dataset", "split", "method", "n_items", "n_different", "n_similar", "auc_ds", "auc_bw", "percent_correct", "alpha"]
    return pd.DataFrame(rows, columns=columns), reasons
