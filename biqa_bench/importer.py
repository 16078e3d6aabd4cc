"""Importing predictions made elsewhere, so any external method joins the benchmark.

Input: CSV files with columns ``item_id`` and ``prediction`` (optionally ``split``), either one
file holding a ``split`` column or one file per split in split order. Only the test items of
each split are kept; every test item must have exactly one finite prediction. Predictions of
items outside a split's test part (its training or validation items, or items of no part), and
of splits the split file does not have, are ignored and counted in :class:`Imported`.

``whole=True`` (``biqa import --whole``): one file of predictions for the labelled items is one
run evaluated on the whole dataset, no split (a pretrained or opinion-unaware method: PSNR/SSIM
on a full-reference set, NIQE, a model trained elsewhere). Every labelled item needs a
prediction, unless ``allow_missing``: then the missing items are left out and counted in the
manifest (``n_missing``, ``missing_items``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .datasets.registry import Dataset
from .errors import RunError
from .runner import missing_fields, run_manifest
from .splits import SplitSet
from .store import WHOLE, MANIFEST, check_run_kind_free, predictions_frame, read_manifest, run_dir, write_run


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


def _checked_lookup(path: Path, frame: pd.DataFrame, dataset: Dataset, known: set) -> pd.Series:
    """item_id -> prediction of one file, after the checks every import makes."""
    unknown = sorted(set(frame["item_id"]) - known)
    if unknown:
        raise RunError(f"{path}: {len(unknown)} item ids are not in dataset '{dataset.name}' (e.g. {unknown[:3]}); wrong dataset?")
    duplicated = frame.loc[frame["item_id"].duplicated(), "item_id"].tolist()
    if duplicated:
        raise RunError(f"{path}: duplicate item ids {duplicated[:3]}; keep one prediction per item")
    bad = frame.loc[~np.isfinite(frame["prediction"].to_numpy(dtype=float)), "item_id"].tolist()
    if bad:
        raise RunError(f"{path}: NaN or non-numeric predictions for items {bad[:3]}; fix or drop them")
    return frame.set_index("item_id")["prediction"]


def _check_replace(folder: Path, method: str, source: Path, force: bool) -> None:
    """A run already in ``folder`` is replaced only when it imported the same file, or with ``force``."""
    existing = folder / MANIFEST
    if existing.is_file() and not force:
        previous = read_manifest(existing).get("params", {}).get("imported_from")
        if previous != str(Path(source).resolve()):
            raise RunError(f"{folder}: holds another run of '{method}'; import under another --method or pass --force")


def import_whole(
    method: str,
    dataset: Dataset,
    path: Path,
    out: Path,
    allow_missing: bool = False,
    force: bool = False,
) -> Path:
    """Import one file of predictions as a whole-dataset run (see the module docstring); returns its folder."""
    path = Path(path)
    frame = _read(path)
    lookup = _checked_lookup(path, frame, dataset, set(dataset.items["item_id"]))
    present = dataset.items["item_id"].isin(lookup.index).to_numpy()
    missing = dataset.items.loc[~present, "item_id"].tolist()
    n_items = len(dataset.items)
    if missing and not allow_missing:
        raise RunError(
            f"{path}: no prediction for {len(missing)} of the {n_items} items of '{dataset.name}' (e.g. {missing[:5]}); "
            f"add them, or pass --allow-missing to evaluate the {n_items - len(missing)} predicted"
        )
    if not present.any():
        raise RunError(f"{path}: no prediction for any item of '{dataset.name}'; wrong dataset?")
    folder = run_dir(out, dataset.name, method, WHOLE)
    check_run_kind_free(out, dataset.name, method, whole=True)
    _check_replace(folder, method, path, force)
    items = dataset.items[present].reset_index(drop=True)
    predictions = predictions_frame(items, dataset.name, WHOLE, lookup.loc[items["item_id"]].to_numpy(dtype=float))
    manifest = run_manifest("run", method, {"imported_from": str(path.resolve())}, dataset, None, WHOLE, None, 0)
    manifest.update({"n_test": len(items), "imported": True, **missing_fields(missing)})
    write_run(folder, predictions, manifest)
    return folder


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
        lookup = _checked_lookup(path, frame, dataset, known)
        outside = len(set(lookup.index) - set(split.test))
        if outside:
            ignored[split.index] = outside
        missing = [i for i in split.test if i not in lookup.index]
        if missing:
            raise RunError(f"{path}: no prediction for {len(missing)} test items of split {split.index} (e.g. {missing[:3]})")
        test = dataset.subset(split.test)
        predictions = predictions_frame(test, dataset.name, split.index, lookup.loc[test["item_id"]].to_numpy(dtype=float))
        folder = run_dir(out, dataset.name, method, split.index)
        check_run_kind_free(out, dataset.name, method, whole=False)
        _check_replace(folder, method, path, force)
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
