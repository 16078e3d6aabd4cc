"""MetaIQA: the network's shapes, the bi-level objective and its meta-gradient against a hand
computation (second and first order), the episodes of distortion-type tasks, one step lowering
the loss, the meta-trained prior reused from the cache, and seeded determinism."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import methods.metaiqa as M
from biqa_bench.datasets import distortions as DIST
from biqa_bench.methods import create_method
from biqa_bench.nn.backbones import LoadedWeights
from _deep_helpers import ctx_for, loss_before_after_one_step, one_thread, stage_datasets, tiny_resnet  # noqa: F401 (autouse fixture)


def test_network_shapes_and_the_0_100_output():
    backbone, loaded = M.resnet18("none", None)
    net = M.MetaIQANet(backbone).eval()
    assert loaded.sha256 is None
    assert [type(m).__name__ for m in net.head] == ["Linear", "BatchNorm1d", "PReLU", "Dropout", "Linear", "BatchNorm1d", "PReLU", "Dropout", "Linear"]
    assert (net.head[0].in_features, net.head[0].out_features, net.head[4].out_features, net.head[8].out_features) == (1000, 1024, 512, 1)
    with torch.no_grad():
        out = net(torch.randn(3, 3, 64, 64))
    assert out.shape == (3,) and ((out > 0) & (out < 100)).all()


class Linear2(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.lin = nn.Linear(2, 1, bias=False, dtype=torch.float64)
        with torch.no_grad():
            self.lin.weight.copy_(torch.tensor([w], dtype=torch.float64))

    def forward(self, x):
        return self.lin(x).squeeze(1)


def _by_hand(w, xs, ys, xq, yq, lr, first_order):
    """L_q(w') and its gradient w.r.t. w, w' = w - lr grad L_s(w), L = mean((x w - y)^2) / 100^2."""
    s, q = len(xs), len(xq)
    grad_s = 2 / (s * 1e4) * xs.T @ (xs @ w - ys)
    adapted = w - lr * grad_s
    loss_q = np.mean((xq @ adapted - yq) ** 2) / 1e4
    grad_q = 2 / (q * 1e4) * xq.T @ (xq @ adapted - yq)
    if first_order:
        return loss_q, grad_q
    hessian_s = 2 / (s * 1e4) * xs.T @ xs
    return loss_q, (np.eye(2) - lr * hessian_s) @ grad_q


@pytest.mark.parametrize("first_order", [False, True])
def test_bilevel_objective_and_meta_gradient_against_a_hand_computation(first_order):
    rng = np.random.default_rng(0)
    w = np.array([0.7, -0.4])
    xs, xq = rng.normal(size=(3, 2)) * 10, rng.normal(size=(2, 2)) * 10
    ys, yq = rng.normal(size=3) * 10, rng.normal(size=2) * 10
    lr = 300.0  # large: the second-order term must matter
    expected_loss, expected_grad = _by_hand(w, xs, ys, xq, yq, lr, first_order)
    model = Linear2(w.tolist())
    images = torch.tensor(np.concatenate([xs, xq]))
    quality = torch.tensor(np.concatenate([ys, yq]))
    loss = M.bilevel_loss(model, images, quality, 3, 2, {"lin.weight": lr}, first_order=first_order)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(expected_loss, rel=1e-9)
    assert model.lin.weight.grad[0].tolist() == pytest.approx(expected_grad.tolist(), rel=1e-9)
    _, other_grad = _by_hand(w, xs, ys, xq, yq, lr, not first_order)
    assert not np.allclose(other_grad, expected_grad)  # the two orders differ here
    # two episodes: the mean of their query losses
    model.lin.weight.grad = None
    images2 = torch.cat([images, images.flip(0)])
    quality2 = torch.cat([quality, quality.flip(0)])
    flipped_x, flipped_y = np.concatenate([xs, xq])[::-1], np.concatenate([ys, yq])[::-1]
    second, _ = _by_hand(w, flipped_x[:3], flipped_y[:3], flipped_x[3:], flipped_y[3:], lr, first_order)
    both = M.bilevel_loss(model, images2, quality2, 3, 2, {"lin.weight": lr}, first_order=first_order)
    assert float(both.detach()) == pytest.approx((expected_loss + second) / 2, rel=1e-9)


def test_episodes_are_single_task_support_then_query():
    tasks = np.repeat(np.arange(3), [7, 5, 2])
    steps = M.episodes(tasks, 2, 2, 2, np.random.default_rng(0))
    episodes = np.concatenate(steps).reshape(-1, 4)
    assert all(len(set(tasks[e])) == 1 for e in episodes)
    assert sorted(tasks[episodes[:, 0]].tolist()) == [0, 1, 2]  # 7 // 4, 5 // 4, and the small task by replacement
    assert [len(s) for s in steps] == [8, 4]


def test_task_labels_are_distortion_types():
    names = list(dict.fromkeys(n for n, _ in DIST.SYNTHETIC_CLASSES))
    classes = [DIST.synthetic_class_index(names[0], 1), DIST.synthetic_class_index(names[0], 3), DIST.synthetic_class_index(names[2], 2)]
    assert M.task_labels(pd.DataFrame({"class_index": classes})).tolist() == [0, 0, 2]


def test_one_training_step_lowers_the_loss():
    torch.manual_seed(0)
    net = M.MetaIQANet(tiny_resnet()).eval()
    images, quality = torch.randn(4, 3, 64, 64), torch.tensor([10.0, 30.0, 60.0, 90.0])
    optimizer = torch.optim.Adam(M.head_groups(net, 1e-4, 1e-3))
    before, after = loss_before_after_one_step(lambda: M.quality_loss(net(images), quality), optimizer)
    assert after < before


# --------------------------------------------------------------------------- end to end (tiny)


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.setattr(M, "resnet18", lambda pretrained, weights: (tiny_resnet(), LoadedWeights(None, None)))
    return stage_datasets(tmp_path, monkeypatch, lambda n: (np.arange(n) % 2) * 5, 8, M.MetaIQA, "_meta_train")  # two types


QUICK = dict(recipe="quick", pretrained="none", pretrain_data="presynth", crop=32, image_size="source")


def test_meta_stage_is_cached_across_splits_and_can_be_skipped(tmp_path, setup):
    target, items, calls = setup
    first = create_method("metaiqa", **QUICK).fit(items.iloc[:4], items.iloc[4:6], ctx_for(tmp_path, target, seed=1, work="s1"))
    stage = first.pretraining_manifest["stages"][0]
    assert calls == [1] and stage["reused"] is False and stage["stage"] == "meta"
    assert stage["inputs"]["first_order"] is False and stage["inputs"]["data"]["n_items"] == 8
    second = create_method("metaiqa", **QUICK).fit(items.iloc[2:6], items.iloc[6:8], ctx_for(tmp_path, target, seed=2, work="s2"))
    assert calls == [1] and second.pretraining_manifest["stages"][0]["reused"] is True
    third = create_method("metaiqa", **QUICK, first_order=True).fit(items.iloc[:4], items.iloc[4:6], ctx_for(tmp_path, target, work="s3"))
    assert calls == [1, 1] and third.pretraining_manifest["stages"][0]["key"] != stage["key"]
    plain = create_method("metaiqa", **QUICK, meta=False).fit(items.iloc[:4], items.iloc[4:6], ctx_for(tmp_path, target, work="s4"))
    assert calls == [1, 1] and plain.pretraining_manifest == {"meta": False, "stages": []}


def test_fit_is_deterministic_with_the_seed(tmp_path, setup):
    target, items, calls = setup
    ctx = ctx_for(tmp_path, target, seed=1, work="p")
    runs = [create_method("metaiqa", **QUICK).fit(items.iloc[:4], items.iloc[4:6], ctx_for(tmp_path, target, seed=s, work=f"d{k}")) for k, s in enumerate((1, 1, 2))]
    p = [m.predict(items.iloc[6:], ctx) for m in runs]
    np.testing.assert_array_equal(p[0], p[1])
    assert not np.array_equal(p[0], p[2])
    runs[0].save(tmp_path / "saved")
    np.testing.assert_allclose(create_method("metaiqa").load(tmp_path / "saved").predict(items.iloc[6:], ctx), p[0], rtol=1e-5)
