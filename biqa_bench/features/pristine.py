"""Pristine image sources of the opinion-unaware methods (NIQE, IL-NIQE) and the cache of the
models fitted on them.

A source is ``"embedded"`` (the default: the distinct photographs the embedded data sets are cut
from, :data:`biqa_bench.datasets.synthetic.EMBEDDED_CONTENTS`, whole, as their packages ship
them) or a folder of images (``-p pristine=DIR``, searched recursively). A fitted model is a dict
of arrays stored as ``<cache_dir>/features/<name>-<version>/pristine-<key>.npz``, the key a
SHA-256 of the source (package versions for the embedded photos; path, size and mtime of each
file for a folder) and the fitting parameters, written atomically: every split, run and process
reuses one fit.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ..errors import MethodError
from ..store import atomic_write_bytes, safe_name

EMBEDDED = "embedded"


def _embedded_sources() -> list[tuple[str, Callable[[], np.ndarray]]]:
    from ..datasets.synthetic import EMBEDDED_CONTENTS

    seen: dict[str, Callable[[], np.ndarray]] = {}
    for content in EMBEDDED_CONTENTS:
        seen.setdefault(content.source, content.load)
    return sorted(seen.items())


def _folder_files(folder: Path) -> list[Path]:
    from ..datasets.synth import SynthError, find_images

    try:
        return find_images(folder)
    except SynthError:
        raise MethodError(f"{folder}: not a folder of pristine images; give -p pristine=DIR with pristine photographs "
                          "(or leave it out for the embedded ones)") from None


def source_identity(source: str) -> dict[str, Any]:
    """What identifies a pristine source's pixels (the cache key's part)."""
    if source == EMBEDDED:
        import matplotlib
        import sklearn
        import skimage

        return {"source": EMBEDDED, "photos": [name for name, _ in _embedded_sources()],
                "versions": [skimage.__version__, sklearn.__version__, matplotlib.__version__]}
    files = _folder_files(Path(source))
    return {"source": str(Path(source).absolute()),
            "files": [[str(p.absolute()), p.stat().st_size, p.stat().st_mtime_ns] for p in files]}


def pristine_images(source: str, read_image: Callable[[str], np.ndarray] | None = None) -> Iterator[np.ndarray]:
    """The RGB uint8 pristine images of ``source``, one at a time."""
    if source == EMBEDDED:
        for _, load in _embedded_sources():
            yield np.ascontiguousarray(np.asarray(load())[..., :3])
        return
    from ..images import read_image as read_file

    for path in _folder_files(Path(source)):
        yield (read_image or read_file)(str(path))


def cached_model(
    cache_dir: Path | str, name: str, version: str, source: str, params: dict[str, Any],
    fit: Callable[[Iterator[np.ndarray]], dict[str, np.ndarray]],
) -> tuple[dict[str, np.ndarray], str]:
    """The model ``fit(pristine_images(source))`` for these params: from the cache, or fitted
    and stored. Returns (arrays, key)."""
    identity = {"name": name, "version": version, "params": params, **source_identity(source)}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode("utf-8")).hexdigest()
    path = Path(cache_dir) / "features" / safe_name(f"{name}-{version}") / f"pristine-{key[:32]}.npz"
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {k: stored[k] for k in stored.files}, key
    except (OSError, ValueError, EOFError):
        pass
    try:
        arrays = fit(pristine_images(source))
    except ValueError as exc:
        raise MethodError(f"{source}: cannot fit the {name} pristine model ({exc})") from None
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue(), fsync=False)  # a lost entry is refitted
    return arrays, key
