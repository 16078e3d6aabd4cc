"""KonIQ-10k (Hosu et al., 2020), read from its official CSV files.

10073 in-the-wild photos, each rated by about 120 crowd workers on a 1-5 scale. Two label files
are distributed:

* ``koniq10k_scores_and_distributions.csv``: ``image_name, c1..c5, c_total, MOS, SD,
  MOS_zscore`` with c = rating counts, MOS and SD on 1-5 and MOS_zscore on 0-100 (the columns
  HyperIQA reads: ``image_name``, ``MOS_zscore``);
* ``koniq10k_distributions_sets.csv`` (also in the authors' repository, subpic/koniq,
  ``metadata/``): ``image_name, c1..c5, c_total, MOS, SD, set`` with c = rating *fractions*
  (each row sums to 1), ``MOS`` on the 0-100 z-score scale, the official ``set`` (training /
  validation / test, 7058 / 1000 / 2015), kept as ``official_set`` = train/val/test.

In both files ``SD`` is the sample standard deviation (ddof=1, over ``c_total`` ratings) of the
1-5 ratings: checked on all 10073 rows of the sets file, where it equals the one computed from
c1..c5 and c_total to 1e-10, while the MOS column is on 0-100. So ``SD`` is the ``std`` of the
1-5 scale only; the 0-100 z-score MOS, which is not a linear map of the 1-5 MOS, gets no ``std``.

Option ``scale``: ``zscore`` (default; 0-100, as HyperIQA and REQA) or ``mos`` (1-5, as IEIT;
from the sets file alone, the MOS is the mean of the rating distribution and ``std`` is ``SD``).
Option ``images``: ``1024x768`` (default when present) or ``512x384``, the folder the images
are read from.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DatasetError
from ._files import PathResolver, find_optional, read_csv
from .registry import Dataset, DatasetInfo, make_dataset, register_dataset

DOWNLOAD = (
    "KonIQ-10k from https://database.mmsp-kn.de/koniq-10k-database.html: unpack koniq10k_1024x768.zip "
    "(folder 1024x768/) or koniq10k_512x384.zip (512x384/) and koniq10k_scores_and_distributions.zip "
    "(and/or koniq10k_distributions_sets.csv for the official split) into the root folder"
)

INFO = DatasetInfo(
    name="koniq",
    kind="authentic",
    score_type="MOS",
    higher_is_better=True,
    score_range=(0.0, 100.0),
    n_contents=10073,
    n_items=10073,
    description="KonIQ-10k: 10073 in-the-wild photos (Hosu et al., IEEE TIP 2020); MOS, z-score scale 0-100",
    download=DOWNLOAD,
    options={
        "scale": "zscore (default, MOS_zscore on 0-100) or mos (MOS on 1-5)",
        "images": "1024x768 (default when present) or 512x384: the image folder to read",
    },
)

SCORES_FILE = "koniq10k_scores_and_distributions.csv"
SETS_FILE = "koniq10k_distributions_sets.csv"
COUNTS = ["c1", "c2", "c3", "c4", "c5"]
SCORES_COLUMNS = ["image_name", *COUNTS, "c_total", "MOS", "SD", "MOS_zscore"]
SETS_COLUMNS = ["image_name", *COUNTS, "c_total", "MOS", "SD", "set"]
OFFICIAL_SETS = {"training": "train", "train": "train", "validation": "val", "val": "val", "test": "test"}
IMAGE_FOLDERS = ("1024x768", "512x384")
SCALES = {"zscore": (0.0, 100.0), "mos": (1.0, 5.0)}


def _distribution_mean(table: pd.DataFrame) -> np.ndarray:
    """MOS on 1-5 from the rating counts or fractions c1..c5."""
    weights = table[COUNTS].to_numpy(dtype=float)
    weights = weights / weights.sum(axis=1, keepdims=True)
    return weights @ np.arange(1, 6, dtype=float)


@register_dataset(INFO)
def load_koniq(root: Path, scale: str = "zscore", images: str | None = None) -> Dataset:
    root = Path(root)
    if scale not in SCALES:
        raise DatasetError(f"koniq: scale must be one of {sorted(SCALES)}, not '{scale}' (e.g. koniq:scale=mos)")
    if images is not None and images not in IMAGE_FOLDERS:
        raise DatasetError(f"koniq: images must be one of {list(IMAGE_FOLDERS)}, not '{images}'")
    scores_path = find_optional(root, [SCORES_FILE])
    sets_path = find_optional(root, [SETS_FILE])
    if scores_path is None and sets_path is None:
        raise DatasetError(
            f"koniq: neither '{SCORES_FILE}' nor '{SETS_FILE}' found in {root}; point --root at the "
            f"unpacked database folder. Download: {DOWNLOAD}"
        )

    sets = read_csv(sets_path, SETS_COLUMNS) if sets_path is not None else None
    if scores_path is not None:
        table = read_csv(scores_path, SCORES_COLUMNS)
        if scale == "zscore":
            score, std = table["MOS_zscore"].to_numpy(dtype=float), None
        else:
            score, std = table["MOS"].to_numpy(dtype=float), table["SD"].to_numpy(dtype=float)
    else:
        table = sets
        if scale == "zscore":  # MOS is on 0-100 here; SD stays on 1-5, so it is not this score's std
            score, std = table["MOS"].to_numpy(dtype=float), None
        else:
            score, std = _distribution_mean(table), table["SD"].to_numpy(dtype=float)

    resolver = PathResolver(root)
    folder = images or next((f for f in IMAGE_FOLDERS if resolver.resolve(f) is not None), IMAGE_FOLDERS[0])
    names = table["image_name"].astype(str).str.strip()
    items = pd.DataFrame(
        {
            "item_id": names.to_numpy(),
            "path": [resolver.resolve_or_keep(f"{folder}/{name}") for name in names],
            "score": score,
            "n_ratings": pd.to_numeric(table["c_total"], errors="coerce").round().astype("Int64").array,
        }
    )
    if std is not None:
        items["std"] = std
    if sets is not None:
        official = sets.assign(image_name=sets["image_name"].astype(str).str.strip()).set_index("image_name")["set"]
        labels = official.astype(str).str.strip().str.lower().map(OFFICIAL_SETS)
        unknown = official[labels.isna()]
        if len(unknown):
            raise DatasetError(
                f"{sets_path}: unknown value {unknown.iloc[0]!r} in column 'set'; expected training, validation or test"
            )
        items["official_set"] = items["item_id"].map(labels).to_numpy()
        if items["official_set"].isna().any() and scores_path is not None:
            missing = items.loc[items["official_set"].isna(), "item_id"].head(3).tolist()
            raise DatasetError(f"{sets_path}: no 'set' for images {missing} of {scores_path.name}; re-download both")
    info = INFO if scale == "zscore" else replace(INFO, score_range=SCALES[scale])
    return make_dataset(info, items, root)
