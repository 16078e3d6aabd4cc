"""The four deep baselines of the papers' tables (HyperIQA, DBCNN, MetaIQA, WaDIQaM-NR) end to end
on the command line: `biqa train` on a tiny embedded subset (DBCNN's S-CNN and MetaIQA's meta
steps included, pre-trained on a tiny embedded synthetic subset without the target's held-out
contents), then `biqa eval` and `biqa report`, whose tables hold every method's row with finite
values. Tiny on purpose (32 px crops, a few steps): this checks the pipeline, not the methods'
accuracy."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from _cli_helpers import biqa, no_network  # noqa: F401 (a fixture)

# 4 contents x 6 blends at the smallest side the generator takes: 1 content each for test and
# validation (6 images each), 2 for training
TARGET = "mixed:blends=6,contents=4,size=161"  # options in the order the report names them
PRETRAIN = "synthetic:contents=4,size=161"
SMALL = ["-p", "crop=32", "-p", "image_size=40x40", "-p", "batch_size=2"]
RUNS = {
    "hyperiqa": ["--recipe", "quick", "--pretrained", "none", "--test-crops", "1", "-p", "epochs=1", *SMALL],
    "dbcnn": ["--recipe", "quick", "--pretrained", "none", "-p", f"pretrain_data={PRETRAIN}", *SMALL],
    "metaiqa": ["--recipe", "quick", "--pretrained", "none", "-p", "epochs=1", "-p", f"pretrain_data={PRETRAIN}", *SMALL],
    "wadiqam": ["--recipe", "quick", "--pretrained", "none", "-p", "epochs=1", "-p", "image_size=48x48"],
}


def test_the_four_deep_baselines_train_evaluate_and_enter_the_report(tmp_path, capsys, no_network):
    out = tmp_path / "res"
    for method, args in RUNS.items():
        code, _, err = biqa(capsys, "train", "-m", method, "-d", TARGET, "-n", "1", "-o", out, "-q", *args)
        assert code == 0, (method, err)
        (manifest_path,) = out.glob(f"mixed@*/{method}/split_00/manifest.json")  # the dataset's folder names its options
        manifest = json.loads(manifest_path.read_text())
        assert manifest["resolved_params"]["pretrained"] == "none"  # no ImageNet weights here, and said so
        if method in ("dbcnn", "metaiqa"):  # the pre-training stage ran and is named in the manifest
            stage = manifest["pretraining"]["stages"][0]
            assert stage["inputs"]["data"]["n_items"] == 2 * 39, stage  # the target's 2 held-out contents left out
    code, text, err = biqa(capsys, "eval", out, "--json")
    assert code == 0, err
    records = pd.DataFrame(json.loads(text))
    test = records[records["subset"] == "test"].set_index("method")
    assert sorted(test.index) == sorted(RUNS) and (test["n"] == 6).all()
    assert np.isfinite(test["srocc"].astype(float)).all()
    code, _, err = biqa(capsys, "report", out, "--out", tmp_path / "report")
    assert code == 0, err
    tables = tmp_path / "report" / "tables"
    overall = pd.read_csv(tables / "overall.csv", index_col=0)
    rmse = pd.read_csv(tables / "overall_rmse.csv", index_col=0)
    assert sorted(overall.index) == sorted(RUNS) and sorted(rmse.index) == sorted(RUNS), overall
    (srocc,) = [c for c in overall.columns if c.endswith("SROCC")]
    # SROCC and RMSE are defined for every method (PLCC may not be: on 6 test images a method ranking
    # them backwards gets a flat logistic, which the report marks), and equal eval's records
    assert np.isfinite(rmse.to_numpy(float)).all(), rmse
    for method in RUNS:
        assert float(overall.loc[method, srocc]) == pytest.approx(float(test.loc[method, "srocc"]), abs=1e-12)
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert all(f"{method} on {TARGET}: 1 of 1 splits" in markdown for method in RUNS), markdown
    assert markdown.count("pretrained=none") >= len(RUNS)  # the protocol says no ImageNet weights were used


def test_methods_info_shows_each_demo_recipe_with_every_setting_of_the_paper_recipe(capsys):
    from biqa_bench.methods import create_method

    for method in RUNS:
        code, text, err = biqa(capsys, "methods", "info", method, "--json")
        assert code == 0, err
        recipes = json.loads(text)["recipes"]
        assert set(recipes) == {"paper", "quick", "demo"} and set(recipes["demo"]) == set(recipes["paper"]), method
        settings = create_method(method, recipe="demo", pretrained="none").settings()  # valid as given
        assert settings["max_steps"] is not None and settings["epochs"] <= 2  # capped: a CPU run, not the paper's
