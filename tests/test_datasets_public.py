"""The eight public-database parsers, on tiny replicas of each official layout.

BID, TID2013 and CSIQ use the real label files of ../shared/fixtures/real-labels; the others
write their label files in the official format (.mat with scipy, .xlsx with openpyxl, CSV).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
import scipy.io
from PIL import Image

from biqa_bench.datasets import load_dataset
from biqa_bench.datasets._files import PathResolver, excluded_paths, read_mat, roman_to_int
from biqa_bench.errors import DatasetError

_HERE = Path(__file__).resolve().parent
_CANDIDATES = [
    _HERE / "fixtures" / "real-labels",
    _HERE.parents[1] / "shared" / "fixtures" / "real-labels",
    Path("/work/shared/fixtures/real-labels"),
]
REAL_LABELS = next((p for p in _CANDIDATES if (p / "tid2013_mos_with_names.txt").is_file()), _CANDIDATES[0])


def _real(name: str) -> Path:
    path = REAL_LABELS / name
    if not path.is_file():
        pytest.skip(f"real label file {name} not found (tests/fixtures/real-labels or ../shared/fixtures/real-labels)")
    return path


def _image(path: Path, value: int = 128, size=(8, 6)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".png": "PNG"}[path.suffix.lower()]
    Image.new("RGB", size, (value, value // 2, 255 - value)).save(path, format=fmt)
    return path


def _xlsx(path: Path, sheets: dict[str, list[list]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


def _cell(names) -> np.ndarray:
    cell = np.empty((len(names), 1), dtype=object)
    for i, name in enumerate(names):
        cell[i, 0] = name
    return cell


# ---------------------------------------------------------------- shared helpers


def test_path_resolver_ignores_case_in_every_component(tmp_path):
    _image(tmp_path / "Images" / "Sub" / "A01.BMP")
    resolver = PathResolver(tmp_path)
    assert resolver.resolve("Images/Sub/A01.BMP") == "Images/Sub/A01.BMP"
    assert resolver.resolve("images/sub/a01.bmp") == "Images/Sub/A01.BMP"
    assert resolver.resolve("images/sub/a02.bmp") is None
    assert resolver.resolve_or_keep("images/sub/a02.bmp") == "images/sub/a02.bmp"


def test_roman_numerals():
    assert [roman_to_int(r) for r in ["I", "II", "III", "IV", "V", "VI", "IX"]] == [1, 2, 3, 4, 5, 6, 9]


def test_read_mat_names_the_missing_variable(tmp_path):
    path = tmp_path / "x.mat"
    scipy.io.savemat(path, {"other": np.arange(3.0)})
    with pytest.raises(DatasetError, match=r"x\.mat.*'wanted'"):
        read_mat(path, ["wanted"])


def test_truncated_mat_file_is_named(tmp_path):
    path = tmp_path / "AllMOS_release.mat"
    path.write_bytes(b"garbage\n")  # a failed download; scipy raises MatReadError
    with pytest.raises(DatasetError, match=r"AllMOS_release\.mat: cannot read MATLAB file .*re-download"):
        read_mat(path, ["AllMOS_release"])


def test_label_files_without_images_are_an_error_not_an_empty_dataset(tmp_path):
    (tmp_path / "mos_with_names.txt").write_text("")
    with pytest.raises(DatasetError, match="tid2013.*list no images.*official"):
        load_dataset("tid2013", root=tmp_path)


def test_missing_label_file_names_it_and_the_download(tmp_path):
    with pytest.raises(DatasetError, match=r"mos_with_names\.txt.*Download"):
        load_dataset("tid2013", tmp_path)


# ---------------------------------------------------------------- BID (real labels)


@pytest.fixture
def bid_root(tmp_path):
    root = tmp_path / "BID"
    root.mkdir()
    shutil.copy(_real("bid_DatabaseGrades.xls"), root / "DatabaseGrades.xls")
    return root


def test_bid_real_labels(bid_root):
    ds = load_dataset("bid", bid_root)
    items = ds.items
    assert len(items) == ds.info.n_items == 586
    numbers = {int(i[len("DatabaseImage") : -4]) for i in items["item_id"]}
    assert numbers == set(range(1, 591)) - {2, 346, 413, 439}
    assert items["content_id"].nunique() == 586
    assert ds.info.kind == "authentic" and ds.info.higher_is_better
    assert items["score"].between(0, 5).all()
    np.testing.assert_allclose(items["quality"], items["score"] / 5 * 100)
    # first row of the sheet: image 1, MOS 4.51664 from 13 grades
    first = items.set_index("item_id").loc["DatabaseImage0001.JPG"]
    assert first["score"] == pytest.approx(4.51664, abs=1e-5)
    assert first["n_ratings"] == 13
    grades = [4.129886, 4.226695, 4.076923, 4.675, 4.583859, 5, 5, 4.722573, 4.564943, 4.627995, 5, 5, 3.108449]
    assert first["std"] == pytest.approx(np.std(grades, ddof=1), abs=1e-5)


def test_bid_images_in_subfolder_and_any_case(bid_root):
    _image(bid_root / "ImageDatabase" / "DatabaseImage0001.JPG")
    _image(bid_root / "ImageDatabase" / "databaseimage0003.jpg")
    paths = load_dataset("bid", bid_root).items.set_index("item_id")["path"]
    assert paths["DatabaseImage0001.JPG"] == "ImageDatabase/DatabaseImage0001.JPG"
    assert paths["DatabaseImage0003.JPG"] == "ImageDatabase/databaseimage0003.jpg"
    assert paths["DatabaseImage0004.JPG"] == "DatabaseImage0004.JPG"  # absent: kept, check reports it


# ---------------------------------------------------------------- TID2013 (real labels)


@pytest.fixture
def tid_root(tmp_path):
    root = tmp_path / "tid2013"
    root.mkdir()
    shutil.copy(_real("tid2013_mos_with_names.txt"), root / "mos_with_names.txt")
    return root


def test_tid2013_real_labels(tid_root):
    ds = load_dataset("tid2013", tid_root)
    items = ds.items
    assert len(items) == 3000 and ds.info.kind == "synthetic"
    assert items["content_id"].nunique() == 25
    assert sorted(items["content_id"].unique()) == [f"i{k:02d}" for k in range(1, 26)]
    assert items["distortion_id"].nunique() == 24 and items["distortion"].nunique() == 24
    assert sorted(items["level"].unique()) == [1, 2, 3, 4, 5]
    assert (items.groupby("content_id").size() == 120).all()
    np.testing.assert_allclose(items["quality"], items["score"] / 9 * 100)
    first = items.iloc[0]
    assert (first["item_id"], first["score"], first["distortion_id"], first["level"]) == ("i01_01_1.bmp", 5.51429, 1, 1)


def test_tid2013_resolves_case_and_reads_std(tid_root):
    # label says I01_01_1.bmp / i01_01_2.bmp; disk has them in the other case
    _image(tid_root / "Distorted_Images" / "i01_01_1.bmp")
    _image(tid_root / "Distorted_Images" / "I01_01_2.BMP")
    stds = np.linspace(0.5, 1.5, 3000)
    (tid_root / "mos_std.txt").write_bytes("".join(f"{v:.5f}\r\n" for v in stds).encode())
    items = load_dataset("tid2013", tid_root).items.set_index("item_id")
    assert items.loc["i01_01_1.bmp", "path"] == "Distorted_Images/i01_01_1.bmp"
    assert items.loc["i01_01_2.bmp", "path"] == "Distorted_Images/I01_01_2.BMP"
    np.testing.assert_allclose(items["std"].to_numpy(), np.round(stds, 5))


def test_tid2013_malformed_line_names_file_and_line(tmp_path):
    (tmp_path / "mos_with_names.txt").write_bytes(b"5.1 i01_01_1.bmp\r\nfive i01_01_2.bmp\r\n")
    with pytest.raises(DatasetError, match=r"mos_with_names\.txt, line 2"):
        load_dataset("tid2013", tmp_path)


# ---------------------------------------------------------------- CSIQ (real labels)


@pytest.fixture
def csiq_root(tmp_path):
    root = tmp_path / "CSIQ"
    root.mkdir()
    shutil.copy(_real("csiq_dmos_workbook.xlsx"), root / "csiq.DMOS.xlsx")
    return root


def test_csiq_real_labels(csiq_root):
    ds = load_dataset("csiq", csiq_root)
    items = ds.items
    assert len(items) == 866 and items["content_id"].nunique() == 30
    assert "1600" in set(items["content_id"])  # integer reference names become text
    assert items["distortion"].value_counts().to_dict() == {
        "awgn": 150, "jpeg": 150, "jpeg2000": 150, "fnoise": 150, "blur": 150, "contrast": 116
    }
    assert ds.info.score_type == "DMOS" and not ds.info.higher_is_better
    np.testing.assert_allclose(items["quality"], (1 - items["score"]) * 100)
    # more distortion, higher DMOS, lower quality: level 5 of noise is worse than level 1 on average
    noise = items[items["distortion"] == "awgn"].groupby("level")["quality"].mean()
    assert noise[1] > noise[5]
    row = items.set_index("item_id").loc["1600.AWGN.1.png"]
    assert row["path"] == "dst_imgs/awgn/1600.AWGN.1.png"
    assert row["score"] == pytest.approx(0.061989406314069996)
    assert set(items.loc[items["distortion"] == "jpeg2000", "path"].str.split("/").str[-1].str.split(".").str[1]) == {"jpeg2000"}


def test_csiq_case_insensitive_image_path(csiq_root):
    _image(csiq_root / "DST_IMGS" / "AWGN" / "1600.awgn.1.PNG")
    items = load_dataset("csiq", csiq_root).items.set_index("item_id")
    assert items.loc["1600.AWGN.1.png", "path"] == "DST_IMGS/AWGN/1600.awgn.1.PNG"


def test_csiq_wrong_header_names_file_and_column(tmp_path):
    header = [None, None, None, "img", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos"]
    _xlsx(tmp_path / "csiq.DMOS.xlsx", {"all_by_image": [[None], [None], [None], header,
                                                           [None, None, None, 1600, 1, "noise", 1, 0.1, 0.2]]})
    with pytest.raises(DatasetError, match=r"csiq\.DMOS\.xlsx.*'image'"):
        load_dataset("csiq", tmp_path)


# ---------------------------------------------------------------- KonIQ-10k


def _koniq_counts(rng, n):
    counts = rng.integers(0, 40, size=(n, 5))
    counts[:, 2] += 2
    return counts


def _sample_sd(counts) -> np.ndarray:
    """SD of the individual 1-5 ratings, ddof=1: the official files' SD (checked on the real sets file)."""
    return np.array([np.std(np.repeat(np.arange(1, 6), row), ddof=1) for row in counts])


