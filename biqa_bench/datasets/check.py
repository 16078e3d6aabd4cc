"""`biqa datasets check`: is a downloaded database complete and intact?

:func:`check_dataset` verifies that every labelled image exists and fully decodes (a truncated
JPEG counts as unreadable), in parallel, and lists the image files of the image folders that no
label names. High-bit-depth images (16-bit grey, float) decode, rescaled to 8 bits by
:func:`biqa_bench.images.to_rgb`; the report lists them so the user knows. It returns a :class:`CheckReport`; it never prints.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from PIL import Image, ImageFile

from ..images import is_high_bit_depth
from ._files import IMAGE_EXTENSIONS, excluded_paths
from .registry import Dataset

Progress = Callable[[int, int], None]


@dataclass
class CheckReport:
    dataset: str
    root: str
    n_items: int
    n_expected: int | None  # the official count, for comparison
    n_contents: int
    score_min: float | None
    score_max: float | None
    missing: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    unlabelled: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # unreadable path -> decoder message
    n_excluded: int = 0  # files present on purpose but not items (e.g. LIVE's reference copies)
    rescaled: dict[str, str] = field(default_factory=dict)  # high-bit-depth path -> PIL mode (read rescaled to 8 bits)
    too_small: dict[str, dict] = field(default_factory=dict)  # method -> {"min_side": N, "paths": [...]} below it

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unreadable or self.unlabelled)

    @property
    def broken(self) -> list[str]:
        """Paths of labelled items that cannot be used (missing or unreadable)."""
        return sorted(set(self.missing) | set(self.unreadable))

    def summary(self) -> str:
        """One line for the CLI."""
        if self.ok:
            return f"{self.dataset}: all {self.n_items} images present and readable"
        parts = []
        for label, paths in (("missing", self.missing), ("unreadable", self.unreadable), ("unlabelled", self.unlabelled)):
            if paths:
                shown = ", ".join(paths[:3]) + (", ..." if len(paths) > 3 else "")
                parts.append(f"{len(paths)} {label} ({shown})")
        return f"{self.dataset}: " + "; ".join(parts) + f" of {self.n_items} items in {self.root}"

    def to_dict(self) -> dict:
        data = asdict(self)
        data["ok"] = self.ok
        return data


def _decode(path: Path) -> tuple[str | None, str | None, tuple[int, int] | None]:
    """(None, PIL mode, (width, height)) when the file decodes completely, else (the reason, None, None)."""
    try:
        with Image.open(path) as image:
            image.load()
            return None, image.mode, image.size
    except FileNotFoundError:
        return "not found", None, None
    except Exception as exc:  # PIL raises many types for corrupt data; each one means "unreadable"
        return f"{type(exc).__name__}: {exc}", None, None


def _header_size(path: Path) -> tuple[int, int] | None:
    try:
        with Image.open(path) as image:
            return image.size
    except Exception:  # missing or broken: reported by the check and refused by the reader, not here
        return None


def too_small_items(dataset: Dataset, min_side: int, workers: int = 2, exclude=()) -> list[str]:
    """Item ids (not in ``exclude``) whose image's shorter side is below ``min_side`` pixels, from
    the file headers only (a method's :meth:`~biqa_bench.methods.Method.min_image_side`)."""
    if min_side <= 1:
        return []
    skip = set(exclude)
    items = dataset.items[~dataset.items["item_id"].isin(skip)]
    root = Path(dataset.root)
    with ThreadPoolExecutor(max_workers=max(1, int(workers))) as pool:
        sizes = list(pool.map(_header_size, [root / p for p in items["path"]]))
    return sorted(i for i, size in zip(items["item_id"], sizes) if size is not None and min(size) < min_side)


def check_dataset(
    dataset: Dataset, workers: int = 2, progress: Progress | None = None, min_sides: dict[str, int] | None = None,
) -> CheckReport:
    """Check every labelled file of ``dataset`` and list unlabelled images beside them.

    ``min_sides`` (method -> shortest image side it can read) lists, per method, the images below it.

    ``progress(completed, total)`` is called as files are decoded. PIL's
    ``LOAD_TRUNCATED_IMAGES`` is switched off during the check so truncated files are caught.
    """
    items = dataset.items
    root = Path(dataset.root)
    paths = [str(p) for p in items["path"]]
    total = len(paths)

    missing = [p for p in paths if not (root / p).is_file()]
    missing_set = set(missing)
    present = [p for p in paths if p not in missing_set]

    errors: dict[str, str] = {}
    rescaled: dict[str, str] = {}
    sizes: dict[str, tuple[int, int]] = {}
    done = len(missing)
    if progress is not None:
        progress(done, total)
    saved_flag = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with ThreadPoolExecutor(max_workers=max(1, int(workers))) as pool:
            futures = {pool.submit(_decode, root / p): p for p in present}
            for future in as_completed(futures):
                reason, mode, size = future.result()
                if reason is not None:
                    errors[futures[future]] = reason
                    continue
                sizes[futures[future]] = size
                if is_high_bit_depth(mode):
                    rescaled[futures[future]] = mode
                done += 1
                if progress is not None:
                    progress(done, total)
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved_flag

    too_small = {}
    for method, side in sorted((min_sides or {}).items()):
        small = sorted(p for p, size in sizes.items() if min(size) < side)
        if small:
            too_small[method] = {"min_side": int(side), "paths": small}
    scores = items["score"]
    return CheckReport(
        dataset=dataset.name,
        root=str(root),
        n_items=total,
        n_expected=dataset.info.n_items,
        n_contents=int(items["content_id"].nunique()),
        score_min=float(scores.min()) if total else None,
        score_max=float(scores.max()) if total else None,
        missing=sorted(missing),
        unreadable=sorted(errors),
        unlabelled=unlabelled_images(dataset),
        errors=dict(sorted(errors.items())),
        n_excluded=len(excluded_paths(items)),
        rescaled=dict(sorted(rescaled.items())),
        too_small=too_small,
    )


def unlabelled_images(dataset: Dataset) -> list[str]:
    """Image files in the folders that hold labelled items, named by no label (relative paths)."""
    root = Path(dataset.root)
    labelled = {str(p).lower() for p in dataset.items["path"]}
    labelled |= {p.lower() for p in excluded_paths(dataset.items)}
    folders = sorted({os.path.dirname(str(p)) for p in dataset.items["path"]})
    found = []
    for folder in folders:
        directory = root / folder if folder else root
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in entries:
            if not entry.is_file() or os.path.splitext(entry.name)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            relative = f"{folder}/{entry.name}" if folder else entry.name
            if relative.lower() not in labelled:
                found.append(relative)
    return sorted(found)
