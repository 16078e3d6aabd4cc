"""The bad-input catalogue (#20): what a new user can get wrong, through `datasets add/check`,
`splits`, `train`, `import`, `eval` and `report`. Every case ends with exit code 2 and one line on
stderr, never a traceback. README's reliability paragraph states how many cases there are."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from biqa_bench.cli import main

from conftest import make_image_folder


class Workspace:
    """An image folder with good labels, and helpers to break one thing at a time."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.root = tmp / "imgs"
        self.labels = make_image_folder(self.root, n=20)
        self.csv = self.write_labels(self.labels)

    def write_labels(self, frame: pd.DataFrame, name: str = "labels.csv") -> Path:
        path = self.tmp / name
        frame.to_csv(path, index=False)
        return path

    def labels_with(self, row: int, column: str, value) -> Path:
        frame = self.labels.copy()
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
        return self.write_labels(frame, "bad.csv")

    def add(self, csv: Path | None = None, *extra) -> list:
        return ["datasets", "add", "mine", "--csv", csv or self.csv, "--root", self.root, "--score-range", 1, 5, *extra]

    def registered(self) -> "Workspace":
        assert main([str(a) for a in self.add()]) == 0
        return self

    def split_file(self, edit=None) -> Path:
        path = self.tmp / "splits.json"
        assert main(["splits", "make", "-d", "mine", "-n", "2", "-o", str(path)]) == 0
        if edit is not None:
            data = json.loads(path.read_text())
            edit(data["splits"][0])
            path.write_text(json.dumps(data))
        return path

    def results(self) -> Path:
        out = self.tmp / "res"
        assert main(["train", "-m", "test-brightness", "-d", "mine", "-n", "2", "-o", str(out), "-q"]) == 0
        return out

    def run_folder(self) -> Path:
        return self.results() / "mine" / "test-brightness" / "split_00"

    def predictions(self, frame: pd.DataFrame) -> list:
        path = self.tmp / "preds.csv"
        frame.to_csv(path, index=False)
        return ["import", "-m", "ext", "-d", "mine", "--predictions", path, "--splits", self.split_file(), "-o", self.tmp / "imp"]

    def test_items(self) -> list[str]:
        return json.loads(self.split_file().read_text())["splits"][0]["test"]


def _bytes(w: Workspace, name: str, data: bytes) -> Workspace:
    (w.root / name).write_bytes(data)
    return w