@pytest.fixture
def koniq_root(tmp_path):
    rng = np.random.default_rng(0)
    names = [f"{1000 + i}.jpg" for i in range(6)]
    counts = _koniq_counts(rng, 6)
    mos = counts @ np.arange(1, 6) / counts.sum(1)
    sd = _sample_sd(counts)
    zscore = rng.uniform(5, 95, size=6)
    scores = pd.DataFrame({"image_name": names, **{f"c{k+1}": counts[:, k] for k in range(5)},
                           "c_total": counts.sum(1), "MOS": mos, "SD": sd, "MOS_zscore": zscore})
    root = tmp_path / "koniq10k"
    root.mkdir()
    scores.to_csv(root / "koniq10k_scores_and_distributions.csv", index=False, quoting=1)
    # the sets file: c1..c5 as fractions, MOS = the 0-100 z-score MOS, SD the same 1-5 SD
    fractions = counts / counts.sum(1, keepdims=True)
    sets = pd.DataFrame({"image_name": names, **{f"c{k+1}": fractions[:, k] for k in range(5)},
                         "c_total": counts.sum(1), "MOS": zscore, "SD": sd,
                         "set": ["training", "training", "training", "validation", "test", "test"]})
    for name in names[:3]:
        _image(root / "1024x768" / name)
    return root, scores, sets


