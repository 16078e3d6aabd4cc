"""Shared fixtures: an isolated config/cache per test, a tiny image dataset, a trivial method."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from biqa_bench.methods import Method, register_method


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch):
    # The suite never reads or writes the user's config: BIQA_CONFIG wins over a project-local
    # biqa-config.json and the user's file, and no BIQA_ROOT_* override leaks in from the shell.
    home = tmp_path_factory.mktemp("biqa-home")
    monkeypatch.setenv("BIQA_CONFIG", str(home / "config.json"))
    monkeypatch.setenv("BIQA_CACHE", str(home / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "xdg-config"))
    for variable in [v for v in os.environ if v.startswith("BIQA_ROOT_")]:
        monkeypatch.delenv(variable)
    yield home
    shutil.rmtree(home, ignore_errors=True)  # caches of deep models are large: a run must not fill the disk


@register_method("test-brightness")
class BrightnessMethod(Method):
    """Test method: predicts the mean brightness, scaled by a learned linear fit."""

    def __init__(self, fail_on_split: int | None = None):
        self.fail_on_split = fail_on_split

    def fit(self, train_items, val_items, ctx):
        if self.fail_on_split is not None and ctx.work_dir is not None and ctx.work_dir.name == f"split_{self.fail_on_split:02d}":
            raise KeyboardInterrupt  # simulates Ctrl-C in the middle of a split
        x = np.array([ctx.read_image(p).mean() for p in train_items["path"]])
        self.slope_, self.intercept_ = np.polyfit(x, train_items["quality"].to_numpy(), 1)
        return self

    def predict(self, items, ctx):
        x = np.array([ctx.read_image(p).mean() for p in items["path"]])
        return self.slope_ * x + self.intercept_


def make_image_folder(folder: Path, n: int = 40, seed: int = 0, size: int = 24) -> pd.DataFrame:
    """Images whose brightness (plus noise) defines a 1-5 score; returns the labels table."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for k in range(n):
        score = 1 + 4 * k / (n - 1)
        level = int(20 + 45 * score) + int(rng.integers(-8, 9))
        image = np.clip(rng.normal(level, 10, size=(size, size, 3)), 0, 255).astype(np.uint8)
        name = f"img{k:03d}.png"
        Image.fromarray(image).save(folder / name)
        rows.append({"path": name, "score": round(score, 4), "content": f"c{k // 2}"})
    return pd.DataFrame(rows)


@pytest.fixture
def tiny_dataset(tmp_path):
    """A registered user dataset 'tiny' of 40 images (20 contents), scores 1-5."""
    from biqa_bench.datasets.custom import add_custom_dataset
    from biqa_bench.datasets.registry import load_dataset

    root = tmp_path / "tiny"
    labels = make_image_folder(root)
    csv = tmp_path / "tiny.csv"
    labels.to_csv(csv, index=False)
    add_custom_dataset("tiny", csv, root, (1.0, 5.0), content_column="content")
    return load_dataset("tiny")
