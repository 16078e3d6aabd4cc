"""CSIQ (Larson & Chandler, 2010), read from its official ``csiq.DMOS.xlsx``.

866 distorted images of 30 references under six distortions (white noise, JPEG, JPEG 2000,
pink noise, blur, contrast), 4-5 levels each. The labels are the sheet ``all_by_image``, whose
header (``image, dst_idx, dst_type, dst_lev, dmos_std, dmos``) sits in row 4 at columns D-I.
DMOS is in [0, 1], lower is better. Reference names may be numbers (``1600``). Images are
``dst_imgs/<folder>/<ref>.<TAG>.<level>.png`` with folder and tag per distortion below.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import DatasetError
from ._files import PathResolver, find_file, read_sheet
from .registry import Dataset, DatasetInfo, make_dataset, register_dataset

DOWNLOAD = (
    "CSIQ from https://s2.smu.edu/~eclarson/csiq.html (csiq.DMOS.xlsx and dst_imgs/, src_imgs/): "
    "put csiq.DMOS.xlsx and the dst_imgs/ folder in the root folder"
)

INFO = DatasetInfo(
    name="csiq",
    kind="synthetic",
    score_type="DMOS",
    higher_is_better=False,
    score_range=(0.0, 1.0),
    n_contents=30,
    n_items=866,
    description="CSIQ: 30 references x 6 distortions x 4-5 levels (Larson & Chandler, 2010); DMOS 0-1",
    download=DOWNLOAD,
)

LABEL_FILES = ["csiq.DMOS.xlsx", "csiq_dmos.xlsx"]
SHEET = "all_by_image"
COLUMNS = ["image", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos"]

# dst_type in the workbook -> (folder under dst_imgs/, tag in the file name)
DISTORTIONS = {
    "noise": ("awgn", "AWGN"),
    "jpeg": ("jpeg", "JPEG"),
    "jpeg 2000": ("jpeg2000", "jpeg2000"),
    "fnoise": ("fnoise", "fnoise"),
    "blur": ("blur", "BLUR"),
    "contrast": ("contrast", "contrast"),
}


def _reference_name(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


@register_dataset(INFO)
def load_csiq(root: Path, **options) -> Dataset:
    root = Path(root)
    labels_path = find_file(root, LABEL_FILES, "csiq", DOWNLOAD)
    table = read_sheet(labels_path, SHEET, COLUMNS)
    table = table[table["image"].notna()]
    resolver = PathResolver(root)
    records = []
    for image, dst_type, level, dmos, dmos_std in zip(
        table["image"], table["dst_type"], table["dst_lev"], table["dmos"], table["dmos_std"]
    ):
        kind = " ".join(str(dst_type).split()).lower()
        if kind not in DISTORTIONS:
            raise DatasetError(
                f"{labels_path} (sheet '{SHEET}'): unknown dst_type {dst_type!r}; expected one of "
                f"{sorted(DISTORTIONS)}"
            )
        folder, tag = DISTORTIONS[kind]
        reference = _reference_name(image)
        level = int(float(level))
        name = f"{reference}.{tag}.{level}.png"
        records.append(
            {
                "item_id": name,
                "path": resolver.resolve_or_keep(f"dst_imgs/{folder}/{name}"),
                "score": dmos,
                "std": dmos_std,
                "content_id": reference,
                "distortion": folder,
                "level": level,
            }
        )
    return make_dataset(INFO, pd.DataFrame.from_records(records), root)
