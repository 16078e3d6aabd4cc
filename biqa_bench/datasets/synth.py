"""Generate a distorted data set with pseudo-MOS labels from a user's folder of pristine images.

This is the generator of the embedded sets (:mod:`biqa_bench.datasets.synthetic`) run on your own
photographs, the way QAMT and HCL build their pre-training sets:

- ``kind='synthetic'``: each image gets the 39 single distortions of the paper's class table
  (or a seeded subset of ``per_image`` of them), with its class index and pseudo-MOS;
- ``kind='authentic'``: each image gets ``per_image`` (default 28) distinct blends of 2-3 of the
  seven authentic-like distortions, with the 26-way multi-label target and pseudo-MOS.

Output folder::

    out_dir/images/<content>/<item>.png     distorted images
    out_dir/reference/<content>.png         the pristine image as used (after --size)
    out_dir/parts/<content>.csv             rows of one finished source image (the resume marker)
    out_dir/labels.csv                      all rows: path, score, content, distortion, level,
                                            labels, item_id, class_index, reference_path, fr_*
    out_dir/manifest.json                   parameters, versions, counts, timing

Work is split per source image over a process pool. A source image is finished when its
``parts/<content>.csv`` exists (written atomically after its images), so re-running the same
command skips finished images and an interruption loses at most the images in flight.
``labels.csv`` is loadable as a user dataset (score range 0-100, higher is better, content
column ``content``).
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from PIL import Image

from . import distortions as D
from .pseudo_mos import MIN_SIDE
from .synthetic import (
    GENERATOR_VERSION,
    MIXED_PER_CONTENT,
    init_generator_worker,
    generator_pool_context,
    generator_versions,
    default_workers,
    generate_content,
)
from ..errors import BiqaError
from ..images import DECODE_ERRORS, ImageReadError, read_image
from ..store import atomic_write_csv, atomic_write_json

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".webp"}
LABELS_FILE = "labels.csv"
MANIFEST_FILE = "manifest.json"
PARTS_DIR = "parts"
LABEL_COLUMNS = ["path", "score", "content", "distortion", "level", "labels"]


class SynthError(BiqaError):
    """A source folder, source image or output folder the generator cannot use."""


def find_images(images_dir: Path) -> list[Path]:
    """Image files under ``images_dir`` (recursively), sorted by relative path."""
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise SynthError(f"{images_dir}: not a folder; pass --images DIR with your pristine images")
    files = sorted(
        (p for p in images_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
        key=lambda p: p.relative_to(images_dir).as_posix(),
    )
    if not files:
        raise SynthError(
            f"{images_dir}: no images found (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}); "
            "point --images at a folder of pristine photographs"
        )
    return files


def content_id_for(relative: str) -> str:
    """A file-system-safe content name from a relative path: ``a/b c.jpg`` -> ``a__b_c_jpg``."""
    text = relative.replace("/", "__").replace(".", "_")
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


def prepare_image(image: np.ndarray, size: int | None) -> np.ndarray:
    """Resize so the short side is ``size`` and take the centred square; None keeps the image."""
    if size is None:
        return image
    h, w = image.shape[:2]
    scale = size / min(h, w)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    pil = Image.fromarray(image).resize((new_w, new_h), Image.Resampling.LANCZOS)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return np.asarray(pil.crop((left, top, left + size, top + size)).convert("RGB"))


def _read_source(path: Path) -> np.ndarray:
    try:
        return read_image(path)
    except ImageReadError as exc:
        raise SynthError(f"{path}: cannot read image ({exc.reason}); remove or replace the file and re-run") from None


def _check_header(path: Path, size: int | None) -> None:
    """Cheap up-front check (header only): readable, and big enough when kept at native size."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except DECODE_ERRORS as exc:
        raise SynthError(f"{path}: cannot read image ({exc}); remove or replace the file and re-run") from None
    if size is None and min(width, height) < MIN_SIDE:
        raise SynthError(
            f"{path}: {width}x{height} is smaller than {MIN_SIDE}x{MIN_SIDE}, the least MS-SSIM needs; "
            f"pass --size {MIN_SIDE} or larger to resize, or remove the file"
        )


