"""Whole-dataset runs (`biqa import --whole`): a Toyama-like full-reference case with subjective
labels registered through `biqa datasets add`, and PSNR / SSIM predictions computed here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage, optimize, stats

from _cli_helpers import biqa, one_line_error

N_REFERENCES, LEVELS = 6, 4


def psnr(reference: np.ndarray, distorted: np.ndarray) -> float:
    mse = np.mean((reference.astype(float) - distorted.astype(float)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def ssim(reference: np.ndarray, distorted: np.ndarray) -> float:
    import piq
    import torch

    def tensor(image):
        return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0

    return float(piq.ssim(tensor(distorted), tensor(reference), data_range=1.0))


@pytest.fixture
def fr_set(tmp_path):
    """48 distorted images (6 references x noise/blur x 4 levels), MOS 1-5 from noisy 'observers',
    PSNR and SSIM of each against its reference. Returns (root, labels CSV, frame)."""
    rng = np.random.default_rng(3)
    root = tmp_path / "fr"
    root.mkdir()
    rows = []
    for ref in range(N_REFERENCES):
        base = ndimage.gaussian_filter(rng.uniform(0, 255, (40, 40, 3)), sigma=(3, 3, 0))
        reference = np.clip((base - base.min()) / np.ptp(base) * 200 + 25, 0, 255).astype(np.uint8)
        for kind in ("noise", "blur"):
            for level in range(1, LEVELS + 1):
                if kind == "noise":
                    distorted = reference + rng.normal(0, 6 * level, reference.shape)
                else:
                    distorted = ndimage.gaussian_filter(reference.astype(float), sigma=(0.7 * level, 0.7 * level, 0))
                distorted = np.clip(distorted, 0, 255).astype(np.uint8)
                name = f"ref{ref}_{kind}{level}.png"
                Image.fromarray(distorted).save(root / name)
                row = {"path": name, "ref": f"ref{ref}", "psnr": psnr(reference, distorted),
                       "ssim": ssim(reference, distorted)}
                # 15 observers whose opinion follows both fidelities loosely
                perceived = 0.5 / (1 + np.exp(-(row["psnr"] - 28) / 4)) + 0.5 * row["ssim"]
                votes = np.clip(1 + 4 * perceived + rng.normal(0, 0.8, 15), 1, 5)
                rows.append({**row, "mos": round(float(votes.mean()), 4)})
    frame = pd.DataFrame(rows)[["path", "mos", "ref", "psnr", "ssim"]]
    csv = tmp_path / "labels.csv"
    frame[["path", "mos", "ref"]].to_csv(csv, index=False)
    return root, csv, frame


def register(capsys, fr_set):
    root, csv, frame = fr_set
    code, _, err = biqa(capsys, "datasets", "add", "toyama", "--csv", csv, "--root", root, "--score-column", "mos",
                        "--content-column", "ref", "--score-range", "1", "5")
    assert code == 0, err
    return frame


def predictions_csv(tmp_path, frame, metric, drop=0) -> Path:
    path = tmp_path / f"{metric}.csv"
    frame.iloc[drop:].rename(columns={"path": "item_id", metric: "prediction"})[["item_id", "prediction"]].to_csv(
        path, index=False)
    return path


def logistic4(x, b1, b2, b3, b4):  # VQEG / Sheikh et al. 2006, written here from the formula
    return b2 + (b1 - b2) / (1 + np.exp(-(x - b3) / np.abs(b4)))


def test_eval_of_whole_runs_is_scipy_on_the_whole_set(tmp_path, fr_set, capsys):
    frame = register(capsys, fr_set)
    out = tmp_path / "res"
    for metric in ("psnr", "ssim"):
        code, text, err = biqa(capsys, "import", "--method", metric, "--dataset", "toyama",
                               "--predictions", predictions_csv(tmp_path, frame, metric), "--whole", "-o", out)
        assert code == 0, err
        assert "48 items" in text
    manifest = json.loads((out / "toyama" / "ssim" / "whole" / "manifest.json").read_text())
    assert manifest["split"] == "whole" and manifest["n_missing"] == 0 and manifest["n_test"] == 48
    code, text, err = biqa(capsys, "eval", out, "--json")
    assert code == 0, err
    records = {r["method"]: r for r in json.loads(text) if r["subset"] == "test"}
    assert set(records) == {"psnr", "ssim"}
    mos = frame["mos"].to_numpy()
    for metric, record in records.items():
        prediction = frame[metric].to_numpy()
        assert record["split"] == "whole" and record["n"] == len(frame) == N_REFERENCES * 2 * LEVELS
        assert record["srocc"] == pytest.approx(stats.spearmanr(mos, prediction).statistic, abs=1e-4)
        assert record["krocc"] == pytest.approx(stats.kendalltau(mos, prediction).statistic, abs=1e-4)
        assert record["plcc_raw"] == pytest.approx(stats.pearsonr(mos, prediction).statistic, abs=1e-4)
        p0 = [mos.max(), mos.min(), prediction.mean(), prediction.std() / 4]
        params, _ = optimize.curve_fit(logistic4, prediction, mos, p0=p0, maxfev=20000)
        assert record["plcc"] == pytest.approx(stats.pearsonr(mos, logistic4(prediction, *params)).statistic, abs=1e-4)
    code, text, err = biqa(capsys, "eval", out)
    assert code == 0, err
    assert "whole" in text  # the splits column labels the whole-dataset runs


def test_missing_items_are_one_line_unless_allowed_then_counted_and_compared_on_common_items(tmp_path, fr_set, capsys):
    frame = register(capsys, fr_set)
    out = tmp_path / "res"
    partial = predictions_csv(tmp_path, frame, "ssim", drop=5)
    line = one_line_error(*biqa(capsys, "import", "-m", "ssim", "-d", "toyama", "--predictions", partial, "--whole",
                                "-o", out)[::2], str(partial), "5 of the 48", "--allow-missing")
    assert frame["path"][0] in line  # the first few missing are named
    assert not (out / "toyama" / "ssim").exists()
    code, text, err = biqa(capsys, "import", "-m", "ssim", "-d", "toyama", "--predictions", partial, "--whole",
                           "--allow-missing", "-o", out)
    assert code == 0 and "5 labelled items without a prediction left out" in text, err
    manifest = json.loads((out / "toyama" / "ssim" / "whole" / "manifest.json").read_text())
    assert manifest["n_missing"] == 5 and manifest["missing_items"] == sorted(frame["path"][:5])
    code, _, err = biqa(capsys, "import", "-m", "psnr", "-d", "toyama", "--predictions",
                        predictions_csv(tmp_path, frame, "psnr"), "--whole", "-o", out)
    assert code == 0, err
    code, text, err = biqa(capsys, "eval", out, "--json")
    records = {r["method"]: r for r in json.loads(text) if r["subset"] == "test"}
    assert records["psnr"]["n"] == records["ssim"]["n"] == 43  # PSNR compared on the items SSIM has
    common = frame.iloc[5:]
    assert records["psnr"]["srocc"] == pytest.approx(stats.spearmanr(common["mos"], common["psnr"]).statistic, abs=1e-4)
    code, text, err = biqa(capsys, "eval", out)
    assert "compared on the 43 items all of them predicted (5 predicted by only some left out)" in text


def test_import_whole_refuses_options_that_make_no_sense(tmp_path, fr_set, capsys):
    frame = register(capsys, fr_set)
    csv = predictions_csv(tmp_path, frame, "psnr")
    one_line_error(*biqa(capsys, "import", "-m", "psnr", "-d", "toyama", "--predictions", csv,
                         "--allow-missing", "-o", tmp_path / "r")[::2], "--allow-missing", "--whole")
    one_line_error(*biqa(capsys, "import", "-m", "psnr", "-d", "toyama", "--predictions", csv, "--predictions", csv,
                         "--whole", "-o", tmp_path / "r")[::2], "one --predictions file")


@pytest.fixture
def whole_results(tmp_path, fr_set, capsys):
    """PSNR and SSIM as whole-dataset runs (SSIM missing 5 items) beside test-brightness split runs
    on the same dataset."""
    frame = register(capsys, fr_set)
    out = tmp_path / "res"
    for metric, drop in (("psnr", 0), ("ssim", 5)):
        code, _, err = biqa(capsys, "import", "-m", metric, "-d", "toyama", "--predictions",
                            predictions_csv(tmp_path, frame, metric, drop=drop), "--whole", "--allow-missing", "-o", out)
        assert code == 0, err
    return out, frame


def test_ranges_low_quality_and_split_runs_beside_whole_runs(whole_results, capsys):
    out, frame = whole_results
    code, _, err = biqa(capsys, "train", "-m", "test-brightness", "-d", "toyama", "-n", "2", "-o", out, "-q")
    assert code == 0, err
    code, text, err = biqa(capsys, "eval", out, "--json", "--ranges", "--low-quality", "--min-items", "3")
    assert code == 0, err
    records = pd.DataFrame(json.loads(text))
    whole = records[records["split"] == "whole"]
    assert set(whole["method"]) == {"psnr", "ssim"} and set(records["split"]) == {0, 1, "whole"}
    common = frame.iloc[5:]
    quality = (common["mos"] - 1) / 4 * 100
    for metric in ("psnr", "ssim"):
        one = whole[whole["method"] == metric].set_index("subset")
        for name, low, high in (("Poor", 20, 40), ("Fair", 40, 60)):
            inside = (quality >= low) & (quality < high)
            assert one.loc[name, "n"] == inside.sum()
            assert one.loc[name, "srocc"] == pytest.approx(
                stats.spearmanr(quality[inside], common.loc[inside, metric]).statistic, abs=1e-4)
        low = quality < 25
        assert one.loc["low_quality", "n"] == low.sum()
        assert one.loc["low_quality", "srocc"] == pytest.approx(
            stats.spearmanr(quality[low], common.loc[low, metric]).statistic, abs=1e-4)
    # split significance leaves the whole runs out, saying so; per image they are compared on common items
    code, text, err = biqa(capsys, "significance", out, "--json")
    assert code != 0 and "at least 2 methods" in err  # only one split method: the whole runs are not tested over splits
    code, text, err = biqa(capsys, "significance", out, "--per-image", "psnr,ssim", "--split", "whole", "--json")
    assert code == 0, err
    result = json.loads(text)
    assert result["split"] == "whole" and result["n"] == 43
    code, text, err = biqa(capsys, "significance", out, "--per-image", "psnr,ssim", "--split", "none")
    one_line_error(code, err, "'whole'")


def test_split_significance_on_whole_runs_only_points_to_per_image(whole_results, capsys):
    out, _ = whole_results
    one_line_error(*biqa(capsys, "significance", out)[::2], "whole-dataset", "--per-image A,B --split whole")
    code, text, err = biqa(capsys, "significance", out, "--per-image", "psnr,ssim")
    assert code == 0 and "whole dataset (43 images)" in text, err


def test_report_labels_whole_runs_and_counts_the_missing(whole_results, capsys):
    out, _ = whole_results
    code, _, err = biqa(capsys, "report", out, "--out", out / "report")
    assert code == 0, err
    markdown = (out / "report" / "report.md").read_text()
    assert "Whole-dataset runs (every labelled item, no split): psnr on toyama (48 items); ssim on toyama " \
           "(43 items, 5 labelled items without a prediction left out)." in markdown
    assert "compared on the 43 items all of them predicted" in markdown
    assert "Whole-dataset runs (every labelled item, no split; one figure each): psnr, ssim on toyama." in markdown
    assert "Per-image F-test on toyama, every labelled item (whole-dataset runs) (43 images)" in markdown
    overall = pd.read_csv(out / "report" / "records" / "overall.csv")
    assert set(overall["split"].astype(str)) == {"whole"} and set(overall["n"]) == {43}


def test_whole_and_split_runs_of_one_method_are_refused(whole_results, capsys, tmp_path):
    out, frame = whole_results
    split_csv = tmp_path / "split.csv"
    frame.rename(columns={"path": "item_id", "psnr": "prediction"})[["item_id", "prediction"]].to_csv(split_csv, index=False)
    one_line_error(*biqa(capsys, "import", "-m", "psnr", "-d", "toyama", "--predictions", split_csv, "-n", "2",
                         "-o", out)[::2], "whole-dataset run", "another --method")
