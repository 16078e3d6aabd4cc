"""Cross-dataset evaluation, the pure part (REQA Table IV, IEIT Table IV, QAMT Table 3).

A model trained on all of dataset A predicts every item of dataset B. Per (method, split of the
training run):

* SROCC and KROCC on the raw predictions against B's ``quality`` (higher is better, so a DMOS
  set still gives positive correlations for a good method);
* PLCC and RMSE after the 4-parameter logistic fitted on B's labels rescaled to the common
  1-5 range first (``label = 1 + 4 * quality / 100``, i.e. the nominal interval mapped linearly
  onto 1-5, DMOS inverted), as IEIT does following its ref. [68]. RMSE is therefore in 1-5
  units, comparable across test sets. Unlike IEIT, which fixes the logistic's asymptotes at 1
  and 5 and learns the other two parameters with one head per dataset, we fit all four
  parameters on the test set, the usual VQEG practice.

:func:`cross_matrix` lays the records out with train sets as rows and test sets as columns,
plus the average over test sets weighted by their number of items (IEIT's "Weighted Average";
the diagonal, train set = test set, is left out of it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..datasets.registry import DatasetInfo
from ..errors import AnalysisError
from .intervals import boot_columns, bootstrap_columns
from .logistic import fit_logistic
from .metrics import METRICS, krocc, plcc, rmse, srocc
from .ranges import OK, OUTPUT_COLUMNS, UNDEFINED, check_predictions, too_few_items

CROSS_SUBSET = "all"
WEIGHTED_AVERAGE = "weighted_average"


def common_scale(quality) -> np.ndarray:
    """0-100 quality -> the common 1-5 label range used for the cross-dataset mapping."""
    return 1.0 + 4.0 * np.asarray(quality, dtype=float) / 100.0


def cross_records(predictions_on_test_set: pd.DataFrame, test_info: DatasetInfo | None, train_dataset: str | None = None,
                  min_items: int = 10, n_boot: int = 0, seed: int = 0) -> pd.DataFrame:
    """Records (RECORD_FIELDS + train_dataset, status, reason; subset ``'all'``) of models
    trained on ``train_dataset`` predicting the test set, one per (method, split).
    ``n_boot`` > 0 adds the BCa bootstrap intervals of SROCC and PLCC over the test set's items
    (:func:`biqa_bench.evaluation.intervals.bootstrap_columns`; a cross-dataset test is one run).

    ``train_dataset`` defaults to the table's ``train_dataset`` column. Without a ``split``
    column (a single model trained on all of A) the split is recorded as 0. ``test_info`` names the
    test set (``dataset`` column) when given; the table must hold that one test set only.
    """
    if "split" not in predictions_on_test_set.columns:  # one model trained on all of A
        predictions_on_test_set = predictions_on_test_set.assign(split=0)
    required = ("method", "dataset", "split", "quality", "prediction")
    frame = check_predictions(predictions_on_test_set, required=required)
    if len(frame) == 0:
        raise AnalysisError("cross-dataset predictions are empty; predict the test set first")
    datasets = sorted(set(frame["dataset"].astype(str)))
    if len(datasets) != 1:
        raise AnalysisError(f"cross_records takes one test set at a time, got {datasets}; call it per test set")
    test_name = datasets[0]
    if test_info is not None and test_info.name != test_name.split(":")[0]:
        raise AnalysisError(f"predictions are for '{test_name}' but the test set info is '{test_info.name}'")
    if train_dataset is not None:
        frame["train_dataset"] = train_dataset
    records = []
    for (method, train, split), group in frame.groupby(["method", "train_dataset", "split"], sort=True, dropna=False):
        quality = group["quality"].to_numpy(float)
        prediction = group["prediction"].to_numpy(float)
        record = {"method": method, "train_dataset": train, "dataset": test_name, "split": split,
                  "subset": CROSS_SUBSET, "n": int(len(group))}
        if len(group) < min_items:
            status, reason = UNDEFINED, too_few_items(len(group), min_items)
        elif np.ptp(quality) == 0:
            status, reason = UNDEFINED, "ground truth is constant"
        elif np.ptp(prediction) == 0:
            status, reason = UNDEFINED, "predictions are constant"
        else:
            status, reason = OK, ""
        if status == OK:
            labels = common_scale(quality)
            mapping = fit_logistic(prediction, labels)
            mapped = mapping.predict(prediction)
            record.update(srocc=srocc(quality, prediction), krocc=krocc(quality, prediction),
                          plcc=plcc(labels, mapped), plcc_raw=plcc(quality, prediction), rmse=rmse(labels, mapped))
            if not mapping.success:
                reason = mapping.fallback_note()
            if n_boot:  # PLCC(labels, mapped) = PLCC(quality, mapped): labels are linear in quality
                record.update(bootstrap_columns(quality, prediction, mapped, n_boot, seed))
        else:
            record.update({m: float("nan") for m in METRICS})
        record["status"], record["reason"] = status, reason
        records.append(record)
    extra = boot_columns(("srocc", "plcc")) if n_boot else []
    result = pd.DataFrame.from_records(records, columns=OUTPUT_COLUMNS + extra)
    for metric in METRICS:
        result[metric] = result[metric].astype(float)
    return result


def cross_matrix(records: pd.DataFrame, metric: str = "srocc", method: str | None = None) -> pd.DataFrame:
    """Train sets as rows, test sets as columns, plus ``weighted_average``, for one method.

    Cells are means over splits of defined records (status ok). The weighted average of a row
    weights each test set (other than the row's own) by its number of items ``n``.
    """
    if metric not in METRICS:
        raise AnalysisError(f"unknown metric '{metric}'; use one of {', '.join(METRICS)}")
    frame = records.copy()
    if "train_dataset" not in frame.columns:
        raise AnalysisError("cross records lack a train_dataset column; build them with cross_records")
    methods = sorted(set(frame["method"]))
    if method is None:
        if len(methods) != 1:
            raise AnalysisError(f"records hold several methods {methods}; pass the method for the matrix")
        method = methods[0]
    elif method not in methods:
        raise AnalysisError(f"no cross-dataset records for method '{method}'; methods present: {methods}")
    frame = frame[frame["method"] == method]
    if "status" in frame.columns:
        frame = frame[frame["status"] == OK]
    if len(frame) == 0:
        raise AnalysisError(f"method '{method}' has no defined cross-dataset records")
    cells = frame.groupby(["train_dataset", "dataset"], sort=True).agg(value=(metric, "mean"), n=("n", "mean"))
    matrix = cells["value"].unstack("dataset")
    sizes = cells["n"].unstack("dataset")
    averages = []
    for train in matrix.index:
        values = matrix.loc[train].drop(labels=[train], errors="ignore")
        weights = sizes.loc[train].drop(labels=[train], errors="ignore")
        keep = values.notna() & weights.notna()
        averages.append(float(np.average(values[keep], weights=weights[keep])) if keep.any() else float("nan"))
    matrix[WEIGHTED_AVERAGE] = averages
    matrix.index.name = "train_dataset"
    matrix.columns.name = None
    return matrix
