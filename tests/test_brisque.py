"""BRISQUE: GGD/AGGD estimators against scipy's gennorm, MSCN by hand, the feature vector,
the per-image feature cache, and the brisque adapter end to end on a blur-graded image set."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from scipy import stats
from scipy.special import gamma as G
from skimage import data

from biqa_bench.evaluation.metrics import srocc
from biqa_bench.features import brisque as B
from biqa_bench.features.cache import FeatureCache, image_source_tag
from biqa_bench.methods import Context
from _image_helpers import blur_items
from methods.brisque import Brisque


# -- estimators ----------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [0.6, 1.0, 2.0, 3.5])
def test_ggd_recovers_gennorm_shape_and_variance(shape):
    scale = 1.7
    x = stats.gennorm.rvs(shape, scale=scale, size=200_000, random_state=np.random.default_rng(1))
    fit = B.fit_ggd(x)
    assert fit.shape == pytest.approx(shape, rel=0.04)
    assert fit.variance == pytest.approx(stats.gennorm.var(shape, scale=scale), rel=0.03)


def _aggd_sample(shape, left_scale, right_scale, n, rng):
    # An AGGD puts mass beta_l/(beta_l+beta_r) on the left; each side is a half-gennorm.
    left = rng.random(n) < left_scale / (left_scale + right_scale)
    magnitude = np.abs(stats.gennorm.rvs(shape, size=n, random_state=rng))
    return np.where(left, -left_scale * magnitude, right_scale * magnitude)


@pytest.mark.parametrize("shape,left_scale,right_scale", [(0.8, 2.0, 1.0), (1.5, 1.0, 3.0), (2.5, 1.0, 1.5)])
def test_aggd_recovers_shape_mean_and_side_variances(shape, left_scale, right_scale):
    x = _aggd_sample(shape, left_scale, right_scale, 200_000, np.random.default_rng(2))
    fit = B.fit_aggd(x)
    assert fit.shape == pytest.approx(shape, rel=0.04)
    # the AGGD mean parameter is the distribution's mean: compare with the sample mean
    assert fit.mean == pytest.approx(np.mean(x), abs=0.02 * np.std(x))
    assert fit.left_variance == pytest.approx(left_scale**2 * G(3 / shape) / G(1 / shape), rel=0.03)
    assert fit.right_variance == pytest.approx(right_scale**2 * G(3 / shape) / G(1 / shape), rel=0.03)


def test_aggd_on_symmetric_gennorm_agrees_with_ggd():
    x = stats.gennorm.rvs(1.2, size=100_000, random_state=np.random.default_rng(3))
    assert B.fit_aggd(x).shape == pytest.approx(1.2, rel=0.04)
    assert B.fit_aggd(x).mean == pytest.approx(0, abs=0.02)


def test_estimators_report_degenerate_input_as_nan():
    assert np.isnan(B.fit_ggd(np.zeros(100)).shape)
    assert np.isnan(B.fit_aggd(np.abs(np.arange(1.0, 50))).shape)  # no left side


# -- MSCN and features ---------------------------------------------------------------------
def test_gaussian_window_is_fspecial():
    window = B.gaussian_window()
    x = np.arange(-3, 4)
    expected = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * (7 / 6) ** 2))
    np.testing.assert_allclose(window, expected / expected.sum())


def test_mscn_of_constant_image_is_zero():
    constant = np.full((40, 50), 123.0)
    np.testing.assert_array_equal(B.mscn(constant, border="mirror"), 0.0)
    # the reference code's zero padding leaves false edges on a 3-pixel border only
    zero_padded = B.mscn(constant)
    np.testing.assert_allclose(zero_padded[3:-3, 3:-3], 0.0, atol=1e-9)
    assert np.all(zero_padded[0] > 0)


def test_mscn_zero_padding_at_a_corner_by_hand():
    grey = np.random.default_rng(6).uniform(0, 255, (20, 20))
    padded = np.pad(grey, 3)
    window = B.gaussian_window()
    block = padded[0:7, 0:7]
    mu = np.sum(window * block)
    sigma = np.sqrt(abs(np.sum(window * block**2) - mu**2))
    assert B.mscn(grey)[0, 0] == pytest.approx((grey[0, 0] - mu) / (sigma + 1.0), rel=1e-9)


def test_mscn_matches_hand_computation_at_interior_pixel():
    grey = np.random.default_rng(4).uniform(0, 255, (30, 30))
    window = B.gaussian_window()
    r, c = 12, 17
    block = grey[r - 3:r + 4, c - 3:c + 4]
    mu = np.sum(window * block)
    sigma = np.sqrt(np.sum(window * block**2) - mu**2)
    assert B.mscn(grey)[r, c] == pytest.approx((grey[r, c] - mu) / (sigma + 1.0), rel=1e-9)


def test_paired_products_are_neighbour_products_with_wraparound():
    m = np.arange(12.0).reshape(3, 4)
    h, v, d1, d2 = B.paired_products(m)
    assert h[1, 2] == m[1, 2] * m[1, 1]
    assert v[1, 2] == m[1, 2] * m[0, 2]
    assert d1[1, 2] == m[1, 2] * m[0, 1]
    assert d2[1, 2] == m[1, 2] * m[2, 1]
    assert h[0, 0] == m[0, 0] * m[0, 3]  # MATLAB circshift wraps


def _cubic(x):
    ax = np.abs(x)
    return (1.5 * ax**3 - 2.5 * ax**2 + 1) * (ax <= 1) + (-0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))


def _matlab_half_matrix(n):
    """MATLAB imresize(., 0.5) along one axis, from its documented algorithm: output positions
    u = x/s + (1 - 1/s)/2, cubic kernel widened by 1/s, symmetric padding, ceil(n/2) outputs."""
    scale, width = 0.5, 8.0
    x = np.arange(1, int(np.ceil(n * scale)) + 1)
    u = x / scale + 0.5 * (1 - 1 / scale)
    index = np.floor(u - width / 2)[:, None] + np.arange(int(width) + 2)[None, :]
    weight = scale * _cubic(scale * (u[:, None] - index))
    weight /= weight.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(n), np.arange(n)[::-1]])
    index = mirror[np.mod(index.astype(int) - 1, 2 * n)]
    matrix = np.zeros((len(x), n))
    np.add.at(matrix, (np.repeat(np.arange(len(x)), index.shape[1]), index.ravel()), weight.ravel())
    return matrix


@pytest.mark.parametrize("shape", [(64, 48), (31, 20), (9, 13)])
def test_downsample_half_is_matlab_imresize(shape):
    grey = B.to_grey(data.astronaut()[:shape[0], :shape[1]])
    expected = _matlab_half_matrix(shape[0]) @ grey @ _matlab_half_matrix(shape[1]).T
    np.testing.assert_allclose(B.downsample_half(grey), expected, atol=1e-3)


def _reference_ggd(x):
    """estimateggdparam.m: exhaustive search of the shape grid for E[x^2] / E[|x|]^2."""
    grid = np.arange(0.2, 10.0 + 5e-4, 0.001)
    ratio = G(1 / grid) * G(3 / grid) / G(2 / grid) ** 2
    variance = np.mean(x**2)
    return [grid[np.argmin(np.abs(variance / np.mean(np.abs(x)) ** 2 - ratio))], variance]


def _reference_aggd(x):
    """estimateaggdparam.m: side spreads, the normalised ratio, exhaustive grid search, the mean."""
    grid = np.arange(0.2, 10.0 + 5e-4, 0.001)
    ratio = G(2 / grid) ** 2 / (G(1 / grid) * G(3 / grid))
    left, right = np.sqrt(np.mean(x[x < 0] ** 2)), np.sqrt(np.mean(x[x > 0] ** 2))
    gamma_hat = left / right
    r_hat = np.mean(np.abs(x)) ** 2 / np.mean(x**2)
    r_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    shape = grid[np.argmin(np.abs(ratio - r_norm))]
    mean = (right - left) * G(2 / shape) / G(1 / shape) * np.sqrt(G(1 / shape) / G(3 / shape))
    return [shape, mean, left**2, right**2]


def _reference_features(rgb):
    """brisque_feature.m written out plainly: rgb2gray, MSCN with a 7x7 Gaussian (sigma 7/6)
    and zero padding (filter2 'same'), GGD of the MSCN, AGGD of its products with the circshift
    [0 1], [1 0], [1 1], [-1 1] neighbours, then the same on imresize(I, 0.5)."""
    from scipy import ndimage

    grey = np.round(rgb.astype(np.float64) @ [0.298936021293775, 0.587043074451121, 0.114020904255103])
    x = np.arange(-3, 4)
    window = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * (7 / 6) ** 2))
    window /= window.sum()
    features = []
    for image in (grey, _matlab_half_matrix(grey.shape[0]) @ grey @ _matlab_half_matrix(grey.shape[1]).T):
        mu = ndimage.correlate(image, window, mode="constant")
        sigma = np.sqrt(np.abs(ndimage.correlate(image**2, window, mode="constant") - mu**2))
        structdis = (image - mu) / (sigma + 1)
        structdis[np.abs(structdis) < 1e-9] = 0.0  # flat areas: exact zeros, as MATLAB's are
        features += _reference_ggd(structdis.ravel())
        for shift in ((0, 1), (1, 0), (1, 1), (-1, 1)):
            features += _reference_aggd((structdis * np.roll(structdis, shift, axis=(0, 1))).ravel())
    return np.array(features)


@pytest.mark.parametrize("strip_elements", [None, 2000])
@pytest.mark.parametrize("flat_patch", [False, True])
def test_features_equal_a_plain_reference_implementation(monkeypatch, strip_elements, flat_patch):
    """The strip-wise, sparse-banded features (issue #19) against the definitions computed the
    plain way on whole arrays; odd width, a 1-row last strip at 2000 elements per strip, and a
    flat patch whose zero coefficients take the fits off their sign-counting shortcut."""
    from biqa_bench.features import nss

    if strip_elements:
        monkeypatch.setattr(nss, "STRIP_ELEMENTS", strip_elements)
    rgb = data.astronaut()[40:194, 60:263].copy()  # 154 = 17 x 9 + 1 rows: strips of 9 rows at 2000
    if flat_patch:
        rgb[20:70, 30:90] = 128
    np.testing.assert_allclose(B.brisque_features(rgb), _reference_features(rgb), rtol=1e-9, atol=1e-12)


def test_features_match_piq_implementation():
    """piq (MIT) ports the reference MATLAB code independently; compare on an even-sized grey
    image (piq's grey conversion and its resize to explicit sizes differ for colour/odd sizes)."""
    torch = pytest.importorskip("torch")
    piq_brisque = pytest.importorskip("piq.brisque")
    from piq.functional import imresize

    grey = B.to_grey(data.astronaut()[:128, :96])
    x = torch.tensor(grey[None, None])
    half = imresize(x, sizes=(64, 48))
    expected = torch.cat([piq_brisque._natural_scene_statistics(x), piq_brisque._natural_scene_statistics(half)], dim=-1)
    np.testing.assert_allclose(B.brisque_features(grey), expected.numpy().ravel(), rtol=1e-6, atol=1e-6)


def test_feature_vector_of_a_photograph():
    image = data.astronaut()[:200, :240]
    features = B.brisque_features(image)
    assert features.shape == (B.N_FEATURES,) == (len(B.FEATURE_NAMES),)
    assert np.all(np.isfinite(features))
    shapes = features[[0, 18]]
    assert np.all((shapes > 0.2) & (shapes < 10))
    # natural images have heavier-tailed MSCN than white noise (Mittal et al., fig. 2)
    noise = np.random.default_rng(5).integers(0, 256, (200, 240, 3), dtype=np.uint8)
    assert features[0] < B.brisque_features(noise)[0]


def test_to_grey_is_rounded_rgb2gray():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [10, 20, 30]]], dtype=np.uint8)
    np.testing.assert_array_equal(B.to_grey(rgb), [[76, 150, 18]])  # 2.989 + 11.74 + 3.42 = 18.15


