"""BID, the Blurred Image Database (Ciancio et al., 2011), read from its official
``DatabaseGrades.xls``.

586 photographs of real scenes, blurred by camera shake and focus errors. The workbook's sheet
``Plan1`` has one row per image: ``Image Number``, ``Average Subjective Grade`` (MOS on 0-5,
higher is better), ``Number of Grades`` and the individual ``Grade #1`` ... ``Grade #20``, from
which ``std`` (sample standard deviation) is computed. Images are ``DatabaseImage%04d.JPG``,
at the root of the download or in ``ImageDatabase/``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ._files import PathResolver, find_file, read_sheet
from .registry import Dataset, DatasetInfo, make_dataset, register_dataset

DOWNLOAD = (
    "BID from http://www02.smt.ufrj.br/~eduardo/ImageDatabase.htm (ImageDatabase.rar): unpack it so "
    "that DatabaseGrades.xls and the DatabaseImage%04d.JPG files (directly or in ImageDatabase/) "
    "are in the root folder"
)

INFO = DatasetInfo(
    name="bid",
    kind="authentic",
    score_type="MOS",
    higher_is_better=True,
    score_range=(0.0, 5.0),
    n_contents=586,
    n_items=586,
    description="BID: 586 photos with realistic blur (Ciancio et al., IEEE TIP 2011); MOS 0-5",
    download=DOWNLOAD,
)

LABEL_FILE = "DatabaseGrades.xls"
SHEET = "Plan1"
NUMBER, MOS, COUNT = "Image Number", "Average Subjective Grade", "Number of Grades"
IMAGE_FOLDERS = ("", "ImageDatabase")


@register_dataset(INFO)
def load_bid(root: Path, **options) -> Dataset:
    root = Path(root)
    labels_path = find_file(root, [LABEL_FILE, f"ImageDatabase/{LABEL_FILE}"], "bid", DOWNLOAD)
    table = read_sheet(labels_path, SHEET, [NUMBER, MOS, COUNT])
    table = table[pd.to_numeric(table[NUMBER], errors="coerce").notna()]
    grade_columns = [c for c in table.columns if str(c).lower().startswith("grade #")]
    grades = table[grade_columns].apply(pd.to_numeric, errors="coerce")
    std = grades.std(axis=1, ddof=1).to_numpy(dtype=float)  # NaN where fewer than two grades

    resolver = PathResolver(root)
    numbers = table[NUMBER].astype(float).astype(int).to_numpy()
    names = [f"DatabaseImage{n:04d}.JPG" for n in numbers]
    paths = []
    for name in names:
        found = None
        for folder in IMAGE_FOLDERS:
            found = resolver.resolve(f"{folder}/{name}" if folder else name)
            if found is not None:
                break
        paths.append(found if found is not None else name)
    items = pd.DataFrame(
        {
            "item_id": names,
            "path": paths,
            "score": pd.to_numeric(table[MOS], errors="coerce").to_numpy(dtype=float),
            "std": std,
            "n_ratings": pd.to_numeric(table[COUNT], errors="coerce").round().astype("Int64").array,
        }
    )
    return make_dataset(INFO, items, root)
