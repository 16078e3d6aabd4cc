"""A split whose logistic mapping is flat (an inverted method) is flagged and counted per metric.

Issue #19's case: split 0 predicts with a PSNR-like score, split 1 with its negation. The
non-decreasing logistic of split 1 is a constant, so its PLCC is not defined: the summary says
the PLCC mean rests on 1 of 2 splits (SROCC on both), and every summary marks it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from biqa_bench.cli import main
from biqa_bench.evaluation.logistic import FLAT_MESSAGE, fit_logistic
from biqa_bench.evaluation.metrics import evaluate_predictions, score_predictions
from biqa_bench.evaluation.ranges import aggregate_records, merge_reasons, range_records, too_few_items
from biqa_bench.report import tables as T
from biqa_bench.store import run_dir, write_run


def psnr_case(n: int = 120, seed: int = 0) -> pd.DataFrame:
    """Predictions of one method on two splits: split 0 a noisy PSNR, split 1 minus it."""
    rng = np.random.default_rng(seed)
    frames = []
    for split, sign in ((0, 1.0), (1, -1.0)):
        quality = rng.uniform(0, 100, n)
        psnr = 20 + 0.2 * quality + rng.normal(0, 3, n)
        frames.append(pd.DataFrame({
            "item_id": [f"s{split}_{i}" for i in range(n)], "method": "psnr", "train_dataset": "toy",
            "dataset": "toy", "split": split, "subset": "test", "quality": quality, "score": quality,
            "prediction": sign * psnr,
        }))
    return pd.concat(frames, ignore_index=True)


def test_inverted_predictions_give_a_flat_mapping_and_undefined_plcc():
    case = psnr_case()
    inverted = case[case["split"] == 1]
    fit = fit_logistic(inverted["prediction"].to_numpy(), inverted["quality"].to_numpy())
    assert not fit.success and fit.flat and fit.message == FLAT_MESSAGE
    # the fallback is the mean of the truth: no sign flip, nothing for PLCC to correlate
    np.testing.assert_allclose(fit.predict(inverted["prediction"].to_numpy()), inverted["quality"].mean())
    scores = score_predictions(inverted["quality"].to_numpy(), inverted["prediction"].to_numpy())
    assert np.isnan(scores.plcc) and scores.mapping_ok is False
    assert scores.srocc == pytest.approx(stats.spearmanr(inverted["quality"], inverted["prediction"]).statistic)
    # RMSE of predicting the mean: the population std of the truth
    assert scores.rmse == pytest.approx(np.std(inverted["quality"].to_numpy()))


def test_a_good_fit_is_not_flat():
    case = psnr_case()
    upright = case[case["split"] == 0]
    fit = fit_logistic(upright["prediction"].to_numpy(), upright["quality"].to_numpy())
    assert fit.success and not fit.flat


def test_linear_fallback_never_flips_the_sign():
    # four points: too few for the logistic, and ranked backwards: the fallback is the mean, not -x
    fit = fit_logistic(np.array([4.0, 3.0, 2.0, 1.0]), np.array([1.0, 2.0, 3.0, 4.0]))
    assert not fit.success and fit.linear == (0.0, 2.5)


def test_summary_says_one_of_two_splits_entered_the_plcc_mean():
    case = psnr_case()
    records = evaluate_predictions(case)
    assert list(records["mapping_ok"]) == [True, False]
    assert records.loc[1, "mapping_message"] == FLAT_MESSAGE
    summary = aggregate_records(records).iloc[0]
    assert summary["n_splits"] == 2 and summary["n_splits_total"] == 2
    assert summary["srocc_splits"] == 2 and summary["plcc_splits"] == 1
    by_split = {s: g for s, g in case.groupby("split")}
    expected_srocc = np.mean([stats.spearmanr(g["quality"], g["prediction"]).statistic for g in by_split.values()])
    assert summary["srocc_mean"] == pytest.approx(expected_srocc)
    assert summary["plcc_mean"] == pytest.approx(records.loc[0, "plcc"])  # split 0 alone
    assert summary["mapping"] == f"split 1: {FLAT_MESSAGE}"


def test_report_table_marks_the_plcc_mean_and_names_the_count():
    records = evaluate_predictions(psnr_case())
    table = T.overall_table(records, ("srocc", "plcc"))
    assert not table.is_partial(0, 0) and table.is_partial(0, 1)
    markdown = T.to_markdown(table)
    assert T.DAGGER in markdown and "psnr on toy, PLCC: 1 of 2 splits" in markdown
    assert "1 of 2 splits" in T.to_latex(table)


def test_eval_command_marks_the_mean_and_says_why(tmp_path, capsys):
    results = tmp_path / "res"
    for split, group in psnr_case().groupby("split"):
        manifest = {"kind": "run", "method": "psnr", "train_dataset": "toy", "split": int(split), "split_hash": "h"}
        write_run(run_dir(results, "toy", "psnr", int(split)), group.drop(columns=["method", "train_dataset"]), manifest)
    assert main(["eval", str(results)]) == 0
    out = capsys.readouterr().out
    assert "†" in out and "PLCC over 1 of 2 splits" in out and "split 1: the non-decreasing logistic is flat" in " ".join(out.split())
    summary = pd.read_csv(results / "eval" / "summary.csv")
    assert int(summary.loc[0, "plcc_splits"]) == 1 and int(summary.loc[0, "srocc_splits"]) == 2


def test_undefined_reasons_merge_into_one_sentence_with_counts():
    assert too_few_items(1, 10) == "only 1 item, fewer than the 10 needed"
    reasons = [too_few_items(1, 10), too_few_items(2, 10), too_few_items(2, 10)]
    assert merge_reasons(reasons) == "only 1-2 items in each of the 3 splits, fewer than the 10 needed"
    assert merge_reasons([too_few_items(3, 10)]) == "only 3 items, fewer than the 10 needed"
    mixed = [too_few_items(4, 10), "ground truth is constant"]
    assert merge_reasons(mixed) == "only 4 items in 1 of 2 splits, fewer than the 10 needed; ground truth is constant in 1 of 2 splits"


def test_aggregated_range_reason_is_one_sentence():
    rng = np.random.default_rng(0)
    frames = []
    for split, bad in ((0, 1), (1, 2)):
        quality = np.concatenate([rng.uniform(0, 19, bad), rng.uniform(20, 100, 80)])
        frames.append(pd.DataFrame({"method": "m", "dataset": "toy", "split": split, "quality": quality,
                                    "prediction": quality + rng.normal(0, 5, len(quality))}))
    summary = aggregate_records(range_records(pd.concat(frames, ignore_index=True))).set_index("subset")
    assert summary.loc["Bad", "reason"] == "only 1-2 items in each of the 2 splits, fewer than the 10 needed"
