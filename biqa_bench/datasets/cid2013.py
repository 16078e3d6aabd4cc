"""CID2013, the Camera Image Database (Virtanen et al., IEEE TIP 2015), read from its official
``CID2013 data - version 12112014.xlsx``.

The paper's abstract: six image sets, in each 12-14 devices "depicting eight different scenes",
79 cameras, 480 images; the workbook scores 474 of them. The sheet ``CID2013 MOS`` (header in its
first row, as read by public loaders with ``pandas.read_excel(..., sheet_name='CID2013 MOS')``)
has one row per image: ``Source_ID`` (``IS_I_C01_D01``, ``IS_IV_C04_D07``, ``IS_VI_C06_D01``:
image set in roman numerals, scene C, device D), ``Image set specific  MOS`` (two spaces; each
set on its own scale), ``Realigned MOS`` (all sets on one scale, nominally 0-100; values below 0
are kept as they are) and attribute scores. The score is the realigned MOS. Images are
``IS<n>/co<c>/<Source_ID>.jpg`` (e.g. ``IS1/co1/IS_I_C01_D01.jpg``); an image elsewhere under
the root is found by its file name.

Content, for splits: the scene, i.e. the C number alone (``C01`` ...), not image set + C.
The database has eight scenes in all, and 480 images over six sets of 12-14 devices make about
six scenes per set, so scenes recur across sets (public code compares ``IS_I_C04`` with
``IS_IV_C04`` images); grouping by image set + C would put one scene in both train and test.
Grouping by C is never less strict than by image set + C: were C numbers per set, unrelated
scenes would merely share a group. The image set is kept as ``image_set``.
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
    n_contents=8,
    n_items=474,
    description="CID2013: 474 consumer-camera photos of 8 scenes (Virtanen et al., IEEE TIP 2015); realigned MOS 0-100",
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
            "content_id": f"C{scene:02d}",
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
