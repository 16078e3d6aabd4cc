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


def evaluate_predictions(predictions, subset: str = "test"):
    """Per (method, train dataset, dataset, split): the flat record of every metric.

    ``predictions`` is the table of :func:`biqa_bench.store.load_predictions`. Returns a
    DataFrame with the columns of :data:`RECORD_FIELDS` plus ``train_dataset`` and
    ``mapping_ok`` / ``mapping_message`` (a failed logistic fit is reported, not raised).
    """
    import pandas as pd

    rows = []
    keys = ["method", "train_dataset", "dataset", "split"]
    for (method, train_dataset, dataset, split), group in predictions.groupby(keys, sort=True):
        result = score_predictions(group["quality"].to_numpy(), group["prediction"].to_numpy())
        record = result.as_record(method=method, dataset=dataset, split=int(split), subset=subset)
        record["train_dataset"] = train_dataset
        record["mapping_ok"] = result.mapping_ok
        record["mapping_message"] = result.mapping_message
        rows.append(record)
    columns = RECORD_FIELDS + ["train_dataset", "mapping_ok", "mapping_message"]
    return pd.DataFrame(rows, columns=columns)