def test_koniq_zscore_default(koniq_root):
    root, scores, _ = koniq_root
    ds = load_dataset("koniq", root)
    assert ds.info.score_range == (0.0, 100.0)
    np.testing.assert_allclose(ds.items["score"], scores["MOS_zscore"])
    np.testing.assert_allclose(ds.items["quality"], scores["MOS_zscore"])
    assert list(ds.items["path"]) == [f"1024x768/{n}" for n in scores["image_name"]]
    assert list(ds.items["n_ratings"]) == list(scores["c_total"])
    assert "official_set" not in ds.items.columns


def test_koniq_mos_scale(koniq_root):
    root, scores, _ = koniq_root
    ds = load_dataset("koniq:scale=mos", root)
    assert ds.spec == "koniq:scale=mos" and ds.info.score_range == (1.0, 5.0)
    np.testing.assert_allclose(ds.items["score"], scores["MOS"])
    np.testing.assert_allclose(ds.items["quality"], (scores["MOS"] - 1) / 4 * 100)
    np.testing.assert_allclose(ds.items["std"], scores["SD"])


def test_koniq_official_sets_and_mos_from_distribution(koniq_root):
    root, scores, sets = koniq_root
    (root / "koniq10k_scores_and_distributions.csv").unlink()
    sets.to_csv(root / "koniq10k_distributions_sets.csv", index=False)
    ds = load_dataset("koniq", root)
    np.testing.assert_allclose(ds.items["score"], sets["MOS"])
    assert "std" not in ds.items.columns  # the file's SD is on 1-5, not on this 0-100 MOS
    assert list(ds.items["official_set"]) == ["train", "train", "train", "val", "test", "test"]
    mos = load_dataset("koniq:scale=mos", root).items
    np.testing.assert_allclose(mos["score"], scores["MOS"])  # sum_k k * fraction_k
    np.testing.assert_allclose(mos["std"], scores["SD"])
    np.testing.assert_allclose(mos["quality"], (scores["MOS"] - 1) / 4 * 100)


