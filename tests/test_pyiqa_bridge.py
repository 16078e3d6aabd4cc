"""The pyiqa bridge offline: pyiqa's CNNIQA architecture with random weights that the test writes
into a temporary pyiqa cache scores a dataset (whole and split runs) and any images, no network
call is attempted, and a missing weights file is a one-line error naming it."""

from __future__ import annotations

import json
import numpy as np
import pandas as pd
import pytest

from _cli_helpers import biqa, no_network  # noqa: F401 (a fixture)

pyiqa = pytest.importorskip("pyiqa")

WEIGHTS = "CNNIQA_koniq10k-e6f14c91.pth"  # the file pyiqa's CNNIQA asks its download helper for


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    home = tmp_path / "torch"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def write_random_weights(torch_home, seed=0):
    import torch
    from pyiqa.archs.cnniqa_arch import CNNIQA

    torch.manual_seed(seed)
    net = CNNIQA(pretrained=None)
    path = torch_home / "hub" / "pyiqa" / WEIGHTS
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"params": net.state_dict()}, path)
    return net, path


def reference_scores(net, dataset):
    """pyiqa's network run directly on each image as pyiqa reads it (RGB in [0, 1])."""
    import torch
    from pyiqa.utils.img_util import imread2tensor

    net.eval()
    with torch.no_grad():
        return np.array([float(net(imread2tensor(str(dataset.root / p), rgb=True)[None]).reshape(-1)[0])
                         for p in dataset.items["path"]])


def test_bridge_scores_whole_and_split_runs_offline(tiny_dataset, torch_home, no_network, tmp_path, capsys):
    net, path = write_random_weights(torch_home)
    expected = pd.Series(reference_scores(net, tiny_dataset), index=tiny_dataset.items["item_id"])
    out = tmp_path / "res"
    code, text, err = biqa(capsys, "train", "-m", "pyiqa:cnniqa", "-d", "tiny", "--whole", "-o", out, "-q")
    assert code == 0, err
    folder = out / "tiny" / "pyiqa@cnniqa" / "whole"
    predictions = pd.read_csv(folder / "predictions.csv", dtype={"item_id": str}).set_index("item_id")
    assert len(predictions) == len(tiny_dataset.items) and set(predictions["split"].astype(str)) == {"whole"}
    np.testing.assert_allclose(predictions["prediction"].loc[expected.index], expected, rtol=1e-5, atol=1e-6)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["split"] == "whole" and manifest["resolved_params"]["lower_is_better"] is False
    import hashlib
    assert json.loads(manifest["weights_sha256"]) == {WEIGHTS: hashlib.sha256(path.read_bytes()).hexdigest()}
    code, text, err = biqa(capsys, "eval", out, "--json")
    record = [r for r in json.loads(text) if r["subset"] == "test"][0]
    assert code == 0 and record["n"] == 40 and record["split"] == "whole"
    # split runs (test parts only) and biqa predict on any images give the same scores
    code, _, err = biqa(capsys, "train", "-m", "pyiqa:cnniqa", "-d", "tiny", "-n", "2", "-o", tmp_path / "split", "-q")
    assert code == 0, err
    split = pd.read_csv(tmp_path / "split" / "tiny" / "pyiqa@cnniqa" / "split_01" / "predictions.csv", dtype={"item_id": str})
    np.testing.assert_allclose(split["prediction"], expected.loc[split["item_id"]], rtol=1e-5, atol=1e-6)
    code, text, err = biqa(capsys, "predict", "--run", "pyiqa:cnniqa", "--images", tiny_dataset.root, "--out",
                           tmp_path / "scores.csv", "--device", "cpu", "--json")
    assert code == 0, err
    scored = {s["item_id"]: s["prediction"] for s in json.loads(text)["scores"]}
    assert scored == pytest.approx(expected.to_dict(), rel=1e-5, abs=1e-6)
    # lower-is-better turns the sign (pyiqa's metadata decides by default)
    code, text, err = biqa(capsys, "predict", "--run", "pyiqa:cnniqa", "-p", "lower_is_better=true", "--images",
                           tiny_dataset.root, "--out", tmp_path / "neg.csv", "--device", "cpu", "--json")
    negated = {s["item_id"]: s["prediction"] for s in json.loads(text)["scores"]}
    assert negated == pytest.approx({k: -v for k, v in expected.items()}, rel=1e-5, abs=1e-6)
    assert no_network == []


def test_missing_weights_is_one_line_and_nothing_is_downloaded(tiny_dataset, torch_home, no_network, tmp_path,
                                                               capsys, monkeypatch):
    import torch.hub

    downloads = []
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: downloads.append(a))
    code, _, err = biqa(capsys, "train", "-m", "pyiqa:cnniqa", "-d", "tiny", "--whole", "-o", tmp_path / "res", "-q")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    expected = torch_home / "hub" / "pyiqa" / WEIGHTS
    assert str(expected) in lines[0] and "put it in" in lines[0] and "huggingface" in lines[0] and "-p weights=FILE" in lines[0]
    assert no_network == [] and downloads == []
    assert not (tmp_path / "res" / "tiny" / "pyiqa@cnniqa" / "whole" / "manifest.json").exists()


def test_direction_comes_from_pyiqa_metadata_and_names_are_checked(capsys):
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    from biqa_bench.methods import create_method

    for metric in ("niqe", "brisque", "musiq", "clipiqa"):
        flagged = create_method(f"pyiqa:{metric}").get_params()["lower_is_better"]
        assert flagged is bool(DEFAULT_CONFIGS[metric].get("lower_better", False))
    assert create_method("pyiqa:niqe").get_params()["lower_is_better"] is True
    assert create_method("pyiqa:musiq").get_params()["lower_is_better"] is False
    code, _, err = biqa(capsys, "methods", "info", "pyiqa:ssim")
    assert code == 2 and "full-reference" in err
    code, _, err = biqa(capsys, "methods", "info", "pyiqa:musiqq")
    assert code == 2 and "Did you mean 'musiq'" in err
