"""Confidence intervals: the t-interval over splits and the per-run BCa bootstrap against scipy."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from biqa_bench.errors import AnalysisError
from biqa_bench.evaluation.intervals import (
    average_ranks, bootstrap_interval, cell_interval, spearman_statistic, t_interval,
)
from biqa_bench.evaluation.logistic import fit_logistic
from biqa_bench.evaluation.metrics import evaluate_predictions
from biqa_bench.evaluation.ranges import aggregate_records, range_records


def test_t_interval_is_mean_plus_minus_t_times_sem():
    values = np.array([0.90, 0.91, 0.93, 0.88, 0.92])
    interval = t_interval(values)
    half = stats.t.ppf(0.975, 4) * values.std(ddof=1) / np.sqrt(5)
    assert interval.estimate == pytest.approx(values.mean())
    assert interval.low == pytest.approx(values.mean() - half)
    assert interval.high == pytest.approx(values.mean() + half)
    # scipy's own t-interval of the mean agrees
    low, high = stats.t.interval(0.95, 4, loc=values.mean(), scale=stats.sem(values))
    assert (interval.low, interval.high) == pytest.approx((low, high))


def test_t_interval_needs_two_splits():
    assert not t_interval([0.9]).defined
    assert not t_interval([0.9, np.nan]).defined


def test_average_ranks_by_counting_equal_rankdata_with_ties():
    rng = np.random.default_rng(1)
    sample = np.round(rng.normal(size=50), 1)  # many ties
    resamples = sample[rng.integers(0, 50, size=(30, 50))]
    np.testing.assert_allclose(average_ranks(resamples, np.unique(sample)), stats.rankdata(resamples, axis=-1))
    assert spearman_statistic(resamples[0], resamples[1]) == pytest.approx(stats.spearmanr(resamples[0], resamples[1]).statistic)


def test_srocc_bootstrap_equals_scipy_bootstrap_with_the_same_seed():
    rng = np.random.default_rng(0)
    truth = np.round(rng.uniform(0, 100, 120), 0)
    prediction = truth + rng.normal(0, 25, 120)
    ours = bootstrap_interval(truth, prediction, "srocc", n_boot=500, seed=7)

    def srocc(t, p):
        return stats.spearmanr(t, p).statistic

    reference = stats.bootstrap((truth, prediction), srocc, paired=True, vectorized=False, n_resamples=500,
                                method="BCa", confidence_level=0.95, rng=np.random.default_rng(7)).confidence_interval
    assert ours.low == pytest.approx(reference.low, rel=1e-10)
    assert ours.high == pytest.approx(reference.high, rel=1e-10)
    assert ours.estimate == pytest.approx(srocc(truth, prediction))
    assert ours.low < ours.estimate < ours.high
    assert bootstrap_interval(truth, prediction, "srocc", n_boot=500, seed=8).low != ours.low  # the seed matters


def test_plcc_bootstrap_uses_the_given_mapping():
    rng = np.random.default_rng(2)
    truth = rng.uniform(0, 100, 80)
    prediction = truth / 100 + rng.normal(0, 0.2, 80)
    mapped = fit_logistic(prediction, truth).predict(prediction)
    ours = bootstrap_interval(truth, prediction, "plcc", n_boot=300, seed=3, mapped=mapped)

    def pearson(t, p):
        return stats.pearsonr(t, p).statistic

    reference = stats.bootstrap((truth, mapped), pearson, paired=True, vectorized=False, n_resamples=300,
                                method="BCa", rng=np.random.default_rng(3)).confidence_interval
    assert (ours.low, ours.high) == pytest.approx((reference.low, reference.high), rel=1e-10)


def test_bootstrap_of_too_few_items_is_undefined_and_bad_n_boot_is_an_error():
    assert not bootstrap_interval([1.0, 2.0], [2.0, 1.0], "srocc", 100).defined
    with pytest.raises(AnalysisError, match="n-boot"):
        bootstrap_interval(np.arange(10.0), np.arange(10.0) ** 2, "srocc", n_boot=1)


def test_cell_interval_prefers_splits_and_falls_back_to_the_run():
    run = bootstrap_interval(np.arange(30.0), np.arange(30.0) + np.sin(np.arange(30.0)) * 5, "srocc", 200)
    assert cell_interval([0.8, 0.82, 0.85], run).kind == "t over splits"
    assert cell_interval([0.8], run) is run


def _predictions(splits=3, n=60, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for split in range(splits):
        quality = rng.uniform(0, 100, n)
        for method, noise in (("good", 10), ("poor", 30)):
            rows.append(pd.DataFrame({"method": method, "train_dataset": "d", "dataset": "d", "split": split,
                                      "item_id": [str(i) for i in range(n)], "subset": "test", "quality": quality,
                                      "score": quality, "prediction": quality + rng.normal(0, noise, n)}))
    return pd.concat(rows, ignore_index=True)


def test_records_carry_bootstrap_columns_and_summaries_the_t_interval():
    table = _predictions()
    records = evaluate_predictions(table, n_boot=200, seed=1)
    one = records.iloc[0]
    group = table[(table.method == one.method) & (table.split == one.split)]
    expected = bootstrap_interval(group["quality"].to_numpy(), group["prediction"].to_numpy(), "srocc", 200, 1)
    assert one["srocc_boot_low"] == pytest.approx(expected.low)
    assert one["srocc_boot_low"] < one["srocc"] < one["srocc_boot_high"]
    assert set(records["boot_seed"]) == {1} and set(records["n_boot"]) == {200}
    summary = aggregate_records(records, ci=True)
    row = summary[summary.method == "good"].iloc[0]
    values = records[records.method == "good"]["srocc"]
    interval = t_interval(values)
    assert (row["srocc_ci_low"], row["srocc_ci_high"]) == pytest.approx((interval.low, interval.high))
    assert row["ci_kind"] == "t over splits"


def test_a_single_split_summary_takes_the_runs_bootstrap_interval():
    table = _predictions(splits=1)
    ranges = range_records(table, n_boot=200, seed=0)
    summary = aggregate_records(ranges, ci=True)
    defined = summary[summary["status"] == "ok"].iloc[0]
    record = ranges[(ranges.method == defined.method) & (ranges.subset == defined.subset)].iloc[0]
    assert defined["srocc_ci_low"] == pytest.approx(record["srocc_boot_low"])
    assert defined["ci_kind"] == "BCa bootstrap"
