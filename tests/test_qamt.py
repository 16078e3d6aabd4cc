"""QAMT: stage-1 network and losses against hand-computed values, the cached pre-training stage,
the ablation switch, and save/load."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import methods.qamt as Q
from methods._support import pretrain as P
from biqa_bench.datasets.registry import DatasetInfo, make_dataset
from biqa_bench.errors import MethodError
from biqa_bench.methods import create_method
from biqa_bench.nn.backbones import LoadedWeights
from _deep_helpers import ctx_for, fake_pseudo_mos, make_items, one_thread, save_load_predictions, tiny_resnet  # noqa: F401 (autouse fixture)


def tiny_backbone(pretrained, weights):
    model = tiny_resnet()
    model.fc = nn.Identity()
    return model, 512, LoadedWeights(None, None)


class Linear4(nn.Module):
    """A 'backbone' whose feature is the first 4 inputs: lets a test compute the heads by hand."""

    def forward(self, x):
        return x.reshape(x.shape[0], -1)[:, :4]


def test_multitask_network_shapes_and_forward_by_hand():
    torch.manual_seed(0)
    net = Q.MultiTaskNet(Linear4(), 4, 39, "cls+reg", hidden=6, reg_hidden=5)
    x = torch.randn(3, 4)
    logits, score = net(x)
    assert logits.shape == (3, 39) and score.shape == (3,)
    c1 = x @ net.cfc1.weight.T + net.cfc1.bias
    s1 = x @ net.rfc1.weight.T + net.rfc1.bias
    m1 = torch.relu(torch.cat([s1, c1], 1))  # eq. 5: s1 first, then c1
    expected = torch.relu(m1 @ net.rfc2.weight.T + net.rfc2.bias) @ net.rfc3.weight.T + net.rfc3.bias
    assert torch.allclose(score, expected.squeeze(1), atol=1e-6)
    assert torch.allclose(logits, torch.relu(c1) @ net.cfc2.weight.T + net.cfc2.bias, atol=1e-6)
    assert net.rfc2.in_features == 12  # 2 x hidden
    cls_only = Q.MultiTaskNet(Linear4(), 4, 26, "cls", hidden=6)
    logits, score = cls_only(x)
    assert logits.shape == (3, 26) and score is None and not cls_only.regression_modules()
    reg_only = Q.MultiTaskNet(Linear4(), 4, 39, "reg", hidden=6, reg_hidden=5)
    logits, score = reg_only(x)
    assert logits is None and score.shape == (3,) and reg_only.rfc2.in_features == 6


def test_paper_sizes_on_resnet50():
    backbone, dim, loaded = Q.build_backbone("none", None)
    net = Q.MultiTaskNet(backbone, dim, 39).eval()
    assert dim == 2048 and loaded.sha256 is None
    assert (net.cfc1.in_features, net.cfc1.out_features, net.cfc2.out_features) == (2048, 1024, 39)
    assert (net.rfc1.out_features, net.rfc2.in_features, net.rfc3.out_features) == (1024, 2048, 1)
    with torch.no_grad():
        logits, score = net(torch.randn(1, 3, 64, 64))
    assert logits.shape == (1, 39) and score.shape == (1,)
    head = Q.QualityRegressor(nn.Identity(), 2048).head
    assert [type(m).__name__ for m in head] == ["Dropout", "Linear", "ReLU", "Linear"]
    assert head[0].p == 0.5 and (head[1].out_features, head[3].out_features) == (256, 1)


def test_losses_against_hand_computed_values():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 1.5]])
    classes = torch.tensor([0, 2])
    ce = [-(2.0 - math.log(math.exp(2) + 1 + math.exp(-1))), -(1.5 - math.log(2 * math.exp(0.5) + math.exp(1.5)))]
    assert Q.classification_loss(logits, classes, "synthetic").item() == pytest.approx(np.mean(ce), rel=1e-6)

    multi = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    bce = [
        -sum(t * math.log(sig(z)) + (1 - t) * math.log(1 - sig(z)) for z, t in zip(row_z, row_t))
        for row_z, row_t in zip(logits.tolist(), multi.tolist())
    ]
    assert Q.classification_loss(logits, multi, "authentic").item() == pytest.approx(np.mean(bce), rel=1e-6)  # eq. 4

    score, pmos = torch.tensor([3.0, 7.5]), torch.tensor([4.0, 5.0])
    total, parts = Q.multitask_loss(logits, score, classes, pmos, "synthetic")
    assert parts["l_s"] == pytest.approx(1.75)  # (1 + 2.5) / 2, eq. 6
    assert total.item() == pytest.approx(1.75 + np.mean(ce), rel=1e-6)  # eq. 7
    total, parts = Q.multitask_loss(None, score, classes, pmos, "synthetic")
    assert total.item() == pytest.approx(1.75) and set(parts) == {"l_s"}
    total, parts = Q.multitask_loss(logits, None, multi, pmos, "authentic")
    assert total.item() == pytest.approx(np.mean(bce), rel=1e-6) and set(parts) == {"l_c"}


# --------------------------------------------------------------------------- end to end (tiny)


def make_labels(folder: Path, n: int, size: int = 64, seed: int = 0, prefix: str = "i") -> pd.DataFrame:
    """The shared test images as a dataset's label table: paths relative to ``folder``, a class each."""
    items = make_items(folder, n, (size, size), seed, prefix)
    return items.assign(path=[Path(p).name for p in items["path"]], class_index=np.arange(n) % 39)


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """A tiny authentic target and a tiny named synthetic pre-training set 'presynth'."""
    monkeypatch.setattr(Q, "build_backbone", tiny_backbone)
    target = make_dataset(DatasetInfo("tgt", "authentic", "MOS", True, (0.0, 100.0)), make_labels(tmp_path / "tgt", 8), tmp_path / "tgt")
    pre = make_dataset(
        DatasetInfo("presynth", "synthetic", "MOS", True, (0.0, 100.0), needs_root=False),
        make_labels(tmp_path / "pre", 6, size=72, seed=1, prefix="p"), tmp_path / "pre",
    )
    monkeypatch.setattr("biqa_bench.datasets.registry.load_dataset", lambda spec, root=None: pre)
    calls = []
    original = Q.QAMT._train_stage1

    def counted(self, *args, **kwargs):
        calls.append(self.pretrain_task)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Q.QAMT, "_train_stage1", counted)
    items = target.with_abspaths()
    return target, items, calls


