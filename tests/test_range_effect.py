"""The range-effect index: 1 when correlations inside ranges equal the overall one, low when they collapse."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from biqa_bench.evaluation.intervals import t_interval
from biqa_bench.evaluation.range_effect import (
    _index_statistic, range_effect_bootstrap, range_effect_index, range_effect_records, range_effect_summary,
)


def test_index_is_one_when_every_range_ranks_as_well_as_the_whole():
    # a monotone prediction ranks perfectly overall and inside every range: every SROCC is 1
    quality = np.linspace(0, 100, 200)
    effect = range_effect_index(quality, np.exp(quality / 30.0))
    assert effect.srocc_all == pytest.approx(1.0)
    assert effect.n_ranges == 5
    assert effect.index == pytest.approx(1.0)


def test_index_falls_for_a_method_that_only_separates_the_ranges():
    rng = np.random.default_rng(0)
    quality = rng.uniform(0, 100, 400)
    # the range's centre plus noise: right between ranges, random inside them
    collapsing = np.floor(quality / 20.0) * 20.0 + 10.0 + rng.normal(0, 3, 400)
    effect = range_effect_index(quality, collapsing)
    assert effect.srocc_all > 0.9
    assert abs(effect.index) < 0.2


def test_index_is_the_weighted_mean_of_range_srocc_over_the_overall_one():
    rng = np.random.default_rng(3)
    quality = rng.uniform(0, 100, 300)
    prediction = quality + rng.normal(0, 15, 300)
    effect = range_effect_index(quality, prediction, min_items=10)
    edges = [0, 20, 40, 60, 80, 100.1]
    weighted, total = 0.0, 0
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (quality >= low) & (quality < high)
        weighted += inside.sum() * stats.spearmanr(quality[inside], prediction[inside]).statistic
        total += inside.sum()
    expected = (weighted / total) / stats.spearmanr(quality, prediction).statistic
    assert effect.index == pytest.approx(expected)


def test_small_ranges_are_left_out_and_no_positive_overall_srocc_is_undefined():
    quality = np.r_[np.linspace(0, 19, 5), np.linspace(40, 59, 50)]
    prediction = quality + np.sin(quality)
    effect = range_effect_index(quality, prediction, min_items=10)
    assert effect.n_ranges == 1 and np.isnan(effect.range_srocc["Bad"])
    assert np.isnan(range_effect_index(quality, -quality).index)


def test_vectorised_statistic_matches_the_point_estimate_on_resamples():
    rng = np.random.default_rng(5)
    quality = np.round(rng.uniform(0, 100, 150))
    prediction = quality + rng.normal(0, 20, 150)
    statistic = _index_statistic(10, (np.unique(quality), np.unique(prediction)))
    index = rng.integers(0, 150, size=(25, 150))
    expected = [range_effect_index(quality[i], prediction[i]).index for i in index]
    np.testing.assert_allclose(statistic(quality[index], prediction[index]), expected)


def test_bootstrap_interval_is_scipys_bca_and_brackets_the_index():
    rng = np.random.default_rng(6)
    quality = rng.uniform(0, 100, 150)
    prediction = quality + rng.normal(0, 20, 150)
    interval = range_effect_bootstrap(quality, prediction, n_boot=300, seed=2)

    def index(t, p):
        return range_effect_index(t, p).index

    reference = stats.bootstrap((quality, prediction), index, paired=True, vectorized=False, n_resamples=300,
                                method="BCa", rng=np.random.default_rng(2)).confidence_interval
    assert (interval.low, interval.high) == pytest.approx((reference.low, reference.high), rel=1e-9)
    assert interval.low < interval.estimate < interval.high


def test_records_and_summary():
    rng = np.random.default_rng(7)
    frames = []
    for split in range(3):
        quality = rng.uniform(0, 100, 100)
        frames.append(pd.DataFrame({"method": "m", "dataset": "d", "split": split, "item_id": [str(i) for i in range(100)],
                                    "quality": quality, "prediction": quality + rng.normal(0, 15, 100)}))
    records = range_effect_records(pd.concat(frames), n_boot=0)
    assert len(records) == 3 and records["rei"].between(0, 1).all()
    summary = range_effect_summary(records)
    interval = t_interval(records["rei"])
    row = summary.iloc[0]
    assert (row["rei"], row["rei_ci_low"], row["rei_ci_high"]) == pytest.approx((interval.estimate, interval.low, interval.high))
