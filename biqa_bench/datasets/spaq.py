"""SPAQ, Smartphone Photography Attribute and Quality (Fang et al., CVPR 2020), read from its
official ``Annotations/MOS and Image attribute scores.xlsx``.

11125 smartphone photos. The workbook has ``Image name, MOS, Brightness, Colorfulness,
Contrast, Noisiness, Sharpness``; MOS and the five attributes are on 0-100, higher is better.
The attributes are kept as lower-case columns. Images are ``TestImage/00001.jpg`` ... (up to
4000x3000; the decode-once cache exists for them).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ._files import PathResolver, find_file, read_sheet
from .registry import Dataset, DatasetInfo, make_dataset, register_dataset

DOWNLOAD = (
    "SPAQ from https://github.com/h4nwei/SPAQ (links in its README): unpack it so that "
    "Annotations/ and TestImage/ are in the root folder"
)

INFO = DatasetInfo(
    name="spaq",
    kind="authentic",
    score_type="MOS",
    higher_is_better=True,
    score_range=(0.0, 100.0),
    n_contents=11125,
    n_items=11125,
    description="SPAQ: 11125 smartphone photos with MOS and five attribute scores (Fang et al., CVPR 2020); MOS 0-100",
    download=DOWNLOAD,
)

LABEL_FILE = "Annotations/MOS and Image attribute scores.xlsx"
NAME, MOS = "Image name", "MOS"
ATTRIBUTES = ["Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness"]
IMAGE_FOLDER = "TestImage"


@register_dataset(INFO)
def load_spaq(root: Path, **options) -> Dataset:
    root = Path(root)
    labels_path = find_file(root, [LABEL_FILE], "spaq", DOWNLOAD)
    table = read_sheet(labels_path, None, [NAME, MOS, *ATTRIBUTES])
    table = table[table[NAME].notna()]
    names = [str(n).strip() for n in table[NAME]]
    resolver = PathResolver(root)
    items = pd.DataFrame(
        {
            "item_id": names,
            "path": [resolver.resolve_or_keep(f"{IMAGE_FOLDER}/{n}") for n in names],
            "score": pd.to_numeric(table[MOS], errors="coerce").to_numpy(),
        }
    )
    for attribute in ATTRIBUTES:
        items[attribute.lower()] = pd.to_numeric(table[attribute], errors="coerce").to_numpy()
    return make_dataset(INFO, items, root)
