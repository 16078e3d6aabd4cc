"""`biqa gmad select | simulate | analyze` end to end on a folder pool and fake runs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import typer
from PIL import Image, ImageFilter
from typer.testing import CliRunner

from biqa_bench.commands import gmad as gmad_cmd
from biqa_bench.datasets.folder import load_pool
from biqa_bench.report.gmad import pool_items_table, run_simulated
from biqa_bench.runner import pool_scores
from biqa_bench.methods import Method, register_method
from biqa_bench.store import PREDICTION_COLUMNS, write_run

N = 48


@register_method("gmad_test_brightness")
class _Brightness(Method):
    """Mean pixel value: a 'trained' method for the predict-the-pool path."""

    def __init__(self, offset: float = 0.0):
        self.offset = offset

    def fit(self, train_items, val_items, ctx):
        return self

    def predict(self, items, ctx):
        return np.array([ctx.read_image(p).mean() + self.offset for p in items["path"]])


@pytest.fixture()
def setup(tmp_path, monkeypatch):
    monkeypatch.setenv("BIQA_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("BIQA_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    pool = tmp_path / "pool"
    pool.mkdir()
    quality = rng.uniform(0, 100, N)
    ids = []
    for j, q in enumerate(quality):
        base = np.zeros((40, 56, 3), np.uint8)
        base[:, ::8] = 255
        base[..., 1] = int(40 + 2 * q)  # brightness follows quality, for the brightness method
        image = Image.fromarray(base).filter(ImageFilter.GaussianBlur(float(100 - q) / 30))
        name = f"p{j:03d}.png"
        image.save(pool / name)
        ids.append(name)
    results = tmp_path / "results"
    for method, scores in (("oracle", quality), ("noisy", quality + rng.normal(0, 30, N))):
        predictions = pd.DataFrame(
            {"item_id": ids, "dataset": "folder@pool", "split": 0, "subset": "test", "quality": np.nan,
             "score": np.nan, "prediction": scores}
        )[PREDICTION_COLUMNS]
        write_run(results / method, predictions, {"method": method, "train_dataset": "elsewhere", "split": 0})
    truth = tmp_path / "truth.csv"
    pd.DataFrame({"item_id": ids, "quality": quality}).to_csv(truth, index=False)
    app = typer.Typer()
    gmad_cmd.register(app)
    return {"app": app, "pool": pool, "results": results, "truth": truth, "tmp": tmp_path}


def _invoke(app, args):
    return CliRunner().invoke(app, args)


def test_select_simulate_analyze(setup):
    app, tmp = setup["app"], setup["tmp"]
    out = tmp / "gmad"
    r = _invoke(app, ["gmad", "select", "--methods", "oracle,noisy", "--pool", str(setup["pool"]),
                      "--out", str(out), "--results", str(setup["results"]), "--levels", "4", "-q"])
    assert r.exit_code == 0, r.output
    pairs = pd.read_csv(out / "pairs.csv")
    assert len(pairs) == 2 * 4
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["noisy-vs-oracle.png", "oracle-vs-noisy.png"]
    assert len(list((out / "test_images").glob("*_1.png"))) == (pairs["status"] == "ok").sum()
    assert json.loads((out / "selection.json").read_text())["levels"] == 4

    # the folder pool is unlabelled: simulate needs --truth, and says so in one line
    r = _invoke(app, ["gmad", "simulate", "--pairs", str(out / "pairs.csv"), "--out", str(out / "j.csv")])
    assert r.exit_code == 2 and "--truth" in r.output
    r = _invoke(app, ["gmad", "simulate", "--pairs", str(out / "pairs.csv"), "--out", str(out / "j.csv"),
                      "--truth", str(setup["truth"]), "--subjects", "12", "--seed", "3"])
    assert r.exit_code == 0, r.output
    judgments = pd.read_csv(out / "j.csv")
    assert list(judgments.columns) == ["pair_id", "subject", "preference"]

    r = _invoke(app, ["gmad", "analyze", "--pairs", str(out / "pairs.csv"), "--judgments", str(out / "j.csv"),
                      "--out", str(out / "analysis"), "--json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.output)
    assert [row["method"] for row in result["ranking"]] == ["oracle", "noisy"]
    assert result["aggressiveness"]["oracle"]["noisy"] > result["aggressiveness"]["noisy"]["oracle"]
    assert result["resistance"]["oracle"]["noisy"] > result["resistance"]["noisy"]["oracle"]
    for name in ("per_pair.csv", "aggressiveness.csv", "resistance.csv", "ranking.csv", "gmad.json"):
        assert (out / "analysis" / name).is_file()
    assert len(list((out / "analysis" / "figures").glob("*.png"))) == 2


def test_analyze_unknown_pairs_is_one_line_naming_the_file(setup):
    app, tmp = setup["app"], setup["tmp"]
    out = tmp / "gmad"
    r = _invoke(app, ["gmad", "select", "--methods", "oracle,noisy", "--pool", str(setup["pool"]), "--out", str(out),
                      "--results", str(setup["results"]), "--no-figures", "--no-export", "-q"])
    assert r.exit_code == 0, r.output
    bad = tmp / "bad.csv"
    pd.DataFrame({"pair_id": ["nope-L9"], "subject": ["s1"], "preference": [50]}).to_csv(bad, index=False)
    r = _invoke(app, ["gmad", "analyze", "--pairs", str(out / "pairs.csv"), "--judgments", str(bad),
                      "--out", str(tmp / "a")])
    assert r.exit_code == 2
    lines = [line for line in r.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "nope-L9" in lines[0] and "bad.csv" in r.output.replace("\n", "")


def test_unknown_method_names_the_fix(setup):
    r = _invoke(setup["app"], ["gmad", "select", "--methods", "oracel,noisy", "--pool", str(setup["pool"]),
                               "--out", str(setup["tmp"] / "x"), "--results", str(setup["results"]), "-q"])
    assert r.exit_code == 2
    assert "oracle" in r.output and "biqa train" in r.output


def test_pool_scores_predicts_the_pool_with_a_trained_run(setup, tmp_path):
    # a run trained elsewhere, with no predictions on the pool: the runner predicts the pool
    items = pd.DataFrame({"item_id": ["x"], "dataset": "elsewhere", "split": 0, "subset": "test",
                          "quality": 1.0, "score": 1.0, "prediction": 1.0})[PREDICTION_COLUMNS]
    folder = setup["results"] / "bright"
    _Brightness(offset=2.0).save(folder / "model")
    write_run(folder, items, {"method": "gmad_test_brightness", "params": {"offset": 2.0},
                              "train_dataset": "elsewhere", "split": 0, "method_seed": 0})
    pool = load_pool(str(setup["pool"]))
    scores = pool_scores(["gmad_test_brightness", "oracle"], pool, setup["results"])
    bright = scores[scores["method"] == "gmad_test_brightness"].set_index("item_id")["score"]
    assert len(bright) == N
    first = pool.with_abspaths().iloc[0]
    expected = np.asarray(Image.open(first["path"]).convert("RGB")).mean() + 2.0
    assert bright[first["item_id"]] == pytest.approx(expected)


def test_run_simulated_writes_everything(setup):
    pool = load_pool(str(setup["pool"]))
    scores = pool_scores(["oracle", "noisy"], pool, setup["results"])
    truth = pd.read_csv(setup["truth"]).set_index("item_id")["quality"]
    out = setup["tmp"] / "sim"
    result = run_simulated(scores, truth, ["oracle", "noisy"], out, pool_items_table(pool),
                                    levels=4, n_subjects=8, seed=1)
    assert result.ranking["method"].iloc[0] == "oracle"
    for name in ("pairs.csv", "judgments.csv", "pool_scores.csv", "analysis/ranking.csv", "analysis/gmad.json"):
        assert (out / name).is_file()
