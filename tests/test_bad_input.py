"""Bad input that used to get through (issues #20, #21): each case is one line naming the file,
the count and the fix, and nothing is written or lost."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from biqa_bench.config import load_config

from _cli_helpers import biqa, one_line_error
from conftest import make_image_folder




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


# ------------------------------------------------------------------ hand-edited split files


def _edited_split_file(dataset, tmp_path, edit) -> Path:
    from biqa_bench.splits import make_splits

    data = make_splits(dataset, repeats=2, seed=0).to_dict()
    edit(data["splits"][1])
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    return path


def _leak_item(split):
    split["train"].append(split["test"][0])


def _leak_content(split):
    # img000 and img001 share content c0; put the two of one content on both sides
    partner = {f"img{k:03d}.png": f"img{k ^ 1:03d}.png" for k in range(40)}
    moved = split["test"][0]
    split["test"].remove(partner[moved]) if partner[moved] in split["test"] else None
    split["train"] = [i for i in split["train"] if i != partner[moved]] + [partner[moved]]
    split["val"] = [i for i in split["val"] if i != partner[moved]]


EDITS = {
    "item leak": (_leak_item, "split 1: 1 items are in both train and test"),
    "content leak": (_leak_content, "split 1: 1 contents (reference images) have items in both train and test"),
    "empty test": (lambda s: s.update(test=[]), "split 1: its test part is empty"),
    "empty train": (lambda s: s.update(train=[]), "split 1: its train part is empty"),
    "empty val": (lambda s: s.update(train=s["train"] + s["val"], val=[]), "split 1: its val part is empty"),
    "unknown item": (lambda s: s["test"].append("ghost.png"), "split 1 names 1 items not in 'tiny' (e.g. ['ghost.png'])"),
    "listed twice": (lambda s: s["train"].append(s["train"][0]), "split 1: 1 items listed twice in its train part"),
    "same index": (lambda s: s.update(index=0), "two splits have index 0"),
}


@pytest.mark.parametrize("case", list(EDITS))
def test_a_hand_edited_split_file_is_an_error_in_train_import_and_check(tiny_dataset, tmp_path, capsys, case):
    edit, needle = EDITS[case]
    path = _edited_split_file(tiny_dataset, tmp_path, edit)
    out = tmp_path / "res"
    code, _, err = biqa(capsys, "train", "-m", "test-brightness", "-d", "tiny", "--splits", path, "-o", out, "-q")
    one_line_error(code, err, str(path), needle, "biqa splits make")
    assert not out.exists()  # nothing trained or written
    preds = tmp_path / "p.csv"
    pd.DataFrame({"item_id": tiny_dataset.items["item_id"], "prediction": 1.0, "split": 0}).to_csv(preds, index=False)
    code, _, err = biqa(capsys, "import", "-m", "ext", "-d", "tiny", "--predictions", preds, "--splits", path, "-o", out)
    one_line_error(code, err, str(path), needle)
    assert not out.exists()
    code, _, err = biqa(capsys, "splits", "check", path)
    one_line_error(code, err, str(path), needle)


def test_items_in_no_part_are_a_warning_with_the_count(tiny_dataset, tmp_path, capsys):
    def drop(split):
        split["train"] = split["train"][3:]

    path = _edited_split_file(tiny_dataset, tmp_path, drop)
    code, out, err = biqa(capsys, "splits", "check", path)
    assert code == 0, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "warning" in lines[0] and "(split 1: 3)" in lines[0] and "(40)" in lines[0], err
    assert "2 splits of tiny valid" in out
    code, _, err = biqa(capsys, "train", "-m", "test-brightness", "-d", "tiny", "--splits", path, "-o", tmp_path / "res", "-q")
    assert code == 0 and "(split 1: 3)" in err
    manifest = json.loads((tmp_path / "res" / "tiny" / "test-brightness" / "split_01" / "manifest.json").read_text())
    assert manifest["n_train"] + manifest["n_val"] + manifest["n_test"] == 37


def test_a_made_split_file_checks_clean(tiny_dataset, tmp_path, capsys):
    code, out, err = biqa(capsys, "splits", "make", "-d", "tiny", "-n", "3", "-o", tmp_path / "s.json")
    assert code == 0, err
    code, out, err = biqa(capsys, "splits", "check", tmp_path / "s.json")
    assert code == 0 and err.strip() == "", err
    assert "3 splits of tiny valid" in out


# ------------------------------------------------------------------ imported predictions of non-test items


def test_import_counts_predictions_of_items_outside_the_test_part(tiny_dataset, tmp_path, capsys):
    from biqa_bench.importer import import_predictions
    from biqa_bench.splits import make_splits

    split_set = make_splits(tiny_dataset, repeats=2, seed=0)
    split_set.save(tmp_path / "s.json")
    everything = pd.concat(
        [pd.DataFrame({"item_id": tiny_dataset.items["item_id"], "prediction": np.arange(40.0), "split": k}) for k in (0, 1, 5)]
    )
    everything.to_csv(tmp_path / "all.csv", index=False)
    result = import_predictions("ext", tiny_dataset, [tmp_path / "all.csv"], split_set, tmp_path / "lib")
    n_test = {s.index: len(s.test) for s in split_set.splits}
    assert result.ignored == {0: 40 - n_test[0], 1: 40 - n_test[1]} and result.unknown_splits == [5]
    code, out, err = biqa(capsys, "import", "-m", "ext", "-d", "tiny", "--predictions", tmp_path / "all.csv",
                          "--splits", tmp_path / "s.json", "-o", tmp_path / "res")
    assert code == 0 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 2, err
    assert f"{80 - n_test[0] - n_test[1]} predictions ignored because their items are not in the split's test part" in lines[0]
    assert f"split 0: {40 - n_test[0]}" in lines[0]
    assert "splits [5] ignored" in lines[1]
    manifest = json.loads((tmp_path / "res" / "tiny" / "ext" / "split_00" / "manifest.json").read_text())
    assert manifest["n_ignored_predictions"] == 40 - n_test[0] and manifest["n_test"] == n_test[0]


def test_import_of_test_items_only_warns_nothing(tiny_dataset, tmp_path, capsys):
    from biqa_bench.splits import make_splits

    split_set = make_splits(tiny_dataset, repeats=1, seed=0)
    split_set.save(tmp_path / "s.json")
    pd.DataFrame({"item_id": split_set.splits[0].test, "prediction": 1.0}).to_csv(tmp_path / "p.csv", index=False)
    code, out, err = biqa(capsys, "import", "-m", "ext", "-d", "tiny", "--predictions", tmp_path / "p.csv",
                          "--splits", tmp_path / "s.json", "-o", tmp_path / "res")
    assert code == 0 and err.strip() == "", err


# ------------------------------------------------------------------ images below a method's minimum size


@pytest.fixture
def with_tiny_image(tmp_path) -> tuple[Path, Path]:
    from PIL import Image

    root = tmp_path / "imgs"
    labels = make_image_folder(root, n=30)
    Image.fromarray(np.full((4, 4, 3), 128, dtype=np.uint8)).save(root / "img007.png")
    csv = tmp_path / "labels.csv"
    labels.to_csv(csv, index=False)
    return root, csv


def test_an_image_below_a_methods_minimum_is_one_line_or_skipped_with_a_count(with_tiny_image, tmp_path, capsys):
    root, csv = with_tiny_image
    assert biqa(capsys, "datasets", "add", "small", "--csv", csv, "--root", root, "--score-range", 1, 5)[0] == 0
    out = tmp_path / "res"
    code, _, err = biqa(capsys, "train", "-m", "brisque", "-d", "small", "-n", "1", "-o", out, "-q")
    one_line_error(code, err, str(root), "1 images of 'small' are smaller than brisque's minimum of 8 px", "img007.png", "--skip-broken")
    assert not out.exists()
    code, _, err = biqa(capsys, "train", "-m", "brisque", "-d", "small", "-n", "1", "-o", out, "-q", "--skip-broken")
    assert code == 0 and "Traceback" not in err, err
    assert "leaving out 1 images smaller than brisque's minimum of 8 px" in err
    manifest = json.loads((out / "small" / "brisque" / "split_00" / "manifest.json").read_text())
    assert manifest["skipped_items"] == ["img007.png"] and manifest["n_skipped_items"] == 1
    assert manifest["n_train"] + manifest["n_val"] + manifest["n_test"] == 29


def test_datasets_check_lists_images_below_each_methods_minimum(with_tiny_image, capsys):
    from biqa_bench.datasets.check import check_dataset
    from biqa_bench.datasets.registry import load_dataset
    from biqa_bench.methods import min_image_sides

    root, csv = with_tiny_image
    assert biqa(capsys, "datasets", "add", "small", "--csv", csv, "--root", root, "--score-range", 1, 5)[0] == 0
    sides = min_image_sides()
    assert sides["brisque"] == 8 and sides["cnniqa"] == 32
    report = check_dataset(load_dataset("small"), min_sides={"brisque": 8, "cnniqa": 32})
    assert report.too_small == {"brisque": {"min_side": 8, "paths": ["img007.png"]},
                                "cnniqa": {"min_side": 32, "paths": sorted(f"img{k:03d}.png" for k in range(30))}}
    code, out, err = biqa(capsys, "datasets", "check", "small")
    assert code == 0 and err.strip() == "", err
    assert "too small for brisque (shorter side < 8 px): 1 of 30 (img007.png)" in out
    assert "too small for cnniqa (shorter side < 32 px): 30 of 30" in out