def _job(args: tuple) -> tuple[str, int]:
    path, content_id, kind, seed, out_dir, size, per_image = args
    out_dir = Path(out_dir)
    reference = prepare_image(_read_source(Path(path)), size)
    h, w = reference.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise SynthError(f"{path}: {w}x{h} is smaller than {MIN_SIDE}x{MIN_SIDE}; pass a larger --size or remove it")
    rows = generate_content(
        reference,
        content_id,
        kind,
        seed,
        out_dir,
        image_dir=f"images/{content_id}",
        reference_path=f"reference/{content_id}.png",
        per_content=per_image,
    )
    rows.insert(rows.columns.get_loc("content_id"), "content", rows.pop("content_id"))
    rows["source"] = Path(path).name
    atomic_write_csv(out_dir / PARTS_DIR / f"{content_id}.csv", rows)
    return content_id, len(rows)


def _parameters(images_dir: Path, kind: str, seed: int, size: int | None, per_image: int | None) -> dict:
    return {
        "images_dir": str(Path(images_dir).resolve()),
        "kind": kind,
        "seed": int(seed),
        "size": size,
        "per_image": per_image,
        "generator_version": GENERATOR_VERSION,
    }


def synthesize_folder(
    images_dir: Path | str,
    out_dir: Path | str,
    kind: str = "synthetic",
    seed: int = 0,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    size: int | None = None,
    per_image: int | None = None,
) -> Path:
    """Generate (or resume generating) a distorted set from ``images_dir`` into ``out_dir``.

    ``kind``: 'synthetic' or 'authentic'. ``size``: resize each source so its short side is
    ``size`` and centre-crop a square (None keeps native size; sources must then be at least
    161x161). ``per_image``: distorted images per source (synthetic: a seeded subset of the 39
    classes; authentic: number of blends, default 28). ``progress(done, total)`` counts sources.
    Returns ``out_dir``; raises :class:`SynthError` (a BiqaError) naming the file at fault.
    """
    return synthesize_files(find_images(images_dir), images_dir, out_dir, kind=kind, seed=seed, workers=workers,
                            progress=progress, size=size, per_image=per_image)


def _checked_options(kind: str, size, per_image) -> tuple[int | None, int | None]:
    if kind not in ("synthetic", "authentic"):
        raise SynthError(f"kind must be 'synthetic' or 'authentic', not '{kind}'")
    if size is not None and int(size) < MIN_SIDE:
        raise SynthError(f"size {size} is too small: MS-SSIM needs at least {MIN_SIDE} pixels a side")
    size = None if size is None else int(size)
    if per_image is not None:
        per_image = int(per_image)
        limit = len(D.SYNTHETIC_CLASSES) if kind == "synthetic" else None
        if per_image < 1 or (limit is not None and per_image > limit):
            raise SynthError(f"per_image must be between 1 and {limit or 'many'}, not {per_image}")
    return size, per_image


def _content_ids(sources: list[Path], images_dir: Path) -> list[str]:
    """The content name of each source (from its path below ``images_dir``), each one once."""
    if not sources:
        raise SynthError(f"{images_dir}: no source images given; pass at least one image file")
    for source in sources:
        if not source.is_file():
            raise SynthError(f"{source}: source image not found; check the path")
    try:
        relative = [p.resolve().relative_to(images_dir.resolve()).as_posix() for p in sources]
    except ValueError:
        outside = next(p for p in sources if not p.resolve().is_relative_to(images_dir.resolve()))
        raise SynthError(f"{outside}: not inside {images_dir}; pass the folder that holds all sources as root") from None
    content_ids = [content_id_for(r) for r in relative]
    duplicates = sorted({c for c in content_ids if content_ids.count(c) > 1})
    if duplicates:
        clash = [r for r, c in zip(relative, content_ids) if c == duplicates[0]]
        raise SynthError(f"{images_dir}: files {clash} map to the same content name; rename one of them")
    return content_ids


