"""Deviation statistics of REQA Figures 6 and 7, as tidy tables the report plots.

For every (method, train dataset, dataset, split) the predictions are mapped onto the 0-100
quality scale by the logistic fitted on that whole test split (as for the ranges). Then

* Figure 6: the ACR-class difference ``class(mapped prediction) - class(quality)``, an integer
  in -4..4 (positive: the method rates the image in a better class than the subjects did).
  Mapped predictions outside 0-100 are clipped into the end classes, like quality.
* Figure 7: ``|mapped prediction - quality|`` in bins of ``bin_width`` (2.5) points:
  [0, 2.5), [2.5, 5), ..., the last bin closed and absorbing anything beyond 100.

Counts are pooled over splits (the figures show counts of test items); ``n_splits`` says how
many splits were pooled and ``fraction`` is the count over all pooled items of that group.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import AnalysisError
from .logistic import fit_logistic
from .ranges import GROUP_KEYS, acr_class, check_predictions

CLASS_DIFFERENCES = list(range(-4, 5))
METHOD_KEYS = ["method", "train_dataset", "dataset"]


def mapped_predictions(predictions: pd.DataFrame) -> pd.DataFrame:
    """The test rows with a ``mapped`` column: predictions on the quality scale via the
    logistic fitted per (method, train dataset, dataset, split) on the whole test split."""
    frame = check_predictions(predictions)
    parts = []
    for _keys, group in frame.groupby(GROUP_KEYS, sort=True, dropna=False):
        mapping = fit_logistic(group["prediction"].to_numpy(float), group["quality"].to_numpy(float))
        group = group.copy()
        group["mapped"] = mapping.predict(group["prediction"].to_numpy(float))
        group["mapping_ok"] = mapping.success
        parts.append(group)
    if not parts:
        raise AnalysisError("predictions table is empty; nothing to analyse")
    return pd.concat(parts, ignore_index=True)


def class_difference_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """REQA Fig. 6: counts of ACR-class differences -4..4 per method and dataset.

    Columns: method, train_dataset, dataset, difference, count, fraction, n_splits.
    Every difference from -4 to 4 appears (count 0 when absent).
    """
    frame = mapped_predictions(predictions)
    frame["difference"] = acr_class(frame["mapped"]) - acr_class(frame["quality"])
    rows = []
    for key, group in frame.groupby(METHOD_KEYS, sort=True, dropna=False):
        counts = group["difference"].value_counts()
        total = len(group)
        n_splits = group["split"].nunique()
        for difference in CLASS_DIFFERENCES:
            count = int(counts.get(difference, 0))
            rows.append({**dict(zip(METHOD_KEYS, key)), "difference": difference, "count": count,
                         "fraction": count / total, "n_splits": n_splits})
    return pd.DataFrame(rows)


def absolute_deviation_table(predictions: pd.DataFrame, bin_width: float = 2.5) -> pd.DataFrame:
    """REQA Fig. 7: counts of |mapped prediction - quality| in bins of ``bin_width`` points.

    Columns: method, train_dataset, dataset, bin_low, bin_high, count, fraction, n_splits.
    The bins cover [0, 100]; the last is closed and takes any deviation above 100.
    """
    if not 0 < bin_width <= 100:
        raise AnalysisError(f"bin width must lie in (0, 100], not {bin_width}")
    frame = mapped_predictions(predictions)
    deviation = np.abs(frame["mapped"].to_numpy(float) - frame["quality"].to_numpy(float))
    n_bins = int(np.ceil(100.0 / bin_width - 1e-9))
    frame["bin"] = np.minimum((deviation / bin_width).astype(int), n_bins - 1)
    rows = []
    for key, group in frame.groupby(METHOD_KEYS, sort=True, dropna=False):
        counts = np.bincount(group["bin"].to_numpy(), minlength=n_bins)
        total = len(group)
        n_splits = group["split"].nunique()
        for index in range(n_bins):
            rows.append({**dict(zip(METHOD_KEYS, key)), "bin_low": index * bin_width,
                         "bin_high": min((index + 1) * bin_width, 100.0), "count": int(counts[index]),
                         "fraction": counts[index] / total, "n_splits": n_splits})
    return pd.DataFrame(rows)
