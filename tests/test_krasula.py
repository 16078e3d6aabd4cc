"""The Krasula et al. (2016) analysis against hand computations from the paper's definitions."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from biqa_bench.errors import AnalysisError
from biqa_bench.evaluation.krasula import (
    auc, delong, krasula_analysis, krasula_records, krasula_test_set, roc_curve, significant_pairs,
)

# five images: two pairs of near-equal MOS (similar), the rest far apart (different)
MOS = np.array([10.0, 12.0, 50.0, 52.0, 80.0])
STD = np.array([5.0, 5.0, 5.0, 5.0, 5.0])
COUNT = np.array([20, 20, 20, 20, 20])
A = np.array([1.0, 3.0, 2.0, 6.0, 9.0])
B = np.array([2.0, 1.0, 5.0, 4.0, 3.0])


def welch_p(i, j):
    """Welch's t-test written out: t = dMOS / sqrt(s_i^2/n_i + s_j^2/n_j), Welch-Satterthwaite df."""
    vi, vj = STD[i] ** 2 / COUNT[i], STD[j] ** 2 / COUNT[j]
    t = (MOS[i] - MOS[j]) / math.sqrt(vi + vj)
    df = (vi + vj) ** 2 / (vi ** 2 / (COUNT[i] - 1) + vj ** 2 / (COUNT[j] - 1))
    return 2 * stats.t.sf(abs(t), df)


def hand_analysis(scores):
    pairs = list(itertools.combinations(range(5), 2))
    different = [(i, j) for i, j in pairs if welch_p(i, j) < 0.05]
    similar = [(i, j) for i, j in pairs if welch_p(i, j) >= 0.05]

    def wins(x, y):
        return 1.0 if x > y else 0.5 if x == y else 0.0

    d_scores = [abs(scores[i] - scores[j]) for i, j in different]
    s_scores = [abs(scores[i] - scores[j]) for i, j in similar]
    auc_ds = sum(wins(x, y) for x in d_scores for y in s_scores) / (len(d_scores) * len(s_scores))
    # better minus worse, and the mirror pair (worse minus better)
    better = [scores[i] - scores[j] if MOS[i] > MOS[j] else scores[j] - scores[i] for i, j in different]
    worse = [-x for x in better]
    auc_bw = sum(wins(x, y) for x in better for y in worse) / (len(better) * len(worse))
    correct = 100.0 * sum(wins(x, 0.0) for x in better) / len(better)
    return different, similar, auc_ds, auc_bw, correct


def test_pairs_are_classified_by_welchs_test():
    pairs = significant_pairs(MOS, STD, COUNT)
    different, similar, *_ = hand_analysis(A)
    assert sorted(similar) == [(0, 1), (2, 3)]
    found = {(int(i), int(j)) for i, j, d in zip(pairs.first, pairs.second, pairs.different) if d}
    assert found == set(different)
    np.testing.assert_allclose(pairs.pvalue, [welch_p(i, j) for i, j in zip(pairs.first, pairs.second)])


def test_aucs_and_percent_correct_equal_the_hand_computation():
    result = krasula_analysis(MOS, STD, COUNT, {"a": A, "b": B})
    assert (result.n_pairs, result.n_different, result.n_similar) == (10, 8, 2)
    for method, scores in (("a", A), ("b", B)):
        _, _, auc_ds, auc_bw, correct = hand_analysis(scores)
        row = result.summary.set_index("method").loc[method]
        assert row["auc_ds"] == pytest.approx(auc_ds)
        assert row["auc_bw"] == pytest.approx(auc_bw)
        assert row["percent_correct"] == pytest.approx(correct)
    # by hand: of the 8 different pairs, a orders only (1, 2) the wrong way round
    assert result.summary.set_index("method").loc["a", "percent_correct"] == pytest.approx(100 * 7 / 8)


def test_dmos_direction_flips_better_and_worse():
    flipped = krasula_analysis(-MOS, STD, COUNT, {"a": A}, higher_is_better=False)
    plain = krasula_analysis(MOS, STD, COUNT, {"a": A})
    pd.testing.assert_frame_equal(flipped.summary, plain.summary)


