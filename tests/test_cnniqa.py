"""CNNIQA: local normalisation by hand, patches, the network's pooling, and the adapter end
to end (learns a blur ranking on held-out contents, deterministic for a seed, save/load)."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from biqa_bench.errors import MethodError
from biqa_bench.evaluation.metrics import srocc
from biqa_bench.methods import Context
from _image_helpers import blur_items
from methods.cnniqa import CNNIQA, CNNIQANet, cut_patches, local_normalise, patch_grid

FAST = dict(epochs=4, patches_per_image=24, batch_size=64, lr=2e-3)


def test_local_normalise_constant_image_is_zero_and_matches_hand_value():
    np.testing.assert_array_equal(local_normalise(np.full((10, 12), 77.0)), 0.0)
    grey = np.random.default_rng(0).uniform(0, 255, (9, 9))
    block = grey[3:6, 4:7]
    expected = (grey[4, 5] - block.mean()) / (block.std() + 1.0)
    assert local_normalise(grey)[4, 5] == pytest.approx(expected, rel=1e-5)


def test_patch_grid_and_cut_patches():
    corners = patch_grid((100, 70))
    assert len(corners) == 3 * 2  # non-overlapping 32x32 patches, centred
    assert corners.min(axis=0).tolist() == [2, 3] and corners.max(axis=0).tolist() == [66, 35]
    image = np.arange(100 * 70, dtype=np.float32).reshape(100, 70)
    patches = cut_patches(image, corners)
    np.testing.assert_array_equal(patches[1], image[2:34, 35:67])
    with pytest.raises(ValueError):
        patch_grid((20, 64))


def test_network_pools_max_and_min_of_each_map():
    torch.manual_seed(0)
    net = CNNIQANet().eval()
    x = torch.randn(5, 1, 32, 32)
    maps = net.conv(x)
    pooled = torch.cat([maps.amax(dim=(2, 3)), maps.amin(dim=(2, 3))], dim=1)
    assert maps.shape == (5, 50, 26, 26)
    torch.testing.assert_close(net(x), net.head(pooled).squeeze(1))




@pytest.fixture(scope="module")
def blur_split(tmp_path_factory):
    items = blur_items(tmp_path_factory.mktemp("blur"), contents=10)
    return items[items.content_id < 6], items[items.content_id.isin([6, 7])], items[items.content_id >= 8]


def test_cnniqa_learns_blur_selects_on_validation_and_reproduces(blur_split, tmp_path, monkeypatch):
    train, val, test = blur_split
    threads = torch.get_num_threads()
    ctx = Context(seed=1, cache_dir=tmp_path / "cache")
    method = CNNIQA(**FAST).fit(train, val, ctx)
    assert torch.get_num_threads() == threads  # the thread setting is restored
    prediction = method.predict(test, ctx)
    assert prediction.shape == (len(test),) and np.all(np.isfinite(prediction))
    assert srocc(test["quality"], prediction) > 0.7

    val_sroccs = [record["val_srocc"] for record in method.history_]
    assert len(val_sroccs) == FAST["epochs"]
    assert method.best_epoch_ == 1 + int(np.argmax(val_sroccs))

    # same seed, same model; save/load gives identical predictions
    again = CNNIQA(**FAST).fit(train, val, ctx)
    np.testing.assert_array_equal(again.predict(test, ctx), prediction)
    method.save(tmp_path / "run")
    loaded = CNNIQA().load(tmp_path / "run")
    assert loaded.get_params() == method.get_params()
    np.testing.assert_array_equal(loaded.predict(test, ctx), prediction)

    import methods.cnniqa as adapter

    monkeypatch.setattr(adapter, "PREDICT_CHUNK", 5)  # chunked prediction gives the same figures
    np.testing.assert_allclose(loaded.predict(test, ctx), prediction, rtol=1e-6)


def test_cnniqa_without_validation_keeps_last_epoch(blur_split, tmp_path):
    train, val, test = blur_split
    method = CNNIQA(epochs=1, patches_per_image=2).fit(train, val.iloc[:0], Context(seed=0))
    assert method.best_epoch_ == 1 and "val_srocc" not in method.history_[0]


def test_cnniqa_errors_name_the_fix(tmp_path, blur_split):
    with pytest.raises(MethodError, match="not fitted"):
        CNNIQA().predict(blur_split[2], Context())
    with pytest.raises(MethodError, match="train it first"):
        CNNIQA().load(tmp_path / "nothing")
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((20, 40, 3), dtype=np.uint8)).save(small)
    tiny = pd.DataFrame({"item_id": ["a", "b"], "path": [str(small)] * 2, "quality": [1.0, 2.0]})
    with pytest.raises(MethodError, match="smaller than a 32x32 patch"):
        CNNIQA(epochs=1).fit(tiny, tiny.iloc[:0], Context())
