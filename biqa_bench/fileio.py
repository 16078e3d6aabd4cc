"""Atomic file writes, file hashes and file locks: the file-level helpers every layer uses.

Kept apart from :mod:`biqa_bench.store` (runs and predictions) so that low-level modules
(``config``, caches) can write atomically without importing the run store; it imports only the
standard library (numpy lazily, for JSON), which keeps ``biqa --help`` fast.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

if TYPE_CHECKING:
    import pandas as pd


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in chunks (weights files in manifests, enhancer sources)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: Path, data: bytes, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: never half a file.

    ``fsync=False`` skips the flush to disk, for cache entries that are cheap to recompute.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=json_default) + "\n")


def atomic_write_csv(path: Path, frame: pd.DataFrame) -> None:
    atomic_write_text(path, frame.to_csv(index=False))


@contextmanager
def atomic_folder(
    final: Path,
    replace: bool = False,
    complete: Callable[[Path], bool] | None = None,
    temp: Path | None = None,
) -> Iterator[Path]:
    """Build a folder in a temporary folder beside ``final``, then rename it into place.

    Yields the temporary folder (``temp`` if given, created here; else a fresh
    ``.<name>.*.tmp``). When the block finishes, it is renamed to ``final``; when the block
    raises anything (KeyboardInterrupt included), it is removed and the error goes on.

    A folder already at ``final``: with ``replace`` it is stale, moved aside and deleted once
    ours is in place, unless ``complete(final)`` says another process finished it meanwhile (then
    theirs is kept). Without ``replace``, or when another process puts a folder there between
    the two renames, the rename fails; if ``complete(final)`` (default: it exists) another
    process finished it first, so theirs is kept and ours removed, else the error is raised.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if temp is None:
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    else:
        tmp = Path(temp)
        tmp.mkdir()
    try:
        yield tmp
        stale = None
        if replace and complete is not None and complete(final):
            # another process put a complete folder there while we built ours: keep theirs (moving
            # it aside would leave that process, which is about to open it, with nothing)
            shutil.rmtree(tmp, ignore_errors=True)
            return
        if replace and final.exists():
            stale = final.parent / f".stale-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            try:
                os.rename(final, stale)
            except FileNotFoundError:
                stale = None  # another process removed it meanwhile
        try:
            os.rename(tmp, final)
        except OSError:
            if not (complete or Path.exists)(final):
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process completed it first: ours is redundant
        if stale is not None:
            shutil.rmtree(stale, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive, blocking lock on ``path`` (fcntl; the kernel drops it when its process dies,
    so a crash leaves no stale lock). Without fcntl (Windows) nothing is locked: the atomic renames
    still keep every file whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
