"""Five ACR ranges, the low-quality subset and aggregation: against scipy and hand-built cases."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from biqa_bench.datasets.registry import DatasetInfo
from biqa_bench.errors import AnalysisError
from biqa_bench.evaluation.logistic import fit_logistic
from biqa_bench.evaluation.ranges import (
    RANGE_NAMES,
    acr_class,
    acr_range,
    aggregate_records,
    low_quality_mask,
    low_quality_records,
    range_records,
)


def make_predictions(n=400, methods=("good", "noisy"), splits=(0, 1, 2), seed=0, dataset="toy"):
    rng = np.random.default_rng(seed)
    frames = []
    for split in splits:
        quality = rng.uniform(0, 100, n)
        for k, method in enumerate(methods):
            prediction = 1 / (1 + np.exp(-(quality - 50) / 15)) + rng.normal(0, 0.05 * (k + 1), n)
            frames.append(pd.DataFrame({
                "method": method, "train_dataset": dataset, "item_id": [f"i{split}_{i}" for i in range(n)],
                "dataset": dataset, "split": split, "subset": "test", "quality": quality,
                "score": 1 + 4 * quality / 100, "prediction": prediction,
            }))
    return pd.concat(frames, ignore_index=True)


def one_split(quality, prediction, method="m", dataset="toy"):
    n = len(quality)
    return pd.DataFrame({"method": method, "train_dataset": dataset, "item_id": [str(i) for i in range(n)],
                         "dataset": dataset, "split": 0, "subset": "test", "quality": quality,
                         "score": quality, "prediction": prediction})


def test_acr_boundaries_belong_to_the_range_above():
    quality = np.array([0, 19.999, 20, 39.9, 40, 59.99, 60, 80, 99.9, 100, -5, 130])
    assert acr_class(quality).tolist() == [0, 0, 1, 1, 2, 2, 3, 4, 4, 4, 0, 4]
    assert acr_range([40.0])[0] == "Fair"
    assert acr_range([100.0])[0] == "Excellent"


def test_range_records_match_scipy_with_whole_split_mapping():
    predictions = make_predictions(n=300, methods=("good",), splits=(0,))
    records = range_records(predictions, min_items=10)
    assert list(records["subset"]) == RANGE_NAMES
    quality = predictions["quality"].to_numpy()
    prediction = predictions["prediction"].to_numpy()
    mapping = fit_logistic(prediction, quality)  # fitted on the whole split, once
    mapped = mapping.predict(prediction)
    edges = [0, 20, 40, 60, 80, 100.0001]
    for (lo, hi), row in zip(zip(edges[:-1], edges[1:]), records.itertuples()):
        inside = (quality >= lo) & (quality < hi)
        assert row.n == inside.sum()
        assert row.status == "ok"
        assert row.srocc == pytest.approx(stats.spearmanr(quality[inside], prediction[inside]).statistic)
        assert row.krocc == pytest.approx(stats.kendalltau(quality[inside], prediction[inside]).statistic)
        assert row.plcc == pytest.approx(stats.pearsonr(quality[inside], mapped[inside]).statistic)
        assert row.plcc_raw == pytest.approx(stats.pearsonr(quality[inside], prediction[inside]).statistic)
        assert row.rmse == pytest.approx(np.sqrt(np.mean((quality[inside] - mapped[inside]) ** 2)))
    assert records["n"].sum() == len(predictions)


def test_mapping_is_not_refitted_per_range():
    predictions = make_predictions(n=300, methods=("good",), splits=(0,))
    good = range_records(predictions).set_index("subset").loc["Good"]
    inside = (predictions["quality"] >= 60) & (predictions["quality"] < 80)
    refit = fit_logistic(predictions.loc[inside, "prediction"], predictions.loc[inside, "quality"])
    rmse_refit = np.sqrt(np.mean((predictions.loc[inside, "quality"] - refit.predict(predictions.loc[inside, "prediction"])) ** 2))
    assert good["rmse"] != pytest.approx(rmse_refit, rel=1e-6)


def test_empty_small_and_constant_ranges_are_undefined_not_errors():
    rng = np.random.default_rng(1)
    # Bad: empty; Poor: 3 items; Fair: constant truth (12 items at 50); Good/Excellent: fine
    quality = np.concatenate([[25, 30, 35], np.full(12, 50.0), rng.uniform(60, 100, 60)])
    prediction = quality / 100 + rng.normal(0, 0.05, len(quality))
    records = range_records(one_split(quality, prediction), min_items=10).set_index("subset")
    assert records.loc["Bad", "status"] == "undefined" and records.loc["Bad", "reason"] == "no items"
    assert records.loc["Bad", "n"] == 0
    assert records.loc["Poor", "status"] == "undefined" and "only 3 items" in records.loc["Poor", "reason"]
    assert records.loc["Fair", "status"] == "undefined" and "constant" in records.loc["Fair", "reason"]
    assert records.loc[["Bad", "Poor", "Fair"], ["srocc", "plcc", "rmse"]].isna().all().all()
    assert (records.loc[["Good", "Excellent"], "status"] == "ok").all()


def test_constant_predictions_in_a_range_are_undefined():
    rng = np.random.default_rng(2)
    quality = np.concatenate([rng.uniform(40, 60, 20), rng.uniform(60, 100, 40)])
    prediction = np.where(quality < 60, 0.5, quality / 100)
    records = range_records(one_split(quality, prediction)).set_index("subset")
    assert records.loc["Fair", "reason"] == "predictions are constant"


def test_boundary_tie_at_40_is_fair():
    quality = np.array([40.0] * 5 + [45, 50, 55, 41, 42, 39.5, 20, 25, 30, 35, 38, 10, 70, 90, 85])
    prediction = quality + np.linspace(0, 1, len(quality))
    records = range_records(one_split(quality, prediction), min_items=1).set_index("subset")
    assert records.loc["Fair", "n"] == 10
    assert records.loc["Poor", "n"] == 6


def test_nan_prediction_is_a_one_line_error():
    predictions = make_predictions(n=50, methods=("good",), splits=(0,))
    predictions.loc[3, "prediction"] = np.nan
    with pytest.raises(AnalysisError, match="NaN prediction.*re-run"):
        range_records(predictions)


def test_only_test_rows_are_used():
    predictions = make_predictions(n=100, methods=("good",), splits=(0,))
    extra = predictions.copy()
    extra["subset"] = "val"
    extra["prediction"] = -extra["prediction"]
    both = range_records(pd.concat([predictions, extra]))
    only = range_records(predictions)
    pd.testing.assert_frame_equal(both, only)


def test_low_quality_mask_nominal_honours_direction():
    koniq = DatasetInfo("koniq", "authentic", "MOS", True, (1.0, 5.0))
    mos = np.array([1.0, 1.5, 1.99, 2.0, 3.0, 5.0])
    assert low_quality_mask(mos, koniq).tolist() == [True, True, True, False, False, False]
    dmos_info = DatasetInfo("tid", "synthetic", "DMOS", False, (0.0, 100.0))
    dmos = np.array([0, 50, 74.9, 75.0, 75.1, 100])
    assert low_quality_mask(dmos, dmos_info).tolist() == [False, False, False, False, True, True]
    # with a tuple the direction is a keyword
    assert low_quality_mask(dmos, (0, 100), higher_is_better=False).tolist() == [False] * 4 + [True] * 2
    # equivalent to quality < 25 on the 0-100 scale
    quality = 100 - dmos
    assert (low_quality_mask(dmos, dmos_info) == (quality < 25)).all()


def test_low_quality_mask_quantile():
    rng = np.random.default_rng(3)
    score = rng.normal(size=400)
    mask = low_quality_mask(score, (-10, 10), rule="quantile", fraction=0.25)
    assert mask.sum() == 100
    assert score[mask].max() < score[~mask].min()
    inverted = low_quality_mask(score, (-10, 10), rule="quantile", higher_is_better=False)
    assert score[inverted].min() > score[~inverted].max()
    with pytest.raises(AnalysisError, match="rule"):
        low_quality_mask(score, (-10, 10), rule="median")


def test_low_quality_records_against_scipy():
    predictions = make_predictions(n=400, methods=("good", "noisy"), splits=(0, 1))
    info = DatasetInfo("toy", "authentic", "MOS", True, (1.0, 5.0))
    records = low_quality_records(predictions, {"toy": info})
    assert len(records) == 4 and set(records["subset"]) == {"low_quality"}
    for row in records.itertuples():
        group = predictions[(predictions["method"] == row.method) & (predictions["split"] == row.split)]
        mapped = fit_logistic(group["prediction"], group["quality"]).predict(group["prediction"])
        low = (group["score"] < 2.0).to_numpy()
        assert row.n == low.sum()
        assert row.srocc == pytest.approx(stats.spearmanr(group["quality"][low], group["prediction"][low]).statistic)
        assert row.plcc == pytest.approx(stats.pearsonr(group["quality"].to_numpy()[low], mapped[low]).statistic)
    # no info: the mask falls back on quality < 25, the same set here
    pd.testing.assert_frame_equal(records, low_quality_records(predictions))
    quantile = low_quality_records(predictions, rule="quantile", fraction=0.1)
    assert (quantile["n"] == 40).all()


def test_aggregate_over_splits_counts_defined_splits():
    predictions = make_predictions(n=200, methods=("good", "noisy"), splits=(0, 1, 2))
    records = range_records(predictions)
    # make one split of one range undefined
    records.loc[(records["method"] == "good") & (records["subset"] == "Fair") & (records["split"] == 1),
                ["status", "srocc", "krocc", "plcc", "plcc_raw", "rmse"]] = ["undefined"] + [np.nan] * 5
    aggregate = aggregate_records(records)
    assert len(aggregate) == 10
    assert list(aggregate[aggregate["method"] == "good"]["subset"]) == RANGE_NAMES
    row = aggregate[(aggregate["method"] == "good") & (aggregate["subset"] == "Fair")].iloc[0]
    assert row["n_splits"] == 2 and row["n_splits_total"] == 3
    values = records[(records["method"] == "good") & (records["subset"] == "Fair") & (records["status"] == "ok")]["srocc"]
    assert row["srocc_mean"] == pytest.approx(np.mean(values))
    assert row["srocc_median"] == pytest.approx(np.median(values))
    assert row["srocc_std"] == pytest.approx(np.std(values, ddof=1))


def test_aggregate_all_undefined_keeps_reason():
    quality = np.concatenate([[5.0, 6.0], np.random.default_rng(0).uniform(20, 100, 80)])
    records = range_records(one_split(quality, quality + 1))
    aggregate = aggregate_records(records).set_index("subset")
    assert aggregate.loc["Bad", "status"] == "undefined"
    assert aggregate.loc["Bad", "n_splits"] == 0
    assert "only 2 items" in aggregate.loc["Bad", "reason"]
    assert np.isnan(aggregate.loc["Bad", "srocc_mean"])


def test_aggregate_accepts_whole_split_records_without_status():
    from biqa_bench.evaluation.metrics import evaluate_predictions

    predictions = make_predictions(n=200, methods=("good",), splits=(0, 1))
    records = pd.concat([evaluate_predictions(predictions), range_records(predictions)], ignore_index=True)
    aggregate = aggregate_records(records)
    assert list(aggregate["subset"]) == ["test"] + RANGE_NAMES
    whole = aggregate.iloc[0]
    assert whole["status"] == "ok" and whole["n_splits"] == 2
    assert whole["srocc_mean"] == pytest.approx(
        np.mean([stats.spearmanr(g.quality, g.prediction).statistic for _, g in predictions.groupby("split")])
    )