def test_koniq_sd_is_the_sample_sd_of_the_ratings(koniq_root):
    """Both scales from the two files agree, and std is the ddof=1 SD of the individual ratings."""
    root, scores, sets = koniq_root
    sets.to_csv(root / "koniq10k_distributions_sets.csv", index=False)
    both = load_dataset("koniq:scale=mos", root).items
    (root / "koniq10k_scores_and_distributions.csv").unlink()
    sets_only = load_dataset("koniq:scale=mos", root).items
    np.testing.assert_allclose(sets_only["score"], both["score"])
    np.testing.assert_allclose(sets_only["std"], both["std"])
    counts = scores[[f"c{k}" for k in range(1, 6)]].to_numpy()
    ratings = [np.repeat(np.arange(1, 6), row) for row in counts]
    np.testing.assert_allclose(sets_only["std"], [np.std(r, ddof=1) for r in ratings])
    assert not np.allclose(sets_only["std"], [np.std(r) for r in ratings])


def test_koniq_both_files_and_small_images(koniq_root):
    root, scores, sets = koniq_root
    sets.to_csv(root / "koniq10k_distributions_sets.csv", index=False)
    ds = load_dataset("koniq:images=512x384", root)
    np.testing.assert_allclose(ds.items["score"], scores["MOS_zscore"])
    assert ds.items["official_set"].tolist()[3] == "val"
    assert ds.items["path"].str.startswith("512x384/").all()


def test_koniq_errors(koniq_root, tmp_path):
    root, scores, _ = koniq_root
    with pytest.raises(DatasetError, match="scale"):
        load_dataset("koniq:scale=raw", root)
    scores.rename(columns={"MOS_zscore": "zscore"}).to_csv(root / "koniq10k_scores_and_distributions.csv", index=False)
    with pytest.raises(DatasetError, match=r"koniq10k_scores_and_distributions\.csv.*'MOS_zscore'"):
        load_dataset("koniq", root)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="koniq10k_scores_and_distributions.csv"):
        load_dataset("koniq", empty)


# ---------------------------------------------------------------- CLIVE


