"""`check_dataset`: missing, truncated and unlabelled files are each named."""

from __future__ import annotations

import json

import numpy as np
import openpyxl
import pytest
import scipy.io
from PIL import Image, ImageFile

from biqa_bench.datasets import load_dataset
from biqa_bench.datasets.check import CheckReport, check_dataset


def _jpeg(path, seed=0, size=(64, 48)):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG", quality=90)
    return path


def _spaq(root, n=6):
    root.mkdir(parents=True, exist_ok=True)
    (root / "Annotations").mkdir()
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Image name", "MOS", "Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness"])
    for k in range(1, n + 1):
        sheet.append([f"{k:05d}.jpg", 10.0 * k, 50, 50, 50, 50, 50])
    book.save(root / "Annotations" / "MOS and Image attribute scores.xlsx")
    for k in range(1, n + 1):
        _jpeg(root / "TestImage" / f"{k:05d}.jpg", seed=k)
    return root


def test_clean_dataset_is_ok(tmp_path):
    root = _spaq(tmp_path / "spaq")
    calls = []
    report = check_dataset(load_dataset("spaq", root), workers=2, progress=lambda done, total: calls.append((done, total)))
    assert isinstance(report, CheckReport)
    assert report.ok and report.n_items == 6 and report.n_contents == 6
    assert (report.missing, report.unreadable, report.unlabelled) == ([], [], [])
    assert (report.score_min, report.score_max) == (10.0, 60.0)
    assert calls[-1] == (6, 6)
    assert "all 6 images" in report.summary()


def test_missing_truncated_and_unlabelled_are_named(tmp_path):
    root = _spaq(tmp_path / "spaq")
    (root / "TestImage" / "00002.jpg").unlink()
    truncated = root / "TestImage" / "00003.jpg"
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    (root / "TestImage" / "00004.jpg").write_bytes(b"not an image at all")
    _jpeg(root / "TestImage" / "99999.jpg")  # on disk, in no label
    (root / "TestImage" / "readme.txt").write_text("not an image")  # not an image: ignored
    ImageFile.LOAD_TRUNCATED_IMAGES = True  # as some training code sets it; check must not be fooled
    try:
        report = check_dataset(load_dataset("spaq", root), workers=2)
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False
    assert not report.ok
    assert report.missing == ["TestImage/00002.jpg"]
    assert report.unreadable == ["TestImage/00003.jpg", "TestImage/00004.jpg"]
    assert "truncated" in report.errors["TestImage/00003.jpg"].lower()
    assert report.unlabelled == ["TestImage/99999.jpg"]
    assert report.broken == ["TestImage/00002.jpg", "TestImage/00003.jpg", "TestImage/00004.jpg"]
    summary = report.summary()
    assert "1 missing (TestImage/00002.jpg)" in summary and "2 unreadable" in summary and "1 unlabelled" in summary
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is False and data["n_items"] == 6
    assert data["missing"] == ["TestImage/00002.jpg"] and data["unlabelled"] == ["TestImage/99999.jpg"]


def test_live_reference_copies_are_not_unlabelled(tmp_path):
    root = tmp_path / "live"
    root.mkdir()
    counts = [227, 233, 174, 174, 174]
    orgs = np.zeros(982)
    orgs[226] = 1  # jp2k/img227.bmp is a reference copy
    scipy.io.savemat(root / "dmos_realigned.mat", {"dmos_new": np.full((1, 982), 40.0), "orgs": orgs[None, :],
                                                  "dmos_std": np.ones((1, 982))})
    refnames = np.empty((1, 982), dtype=object)
    for i in range(982):
        refnames[0, i] = f"ref{i % 29}.bmp"
    scipy.io.savemat(root / "refnames_all.mat", {"refnames_all": refnames})
    folder = root / "jp2k"
    folder.mkdir()
    for k in (1, 2, 227):
        Image.new("RGB", (4, 4)).save(folder / f"img{k}.bmp")
    Image.new("RGB", (4, 4)).save(folder / "img999.bmp")
    report = check_dataset(load_dataset("live", root))
    assert report.n_items == sum(counts) - 1 and report.n_excluded == 1
    assert report.unlabelled == ["jp2k/img999.bmp"]
    assert len(report.missing) == report.n_items - 2
    assert report.n_contents == 29


@pytest.mark.parametrize("workers", [1, 3])
def test_workers_give_the_same_report(tmp_path, workers):
    root = _spaq(tmp_path / "spaq")
    (root / "TestImage" / "00005.jpg").write_bytes(b"\xff\xd8\xff")
    report = check_dataset(load_dataset("spaq", root), workers=workers)
    assert report.unreadable == ["TestImage/00005.jpg"] and report.missing == []
