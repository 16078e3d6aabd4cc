"""DBCNN: the S-CNN's and the bilinear model's shapes, bilinear pooling against a hand-computed
value (eqs. 3-5), the S-CNN's log-spaced rates, one step lowering the loss, the two training
stages, the S-CNN pre-training reused from the cache, and seeded determinism."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import methods.dbcnn as D
from biqa_bench.methods import create_method
from biqa_bench.nn.backbones import LoadedWeights
from _deep_helpers import ctx_for, loss_before_after_one_step, one_thread, stage_datasets  # noqa: F401 (autouse fixture)


def test_scnn_and_vgg_streams_have_the_papers_shapes():
    scnn = D.SCNN().eval()
    convs = [m for m in scnn.features if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride[0]) for c in convs] == list(D.SCNN_CONVS)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in scnn.features) == 9
    with torch.no_grad():
        assert scnn.features(torch.randn(1, 3, 224, 224)).shape == (1, 128, 14, 14)
        assert scnn(torch.randn(2, 3, 64, 64)).shape == (2, 39)
    vgg, loaded = D.vgg16("none", None)
    features = D.vgg16_features(vgg)
    assert loaded.sha256 is None and not isinstance(list(features)[-1], nn.MaxPool2d)
    assert sum(isinstance(m, nn.Conv2d) for m in features) == 13
    net = D.DBCNNNet(features, scnn.features).eval()
    assert net.fc.in_features == 512 * 128
    with torch.no_grad():
        assert features(torch.randn(1, 3, 64, 64)).shape == (1, 512, 4, 4)
        assert net(torch.randn(2, 3, 64, 64)).shape == (2,)


def signed_root(v: float) -> float:
    return 0.0 if v == 0 else math.copysign(math.sqrt(abs(v) + 1e-8), v)  # sign(0) = 0


def test_bilinear_pooling_against_hand_computed_values():
    authentic = torch.tensor([[[[1.0, 3.0]], [[2.0, 0.0]]]])  # (1, 2, 1, 2)
    synthetic = torch.tensor([[[[4.0, 1.0]], [[0.0, 2.0]], [[1.0, 1.0]]]])  # (1, 3, 1, 2)
    a = [[1.0, 3.0], [2.0, 0.0]]
    s = [[4.0, 1.0], [0.0, 2.0], [1.0, 1.0]]
    b = [sum(a[i][l] * s[j][l] for l in range(2)) / 2 for i in range(2) for j in range(3)]
    rooted = [signed_root(v) for v in b]
    norm = math.sqrt(sum(v * v for v in rooted))
    assert D.bilinear_pool(authentic, synthetic)[0].tolist() == pytest.approx([v / norm for v in rooted], rel=1e-6)
    # a 1 x 1 S-CNN map is resized to the VGG map's size: every position gets the same vector
    single = torch.tensor([[[[2.0]], [[1.0]], [[3.0]]]])
    b = [sum(a[i][l] * [2.0, 1.0, 3.0][j] for l in range(2)) / 2 for i in range(2) for j in range(3)]
    rooted = [signed_root(v) for v in b]
    norm = math.sqrt(sum(v * v for v in rooted))
    assert D.bilinear_pool(authentic, single)[0].tolist() == pytest.approx([v / norm for v in rooted], rel=1e-6)
    # signed square root for negative entries
    out = D.bilinear_pool(torch.tensor([[[[-1.0]]]]), torch.tensor([[[[4.0]]]]))
    assert out[0].tolist() == pytest.approx([-1.0])


def test_scnn_rates_decay_log_linearly():
    rates = D.log_spaced_rates(1e-1, 1e-4, 30)
    assert len(rates) == 30 and rates[0] == pytest.approx(1e-1) and rates[-1] == pytest.approx(1e-4)
    assert np.allclose(np.diff(np.log10(rates)), -3 / 29)


def test_one_training_step_lowers_the_loss():
    torch.manual_seed(0)
    net = D.DBCNNNet(D.vgg16_features(TinyVGG()), D.SCNN().features).eval()
    images, quality = torch.randn(4, 3, 64, 64), torch.tensor([10.0, 30.0, 60.0, 90.0])
    optimizer = torch.optim.SGD(net.fc.parameters(), lr=1e-3, momentum=0.9)
    before, after = loss_before_after_one_step(lambda: F.mse_loss(net(images), quality), optimizer)
    assert after < before


# --------------------------------------------------------------------------- end to end (tiny)


class TinyVGG(nn.Module):
    """A stand-in for VGG-16: ``features`` ends with a max pooling that DBCNN drops; 512 channels at 1/16."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 512, 3, stride=16, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2))


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """A tiny authentic target and a tiny named single-distortion set 'presynth' for the S-CNN."""
    monkeypatch.setattr(D, "vgg16", lambda pretrained, weights: (TinyVGG(), LoadedWeights(None, None)))
    return stage_datasets(tmp_path, monkeypatch, lambda n: np.arange(n) % 39, 6, D.DBCNN, "_train_scnn")


