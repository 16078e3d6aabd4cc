"""TID2013 (Ponomarenko et al., 2015), read from its official ``mos_with_names.txt``.

3000 distorted images: 25 reference images x 24 distortion types x 5 levels. The label file
has one CRLF line ``<MOS> <name>`` per image (MOS on 0-9, higher is better); ``mos_std.txt``
gives the standard deviations in the same order. Names are ``iRR_DD_L.bmp`` (reference RR,
distortion DD, level L) but their case in the label file (``I01_01_1.bmp``, ``.BMP``) does
not always match the files in ``distorted_images/``, so paths are resolved ignoring case.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ..errors import DatasetError
from ._files import PathResolver, find_file, find_optional, read_text_lines
from .registry import Dataset, DatasetInfo, make_dataset, register_dataset

DOWNLOAD = (
    "TID2013 from https://www.ponomarenko.info/tid2013.htm (tid2013.rar): unpack it so that "
    "mos_with_names.txt, mos_std.txt, distorted_images/ and reference_images/ are in the root folder"
)

INFO = DatasetInfo(
    name="tid2013",
    kind="synthetic",
    score_type="MOS",
    higher_is_better=True,
    score_range=(0.0, 9.0),
    n_contents=25,
    n_items=3000,
    description="TID2013: 25 references x 24 distortions x 5 levels (Ponomarenko et al., 2015); MOS 0-9",
    download=DOWNLOAD,
)

LABEL_FILE = "mos_with_names.txt"
STD_FILE = "mos_std.txt"
IMAGE_FOLDER = "distorted_images"
NAME_PATTERN = re.compile(r"^i(\d+)_(\d+)_(\d+)\.bmp$", re.IGNORECASE)

# TID2013's 24 distortion types, numbered as in its readme.
DISTORTIONS = {
    1: "additive gaussian noise",
    2: "additive noise in color components",
    3: "spatially correlated noise",
    4: "masked noise",
    5: "high frequency noise",
    6: "impulse noise",
    7: "quantization noise",
    8: "gaussian blur",
    9: "image denoising",
    10: "jpeg compression",
    11: "jpeg2000 compression",
    12: "jpeg transmission errors",
    13: "jpeg2000 transmission errors",
    14: "non eccentricity pattern noise",
    15: "local block-wise distortions",
    16: "mean shift",
    17: "contrast change",
    18: "change of color saturation",
    19: "multiplicative gaussian noise",
    20: "comfort noise",
    21: "lossy compression of noisy images",
    22: "image color quantization with dither",
    23: "chromatic aberrations",
    24: "sparse sampling and reconstruction",
}


@register_dataset(INFO)
def load_tid2013(root: Path, **options) -> Dataset:
    root = Path(root)
    labels_path = find_file(root, [LABEL_FILE], "tid2013", DOWNLOAD)
    rows = []
    for number, line in enumerate(read_text_lines(labels_path), start=1):
        fields = line.split()
        match = NAME_PATTERN.match(fields[1]) if len(fields) == 2 else None
        try:
            score = float(fields[0])
        except (ValueError, IndexError):
            match = None
        if match is None:
            raise DatasetError(
                f"{labels_path}, line {number}: expected '<MOS> iRR_DD_L.bmp', found {line!r}; "
                "is this the official, unmodified file?"
            )
        reference, distortion, level = (int(g) for g in match.groups())
        rows.append((fields[1], score, reference, distortion, level))

    std_path = find_optional(root, [STD_FILE])
    std = None
    if std_path is not None:
        try:
            std = [float(v.split()[0]) for v in read_text_lines(std_path)]
        except ValueError:
            raise DatasetError(f"{std_path}: expected one number per line; is this the official file?") from None
        if len(std) != len(rows):
            raise DatasetError(
                f"{std_path}: {len(std)} values for {len(rows)} images in {labels_path.name}; re-download both"
            )

    resolver = PathResolver(root)
    items = pd.DataFrame(
        {
            "item_id": [name.lower() for name, *_ in rows],
            "path": [resolver.resolve_or_keep(f"{IMAGE_FOLDER}/{name}") for name, *_ in rows],
            "score": [score for _, score, *_ in rows],
            "content_id": [f"i{reference:02d}" for _, _, reference, _, _ in rows],
            "distortion": [DISTORTIONS.get(d, f"#{d}") for *_, d, _ in rows],
            "distortion_id": [d for *_, d, _ in rows],
            "level": [level for *_, level in rows],
        }
    )
    if std is not None:
        items["std"] = std
    return make_dataset(INFO, items, root)
