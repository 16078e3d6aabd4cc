"""A new user's walk through `biqa`: every mistake ends in ONE line naming the thing and the fix.

Each test drives ``biqa_bench.cli.main([...])`` (which returns the exit code) and reads stderr
with capsys. Error paths already covered elsewhere (gMAD unknown pairs, significance on one
split or on different split files, library-level import errors) are not repeated here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from biqa_bench.cli import main
from biqa_bench.cli_common import check_param_types
from biqa_bench.errors import BiqaError

from _cli_helpers import biqa, one_line_error
from conftest import make_image_folder

RECORD_FIELDS = {"method", "dataset", "split", "subset", "n", "srocc", "krocc", "plcc", "plcc_raw", "rmse"}




@pytest.fixture
def image_folder(tmp_path) -> tuple[Path, Path]:
    """40 labelled PNGs under tmp/imgs and their labels CSV (path, score, content)."""
    root = tmp_path / "imgs"
    labels = make_image_folder(root)
    csv = tmp_path / "labels.csv"
    labels.to_csv(csv, index=False)
    return root, csv


@pytest.fixture
def trained(tiny_dataset, tmp_path, capsys) -> Path:
    """A results folder: the test-brightness method on 2 splits of the tiny dataset."""
    out = tmp_path / "res"
    code, _, err = biqa(capsys, "train", "-m", "test-brightness", "-d", "tiny", "-n", "2", "-o", out, "-q")
    assert code == 0, err
    return out


# ---------------------------------------------------------------- names and folders


def test_unknown_names_suggest_the_right_one(capsys):
    one_line_error(*biqa(capsys, "datasets", "info", "konq")[::2], "unknown dataset 'konq'", "Did you mean 'koniq'")
    one_line_error(*biqa(capsys, "splits", "make", "-d", "synthetc")[::2], "Did you mean 'synthetic'")


def test_unknown_method_in_train_suggests_the_right_one(tiny_dataset, tmp_path, capsys):
    code, _, err = biqa(capsys, "train", "-m", "test-brightnes", "-d", "tiny", "-n", "2", "-o", tmp_path / "r", "-q")
    one_line_error(code, err, "test-brightnes", "Did you mean 'test-brightness'")


def test_missing_dataset_root_is_named(image_folder, tmp_path, capsys):
    root, csv = image_folder
    assert biqa(capsys, "datasets", "add", "mine", "--csv", csv, "--root", root, "--score-range", "1", "5")[0] == 0
    missing = tmp_path / "nowhere"
    one_line_error(*biqa(capsys, "datasets", "check", "mine", "--root", missing)[::2], str(missing), "no such folder")
    one_line_error(*biqa(capsys, "datasets", "root", "koniq", missing)[::2], str(missing))
    one_line_error(*biqa(capsys, "datasets", "check", "koniq")[::2], "no root folder", "biqa datasets root koniq")


def test_datasets_check_names_missing_and_truncated_files(image_folder, capsys):
    root, csv = image_folder
    assert biqa(capsys, "datasets", "add", "mine", "--csv", csv, "--root", root, "--score-range", "1", "5")[0] == 0
    (root / "img003.png").unlink()
    data = (root / "img005.png").read_bytes()
    (root / "img005.png").write_bytes(data[: len(data) // 3])  # truncated
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / "stray.jpg")
    code, out, err = biqa(capsys, "datasets", "check", "mine")
    one_line_error(code, err, "1 missing", "1 unreadable", "1 unlabelled", "--skip-broken")
    assert "missing: img003.png" in out
    assert "unreadable: img005.png" in out and "(" in out.split("unreadable: img005.png")[1].splitlines()[0]
    assert "unlabelled: stray.jpg" in out
    code, out, err = biqa(capsys, "datasets", "check", "mine", "--json")
    report = json.loads(out)
    assert report["missing"] == ["img003.png"] and report["unreadable"] == ["img005.png"] and not report["ok"]
    one_line_error(code, err)


# ---------------------------------------------------------------- datasets add


@pytest.mark.parametrize(
    "table, options, needles",
    [
        ({"path": ["img000.png"], "mos": [3.0]}, [], ["no column 'score'", "--score-column"]),
        ({"path": ["img000.png", "img001.png"], "score": ["3.1", "high"]}, [], ["non-numeric", "img001.png"]),
        ({"path": ["img000.png"], "score": [3.0]}, ["--score-range", "5", "1"], ["--score-range", "LO < HI"]),
    ],
)
def test_datasets_add_bad_labels_are_one_line_and_not_registered(image_folder, tmp_path, capsys, table, options, needles):
    root, _ = image_folder
    csv = tmp_path / "bad.csv"
    pd.DataFrame(table).to_csv(csv, index=False)
    args = ["datasets", "add", "bad", "--csv", csv, "--root", root] + (options or ["--score-range", "1", "5"])
    one_line_error(*biqa(capsys, *args)[::2], *needles)
    one_line_error(*biqa(capsys, "datasets", "info", "bad")[::2], "unknown dataset 'bad'")


def test_datasets_add_empty_csv_and_wrong_root(image_folder, tmp_path, capsys):
    root, csv = image_folder
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    one_line_error(*biqa(capsys, "datasets", "add", "e", "--csv", empty, "--root", root, "--score-range", "1", "5")[::2],
                   str(empty), "empty")
    one_line_error(*biqa(capsys, "datasets", "add", "w", "--csv", csv, "--root", tmp_path, "--score-range", "1", "5")[::2],
                   "none of the 40 images", "--root")
    one_line_error(*biqa(capsys, "datasets", "add", "koniq", "--csv", csv, "--root", root, "--score-range", "1", "5")[::2],
                   "built-in")


def test_datasets_add_warns_on_a_missing_file_and_scores_outside_the_range(image_folder, capsys):
    root, csv = image_folder
    (root / "img007.png").unlink()
    code, out, err = biqa(capsys, "datasets", "add", "mine", "--csv", csv, "--root", root, "--score-range", "1", "4")
    assert code == 0 and "registered dataset 'mine'" in out
    warnings = [line for line in err.splitlines() if line.strip()]
    assert len(warnings) == 2 and all(line.startswith("warning:") for line in warnings)
    assert "1 of 40" in warnings[0] and "img007.png" in warnings[0] and "biqa datasets check mine" in warnings[0]
    assert "outside --score-range 1 4" in warnings[1]


def test_datasets_list_json_is_flat_with_integer_counts(image_folder, capsys):
    root, csv = image_folder
    assert biqa(capsys, "datasets", "add", "mine", "--csv", csv, "--root", root, "--score-range", "1", "5")[0] == 0
    code, out, _ = biqa(capsys, "datasets", "list", "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    assert code == 0
    assert isinstance(rows["koniq"]["items"], int) and rows["koniq"]["items"] > 0
    assert rows["mine"]["root"] == str(root.resolve()) and rows["synthetic"]["root"] == "embedded"


# ---------------------------------------------------------------- train, splits, eval


def test_train_bad_parameters_are_one_line(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "r"
    one_line_error(*biqa(capsys, "train", "-m", "test-brightness", "-d", "tiny", "-o", out, "-p", "fail_on_split")[::2],
                   "key=value")
    one_line_error(*biqa(capsys, "train", "-m", "test-brightness", "-d", "tiny", "-o", out, "-p", "nosuch=3")[::2],
                   "nosuch", "fail_on_split")
    one_line_error(*biqa(capsys, "train", "-m", "test-brightness", "-d", "tiny", "-o", out, "--recipe", "paper")[::2],
                   "--recipe")
    for command in (["train", "-m", "test-brightness", "-d", "tiny", "-o", out],
                    ["cross", "-m", "test-brightness", "--train", "tiny", "--test", "tiny", "-o", out],
                    ["gmad", "select", "--methods", "a,b", "--pool", "tiny", "--out", out]):
        one_line_error(*biqa(capsys, *command, "--device", "gpu")[::2], "--device 'gpu'", "cuda:N")
    one_line_error(*biqa(capsys, "train", "-m", "test-brightness", "-d", "tiny", "-o", out, "--seed", "-1")[::2], "--seed")
    one_line_error(*biqa(capsys, "cross", "-m", "test-brightness", "--train", "tiny", "--test", " , ", "-o", out)[::2], "--test needs")
    one_line_error(*biqa(capsys, "cross", "-m", "test-brightness", "--train", "tiny", "--test", "tiny", "-o", out)[::2],
                   "--test tiny", "training set")
    one_line_error(*biqa(capsys, "cross", "-m", "test-brightness", "--train", "tiny", "--test", "nosuch", "-o", out)[::2],
                   "unknown dataset 'nosuch'")
    assert not out.exists()  # refused before any work


def test_file_system_errors_are_one_line(tiny_dataset, tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    one_line_error(*biqa(capsys, "train", "-m", "test-brightness", "-d", "tiny", "-o", blocker / "r")[::2],
                   str(blocker), "Not a directory", "a file stands where a folder is needed")
    assert blocker.read_text() == "not a folder"  # nothing destroyed
    monkeypatch.setenv("BIQA_TRACEBACK", "1")  # for debugging: the traceback instead
    with pytest.raises(NotADirectoryError):
        main(["train", "-m", "test-brightness", "-d", "tiny", "-o", str(blocker / "r")])


def test_resolve_device_names_a_bad_torch_device():
    from biqa_bench.errors import MethodError
    from biqa_bench.nn.trainer import resolve_device

    assert str(resolve_device("cpu")) == "cpu"
    with pytest.raises(MethodError, match="not a torch device"):
        resolve_device("gpu")


def test_check_param_types_catches_wrong_value_types():
    class Method:
        def __init__(self, c_grid=(1.0, 10.0), lr=1e-3, epochs=6, refit=True, name="x", weights=None):
            pass

    check_param_types("m", Method, {"c_grid": [1, 2], "lr": 1, "epochs": 3.0, "refit": False, "weights": "w.pt"})
    for key, value, needle in [("c_grid", "abc", "a list"), ("lr", "fast", "a float"), ("epochs", 2.5, "an int"),
                               ("epochs", "six", "an int"), ("refit", 1, "a bool"), ("name", 3, "a str")]:
        with pytest.raises(BiqaError, match=f"-p {key}=") as info:
            check_param_types("m", Method, {key: value})
        assert needle.split()[-1] in str(info.value)


def test_ctrl_c_is_one_line_and_exit_130(tiny_dataset, tmp_path, capsys):
    code, _, err = biqa(capsys, "train", "-m", "test-brightness", "-d", "tiny", "-n", "2", "-o", tmp_path / "r",
                        "-p", "fail_on_split=1", "-q")
    one_line_error(code, err, "interrupted", "run the same command again", exit_code=130)
    assert (tmp_path / "r" / "tiny" / "test-brightness" / "split_00" / "predictions.csv").is_file()


def test_splits_show_on_corrupt_files(tmp_path, capsys):
    corrupt = tmp_path / "s.json"
    corrupt.write_text('{"dataset": "x", ')
    one_line_error(*biqa(capsys, "splits", "show", corrupt)[::2], str(corrupt), "biqa splits make")
    corrupt.write_text("[1, 2]")
    one_line_error(*biqa(capsys, "splits", "show", corrupt)[::2], str(corrupt), "not a valid split file")
    one_line_error(*biqa(capsys, "splits", "show", tmp_path / "none.json")[::2], "not found")


def test_eval_without_runs(tmp_path, capsys):
    one_line_error(*biqa(capsys, "eval", tmp_path / "nothing")[::2], "nothing", "biqa train")
    (tmp_path / "empty").mkdir()
    one_line_error(*biqa(capsys, "eval", tmp_path / "empty")[::2], "no complete runs", "biqa train")


def test_eval_refuses_a_bad_low_quality_rule_even_without_the_subset(trained, capsys):
    one_line_error(*biqa(capsys, "eval", trained, "--low-quality-rule", "quantle")[::2], "quantle", "nominal", "quantile")
    one_line_error(*biqa(capsys, "eval", trained, "--low-quality", "--fraction", "1.5")[::2], "(0, 1)", "1.5")


def test_eval_json_is_flat_records(trained, tmp_path, capsys):
    code, out, err = biqa(capsys, "eval", trained, "--json", "--out", tmp_path / "ev")
    assert code == 0, err
    records = json.loads(out)
    assert len(records) == 2 and {r["split"] for r in records} == {0, 1}
    for record in records:
        assert RECORD_FIELDS <= set(record)
        assert all(not isinstance(v, (dict, list)) for v in record.values())
        assert record["method"] == "test-brightness" and record["dataset"] == "tiny" and record["subset"] == "test"
        assert -1 <= record["srocc"] <= 1 and record["n"] > 0
    assert (tmp_path / "ev" / "records.csv").is_file()


# ---------------------------------------------------------------- import, significance, gmad, report


def test_import_malformed_csvs_are_one_line(trained, tmp_path, capsys):
    split_file = next((trained / "splits").glob("*.json"))
    base = ["import", "-m", "ext", "-d", "tiny", "--splits", split_file, "-o", tmp_path / "imp"]
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    one_line_error(*biqa(capsys, *base, "--predictions", empty)[::2], str(empty), "cannot read")
    garbled = tmp_path / "garbled.csv"
    garbled.write_text('item_id,prediction\n"img000.png,1\n')
    one_line_error(*biqa(capsys, *base, "--predictions", garbled)[::2], str(garbled))
    renamed = tmp_path / "renamed.csv"
    pd.DataFrame({"item_id": ["img000.png"], "pred": [1.0]}).to_csv(renamed, index=False)
    one_line_error(*biqa(capsys, *base, "--predictions", renamed)[::2], "no 'prediction' column")
    one_line_error(*biqa(capsys, *base, "--predictions", tmp_path / "absent.csv")[::2], "absent.csv", "not found")


def test_significance_typos_get_a_suggestion(trained, tmp_path, capsys):
    out = ["--out", tmp_path / "sig"]
    one_line_error(*biqa(capsys, "significance", trained, "--alpha", "1.5", *out)[::2], "--alpha")
    one_line_error(*biqa(capsys, "significance", trained, "-d", "tin", *out)[::2], "Did you mean 'tiny'", "--dataset")
    line = one_line_error(*biqa(capsys, "significance", trained, "--per-image", "test-brightness,test-brightnes", *out)[::2],
                          "Did you mean 'test-brightness'")
    assert "--per-image" in line
    line = one_line_error(*biqa(capsys, "significance", trained, "--per-image", "test-brightness,test-brightness",
                                "--metric", "plcc", *out)[::2], "exactly one test set")
    assert "--split (0, 1)" in line and "--dataset" not in line  # one dataset: only --split is missing
    line = one_line_error(*biqa(capsys, "significance", trained, "--per-image", "test-brightness,test-brightness",
                                "--split", "7", *out)[::2], "--split 7")
    assert "0, 1" in line


def test_gmad_missing_pool_folder_and_truth_file(trained, tmp_path, capsys):
    pool = tmp_path / "no_pool"
    one_line_error(*biqa(capsys, "gmad", "select", "-m", "a,b", "--pool", pool, "--out", tmp_path / "g",
                         "--results", trained)[::2], str(pool), "no such folder")
    pairs = tmp_path / "pairs.csv"
    pd.DataFrame({"pair_id": ["a-vs-b-L1"], "defender": ["a"], "attacker": ["b"], "level": [1], "status": ["ok"],
                  "image_best": ["img000.png"], "image_worst": ["img001.png"]}).to_csv(pairs, index=False)
    truth = tmp_path / "truth.csv"
    one_line_error(*biqa(capsys, "gmad", "simulate", "--pairs", pairs, "--out", tmp_path / "j.csv",
                         "--truth", truth)[::2], str(truth), "not found")


def test_report_on_a_folder_without_runs_and_a_bad_aggregate(trained, tmp_path, capsys):
    only_splits = tmp_path / "only_splits"
    (only_splits / "splits").mkdir(parents=True)
    for path in (trained / "splits").glob("*.json"):
        (only_splits / "splits" / path.name).write_bytes(path.read_bytes())
    one_line_error(*biqa(capsys, "report", only_splits)[::2], "no complete runs", "biqa train")
    one_line_error(*biqa(capsys, "report", trained, "--aggregate", "max")[::2], "--aggregate", "median")


def test_every_help_says_what_and_gives_an_example(capsys):
    commands = [["train"], ["import"], ["eval"], ["cross"], ["significance"], ["report"], ["demo"],
                ["datasets", "list"], ["datasets", "info"], ["datasets", "root"], ["datasets", "add"],
                ["datasets", "check"], ["datasets", "synth"], ["splits", "make"], ["splits", "show"],
                ["methods", "list"], ["methods", "info"], ["gmad", "select"], ["gmad", "simulate"], ["gmad", "analyze"], ["datasets"], ["gmad"]]
    for command in commands:
        code, out, _ = biqa(capsys, *command, "--help")
        assert code == 0 and "Example: biqa" in out, command


def test_methods_info_shows_params_and_recipes(capsys):
    import json

    code, out, _ = biqa(capsys, "methods", "info", "reqa", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["params"]["micro_levels"] == "batch" and info["params"]["flip"] is None
    assert info["recipes"]["paper"]["epochs"] == 40 and info["recipes"]["paper"]["flip"] is False
    assert info["source"].endswith("reqa.py")
    code, out, _ = biqa(capsys, "methods", "info", "test-brightness")
    assert code == 0 and "fail_on_split" in out and "Recipes" not in out  # no recipes: a classical method
    one_line_error(*biqa(capsys, "methods", "info", "reqq")[::2], "unknown method 'reqq'", "Did you mean 'reqa'")
