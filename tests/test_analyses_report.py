"""Intervals, the range-effect index and the Krasula analysis in `biqa eval`, `biqa report` and
`biqa significance --krasula`, on a small results folder written with the store."""

import json

import numpy as np
import pandas as pd
import pytest
from _cli_helpers import biqa, one_line_error

from biqa_bench.evaluation.intervals import bootstrap_interval, format_interval, t_interval
from biqa_bench.evaluation.metrics import evaluate_predictions
from biqa_bench.report.build import build_report
from biqa_bench.report.tables import overall_table, to_csv, to_latex, to_markdown
from biqa_bench.store import run_dir, write_run


def write_results(root, labelled=("a",)):
    """Dataset 'a' (3 splits) and 'b' (1 split), two methods; std/n_ratings on the labelled ones."""
    rng = np.random.default_rng(0)
    for dataset, splits in (("a", 3), ("b", 1)):
        for split in range(splits):
            quality = rng.uniform(0, 100, 100)
            std = rng.uniform(5, 15, 100)
            for method, noise in (("good", 10), ("poor", 25)):
                frame = pd.DataFrame({"item_id": [f"{dataset}{i}" for i in range(100)], "dataset": dataset,
                                      "split": split, "subset": "test", "quality": quality, "score": quality,
                                      "prediction": quality + rng.normal(0, noise, 100)})
                if dataset in labelled:
                    frame["std"], frame["n_ratings"] = std, 6
                write_run(run_dir(root, dataset, method, split), frame,
                          {"kind": "run", "method": method, "train_dataset": dataset, "split": split,
                           "split_hash": f"h{dataset}"})


def test_format_interval_symmetric_and_not():
    assert format_interval(0.912, 0.904, 0.920) == "\u00b10.008"
    assert format_interval(0.912, 0.890, 0.925) == "[0.890, 0.925]"
    assert format_interval(0.912, float("nan"), 0.92) == ""


def test_table_cells_carry_the_t_interval_in_latex_markdown_and_csv(tmp_path):
    write_results(tmp_path)
    from biqa_bench.store import load_predictions

    records = evaluate_predictions(load_predictions(tmp_path))
    table = overall_table(records, ci=True)
    values = records[(records.method == "good") & (records.dataset == "a")]["srocc"]
    interval = t_interval(values)
    half = f"{interval.half_width:.3f}"
    assert f"{interval.estimate:.3f}" in to_markdown(table) and f"\u00b1{half}" in to_markdown(table)
    assert f"{{\\scriptsize $\\pm${half}}}" in to_latex(table)
    csv = pd.read_csv(pd.io.common.StringIO(to_csv(table)), index_col=0)
    assert csv.loc["good", "a SROCC CI low"] == pytest.approx(interval.low)
    assert csv.loc["good", "a SROCC CI high"] == pytest.approx(min(interval.high, 1.0))
    assert "a SROCC CI low" not in to_csv(overall_table(records))  # without ci: no interval columns


def test_report_with_ci_shows_intervals_the_index_and_the_krasula_table(tmp_path):
    write_results(tmp_path)
    result = build_report(tmp_path, tmp_path / "report", ci=True, n_boot=200, seed=3)
    assert {"Range-effect index", "Krasula analysis"} <= set(result.sections)
    overall = (tmp_path / "report" / "tables" / "overall.md").read_text()
    assert "\u00b1" in overall  # 'a': t-interval over its 3 splits
    # 'b' rests on one split: its cell shows the run's bootstrap interval, seeded
    records = pd.read_csv(tmp_path / "report" / "records" / "overall.csv")
    one = records[(records.dataset == "b") & (records.method == "good")].iloc[0]
    from biqa_bench.store import load_predictions

    group = load_predictions(tmp_path).query("dataset == 'b' and method == 'good'")
    expected = bootstrap_interval(group["quality"].to_numpy(), group["prediction"].to_numpy(), "srocc", 200, 3)
    assert one["srocc_boot_low"] == pytest.approx(expected.low)
    assert f"[{expected.low:.3f}, {expected.high:.3f}]" in overall
    assert np.isnan(records[records.dataset == "a"]["srocc_boot_low"]).all()  # t-interval there, no bootstrap
    assert "REI" in (tmp_path / "report" / "tables" / "range_effect.md").read_text()
    krasula = (tmp_path / "report" / "tables" / "krasula_a.md").read_text()
    assert "different/similar" in krasula and "better/worse" in krasula
    assert "krasula_roc_a" in result.figures and "range_effect" in result.figures
    assert "standard deviations" in result.skipped["Krasula analysis on b"]
    assert "Krasula analysis on b" in (tmp_path / "report" / "report.md").read_text()


def test_eval_ci_and_range_effect_outputs(tmp_path, capsys):
    write_results(tmp_path)
    code, out, err = biqa(capsys, "eval", tmp_path, "--ranges", "--ci", "--n-boot", "100", "--seed", "2")
    assert code == 0, err
    summary = pd.read_csv(tmp_path / "eval" / "summary.csv")
    row = summary[(summary.method == "good") & (summary.dataset == "a") & (summary.subset == "test")].iloc[0]
    assert row["srocc_ci_low"] < row["srocc_mean"] < row["srocc_ci_high"]
    assert row["ci_kind"] == "t over splits"
    effect = pd.read_csv(tmp_path / "eval" / "range_effect_summary.csv")
    assert set(effect["method"]) == {"good", "poor"} and effect["rei"].notna().all()
    assert "Range-effect index" in out
    records = pd.read_csv(tmp_path / "eval" / "records.csv")
    assert set(records.loc[records.dataset == "b", "boot_seed"].dropna()) == {2}


def test_eval_n_boot_one_is_a_one_line_error(tmp_path, capsys):
    write_results(tmp_path)
    code, _, err = biqa(capsys, "eval", tmp_path, "--ci", "--n-boot", "1")
    one_line_error(code, err, "--n-boot")


def test_significance_krasula_command(tmp_path, capsys):
    write_results(tmp_path)
    code, out, err = biqa(capsys, "significance", tmp_path, "--krasula", "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert {r["dataset"] for r in payload["records"]} == {"a"}
    assert "standard deviations" in payload["left_out"]["b"]
    assert (tmp_path / "significance" / "krasula_records.csv").exists()
    code, out, err = biqa(capsys, "significance", tmp_path, "--krasula")
    assert code == 0 and "AUC different/similar" in out and "b: left out" in out


def test_significance_krasula_without_any_std_is_one_line(tmp_path, capsys):
    write_results(tmp_path, labelled=())
    code, _, err = biqa(capsys, "significance", tmp_path, "--krasula")
    one_line_error(code, err, "std")
