"""Bad input that used to get through (issues #20, #21): each case is one line naming the file,
the count and the fix, and nothing is written or lost."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from biqa_bench.cli import main
from biqa_bench.config import load_config

from conftest import make_image_folder


def biqa(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(code: int, err: str, *needles: str) -> str:
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def image_folder(tmp_path) -> tuple[Path, pd.DataFrame]:
    root = tmp_path / "imgs"
    return root, make_image_folder(root)


# ------------------------------------------------------------------ non-finite labels


@pytest.mark.parametrize("column,value", [("score", "inf"), ("score", "-inf"), ("score", "nan"), ("std", "inf"), ("std", "x")])
def test_non_finite_score_or_std_is_rejected_by_add_naming_file_and_rows(image_folder, tmp_path, capsys, column, value):
    root, labels = image_folder
    labels["std"] = 0.5
    labels[column] = labels[column].astype(object)
    labels.loc[[3, 7], column] = value
    csv = tmp_path / "labels.csv"
    labels.to_csv(csv, index=False)
    code, _, err = biqa(capsys, "datasets", "add", "bad", "--csv", csv, "--root", root, "--score-range", 1, 5, "--std-column", "std")
    line = one_line_error(code, err, str(csv), "rows [5, 9]", "img003.png", f"2 ", column, "fix or remove those rows")
    if value.endswith("inf"):
        assert "infinite" in line
    assert "bad" not in load_config().get("datasets", {})  # nothing registered


def test_an_infinite_score_edited_in_after_add_stops_check_and_train(image_folder, tmp_path, capsys):
    root, labels = image_folder
    csv = tmp_path / "labels.csv"
    labels.to_csv(csv, index=False)
    assert biqa(capsys, "datasets", "add", "edited", "--csv", csv, "--root", root, "--score-range", 1, 5)[0] == 0
    labels["score"] = labels["score"].astype(object)
    labels.loc[0, "score"] = "inf"
    labels.to_csv(csv, index=False)
    for args in (("datasets", "check", "edited"), ("train", "-m", "brisque", "-d", "edited", "-n", "1", "-o", tmp_path / "res", "-q")):
        code, _, err = biqa(capsys, *args)
        one_line_error(code, err, str(csv), "rows [2]", "infinite score")
    assert not (tmp_path / "res").exists()


# ------------------------------------------------------------------ paths outside --root


@pytest.mark.parametrize("bad_path", ["../outside.png", "/etc/passwd", "sub/../../x.png"])
def test_add_rejects_image_paths_outside_root(image_folder, tmp_path, capsys, bad_path):
    root, labels = image_folder
    labels.loc[1, "path"] = bad_path
    csv = tmp_path / "labels.csv"
    labels.to_csv(csv, index=False)
    code, _, err = biqa(capsys, "datasets", "add", "outside", "--csv", csv, "--root", root, "--score-range", 1, 5)
    one_line_error(code, err, str(csv), "1 image paths", "outside --root", bad_path)
    assert "outside" not in load_config().get("datasets", {})


def test_add_accepts_paths_in_subfolders_and_dot_segments(tmp_path, capsys):
    root = tmp_path / "imgs"
    labels = make_image_folder(root / "sub", n=12)
    labels["path"] = ["sub/./" + p if k % 2 else "sub/" + p for k, p in enumerate(labels["path"])]
    csv = tmp_path / "labels.csv"
    labels.to_csv(csv, index=False)
    code, _, err = biqa(capsys, "datasets", "add", "nested", "--csv", csv, "--root", root, "--score-range", 1, 5)
    assert code == 0, err
