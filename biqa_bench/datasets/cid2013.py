"""CID2013, the Camera Image Database (Virtanen et al., IEEE TIP 2015), read from its official
``CID2013 data - version 12112014.xlsx``.

474 photos of 36 scenes taken with 79 consumer cameras, in six image sets (IS1-IS6) of six
scenes each. The sheet ``CID2013 MOS`` has one row per image: ``Source_ID`` (``IS_I_C01_D01``:
image set in roman numerals, scene C, device D), the set-specific MOS, ``Realigned MOS`` (all
sets on one scale, nominally 0-100, a few slightly negative) and attribute scores. The score is
the realigned MOS. The content of an image, for splits, is its scene (image set + C number),
so no scene is in both train and test. Images are ``IS<n>/co<c>/<Source_ID>.jpg``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ..errors import DatasetError
from ._files import PathResolver, find_file, read_sheet, roman_to_int
from .registry import Dataset, DatasetInfo, make_dataset, register_dataset

DOWNLOAD = (
    "CID2013 from https://zenodo.org/record/2647033 (CID2013.7z): unpack it so that "
    "'CID2013 data - version 12112014.xlsx' and the folders IS1 ... IS6 are in the root folder"
)

INFO = DatasetInfo(
    name="cid2013",
    kind="authentic",
    score_type="MOS",
    higher_is_better=True,
    score_range=(0.0, 100.0),
    n_contents=36,
    n_items=474,
    description="CID2013: 474 consumer-camera photos of 36 scenes (Virtanen et al., IEEE TIP 2015); realigned MOS 0-100",
    download=DOWNLOAD,
)

LABEL_FILE = "CID2013 data - version 12112014.xlsx"
SHEET = "CID2013 MOS"
SOURCE_ID, REALIGNED = "Source_ID", "Realigned MOS"
SET_MOS = "Image set specific MOS"  # spelled with two spaces in the workbook
SOURCE_PATTERN = re.compile(r"^IS_([IVX]+)_C(\d+)_D(\d+)$", re.IGNORECASE)


@register_dataset(INFO)
def load_cid2013(root: Path, **options) -> Dataset:
    root = Path(root)
    labels_path = find_file(root, [LABEL_FILE], "cid2013", DOWNLOAD)
    table = read_sheet(labels_path, SHEET, [SOURCE_ID, REALIGNED])
    table = table[table[SOURCE_ID].notna()]
    set_mos = next((c for c in table.columns if " ".join(str(c).split()).lower() == SET_MOS.lower()), None)

    resolver = PathResolver(root)
    by_name: dict[str, str] | None = None  # every file's name, built only if an image is not where expected
    records = []
    for source_id, realigned, specific in zip(
        table[SOURCE_ID], table[REALIGNED], table[set_mos] if set_mos else [None] * len(table)
    ):
        source_id = str(source_id).strip()
        match = SOURCE_PATTERN.match(source_id)
        if match is None:
            raise DatasetError(
                f"{labels_path} (sheet '{SHEET}'): Source_ID {source_id!r} is not of the form IS_<roman>_C<nn>_D<nn>; "
                "is this the official file?"
            )
        image_set = roman_to_int(match.group(1))
        scene = int(match.group(2))
        nominal = f"IS{image_set}/co{scene}/{source_id}.jpg"
        path = resolver.resolve(nominal)
        if path is None:
            if by_name is None:
                by_name = _index_by_name(root)
            path = by_name.get(f"{source_id}.jpg".lower(), nominal)
        record = {
            "item_id": source_id,
            "path": path,
            "score": realigned,
            "content_id": f"IS{image_set}_C{scene:02d}",
            "image_set": f"IS{image_set}",
        }
        if set_mos:
            record["set_mos"] = specific
        records.append(record)
    return make_dataset(INFO, pd.DataFrame.from_records(records), root)


def _index_by_name(root: Path) -> dict[str, str]:
    index: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            index.setdefault(path.name.lower(), path.relative_to(root).as_posix())
    return index