QUICK = dict(recipe="quick", pretrained="none", pretrain_data="presynth", epochs=1, batch_size=2, crop=32, image_size="source")


def test_stage1_is_cached_across_splits_and_a_changed_recipe_retrains(tmp_path, setup):
    target, items, calls = setup
    first = create_method("qamt", **QUICK).fit(items.iloc[:4], items.iloc[4:5], ctx_for(tmp_path, target, seed=1, work="s1"))
    stage = first.pretraining_manifest["stages"][0]
    assert calls == ["cls+reg"] and stage["reused"] is False
    assert Path(stage["folder"]).parent.name == "pretrain" and (Path(stage["folder"]) / "weights.pt").is_file()
    assert stage["inputs"]["data"]["kind"] == "synthetic" and stage["inputs"]["data"]["n_items"] == 6
    # another split (other seed, other training items): the synthetic set's stage is reused
    second = create_method("qamt", **QUICK).fit(items.iloc[2:6], items.iloc[6:7], ctx_for(tmp_path, target, seed=2, work="s2"))
    assert calls == ["cls+reg"] and second.pretraining_manifest["stages"][0]["reused"] is True
    assert second.pretraining_manifest["stages"][0]["key"] == stage["key"]
    # a changed stage-1 recipe, task or seed is another stage
    third = create_method("qamt", **QUICK, pretrain_epochs=2).fit(items.iloc[:4], items.iloc[4:5], ctx_for(tmp_path, target, work="s3"))
    assert calls == ["cls+reg", "cls+reg"] and third.pretraining_manifest["stages"][0]["key"] != stage["key"]
    fourth = create_method("qamt", **{**QUICK, "pretrain_task": "reg"}).fit(items.iloc[:4], items.iloc[4:5], ctx_for(tmp_path, target, work="s4"))
    assert calls[-1] == "reg" and fourth.pretraining_manifest["stages"][0]["key"] not in {stage["key"]}
    # FT: no pre-training at all
    plain = create_method("qamt", **{**QUICK, "pretrain_task": "none"}).fit(items.iloc[:4], items.iloc[4:5], ctx_for(tmp_path, target, work="s5"))
    assert len(calls) == 3 and plain.pretraining_manifest == {"pretrain_task": "none", "stages": []}


def test_fine_tuning_starts_from_the_stage1_backbone(tmp_path, setup):
    target, items, calls = setup
    method = create_method("qamt", **QUICK)
    settings = method.settings()
    result = method.pretrain(items.iloc[:4], ctx_for(tmp_path, target), settings)
    state = result.state_dict()
    assert any(k.startswith("cfc2.") for k in state) and state["cfc2.weight"].shape[0] == 39
    method._stage1_backbone = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    model, _ = method.build_model(settings, "none", None)
    for name, value in model.backbone.state_dict().items():
        assert torch.equal(value, state[f"backbone.{name}"]), name


def test_authentic_target_pretrains_on_its_own_training_blends(tmp_path, setup, monkeypatch):
    monkeypatch.setattr("biqa_bench.datasets.pseudo_mos.pseudo_mos", fake_pseudo_mos)
    target, items, calls = setup
    params = {**QUICK, "pretrain_data": "auto", "blends_per_image": 2}
    method = create_method("qamt", **params).fit(items.iloc[:3], items.iloc[3:4], ctx_for(tmp_path, target))
    data = method.pretraining_manifest["stages"][0]["inputs"]["data"]
    assert data["name"] == "target" and data["kind"] == "authentic" and data["n_items"] == 6 and data["n_sources"] == 3
    generated = pd.read_csv(Path(data["folder"]) / "items.csv")
    assert set(generated["source_item_id"]) == {"i0", "i1", "i2"}
    with pytest.raises(MethodError, match="pretrain_task"):
        create_method("qamt", **{**QUICK, "pretrain_task": "both"}).fit(items.iloc[:3], items.iloc[3:4], ctx_for(tmp_path, target))


