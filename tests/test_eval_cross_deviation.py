"""Cross-dataset records and matrix; deviation histograms (REQA Figs. 6-7)."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from biqa_bench.datasets.registry import DatasetInfo
from biqa_bench.errors import AnalysisError
from biqa_bench.evaluation.cross import common_scale, cross_matrix, cross_records
from biqa_bench.evaluation.deviation import absolute_deviation_table, class_difference_table, mapped_predictions
from biqa_bench.evaluation.logistic import fit_logistic

TEST_INFO = DatasetInfo("testset", "authentic", "DMOS", False, (0.0, 100.0))


def table(quality, prediction, method="m", train="trainset", dataset="testset", split=0):
    n = len(quality)
    return pd.DataFrame({"method": method, "train_dataset": train, "item_id": [str(i) for i in range(n)],
                         "dataset": dataset, "split": split, "subset": "test", "quality": quality,
                         "score": 100 - np.asarray(quality), "prediction": prediction})


def test_cross_records_against_scipy_on_common_scale():
    rng = np.random.default_rng(0)
    quality = rng.uniform(0, 100, 250)
    prediction = np.tanh((quality - 50) / 30) + rng.normal(0, 0.2, 250)
    records = cross_records(table(quality, prediction), TEST_INFO, "trainset")
    assert len(records) == 1
    row = records.iloc[0]
    assert row["status"] == "ok" and row["subset"] == "all" and row["train_dataset"] == "trainset"
    labels = 1 + 4 * quality / 100
    assert common_scale([0, 50, 100]).tolist() == [1, 3, 5]
    mapped = fit_logistic(prediction, labels).predict(prediction)
    assert row["srocc"] == pytest.approx(stats.spearmanr(quality, prediction).statistic)
    assert row["krocc"] == pytest.approx(stats.kendalltau(quality, prediction).statistic)
    assert row["plcc"] == pytest.approx(stats.pearsonr(labels, mapped).statistic)
    assert row["rmse"] == pytest.approx(np.sqrt(np.mean((labels - mapped) ** 2)))
    assert 0 < row["rmse"] < 4  # in 1-5 units
    # PLCC after mapping on the 1-5 scale equals PLCC after mapping on the 0-100 scale (affine labels)
    mapped100 = fit_logistic(prediction, quality).predict(prediction)
    assert row["plcc"] == pytest.approx(stats.pearsonr(quality, mapped100).statistic, abs=1e-5)


def test_cross_records_per_split_and_errors():
    rng = np.random.default_rng(1)
    quality = rng.uniform(0, 100, 40)
    both = pd.concat([table(quality, quality + rng.normal(0, 5, 40), split=s) for s in (0, 1)])
    assert list(cross_records(both, TEST_INFO)["split"]) == [0, 1]
    constant = cross_records(table(quality, np.ones(40)), TEST_INFO)
    assert constant.iloc[0]["status"] == "undefined" and "constant" in constant.iloc[0]["reason"]
    with pytest.raises(AnalysisError, match="one test set"):
        cross_records(pd.concat([table(quality, quality), table(quality, quality, dataset="other")]), None)
    with pytest.raises(AnalysisError, match="test set info"):
        cross_records(table(quality, quality, dataset="other"), TEST_INFO)
    bad = table(quality, quality)
    bad.loc[0, "prediction"] = np.nan
    with pytest.raises(AnalysisError, match="NaN"):
        cross_records(bad, TEST_INFO)


def test_cross_matrix_weighted_average_by_hand():
    records = pd.DataFrame({
        "method": "m", "train_dataset": ["A", "A", "A", "B", "B"], "dataset": ["B", "C", "A", "A", "C"],
        "split": 0, "subset": "all", "n": [100, 300, 50, 50, 300], "srocc": [0.8, 0.6, 0.95, 0.7, 0.5],
        "status": "ok",
    })
    matrix = cross_matrix(records, "srocc")
    assert list(matrix.index) == ["A", "B"]
    assert matrix.loc["A", "B"] == 0.8 and np.isnan(matrix.loc["B", "B"])
    # diagonal (A on A) left out: (0.8*100 + 0.6*300) / 400
    assert matrix.loc["A", "weighted_average"] == pytest.approx(0.65)
    assert matrix.loc["B", "weighted_average"] == pytest.approx((0.7 * 50 + 0.5 * 300) / 350)
    two = pd.concat([records, records.assign(method="other")])
    with pytest.raises(AnalysisError, match="several methods"):
        cross_matrix(two, "srocc")
    assert cross_matrix(two, "srocc", method="other").equals(matrix)
    with pytest.raises(AnalysisError, match="unknown metric"):
        cross_matrix(records, "accuracy")


def test_cross_matrix_averages_splits_and_skips_undefined():
    records = pd.DataFrame({"method": "m", "train_dataset": "A", "dataset": "B", "split": [0, 1, 2], "subset": "all",
                            "n": 10, "plcc": [0.5, 0.7, np.nan], "status": ["ok", "ok", "undefined"]})
    assert cross_matrix(records, "plcc").loc["A", "B"] == pytest.approx(0.6)


def test_class_difference_table_by_hand():
    rng = np.random.default_rng(2)
    quality = rng.uniform(0, 100, 200)
    prediction = quality / 100 + rng.normal(0, 0.1, 200)
    frame = table(quality, prediction)
    result = class_difference_table(frame)
    assert list(result["difference"]) == list(range(-4, 5))
    assert result["count"].sum() == 200 and result["fraction"].sum() == pytest.approx(1)
    mapped = fit_logistic(prediction, quality).predict(prediction)
    expected = np.clip(mapped // 20, 0, 4).astype(int) - np.clip(quality // 20, 0, 4).astype(int)
    for row in result.itertuples():
        assert row.count == np.sum(expected == row.difference)
    assert result.set_index("difference").loc[0, "count"] == result["count"].max()


def test_absolute_deviation_table_by_hand():
    rng = np.random.default_rng(3)
    quality = rng.uniform(0, 100, 300)
    prediction = quality + rng.normal(0, 8, 300)
    frames = pd.concat([table(quality, prediction, split=0), table(quality, prediction[::-1], method="bad", split=0)])
    result = absolute_deviation_table(frames, bin_width=2.5)
    assert len(result) == 2 * 40
    good = result[result["method"] == "m"]
    mapped = mapped_predictions(frames)
    mapped = mapped[mapped["method"] == "m"]
    deviation = np.abs(mapped["mapped"] - mapped["quality"]).to_numpy()
    counts, _ = np.histogram(deviation, bins=np.arange(0, 100.01, 2.5))
    assert good["count"].tolist() == counts.tolist()
    assert good["bin_low"].iloc[1] == 2.5 and good["bin_high"].iloc[-1] == 100
    assert (good["n_splits"] == 1).all()
    # the better method has more mass in the first bins
    bad = result[result["method"] == "bad"]
    assert good["count"].iloc[:4].sum() > bad["count"].iloc[:4].sum()


def test_cross_records_without_split_column():
    rng = np.random.default_rng(4)
    quality = rng.uniform(0, 100, 50)
    frame = table(quality, quality + rng.normal(0, 10, 50)).drop(columns=["split", "subset"])
    records = cross_records(frame, TEST_INFO, "trainset")
    assert records.iloc[0]["split"] == 0 and records.iloc[0]["status"] == "ok"
