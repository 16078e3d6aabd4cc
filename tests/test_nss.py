"""The shared NSS building blocks (biqa_bench.features.nss) against independent references:
scipy.ndimage filters for every border rule, the exhaustive grid argmin of the reference code for
the bisection shape search, and per-block fits equal to fits of each block alone."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from biqa_bench.features import nss


@pytest.mark.parametrize("border,mode", [("zero", "constant"), ("mirror", "reflect"), ("replicate", "nearest")])
def test_separable_filter_matches_scipy_for_each_border(border, mode):
    image = np.random.default_rng(0).uniform(0, 255, (23, 17))
    window = nss.gaussian_window()
    expected = ndimage.correlate(image, window, mode=mode, cval=0.0)
    g = window[3] / window[3].sum()
    got = nss.separable(image, nss.filter_matrix(23, tuple(g), border), nss.filter_matrix(17, tuple(g), border))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-9)


def test_mscn_local_sigma_by_hand_with_replicated_border():
    grey = np.random.default_rng(1).uniform(0, 255, (12, 12))
    window = nss.gaussian_window()
    block = np.pad(grey, 3, mode="edge")[0:7, 0:7]
    mu = np.sum(window * block)
    sigma = np.sqrt(abs(np.sum(window * block**2) - mu**2))
    coefficients, local_sigma = nss.mscn(grey, border="replicate", return_sigma=True)
    assert local_sigma[0, 0] == pytest.approx(sigma, rel=1e-9)
    assert coefficients[0, 0] == pytest.approx((grey[0, 0] - mu) / (sigma + 1), rel=1e-9)


@pytest.mark.parametrize("curve,increasing", [(nss.GGD_RATIO, False), (nss.AGGD_RATIO, True)])
def test_bisection_picks_the_reference_argmin(curve, increasing):
    rng = np.random.default_rng(2)
    values = np.concatenate([rng.uniform(curve.min() * 0.9, curve.max() * 1.1, 3000), curve[::97]])
    got = nss._nearest_on_grid(curve, values, increasing)
    expected = np.array([np.argmin(np.abs(v - curve)) for v in values])  # MATLAB's min: first on a tie
    np.testing.assert_array_equal(got, expected)


def test_block_fits_equal_fits_of_each_block():
    image = np.random.default_rng(3).standard_t(4, (40, 60))
    blocks = nss.image_blocks(image, 20, 20)
    assert blocks.shape == (6, 20, 20)
    np.testing.assert_array_equal(blocks[4], image[20:40, 20:40])
    shapes, variances = nss.ggd_fits(blocks)
    aggd = nss.aggd_fits(blocks)
    for k, block in enumerate(blocks):
        assert (shapes[k], variances[k]) == pytest.approx(tuple(vars(nss.fit_ggd(block)).values()))
        fit = nss.fit_aggd(block)
        assert [a[k] for a in aggd] == pytest.approx([fit.shape, fit.mean, fit.left_variance, fit.right_variance])
    # per-block products wrap inside the block (NIQE's circshift of each block)
    horizontal = nss.paired_products(blocks)[0]
    assert horizontal[1, 3, 0] == blocks[1, 3, 0] * blocks[1, 3, 19]


def test_imresize_to_a_size_is_bicubic_interpolation_when_enlarging():
    # enlarging by 2 with MATLAB's sample positions: a linear ramp stays a ramp away from the border
    ramp = np.tile(np.arange(10.0), (6, 1))
    up = nss.imresize(ramp, size=(12, 20))
    np.testing.assert_allclose(up[:, 4:16], np.tile((np.arange(20) + 0.5) / 2 - 0.5, (12, 1))[:, 4:16], atol=1e-12)


@pytest.mark.parametrize("strip_elements", [nss.STRIP_ELEMENTS, 40])
@pytest.mark.parametrize("border,mode", [("zero", "constant"), ("mirror", "reflect"), ("replicate", "nearest")])
@pytest.mark.parametrize("shape", [(23, 17), (4, 2)])
def test_strip_wise_local_moments_match_scipy(monkeypatch, strip_elements, border, mode, shape):
    # 40 elements: strips of one or two rows, so every strip boundary and the border rows are hit;
    # (4, 2): the 7-tap window is wider than the image (mirror repeats its reflection)
    monkeypatch.setattr(nss, "STRIP_ELEMENTS", strip_elements)
    image = np.random.default_rng(7).uniform(0, 255, shape)
    window = nss.gaussian_window()
    mu = ndimage.correlate(image, window, mode=mode, cval=0.0)
    sigma = np.sqrt(np.abs(ndimage.correlate(image**2, window, mode=mode, cval=0.0) - mu**2))
    got_mu, got_sigma = nss.local_moments(image, border=border)
    np.testing.assert_allclose(got_mu, mu, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(got_sigma, sigma, rtol=1e-9, atol=1e-6)


@pytest.mark.parametrize("strip_elements", [nss.STRIP_ELEMENTS, 50])
@pytest.mark.parametrize("with_zeros", [False, True])
def test_image_fits_equal_fits_of_the_rolled_products(monkeypatch, strip_elements, with_zeros):
    # the strip-wise whole-image fits (sign-counting shortcut without zeros, float counts with)
    # against each product made by np.roll (MATLAB's circshift) and fitted whole
    monkeypatch.setattr(nss, "STRIP_ELEMENTS", strip_elements)
    coefficients = np.random.default_rng(8).standard_t(5, (37, 23))
    if with_zeros:
        coefficients[5:9, 3:12] = 0.0
    (shape, variance), products = nss.image_fits(coefficients)
    expected = nss.fit_ggd(coefficients)
    assert (shape[0], variance[0]) == pytest.approx((expected.shape, expected.variance), rel=1e-12)
    for (dr, dc), fit in zip(nss.PAIR_SHIFTS, products):
        reference = nss.fit_aggd(coefficients * np.roll(coefficients, (dr, dc), axis=(0, 1)))
        assert [v[0] for v in fit] == pytest.approx(
            [reference.shape, reference.mean, reference.left_variance, reference.right_variance], rel=1e-12)
