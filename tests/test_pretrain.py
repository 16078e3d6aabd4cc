"""The pre-training stage cache and the pre-training data rules (methods._support.pretrain)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from methods._support import pretrain as P
from biqa_bench.datasets import distortions as D
from biqa_bench.datasets.registry import DatasetInfo, make_dataset
from biqa_bench.errors import MethodError
from biqa_bench.methods import Context
from _deep_helpers import fake_pseudo_mos, one_thread  # noqa: F401 (autouse fixture)


def counting_train(calls: list):
    def train(work: Path, key: str):
        calls.append((work, key))
        assert work.is_dir()
        return {"w": torch.arange(3.0)}, {"history": {"n": len(calls)}}

    return train


def test_stage_is_stored_atomically_and_reused(tmp_path):
    calls: list = []
    inputs = {"data": "abc", "settings": {"epochs": 30}, "seed": 0}
    first = P.cached_stage("m", "s1", inputs, counting_train(calls), root=tmp_path)
    assert not first.reused and len(calls) == 1
    assert sorted(p.name for p in first.folder.iterdir()) == ["manifest.json", "weights.pt"]
    manifest = json.loads((first.folder / "manifest.json").read_text())
    assert manifest["key"] == first.key == first.folder.name
    assert manifest["inputs"]["settings"] == {"epochs": 30} and manifest["history"] == {"n": 1}
    assert not calls[0][0].exists()  # the work folder is removed once the stage is stored
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []

    again = P.cached_stage("m", "s1", dict(inputs), counting_train(calls), root=tmp_path)
    assert again.reused and len(calls) == 1 and again.key == first.key
    assert torch.equal(again.state_dict()["w"], torch.arange(3.0))
    assert again.summary()["reused"] is True and again.summary()["key"] == first.key


def test_changed_input_gives_a_new_key(tmp_path):
    calls: list = []
    base = {"data": "abc", "recipe": "paper", "settings": {"epochs": 30}, "seed": 0}
    keys = {P.cached_stage("m", "s1", base, counting_train(calls), root=tmp_path).key}
    for changed in ({**base, "recipe": "quick"}, {**base, "settings": {"epochs": 29}}, {**base, "seed": 1}, {**base, "data": "abd"}):
        keys.add(P.cached_stage("m", "s1", changed, counting_train(calls), root=tmp_path).key)
    keys.add(P.cached_stage("m", "s2", base, counting_train(calls), root=tmp_path).key)
    assert len(keys) == 6 and len(calls) == 6
    # the key is the SHA-256 of the canonical inputs: key order does not matter
    assert P.stage_key({"a": 1, "b": [1, 2]}) == P.stage_key({"b": [1, 2], "a": 1})
    assert len(P.stage_key({"a": 1})) == 64


def test_interrupted_stage_leaves_no_result_and_is_retrained(tmp_path):
    def crash(work, key):
        (work / "checkpoints").mkdir()
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        P.cached_stage("m", "s1", {"x": 1}, crash, root=tmp_path)
    key = P.stage_key({"method": "m", "stage": "s1", "format": P.STAGE_FORMAT, "x": 1})
    assert not (tmp_path / key).exists()
    assert (tmp_path / f".{key}.partial" / "checkpoints").is_dir()  # kept for resuming
    calls: list = []
    result = P.cached_stage("m", "s1", {"x": 1}, counting_train(calls), root=tmp_path)
    assert not result.reused and len(calls) == 1 and calls[0][0] == tmp_path / f".{key}.partial"


def _dataset(tmp_path, contents, kind="synthetic"):
    rows = []
    folder = tmp_path / "set"
    folder.mkdir(exist_ok=True)
    for k, content in enumerate(contents):
        path = folder / f"{k}.png"
        Image.fromarray(np.full((8, 8, 3), k, np.uint8)).save(path)
        rows.append({"item_id": f"x{k}", "path": path.name, "score": 10.0 * k, "content_id": content, "class_index": k % 39})
    info = DatasetInfo("fake", kind, "MOS", True, (0.0, 100.0), needs_root=False)
    return make_dataset(info, pd.DataFrame(rows), folder)


def test_named_set_drops_held_out_contents(tmp_path, monkeypatch):
    pre = _dataset(tmp_path, ["a", "b", "c.png", "d", "e"])
    monkeypatch.setattr("biqa_bench.datasets.registry.load_dataset", lambda spec, root=None: pre)
    target_items = pd.DataFrame({"item_id": ["t1", "t2", "t3", "t4"], "content_id": ["a", "b", "c", "z"]})
    target = make_dataset(DatasetInfo("tgt", "synthetic", "MOS", True, (0.0, 100.0)), target_items.assign(path="p", score=1.0), tmp_path)
    train = target.items.iloc[:1]  # content 'a' only: b, c, z are held out
    assert P.held_out_contents(target, train) == {"b", "c", "z"}
    pset = P.load_named_set("fake", P.held_out_contents(target, train))
    assert sorted(pset.items["content_id"]) == ["a", "d", "e"]  # 'c.png' matches 'c' by its stem
    assert pset.description["excluded_contents"] == ["b", "c.png"]
    assert pset.kind == "synthetic"
    assert all(Path(p).is_absolute() for p in pset.items["path"])
    everything = P.held_out_contents(target, target.items.iloc[:0]) | {"d", "e"}
    with pytest.raises(MethodError, match="held-out"):
        P.load_named_set("fake", everything)


def test_classification_targets():
    items = pd.DataFrame({"class_index": [0, 38, 5]})
    assert P.classification_targets(items, "synthetic").tolist() == [0, 38, 5]
    with pytest.raises(MethodError, match="class_index"):
        P.classification_targets(pd.DataFrame({"class_index": [39]}), "synthetic")
    components = [("defocus", 2), ("jpeg", 3)]
    labels = D.format_labels(D.authentic_labels(components))
    target = P.classification_targets(pd.DataFrame({"labels": [labels]}), "authentic")
    assert target.shape == (1, 26)
    set_classes = {D.AUTHENTIC_CLASSES[i] for i in np.flatnonzero(target[0])}
    assert set_classes == {("defocus", 2), ("jpeg", 3), ("defocus", 0), ("jpeg", 0)}


def _target(tmp_path, n=6, size=64):
    rng = np.random.default_rng(0)
    folder = tmp_path / "target"
    folder.mkdir()
    rows = []
    for i in range(n):
        path = folder / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8)).save(path)
        rows.append({"item_id": f"img{i}", "path": path.name, "score": float(i), "content_id": f"img{i}"})
    info = DatasetInfo("tgt", "authentic", "MOS", True, (0.0, 10.0))
    return make_dataset(info, pd.DataFrame(rows), folder)


def test_authentic_pretraining_set_holds_training_content_only(tmp_path, monkeypatch):
    """Blends from the target's training images only (real generator and pseudo-MOS), each with
    exactly its components set in the multi-label target."""
    target = _target(tmp_path)
    items = target.with_abspaths()
    train, test = items.iloc[:2], items.iloc[2:]
    ctx = Context(seed=0, dataset=target, log=logging.getLogger("test"))
    pset = P.resolve_pretrain_set("target", train, ctx, seed=0, per_source=2)
    assert pset.kind == "authentic" and len(pset.items) == 4
    assert set(pset.items["source_item_id"]) == {"img0", "img1"}
    assert not set(pset.items["source_item_id"]) & set(test["item_id"])
    assert not set(pset.items["content_id"]) & set(test["content_id"])
    # pixels: every reference is a training image resized to 256 x 256, none is a test image
    resized = {row.item_id: P._resized(np.asarray(Image.open(row.path).convert("RGB")), 256) for row in items.itertuples()}
    for row in pset.items.itertuples():
        reference = np.asarray(Image.open(row.reference).convert("RGB"))
        assert np.array_equal(reference, resized[row.source_item_id])
        assert not any(np.array_equal(reference, resized[t]) for t in test["item_id"])
        assert np.asarray(Image.open(row.path)).shape == (256, 256, 3)
        assert 0 <= row.quality <= 100
    targets = P.classification_targets(pset.items, "authentic")
    for row, target_row in zip(pset.items.itertuples(), targets):
        components = list(zip(row.distortion.split("+"), (int(v) for v in row.level.split("+"))))
        expected = {D.AUTHENTIC_CLASSES.index(c) for c in components} | {D.AUTHENTIC_CLASSES.index((name, 0)) for name, _ in components}
        assert set(np.flatnonzero(target_row)) == expected
    # cached: the same training items give the same folder without generating again
    monkeypatch.setattr("biqa_bench.datasets.pseudo_mos.pseudo_mos", fake_pseudo_mos)
    again = P.resolve_pretrain_set("target", train, ctx, seed=0, per_source=2)
    assert again.fingerprint == pset.fingerprint
    other = P.resolve_pretrain_set("target", items.iloc[1:3], ctx, seed=0, per_source=2)
    assert other.fingerprint != pset.fingerprint


def test_synthetic_target_set_uses_training_references(tmp_path, monkeypatch):
    """Synthetic targets: single distortions of the training contents' reference images."""
    monkeypatch.setattr("biqa_bench.datasets.pseudo_mos.pseudo_mos", fake_pseudo_mos)
    target = _target(tmp_path, n=4)
    items = target.items.assign(content_id=["r0", "r0", "r1", "r1"], reference_path=["img0.png", "img0.png", "img2.png", "img2.png"])
    target = make_dataset(DatasetInfo("tgt", "synthetic", "DMOS", False, (0.0, 10.0)), items, target.root)
    train = target.with_abspaths().iloc[:2]
    ctx = Context(seed=0, dataset=target, log=logging.getLogger("test"))
    pset = P.resolve_pretrain_set("target", train, ctx, seed=0, per_source=3)
    assert pset.kind == "synthetic" and len(pset.items) == 3
    assert set(pset.items["source_content_id"]) == {"r0"}
    assert P.classification_targets(pset.items, "synthetic").min() >= 0


def test_epoch_batches_cover_every_row_and_never_end_with_one():
    rng = np.random.default_rng(0)
    batches = P.epoch_batches(5, 3, 7, rng)  # 15 rows: 7, 8 (the lone last row joins)
    assert [len(b) for b in batches] == [7, 8]
    assert sorted(np.concatenate(batches).tolist()) == sorted(list(range(5)) * 3)
    assert [len(b) for b in P.epoch_batches(1, 1, 4, rng)] == [1]
