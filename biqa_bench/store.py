"""Reading and writing runs: run folders, manifests, the predictions table (atomic writes from :mod:`.fileio`).

A run is one (method, train dataset, split) and lives in its own folder::

    <out>/<train dataset>/<method>/split_<k>/predictions.csv
                                            /manifest.json
                                            /model/
                                            /inference/<dataset>-<fingerprint>.csv

``manifest.json`` holds the config, seeds, versions, dataset fingerprint, split hash, weights
hash and timings. The manifest is written last, so a folder with a manifest is a complete run.

There is one predictions schema, :data:`PREDICTION_COLUMNS`, built by :func:`predictions_frame`
and read back by :func:`read_predictions`: a run's own test predictions (``predictions.csv``,
subset ``test``; trained or imported alike) and its model's predictions of every item of another
image set (``inference/*.csv``, subset ``all``, cached by :func:`inference_path`). Analyses read
predictions only through this module (:meth:`Run.predictions`, :meth:`Run.inference`,
:func:`load_predictions`).

A complete run is never deleted before its replacement exists: :func:`staged_run` has a
retraining (``biqa train --force``) write into ``.split_<k>.staging`` beside the run and swaps it
in only when complete, in one atomic exchange of the two folders where the file system offers it
(Linux ``renameat2(RENAME_EXCHANGE)``), else by two renames with the old run kept as
``.split_<k>.previous`` in between, which :func:`find_runs` reads in place of the missing run and
:func:`recover_run` puts back. Folders whose names start with a dot are never runs.

A whole-dataset run (a pretrained or opinion-unaware method evaluated on every labelled item,
no split) lives in ``<out>/<dataset>/<method>/whole/``; its manifest and its rows say
``split: whole`` (:data:`WHOLE`), and its rows' ``subset`` is ``test`` as every evaluated row's
is. A method has either split runs or a whole run on one dataset in one results folder, never
both (:func:`find_runs` refuses the mix), so the analyses' groups never mix the two.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from .errors import RunError

# The file-level write helpers live in fileio; the store is where the rest of the package gets them.
from .fileio import (  # noqa: F401
    atomic_folder,
    atomic_write_bytes,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
    file_lock,
    sha256_file,
)

PREDICTION_COLUMNS = ["item_id", "dataset", "split", "subset", "quality", "score", "prediction"]
#: optional per-item label columns a predictions table carries when the dataset has them
LABEL_EXTRAS = ("std", "n_ratings")
MANIFEST = "manifest.json"
PREDICTIONS = "predictions.csv"
FAILED = "failed.json"  # why the last job of an incomplete run folder failed
INFERENCE = "inference"
#: ``subset`` of a run's predictions of its split's test part, and of a whole other image set.
TEST_SUBSET = "test"
ALL_SUBSET = "all"
#: The ``split`` of a whole-dataset run (in its manifest, its rows and the evaluation records).
WHOLE = "whole"


def is_whole(split: Any) -> bool:
    return isinstance(split, str) and split == WHOLE


def split_order(split: Any) -> tuple[int, int]:
    """Sort key of split values that may mix indices and :data:`WHOLE` (whole runs last)."""
    return (1, 0) if is_whole(split) else (0, int(split))


def split_value(split: Any) -> "int | str":
    """A split as records hold it: the index as an int, or :data:`WHOLE`."""
    return WHOLE if is_whole(split) else int(split)




def safe_name(name: str) -> str:
    """A dataset or method name as a folder name (``koniq:scale=mos`` -> ``koniq@scale=mos``)."""
    return name.replace(":", "@").replace("/", "_").replace(",", "+")


def run_dir(out: Path, dataset: str, method: str, split_index: "int | str") -> Path:
    """A run's folder: ``split_NN`` for a split, ``whole`` for a whole-dataset run."""
    leaf = WHOLE if is_whole(split_index) else f"split_{int(split_index):02d}"
    return Path(out) / safe_name(dataset) / safe_name(method) / leaf


def check_run_kind_free(out: Path, dataset: str, method: str, whole: bool) -> None:
    """Before writing a whole-dataset run (``whole``) or a split run of ``method`` on ``dataset``
    under ``out``: a complete run of the other kind there is a RunError (see :func:`find_runs`)."""
    folder = run_dir(out, dataset, method, WHOLE).parent
    others = [folder / WHOLE] if not whole else sorted(folder.glob("split_*"))
    others = [f for f in others if is_complete(f)]
    if others:
        kind = "split runs" if whole else "a whole-dataset run"
        raise RunError(
            f"{others[0]}: '{method}' already has {kind} on {dataset} in {out}; one results folder holds one kind per "
            "method and dataset: use another --out or another --method name"
        )


