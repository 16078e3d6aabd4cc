"""The decode-once image cache: each dataset decoded and resized once, then read from a memmap.

Decoding JPEGs dominates the time of a deep method's epoch (SPAQ photos are up to 4000x3000),
so a dataset is decoded once at a declared size and kept as raw uint8 RGB pixels in one flat
file that is memory-mapped for reading. Reads are zero-copy views; random crops for training
come straight from the map.

Layout, under ``config.cache_dir() / "images" / "<dataset>-<size>-<items hash>"``:

* ``pixels.u8`` -- every image's HxWx3 bytes, one after the other, in items-table order;
* ``index.npz`` -- ``item_id``, ``path`` (relative to the dataset root), ``offset``, ``height``,
  ``width`` per item;
* ``meta.json`` -- format version, size spec, resampling filter, the dataset fingerprint and the
  *image fingerprint* (item ids, paths, file sizes and modification times), build time. Written
  last: a folder without it is not a cache.

Size specs: ``"short512"`` (any ``"short<N>"``: the shorter side scaled down to N, aspect kept,
never upscaled -- upscaling adds no information and changes how distortions look), ``"original"``
(no resizing; for small sets only), or ``(h, w)`` (every image resized to exactly h x w).
Resizing uses PIL's antialiased bicubic filter on the fully decoded image, unless ``draft=True``
lets libjpeg decode JPEGs at a reduced DCT scale first (several times faster on large photos,
pixels not identical to a full decode; it is part of the cache key).

Staleness: the folder name carries a hash of the item ids and paths and of the size spec, and
``meta.json`` must match the dataset's current image fingerprint (which changes when a file is
re-downloaded) and the expected pixel-file length; otherwise the cache is rebuilt, never read.
A build writes into a ``.partial-*`` folder that is renamed into place only when complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from PIL import Image

from .errors import BiqaError, DatasetError
from .images import DECODE_ERRORS, DECODER_VERSION, to_rgb
from .store import atomic_folder

FORMAT_VERSION = 1
PIXELS = "pixels.u8"
INDEX = "index.npz"
META = "meta.json"
RESAMPLE = "bicubic"
_RESAMPLE_FILTER = Image.Resampling.BICUBIC

Progress = Callable[[int, int], None]


# --------------------------------------------------------------------------- size specs


@dataclass(frozen=True)
class Size:
    """A parsed size spec: ``kind`` is ``"short"``, ``"original"`` or ``"fixed"``."""

    kind: str
    short: int = 0
    height: int = 0
    width: int = 0

    @property
    def key(self) -> str:
        if self.kind == "short":
            return f"short{self.short}"
        if self.kind == "fixed":
            return f"{self.height}x{self.width}"
        return "original"

    def target(self, width: int, height: int) -> tuple[int, int]:
        """The (width, height) an image of the given size is stored at."""
        if self.kind == "original":
            return width, height
        if self.kind == "fixed":
            return self.width, self.height
        shorter = min(width, height)
        if shorter <= self.short:
            return width, height
        scale = self.short / shorter
        if width <= height:
            return self.short, max(1, int(round(height * scale)))
        return max(1, int(round(width * scale))), self.short


def parse_size(size: Any) -> Size:
    """``"short512"`` / ``"original"`` / ``(h, w)`` / ``"384x512"`` -> :class:`Size`."""
    if isinstance(size, Size):
        return size
    if isinstance(size, str):
        text = size.strip().lower()
        if text == "original":
            return Size("original")
        if text.startswith("short") and text[5:].isdigit() and int(text[5:]) > 0:
            return Size("short", short=int(text[5:]))
        height, sep, width = text.partition("x")
        if sep and height.isdigit() and width.isdigit() and int(height) > 0 and int(width) > 0:
            return Size("fixed", height=int(height), width=int(width))
    elif isinstance(size, (tuple, list)) and len(size) == 2:
        try:
            height, width = (int(v) for v in size)
        except (TypeError, ValueError):
            height = width = 0
        if height > 0 and width > 0 and all(float(v) == int(v) for v in size):
            return Size("fixed", height=height, width=width)
    raise BiqaError(
        f"image cache size {size!r} not understood; use 'short512' (any 'short<N>'), "
        "'original', or a (height, width) pair such as (384, 512)"
    )


# --------------------------------------------------------------------------- decoding


def _broken_message(path: str, exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"{path}: image not found"
    return f"{path}: cannot decode image ({exc})"


def decode_resized(path: str | Path, size: Any = "original", draft: bool = False) -> np.ndarray:
    """Decode one file to HxWx3 uint8 RGB at the given size spec (what the cache stores).

    A missing or undecodable file raises :class:`DatasetError` naming it.
    """
    spec = parse_size(size)
    try:
        return _decode(str(path), spec, draft)
    except DECODE_ERRORS as exc:
        raise DatasetError(
            _broken_message(str(path), exc) + "; re-download it, find the broken files with "
            "`biqa datasets check NAME`, or run with --skip-broken"
        ) from None


def _decode(path: str, spec: Size, draft: bool) -> np.ndarray:
    with Image.open(path) as image:
        target = spec.target(*image.size)
        if draft and image.format == "JPEG" and target != image.size:
            # libjpeg scales by 1/2, 1/4 or 1/8 while decoding, never below the target.
            image.draft("RGB", target)
        rgb = to_rgb(image)
    if rgb.size != target:
        rgb = rgb.resize(target, _RESAMPLE_FILTER)
    return np.asarray(rgb)


def _stored_size(path: str, spec: Size) -> tuple[int, int]:
    """(height, width) the file will be stored at, from its header only."""
    with Image.open(path) as image:
        width, height = spec.target(*image.size)
    return height, width


def _decode_into(task: tuple[str, int, int, int, str, Size, bool]) -> str | None:
    """Worker: decode one file and write its pixels at ``offset``; return an error or None."""
    pixels_path, offset, height, width, path, spec, draft = task
    try:
        array = _decode(path, spec, draft)
    except DECODE_ERRORS as exc:
        return _broken_message(path, exc)
    if array.shape != (height, width, 3):
        return f"{path}: decoded to {array.shape[1]}x{array.shape[0]}, header said {width}x{height}"
    fd = os.open(pixels_path, os.O_WRONLY)
    try:
        view = memoryview(np.ascontiguousarray(array)).cast("B")
        written = 0
        while written < len(view):
            written += os.pwrite(fd, view[written:], offset + written)
    finally:
        os.close(fd)
    return None


def _decode_chunk(tasks: list) -> list[str | None]:
    return [_decode_into(task) for task in tasks]


# --------------------------------------------------------------------------- keys


def _items_hash(item_ids: Sequence[str], paths: Sequence[str], spec: Size, draft: bool) -> str:
    digest = hashlib.sha256()
    digest.update(f"v{FORMAT_VERSION}|decoder{DECODER_VERSION}|{spec.key}|{RESAMPLE}|draft={int(draft)}\n".encode())
    for item_id, path in zip(item_ids, paths):
        digest.update(f"{item_id}\t{path}\n".encode("utf-8"))
    return digest.hexdigest()[:16]


def image_fingerprint(root: Path, item_ids: Sequence[str], paths: Sequence[str]) -> str:
    """Hash of item ids, relative paths and each file's size and mtime (changes on re-download).

    Missing files raise :class:`DatasetError` naming them.
    """
    digest = hashlib.sha256()
    missing: list[str] = []
    for item_id, path in zip(item_ids, paths):
        try:
            stat = os.stat(root / path)
        except OSError:
            missing.append(str(root / path))
            continue
        digest.update(f"{item_id}\t{path}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode("utf-8"))
    if missing:
        raise DatasetError(_many("image(s) not found", missing))
    return digest.hexdigest()[:16]


def _many(what: str, files: list[str]) -> str:
    shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
    return (
        f"{len(files)} {what}: {shown}; find them with `biqa datasets check NAME`, "
        "re-download them or run with --skip-broken"
    )


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "dataset"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------- the cache


class ImageCache:
    """A built cache, opened read-only. Use :meth:`open_or_build`; pass it as ``Context.images``.

    ``read(path)`` takes the absolute path of an item (as in ``dataset.with_abspaths()``) or its
    path relative to the dataset root and returns a read-only HxWx3 uint8 view of the map. A
    path that is not in the cache is decoded from its file at the cache's size (a cache miss,
    not an error), so methods see one consistent image size.
    """

    def __init__(self, folder: Path, root: Path):
        self.folder = Path(folder)
        self.root = Path(root)
        self.meta: dict[str, Any] = json.loads((self.folder / META).read_text())
        self.size = parse_size(self.meta["size"])
        self.draft = bool(self.meta.get("draft", False))
        with np.load(self.folder / INDEX, allow_pickle=False) as index:
            self.item_ids = [str(v) for v in index["item_id"]]
            self.paths = [str(v) for v in index["path"]]
            self.offsets = index["offset"].astype(np.int64)
            self.heights = index["height"].astype(np.int64)
            self.widths = index["width"].astype(np.int64)
        self._by_id = {item_id: i for i, item_id in enumerate(self.item_ids)}
        self._by_path: dict[str, int] = {}
        for i, rel in enumerate(self.paths):
            self._by_path[rel] = i
            self._by_path[str(self.root / rel)] = i
        self._resolved: dict[str, int] | None = None
        self._pixels: np.ndarray | None = None
        _ = self.pixels  # map now, so a rebuild swapped in later cannot mix with this index

    # -- opening and building

    @classmethod
    def open_or_build(
        cls,
        dataset,
        size: Any = "short512",
        workers: int = 2,
        progress: Progress | None = None,
        draft: bool = False,
        cache_root: Path | None = None,
    ) -> "ImageCache":
        """Open the dataset's cache at ``size``, building (or rebuilding, if stale) it first.

        ``dataset`` is a :class:`biqa_bench.datasets.registry.Dataset`; ``workers`` processes
        decode in parallel (1 = in this process); ``progress(completed, total)`` is called as
        images are done. ``cache_root`` defaults to ``config.cache_dir() / "images"``.
        """
        spec = parse_size(size)
        if cache_root is None:
            from .config import cache_path

            cache_root = cache_path("images")
        cache_root = Path(cache_root)
        root = Path(dataset.root)
        item_ids = [str(v) for v in dataset.items["item_id"]]
        paths = [str(v) for v in dataset.items["path"]]
        name = _safe(getattr(dataset.info, "name", "dataset"))
        folder = cache_root / f"{name}-{_safe(spec.key)}{'-draft' if draft else ''}-{_items_hash(item_ids, paths, spec, draft)}"
        images = image_fingerprint(root, item_ids, paths)
        cache = cls._open_if_valid(folder, root, images, spec, draft, len(item_ids))
        if cache is None:
            cls._build(folder, root, item_ids, paths, spec, draft, workers, progress, images, dataset)
            cache = cls._open_if_valid(folder, root, images, spec, draft, len(item_ids))
            if cache is None:  # pragma: no cover - only if someone deletes it under us
                raise BiqaError(f"{folder}: image cache vanished right after it was built; build it again")
        elif progress is not None:
            progress(len(item_ids), len(item_ids))
        return cache

    @classmethod
    def _open_if_valid(cls, folder: Path, root: Path, images: str, spec: Size, draft: bool, n: int):
        meta_path = folder / META
        if not meta_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            fresh = (
                meta.get("format") == FORMAT_VERSION
                and meta.get("complete") is True
                and meta.get("image_fingerprint") == images
                and parse_size(meta.get("size")) == spec
                and bool(meta.get("draft", False)) == draft
                and meta.get("n_items") == n
                and os.path.getsize(folder / PIXELS) == meta.get("nbytes")
            )
            if not fresh:
                return None
            cache = cls(folder, root)
        except (OSError, ValueError, KeyError, BiqaError):
            return None
        expected = int((cache.heights * cache.widths * 3).sum())
        if expected != meta["nbytes"] or len(cache.item_ids) != n:
            return None
        return cache

    @staticmethod
    def _build(folder, root, item_ids, paths, spec, draft, workers, progress, images, dataset) -> None:
        started = time.perf_counter()
        folder.parent.mkdir(parents=True, exist_ok=True)
        _remove_dead_partials(folder)
        partial = folder.parent / f".partial-{folder.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # a cache already there is stale: replaced; one another process put there first is kept
        def complete(final: Path) -> bool:  # a fresh cache another process finished meanwhile is kept
            return ImageCache._open_if_valid(final, root, images, spec, draft, len(item_ids)) is not None

        with atomic_folder(folder, replace=True, complete=complete, temp=partial) as tmp:
            abspaths = [str(root / p) for p in paths]
            shapes: list[tuple[int, int]] = []
            broken: list[str] = []
            for path in abspaths:
                try:
                    shapes.append(_stored_size(path, spec))
                except DECODE_ERRORS as exc:
                    broken.append(_broken_message(path, exc))
                    shapes.append((0, 0))
            if broken:
                raise DatasetError(_many("unreadable image(s)", broken))
            heights = np.array([h for h, _ in shapes], dtype=np.int64)
            widths = np.array([w for _, w in shapes], dtype=np.int64)
            sizes = heights * widths * 3
            offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
            nbytes = int(sizes.sum())
            pixels = tmp / PIXELS
            with open(pixels, "wb") as handle:
                handle.truncate(nbytes)
            tasks = [
                (str(pixels), int(o), int(h), int(w), p, spec, draft)
                for o, h, w, p in zip(offsets, heights, widths, abspaths)
            ]
            total = len(tasks)
            errors: list[str] = []
            done = 0
            if progress is not None:
                progress(0, total)
            chunk = 8
            chunks = [tasks[i : i + chunk] for i in range(0, total, chunk)]
            if workers <= 1 or total <= chunk:
                results: Iterable[list[str | None]] = map(_decode_chunk, chunks)
                pool = None
            else:
                pool = ProcessPoolExecutor(max_workers=workers)
                results = pool.map(_decode_chunk, chunks)
            try:
                for outcome in results:
                    errors.extend(e for e in outcome if e)
                    done += len(outcome)
                    if progress is not None:
                        progress(done, total)
            finally:
                if pool is not None:
                    pool.shutdown(wait=True, cancel_futures=True)
            if errors:
                raise DatasetError(_many("unreadable image(s)", errors))
            np.savez(
                tmp / INDEX,
                item_id=np.array(item_ids, dtype=str),
                path=np.array(paths, dtype=str),
                offset=offsets,
                height=heights,
                width=widths,
            )
            with open(pixels, "rb+") as handle:
                os.fsync(handle.fileno())
            meta = {
                "format": FORMAT_VERSION,
                "complete": True,
                "size": spec.key,
                "resample": RESAMPLE,
                "draft": bool(draft),
                "n_items": total,
                "nbytes": nbytes,
                "image_fingerprint": images,
                "dataset": getattr(dataset, "spec", ""),
                "dataset_fingerprint": dataset.fingerprint if hasattr(dataset, "items") else "",
                "root": str(root),
                "workers": int(workers),
                "build_seconds": round(time.perf_counter() - started, 3),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            (tmp / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")

    # -- reading

    def __len__(self) -> int:
        return len(self.item_ids)

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers get a copy without the map; each reopens it on first read.
        state = dict(self.__dict__)
        state["_pixels"] = None
        return state

    @property
    def pixels(self) -> np.ndarray:
        """The whole flat uint8 file, memory-mapped read-only (an ndarray view of the map)."""
        if self._pixels is None:
            nbytes = int(self.meta["nbytes"])
            if nbytes == 0:
                self._pixels = np.zeros(0, dtype=np.uint8)
            else:
                mapped = np.memmap(self.folder / PIXELS, dtype=np.uint8, mode="r", shape=(nbytes,))
                # A plain ndarray view of the map: slicing a np.memmap subclass costs more per read.
                self._pixels = mapped.view(np.ndarray)
        return self._pixels

    @property
    def build_seconds(self) -> float:
        return float(self.meta.get("build_seconds", float("nan")))

    @property
    def nbytes(self) -> int:
        return int(self.meta["nbytes"])

    @property
    def fixed_shape(self) -> tuple[int, int] | None:
        """(h, w) if every image has the same shape, else None."""
        if len(self) and (self.heights == self.heights[0]).all() and (self.widths == self.widths[0]).all():
            return int(self.heights[0]), int(self.widths[0])
        return None

    def as_array(self) -> np.ndarray:
        """All images as one (N, h, w, 3) read-only view; only when they share one shape."""
        shape = self.fixed_shape
        if shape is None:
            raise BiqaError(f"{self.folder}: images differ in size; build the cache with a fixed (h, w) size")
        return self.pixels.reshape(len(self), shape[0], shape[1], 3)

    def index_of(self, item_id: str) -> int:
        try:
            return self._by_id[str(item_id)]
        except KeyError:
            raise DatasetError(
                f"item '{item_id}' is not in the image cache {self.folder}; it was built for another "
                "items table: reopen it with ImageCache.open_or_build(dataset)"
            ) from None

    def _view(self, i: int) -> np.ndarray:
        start = int(self.offsets[i])
        h, w = int(self.heights[i]), int(self.widths[i])
        return self.pixels[start : start + h * w * 3].reshape(h, w, 3)

    def read_item(self, item_id: str) -> np.ndarray:
        """The image of one item id: a read-only HxWx3 uint8 view of the map."""
        return self._view(self.index_of(item_id))

    def _lookup(self, path: str | Path) -> int | None:
        key = str(path)
        found = self._by_path.get(key)
        if found is None:
            found = self._by_path.get(os.path.normpath(key))
        if found is None:
            if self._resolved is None:
                self._resolved = {str((self.root / rel).resolve()): i for i, rel in enumerate(self.paths)}
            try:
                found = self._resolved.get(str(Path(key).resolve()))
            except OSError:
                found = None
        return found

    def __contains__(self, path: str | Path) -> bool:
        return self._lookup(path) is not None

    def read(self, path: str | Path) -> np.ndarray:
        """The image at ``path`` (absolute, or relative to the dataset root) as HxWx3 uint8."""
        found = self._lookup(path)
        if found is None:
            return decode_resized(path, self.size, self.draft)
        return self._view(found)

    def batch(
        self,
        item_ids: Sequence[str],
        crop: int | tuple[int, int] | None = 224,
        rng: np.random.Generator | int | None = None,
        flip: bool = True,
        as_tensor: bool = False,
        out: np.ndarray | None = None,
    ):
        """Random ``crop`` crops (and horizontal flips with probability 1/2) of the given items.

        Returns an (N, ch, cw, 3) uint8 array, or a ``torch.uint8`` tensor sharing its memory if
        ``as_tensor`` (permute to NCHW and normalise on the device). ``rng`` is a
        ``numpy.random.Generator`` or a seed; the same seed gives the same batch. ``crop=None``
        returns whole images (only when they share one shape). ``out`` may be a preallocated
        array (e.g. pinned memory viewed through numpy) to fill.
        """
        if rng is None or isinstance(rng, (int, np.integer)):
            rng = np.random.default_rng(rng)
        indices = [self.index_of(i) for i in item_ids]
        if crop is None:
            shape = self.fixed_shape
            if shape is None:
                raise BiqaError(f"{self.folder}: crop=None needs images of one size; give a crop size")
            ch, cw = shape
        elif isinstance(crop, (tuple, list)):
            ch, cw = int(crop[0]), int(crop[1])
        else:
            ch = cw = int(crop)
        n = len(indices)
        if out is None:
            out = np.empty((n, ch, cw, 3), dtype=np.uint8)
        elif out.shape != (n, ch, cw, 3) or out.dtype != np.uint8:
            raise ValueError(f"out must be uint8 of shape {(n, ch, cw, 3)}, got {out.dtype} {out.shape}")
        heights = self.heights[indices] if n else np.zeros(0, dtype=np.int64)
        widths = self.widths[indices] if n else np.zeros(0, dtype=np.int64)
        small = np.flatnonzero((heights < ch) | (widths < cw))
        if small.size:
            k = int(small[0])
            raise BiqaError(
                f"item '{item_ids[k]}' is {widths[k]}x{heights[k]} in the image cache, smaller than the "
                f"{cw}x{ch} crop; use a smaller crop or a larger cache size"
            )
        tops = rng.integers(0, heights - ch + 1) if n else heights
        lefts = rng.integers(0, widths - cw + 1) if n else widths
        flips = (rng.random(n) < 0.5) if flip else np.zeros(n, dtype=bool)
        for row, (i, top, left, mirrored) in enumerate(zip(indices, tops, lefts, flips)):
            patch = self._view(i)[top : top + ch, left : left + cw]
            if mirrored:
                # One channel at a time: numpy copies a reversed HxWx3 view 3 bytes per inner
                # loop, about 4x slower than these three long strided copies.
                for channel in range(3):
                    out[row, :, :, channel] = patch[:, ::-1, channel]
            else:
                out[row] = patch
        if as_tensor:
            import torch

            return torch.from_numpy(out)
        return out


def _remove_dead_partials(folder: Path) -> None:
    """Delete partial builds of this cache left by processes that no longer run."""
    for partial in folder.parent.glob(f".partial-{folder.name}-*"):
        pid_text = partial.name[len(f".partial-{folder.name}-") :].split("-")[0]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            shutil.rmtree(partial, ignore_errors=True)



def open_image_source(dataset, spec: str = "none", workers: int = 1, progress: Progress | None = None):
    """The image source for ``dataset`` that a ``--image-cache`` spec names: ``None`` for ``none``
    (images decoded from their files), else its :class:`ImageCache` (``short512``, ``original``,
    ``HxW`` such as ``384x512``), built on first use and checked against the files when opened."""
    if spec in (None, "none"):
        return None
    size: Any = spec
    if "x" in spec:
        try:
            height, width = (int(v) for v in spec.split("x"))
        except ValueError:
            raise BiqaError(f"image cache size must be none, short<N>, original or HxW such as 384x512; not '{spec}'") from None
        size = (height, width)
    return ImageCache.open_or_build(dataset, size=size, workers=workers, progress=progress)