def _truncate(w: Workspace, name: str) -> Workspace:
    data = (w.root / name).read_bytes()
    (w.root / name).write_bytes(data[: len(data) // 3])
    return w


def _tiny_image(w: Workspace) -> Workspace:
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(w.root / "img004.png")
    return w


def _leak(split):
    split["train"].append(split["test"][0])


def _damage(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


CASES = {
    # ---------------------------------------------------------------- datasets add
    "add: zero-byte labels CSV": lambda w: w.add(_damage(w.tmp / "empty.csv", "")),
    "add: header-only labels CSV": lambda w: w.add(_damage(w.tmp / "header.csv", "path,score\n")),
    "add: binary file as labels CSV": lambda w: w.add(_bytes(w, "x.bin", b"\x89\xff\xfe\x00" * 50) and w.root / "x.bin"),
    "add: labels CSV not found": lambda w: w.add(w.tmp / "nope.csv"),
    "add: --root not a folder": lambda w: ["datasets", "add", "mine", "--csv", w.csv, "--root", w.tmp / "nope", "--score-range", 1, 5],
    "add: --root without the images": lambda w: ["datasets", "add", "mine", "--csv", w.csv, "--root", w.tmp, "--score-range", 1, 5],
    "add: score range reversed": lambda w: ["datasets", "add", "mine", "--csv", w.csv, "--root", w.root, "--score-range", 5, 1],
    "add: no score column": lambda w: w.add(w.write_labels(w.labels.rename(columns={"score": "mos"}), "bad.csv")),
    "add: --std-column absent": lambda w: w.add(None, "--std-column", "sd"),
    "add: non-numeric score": lambda w: w.add(w.labels_with(3, "score", "good")),
    "add: missing score": lambda w: w.add(w.labels_with(3, "score", "")),
    "add: NaN score": lambda w: w.add(w.labels_with(3, "score", "nan")),
    "add: infinite score": lambda w: w.add(w.labels_with(3, "score", "inf")),
    "add: infinite std": lambda w: w.add(w.write_labels(w.labels.assign(sd=[1.0] * 19 + [float("inf")]), "bad.csv"), "--std-column", "sd"),
    "add: duplicate image rows": lambda w: w.add(w.write_labels(pd.concat([w.labels, w.labels.iloc[:2]]), "bad.csv")),
    "add: path outside --root": lambda w: w.add(w.labels_with(3, "path", "../img003.png")),
    "add: absolute image path": lambda w: w.add(w.labels_with(3, "path", str(w.root / "img003.png"))),
    "add: name with a colon": lambda w: ["datasets", "add", "my:db", "--csv", w.csv, "--root", w.root, "--score-range", 1, 5],
    "add: built-in name": lambda w: ["datasets", "add", "koniq", "--csv", w.csv, "--root", w.root, "--score-range", 1, 5],
    # ---------------------------------------------------------------- datasets check
    "check: unknown dataset": lambda w: ["datasets", "check", "minee"],
    "check: missing image": lambda w: (w.registered(), (w.root / "img002.png").unlink(), ["datasets", "check", "mine"])[-1],
    "check: zero-byte image": lambda w: ["datasets", "check", "mine"] if _bytes(w.registered(), "img002.png", b"") else None,
    "check: text saved as .png": lambda w: ["datasets", "check", "mine"] if _bytes(w.registered(), "img002.png", b"hello") else None,
    "check: truncated image": lambda w: ["datasets", "check", "mine"] if _truncate(w.registered(), "img002.png") else None,
    "check: infinite score edited in after add": lambda w: (
        w.registered(), w.labels_with(5, "score", "inf").replace(w.csv), ["datasets", "check", "mine"])[-1],
    # ---------------------------------------------------------------- splits
    "splits make: --repeats 0": lambda w: ["splits", "make", "-d", "mine", "-n", 0] if w.registered() else None,
    "splits make: --test 1.5": lambda w: ["splits", "make", "-d", "mine", "--test", 1.5] if w.registered() else None,
    "splits check: file not found": lambda w: ["splits", "check", w.tmp / "nope.json"],
    "splits check: not JSON": lambda w: ["splits", "check", _damage(w.tmp / "s.json", "{not json")],
    "splits check: train/test leak": lambda w: ["splits", "check", w.registered().split_file(_leak)],
    "splits check: empty test part": lambda w: ["splits", "check", w.registered().split_file(lambda s: s.update(test=[]))],
    "splits check: unknown item": lambda w: ["splits", "check", w.registered().split_file(lambda s: s["val"].append("x.png"))],
    "splits show: wrong format": lambda w: ["splits", "show", _damage(w.tmp / "s.json", json.dumps({"splits": 3}))],
    # ---------------------------------------------------------------- train
    "train: unknown method": lambda w: ["train", "-m", "brisk", "-d", "mine"] if w.registered() else None,
    "train: unknown parameter": lambda w: ["train", "-m", "brisque", "-d", "mine", "-p", "cc=1"] if w.registered() else None,
    "train: malformed parameter": lambda w: ["train", "-m", "brisque", "-d", "mine", "-p", "c_grid"] if w.registered() else None,
    "train: bad device": lambda w: ["train", "-m", "brisque", "-d", "mine", "--device", "gpu"] if w.registered() else None,
    "train: --only an absent split": lambda w: ["train", "-m", "test-brightness", "-d", "mine", "-n", 2, "--only", 7, "-o", w.tmp / "r"]
    if w.registered() else None,
    "train: image too small for brisque": lambda w: ["train", "-m", "brisque", "-d", "mine", "-n", 1, "-o", w.tmp / "r", "-q"]
    if _tiny_image(w.registered()) else None,
    "train: undecodable image": lambda w: ["train", "-m", "test-brightness", "-d", "mine", "-n", 1, "-o", w.tmp / "r", "-q"]
    if _bytes(w.registered(), "img002.png", b"GIF89a garbage") else None,
    "train: leaking split file": lambda w: ["train", "-m", "test-brightness", "-d", "mine", "--splits", w.registered().split_file(_leak),
                                            "-o", w.tmp / "r", "-q"],
    "train: split file of changed labels": lambda w: (
        w.registered(), (path := w.split_file()),
        _damage(w.csv, w.csv.read_text().replace("img000.png,1.0", "img000.png,1.5")),
        ["train", "-m", "test-brightness", "-d", "mine", "--splits", path, "-o", w.tmp / "r", "-q"])[-1],
    # ---------------------------------------------------------------- import
    "import: predictions file not found": lambda w: ["import", "-m", "x", "-d", "mine", "--predictions", w.tmp / "nope.csv"]
    if w.registered() else None,
    "import: no prediction column": lambda w: w.registered().predictions(pd.DataFrame({"item_id": w.test_items(), "pred": 1.0})),
    "import: a test item missing": lambda w: w.registered().predictions(pd.DataFrame({"item_id": w.test_items()[1:], "prediction": 1.0})),
    "import: NaN prediction": lambda w: w.registered().predictions(
        pd.DataFrame({"item_id": w.test_items(), "prediction": [np.nan] + [1.0] * (len(w.test_items()) - 1)})),
    "import: duplicate item": lambda w: w.registered().predictions(
        pd.DataFrame({"item_id": w.test_items() + w.test_items()[:1], "prediction": 1.0})),
    "import: items of another dataset": lambda w: w.registered().predictions(pd.DataFrame({"item_id": ["other.jpg"], "prediction": 1.0})),
    "import: empty predictions file": lambda w: ["import", "-m", "x", "-d", "mine", "--predictions", _damage(w.tmp / "p.csv", "")]
    if w.registered() else None,
    "import: non-integer split column": lambda w: w.registered().predictions(
        pd.DataFrame({"item_id": w.test_items(), "prediction": 1.0, "split": "first"})),
    # ---------------------------------------------------------------- eval / report
    "eval: no results folder": lambda w: ["eval", w.tmp / "nothing"],
    "eval: results folder without runs": lambda w: (w.tmp / "empty").mkdir() or ["eval", w.tmp / "empty"],
    "eval: broken manifest": lambda w: ["eval", _damage(w.registered().run_folder() / "manifest.json", "{").parents[2]],
    "eval: truncated predictions": lambda w: (
        (folder := w.registered().run_folder()),
        _damage(folder / "predictions.csv", "\n".join((folder / "predictions.csv").read_text().splitlines()[:3])),
        ["eval", folder.parents[2]])[-1],
    "eval: mistyped low-quality rule": lambda w: ["eval", w.registered().results(), "--low-quality-rule", "quantil"],
    "report: no results folder": lambda w: ["report", w.tmp / "nothing", "--out", w.tmp / "rep"],
    "report: predictions without columns": lambda w: (
        (folder := w.registered().run_folder()), _damage(folder / "predictions.csv", "a,b\n1,2\n"),
        ["report", folder.parents[2], "--out", w.tmp / "rep"])[-1],
    "report: file where the output folder goes": lambda w: (
        (out := w.registered().results()), _damage(w.tmp / "rep", "x"), ["report", out, "--out", w.tmp / "rep" / "sub"])[-1],
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_exit_code_2(case, tmp_path, capsys):
    args = CASES[case](Workspace(tmp_path))
    assert args is not None
    capsys.readouterr()  # the set-up's own output
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert code == 2, (case, err)
    assert "Traceback" not in err, (case, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), (case, err)


def test_the_readme_states_the_catalogue_size():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f"a catalogue of {len(CASES)} bad inputs" in readme
    assert len(CASES) >= 30
