"""WaDIQaM-NR: network shapes, the weighted patch pooling against hand-computed values (eqs. 8-9),
the patch batches, one step lowering the loss, seeded determinism and a tiny fit/predict/save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import methods.wadiqam as W
from biqa_bench.errors import MethodError
from biqa_bench.methods import create_method
from _deep_helpers import loss_before_after_one_step, make_ctx, make_items, one_thread  # noqa: F401 (autouse fixture)


def test_network_is_ten_convolutions_five_poolings_and_two_branches():
    net = W.WaDIQaMNet().eval()
    convs = [m for m in net.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64, 128, 128, 256, 256, 512, 512]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert sum(isinstance(m, nn.MaxPool2d) for m in net.features) == 5
    for branch in (net.quality, net.weight):
        assert [type(m).__name__ for m in branch] == ["Linear", "ReLU", "Dropout", "Linear"]
        assert (branch[0].in_features, branch[0].out_features, branch[3].out_features) == (512, 512, 1)
    with torch.no_grad():
        assert net.features(torch.randn(2, 3, 32, 32)).shape == (2, 512, 1, 1)
        y, alpha = net(torch.randn(6, 3, 32, 32))
        assert y.shape == (6,) and alpha.shape == (6,)
        assert net.image_scores(torch.randn(6, 3, 32, 32), 3).shape == (2,)


def test_weighted_pooling_against_hand_computed_values():
    y = torch.tensor([[1.0, 2.0, 3.0], [10.0, 20.0, 40.0]])
    alpha = torch.tensor([[0.5, -1.0, 2.0], [-3.0, -1.0, -2.0]])
    eps = W.EPS
    first = (0.5 + eps) * 1 + eps * 2 + (2 + eps) * 3
    first /= (0.5 + eps) + eps + (2 + eps)
    second = (10 + 20 + 40) / 3  # every weight clipped to 0: all eps, the plain mean
    assert W.weighted_pool(y, alpha).tolist() == pytest.approx([first, second], rel=1e-6)
    # eq. 9 is a weighted mean: a patch with a large weight dominates
    assert float(W.weighted_pool(torch.tensor([1.0, 100.0]), torch.tensor([1e4, 0.0]))) == pytest.approx(1.0, abs=1e-3)


def test_test_time_score_is_the_weighted_pooling_of_each_images_crops():
    torch.manual_seed(0)
    net = W.WaDIQaMNet().eval()
    k, n = 3, 2
    patches = torch.randn(k * n, 3, 32, 32)  # predict_items' layout: K blocks of the n images
    with torch.no_grad():
        y, alpha = net(patches)
        out = W.pooled_forward(net, k)(patches)
    assert out.shape == (k * n,)
    per_image = out.reshape(k, n).mean(0)  # what predict_items then does
    for image in range(n):
        rows = [image + j * n for j in range(k)]
        w = torch.clamp(alpha[rows], min=0) + W.EPS
        assert float(per_image[image]) == pytest.approx(float((w * y[rows]).sum() / w.sum()), rel=1e-5)


def test_image_batches_repeat_each_image_for_its_patches():
    rng = np.random.default_rng(0)
    batches = W.image_batches(5, 4, 2, rng)
    assert [len(b) for b in batches] == [8, 8, 4]
    rows = np.concatenate(batches).reshape(-1, 4)
    assert (rows == rows[:, :1]).all() and sorted(rows[:, 0]) == [0, 1, 2, 3, 4]


def test_one_training_step_lowers_the_loss():
    torch.manual_seed(0)
    net = W.WaDIQaMNet().eval()
    patches, quality = torch.randn(8, 3, 32, 32), torch.tensor([20.0, 80.0])
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    before, after = loss_before_after_one_step(lambda: F.l1_loss(net.image_scores(patches, 4), quality), optimizer)
    assert after < before


QUICK = dict(recipe="quick", epochs=2, image_size="source")


def test_fit_predict_is_deterministic_with_the_seed_and_survives_save_load(tmp_path):
    items = make_items(tmp_path / "img", 8, (48, 56))
    train, val = items.iloc[:6], items.iloc[6:]
    first = create_method("wadiqam", **QUICK).fit(train, val, make_ctx(tmp_path, "a", seed=3))
    second = create_method("wadiqam", **QUICK).fit(train, val, make_ctx(tmp_path, "b", seed=3))
    other = create_method("wadiqam", **QUICK).fit(train, val, make_ctx(tmp_path, "c", seed=4))
    ctx = make_ctx(tmp_path, None, seed=3)
    p1, p2, p3 = first.predict(val, ctx), second.predict(val, ctx), other.predict(val, ctx)
    assert p1.shape == (2,) and np.isfinite(p1).all()
    np.testing.assert_array_equal(p1, p2)
    assert not np.array_equal(p1, p3)
    first.save(tmp_path / "saved")
    loaded = create_method("wadiqam").load(tmp_path / "saved")
    np.testing.assert_allclose(loaded.predict(val, ctx), p1, rtol=1e-6)
    history = first._history[0]["history"]
    assert len(history) == 2 and all(np.isfinite(h["loss"]) for h in history)


def test_paper_recipe_and_refusals():
    settings = create_method("wadiqam").settings()
    assert (settings["crop"], settings["patches_per_image"], settings["batch_size"], settings["lr"], settings["test_crops"]) == (32, 32, 4, 1e-4, 32)
    with pytest.raises(MethodError, match="trains from scratch"):
        create_method("wadiqam", weights="x.pth").settings()
    with pytest.raises(MethodError, match="trains from scratch"):
        create_method("wadiqam", pretrained="imagenet").settings()
    with pytest.raises(MethodError, match="at least 32"):
        create_method("wadiqam", crop=16).settings()
