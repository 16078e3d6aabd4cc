"""IL-NIQE: its building blocks against independent references (scipy's Weibull moments, the
log-Gabor bank's shape, the patch-wise distance by hand), monotonic in blur and noise on an
embedded photo, and the adapter end to end (opinion-unaware, cached)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage, stats
from skimage import data

from biqa_bench.features import ilniqe as IL
from biqa_bench.features.pristine import pristine_images
from biqa_bench.methods import Context
from methods.ilniqe import Ilniqe


@pytest.mark.parametrize("shape,scale", [(0.8, 2.0), (1.5, 1.0), (3.0, 5.0)])
def test_weibull_moment_fit_recovers_scipy_weibull(shape, scale):
    x = stats.weibull_min.rvs(shape, scale=scale, size=(1, 200_000), random_state=np.random.default_rng(0))
    k, lam = IL.weibull_fits(x)
    assert k[0] == pytest.approx(shape, rel=0.03)
    assert lam[0] == pytest.approx(scale, rel=0.03)


def test_log_gabor_bank_peaks_at_its_centre_frequencies():
    bank = IL.log_gabor_bank(64, 64)
    assert bank.shape == (12, 64, 64) and np.all(bank[:, 0, 0] == 0)
    u = np.fft.fftfreq(64)
    for s in range(3):
        f0 = 1 / (2.4 * 1.31**s)
        horizontal = bank[4 * s, 0, : 32]  # orientation 0, along the u axis
        assert abs(u[np.argmax(horizontal)] - f0) <= 1 / 64 + 1e-12


def test_distance_is_the_mean_patchwise_mvg_distance_by_hand():
    rng = np.random.default_rng(1)
    dim = IL.N_FEATURES
    components = np.linalg.qr(rng.normal(size=(dim, 3)))[0]
    model = IL.PristineModel(np.zeros(dim), components, np.array([0.5, -0.2, 0.1]), np.diag([1.0, 2.0, 0.5]), 10, 1)
    patches = rng.normal(size=(6, dim))
    y = patches @ components
    inverse = np.linalg.inv((np.diag([1.0, 2.0, 0.5]) + np.cov(y.T)) / 2)
    expected = np.mean([np.sqrt((r - model.mean) @ inverse @ (r - model.mean)) for r in y])
    assert IL.ilniqe_distance(patches, model) == pytest.approx(expected, rel=1e-9)


@pytest.fixture(scope="module")
def embedded_model():
    return IL.fit_pristine(pristine_images("embedded"), threshold=0.5)


def test_features_shape_and_monotonic_in_blur_and_noise(embedded_model):
    photo = data.astronaut()
    features, sharpness = IL.patch_features(photo)
    assert features.shape == (IL.N_PATCHES, IL.N_FEATURES) == (36, 180) and sharpness.shape == (36,)
    blurred = [IL.ilniqe_distance(IL.patch_features(photo if s == 0 else ndimage.gaussian_filter(photo, (s, s, 0)))[0],
                                  embedded_model) for s in (0, 1, 2, 3)]
    rng = np.random.default_rng(2)
    noisy = [IL.ilniqe_distance(IL.patch_features(np.clip(np.round(photo + rng.normal(0, s, photo.shape)), 0, 255)
                                                  .astype(np.uint8))[0], embedded_model) for s in (0, 5, 15, 30)]
    assert np.all(np.diff(blurred) > 0), blurred
    assert np.all(np.diff(noisy) > 0), noisy


def test_adapter_is_opinion_unaware_and_cached(tmp_path, monkeypatch):
    import methods.ilniqe as adapter

    pristine = tmp_path / "pristine"
    pristine.mkdir()
    for k, photo in enumerate([data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]):
        Image.fromarray(photo).save(pristine / f"p{k}.png")
    rows = []
    for level in range(3):
        path = tmp_path / f"l{level}.png"
        Image.fromarray(ndimage.gaussian_filter(data.astronaut(), (2 * level, 2 * level, 0))).save(path)
        rows.append({"item_id": path.stem, "path": str(path), "quality": 100.0 - 30 * level})
    import pandas as pd

    items = pd.DataFrame(rows)
    ctx = Context(seed=0, cache_dir=tmp_path / "cache")
    method = Ilniqe(pristine=str(pristine), n_components=20).fit(items, items.iloc[:0], ctx)
    prediction = method.predict(items, ctx)
    assert np.all(np.diff(prediction) < 0)
    monkeypatch.setattr(adapter.IL, "fit_pristine", lambda *a, **k: pytest.fail("pristine model refitted"))
    monkeypatch.setattr(adapter.IL, "patch_features", lambda *a, **k: pytest.fail("features recomputed"))
    shuffled = items.assign(quality=items["quality"].to_numpy()[::-1])
    again = Ilniqe(pristine=str(pristine), n_components=20).fit(shuffled, items.iloc[:0], ctx)
    np.testing.assert_array_equal(again.predict(items, ctx), prediction)
