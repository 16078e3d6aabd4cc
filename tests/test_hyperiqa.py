"""HyperIQA: the LDA vector, the hyper network's generated weight shapes, the target network
against a hand computation, the paper recipe's schedule, one step lowering the loss, seeded
determinism and a tiny fit/predict/save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from torch.nn import functional as F

import methods.hyperiqa as H
from biqa_bench.methods import create_method
from biqa_bench.nn.backbones import LoadedWeights, ResNetStages
from _deep_helpers import loss_before_after_one_step, make_ctx, make_items, one_thread, tiny_resnet  # noqa: F401 (autouse fixture)

RESNET50_CHANNELS = (256, 512, 1024, 2048)


@pytest.mark.parametrize("side", [7, 2])  # the stage-4 map at a 224 crop and at the quick recipe's 64
def test_hyper_network_generates_the_target_layers_weights(side):
    torch.manual_seed(0)
    hyper = H.HyperNetwork(2048).eval()
    with torch.no_grad():
        weights, biases = hyper(torch.randn(3, 2048, side, side))
    assert [tuple(w.shape) for w in weights] == [(3, 112, 224), (3, 56, 112), (3, 28, 56), (3, 14, 28), (3, 1, 14)]
    assert [tuple(b.shape) for b in biases] == [(3, 112), (3, 56), (3, 28), (3, 14), (3, 1)]
    assert [c.out_channels for c in hyper.weight_convs] == [512, 128, 32, 8]  # in * out / 49
    assert all(c.kernel_size == (3, 3) for c in hyper.weight_convs)
    assert not torch.allclose(weights[0][0], weights[0][1])  # generated per image


def test_lda_gives_the_224_d_content_vector():
    lda = H.LocalDistortionAware(RESNET50_CHANNELS)
    maps = [torch.randn(2, c, s, s) for c, s in zip(RESNET50_CHANNELS, (56, 28, 14, 7))]
    assert lda(maps).shape == (2, 224)
    assert [r.out_channels for r in lda.reduce] == [16, 32, 64]
    assert [fc.in_features for fc in lda.fcs] == [16 * 64, 32 * 16, 64 * 4]  # 8x8, 4x4, 2x2 grids
    assert (lda.fc4.in_features, lda.fc4.out_features) == (2048, 176)


def test_target_network_against_a_hand_computation():
    rng = np.random.default_rng(0)
    sizes = (4, 3, 2, 1)
    v = rng.normal(size=(2, 4))
    weights = [rng.normal(size=(2, o, i)) for i, o in zip(sizes[:-1], sizes[1:])]
    biases = [rng.normal(size=(2, o)) for o in sizes[1:]]
    expected = []
    for n in range(2):
        x = v[n]
        for k in range(3):
            x = weights[k][n] @ x + biases[k][n]
            if k < 2:
                x = 1 / (1 + np.exp(-x))
        expected.append(float(x[0]))
    t = lambda arrays: [torch.tensor(a, dtype=torch.float64) for a in arrays]  # noqa: E731
    out = H.target_network(torch.tensor(v), t(weights), t(biases))
    assert out.tolist() == pytest.approx(expected, rel=1e-9)


def test_full_network_on_resnet50_and_its_two_learning_rates():
    torch.manual_seed(0)
    net = H.HyperIQANet(ResNetStages(torchvision.models.resnet50(weights=None))).eval()
    with torch.no_grad():
        assert net(torch.randn(2, 3, 64, 64)).shape == (2,)
    settings = create_method("hyperiqa").settings()
    groups = H.backbone_head_groups(net.backbone_parameters(), net.hyper_parameters(), settings)
    assert [g["lr"] for g in groups] == [2e-5, 2e-4]
    n_params = sum(p.numel() for p in net.parameters())
    assert sum(p.numel() for g in groups for p in g["params"]) == n_params  # every parameter in one group
    assert (settings["epochs"], settings["batch_size"], settings["crops_per_image"], settings["test_crops"]) == (16, 96, 25, 25)
    assert settings["milestones"] == (5, 10, 15) and settings["flip"] is True and settings["weight_decay"] == 5e-4


def test_reqa_shares_the_harness():
    import methods.reqa as R

    assert R.resnet50_stages is H.resnet50_stages and R.backbone_head_groups is H.backbone_head_groups


def test_one_training_step_lowers_the_loss():
    torch.manual_seed(0)
    net = H.HyperIQANet(ResNetStages(tiny_resnet())).eval()
    images, quality = torch.randn(4, 3, 64, 64), torch.tensor([10.0, 30.0, 60.0, 90.0])
    optimizer = torch.optim.Adam(H.backbone_head_groups(net.backbone_parameters(), net.hyper_parameters(), {"lr_backbone": 1e-4, "lr_head": 1e-3}))
    before, after = loss_before_after_one_step(lambda: F.l1_loss(net(images), quality), optimizer)
    assert after < before


QUICK = dict(recipe="quick", pretrained="none", image_size="source", crop=32)


def test_fit_is_deterministic_with_the_seed_and_survives_save_load(tmp_path, monkeypatch):
    monkeypatch.setattr(H, "resnet50_stages", lambda pretrained, weights: (ResNetStages(tiny_resnet()), LoadedWeights(None, None)))
    items = make_items(tmp_path / "img", 8, (40, 48))
    train, val = items.iloc[:6], items.iloc[6:]
    runs = [create_method("hyperiqa", **QUICK).fit(train, val, make_ctx(tmp_path, f"r{k}", seed=s)) for k, s in enumerate((3, 3, 4))]
    ctx = make_ctx(tmp_path, None, seed=3)
    p = [m.predict(val, ctx) for m in runs]
    assert p[0].shape == (2,) and np.isfinite(p[0]).all()
    np.testing.assert_array_equal(p[0], p[1])
    assert not np.array_equal(p[0], p[2])
    runs[0].save(tmp_path / "saved")
    np.testing.assert_allclose(create_method("hyperiqa").load(tmp_path / "saved").predict(val, ctx), p[0], rtol=1e-5)
    lrs = [h["lr"] for h in runs[0]._history[0]["history"]]
    assert lrs == [[1e-4, 1e-3], [pytest.approx(1e-5), pytest.approx(1e-4)]]  # the quick recipe's milestone at epoch 1