def is_complete(folder: Path) -> bool:
    return (Path(folder) / MANIFEST).is_file() and (Path(folder) / PREDICTIONS).is_file()


def record_failure(folder: Path, reason: str) -> None:
    """Note in an incomplete run folder why its job failed (cleared when the job runs again)."""
    import socket
    import traceback
    from datetime import datetime, timezone

    atomic_write_json(Path(folder) / FAILED, {
        "error": reason,
        "traceback": traceback.format_exc() if traceback.format_exc().strip() != "NoneType: None" else None,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })


def read_failure(folder: Path) -> dict[str, Any] | None:
    """The failure record of an incomplete run folder, if its last job failed."""
    path = Path(folder) / FAILED
    if is_complete(folder) or not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {"error": f"{path}: unreadable failure record"}


def predictions_frame(items: pd.DataFrame, dataset: str, split: "int | str", prediction, subset: str = TEST_SUBSET) -> pd.DataFrame:
    """The predictions table (:data:`PREDICTION_COLUMNS`) of one run on ``items`` (as the items
    table has them): its split's test items (``subset='test'``) or a whole image set (``'all'``).
    ``split`` is the split index, or :data:`WHOLE` for a whole-dataset run (its items: every item predicted).
    The items' ``std`` and ``n_ratings`` come along where the dataset has them (:data:`LABEL_EXTRAS`:
    the Krasula analysis needs them)."""
    frame = pd.DataFrame(
        {
            "item_id": items["item_id"].to_numpy(),
            "dataset": dataset,
            "split": split,
            "subset": subset,
            "quality": items["quality"].to_numpy(),
            "score": items["score"].to_numpy(),
            "prediction": prediction,
        }
    )
    for column in LABEL_EXTRAS:
        if column in items.columns:
            frame[column] = items[column].to_numpy()
    return frame


def read_predictions(path: Path, fill: dict[str, Any] | None = None) -> pd.DataFrame:
    """A predictions table written by :func:`write_run` or :func:`write_inference`, its columns
    in the schema's order; ``fill`` gives values for schema columns an older file lacks. An
    unreadable file or one without the schema's columns is a :class:`RunError` naming it."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype={"item_id": str})
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise RunError(f"{path}: cannot read predictions ({exc}); delete the run folder and re-run") from None
    absent = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
    if absent and fill:
        frame = frame.assign(**{c: fill[c] for c in absent if c in fill})
    missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
    if missing:
        raise RunError(f"{path}: missing columns {missing}; delete the run folder and re-run")
    if absent:
        frame = frame[PREDICTION_COLUMNS + [c for c in frame.columns if c not in PREDICTION_COLUMNS]]
    return frame


def inference_path(folder: Path, dataset: str, fingerprint: str) -> Path:
    """Where a run's model's predictions of every item of ``dataset`` (that fingerprint) are cached."""
    return Path(folder) / INFERENCE / f"{safe_name(dataset)}-{fingerprint}.csv"


def cached_inference(path: Path, split: "int | str") -> pd.DataFrame | None:
    """The cached inference table at ``path`` (of a run of split ``split``), or None when there is
    none. Tables cached before the schema held ``split`` and ``subset`` get them filled in."""
    if not Path(path).is_file():
        return None
    return read_predictions(path, fill={"split": split_value(split), "subset": ALL_SUBSET})


def write_inference(path: Path, predictions: pd.DataFrame) -> None:
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise RunError(f"{path}: predictions lack columns {missing}")
    atomic_write_csv(path, predictions)


def write_run(folder: Path, predictions: pd.DataFrame, manifest: dict[str, Any]) -> None:
    """Write a run: predictions first, manifest last (the manifest marks completion)."""
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise RunError(f"{folder}: predictions lack columns {missing}")
    atomic_write_csv(Path(folder) / PREDICTIONS, predictions)
    atomic_write_json(Path(folder) / MANIFEST, manifest)


@dataclass(frozen=True)
class Run:
    folder: Path
    manifest: dict[str, Any]

    @property
    def method(self) -> str:
        return self.manifest["method"]

    @property
    def train_dataset(self) -> str:
        return self.manifest["train_dataset"]

    @property
    def split(self) -> "int | str":
        """The split index, or :data:`WHOLE` for a whole-dataset run."""
        return split_value(self.manifest["split"])

    @property
    def is_whole(self) -> bool:
        return is_whole(self.manifest.get("split"))

    def predictions(self) -> pd.DataFrame:
        """The run's test predictions, with ``method`` and ``train_dataset``."""
        path = self.folder / PREDICTIONS
        frame = read_predictions(path)
        expected = self.manifest.get("n_test")
        if expected is not None and len(frame) != int(expected):
            raise RunError(
                f"{path}: holds {len(frame)} predictions but its manifest says {expected}; "
                "the file was changed or truncated: delete the run folder and re-run"
            )
        return self._labelled(frame)

    def inference(self) -> pd.DataFrame | None:
        """The model's cached predictions of other image sets (``inference/*.csv``, one table,
        with ``method`` and ``train_dataset``); None when it has predicted none."""
        frames = [cached_inference(path, self.split) for path in sorted((self.folder / INFERENCE).glob("*.csv"))]
        if not frames:
            return None
        return self._labelled(pd.concat(frames, ignore_index=True))

    def _labelled(self, frame: pd.DataFrame) -> pd.DataFrame:
        frame.insert(0, "method", self.method)
        frame.insert(1, "train_dataset", self.train_dataset)
        return frame