def _check_resumable(manifest_path: Path, parameters: dict, out_dir: Path) -> None:
    """A folder generated before may be resumed only with the same parameters."""
    if not manifest_path.exists():
        return
    try:
        previous = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError):
        raise SynthError(f"{manifest_path}: unreadable manifest; delete {out_dir} or choose another --out") from None
    changed = {k: (previous.get("parameters", {}).get(k), v) for k, v in parameters.items()
               if k != "images_dir" and previous.get("parameters", {}).get(k) != v}
    if changed:
        detail = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
        raise SynthError(
            f"{out_dir}: was generated with other parameters ({detail}); choose another --out or delete the folder"
        )


def _generate(pending: list[tuple], total: int, workers: int, report: Callable[[int, int], None]) -> int:
    """Generate the pending sources (in ``workers`` processes); the number of images made."""
    done = total - len(pending)
    report(done, total)
    generated_now = 0
    if workers == 1 or len(pending) <= 1:
        for job in pending:
            _, n = _job(job)
            generated_now += n
            done += 1
            report(done, total)
    elif pending:
        with ProcessPoolExecutor(max_workers=workers, mp_context=generator_pool_context(), initializer=init_generator_worker) as pool:
            queue = iter(pending)
            in_flight = set()
            try:
                for job in queue:  # keep a bounded number of jobs submitted
                    in_flight.add(pool.submit(_job, job))
                    if len(in_flight) >= 2 * workers:
                        finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                        for future in finished:
                            generated_now += future.result()[1]
                            done += 1
                            report(done, total)
                for future in list(in_flight):
                    generated_now += future.result()[1]
                    done += 1
                    report(done, total)
            except BaseException:
                for future in in_flight:
                    future.cancel()
                raise

    return generated_now


def synthesize_files(
    files,
    root: Path | str,
    out_dir: Path | str,
    kind: str = "synthetic",
    seed: int = 0,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    size: int | None = None,
    per_image: int | None = None,
) -> Path:
    """:func:`synthesize_folder` on an explicit list of image files under ``root`` (content names
    come from the paths relative to ``root``). Use it to generate from a subset, for example only
    the training images of a split, so no test content reaches a pre-training set."""
    size, per_image = _checked_options(kind, size, per_image)
    images_dir, out_dir = Path(root), Path(out_dir)
    started = time.perf_counter()
    sources = [Path(f) for f in files]
    content_ids = _content_ids(sources, images_dir)
    parameters = _parameters(images_dir, kind, seed, size, per_image)
    manifest_path = out_dir / MANIFEST_FILE
    _check_resumable(manifest_path, parameters, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(manifest_path, {"status": "running", "parameters": parameters})

    parts = out_dir / PARTS_DIR
    pending = [
        (str(path), cid, kind, seed, str(out_dir), size, per_image)
        for path, cid in zip(sources, content_ids)
        if not (parts / f"{cid}.csv").exists()
    ]
    for job in pending:
        _check_header(Path(job[0]), size)
    workers = default_workers() if workers is None else max(1, int(workers))
    generated_now = _generate(pending, len(sources), workers, progress or (lambda done, total: None))
    total = len(sources)

    frames = [pd.read_csv(parts / f"{cid}.csv", dtype={"level": str, "labels": str}) for cid in content_ids]
    labels = pd.concat(frames, ignore_index=True)
    ordered = LABEL_COLUMNS + [c for c in labels.columns if c not in LABEL_COLUMNS]
    labels = labels[ordered]
    atomic_write_csv(out_dir / LABELS_FILE, labels)
    seconds = time.perf_counter() - started
    manifest = {
        "status": "complete",
        "parameters": parameters,
        "versions": generator_versions(),
        "n_sources": total,
        "n_items": int(len(labels)),
        "items_per_distortion": {k: int(v) for k, v in labels["distortion"].value_counts().sort_index().items()},
        "class_table": [list(c) for c in (D.SYNTHETIC_CLASSES if kind == "synthetic" else D.AUTHENTIC_CLASSES)],
        "per_image": per_image if per_image is not None else (
            len(D.SYNTHETIC_CLASSES) if kind == "synthetic" else MIXED_PER_CONTENT),
        "generated_this_run": generated_now,
        "seconds_this_run": round(seconds, 2),
        "images_per_second_this_run": round(generated_now / seconds, 3) if generated_now else None,
        "score": "pseudo-MOS 0-100, higher is better (mean of six mapped FR metrics)",
    }
    atomic_write_json(manifest_path, manifest)
    return out_dir
