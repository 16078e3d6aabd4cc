"""`biqa significance` on a small results folder written with the store."""

import json

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from biqa_bench.commands import significance as command
from biqa_bench.evaluation.results import significance_results
from biqa_bench.errors import AnalysisError
from biqa_bench.evaluation.significance import compare_methods, split_metric_table
from biqa_bench.store import load_predictions, run_dir, write_run


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("BIQA_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("BIQA_CACHE", str(tmp_path / "cache"))


def write_results(root, noise=(0.05, 0.2, 0.21), splits=(0, 1, 2, 3), hashes=None, n=120, seed=0):
    rng = np.random.default_rng(seed)
    for split in splits:
        quality = rng.uniform(0, 100, n)
        for k, level in enumerate(noise):
            method = f"m{k}"
            predictions = pd.DataFrame({
                "item_id": [f"s{split}_{i}" for i in range(n)], "dataset": "toy", "split": split, "subset": "test",
                "quality": quality, "score": quality, "prediction": quality / 100 + rng.normal(0, level, n),
            })
            split_hash = (hashes or {}).get(method, "h0")
            manifest = {"kind": "run", "method": method, "train_dataset": "toy", "split": split, "split_hash": split_hash}
            write_run(run_dir(root, "toy", method, split), predictions, manifest)


def app():
    main = typer.Typer()
    command.register(main)

    @main.callback()
    def _root():
        pass

    return main


def test_significance_results_match_pure_function(tmp_path):
    write_results(tmp_path / "res")
    outcome = significance_results(tmp_path / "res", metric="srocc")
    result = outcome[("toy", "toy")]
    per_split = split_metric_table(load_predictions(tmp_path / "res"))
    expected = compare_methods(per_split[["method", "split", "srocc"]])
    pd.testing.assert_frame_equal(result.pvalue, expected.pvalue)
    assert result.decision.loc["m0", "m1"] == 1 and result.decision.loc["m1", "m0"] == -1
    rmse = significance_results(tmp_path / "res", metric="rmse")[("toy", "toy")]
    assert rmse.decision.loc["m0", "m1"] == 1  # lower RMSE is better


def test_command_writes_csvs_and_json(tmp_path):
    write_results(tmp_path / "res")
    runner = CliRunner()
    result = runner.invoke(app(), ["significance", str(tmp_path / "res"), "--holm", "--out", str(tmp_path / "sig")])
    assert result.exit_code == 0, result.output
    assert "m0" in result.output
    decision = pd.read_csv(tmp_path / "sig" / "toy_srocc_decision.csv")
    assert decision.set_index("method").loc["m0", "m1"] == 1
    assert (tmp_path / "sig" / "toy_srocc_pvalue_holm.csv").is_file()
    result = runner.invoke(app(), ["significance", str(tmp_path / "res"), "--json", "--test", "wilcoxon"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload[0]["dataset"] == "toy" and payload[0]["test"] == "wilcoxon"
    # 4 splits: the exact two-sided signed-rank p cannot go below 2/16, and the result says so
    assert payload[0]["decision"]["m0"]["m2"] == 0
    assert payload[0]["pvalue"]["m0"]["m2"] == pytest.approx(0.125)
    assert "cannot reach" in payload[0]["notes"][0]


def test_command_per_image(tmp_path):
    write_results(tmp_path / "res")
    runner = CliRunner()
    result = runner.invoke(app(), ["significance", str(tmp_path / "res"), "--per-image", "m0,m1", "--split", "2",
                                   "--metric", "plcc", "--resamples", "200", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["split"] == 2 and payload["n"] == 120
    assert payload["bootstrap"]["low"] > 0
    result = runner.invoke(app(), ["significance", str(tmp_path / "res"), "--per-image", "m0,m1"])
    assert result.exit_code == 2 and "exactly one test set" in result.output


def test_different_split_files_are_refused(tmp_path):
    write_results(tmp_path / "res", hashes={"m1": "other"})
    with pytest.raises(AnalysisError, match="different split files"):
        significance_results(tmp_path / "res")
    result = CliRunner().invoke(app(), ["significance", str(tmp_path / "res")])
    assert result.exit_code == 2 and "different split files" in result.output


def test_single_split_and_unknown_options_are_one_line_errors(tmp_path):
    write_results(tmp_path / "res", splits=(0,))
    runner = CliRunner()
    result = runner.invoke(app(), ["significance", str(tmp_path / "res")])
    assert result.exit_code == 2 and "at least 2 splits" in result.output
    result = runner.invoke(app(), ["significance", str(tmp_path / "res"), "--test", "anova"])
    assert result.exit_code == 2 and "unknown --test" in result.output
    result = runner.invoke(app(), ["significance", str(tmp_path / "res"), "--dataset", "nope"])
    assert result.exit_code == 2 and "datasets present" in result.output
