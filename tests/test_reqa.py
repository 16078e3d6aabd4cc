"""REQA: losses against hand-computed values, micro-batch sampling, curriculum weights,
network shapes, optimisation on a tiny batch, save/load."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from PIL import Image

from biqa_bench.errors import MethodError
from biqa_bench.methods import create_method
from biqa_bench.nn.backbones import ResNetStages
from methods import reqa
from methods.reqa import (
    REQANet,
    coarse_loss,
    curriculum_weights,
    gradient_loss,
    batch_micro_batches,
    micro_batches,
    quality_levels,
    rank_loss,
    reqa_loss,
    tolerance_loss,
)
from _deep_helpers import make_ctx, one_thread_tmp_env, tiny_resnet  # noqa: F401 (autouse fixture)


def tiny_stages() -> ResNetStages:
    return ResNetStages(tiny_resnet())


T = torch.tensor


# --------------------------------------------------------------------------- losses


def test_rank_loss_is_zero_for_correct_order_and_eq10_otherwise():
    # correctly ordered: s_i > s_j and F_i > F_j
    assert float(rank_loss(T(60.0), T(50.0), T(70.0), T(40.0))) == 0.0
    assert float(rank_loss(T(60.0), T(50.0), T(70.0), T(40.0), form="eq10")) == 0.0
    # mis-ordered: s_i - s_j = 30, F_i - F_j = -10
    sigma = 1e-4
    eq10 = abs(70 - 40) * abs(50 - 60)  # eq. 10: |s_i - s_j| * |F_i - F_j| = 300
    hinge = 30 * 10 / (30 + sigma)
    assert float(rank_loss(T(50.0), T(60.0), T(70.0), T(40.0), form="eq10")) == pytest.approx(eq10, rel=1e-5)
    assert float(rank_loss(T(50.0), T(60.0), T(70.0), T(40.0), form="eq10")) == pytest.approx(hinge * 30, rel=1e-6)
    # eq. 9 as printed: the hinge times (|s_i - s_j| + 1)
    assert float(rank_loss(T(50.0), T(60.0), T(70.0), T(40.0))) == pytest.approx(hinge * 31, rel=1e-6)
    # symmetric in the pair
    assert float(rank_loss(T(60.0), T(50.0), T(40.0), T(70.0))) == pytest.approx(hinge * 31, rel=1e-6)
    with pytest.raises(MethodError):
        rank_loss(T(1.0), T(2.0), T(3.0), T(4.0), form="eq11")


def test_gradient_and_tolerance_losses():
    assert float(gradient_loss(T(50.0), T(60.0), T(70.0), T(40.0))) == pytest.approx(abs(30 - 10))
    quality = T([50.0, 50.0, 50.0])
    assert float(tolerance_loss(T([53.0, 47.5, 55.0]), quality, 5.0)) == 0.0  # all inside the threshold
    assert float(tolerance_loss(T([53.0, 58.0, 40.0]), quality, 5.0)) == pytest.approx((0 + 3 + 5) / 3)
    assert float(tolerance_loss(T([53.0, 58.0, 40.0]), quality, 0.0)) == pytest.approx((3 + 8 + 10) / 3)


def _coarse_by_hand(pred, quality, sigma=1e-4):
    total = 0.0
    for micro_p, micro_s in zip(pred, quality):
        for i, j in itertools.combinations(range(5), 2):
            ds, dp = micro_s[i] - micro_s[j], micro_p[i] - micro_p[j]
            rank = max(0.0, -ds * dp / (abs(ds) + sigma)) * (abs(ds) + 1)
            total += rank + abs(abs(ds) - abs(dp))
    return total / len(pred)


def test_coarse_loss_matches_equation_12_by_hand():
    rng = np.random.default_rng(0)
    pred, quality = rng.uniform(0, 100, (3, 5)), rng.uniform(0, 100, (3, 5))
    value = coarse_loss(torch.tensor(pred), torch.tensor(quality))
    assert float(value) == pytest.approx(_coarse_by_hand(pred, quality), rel=1e-9)


def test_curriculum_weights_are_the_papers_normalised():
    for epoch, expected in [(0, (3 / 11, 6 / 11, 1 / 11, 1 / 11)), (9, (3 / 11, 6 / 11, 1 / 11, 1 / 11)),
                            (10, (0, 0.5, 0.25, 0.25)), (25, (0, 0.25, 0.5, 0.25)), (39, (0.2, 0.2, 0.2, 0.4))]:
        np.testing.assert_allclose(curriculum_weights(epoch, 40), expected)
    for epoch in range(40):
        assert curriculum_weights(epoch, 40).sum() == pytest.approx(1.0)
    np.testing.assert_allclose(curriculum_weights(3, 4), (0.2, 0.2, 0.2, 0.4))


def test_total_loss_is_the_weighted_sum():
    rng = np.random.default_rng(1)
    scores, quality = torch.tensor(rng.uniform(0, 100, (10, 4))), torch.tensor(rng.uniform(0, 100, 10))
    weights = curriculum_weights(39, 40)
    total, parts = reqa_loss(scores, quality, weights)
    by_hand = weights[0] * _coarse_by_hand(scores[:, 0].numpy().reshape(2, 5), quality.numpy().reshape(2, 5))
    for t, threshold in zip((1, 2, 3), (5.0, 2.5, 0.0)):
        by_hand += weights[t] * np.maximum(np.abs(quality.numpy() - scores[:, t].numpy()) - threshold, 0).mean()
    assert float(total) == pytest.approx(by_hand, rel=1e-9)
    assert set(parts) == {"coarse", "fine_t2", "fine_t3", "fine_t4"}


# --------------------------------------------------------------------------- sampling


def test_quality_levels_are_acr_categories_with_quintile_fallback():
    quality = np.array([5, 25, 45, 65, 85, 19.9, 20.0, 100.0])
    np.testing.assert_array_equal(quality_levels(quality), [0, 1, 2, 3, 4, 0, 1, 4])
    no_bad = np.linspace(30, 95, 10)  # nothing below 20: quintiles instead
    np.testing.assert_array_equal(quality_levels(no_bad), np.repeat(np.arange(5), 2))


def test_micro_batches_draw_one_member_of_each_level():
    rng = np.random.default_rng(0)
    quality = np.concatenate([rng.uniform(lo, lo + 20, n) for lo, n in zip((0, 20, 40, 60, 80), (3, 10, 20, 10, 2))])
    levels = quality_levels(quality)
    steps = micro_batches(levels, n_micro=4, n_steps=6, rng=np.random.default_rng(7))
    assert len(steps) == 6 and all(len(rows) == 20 for rows in steps)
    for rows in steps:
        for micro in rows.reshape(-1, 5):
            assert sorted(levels[micro]) == [0, 1, 2, 3, 4]  # five different quality levels
    drawn = np.concatenate(steps).reshape(-1, 5)
    for level in range(5):  # without replacement until a level is used up
        members = np.flatnonzero(levels == level)
        first = drawn[: len(members), level] if len(members) <= len(drawn) else drawn[:, level]
        assert len(set(first.tolist())) == len(first)
    again = micro_batches(levels, 4, 6, np.random.default_rng(7))
    assert all(np.array_equal(a, b) for a, b in zip(steps, again))
    with pytest.raises(MethodError, match="five quality levels"):
        micro_batches(np.array([0, 1, 2, 3]), 1, 1, rng)


def test_batch_micro_batches_group_a_uniform_batch_into_its_five_quality_bands():
    rng = np.random.default_rng(0)
    # long-tailed like KonIQ: 2 'excellent' and 3 'bad' items among 60
    quality = np.concatenate([rng.uniform(lo, lo + 20, n) for lo, n in zip((0, 20, 40, 60, 80), (3, 10, 30, 15, 2))])
    steps = batch_micro_batches(quality, n_micro=4, n_steps=6, rng=np.random.default_rng(7))  # 6 x 20 = 120 = 2 passes
    assert len(steps) == 6 and all(len(rows) == 20 for rows in steps)
    for rows in steps:
        ranked = np.argsort(np.argsort(quality[rows], kind="stable"), kind="stable")  # rank 0..19 within the batch
        for micro in ranked.reshape(-1, 5):
            assert sorted(micro // 4) == [0, 1, 2, 3, 4]  # one member from each fifth of the batch
    drawn = np.concatenate(steps)
    # uniform: each pass over the training set is a permutation, so every item is drawn exactly twice
    np.testing.assert_array_equal(np.bincount(drawn, minlength=60), np.full(60, 2))
    assert len(set(drawn[:60].tolist())) == 60
    # the ACR reading puts one of the 2 'excellent' items in every one of the 24 micro-batches: 12 draws each
    acr = np.concatenate(micro_batches(quality_levels(quality), 4, 6, np.random.default_rng(7)))
    assert np.bincount(acr, minlength=60)[-2:].tolist() == [12, 12]
    again = batch_micro_batches(quality, 4, 6, np.random.default_rng(7))
    assert all(np.array_equal(a, b) for a, b in zip(steps, again))
    with pytest.raises(MethodError, match="five quality levels"):
        batch_micro_batches(np.arange(4.0), 1, 1, rng)


def test_micro_levels_option_is_checked_and_defaults_to_batch():
    assert create_method("reqa").micro_levels == "batch"
    with pytest.raises(MethodError, match="micro_levels"):
        create_method("reqa", micro_levels="quintile").settings()


# --------------------------------------------------------------------------- network


def test_forward_shapes_with_resnet50():
    torch.manual_seed(0)
    model = REQANet(ResNetStages(torchvision.models.resnet50(weights=None)), crop=64).eval()
    assert model.stages.channels == (256, 512, 1024, 2048)
    assert model.encoder.position.shape == (1, 4, 224)  # 2 x 2 patches of fm_4 at 64 x 64, D = 224
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 4) and torch.isfinite(out).all()
    assert [b.project.out_features for b in model.feedback] == [32, 32, 32]


def test_a_few_steps_lower_the_loss_on_a_tiny_batch():
    torch.manual_seed(0)
    model = REQANet(tiny_stages(), crop=64)
    images = torch.randn(10, 3, 64, 64)
    quality = torch.tensor([5.0, 25.0, 45.0, 65.0, 85.0, 15.0, 35.0, 55.0, 75.0, 95.0])
    with torch.no_grad():
        model.mlp3[-1].bias.fill_(50.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    weights = curriculum_weights(39, 40)
    losses = []
    for _ in range(8):
        loss, _ = reqa_loss(model(images), quality, weights)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]


def make_items(folder: Path, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        quality = 100.0 * (i % 5) / 5 + rng.uniform(0, 19)
        path = folder / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (68, 68, 3), dtype=np.uint8)).save(path)
        rows.append({"item_id": f"r{i}", "path": str(path), "quality": quality, "score": quality, "content_id": f"r{i}"})
    return pd.DataFrame(rows)


def test_quick_fit_save_load_identical(tmp_path, monkeypatch):
    monkeypatch.setattr(reqa.REQA, "make_stages", lambda self, pretrained, weights: (tiny_stages(), reqa.LoadedWeights(None, None)))
    items = make_items(tmp_path / "img", 14)
    ctx = make_ctx(tmp_path, seed=1)
    method = create_method("reqa", recipe="quick", pretrained="none", image_size="68x68")
    method.fit(items.iloc[:10], items.iloc[10:12], ctx)
    history = method._history[0]["history"]
    assert len(history) == 2 and {"coarse", "fine_t2", "fine_t3", "fine_t4"} <= set(history[0])
    prediction = method.predict(items.iloc[12:], ctx)
    method.save(tmp_path / "model")
    loaded = create_method("reqa").load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict(items.iloc[12:], ctx), prediction)


def test_bad_settings_are_method_errors():
    with pytest.raises(MethodError, match="batch_size"):
        create_method("reqa", batch_size=4).settings()
    with pytest.raises(MethodError, match="recipe"):
        create_method("reqa", recipe="fast").settings()
    with pytest.raises(MethodError, match="rank_form"):
        create_method("reqa", rank_form="eq12").settings()


def test_paper_schedule_decays_after_each_ten_epoch_curriculum_stage():
    # IV-A.3: lr 2e-5 / 2e-4 reduced by 10 after epochs 10, 20, 30 (0-based epoch 10 is the 11th),
    # the same epochs at which the curriculum stage changes.
    from biqa_bench.nn.trainer import StepDecay

    paper = reqa.REQA.RECIPES["paper"]
    assert (paper["epochs"], paper["lr_backbone"], paper["lr_head"], paper["weight_decay"]) == (40, 2e-5, 2e-4, 5e-4)
    assert paper["milestones"] == "stages" and reqa.stage_starts(paper["epochs"]) == (10, 20, 30)
    schedule = StepDecay(reqa.stage_starts(paper["epochs"]), 0.1)
    for epoch, factor, stage_weights in [(0, 1.0, (3 / 11, 6 / 11, 1 / 11, 1 / 11)), (9, 1.0, (3 / 11, 6 / 11, 1 / 11, 1 / 11)),
                                         (10, 0.1, (0, 0.5, 0.25, 0.25)), (19, 0.1, (0, 0.5, 0.25, 0.25)),
                                         (20, 0.01, (0, 0.25, 0.5, 0.25)), (30, 0.001, (0.2, 0.2, 0.2, 0.4))]:
        assert schedule.factor(epoch) == pytest.approx(factor)
        np.testing.assert_allclose(curriculum_weights(epoch, paper["epochs"]), stage_weights)


@pytest.mark.parametrize("epochs, starts", [(40, (10, 20, 30)), (20, (5, 10, 15)), (10, (3, 5, 8)), (6, (2, 3, 5)), (3, (1, 2)), (1, ())])
def test_learning_rate_drops_where_the_curriculum_stage_changes_for_any_number_of_epochs(epochs, starts):
    # stage of epoch e = floor(4 e / epochs): 10 epochs -> stages 0,0,0,1,1,2,2,2,3,3
    assert reqa.stage_starts(epochs) == starts
    for epoch in range(1, epochs):
        changed = not np.array_equal(curriculum_weights(epoch, epochs), curriculum_weights(epoch - 1, epochs))
        assert (epoch in starts) == changed


def test_paper_recipes_flip_only_where_their_paper_protocol_does():
    # REQA, IEIT, QAMT, WaDIQaM and the ResNet-50 baseline name random crops only; HCL's curriculum 3
    # follows HyperIQA's protocol, which flips, as DBCNN and MetaIQA do
    expected = {"reqa": False, "ieit": False, "qamt": False, "resnet50": False, "hcl": True, "wadiqam": False, "hyperiqa": True, "dbcnn": True, "metaiqa": True}
    for name, flip in expected.items():
        assert create_method(name).settings()["flip"] is flip, name
        assert create_method(name, flip=not flip).settings()["flip"] is (not flip), name
        assert create_method(name, recipe="quick").settings()["flip"] is True, name
    with pytest.raises(MethodError, match="flip must be true or false"):
        create_method("reqa", flip="yes").settings()
