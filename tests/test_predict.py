"""`biqa predict`: a trained run's model (BRISQUE, CNNIQA) scores any images the same as in the
run's predictions.csv; unreadable images are listed, not fatal."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from _cli_helpers import biqa, one_line_error
from conftest import make_image_folder


@pytest.fixture
def photos(tmp_path):
    """A registered dataset 'photos' of 30 images of 48x48 (CNNIQA's patches are 32x32)."""
    from biqa_bench.datasets.custom import add_custom_dataset

    root = tmp_path / "photos"
    labels = make_image_folder(root, n=30, size=48, seed=1)
    csv = tmp_path / "photos.csv"
    labels.to_csv(csv, index=False)
    add_custom_dataset("photos", csv, root, (1.0, 5.0), content_column="content")
    return root


@pytest.mark.parametrize("method, params", [("brisque", []), ("cnniqa", ["-p", "epochs=2"])])
def test_predict_gives_the_runs_scores_for_its_test_images(photos, tmp_path, capsys, method, params):
    out = tmp_path / "res"
    code, _, err = biqa(capsys, "train", "-m", method, "-d", "photos", "-n", "1", "-o", out, "-q", *params)
    assert code == 0, err
    run = out / "photos" / method / "split_00"
    expected = pd.read_csv(run / "predictions.csv", dtype={"item_id": str}).set_index("item_id")["prediction"]
    # the test images copied elsewhere, in another order, with a corrupt file among them
    folder = tmp_path / "mine"
    folder.mkdir()
    for name in reversed(expected.index):
        shutil.copy(photos / name, folder / name)
    (folder / "broken.png").write_bytes((photos / expected.index[0]).read_bytes()[:60])
    scores_csv = tmp_path / "scores.csv"
    code, text, err = biqa(capsys, "predict", "--run", run, "--images", folder, "--out", scores_csv, "--device", "cpu", "-q")
    assert code == 0, err
    assert "broken.png" in err and "unreadable" in err and f"scored {len(expected)} images" in text
    scores = pd.read_csv(scores_csv, dtype={"item_id": str}).set_index("item_id")
    assert sorted(scores.index) == sorted(expected.index) and set(scores["method"]) == {method}
    np.testing.assert_allclose(scores["prediction"].loc[expected.index].to_numpy(), expected.to_numpy(), rtol=1e-6, atol=1e-6)
    # files one by one, the method named instead of the run folder, JSON out
    some = [photos / name for name in expected.index[:3]]
    code, text, err = biqa(capsys, "predict", "--run", method, "--results", out, *some, "--out", scores_csv,
                           "--device", "cpu", "--json")
    assert code == 0, err
    payload = json.loads(text)
    assert payload["source"] == str(run) and payload["unreadable"] == [] and payload["n_scored"] == 3
    got = {s["item_id"]: s["prediction"] for s in payload["scores"]}
    for name in expected.index[:3]:
        assert got[name] == pytest.approx(expected[name], rel=1e-6, abs=1e-6)


def test_predict_errors_are_one_line(photos, tmp_path, capsys):
    scores = tmp_path / "s.csv"
    one_line_error(*biqa(capsys, "predict", "--run", "brisque", "--results", tmp_path / "none", "--images", photos,
                   "--out", scores)[::2], "learns from data", "run folder")
    one_line_error(*biqa(capsys, "predict", "--run", "brisqe", "--images", photos, "--out", scores)[::2], "Did you mean")
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "res").mkdir()
    one_line_error(*biqa(capsys, "predict", "--run", tmp_path / "res", "--images", photos, "--out", scores)[::2], "not a run folder")
    code, _, err = biqa(capsys, "train", "-m", "test-brightness", "-d", "photos", "-n", "1", "-o", tmp_path / "r", "-q")
    assert code == 0, err
    run = tmp_path / "r" / "photos" / "test-brightness" / "split_00"
    one_line_error(*biqa(capsys, "predict", "--run", run, "--images", empty, "--out", scores)[::2], "no images found")
    (empty / "bad.png").write_bytes(b"not a png")
    one_line_error(*biqa(capsys, "predict", "--run", run, "--images", empty, "--out", scores)[::2], "none of the 1 images decodes")
    one_line_error(*biqa(capsys, "predict", "--run", run, "--images", photos, "--out", scores, "--device", "gpu")[::2], "--device")


def test_position_seeded_test_crops_get_a_note():
    from biqa_bench.methods import Method
    from biqa_bench.predict import position_notes

    class Cropping(Method):
        name = "cropping"

        def __init__(self, test_crops=None):
            self.test_crops = test_crops

        def settings(self):  # as DeepMethod: the recipe's value unless given
            return {"test_crops": 25 if self.test_crops is None else self.test_crops}

    (note,) = position_notes(Cropping())
    assert "25 random test crops" in note and "--test-crops 0" in note
    assert position_notes(Cropping(test_crops=0)) == ()
    assert position_notes(Method()) == ()