class SplitBusy(Exception):
    """A run folder is being trained by another live process (see :func:`acquire_split_lock`)."""


def acquire_split_lock(folder: Path):
    """Mark ``folder`` as being trained by this process: a non-blocking fcntl lock on
    '.NAME.lock' beside it, which holds host and PID for the message. Raises :class:`SplitBusy`
    naming the holder when another process has it, so that two ``biqa train`` on one results
    folder never clear each other's work. The kernel drops the lock when its process dies (a
    crash, ``kill -9``), so a dead holder never blocks. Returns the handle for
    :func:`release_split_lock` (None where fcntl does not exist)."""
    import socket

    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no cross-process lock
        return None
    lock = Path(folder).parent / f".{Path(folder).name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        handle = open(lock, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise SplitBusy(f"being trained by process {holder} (lock {lock})") from None
        try:  # its previous holder may have removed the file between our open and lock: retry
            same = os.stat(lock).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{socket.gethostname()} {os.getpid()}\n")
            handle.flush()
            return handle
        handle.close()
    raise SplitBusy(f"its lock {lock} keeps changing hands")


def release_split_lock(handle) -> None:
    if handle is None:
        return
    try:
        Path(handle.name).unlink(missing_ok=True)  # removed while held: a waiter's inode check sees it
    finally:
        handle.close()  # closing drops the lock


