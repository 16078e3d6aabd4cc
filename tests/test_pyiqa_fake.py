"""The pyiqa bridge's offline rule and direction against a stand-in pyiqa module, so that they are
tested where pyiqa is not installed (tests/test_pyiqa_bridge.py runs the real one where it is).

The stand-in behaves as pyiqa does where the bridge depends on it: metric metadata in
``pyiqa.default_model_configs.DEFAULT_CONFIGS`` (``metric_mode``, ``lower_better``), an arch module
that imported ``load_file_from_url`` by name and calls it with the weights' address, and a helper
that downloads through ``torch.hub.download_url_to_file`` when the file is not cached."""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _cli_helpers import biqa, no_network  # noqa: F401 (a fixture)

URL = "https://example.org/weights/fake_nr-0123abcd.pth"


@pytest.fixture
def fake_pyiqa(monkeypatch, tmp_path):
    import torch

    downloads = []

    def load_file_from_url(url, model_dir=None, progress=True, file_name=None):  # pyiqa's: download when absent
        folder = model_dir or os.path.join(torch.hub.get_dir(), "pyiqa")
        path = os.path.join(folder, file_name or os.path.basename(url))
        if not os.path.exists(path):
            torch.hub.download_url_to_file(url, path)
        return path

    def download_url_to_file(url, dst, *args, **kwargs):
        downloads.append(url)
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "download_url_to_file", download_url_to_file)
    root = types.ModuleType("pyiqa")
    configs = types.ModuleType("pyiqa.default_model_configs")
    configs.DEFAULT_CONFIGS = {
        "fake_nr": {"metric_opts": {"type": "Fake"}, "metric_mode": "NR", "lower_better": True},
        "fake_up": {"metric_opts": {"type": "Fake"}, "metric_mode": "NR"},
        "fake_fr": {"metric_opts": {"type": "Fake"}, "metric_mode": "FR"},
    }
    util = types.ModuleType("pyiqa.utils.download_util")
    util.load_file_from_url = load_file_from_url
    arch = types.ModuleType("pyiqa.archs.fake_arch")
    arch.load_file_from_url = load_file_from_url  # as `from pyiqa.utils.download_util import load_file_from_url`

    def create_metric(name, device=None, pretrained_model_path=None, **kwargs):
        print("Loading pretrained model Fake from", pretrained_model_path)  # pyiqa prints: must not reach stdout
        path = pretrained_model_path or sys.modules["pyiqa.archs.fake_arch"].load_file_from_url(URL)
        weight = float(torch.load(path)["w"])
        return lambda x: weight * x.mean(dim=(1, 2, 3))[:, None]  # (N, 1), as pyiqa's metrics

    root.create_metric = create_metric
    for module in (root, configs, util, arch):
        monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return downloads


def weights_file(tmp_path, w: float) -> Path:
    import torch

    path = tmp_path / "torch" / "hub" / "pyiqa" / os.path.basename(URL)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"w": torch.tensor(w)}, path)
    return path


def brightness(dataset) -> pd.Series:
    from biqa_bench.images import read_image

    return pd.Series([read_image(dataset.root / p).astype(float).mean() / 255.0 for p in dataset.items["path"]],
                     index=dataset.items["item_id"])


def test_cached_weights_score_and_lower_is_better_is_negated(tiny_dataset, fake_pyiqa, no_network, tmp_path, capsys):
    weights_file(tmp_path, 2.0)
    out = tmp_path / "res"
    code, text, err = biqa(capsys, "train", "-m", "pyiqa:fake_nr", "-d", "tiny", "--whole", "-o", out, "-q")
    assert code == 0, err
    assert "Loading pretrained" not in text
    predictions = pd.read_csv(out / "tiny" / "pyiqa@fake_nr" / "whole" / "predictions.csv", dtype={"item_id": str})
    expected = -2.0 * brightness(tiny_dataset)  # lower is better in the metadata: negated
    np.testing.assert_allclose(predictions.set_index("item_id")["prediction"].loc[expected.index], expected, rtol=1e-5)
    manifest = json.loads((out / "tiny" / "pyiqa@fake_nr" / "whole" / "manifest.json").read_text())
    assert manifest["resolved_params"]["lower_is_better"] is True and manifest["resolved_params"]["metric"] == "fake_nr"
    # the eval keeps the sign: brighter is better in the tiny set, the negated score ranks backwards
    code, text, err = biqa(capsys, "eval", out, "--json")
    record = [r for r in json.loads(text) if r["subset"] == "test"][0]
    assert record["n"] == 40 and record["srocc"] < -0.9
    code, text, err = biqa(capsys, "predict", "--run", "pyiqa:fake_up", "--images", tiny_dataset.root, "--out",
                           tmp_path / "s.csv", "--json", "--device", "cpu")
    assert code == 0, err
    scores = {s["item_id"]: s["prediction"] for s in json.loads(text)["scores"]}
    assert scores == pytest.approx((2.0 * brightness(tiny_dataset)).to_dict(), rel=1e-5)
    # a whole run's model predicts another image set (gMAD pools, cross tests), cached, split 'whole'
    from biqa_bench.runner import predict_with_run

    for _ in range(2):  # computed, then read from the run's inference cache
        table = predict_with_run(out / "tiny" / "pyiqa@fake_nr" / "whole", tiny_dataset)
        assert set(table["split"].astype(str)) == {"whole"} and len(table) == 40
        np.testing.assert_allclose(table.set_index("item_id")["prediction"].loc[expected.index], expected, rtol=1e-5)
    assert fake_pyiqa == [] and no_network == []


def test_missing_weights_name_the_file_and_nothing_is_downloaded(tiny_dataset, fake_pyiqa, no_network, tmp_path, capsys):
    code, _, err = biqa(capsys, "train", "-m", "pyiqa:fake_nr", "-d", "tiny", "--whole", "-o", tmp_path / "res", "-q")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    expected = tmp_path / "torch" / "hub" / "pyiqa" / os.path.basename(URL)
    assert str(expected) in lines[0] and URL in lines[0] and f"put it in {expected.parent}" in lines[0]
    assert fake_pyiqa == [] and no_network == []
    # -p weights=FILE takes a file from anywhere; a wrong one is named
    own = tmp_path / "mine.pth"
    weights_file(tmp_path, 1.0).rename(own)
    code, _, err = biqa(capsys, "train", "-m", "pyiqa:fake_up", "-d", "tiny", "--whole", "-p", f"weights={own}",
                        "-o", tmp_path / "res", "-q")
    assert code == 0, err
    code, _, err = biqa(capsys, "train", "-m", "pyiqa:fake_up", "-d", "tiny", "--whole", "-p",
                        f"weights={tmp_path / 'nope.pth'}", "-o", tmp_path / "other", "-q")
    assert code == 2 and "nope.pth" in err and "no such weights file" in err


def test_full_reference_and_trained_methods_are_refused(tiny_dataset, fake_pyiqa, tmp_path, capsys):
    code, _, err = biqa(capsys, "train", "-m", "pyiqa:fake_fr", "-d", "tiny", "--whole", "-o", tmp_path / "r")
    assert code == 2 and "full-reference" in err
    code, _, err = biqa(capsys, "train", "-m", "brisque", "-d", "tiny", "--whole", "-o", tmp_path / "r")
    assert code == 2 and "training-free methods only" in err and "biqa import --whole" in err