@pytest.fixture
def clive_root(tmp_path):
    root = tmp_path / "ChallengeDB_release"
    names = [f"t{k}.bmp" for k in range(1, 8)] + [f"{k}.{'bmp' if k % 2 else 'JPG'}" for k in range(3, 1165)]
    assert len(names) == 1169
    rng = np.random.default_rng(1)
    mos = rng.uniform(3, 92, size=(1, 1169))
    std = rng.uniform(10, 25, size=(1, 1169))
    (root / "Data").mkdir(parents=True)
    scipy.io.savemat(root / "Data" / "AllImages_release.mat", {"AllImages_release": _cell(names)})
    scipy.io.savemat(root / "Data" / "AllMOS_release.mat", {"AllMOS_release": mos})
    scipy.io.savemat(root / "Data" / "AllStdDev_release.mat", {"AllStdDev_release": std})
    _image(root / "Images" / "3.bmp")
    _image(root / "Images" / "4.jpg")  # the label says 4.JPG
    _image(root / "Images" / "trainingImages" / "t1.bmp")
    return root, names, mos.ravel(), std.ravel()


def test_clive_excludes_training_images(clive_root):
    root, names, mos, std = clive_root
    ds = load_dataset("clive", root)
    items = ds.items
    assert len(items) == ds.info.n_items == 1162
    assert not items["item_id"].str.match(r"t\d\.bmp").any()
    assert list(items["item_id"]) == names[7:]
    np.testing.assert_allclose(items["score"], mos[7:])
    np.testing.assert_allclose(items["quality"], mos[7:])
    np.testing.assert_allclose(items["std"], std[7:])
    paths = items.set_index("item_id")["path"]
    assert paths["3.bmp"] == "Images/3.bmp" and paths["4.JPG"] == "Images/4.jpg"
    assert "Images/trainingImages/t1.bmp" in excluded_paths(items)


def test_clive_wrong_variable(clive_root):
    root, *_ = clive_root
    scipy.io.savemat(root / "Data" / "AllMOS_release.mat", {"MOS": np.zeros((1, 1169))})
    with pytest.raises(DatasetError, match=r"AllMOS_release\.mat.*'AllMOS_release'"):
        load_dataset("clive", root)


# ---------------------------------------------------------------- SPAQ


@pytest.fixture
def spaq_root(tmp_path):
    root = tmp_path / "SPAQ"
    header = ["Image name", "MOS", "Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness"]
    rows = [[f"{k:05d}.jpg", 10.0 * k, 1.0 * k, 2.0 * k, 3.0 * k, 4.0 * k, 5.0 * k] for k in range(1, 6)]
    _xlsx(root / "Annotations" / "MOS and Image attribute scores.xlsx", {"Sheet1": [header, *rows]})
    _image(root / "TestImage" / "00001.jpg")
    return root


def test_spaq_scores_and_attributes(spaq_root):
    ds = load_dataset("spaq", spaq_root)
    items = ds.items
    assert list(items["item_id"]) == [f"{k:05d}.jpg" for k in range(1, 6)]
    np.testing.assert_allclose(items["score"], [10, 20, 30, 40, 50])
    np.testing.assert_allclose(items["quality"], items["score"])
    np.testing.assert_allclose(items["sharpness"], [5, 10, 15, 20, 25])
    assert {"brightness", "colorfulness", "contrast", "noisiness", "sharpness"} <= set(items.columns)
    assert items["path"].iloc[0] == "TestImage/00001.jpg"


def test_spaq_wrong_header(tmp_path):
    _xlsx(tmp_path / "Annotations" / "MOS and Image attribute scores.xlsx",
          {"Sheet1": [["Image name", "Score", "Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness"]]})
    with pytest.raises(DatasetError, match=r"MOS and Image attribute scores\.xlsx.*'MOS'"):
        load_dataset("spaq", tmp_path)


# ---------------------------------------------------------------- CID2013


