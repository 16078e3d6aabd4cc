"""HCL: shapes and losses of the three curricula against hand-computed values, cached curricula,
ablations, and save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import methods.hcl as H
from methods._support import pretrain as P
from biqa_bench.datasets.registry import DatasetInfo, make_dataset
from biqa_bench.errors import MethodError
from biqa_bench.methods import create_method
from biqa_bench.nn.backbones import LoadedWeights, ResNetStages
from _deep_helpers import ctx_for, fake_pseudo_mos, one_thread, save_load_predictions, tiny_resnet  # noqa: F401 (autouse fixture)


def tiny_encoder(pretrained, weights):
    torch.manual_seed(0)  # the same start whether called for the sha or for training
    return ResNetStages(tiny_resnet()), LoadedWeights(None, None)


def test_restoration_network_shapes_and_loss():
    encoder, _ = tiny_encoder("none", None)
    net = H.RestorationNet(encoder, width=16)
    x = torch.randn(2, 3, 64, 48)
    restored = net(x)
    assert restored.shape == x.shape
    with torch.no_grad():  # the decoder predicts a residual on the input
        assert torch.allclose(restored - x, net.decoder(net.encoder(x), (64, 48)), atol=1e-5)
    reference = x + 0.5
    assert H.restoration_loss(x, reference).item() == pytest.approx(0.5)
    assert H.restoration_loss(torch.zeros(1, 3, 2, 2), torch.tensor([1.0, -2, 3, 0] * 3).view(1, 3, 2, 2)).item() == pytest.approx(1.5)


def test_paper_encoder_channels():
    encoder, loaded = H.build_encoder("none", None)
    assert encoder.channels == (256, 512, 1024, 2048) and loaded.sha256 is None
    net = H.HCLNet(encoder, 3)
    assert net.subnets[0][0].in_features == 2048 and net.cqac.layer.self_attn.num_heads == 4


def test_database_scores_fusion_and_database_loss_by_hand():
    torch.manual_seed(0)
    encoder, _ = tiny_encoder("none", None)
    net = H.HCLNet(encoder, 3, dim=8, heads=2).eval()
    feature = torch.randn(4, 512)
    scores = net.database_scores(feature)
    assert scores.shape == (4, 3)
    # by hand: sub-networks, one transformer layer over the 3 tokens, per-database heads
    tokens = torch.stack([torch.relu(s[0](feature)) for s in net.subnets], dim=1) + net.cqac.database_embedding
    refined = net.cqac.layer(tokens)
    expected = torch.stack([net.heads[k](refined[:, k]).squeeze(1) for k in range(3)], dim=1)
    assert torch.allclose(scores, expected, atol=1e-6)
    # the CQAC mixes databases: changing one sub-network's output changes every database score
    with torch.no_grad():
        net.subnets[0][0].bias.add_(5.0)
    changed = net.database_scores(feature)
    assert not torch.allclose(changed[:, 1], scores[:, 1]) and not torch.allclose(changed[:, 2], scores[:, 2])
    # fusion starts as the mean of the K scores
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        fused = net(images)
        assert torch.allclose(fused, net.database_scores(net.feature(images)).mean(1), atol=1e-5)
    # C2 loss: only each image's own database head counts
    s = torch.tensor([[10.0, 50.0, 0.0], [20.0, 30.0, 90.0]])
    assert H.database_loss(s, torch.tensor([1, 2]), torch.tensor([40.0, 100.0])).item() == pytest.approx((10 + 10) / 2)
    assert H.parse_databases(" live, csiq ,tid2013") == ["live", "csiq", "tid2013"]
    with pytest.raises(MethodError, match="iqa_databases"):
        H.parse_databases(" , ")


# --------------------------------------------------------------------------- end to end (tiny)


def make_set(folder: Path, n: int, prefix: str, size: int = 72, seed: int = 0, with_reference: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        quality = float(rng.uniform(0, 100))
        reference = rng.integers(0, 256, (size, size, 3)).astype(np.uint8)
        distorted = (reference * (0.2 + 0.8 * quality / 100)).astype(np.uint8)
        Image.fromarray(distorted).save(folder / f"{prefix}{i}.png")
        row = {"item_id": f"{prefix}{i}", "path": f"{prefix}{i}.png", "score": quality, "content_id": f"{prefix}c{i // 2}", "class_index": i % 39}
        if with_reference:
            Image.fromarray(reference).save(folder / f"{prefix}{i}_ref.png")
            row["reference_path"] = f"{prefix}{i}_ref.png"
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.setattr(H, "build_encoder", tiny_encoder)
    sets = {
        name: make_dataset(DatasetInfo(name, "synthetic", "MOS", True, (0.0, 100.0), needs_root=False), make_set(tmp_path / name, 6, name, seed=k), tmp_path / name)
        for k, name in enumerate(("dba", "dbb"))
    }
    monkeypatch.setattr("biqa_bench.datasets.registry.load_dataset", lambda spec, root=None: sets[spec])
    target = make_dataset(
        DatasetInfo("tgt", "authentic", "MOS", True, (0.0, 100.0)),
        make_set(tmp_path / "tgt", 8, "t", size=64, seed=7, with_reference=False).assign(content_id=lambda f: f["item_id"]),
        tmp_path / "tgt",
    )
    calls = []
    for stage in ("_train_c1", "_train_c2"):
        original = getattr(H.HCL, stage)

        def counted(self, *args, _original=original, _stage=stage, **kwargs):
            calls.append(_stage)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(H.HCL, stage, counted)
    return target, target.with_abspaths(), calls


QUICK = dict(recipe="quick", pretrained="none", restoration_data="dba", iqa_databases="dba,dbb", epochs=1, batch_size=2, crop=32, image_size="source")


def test_three_curricula_cached_and_ablations(tmp_path, setup):
    target, items, calls = setup
    full = create_method("hcl", **QUICK).fit(items.iloc[:4], items.iloc[4:5], ctx_for(tmp_path, target, seed=1, work="a"))
    assert calls == ["_train_c1", "_train_c2"]
    stages = full.pretraining_manifest["stages"]
    assert [s["stage"] for s in stages] == ["c1-restoration", "c2-databases"] and not any(s["reused"] for s in stages)
    assert stages[1]["inputs"]["start"]["c1"] == stages[0]["key"]
    assert [d["name"] for d in stages[1]["inputs"]["databases"]] == ["dba", "dbb"]
    # another split: both curricula reused
    again = create_method("hcl", **QUICK).fit(items.iloc[2:6], items.iloc[6:7], ctx_for(tmp_path, target, seed=2, work="b"))
    assert calls == ["_train_c1", "_train_c2"] and all(s["reused"] for s in again.pretraining_manifest["stages"])
    # the network at C3 starts from C2's sub-networks and C1's encoder
    c2_state = torch.load(Path(stages[1]["folder"]) / "weights.pt", weights_only=True)
    method = create_method("hcl", **QUICK)
    method._pretrained_state = c2_state
    model, _ = method.build_model(method.settings(), "none", None)
    for name, value in model.state_dict().items():
        assert torch.equal(value, c2_state[name]), name
    # ablations: without C1 only C2 trains again (from ImageNet), without C2 nothing new trains
    no_c1 = create_method("hcl", **QUICK, ablation="no_c1").fit(items.iloc[:4], items.iloc[4:5], ctx_for(tmp_path, target, work="c"))
    assert calls[2:] == ["_train_c2"] and [s["stage"] for s in no_c1.pretraining_manifest["stages"]] == ["c2-databases"]
    assert no_c1.pretraining_manifest["stages"][0]["inputs"]["start"]["c1"] is None
    no_c2 = create_method("hcl", **QUICK, ablation="no_c2").fit(items.iloc[:4], items.iloc[4:5], ctx_for(tmp_path, target, work="d"))
    assert len(calls) == 3 and [s["stage"] for s in no_c2.pretraining_manifest["stages"]] == ["c1-restoration"]
    # without C3 only the fusion layer changes on the target
    no_c3 = create_method("hcl", **QUICK, ablation="no_c3").fit(items.iloc[:4], items.iloc[4:5], ctx_for(tmp_path, target, work="e"))
    assert len(calls) == 3
    after = no_c3._model.state_dict()
    changed = {name for name, value in after.items() if not torch.equal(value, c2_state[name])}
    assert changed and changed <= {"fusion.weight", "fusion.bias"}
    # other restoration data: a new C1 stage, hence a new C2 stage on top of it
    create_method("hcl", **{**QUICK, "restoration_data": "dbb"}).fit(items.iloc[:4], items.iloc[4:5], ctx_for(tmp_path, target, work="f"))
    assert calls[3:] == ["_train_c1", "_train_c2"]
    # a changed curriculum length (c1_epochs / c2_epochs) is a new stage, not a cache hit
    longer = create_method("hcl", **QUICK, c2_epochs=2)
    assert longer.settings()["c2_epochs"] == 2 and longer.settings()["c1_epochs"] == create_method("hcl", **QUICK).settings()["c1_epochs"]
    longer.fit(items.iloc[:4], items.iloc[4:5], ctx_for(tmp_path, target, work="h"))
    assert calls[5:] == ["_train_c2"]
    with pytest.raises(MethodError, match="ablation"):
        create_method("hcl", **QUICK, ablation="no_c4").fit(items.iloc[:4], items.iloc[4:5], ctx_for(tmp_path, target, work="g"))


def test_curriculum1_trains_on_each_distorted_image_beside_its_own_reference(tmp_path, setup, monkeypatch):
    """C1's 6-channel pairs: the distorted image and its reference, both resized to c1_image_size."""
    target, items, _ = setup
    seen = {}

    def capture(name, net, data, *args, **kwargs):
        seen["data"] = data
        raise KeyboardInterrupt  # stop before training: only the data is under test

    monkeypatch.setattr(H.P, "run_stage_phase", capture)
    method = create_method("hcl", **QUICK)
    with pytest.raises(KeyboardInterrupt):
        method.fit(items.iloc[:4], items.iloc[4:5], ctx_for(tmp_path, target))
    data = seen["data"]
    size = int(method.settings()["c1_image_size"])
    folder = tmp_path / "dba"
    assert sorted(data.item_ids) == [f"dba{i}" for i in range(6)]
    for i in range(6):
        pair = data.source.read_item(f"dba{i}")
        assert pair.shape == (size, size, 6)
        for half, name in ((pair[..., :3], f"dba{i}.png"), (pair[..., 3:], f"dba{i}_ref.png")):
            expected = np.asarray(Image.open(folder / name).convert("RGB").resize((size, size), Image.Resampling.BICUBIC))
            assert np.abs(half.astype(int) - expected.astype(int)).max() <= 1


