"""Correlation and error metrics, and the flat evaluation record every analysis reuses.

SROCC, KROCC (tau-b, ties handled) and PLCC keep their sign: a method that ranks backwards
shows a negative figure. PLCC after mapping and RMSE use the 4-parameter logistic fitted to
the same items (:mod:`biqa_bench.evaluation.logistic`); ``plcc_raw`` is on the raw predictions.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..store import is_whole, split_value

if TYPE_CHECKING:
    from .logistic import LogisticFit

# scipy is imported inside the functions: the CLI reads METRICS for its help text, and
# importing scipy.stats / scipy.optimize would triple `biqa --help`'s start-up time.

RECORD_FIELDS = ["method", "dataset", "split", "subset", "n", "srocc", "krocc", "plcc", "plcc_raw", "rmse"]
METRICS = ["srocc", "krocc", "plcc", "plcc_raw", "rmse"]


def _pair(truth, prediction) -> tuple[np.ndarray, np.ndarray]:
    truth = np.asarray(truth, dtype=float)
    prediction = np.asarray(prediction, dtype=float)
    if truth.shape != prediction.shape or truth.ndim != 1:
        raise ValueError("truth and prediction must be 1-d arrays of the same length")
    return truth, prediction


def _defined(truth: np.ndarray, prediction: np.ndarray) -> bool:
    return len(truth) >= 2 and np.ptp(truth) > 0 and np.ptp(prediction) > 0


def srocc(truth, prediction) -> float:
    truth, prediction = _pair(truth, prediction)
    if not _defined(truth, prediction):
        return float("nan")
    from scipy import stats

    return float(stats.spearmanr(truth, prediction).statistic)


def krocc(truth, prediction) -> float:
    truth, prediction = _pair(truth, prediction)
    if not _defined(truth, prediction):
        return float("nan")
    from scipy import stats

    return float(stats.kendalltau(truth, prediction).statistic)


def plcc(truth, prediction) -> float:
    truth, prediction = _pair(truth, prediction)
    if not _defined(truth, prediction):
        return float("nan")
    from scipy import stats

    with warnings.catch_warnings():
        # a logistic that degenerates to a near-constant map is legitimate; its PLCC is what it is
        warnings.simplefilter("ignore", stats.NearConstantInputWarning)
        return float(stats.pearsonr(truth, prediction).statistic)


def rmse(truth, prediction) -> float:
    truth, prediction = _pair(truth, prediction)
    if len(truth) == 0:
        return float("nan")
    return float(np.sqrt(np.mean((truth - prediction) ** 2)))


@dataclass(frozen=True)
class Scores:
    n: int
    srocc: float
    krocc: float
    plcc: float  # after the logistic mapping
    plcc_raw: float
    rmse: float  # after the logistic mapping, in units of the truth
    mapping_ok: bool
    mapping_message: str

    def as_record(self, **keys) -> dict:
        record = dict(keys)
        record.update({k: v for k, v in asdict(self).items() if k in RECORD_FIELDS})
        return record


def score_predictions(truth, prediction, mapping: LogisticFit | None = None) -> Scores:
    """All metrics for one set of items. ``mapping`` defaults to a logistic fitted here."""
    from .logistic import fit_logistic

    truth, prediction = _pair(truth, prediction)
    if mapping is None:
        mapping = fit_logistic(prediction, truth)
    mapped = mapping.predict(prediction)
    return Scores(
        n=int(len(truth)),
        srocc=srocc(truth, prediction),
        krocc=krocc(truth, prediction),
        plcc=plcc(truth, mapped),
        plcc_raw=plcc(truth, prediction),
        rmse=rmse(truth, mapped),
        mapping_ok=mapping.success,
        mapping_message=mapping.message,
    )


def evaluate_predictions(predictions, subset: str = "test", n_boot: int = 0, seed: int = 0):
    """Per (method, train dataset, dataset, split): the flat record of every metric.

    ``predictions`` is the table of :func:`biqa_bench.store.load_predictions`. Returns a
    DataFrame with the columns of :data:`RECORD_FIELDS` plus ``train_dataset`` and
    ``mapping_ok`` / ``mapping_message`` (a failed logistic fit is reported, not raised).
    ``n_boot`` > 0 adds each run's BCa bootstrap interval of SROCC and PLCC over its test
    images (:func:`biqa_bench.evaluation.intervals.bootstrap_columns`, seeded with ``seed``).
    """
    import pandas as pd

    from .intervals import boot_columns, bootstrap_columns
    from .logistic import fit_logistic

    rows = []
    keys = ["method", "train_dataset", "dataset", "split"]
    for (method, train_dataset, dataset, split), group in predictions.groupby(keys, sort=True):
        truth, prediction = group["quality"].to_numpy(float), group["prediction"].to_numpy(float)
        mapping = fit_logistic(prediction, truth)
        result = score_predictions(truth, prediction, mapping=mapping)
        record = result.as_record(method=method, dataset=dataset, split=split_value(split), subset=subset)
        record["train_dataset"] = train_dataset
        record["mapping_ok"] = result.mapping_ok
        record["mapping_message"] = result.mapping_message
        if n_boot:
            record.update(bootstrap_columns(truth, prediction, mapping.predict(prediction), n_boot, seed))
        rows.append(record)
    columns = RECORD_FIELDS + ["train_dataset", "mapping_ok", "mapping_message"]
    if n_boot:
        columns += boot_columns(("srocc", "plcc"))
    return pd.DataFrame(rows, columns=columns)


@dataclass(frozen=True)
class CommonItems:
    """A predictions table whose whole-dataset runs are cut to the items they all predicted."""

    predictions: "pd.DataFrame"
    left_out: dict  # dataset -> number of items some whole-dataset run on it had and another lacked
    n_common: dict  # dataset -> number of items every whole-dataset run on it predicted

    def notes(self) -> list[str]:
        return [
            f"whole-dataset runs on {dataset} compared on the {self.n_common[dataset]} items all of them predicted "
            f"({count} predicted by only some left out)"
            for dataset, count in sorted(self.left_out.items())
        ]


def common_whole_items(predictions) -> CommonItems:
    """Whole-dataset runs of different methods on one dataset are compared on the same items:
    their rows are cut to the item ids every such run predicted (they differ when some were
    imported with ``--allow-missing``). Split runs are left as they are (their split files
    already give every method the same test items)."""
    whole = predictions["split"].map(is_whole).astype(bool)
    if not whole.any():
        return CommonItems(predictions, {}, {})
    keep = ~whole
    left_out, n_common = {}, {}
    for dataset, group in predictions[whole].groupby("dataset", sort=True):
        per_run = [set(g["item_id"]) for _, g in group.groupby(["method", "train_dataset"], sort=False)]
        common, union = set.intersection(*per_run), set.union(*per_run)
        if len(union) > len(common):
            left_out[dataset], n_common[dataset] = len(union) - len(common), len(common)
        keep = keep | (whole & (predictions["dataset"] == dataset) & predictions["item_id"].isin(common))
    return CommonItems(predictions[keep], left_out, n_common)

