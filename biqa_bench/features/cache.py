"""A per-image feature cache: hand-crafted features are computed once per image, reused by
every split, every repeat and every later run.

An entry is keyed by (feature name, feature version, absolute image path, file size, file
mtime, image source, :data:`~biqa_bench.images.DECODER_VERSION`): editing or replacing an
image, bumping the feature or decoder version, or reading the images through a resizing image cache (:func:`image_source_tag`) misses the cache.
Entries live under ``<cache_dir>/features/<name>-<version>/<k[:2]>/<k>.npy``, one small file
per image, written atomically (temporary file + rename), so parallel jobs may share the cache
and an interrupted extraction leaves no half entry. An unreadable entry counts as a miss.
"""

from __future__ import annotations

import hashlib
import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..images import DECODER_VERSION
from ..store import atomic_write_bytes, safe_name

ImageReader = Callable[[str], np.ndarray]
Extractor = Callable[[np.ndarray], np.ndarray]


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0


def image_source_tag(images: Any) -> str:
    """What pixels an image source yields: ``original`` for plain file reads and for a decode-once
    cache at original size (:mod:`biqa_bench.imagecache`), else its size and draft setting."""
    size, draft = getattr(images, "size", "original"), getattr(images, "draft", False)
    if images is None or (size == "original" and not draft):
        return "original"
    return f"size={size};draft={bool(draft)}"


class FeatureCache:
    """Feature vectors of images for one (feature name, version)."""

    def __init__(self, cache_dir: Path | str, name: str, version: str, source: str = "original"):
        self.name = name
        self.version = version
        self.source = source
        self.folder = Path(cache_dir) / "features" / safe_name(f"{name}-{version}")
        self.stats = CacheStats()

    def key(self, path: str | Path) -> str:
        path = Path(path).absolute()
        info = path.stat()  # a missing image is the caller's error, raised by its reader
        fields = [self.name, self.version, str(path), str(info.st_size), str(info.st_mtime_ns), self.source, f"decoder{DECODER_VERSION}"]
        text = "\0".join(fields)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def _entry(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.npy"

    def get(self, path: str | Path) -> np.ndarray | None:
        try:
            entry = self._entry(self.key(path))
        except OSError:
            return None
        try:
            return np.load(entry, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None

    def put(self, path: str | Path, features: np.ndarray) -> None:
        entry = self._entry(self.key(path))
        entry.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(features), allow_pickle=False)
        # No fsync: a cache entry lost in a power cut is simply recomputed.
        atomic_write_bytes(entry, buffer.getvalue(), fsync=False)

    def compute(
        self,
        paths: Sequence[str | Path],
        extract: Extractor,
        read_image: ImageReader,
        n_jobs: int = 1,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Stack the features of ``paths`` (one row each), extracting only the missing ones.

        ``n_jobs > 1`` extracts in threads (numpy and scipy filters release the GIL).
        """
        rows: list[np.ndarray | None] = [self.get(p) for p in paths]
        missing = [i for i, row in enumerate(rows) if row is None]
        self.stats.hits += len(paths) - len(missing)
        self.stats.misses += len(missing)

        def work(index: int) -> tuple[int, np.ndarray]:
            features = np.asarray(extract(read_image(str(paths[index]))))
            self.put(paths[index], features)
            return index, features

        done = len(paths) - len(missing)
        if progress:
            progress(done, len(paths))
        if n_jobs > 1 and len(missing) > 1:
            with ThreadPoolExecutor(max_workers=n_jobs) as pool:
                for index, features in pool.map(work, missing):
                    rows[index] = features
                    done += 1
                    if progress:
                        progress(done, len(paths))
        else:
            for index in missing:
                rows[index] = work(index)[1]
                done += 1
                if progress:
                    progress(done, len(paths))
        if not rows:
            return np.empty((0, 0))
        return np.vstack([np.atleast_1d(row) for row in rows])  # type: ignore[arg-type]