QUICK = dict(recipe="quick", pretrained="none", pretrain_data="presynth", crop=32, image_size="source")


def test_scnn_pretraining_is_cached_across_splits_and_the_two_stages_run(tmp_path, setup):
    target, items, calls = setup
    first = create_method("dbcnn", **QUICK).fit(items.iloc[:4], items.iloc[4:6], ctx_for(tmp_path, target, seed=1, work="s1"))
    stage = first.pretraining_manifest["stages"][0]
    assert calls == [1] and stage["reused"] is False and (Path(stage["folder"]) / "weights.pt").is_file()
    assert stage["inputs"]["data"]["n_items"] == 6 and stage["stage"] == "scnn"
    assert [phase["name"] for phase in first._history] == ["fc", "finetune"]
    # the stored S-CNN features are exactly the layers of the bilinear model's S-CNN stream
    scnn_state = torch.load(Path(stage["folder"]) / "weights.pt", weights_only=True)
    assert set(k.removeprefix("features.") for k in scnn_state if k.startswith("features.")) == set(first._model.scnn.state_dict())
    second = create_method("dbcnn", **QUICK).fit(items.iloc[2:6], items.iloc[6:8], ctx_for(tmp_path, target, seed=2, work="s2"))
    assert calls == [1] and second.pretraining_manifest["stages"][0]["reused"] is True
    assert second.pretraining_manifest["stages"][0]["key"] == stage["key"]
    third = create_method("dbcnn", **QUICK, pretrain_seed=5).fit(items.iloc[:4], items.iloc[4:6], ctx_for(tmp_path, target, work="s3"))
    assert calls == [1, 1] and third.pretraining_manifest["stages"][0]["key"] != stage["key"]
    assert all(p.requires_grad for p in third._model.parameters())  # stage 1's freezing is undone


def test_fc_stage_leaves_both_streams_unchanged(tmp_path, setup):
    target, items, calls = setup
    method = create_method("dbcnn", **QUICK, epochs=1)
    seen = {}
    original = D.run_phase

    def spy(phase, model, *args, **kwargs):
        before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("fc.")}
        result = original(phase, model, *args, **kwargs)
        seen[phase.name] = all(torch.equal(before[k], v) for k, v in model.state_dict().items() if k in before)
        return result

    import unittest.mock

    import biqa_bench.nn.method as base

    with unittest.mock.patch.object(D, "run_phase", spy), unittest.mock.patch.object(base, "run_phase", spy):
        method.fit(items.iloc[:4], items.iloc[4:6], ctx_for(tmp_path, target, seed=1, work="f"))
    assert seen == {"scnn": False, "fc": True, "finetune": False}  # the S-CNN trains in its own stage first


def test_fit_is_deterministic_with_the_seed(tmp_path, setup):
    target, items, calls = setup
    ctx = ctx_for(tmp_path, target, seed=1, work="p")
    runs = [create_method("dbcnn", **QUICK).fit(items.iloc[:4], items.iloc[4:6], ctx_for(tmp_path, target, seed=s, work=f"d{k}")) for k, s in enumerate((1, 1, 2))]
    p = [m.predict(items.iloc[6:], ctx) for m in runs]
    np.testing.assert_array_equal(p[0], p[1])
    assert not np.array_equal(p[0], p[2])
    runs[0].save(tmp_path / "saved")
    np.testing.assert_allclose(create_method("dbcnn").load(tmp_path / "saved").predict(items.iloc[6:], ctx), p[0], rtol=1e-5)
