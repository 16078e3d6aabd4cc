"""LIVE Image Quality Assessment Database, Release 2 (Sheikh et al., 2006), read from its
official ``.mat`` files.

29 reference images distorted by JPEG 2000, JPEG, white noise, Gaussian blur and fast fading.
``dmos.mat`` (``dmos``, ``orgs``) or ``dmos_realigned.mat`` (``dmos_new``, ``orgs``,
``dmos_std``) hold 982 entries in the order of the folders ``jp2k/`` (227), ``jpeg/`` (233),
``wn/`` (174), ``gblur/`` (174), ``fastfading/`` (174); entry k of a folder is
``<folder>/img<k>.bmp``. ``refnames_all.mat`` (``refnames_all``) names each entry's reference.
Entries with ``orgs == 1`` are copies of the references inside the distortion folders and are
excluded, leaving 779 distorted images (169 / 175 / 145 / 145 / 145: jp2k and jpeg hold 58
reference copies each at scattered positions, the other folders 29 each as their last entries).
The three .mat files hold 1 x 982 arrays (``refnames_all`` a cell array of names such as
``studentsculpture.bmp``), read the same way by HyperIQA (``folders.py``) and pyiqa
(``scripts/process_live.py``). DMOS, lower is better, nominally 0-100. The label
files give no distortion levels, so ``level`` is empty (the per-folder ``info.txt`` parameters
are not read).

Option ``dmos``: ``realigned`` (default; the realigned DMOS, as HyperIQA and DBCNN) or
``original``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DatasetError
from ._files import PathResolver, find_file, find_optional, read_mat, set_excluded
from .registry import Dataset, DatasetInfo, make_dataset, register_dataset

DOWNLOAD = (
    "LIVE Release 2 from https://live.ece.utexas.edu/research/quality/subjective.htm (databaserelease2.zip): "
    "unpack it and use the databaserelease2 folder (holding jp2k/ jpeg/ wn/ gblur/ fastfading/ refimgs/, "
    "dmos.mat, dmos_realigned.mat, refnames_all.mat) as the root"
)

INFO = DatasetInfo(
    name="live",
    kind="synthetic",
    score_type="DMOS",
    higher_is_better=False,
    score_range=(0.0, 100.0),
    n_contents=29,
    n_items=779,
    description="LIVE IQA Release 2: 29 references x 5 distortions, 779 images (Sheikh et al., 2006); DMOS 0-100",
    download=DOWNLOAD,
    options={"dmos": "realigned (default, dmos_realigned.mat) or original (dmos.mat)"},
)

FOLDERS = [("jp2k", 227), ("jpeg", 233), ("wn", 174), ("gblur", 174), ("fastfading", 174)]
N_ENTRIES = sum(count for _, count in FOLDERS)
REFNAMES_FILE, REFNAMES_VAR = "refnames_all.mat", "refnames_all"
DMOS_FILES = {
    "realigned": ("dmos_realigned.mat", "dmos_new", "dmos_std"),
    "original": ("dmos.mat", "dmos", None),
}


def _entry_paths() -> list[tuple[str, str]]:
    return [(folder, f"{folder}/img{k}.bmp") for folder, count in FOLDERS for k in range(1, count + 1)]


@register_dataset(INFO)
def load_live(root: Path, dmos: str = "realigned") -> Dataset:
    root = Path(root)
    if dmos not in DMOS_FILES:
        raise DatasetError(f"live: dmos must be one of {sorted(DMOS_FILES)}, not '{dmos}' (e.g. live:dmos=original)")
    file_name, score_var, std_var = DMOS_FILES[dmos]
    dmos_path = find_optional(root, [file_name])
    if dmos_path is None:
        other = "original" if dmos == "realigned" else "realigned"
        raise DatasetError(
            f"live: '{file_name}' not found in {root}; point --root at the unpacked databaserelease2 folder, "
            f"or use live:dmos={other} if you only have '{DMOS_FILES[other][0]}'. Download: {DOWNLOAD}"
        )
    variables = read_mat(dmos_path, [score_var, "orgs"] + ([std_var] if std_var else []))
    refnames_path = find_file(root, [REFNAMES_FILE], "live", DOWNLOAD)
    refnames = read_mat(refnames_path, [REFNAMES_VAR])[REFNAMES_VAR]
    lengths = {f"{dmos_path.name}:{k}": len(v) for k, v in variables.items()}
    lengths[f"{refnames_path.name}:{REFNAMES_VAR}"] = len(refnames)
    if any(n != N_ENTRIES for n in lengths.values()):
        raise DatasetError(
            f"live: expected {N_ENTRIES} entries (jp2k 227, jpeg 233, wn 174, gblur 174, fastfading 174) "
            f"in every label variable, found {lengths}; re-download the .mat files"
        )

    resolver = PathResolver(root)
    entries = _entry_paths()
    original = np.asarray(variables["orgs"], dtype=float) == 1
    frame = pd.DataFrame(
        {
            "item_id": [path for _, path in entries],
            "path": [resolver.resolve_or_keep(path) for _, path in entries],
            "score": np.asarray(variables[score_var], dtype=float),
            "content_id": [Path(str(name)).stem for name in refnames],
            "distortion": [folder for folder, _ in entries],
            "level": pd.array([pd.NA] * len(entries), dtype="Int64"),  # the .mat files give no levels
            "reference": [str(name) for name in refnames],
        }
    )
    if std_var:
        frame["std"] = np.asarray(variables[std_var], dtype=float)
    items = frame[~original].reset_index(drop=True)
    dataset = make_dataset(INFO, items, root)
    set_excluded(dataset.items, frame.loc[original, "path"])
    return dataset
