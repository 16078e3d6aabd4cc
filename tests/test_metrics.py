"""Metrics and the logistic mapping against scipy and known answers."""

import numpy as np
import pytest
from scipy import stats

from biqa_bench.evaluation.logistic import fit_logistic, logistic4
from biqa_bench.evaluation.metrics import krocc, plcc, rmse, score_predictions, srocc


@pytest.mark.parametrize("seed", range(5))
def test_correlations_match_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 10, size=60).astype(float)  # many ties
    prediction = np.round(truth + rng.normal(0, 3, size=60))  # ties too
    assert srocc(truth, prediction) == pytest.approx(stats.spearmanr(truth, prediction)[0], abs=1e-12)
    assert krocc(truth, prediction) == pytest.approx(stats.kendalltau(truth, prediction, variant="b")[0], abs=1e-12)
    assert plcc(truth, prediction) == pytest.approx(np.corrcoef(truth, prediction)[0, 1], abs=1e-12)
    assert rmse(truth, prediction) == pytest.approx(np.sqrt(np.mean((truth - prediction) ** 2)))


def test_correlations_keep_their_sign():
    truth = np.arange(20.0)
    assert srocc(truth, -truth) == pytest.approx(-1.0)
    assert plcc(truth, -truth) == pytest.approx(-1.0)
    assert krocc(truth, -truth) == pytest.approx(-1.0)


def test_constant_input_is_nan_not_crash():
    assert np.isnan(srocc([1, 2, 3], [5, 5, 5]))
    assert np.isnan(plcc([1, 1, 1], [1, 2, 3]))


def test_logistic_recovers_known_parameters():
    x = np.linspace(-5, 5, 200)
    true = (90.0, 10.0, 0.5, 1.5)
    y = logistic4(x, *true)
    fit = fit_logistic(x, y)
    assert fit.success
    b1, b2, b3, b4 = fit.params
    assert (b1, b2, b3, abs(b4)) == pytest.approx(true, rel=1e-4, abs=1e-4)
    np.testing.assert_allclose(fit.predict(x), y, atol=1e-6)


def test_logistic_formula_by_hand():
    # f(b3) is the midpoint of b1 and b2; f is increasing for b1 > b2 whatever the sign of b4
    assert logistic4(2.0, 10.0, 0.0, 2.0, 1.0) == pytest.approx(5.0)
    assert logistic4(2.0 + np.log(3), 10.0, 0.0, 2.0, -1.0) == pytest.approx(10 - 10 / 4)


def test_failed_fit_is_reported_not_raised():
    fit = fit_logistic(np.ones(10), np.arange(10.0))
    assert not fit.success and "constant" in fit.message
    np.testing.assert_allclose(fit.predict(np.ones(3)), np.full(3, 4.5))
    result = score_predictions(np.arange(10.0), np.ones(10))
    assert result.mapping_ok is False and np.isnan(result.srocc)


def test_mapped_plcc_at_least_raw_for_monotone_nonlinear_relation():
    rng = np.random.default_rng(1)
    x = rng.uniform(-3, 3, 300)
    truth = logistic4(x, 100, 0, 0, 0.7) + rng.normal(0, 2, 300)
    result = score_predictions(truth, x)
    assert result.plcc > result.plcc_raw
    assert result.srocc == pytest.approx(stats.spearmanr(truth, x)[0])


def test_mapping_cannot_flip_the_sign_of_an_inverted_method():
    rng = np.random.default_rng(3)
    truth = rng.uniform(0, 100, 200)
    inverted = -truth + rng.normal(0, 10, 200)
    fit = fit_logistic(inverted, truth)
    # the best non-decreasing logistic is flat: flagged, and the fallback is the constant mean
    assert not fit.success and fit.flat and fit.linear == (0.0, pytest.approx(truth.mean()))
    result = score_predictions(truth, inverted)
    assert result.srocc < -0.8
    assert np.isnan(result.plcc)  # an unconstrained (decreasing) logistic would give about +0.95