def test_save_load_gives_identical_predictions(tmp_path, setup):
    target, items, calls = setup
    method, loaded, before, after = save_load_predictions("qamt", QUICK, items.iloc[:4], items.iloc[4:5], items.iloc[5:],
                                                          ctx_for(tmp_path, target), tmp_path / "model")
    assert before.shape == (3,) and np.isfinite(before).all()
    np.testing.assert_array_equal(before, after)
    assert loaded.pretraining_manifest == json.loads(json.dumps(method.pretraining_manifest))
    assert len(calls) == 1


def test_runner_reuses_stage1_across_splits_and_each_manifest_names_it(tmp_path, setup):
    from _run_helpers import train_runs
    from biqa_bench.splits import make_splits

    target, items, calls = setup
    split_set = make_splits(target, repeats=2, seed=0, test_fraction=0.25, val_fraction=0.2)
    outcomes = train_runs("qamt", QUICK, target, split_set, tmp_path / "results")
    assert [o.status for o in outcomes] == ["done", "done"] and calls == ["cls+reg"]
    manifests = [json.loads((o.folder / "manifest.json").read_text()) for o in outcomes]
    stages = [m["pretraining"]["stages"][0] for m in manifests]
    assert stages[0]["key"] == stages[1]["key"] and [s["reused"] for s in stages] == [False, True]
    assert manifests[0]["method_seed"] != manifests[1]["method_seed"]  # different split seeds, one stage


def test_synthetic_target_set_has_all_39_distortions_of_each_training_reference(tmp_path, monkeypatch):
    """pretrain_data='target' on a synthetic target: every (type, level) class of each training
    reference (the paper's synthetic set), not ``blends_per_image`` of them (quick: 2)."""
    monkeypatch.setattr(Q, "build_backbone", tiny_backbone)
    monkeypatch.setattr("biqa_bench.datasets.pseudo_mos.pseudo_mos", fake_pseudo_mos)
    labels = make_labels(tmp_path / "syn", 4)
    labels = labels.assign(content_id=["r0", "r0", "r1", "r1"], reference_path=["img0.png", "img0.png", "img2.png", "img2.png"])
    target = make_dataset(DatasetInfo("syn", "synthetic", "DMOS", False, (0.0, 100.0)), labels, tmp_path / "syn")
    method = create_method("qamt", **{**QUICK, "pretrain_data": "target"})
    settings = method.settings()
    assert settings["blends_per_image"] == 2
    assert P.generated_per_source("target", ctx_for(tmp_path, target), settings["blends_per_image"]) is None
    result = method.pretrain(target.with_abspaths().iloc[:2], ctx_for(tmp_path, target), settings)  # content r0 only
    data = result.manifest["inputs"]["data"]
    assert data["kind"] == "synthetic" and data["n_sources"] == 1 and data["n_items"] == 39
    generated = pd.read_csv(Path(data["folder"]) / "items.csv")
    assert sorted(generated["class_index"]) == list(range(39))
    assert result.state_dict()["cfc2.weight"].shape[0] == 39
    # an authentic target still gets blends_per_image blends of each training image
    authentic = make_dataset(DatasetInfo("aut", "authentic", "MOS", True, (0.0, 100.0)), make_labels(tmp_path / "aut", 2), tmp_path / "aut")
    assert P.generated_per_source("target", ctx_for(tmp_path, authentic), settings["blends_per_image"]) == 2


def test_stage1_from_random_init_does_not_depend_on_the_global_rng(tmp_path, setup, monkeypatch):
    """pretrained='none': the stage-1 result is a function of its key (pretrain_seed), not of
    whatever the global torch RNG held before the fit."""
    target, items, calls = setup
    states = []
    for k, outer_seed in enumerate((123, 456)):
        monkeypatch.setenv("BIQA_CACHE", str(tmp_path / f"cache{k}"))  # no reuse: train twice
        torch.manual_seed(outer_seed)
        method = create_method("qamt", **QUICK)
        states.append(method.pretrain(items.iloc[:4], ctx_for(tmp_path, target, work=f"w{k}"), method.settings()).state_dict())
    assert calls == ["cls+reg", "cls+reg"]
    assert states[0].keys() == states[1].keys()
    for name in states[0]:
        assert torch.equal(states[0][name], states[1][name]), name


def test_stage1_key_follows_the_flip_setting():
    """Flipped and unflipped pre-training are different stages: the cache must not mix them."""
    pset = P.PretrainSet("s", "synthetic", pd.DataFrame({"item_id": ["a"], "path": ["a.png"]}), "fp")
    loaded = LoadedWeights(None, None)
    keys = {}
    for flip in (False, True):
        method = create_method("qamt", recipe="quick", pretrained="none", flip=flip)
        inputs = method.stage1_inputs(method.settings(), pset, loaded)
        assert inputs["settings"]["flip"] is flip
        keys[flip] = json.dumps(inputs, sort_keys=True)
    assert keys[False] != keys[True]