@pytest.fixture
def cid_root(tmp_path):
    root = tmp_path / "CID2013"
    # header in row 1; "Image set specific  MOS" has two spaces; scene C04 recurs in sets I and IV
    header = ["Source_ID", "Image set specific  MOS", "Realigned MOS", "Sharpness"]
    rows = [
        ["IS_I_C01_D01", 55.0, 60.5, 1.0],
        ["IS_I_C01_D02", 40.0, 45.0, 1.0],
        ["IS_I_C04_D06", 50.0, 54.3, 1.0],
        ["IS_IV_C04_D07", 70.0, 69.4, 1.0],
        ["IS_VI_C06_D01", 25.0, 29.8, 1.0],
        ["IS_VI_C06_D10", 5.0, -2.5, 1.0],
    ]
    _xlsx(root / "CID2013 data - version 12112014.xlsx", {"Readme": [["x"]], "CID2013 MOS": [header, *rows]})
    _image(root / "IS1" / "co1" / "IS_I_C01_D01.jpg")
    _image(root / "is1" / "CO4" / "is_i_c04_d06.JPG")
    _image(root / "IS4" / "co4" / "IS_IV_C04_D07.jpg")
    _image(root / "elsewhere" / "IS_VI_C06_D01.jpg")
    return root


def test_cid2013_realigned_mos_and_scenes(cid_root):
    ds = load_dataset("cid2013", cid_root)
    items = ds.items.set_index("item_id")
    np.testing.assert_allclose(items["score"], [60.5, 45.0, 54.3, 69.4, 29.8, -2.5])
    np.testing.assert_allclose(items["set_mos"], [55.0, 40.0, 50.0, 70.0, 25.0, 5.0])
    np.testing.assert_allclose(items["quality"], items["score"])  # nominal 0-100, higher is better
    assert items.loc["IS_VI_C06_D10", "quality"] < 0  # realigned MOS can be negative; kept as is
    # one scene shot in two image sets is one content, so it never straddles train and test
    assert list(items["content_id"]) == ["C01", "C01", "C04", "C04", "C06", "C06"]
    assert list(items["image_set"]) == ["IS1", "IS1", "IS1", "IS4", "IS6", "IS6"]
    assert ds.info.n_contents == 8
    assert items.loc["IS_I_C01_D01", "path"] == "IS1/co1/IS_I_C01_D01.jpg"
    assert items.loc["IS_I_C04_D06", "path"] == "is1/CO4/is_i_c04_d06.JPG"
    assert items.loc["IS_IV_C04_D07", "path"] == "IS4/co4/IS_IV_C04_D07.jpg"
    assert items.loc["IS_VI_C06_D01", "path"] == "elsewhere/IS_VI_C06_D01.jpg"
    assert items.loc["IS_I_C01_D02", "path"] == "IS1/co1/IS_I_C01_D02.jpg"  # missing: nominal path


def test_cid2013_scene_splits_keep_a_scene_on_one_side(cid_root):
    from biqa_bench.splits import make_splits

    ds = load_dataset("cid2013", cid_root)
    scene = ds.items.set_index("item_id")["content_id"]
    for split in make_splits(ds, seed=3, repeats=3, test_fraction=0.34, val_fraction=0.0).splits:
        assert not set(scene[split.train]) & set(scene[split.test])


def test_cid2013_bad_source_id_names_the_form(tmp_path):
    _xlsx(tmp_path / "CID2013 data - version 12112014.xlsx",
          {"CID2013 MOS": [["Source_ID", "Realigned MOS"], ["IS1_C01_D01", 50.0]]})
    with pytest.raises(DatasetError, match=r"IS1_C01_D01.*IS_<roman>_C<nn>_D<nn>"):
        load_dataset("cid2013", tmp_path)


def test_cid2013_missing_sheet(tmp_path):
    _xlsx(tmp_path / "CID2013 data - version 12112014.xlsx", {"Sheet1": [["Source_ID", "Realigned MOS"]]})
    with pytest.raises(DatasetError, match=r"version 12112014\.xlsx.*'CID2013 MOS'"):
        load_dataset("cid2013", tmp_path)


# ---------------------------------------------------------------- LIVE


LIVE_FOLDERS = [("jp2k", 227, 169), ("jpeg", 233, 175), ("wn", 174, 145), ("gblur", 174, 145), ("fastfading", 174, 145)]


