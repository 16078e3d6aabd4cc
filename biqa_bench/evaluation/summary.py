"""The evaluation of a results folder: per-split records of every run and their summary over splits."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def evaluate_results(results: Path, ranges: bool, low_quality: bool, min_items: int, rule: str, fraction: float):
    """Records, summary and notes for a results folder (overall, plus ranges / low-quality on
    request); whole-dataset runs of different methods on one dataset are cut to their common items."""
    from ..evaluation.metrics import common_whole_items, evaluate_predictions
    from ..evaluation.ranges import aggregate_records, check_low_quality, low_quality_records, range_records
    from ..store import dataset_infos, find_runs, load_predictions

    check_low_quality(rule, fraction)  # also without --low-quality: a mistyped option is not ignored
    runs = find_runs(results)
    predictions = load_predictions(results, runs)
    common = common_whole_items(predictions[predictions["subset"] == "test"])
    predictions = common.predictions
    parts = [evaluate_predictions(predictions)]
    if ranges:
        parts.append(range_records(predictions, min_items=min_items))
    if low_quality:
        infos = dataset_infos(runs)
        parts.append(low_quality_records(predictions, infos, rule=rule, fraction=fraction, min_items=min_items))
    records = pd.concat(parts, ignore_index=True)
    return records, aggregate_records(records), common.notes()