def test_restoration_needs_reference_images(tmp_path, setup, monkeypatch):
    target, items, calls = setup
    bare = make_dataset(DatasetInfo("bare", "synthetic", "MOS", True, (0.0, 100.0)), make_set(tmp_path / "bare", 4, "b", with_reference=False), tmp_path / "bare")
    monkeypatch.setattr("biqa_bench.datasets.registry.load_dataset", lambda spec, root=None: bare)
    with pytest.raises(MethodError, match="reference"):
        create_method("hcl", **{**QUICK, "restoration_data": "bare"}).fit(items.iloc[:4], items.iloc[4:5], ctx_for(tmp_path, target))


def test_save_load_gives_identical_predictions(tmp_path, setup):
    target, items, calls = setup
    method, loaded, before, after = save_load_predictions("hcl", QUICK, items.iloc[:4], items.iloc[4:5], items.iloc[5:],
                                                          ctx_for(tmp_path, target), tmp_path / "model")
    assert loaded.databases == ["dba", "dbb"]
    np.testing.assert_array_equal(before, after)
    assert loaded.pretraining_manifest["stages"][0]["key"] == method.pretraining_manifest["stages"][0]["key"]


def test_target_data_on_a_synthetic_target_keeps_all_39_distortions(tmp_path, setup, monkeypatch):
    """restoration_data / iqa_databases = 'target' on a synthetic target: all 39 single distortions
    of each training reference, not a seeded ``blends_per_image`` of them (quick: 2); an authentic
    target still gets ``blends_per_image`` blends per training image."""
    authentic, _, calls = setup
    monkeypatch.setattr("biqa_bench.datasets.pseudo_mos.pseudo_mos", fake_pseudo_mos)
    labels = make_set(tmp_path / "syn", 4, "s", seed=3).assign(content_id=["r0", "r0", "r1", "r1"])
    labels["reference_path"] = ["s0_ref.png", "s0_ref.png", "s2_ref.png", "s2_ref.png"]
    target = make_dataset(DatasetInfo("syn", "synthetic", "DMOS", False, (0.0, 100.0)), labels.drop(columns="class_index"), tmp_path / "syn")
    method = create_method("hcl", **{**QUICK, "restoration_data": "target", "iqa_databases": "target"})
    settings = method.settings()
    assert settings["blends_per_image"] == 2
    ctx = ctx_for(tmp_path, target)
    assert P.generated_per_source("target", ctx, settings["blends_per_image"]) is None
    assert P.generated_per_source("target", ctx_for(tmp_path, authentic), settings["blends_per_image"]) == 2
    assert P.generated_per_source("dba", ctx_for(tmp_path, authentic), settings["blends_per_image"]) is None  # named sets are not generated
    train = target.with_abspaths().iloc[:2]  # content r0 only: one source reference
    _, loaded = H.build_encoder("none", None)
    c1 = method.curriculum1(train, ctx, settings, loaded)
    data = c1.manifest["inputs"]["data"]
    assert data["kind"] == "synthetic" and data["n_sources"] == 1 and data["n_items"] == 39 and c1.manifest["n_items"] == 39
    generated = pd.read_csv(Path(data["folder"]) / "items.csv")
    assert sorted(generated["class_index"]) == list(range(39))
    encoder = {k.removeprefix("encoder."): v for k, v in c1.state_dict().items() if k.startswith("encoder.")}
    c2 = method.curriculum2(train, ctx, settings, encoder, c1, loaded)
    assert [d["n_items"] for d in c2.manifest["inputs"]["databases"]] == [39] and c2.manifest["n_items"] == [39]
    assert calls == ["_train_c1", "_train_c2"]