@pytest.fixture
def live_root(tmp_path):
    """982 entries in the official order, 1 x 982 arrays as distributed. As in the real files, the
    reference copies (orgs == 1) sit at scattered positions in jp2k/ and jpeg/ (58 each) and are
    the last 29 entries of wn/, gblur/ and fastfading/."""
    rng = np.random.default_rng(2)
    references = [f"ref{r:02d}.bmp" for r in range(29)]
    refnames, orgs = [], []
    for folder, count, distorted in LIVE_FOLDERS:
        refnames += [references[k % 29] for k in range(count)]
        flags = np.zeros(count)
        if folder in ("jp2k", "jpeg"):
            flags[rng.choice(count, size=count - distorted, replace=False)] = 1
        else:
            flags[distorted:] = 1
        orgs += list(flags)
    orgs = np.array(orgs, dtype=float)
    dmos_new = np.where(orgs == 1, 0.0, rng.uniform(10, 90, size=982))
    dmos = np.where(orgs == 1, 0.0, dmos_new + 3.0)
    root = tmp_path / "databaserelease2"
    root.mkdir()
    scipy.io.savemat(root / "dmos_realigned.mat", {"dmos_new": dmos_new[None, :], "orgs": orgs[None, :],
                                                  "dmos_std": np.full((1, 982), 7.0)})
    scipy.io.savemat(root / "dmos.mat", {"dmos": dmos[None, :], "orgs": orgs[None, :]})
    scipy.io.savemat(root / "refnames_all.mat", {"refnames_all": _cell(refnames).T})
    return root, dmos_new, dmos, orgs, refnames


def _live_entry(folder: str, k: int) -> int:
    """0-based position of <folder>/img<k>.bmp among the 982 entries."""
    offset = 0
    for name, count, _ in LIVE_FOLDERS:
        if name == folder:
            return offset + k - 1
        offset += count
    raise KeyError(folder)


def test_live_excludes_reference_copies(live_root):
    root, dmos_new, _, orgs, refnames = live_root
    ds = load_dataset("live", root)
    items = ds.items
    assert len(items) == ds.info.n_items == 779
    assert items["content_id"].nunique() == 29
    assert items["distortion"].value_counts().to_dict() == {f: d for f, _, d in LIVE_FOLDERS}
    np.testing.assert_allclose(items["score"], dmos_new[orgs == 0])
    np.testing.assert_allclose(items["quality"], 100 - dmos_new[orgs == 0])
    assert (items["std"] == 7.0).all()
    by_id = items.set_index("item_id")
    for folder, k in [("jpeg", 1), ("jpeg", 2), ("jp2k", 227), ("wn", 1), ("fastfading", 145)]:
        entry = _live_entry(folder, k)
        name = f"{folder}/img{k}.bmp"
        if orgs[entry] == 1:
            assert name not in by_id.index and name in excluded_paths(items)
        else:
            assert by_id.loc[name, "score"] == pytest.approx(dmos_new[entry])
            assert by_id.loc[name, "content_id"] == Path(refnames[entry]).stem
    copies = [k for k in range(1, 228) if orgs[_live_entry("jp2k", k)] == 1]
    assert len(copies) == 58 and f"jp2k/img{copies[0]}.bmp" in excluded_paths(items)
    assert "wn/img146.bmp" in excluded_paths(items) and "wn/img145.bmp" in by_id.index


def test_live_original_dmos_option(live_root):
    root, _, dmos, orgs, _ = live_root
    ds = load_dataset("live:dmos=original", root)
    assert ds.spec == "live:dmos=original" and "std" not in ds.items.columns
    np.testing.assert_allclose(ds.items["score"], dmos[orgs == 0])


def test_live_missing_realigned_file_suggests_the_option(live_root):
    root, *_ = live_root
    (root / "dmos_realigned.mat").unlink()
    with pytest.raises(DatasetError, match=r"dmos_realigned\.mat.*live:dmos=original"):
        load_dataset("live", root)


def test_live_wrong_length(live_root):
    root, *_ = live_root
    scipy.io.savemat(root / "dmos.mat", {"dmos": np.zeros((1, 900)), "orgs": np.zeros((1, 900))})
    with pytest.raises(DatasetError, match="982"):
        load_dataset("live:dmos=original", root)


def test_live_image_case(live_root):
    root, *_ = live_root
    _image(root / "JP2K" / "IMG1.BMP")
    assert load_dataset("live", root).items.set_index("item_id").loc["jp2k/img1.bmp", "path"] == "JP2K/IMG1.BMP"
