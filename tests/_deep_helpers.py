"""Helpers shared by the deep-method tests (test_nn, test_reqa, test_ieit, test_qamt, test_hcl,
test_pretrain). Importing a fixture into a test module makes pytest use it there."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from PIL import Image

from biqa_bench.methods import Context


def _one_torch_thread():
    # Two torch threads on a busy 2-core machine are several times slower than one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def one_thread():
    yield from _one_torch_thread()


@pytest.fixture(autouse=True)
def one_thread_tmp_env(monkeypatch, tmp_path):
    """One torch thread; config and cache under the test's own tmp_path."""
    monkeypatch.setenv("BIQA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("BIQA_CONFIG", str(tmp_path / "config.json"))
    yield from _one_torch_thread()


def tiny_resnet() -> torchvision.models.resnet.ResNet:
    """A one-BasicBlock-per-stage ResNet (channels 64..512, 512-d pooled): a fast stand-in for ResNet-50."""
    return torchvision.models.resnet.ResNet(torchvision.models.resnet.BasicBlock, [1, 1, 1, 1])


def make_items(folder: Path, n: int, size=(40, 48), seed: int = 0, prefix: str = "i") -> pd.DataFrame:
    """``n`` random images ``img<i>.png`` whose brightness follows a uniform 0-100 quality."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        quality = float(rng.uniform(0, 100))
        image = (rng.integers(0, 256, (*size, 3)) * (0.2 + 0.8 * quality / 100)).astype(np.uint8)
        path = folder / f"img{i}.png"
        Image.fromarray(image).save(path)
        rows.append({"item_id": f"{prefix}{i}", "path": str(path), "quality": quality, "score": quality, "content_id": f"{prefix}{i}"})
    return pd.DataFrame(rows)


def make_ctx(tmp_path: Path, work: str | None = "run", seed: int = 3, dataset=None) -> Context:
    return Context(
        device="cpu", seed=seed, cache_dir=tmp_path / "cache", work_dir=(tmp_path / work) if work else None,
        log=logging.getLogger("test"), dataset=dataset,
    )


def ctx_for(tmp_path: Path, target, seed: int = 1, work: str = "run") -> Context:
    """The context of a fit on ``target`` (the pre-training methods read it from ctx.dataset)."""
    return make_ctx(tmp_path, work, seed, dataset=target)


def stage_datasets(tmp_path: Path, monkeypatch, class_index, n_pretrain: int, cls, stage_function: str):
    """A tiny authentic target 'tgt' (8 images, 64x64) and a tiny named single-distortion set
    'presynth' (``n_pretrain`` images, 72x72) that ``load_dataset`` returns, both labelled with
    ``class_index(n)``; and a list that counts the calls of ``cls.stage_function`` (the stage's
    training, which the stage cache should skip). Returns (target, its items, calls)."""
    from biqa_bench.datasets.registry import DatasetInfo, make_dataset

    def labels(folder: Path, n: int, size: int, seed: int, prefix: str) -> pd.DataFrame:
        items = make_items(folder, n, (size, size), seed, prefix)
        return items.assign(path=[Path(p).name for p in items["path"]], class_index=class_index(n))

    target = make_dataset(DatasetInfo("tgt", "authentic", "MOS", True, (0.0, 100.0)), labels(tmp_path / "tgt", 8, 64, 0, "i"), tmp_path / "tgt")
    pre = make_dataset(DatasetInfo("presynth", "synthetic", "MOS", True, (0.0, 100.0), needs_root=False),
                       labels(tmp_path / "pre", n_pretrain, 72, 1, "p"), tmp_path / "pre")
    monkeypatch.setattr("biqa_bench.datasets.registry.load_dataset", lambda spec, root=None: pre)
    calls = []
    original = getattr(cls, stage_function)

    def counted(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, stage_function, counted)
    return target, target.with_abspaths(), calls


def save_load_predictions(name: str, params: dict, train, val, test, ctx, folder: Path):
    """Fit ``name`` with ``params``, predict ``test``, save, load into a fresh adapter and predict
    again: (fitted, loaded, predictions before, predictions after)."""
    from biqa_bench.methods import create_method

    method = create_method(name, **params).fit(train, val, ctx)
    before = method.predict(test, ctx)
    method.save(folder)
    loaded = create_method(name).load(folder)
    return method, loaded, before, loaded.predict(test, ctx)


def fake_pseudo_mos(distorted, reference, batch_size=8):
    """A fast stand-in for the six FR metrics (their own tests live with the generator)."""
    from biqa_bench.datasets.pseudo_mos import METRICS, PseudoMOS

    error = np.abs(np.asarray(distorted, dtype=float) - np.asarray(reference, dtype=float)).mean(axis=(1, 2, 3))
    raw = pd.DataFrame({m: error for m in METRICS})
    return PseudoMOS(score=np.clip(100 - error, 0, 100), raw=raw, qualities=raw)


def loss_before_after_one_step(loss_fn, optimizer) -> tuple[float, float]:
    """The loss on a fixed batch before and after one optimizer step on it (``loss_fn()`` computes
    it; callers put the model in eval mode so that dropout and batch norm do not change it)."""
    before = loss_fn()
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = loss_fn()
    return float(before.detach()), float(after)
