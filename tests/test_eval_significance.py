"""Significance tests: the issue's known values, scipy references, Holm, per-image tests."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from biqa_bench.errors import AnalysisError
from biqa_bench.evaluation.logistic import fit_logistic
from biqa_bench.evaluation.significance import (
    bootstrap_difference,
    check_split_hashes,
    compare_methods,
    f_test,
    holm_adjust,
    per_image_tests,
    resample_correlations,
    residual_f_test,
    split_metric_table,
    williams_from_predictions,
    williams_test,
)

A = (0.90, 0.91, 0.89, 0.92, 0.90)
B = (0.88, 0.90, 0.88, 0.90, 0.89)


def as_values(**methods):
    return {name: dict(enumerate(v)) for name, v in methods.items()}


# ----------------------------------------------------------------- known values of the issue


def test_paired_t_known_value():
    result = compare_methods(as_values(A=A, B=B), test="paired")
    assert result.statistic.loc["A", "B"] == pytest.approx(5.7155, abs=1e-4)
    assert result.statistic.loc["B", "A"] == pytest.approx(-5.7155, abs=1e-4)
    assert result.pvalue.loc["A", "B"] == pytest.approx(0.00464, abs=1e-5)
    assert result.decision.loc["A", "B"] == 1 and result.decision.loc["B", "A"] == -1
    assert result.mean_difference.loc["A", "B"] == pytest.approx(0.014)
    assert result.df.loc["A", "B"] == 4


def test_welch_known_value():
    result = compare_methods(as_values(A=A, B=B), test="welch")
    assert result.statistic.loc["A", "B"] == pytest.approx(2.0642, abs=1e-4)
    assert result.pvalue.loc["A", "B"] == pytest.approx(0.0735, abs=1e-4)
    assert result.df.loc["A", "B"] == pytest.approx(7.87, abs=0.01)
    assert result.decision.loc["A", "B"] == 0  # not significant at 0.05


def test_wilcoxon_known_value():
    result = compare_methods(as_values(A=A, B=B), test="wilcoxon")
    assert result.pvalue.loc["A", "B"] == pytest.approx(0.0625)
    assert result.decision.loc["A", "B"] == 0
    # a larger alpha makes it significant, with the right direction
    loose = compare_methods(as_values(A=A, B=B), test="wilcoxon", alpha=0.1)
    assert loose.decision.loc["A", "B"] == 1 and loose.decision.loc["B", "A"] == -1


def test_f_test_known_value():
    result = residual_f_test([1, -2, 2, -1, 3, -3], [1, -1, 1, -1, 2, -2])
    assert result.statistic == pytest.approx(2.333, abs=1e-3)
    assert result.pvalue == pytest.approx(0.374, abs=1e-3)
    assert (result.df_numerator, result.df_denominator) == (5, 5)
    assert result.kurtosis_a == pytest.approx(stats.kurtosis([1, -2, 2, -1, 3, -3], fisher=False))


def test_williams_known_value():
    result = williams_test(0.65, 0.55, 0.30, 50, alternative="greater")
    assert result.statistic == pytest.approx(0.816, abs=1e-3)
    assert result.pvalue == pytest.approx(0.2093, abs=1e-4)
    assert result.df == 47
    two = williams_test(0.65, 0.55, 0.30, 50)
    assert two.pvalue == pytest.approx(2 * 0.2093, abs=2e-4)


# ----------------------------------------------------------------- matrices against scipy


def test_one_sided_and_rmse_direction():
    values = as_values(A=A, B=B)
    greater = compare_methods(values, alternative="greater")
    assert greater.pvalue.loc["A", "B"] == pytest.approx(stats.ttest_rel(A, B, alternative="greater").pvalue)
    assert greater.pvalue.loc["B", "A"] == pytest.approx(stats.ttest_rel(B, A, alternative="greater").pvalue)
    assert greater.decision.loc["A", "B"] == 1 and greater.decision.loc["B", "A"] == -1
    # as RMSE, larger values are worse: A is now the worse method
    as_rmse = compare_methods(values, metric="rmse")
    assert as_rmse.decision.loc["A", "B"] == -1 and as_rmse.decision.loc["B", "A"] == 1
    assert as_rmse.mean_difference.loc["A", "B"] == pytest.approx(0.014)


def test_matrix_against_scipy_on_random_values():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.8, 0.9, 10)
    methods = {f"m{k}": base + k * 0.01 + rng.normal(0, 0.01, 10) for k in range(4)}
    values = as_values(**methods)
    for test, reference in (("paired", lambda x, y: stats.ttest_rel(x, y).pvalue),
                            ("welch", lambda x, y: stats.ttest_ind(x, y, equal_var=False).pvalue),
                            ("wilcoxon", lambda x, y: stats.wilcoxon(x, y).pvalue)):
        result = compare_methods(values, test=test)
        for i in methods:
            assert result.decision.loc[i, i] == 0
            for j in methods:
                if i != j:
                    assert result.pvalue.loc[i, j] == pytest.approx(reference(methods[i], methods[j]))
                    expected = 0 if result.pvalue.loc[i, j] >= 0.05 else int(np.sign(np.mean(methods[i] - methods[j])))
                    assert result.decision.loc[i, j] == expected
        assert (result.decision.to_numpy() == -result.decision.to_numpy().T).all()


def test_holm_adjust_by_hand():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone 0.06
    assert holm_adjust(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_adjust([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_holm_in_matrix():
    rng = np.random.default_rng(1)
    methods = {f"m{k}": 0.8 + k * 0.004 + rng.normal(0, 0.005, 8) for k in range(3)}
    plain = compare_methods(as_values(**methods))
    holm = compare_methods(as_values(**methods), holm=True)
    pairs = [("m0", "m1"), ("m0", "m2"), ("m1", "m2")]
    raw = [plain.pvalue.loc[i, j] for i, j in pairs]
    for (i, j), adjusted in zip(pairs, holm_adjust(raw)):
        assert holm.pvalue_adjusted.loc[i, j] == pytest.approx(adjusted)
        assert holm.pvalue_adjusted.loc[j, i] == pytest.approx(adjusted)
        assert holm.decision.loc[i, j] == (0 if adjusted >= 0.05 else int(np.sign(plain.mean_difference.loc[i, j])))


def test_long_dataframe_input_equals_dict_input():
    frame = pd.DataFrame({"method": ["A"] * 5 + ["B"] * 5, "split": list(range(5)) * 2, "srocc": A + B})
    result = compare_methods(frame)
    assert result.pvalue.loc["A", "B"] == pytest.approx(0.00464, abs=1e-5)
    assert result.to_dict()["decision"]["A"]["B"] == 1


def test_bad_inputs_raise_analysis_errors():
    with pytest.raises(AnalysisError, match="different splits"):
        compare_methods({"A": {0: 0.9, 1: 0.8}, "B": {0: 0.9, 2: 0.8}})
    with pytest.raises(AnalysisError, match="at least 2 splits"):
        compare_methods({"A": {0: 0.9}, "B": {0: 0.8}})
    with pytest.raises(AnalysisError, match="at least 2 methods"):
        compare_methods({"A": {0: 0.9, 1: 0.8}})
    with pytest.raises(AnalysisError, match="NaN"):
        compare_methods({"A": {0: 0.9, 1: float("nan")}, "B": {0: 0.9, 1: 0.8}})
    with pytest.raises(AnalysisError, match="unknown test"):
        compare_methods(as_values(A=A, B=B), test="anova")


def test_identical_methods_are_indistinguishable():
    for test in ("paired", "welch", "wilcoxon"):
        result = compare_methods(as_values(A=A, B=A), test=test)
        assert result.decision.loc["A", "B"] == 0 and result.pvalue.loc["A", "B"] == 1.0


def test_check_split_hashes():
    runs = pd.DataFrame({"method": ["a", "b", "a", "b"], "train_dataset": ["d"] * 4, "split": [0, 0, 1, 1],
                         "split_hash": ["h", "h", "h", "h"], "folder": ["f1", "f2", "f3", "f4"]})
    check_split_hashes(runs)
    runs.loc[3, "split_hash"] = "other"
    with pytest.raises(AnalysisError, match="different split files"):
        check_split_hashes(runs)
    runs.loc[3, "split_hash"] = None
    with pytest.raises(AnalysisError, match="no split_hash"):
        check_split_hashes(runs)


# ----------------------------------------------------------------- per image


def per_image_data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    quality = rng.uniform(0, 100, n)
    a = quality / 100 + rng.normal(0, 0.08, n)
    b = quality / 100 + rng.normal(0, 0.16, n)
    return quality, a, b


def test_f_test_on_predictions_uses_each_methods_mapping():
    quality, a, b = per_image_data()
    result = f_test(quality, a, b)
    ra = quality - fit_logistic(a, quality).predict(a)
    rb = quality - fit_logistic(b, quality).predict(b)
    ratio = np.var(ra, ddof=1) / np.var(rb, ddof=1)
    assert result.statistic == pytest.approx(ratio)
    assert result.pvalue == pytest.approx(2 * stats.f.cdf(ratio, len(ra) - 1, len(rb) - 1))
    assert result.statistic < 1 and result.pvalue < 0.05
    assert result.kurtosis_a == pytest.approx(stats.kurtosis(ra, fisher=False))
    assert result.kurtosis_b == pytest.approx(stats.kurtosis(rb, fisher=False))


def test_kurtosis_flag():
    rng = np.random.default_rng(0)
    gaussian = residual_f_test(rng.normal(size=2000), rng.normal(size=2000))
    assert 2 <= gaussian.kurtosis_a <= 4 and gaussian.kurtosis_ok
    uniform = residual_f_test(rng.uniform(-1, 1, 2000), rng.normal(size=2000))
    assert uniform.kurtosis_a == pytest.approx(1.8, abs=0.1) and not uniform.kurtosis_ok
    heavy = residual_f_test(rng.standard_t(3, 2000), rng.normal(size=2000))
    assert heavy.kurtosis_a > 4 and not heavy.kurtosis_ok


def test_williams_from_predictions_matches_formula_on_pearson():
    quality, a, b = per_image_data()
    result = williams_from_predictions(quality, a, b, metric="plcc", alternative="greater")
    ma, mb = fit_logistic(a, quality).predict(a), fit_logistic(b, quality).predict(b)
    r12, r13, r23 = (np.corrcoef(x, y)[0, 1] for x, y in ((quality, ma), (quality, mb), (ma, mb)))
    n = len(quality)
    det = 1 - r12**2 - r13**2 - r23**2 + 2 * r12 * r13 * r23
    t = (r12 - r13) * np.sqrt((n - 1) * (1 + r23)) / np.sqrt(2 * (n - 1) / (n - 3) * det + ((r12 + r13) / 2) ** 2 * (1 - r23) ** 3)
    assert result.statistic == pytest.approx(t)
    assert result.pvalue == pytest.approx(stats.t.sf(t, n - 3))
    assert result.pvalue < 0.05


def test_bootstrap_resample_metric_matches_scipy():
    quality, a, _ = per_image_data(n=60)
    indices = np.random.default_rng(5).integers(0, 60, size=(4, 60))
    for metric, reference in (("srocc", stats.spearmanr), ("plcc", stats.pearsonr)):
        values = resample_correlations(quality, a, indices, metric)
        for row, value in zip(indices, values):
            assert value == pytest.approx(reference(quality[row], a[row]).statistic)


def test_bootstrap_is_seeded_and_agrees_with_scipy_bootstrap():
    quality, a, b = per_image_data(n=200)
    first = bootstrap_difference(quality, a, b, metric="srocc", n_resamples=1000, seed=3)
    again = bootstrap_difference(quality, a, b, metric="srocc", n_resamples=1000, seed=3)
    assert first.confidence_interval == again.confidence_interval
    assert first.statistic == pytest.approx(stats.spearmanr(quality, a).statistic - stats.spearmanr(quality, b).statistic)
    reference = stats.bootstrap(
        (quality, a, b),
        lambda q, x, y: stats.spearmanr(q, x).statistic - stats.spearmanr(q, y).statistic,
        paired=True, vectorized=False, n_resamples=1000, method="percentile", random_state=np.random.default_rng(9),
    )
    # independent resamples: the intervals agree up to Monte Carlo error
    assert first.confidence_interval.low == pytest.approx(reference.confidence_interval.low, abs=0.015)
    assert first.confidence_interval.high == pytest.approx(reference.confidence_interval.high, abs=0.015)
    assert first.confidence_interval.low > 0  # A is clearly better
    plcc = bootstrap_difference(quality, a, b, metric="plcc", n_resamples=500, seed=0)
    assert plcc.confidence_interval.low < plcc.statistic < plcc.confidence_interval.high


def _table(quality, predictions_by_method, split=0, dataset="toy"):
    frames = []
    for method, prediction in predictions_by_method.items():
        frames.append(pd.DataFrame({"method": method, "train_dataset": dataset, "item_id": [str(i) for i in range(len(quality))],
                                    "dataset": dataset, "split": split, "subset": "test", "quality": quality,
                                    "score": quality, "prediction": prediction}))
    return pd.concat(frames, ignore_index=True)


def test_per_image_tests_on_a_table():
    quality, a, b = per_image_data()
    table = _table(quality, {"A": a, "B": b})
    # shuffle the rows of B: items are matched by id
    table = pd.concat([table[table.method == "A"], table[table.method == "B"].sample(frac=1, random_state=0)])
    result = per_image_tests(table, "A", "B", n_resamples=300, seed=1)
    assert result.n == len(quality)
    assert result.f_test.statistic == pytest.approx(f_test(quality, a, b).statistic)
    assert result.williams.statistic == pytest.approx(williams_from_predictions(quality, a, b).statistic)
    assert result.bootstrap.confidence_interval.low > 0
    assert result.to_dict()["f_test"]["kurtosis_ok"] == result.f_test.kurtosis_ok
    two_splits = pd.concat([table, _table(quality, {"A": a, "B": b}, split=1)])
    with pytest.raises(AnalysisError, match="exactly one test set"):
        per_image_tests(two_splits, "A", "B")
    assert per_image_tests(two_splits, "A", "B", split=1, n_resamples=100).split == 1
    with pytest.raises(AnalysisError, match="different items"):
        per_image_tests(table.iloc[:-1], "A", "B")
    nan = table.copy()
    nan.loc[nan.index[0], "prediction"] = np.nan
    with pytest.raises(AnalysisError, match="NaN"):
        per_image_tests(nan, "A", "B")


def test_split_metric_table_matches_scipy():
    rng = np.random.default_rng(4)
    frames = []
    for split in range(3):
        quality = rng.uniform(0, 100, 80)
        frames.append(_table(quality, {"A": quality + rng.normal(0, 10, 80)}, split=split))
    table = pd.concat(frames, ignore_index=True)
    per_split = split_metric_table(table)
    assert list(per_split["split"]) == [0, 1, 2]
    for row in per_split.itertuples():
        group = table[table.split == row.split]
        assert row.srocc == pytest.approx(stats.spearmanr(group.quality, group.prediction).statistic)


def test_wilcoxon_note_when_significance_is_unreachable():
    assert compare_methods(as_values(A=A, B=B), test="wilcoxon").notes  # n=5: smallest p 0.0625
    assert not compare_methods(as_values(A=A, B=B), test="paired").notes
    six = as_values(A=A + (0.93,), B=B + (0.91,))
    assert not compare_methods(six, test="wilcoxon").notes  # 2/64 < 0.05
    assert compare_methods(six, test="wilcoxon").pvalue.loc["A", "B"] == pytest.approx(stats.wilcoxon(A + (0.93,), B + (0.91,)).pvalue)
