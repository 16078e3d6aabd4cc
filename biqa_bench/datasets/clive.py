"""LIVE In the Wild Image Quality Challenge (CLIVE; Ghadiyaram & Bovik, 2016), read from its
official ``.mat`` files.

``Data/AllImages_release.mat`` (``AllImages_release``, 1169 names), ``Data/AllMOS_release.mat``
(``AllMOS_release``, MOS on 0-100, higher is better) and ``Data/AllStdDev_release.mat``
(``AllStdDev_release``) list the images in the same order. The first seven, ``t1.bmp`` ...
``t7.bmp``, were the subjects' training images; they live in ``Images/trainingImages/`` and are
excluded, as in every paper (HyperIQA keeps entries 7:1169; pyiqa drops the first 7), leaving
1162 items, ``3.bmp`` ... ``1164.JPG``. Images are in ``Images/`` (mixed .bmp/.JPG). The names
are a 1169 x 1 cell array, the MOS and standard deviations 1 x 1169 arrays.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ..errors import DatasetError
from ._files import PathResolver, find_file, find_optional, read_mat, set_excluded
from .registry import Dataset, DatasetInfo, make_dataset, register_dataset

DOWNLOAD = (
    "CLIVE from https://live.ece.utexas.edu/research/ChallengeDB/index.html (ChallengeDB_release.zip): "
    "unpack it and use the ChallengeDB_release folder (holding Data/ and Images/) as the root"
)

INFO = DatasetInfo(
    name="clive",
    kind="authentic",
    score_type="MOS",
    higher_is_better=True,
    score_range=(0.0, 100.0),
    n_contents=1162,
    n_items=1162,
    description="LIVE In the Wild Challenge: 1162 authentically distorted photos (Ghadiyaram & Bovik, 2016); MOS 0-100",
    download=DOWNLOAD,
)

NAMES_FILE, NAMES_VAR = "Data/AllImages_release.mat", "AllImages_release"
MOS_FILE, MOS_VAR = "Data/AllMOS_release.mat", "AllMOS_release"
STD_FILE, STD_VAR = "Data/AllStdDev_release.mat", "AllStdDev_release"
IMAGE_FOLDER = "Images"
TRAINING_IMAGE = re.compile(r"^t[1-7]\.bmp$", re.IGNORECASE)


@register_dataset(INFO)
def load_clive(root: Path, **options) -> Dataset:
    root = Path(root)
    names_path = find_file(root, [NAMES_FILE], "clive", DOWNLOAD)
    mos_path = find_file(root, [MOS_FILE], "clive", DOWNLOAD)
    names = read_mat(names_path, [NAMES_VAR])[NAMES_VAR]
    mos = read_mat(mos_path, [MOS_VAR])[MOS_VAR].astype(float)
    if len(names) != len(mos):
        raise DatasetError(f"{mos_path}: {len(mos)} scores for {len(names)} names in {names_path.name}; re-download Data/")
    frame = pd.DataFrame({"name": [str(n) for n in names], "score": mos})
    std_path = find_optional(root, [STD_FILE])
    if std_path is not None:
        std = read_mat(std_path, [STD_VAR])[STD_VAR].astype(float)
        if len(std) != len(names):
            raise DatasetError(f"{std_path}: {len(std)} values for {len(names)} names in {names_path.name}; re-download Data/")
        frame["std"] = std
    training = frame["name"].str.match(TRAINING_IMAGE)
    frame = frame[~training]

    resolver = PathResolver(root)
    items = frame.rename(columns={"name": "item_id"})
    items.insert(1, "path", [resolver.resolve_or_keep(f"{IMAGE_FOLDER}/{n}") for n in items["item_id"]])
    dataset = make_dataset(INFO, items, root)
    set_excluded(dataset.items, [resolver.resolve_or_keep(f"{IMAGE_FOLDER}/trainingImages/t{k}.bmp") for k in range(1, 8)])
    return dataset
