"""Importing predictions made elsewhere, so any external method joins the benchmark.

Input: CSV files with columns ``item_id`` and ``prediction`` (optionally ``split``), either one
file holding a ``split`` column or one file per split in split order. Only the test items of
each split are kept; every test item must have exactly one finite prediction. Predictions of
items outside a split's test part (its training or validation items, or items of no part), and
of splits the split file does not have, are ignored and counted in :class:`Imported`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .datasets.registry import Dataset
from .errors import RunError
from .runner import run_manifest
from .splits import SplitSet
from .store import MANIFEST, predictions_frame, read_manifest, run_dir, write_run


def _read(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype={"item_id": str})
    except FileNotFoundError:
        raise RunError(f"{path}: predictions file not found") from None
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise RunError(f"{path}: cannot read predictions CSV ({exc})") from None
    for column in ("item_id", "prediction"):
        if column not in frame.columns:
            raise RunError(f"{path}: no '{column}' column; expected columns item_id,prediction[,split] (found {list(frame.columns)})")
    frame["prediction"] = pd.to_numeric(frame["prediction"], errors="coerce")
    return frame


@dataclass(frozen=True)
class Imported:
    """What an import wrote, and what it ignored."""

    folders: list[Path]
    ignored: dict[int, int] = field(default_factory=dict)  # split -> predictions for items not in its test part
    unknown_splits: list[int] = field(default_factory=list)  # split indices the split file does not have

    @property
    def n_ignored(self) -> int:
        return sum(self.ignored.values())


def import_predictions(
    method: str,
    dataset: Dataset,
    files: list[Path],
    split_set: SplitSet,
    out: Path,
    split_file: Path | None = None,
    force: bool = False,
) -> Imported:
    if not files:
        raise RunError("no predictions file given; pass --predictions FILE.csv")
    tables = [(Path(f), _read(Path(f))) for f in files]
    per_split: dict[int, tuple[Path, pd.DataFrame]] = {}
    if len(tables) == 1 and "split" in tables[0][1].columns:
        path, frame = tables[0]
        try:
            split_values = frame["split"].astype(int)
        except (TypeError, ValueError):
            raise RunError(f"{path}: the 'split' column must hold split indices (0, 1, ...)") from None
        for split, group in frame.groupby(split_values):
            per_split[int(split)] = (path, group)
    else:
        if len(tables) > len(split_set.splits):
            raise RunError(f"{len(tables)} prediction files for {len(split_set.splits)} splits; give one per split or a split column")
        for index, (path, frame) in enumerate(tables):
            per_split[index] = (path, frame)
    known = set(dataset.items["item_id"])
    folders = []
    ignored: dict[int, int] = {}
    for split in split_set.splits:
        if split.index not in per_split:
            continue
        path, frame = per_split[split.index]
        unknown = sorted(set(frame["item_id"]) - known)
        if unknown:
            raise RunError(f"{path}: {len(unknown)} item ids are not in dataset '{dataset.name}' (e.g. {unknown[:3]}); wrong dataset?")
        duplicated = frame.loc[frame["item_id"].duplicated(), "item_id"].tolist()
        if duplicated:
            raise RunError(f"{path}: duplicate item ids {duplicated[:3]}; keep one prediction per item")
        bad = frame.loc[~np.isfinite(frame["prediction"].to_numpy(dtype=float)), "item_id"].tolist()
        if bad:
            raise RunError(f"{path}: NaN or non-numeric predictions for items {bad[:3]}; fix or drop them")
        lookup = frame.set_index("item_id")["prediction"]
        outside = len(set(lookup.index) - set(split.test))
        if outside:
            ignored[split.index] = outside
        missing = [i for i in split.test if i not in lookup.index]
        if missing:
            raise RunError(f"{path}: no prediction for {len(missing)} test items of split {split.index} (e.g. {missing[:3]})")
        test = dataset.subset(split.test)
        predictions = predictions_frame(test, dataset.name, split.index, lookup.loc[test["item_id"]].to_numpy(dtype=float))
        folder = run_dir(out, dataset.name, method, split.index)
        existing = folder / MANIFEST
        if existing.is_file() and not force:
            previous = read_manifest(existing).get("params", {}).get("imported_from")
            if previous != str(Path(path).resolve()):
                raise RunError(f"{folder}: holds another run of '{method}'; import under another --method or pass --force")
        params = {"imported_from": str(Path(path).resolve())}
        manifest = run_manifest("run", method, params, dataset, split_set, split.index, split_file, split_set.seed)
        manifest.update({"n_test": len(test), "imported": True, "n_ignored_predictions": outside})
        write_run(folder, predictions, manifest)
        folders.append(folder)
    if not folders:
        raise RunError(
            f"no split matched the predictions: found splits {sorted(per_split)}, "
            f"the split file has {[s.index for s in split_set.splits]}; check the split column or the number of files"
        )
    unknown_splits = sorted(set(per_split) - {s.index for s in split_set.splits})
    return Imported(folders, ignored, unknown_splits)