def read_manifest(path: str | Path) -> dict[str, Any]:
    """A run's manifest; an unreadable or malformed one is a :class:`RunError` naming it."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(f"{path}: unreadable manifest ({exc}); delete the run folder and re-run") from None
    if not isinstance(manifest, dict):
        raise RunError(f"{path}: not a run manifest (a JSON object is expected); delete the run folder and re-run")
    return manifest


STAGING_SUFFIX = ".staging"
PREVIOUS_SUFFIX = ".previous"


def staging_dir(folder: Path) -> Path:
    """Where a retraining of the complete run ``folder`` is written until it is swapped in."""
    return Path(folder).parent / f".{Path(folder).name}{STAGING_SUFFIX}"


def previous_dir(folder: Path) -> Path:
    """Where a complete run waits while its replacement is renamed into place (two-rename swap)."""
    return Path(folder).parent / f".{Path(folder).name}{PREVIOUS_SUFFIX}"


def clear_folder(folder: Path, keep: tuple[str, ...] = ()) -> None:
    """Empty ``folder`` (created if absent), keeping the entries named in ``keep``."""
    folder = Path(folder)
    if folder.exists():
        for entry in folder.iterdir():
            if entry.name in keep:
                continue
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    folder.mkdir(parents=True, exist_ok=True)


@contextmanager
def staged_run(folder: Path, keep: tuple[str, ...] = ()) -> Iterator[Path]:
    """The folder to write the run ``folder`` into; the caller holds its split lock.

    Without a complete run at ``folder`` there is nothing to lose: ``folder`` itself, emptied but
    for ``keep`` (e.g. the checkpoints a resumed run continues from). With one (a retraining),
    a staging folder beside it; when the block ends with a complete run there, it replaces the
    old one by :func:`swap_in`. If the block raises, or the process dies, the old run is as it
    was; a staging folder left by a killed process is emptied by the next retraining.
    """
    folder = Path(folder)
    recover_run(folder)
    if not is_complete(folder):
        clear_folder(folder, keep)
        yield folder
        return
    staging = staging_dir(folder)
    clear_folder(staging)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if not is_complete(staging):
        shutil.rmtree(staging, ignore_errors=True)
        raise RunError(f"{folder}: the retrained run was not completed; the previous run is kept")
    swap_in(staging, folder)


def swap_in(new: Path, final: Path) -> None:
    """Put the folder ``new`` at ``final`` (which exists) and delete what was there, so that at every
    instant ``final`` (or, in the fallback, :func:`previous_dir`) holds a complete run."""
    new, final = Path(new), Path(final)
    if _rename_exchange(new, final):  # one atomic step: final is never missing
        shutil.rmtree(new, ignore_errors=True)  # now the old run
        return
    previous = previous_dir(final)
    if previous.exists():
        shutil.rmtree(previous)
    os.rename(final, previous)
    try:
        os.rename(new, final)
    except BaseException:
        os.rename(previous, final)
        raise
    shutil.rmtree(previous, ignore_errors=True)


def recover_run(folder: Path) -> None:
    """Finish what a swap killed halfway left (call it holding the split lock): the old run back
    from :func:`previous_dir` when ``folder`` is missing, a leftover copy deleted when not."""
    folder = Path(folder)
    previous = previous_dir(folder)
    if not previous.exists():
        return
    if not folder.exists() and is_complete(previous):
        os.rename(previous, folder)
    else:
        shutil.rmtree(previous, ignore_errors=True)


def _rename_exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two existing paths (Linux renameat2 RENAME_EXCHANGE); False where the
    system or file system cannot, so the caller falls back to two renames."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # glibc before 2.28, musl
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _run_folders(root: Path) -> Iterator[Path]:
    """Folders below ``root`` with a manifest, skipping dot-folders (staging, leftovers); a run whose
    folder is missing while a swap is halfway is read from its :func:`previous_dir`."""
    for manifest_path in sorted(root.rglob(MANIFEST)):
        folder = manifest_path.parent
        hidden = [part for part in folder.relative_to(root).parts if part.startswith(".")]
        if not hidden:
            yield folder
        elif hidden == [folder.name] and folder.name.endswith(PREVIOUS_SUFFIX):
            if not (folder.parent / folder.name[1 : -len(PREVIOUS_SUFFIX)]).exists():
                yield folder


def find_runs(root: Path, kind: str = "run") -> list[Run]:
    """Every complete run of ``kind`` below ``root`` (a results folder or a single run folder).

    ``kind``: ``'run'`` (trained or imported runs) or ``'cross-model'`` (the models of
    ``biqa cross``, whose ``predictions.csv`` is empty and whose predictions on other datasets
    are in ``inference/*.csv``). An unreadable manifest raises :class:`RunError` naming it.
    """
    root = Path(root)
    if not root.exists():
        raise RunError(f"{root}: no such results folder; run `biqa train` or `biqa demo` first")
    runs = []
    for folder in _run_folders(root):
        if not (folder / PREDICTIONS).is_file():
            continue
        manifest = read_manifest(folder / MANIFEST)
        if manifest.get("kind", "run") != kind:
            continue
        runs.append(Run(folder, manifest))
    _check_whole_apart(runs)
    return runs


def _check_whole_apart(runs: list[Run]) -> None:
    """A method with both split runs and a whole-dataset run on one dataset would mix the two in
    every analysis's groups (method, dataset, ...): refuse it, naming both folders."""
    seen: dict[tuple[str, str, bool], Run] = {}
    for run in runs:
        key = (run.method, run.train_dataset)
        seen.setdefault((*key, run.is_whole), run)
        other = seen.get((*key, not run.is_whole))
        if other is not None:
            whole, split = (run, other) if run.is_whole else (other, run)
            raise RunError(
                f"{whole.folder}: a whole-dataset run of '{run.method}' on {run.train_dataset} beside its split runs "
                f"({split.folder}); keep one kind per results folder (move one away, or import under another --method)"
            )


def runs_table(root: Path) -> pd.DataFrame:
    """One row per complete run below ``root``: method, train_dataset, split, split_hash, folder."""
    rows = [
        {"method": run.method, "train_dataset": run.train_dataset, "split": run.split,
         "split_hash": run.manifest.get("split_hash"), "folder": str(run.folder)}
        for run in find_runs(root)
    ]
    return pd.DataFrame(rows, columns=["method", "train_dataset", "split", "split_hash", "folder"])


def dataset_infos(root_or_runs) -> dict:
    """Dataset metadata by dataset name, as the runs (below a folder, or given) recorded it."""
    from .datasets.registry import info_from_dict

    infos = {}
    runs = find_runs(root_or_runs) if isinstance(root_or_runs, (str, Path)) else root_or_runs
    for run in runs:
        if "dataset_info" in run.manifest:
            infos[run.manifest["train_dataset"]] = info_from_dict(run.manifest["dataset_info"])
    return infos


def load_predictions(root: Path, runs: list[Run] | None = None) -> pd.DataFrame:
    """All predictions below ``root`` (or of ``runs`` found there) as one tidy table, with
    ``method`` and ``train_dataset``."""
    runs = find_runs(root) if runs is None else runs
    if not runs:
        raise RunError(f"{root}: no complete runs found; run `biqa train` or `biqa demo` first")
    return pd.concat([run.predictions() for run in runs], ignore_index=True)