def test_to_grey_is_rounded_rgb2gray_on_many_colours():
    # strip by strip (several strips of this 600-wide image), term by term: MATLAB's rounded
    # weighted sum of R, G, B; the brightest colours stay at most 255 without a clip
    rgb = np.random.default_rng(9).integers(0, 256, (300, 600, 3), dtype=np.uint8)
    rgb[0, :3] = [[255, 255, 255], [0, 0, 0], [255, 255, 0]]
    expected = np.round(rgb.astype(np.float64) @ [0.298936021293775, 0.587043074451121, 0.114020904255103])
    np.testing.assert_array_equal(B.to_grey(rgb), expected)
    assert B.to_grey(rgb)[0, 0] == 255


# -- the feature cache ---------------------------------------------------------------------
def _write_images(folder: Path, n: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        path = folder / f"im{k}.png"
        Image.fromarray(np.full((16, 16, 3), 10 * k, dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_cache_extracts_once_and_hits_afterwards(tmp_path, n_jobs):
    paths = _write_images(tmp_path / "img", 5)
    calls = []

    def extract(image):
        calls.append(1)
        return np.array([image.mean(), image.std()])

    from biqa_bench.images import read_image

    first = FeatureCache(tmp_path / "cache", "toy", "1").compute(paths, extract, read_image, n_jobs=n_jobs)
    assert len(calls) == 5
    cache = FeatureCache(tmp_path / "cache", "toy", "1")
    second = cache.compute(paths[::-1], extract, read_image, n_jobs=n_jobs)
    assert len(calls) == 5 and (cache.stats.hits, cache.stats.misses) == (5, 0)
    np.testing.assert_array_equal(second, first[::-1])
    assert not list((tmp_path / "cache").rglob("*.tmp"))
    assert (tmp_path / "cache" / "features").is_dir()

    # a new version, resized pixels, or a changed file, misses
    FeatureCache(tmp_path / "cache", "toy", "2").compute(paths[:1], extract, read_image)
    assert len(calls) == 6
    resized = image_source_tag(SimpleNamespace(size=(8, 8), draft=False))
    assert image_source_tag(None) == image_source_tag(SimpleNamespace(size="original")) == "original" != resized
    FeatureCache(tmp_path / "cache", "toy", "1", resized).compute(paths[:1], lambda image: extract(image[:8, :8]), read_image)
    assert len(calls) == 7
    calls.pop()
    Image.fromarray(np.full((16, 16, 3), 200, dtype=np.uint8)).save(paths[1])
    os.utime(paths[1], ns=(1, 1))
    changed = FeatureCache(tmp_path / "cache", "toy", "1").compute(paths[1:2], extract, read_image)
    assert len(calls) == 7 and changed[0, 0] == 200


def test_cache_treats_a_corrupt_entry_as_a_miss(tmp_path):
    paths = _write_images(tmp_path / "img", 1)
    cache = FeatureCache(tmp_path / "cache", "toy", "1")
    cache.put(paths[0], np.array([1.0]))
    entry = next((tmp_path / "cache").rglob("*.npy"))
    entry.write_bytes(b"garbage")
    assert cache.get(paths[0]) is None


# -- the adapter end to end ----------------------------------------------------------------


def test_brisque_is_registered():
    from biqa_bench.methods import _REGISTRY  # discover() would import every adapter (slow)

    assert _REGISTRY["brisque"] is Brisque and Brisque.name == "brisque"


def test_brisque_learns_blur_and_reuses_cached_features(tmp_path, monkeypatch):
    import methods.brisque as adapter

    items = blur_items(tmp_path / "img", contents=10)
    train, val, test = items[items.content_id < 6], items[items.content_id.isin([6, 7])], items[items.content_id >= 8]
    calls = []
    real = adapter.brisque_features
    monkeypatch.setattr(adapter, "brisque_features", lambda image: calls.append(1) or real(image))
    ctx = Context(seed=0, cache_dir=tmp_path / "cache")
    method = Brisque().fit(train, val, ctx)
    assert method.C_ in method.c_grid and method.gamma_ in method.gamma_grid
    prediction = method.predict(test, ctx)
    assert prediction.shape == (len(test),)
    assert srocc(test["quality"], prediction) > 0.8
    assert len(calls) == len(items)

    # a second split (another fit) extracts nothing; save/load gives identical predictions
    Brisque().fit(test, val, ctx)
    assert len(calls) == len(items)
    method.save(tmp_path / "run")
    again = Brisque().load(tmp_path / "run")
    np.testing.assert_array_equal(again.predict(test, ctx), prediction)


def test_brisque_without_validation_items_uses_seeded_cross_validation(tmp_path):
    items = blur_items(tmp_path / "img", contents=4, levels=5)
    ctx = Context(seed=3, cache_dir=tmp_path / "cache")
    empty = items.iloc[:0]
    first = Brisque().fit(items, empty, ctx)
    second = Brisque().fit(items, empty, ctx)
    assert (first.C_, first.gamma_) == (second.C_, second.gamma_)
    assert np.isfinite(first.selection_srocc_)
