"""NIQE: the feature vector of a known image against a reference computed here, loop by loop,
from the paper's formulas (MSCN, AGGD moment matching, beta = sigma sqrt(G(1/a)/G(3/a))); the
MVG distance by hand; monotonic in blur and noise on an embedded photo; the adapter end to end
(opinion-unaware, cached pristine model, pristine folder errors)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from scipy.special import gamma as G
from skimage import data

from biqa_bench.errors import MethodError
from biqa_bench.features import niqe as N
from biqa_bench.features.pristine import pristine_images
from biqa_bench.methods import Context
from methods.niqe import Niqe
from test_brisque import _matlab_half_matrix

GRID = np.arange(0.2, 10.0005, 0.001)


def _reference_mscn(grey):
    """(I - mu) / (sigma + 1), 7x7 Gaussian (sigma 7/6) window, replicated border, by loops."""
    x = np.arange(-3, 4)
    window = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * (7 / 6) ** 2))
    window /= window.sum()
    padded = np.pad(grey, 3, mode="edge")
    mu = np.zeros_like(grey)
    second = np.zeros_like(grey)
    for i in range(7):
        for j in range(7):
            shifted = padded[i:i + grey.shape[0], j:j + grey.shape[1]]
            mu += window[i, j] * shifted
            second += window[i, j] * shifted**2
    sigma = np.sqrt(np.abs(second - mu**2))
    return (grey - mu) / (sigma + 1), sigma


def _reference_aggd(x):
    """estimateaggdparam.m: (alpha, beta_l, beta_r) by exhaustive grid search."""
    x = x.ravel()
    left, right = np.sqrt(np.mean(x[x < 0] ** 2)), np.sqrt(np.mean(x[x > 0] ** 2))
    g = left / right
    r_hat = np.mean(np.abs(x)) ** 2 / np.mean(x**2)
    r_norm = r_hat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    r_gam = G(2 / GRID) ** 2 / (G(1 / GRID) * G(3 / GRID))
    alpha = GRID[np.argmin((r_gam - r_norm) ** 2)]
    c = np.sqrt(G(1 / alpha) / G(3 / alpha))
    return alpha, left * c, right * c


def _reference_block_features(block):
    """computefeature.m on one block: 18 values."""
    alpha, bl, br = _reference_aggd(block)
    features = [alpha, (bl + br) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        alpha, bl, br = _reference_aggd(block * np.roll(block, shift, axis=(0, 1)))
        features += [alpha, (br - bl) * G(2 / alpha) / G(1 / alpha), bl, br]
    return features


def test_patch_features_match_the_formulas_computed_by_hand():
    rgb = data.astronaut()[100:300, 50:250]  # 200 x 200: cropped to 192 x 192, 4 patches
    grey = np.round(rgb.astype(float) @ [0.298936021293775, 0.587043074451121, 0.114020904255103])[:192, :192]
    first, sigma = _reference_mscn(grey)
    half = _matlab_half_matrix(192) @ grey @ _matlab_half_matrix(192).T
    second, _ = _reference_mscn(half)
    expected = []
    for r in range(2):
        for c in range(2):
            expected.append(_reference_block_features(first[96 * r:96 * r + 96, 96 * c:96 * c + 96])
                            + _reference_block_features(second[48 * r:48 * r + 48, 48 * c:48 * c + 48]))
    features, sharpness = N.patch_features(rgb)
    assert features.shape == (4, 36)
    np.testing.assert_allclose(features, np.array(expected), rtol=1e-7, atol=1e-9)
    # sharpness: the mean local sigma of each 96 x 96 patch at scale 1
    expected_sharpness = [sigma[96 * r:96 * r + 96, 96 * c:96 * c + 96].mean() for r in range(2) for c in range(2)]
    np.testing.assert_allclose(sharpness, expected_sharpness, rtol=1e-9)


def test_mvg_distance_and_statistics_by_hand():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 3)), rng.normal(1.0, 2.0, size=(40, 3))
    mean, cov = N.mean_and_covariance(b)
    np.testing.assert_allclose(cov, np.cov(b.T))
    d = a.mean(0) - b.mean(0)
    expected = np.sqrt(d @ np.linalg.inv((np.cov(a.T) + np.cov(b.T)) / 2) @ d)
    assert N.mvg_distance(a.mean(0), np.cov(a.T), mean, cov) == pytest.approx(expected, rel=1e-10)
    # a row with NaN is left out; one valid row has zero covariance
    with_nan = np.vstack([b[:1], np.full((1, 3), np.nan)])
    one_mean, one_cov = N.mean_and_covariance(with_nan)
    np.testing.assert_array_equal(one_mean, b[0])
    np.testing.assert_array_equal(one_cov, 0.0)


def test_sharpness_selection_keeps_patches_above_the_threshold():
    features = np.arange(8.0).reshape(4, 2)
    kept = N.select_sharp(features, np.array([1.0, 10.0, 7.6, 7.4]))
    np.testing.assert_array_equal(kept, features[[1, 2]])


@pytest.fixture(scope="module")
def embedded_model():
    return N.fit_pristine(pristine_images("embedded"))


def test_niqe_ranks_blur_and_noise_monotonically(embedded_model):
    photo = data.astronaut()
    assert embedded_model.n_images == 10 and embedded_model.n_patches > 36
    blurred = [N.niqe_score(photo if s == 0 else ndimage.gaussian_filter(photo, (s, s, 0)), embedded_model)
               for s in (0, 1, 2, 3)]
    rng = np.random.default_rng(1)
    noisy = [N.niqe_score(np.clip(np.round(photo + rng.normal(0, s, photo.shape)), 0, 255).astype(np.uint8), embedded_model)
             for s in (0, 5, 15, 30)]
    assert np.all(np.diff(blurred) > 0), blurred
    assert np.all(np.diff(noisy) > 0), noisy


def _photos(folder, n=3):
    folder.mkdir(parents=True, exist_ok=True)
    for k, photo in enumerate([data.astronaut(), data.coffee(), data.chelsea()][:n]):
        Image.fromarray(photo).save(folder / f"p{k}.png")
    return folder


def _items(folder):
    photo = data.astronaut()[:288, :288]
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for level in range(4):
        path = folder / f"l{level}.png"
        Image.fromarray(ndimage.gaussian_filter(photo, (level, level, 0)) if level else photo).save(path)
        rows.append({"item_id": path.stem, "path": str(path), "quality": 100.0 - 20 * level, "content_id": 0})
    import pandas as pd

    return pd.DataFrame(rows)


def test_adapter_is_opinion_unaware_cached_and_deterministic(tmp_path, monkeypatch):
    import methods.niqe as adapter

    pristine = _photos(tmp_path / "pristine")
    items = _items(tmp_path / "items")
    ctx = Context(seed=0, cache_dir=tmp_path / "cache")
    method = Niqe(pristine=str(pristine)).fit(items, items.iloc[:0], ctx)
    prediction = method.predict(items, ctx)
    assert np.all(np.diff(prediction) < 0)  # more blur, lower predicted quality
    # the labels play no part: shuffled labels give the same predictions
    shuffled = items.assign(quality=items["quality"].to_numpy()[::-1])
    np.testing.assert_array_equal(Niqe(pristine=str(pristine)).fit(shuffled, items.iloc[:0], ctx).predict(items, ctx), prediction)
    # pristine model and per-image features come from the cache the second time
    monkeypatch.setattr(adapter.N, "fit_pristine", lambda *a, **k: pytest.fail("pristine model refitted"))
    monkeypatch.setattr(adapter.N, "patch_statistics", lambda *a, **k: pytest.fail("features recomputed"))
    again = Niqe(pristine=str(pristine)).fit(items, items.iloc[:0], ctx)
    np.testing.assert_array_equal(again.predict(items, ctx), prediction)
    method.save(tmp_path / "run")
    np.testing.assert_array_equal(Niqe().load(tmp_path / "run").predict(items, ctx), prediction)


def test_adapter_errors_are_one_line(tmp_path):
    ctx = Context(seed=0, cache_dir=tmp_path / "cache")
    items = _items(tmp_path / "items")
    with pytest.raises(MethodError, match="pristine=DIR"):
        Niqe(pristine=str(tmp_path / "missing")).fit(items, items.iloc[:0], ctx)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MethodError, match="not a folder of pristine images"):
        Niqe(pristine=str(tmp_path / "empty")).fit(items, items.iloc[:0], ctx)
    small = tmp_path / "small.png"
    Image.fromarray(data.astronaut()[:50, :50]).save(small)
    method = Niqe(pristine=str(_photos(tmp_path / "pristine", 2))).fit(items, items.iloc[:0], ctx)
    with pytest.raises(MethodError, match="smaller than one 96x96 NIQE patch"):
        method.predict(items.iloc[:1].assign(path=str(small)), ctx)