def test_auc_and_roc_agree_with_scikit_learn():
    from sklearn.metrics import roc_auc_score, roc_curve as sk_roc

    rng = np.random.default_rng(0)
    positive = np.round(rng.normal(1, 1, 40), 1)
    negative = np.round(rng.normal(0, 1, 60), 1)
    labels = np.r_[np.ones(40), np.zeros(60)]
    assert auc(positive, negative) == pytest.approx(roc_auc_score(labels, np.r_[positive, negative]))
    fpr, tpr = roc_curve(positive, negative)
    sk_fpr, sk_tpr, _ = sk_roc(labels, np.r_[positive, negative], drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)


def test_delong_matches_the_structural_components_written_out():
    rng = np.random.default_rng(1)
    m, n = 15, 20
    positive = np.round(rng.normal(1, 1, (2, m)), 1)
    negative = np.round(rng.normal(0, 1, (2, n)), 1)
    result = delong(positive, negative)

    def psi(x, y):
        return 1.0 if x > y else 0.5 if x == y else 0.0

    # DeLong et al. (1988): V10(X_i) = mean_j psi(X_i, Y_j), V01(Y_j) = mean_i psi(X_i, Y_j)
    v10 = np.array([[np.mean([psi(x, y) for y in negative[k]]) for x in positive[k]] for k in range(2)])
    v01 = np.array([[np.mean([psi(x, y) for x in positive[k]]) for y in negative[k]] for k in range(2)])
    aucs = v10.mean(axis=1)
    s10 = np.array([[np.sum((v10[a] - aucs[a]) * (v10[b] - aucs[b])) / (m - 1) for b in range(2)] for a in range(2)])
    s01 = np.array([[np.sum((v01[a] - aucs[a]) * (v01[b] - aucs[b])) / (n - 1) for b in range(2)] for a in range(2)])
    covariance = s10 / m + s01 / n
    z = (aucs[0] - aucs[1]) / math.sqrt(covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1])
    np.testing.assert_allclose(result.auc, aucs)
    np.testing.assert_allclose(result.covariance, covariance)
    assert result.pvalue[0, 1] == pytest.approx(2 * stats.norm.sf(abs(z)))
    assert result.pvalue[1, 0] == pytest.approx(result.pvalue[0, 1])


def test_a_better_method_wins_significantly_on_a_larger_set():
    rng = np.random.default_rng(2)
    mos = rng.uniform(0, 100, 150)
    result = krasula_analysis(mos, np.full(150, 10.0), np.full(150, 20),
                              {"good": mos + rng.normal(0, 5, 150), "poor": mos + rng.normal(0, 30, 150)})
    summary = result.summary.set_index("method")
    assert summary.loc["good", "auc_ds"] > summary.loc["poor", "auc_ds"]
    assert result.decision_ds.loc["good", "poor"] == 1 and result.decision_ds.loc["poor", "good"] == -1
    assert result.decision_bw.loc["good", "poor"] == 1
    fpr, tpr = result.roc[("better_worse", "good")]
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1


def _table(with_labels=True):
    rows = []
    for split in (0, 1):
        for method, scores in (("a", A), ("b", B)):
            frame = pd.DataFrame({"method": method, "train_dataset": "d", "dataset": "d", "split": split,
                                  "subset": "test", "item_id": [f"i{k}" for k in range(5)], "quality": MOS,
                                  "score": MOS, "prediction": scores})
            if with_labels:
                frame["std"], frame["n_ratings"] = STD, COUNT
            rows.append(frame)
    return pd.concat(rows, ignore_index=True)


def test_from_a_predictions_table():
    records, reasons = krasula_records(_table())
    assert reasons == {}
    assert len(records) == 4
    _, _, auc_ds, _, _ = hand_analysis(A)
    assert records[(records.method == "a")]["auc_ds"].tolist() == pytest.approx([auc_ds, auc_ds])
    assert krasula_test_set(_table(), "d", 1).n_items == 5


def test_a_dataset_without_std_gets_a_one_line_reason():
    records, reasons = krasula_records(_table(with_labels=False))
    assert records.empty
    assert "standard deviations" in reasons["d"] and "\n" not in reasons["d"]
    with pytest.raises(AnalysisError, match="Krasula analysis on d"):
        krasula_test_set(_table(with_labels=False), "d", 0)
