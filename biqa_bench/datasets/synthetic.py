"""The embedded data sets ``synthetic`` and ``mixed``, and the generator they share with ``synth``.

Both are built on first use from pristine photographs that ship inside installed packages
(scikit-image's sample data, scikit-learn's two sample photos, Matplotlib's Grace Hopper), so the
tool needs no download. Each content is a square window of one photo resized to 256x256
(windows of one photo never overlap). Per content:

- ``synthetic`` (kind synthetic): one image per class of the paper's 39 (type, level) classes
  (:data:`~biqa_bench.datasets.distortions.SYNTHETIC_CLASSES`), column ``class_index``.
- ``mixed`` (kind authentic): :data:`MIXED_PER_CONTENT` blends of 2-3 of the seven authentic-like
  distortions at random levels (:func:`~biqa_bench.datasets.distortions.sample_blend`), with the
  26-way multi-label target in column ``labels`` (``;``-joined indices into
  :data:`~biqa_bench.datasets.distortions.AUTHENTIC_CLASSES`).

Scores are pseudo-MOS (:mod:`biqa_bench.datasets.pseudo_mos`): 0-100, higher is better. The
pristine windows are written too (``reference/<content>.png``, column ``reference_path``) for
methods that train on distorted/reference pairs, but they are not items.

Builds go to ``cache_dir()/embedded/<name>-<GENERATOR_VERSION>-seed<seed>[-c<contents>]``:
written into a temporary sibling folder and renamed when complete, so an interrupted build leaves
no half set. Every random draw comes from ``SeedSequence([seed, content key, item index])``, so the
result does not depend on the number of workers or the order they finish in.

Progress: register a callback with :func:`set_progress` (``callback(done, total)``, counted in
images); the registry loader calls it while building.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from PIL import Image

from ..errors import DatasetError
from ..store import atomic_folder
from . import distortions as D
from .registry import DatasetInfo, make_dataset, register_dataset

GENERATOR_VERSION = "1"
IMAGE_SIZE = 256
MIXED_PER_CONTENT = 28
JOB_IMAGES = 13  # images per worker job in embedded builds (parts of a content)
ITEMS_FILE = "items.csv"
MANIFEST_FILE = "manifest.json"

Progress = Callable[[int, int], None]
_progress: Progress | None = None


def set_progress(callback: Progress | None) -> None:
    """Register ``callback(done, total)`` (images) for the next embedded builds; None removes it."""
    global _progress
    _progress = callback


# --------------------------------------------------------------------------------------------
# Pristine contents shipped inside installed packages


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        image = getattr(skimage.data, name)()
        return image[0] if isinstance(image, tuple) else image  # stereo_motorcycle: (left, right, disp)

    return load


def _sklearn(filename: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(filename)

    return load


def _matplotlib(filename: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from matplotlib import cbook

        with Image.open(cbook.get_sample_data(filename, asfileobj=False)) as image:
            return np.asarray(image.convert("RGB"))

    return load


@dataclass(frozen=True)
class Content:
    content_id: str
    source: str  # where the photo comes from, for the manifest
    load: Callable[[], np.ndarray]
    top: int
    left: int
    side: int  # square window side in source pixels, resized to IMAGE_SIZE

    def image(self, size: int = IMAGE_SIZE) -> np.ndarray:
        photo = np.asarray(self.load())[..., :3]
        window = photo[self.top : self.top + self.side, self.left : self.left + self.side]
        if window.shape[:2] != (self.side, self.side):
            raise DatasetError(f"embedded content {self.content_id}: window outside {self.source} {photo.shape}")
        pil = Image.fromarray(np.ascontiguousarray(window))
        if self.side != size:
            pil = pil.resize((size, size), Image.Resampling.LANCZOS)
        return np.asarray(pil.convert("RGB"))


EMBEDDED_CONTENTS: tuple[Content, ...] = (
    Content("astronaut_face", "skimage.data.astronaut", _skimage("astronaut"), 0, 60, 256),
    Content("astronaut_helmet", "skimage.data.astronaut", _skimage("astronaut"), 256, 256, 256),
    Content("chelsea", "skimage.data.chelsea", _skimage("chelsea"), 0, 100, 300),
    Content("coffee", "skimage.data.coffee", _skimage("coffee"), 0, 100, 400),
    Content("rocket", "skimage.data.rocket", _skimage("rocket"), 0, 106, 427),
    Content("motorcycle_engine", "skimage.data.stereo_motorcycle", _skimage("stereo_motorcycle"), 190, 330, 256),
    Content("motorcycle_shelves", "skimage.data.stereo_motorcycle", _skimage("stereo_motorcycle"), 0, 0, 256),
    Content("hubble_a", "skimage.data.hubble_deep_field", _skimage("hubble_deep_field"), 100, 100, 256),
    Content("hubble_b", "skimage.data.hubble_deep_field", _skimage("hubble_deep_field"), 560, 640, 256),
    Content("ihc", "skimage.data.immunohistochemistry", _skimage("immunohistochemistry"), 0, 0, 512),
    Content("china", "sklearn china.jpg", _sklearn("china.jpg"), 0, 40, 427),
    Content("flower", "sklearn flower.jpg", _sklearn("flower.jpg"), 0, 106, 427),
    Content("grace_hopper", "matplotlib grace_hopper.jpg", _matplotlib("grace_hopper.jpg"), 44, 0, 512),
)


# --------------------------------------------------------------------------------------------
# The generator, shared with biqa_bench.datasets.synth (biqa datasets synth)


def content_key(content_id: str) -> int:
    """A stable 32-bit key of a content name (CRC-32), so seeds do not depend on content order."""
    return zlib.crc32(content_id.encode("utf-8"))


def item_rng(seed: int, key: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(key), int(index)]))


_BLEND_STREAM = 1_000_000  # index of the stream that draws a content's blend recipes


def plan_items(content_id: str, kind: str, seed: int, per_content: int | None = None) -> list[dict]:
    """What to generate for one content: a list of recipes (no pixels yet).

    ``synthetic``: every class of SYNTHETIC_CLASSES, or a seeded subset of ``per_content`` classes.
    ``authentic``: ``per_content`` distinct blends (default :data:`MIXED_PER_CONTENT`).
    """
    key = content_key(content_id)
    if kind == "synthetic":
        indices = list(range(len(D.SYNTHETIC_CLASSES)))
        if per_content is not None and per_content < len(indices):
            chosen = item_rng(seed, key, _BLEND_STREAM).choice(len(indices), size=per_content, replace=False)
            indices = sorted(int(i) for i in chosen)
        plans = []
        for index in indices:
            name, level = D.SYNTHETIC_CLASSES[index]
            plans.append(
                {
                    "item_id": f"{content_id}__{name}_{level}",
                    "components": [(name, level)],
                    "distortion": name,
                    "level": level,
                    "class_index": index,
                    "labels": D.format_labels([index]),
                    "rng_index": index,
                }
            )
        return plans
    if kind != "authentic":
        raise DatasetError(f"kind must be 'synthetic' or 'authentic', not '{kind}'")
    n = MIXED_PER_CONTENT if per_content is None else int(per_content)
    rng = item_rng(seed, key, _BLEND_STREAM)
    seen: set[tuple] = set()
    plans = []
    attempts = 0
    while len(plans) < n and attempts < 100 * n:
        attempts += 1
        components = D.sample_blend(rng)
        signature = tuple(components)
        if signature in seen:
            continue
        seen.add(signature)
        j = len(plans)
        plans.append(
            {
                "item_id": f"{content_id}__mix{j:03d}",
                "components": components,
                "distortion": "+".join(name for name, _ in components),
                "level": "+".join(str(level) for _, level in components),
                "class_index": -1,
                "labels": D.format_labels(D.authentic_labels(components)),
                "rng_index": j,
            }
        )
    return plans


def render(reference: np.ndarray, plan: dict, seed: int, content_id: str) -> np.ndarray:
    """The distorted image of one recipe (deterministic for the seed)."""
    rng = item_rng(seed, content_key(content_id), plan["rng_index"])
    if len(plan["components"]) == 1:
        name, level = plan["components"][0]
        kind = "synthetic" if plan["class_index"] >= 0 else "authentic"
        return D.get_distortion(name, kind)(reference, level, rng)
    return D.apply_blend(reference, plan["components"], rng)


def _write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="PNG", compress_level=1)


def generate_content(
    reference: np.ndarray,
    content_id: str,
    kind: str,
    seed: int,
    out_root: Path,
    image_dir: str,
    reference_path: str,
    per_content: int | None = None,
    batch_size: int = 2,
    part: tuple[int, int] | None = None,
) -> pd.DataFrame:
    """Distort one pristine image, write the PNGs under ``out_root``, return its rows.

    Paths in the rows are relative to ``out_root``: images go to ``image_dir/<item>.png``. The
    reference image itself is written to ``reference_path``. ``part=(start, stop)`` generates
    only those recipes of the content's plan (the part starting at 0 writes the reference), so a
    content can be shared among workers with identical results.
    """
    from .pseudo_mos import pseudo_mos

    out_root = Path(out_root)
    plans = plan_items(content_id, kind, seed, per_content)
    start, stop = part if part is not None else (0, len(plans))
    plans = plans[start:stop]
    if start == 0:
        _write_png(out_root / reference_path, reference)
    images = []
    rows = []
    for plan in plans:
        image = render(reference, plan, seed, content_id)
        relative = f"{image_dir}/{plan['item_id']}.png"
        _write_png(out_root / relative, image)
        images.append(image)
        rows.append(
            {
                "item_id": plan["item_id"],
                "path": relative,
                "content_id": content_id,
                "distortion": plan["distortion"],
                "level": plan["level"],
                "class_index": plan["class_index"],
                "labels": plan["labels"],
                "reference_path": reference_path,
            }
        )
    frame = pd.DataFrame(rows)
    if kind != "synthetic":
        frame = frame.drop(columns="class_index")  # blends are multi-label: see ``labels``
    labels = pseudo_mos(np.stack(images), reference, batch_size=batch_size)
    frame.insert(2, "score", np.round(labels.score, 4))
    for metric in labels.raw.columns:
        frame[f"fr_{metric}"] = np.round(labels.raw[metric].to_numpy(), 6)
    return frame


# --------------------------------------------------------------------------------------------
# Embedded builds


def init_generator_worker() -> None:
    """Worker set-up: one torch thread; Ctrl-C is the parent's to handle (it cancels the queue,
    lets the parts in flight finish, and removes the temporary folder)."""
    import signal

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)


def _embedded_job(args: tuple) -> pd.DataFrame:
    content_index, kind, seed, out_root, size, blends, part = args
    content = EMBEDDED_CONTENTS[content_index]
    return generate_content(
        content.image(size),
        content.content_id,
        kind,
        seed,
        Path(out_root),
        image_dir=f"images/{content.content_id}",
        reference_path=f"reference/{content.content_id}.png",
        per_content=blends if kind == "authentic" else None,
        part=part,
    )


def generator_pool_context():
    """Fork where the platform has it (:func:`biqa_bench.pools.pool_context`): workers start at
    once; they use one torch thread each (set in the initializer)."""
    from ..pools import pool_context

    return pool_context(fork=True)


def default_workers() -> int:
    return max(1, min(16, os.cpu_count() or 1))


def embedded_folder(
    name: str, seed: int = 0, contents: int | None = None, size: int = IMAGE_SIZE, blends: int = MIXED_PER_CONTENT
) -> Path:
    """Where an embedded build lives; non-default options are part of the name."""
    from ..config import cache_path

    suffix = "" if contents is None or contents >= len(EMBEDDED_CONTENTS) else f"-c{contents}"
    suffix += "" if size == IMAGE_SIZE else f"-s{size}"
    suffix += "" if name != "mixed" or blends == MIXED_PER_CONTENT else f"-b{blends}"
    return cache_path("embedded") / f"{name}-{GENERATOR_VERSION}-seed{seed}{suffix}"


_KIND_OF = {"synthetic": "synthetic", "mixed": "authentic"}


def build_embedded(
    name: str,
    seed: int = 0,
    contents: int | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    size: int = IMAGE_SIZE,
    blends: int = MIXED_PER_CONTENT,
) -> Path:
    """Build (or find) the embedded set ``name`` ('synthetic' or 'mixed'); return its folder.

    ``contents`` limits the build to the first N contents, ``size`` sets the image side (at least
    161 for MS-SSIM), ``blends`` the blends per content of ``mixed`` (smaller builds for quick
    tests); ``workers`` defaults to min(2, CPUs) processes.
    """
    if name not in _KIND_OF:
        raise DatasetError(f"no embedded dataset '{name}'; the embedded sets are {sorted(_KIND_OF)}")
    from .pseudo_mos import MIN_SIDE

    if int(size) < MIN_SIDE:
        raise DatasetError(f"dataset '{name}': size must be at least {MIN_SIDE} (MS-SSIM), not {size}")
    folder = embedded_folder(name, seed, contents, size, blends)
    if (folder / MANIFEST_FILE).exists() and (folder / ITEMS_FILE).exists():
        return folder
    selected = list(range(len(EMBEDDED_CONTENTS)))[: contents or None]
    if not selected:
        raise DatasetError(f"dataset '{name}': contents must be at least 1")
    kind = _KIND_OF[name]
    folder.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report = progress or _progress or (lambda done, total: None)
    # a concurrent build that completed first (it has a manifest) is kept, ours dropped
    with atomic_folder(folder, complete=lambda f: (f / MANIFEST_FILE).exists()) as tmp:
        per_content = len(D.SYNTHETIC_CLASSES) if kind == "synthetic" else int(blends)
        # parts of about a dozen images: even load across workers, nothing big in flight
        n_parts = max(1, round(per_content / JOB_IMAGES))
        bounds = np.linspace(0, per_content, n_parts + 1).round().astype(int)
        jobs = [(i, kind, seed, str(tmp), int(size), int(blends), (int(a), int(b)))
                for i in selected for a, b in zip(bounds[:-1], bounds[1:])]
        workers = default_workers() if workers is None else max(1, int(workers))
        frames: dict[tuple, pd.DataFrame] = {}
        total = len(selected) * per_content
        done = 0
        report(0, total)
        if workers == 1 or len(jobs) == 1:
            for job in jobs:
                frames[(job[0], job[6])] = _embedded_job(job)
                done += len(frames[(job[0], job[6])])
                report(done, total)
        else:
            context = generator_pool_context()
            with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=init_generator_worker) as pool:
                futures = {pool.submit(_embedded_job, job): (job[0], job[6]) for job in jobs}
                try:
                    for future in as_completed(futures):
                        frames[futures[future]] = future.result()
                        done += len(frames[futures[future]])
                        report(done, total)
                except BaseException:  # Ctrl-C or a failed job: do not run the queued jobs first
                    pool.shutdown(wait=True, cancel_futures=True)  # the parts in flight finish first
                    raise
        items = pd.concat([frames[key] for key in sorted(frames)], ignore_index=True)
        items.to_csv(tmp / ITEMS_FILE, index=False)
        manifest = {
            "dataset": name,
            "kind": kind,
            "generator_version": GENERATOR_VERSION,
            "seed": seed,
            "image_size": int(size),
            "blends_per_content": int(blends) if kind == "authentic" else None,
            "contents": [
                {"content_id": EMBEDDED_CONTENTS[i].content_id, "source": EMBEDDED_CONTENTS[i].source,
                 "window": [EMBEDDED_CONTENTS[i].top, EMBEDDED_CONTENTS[i].left, EMBEDDED_CONTENTS[i].side]}
                for i in selected
            ],
            "n_items": int(len(items)),
            "seconds": round(time.perf_counter() - started, 2),
            "versions": generator_versions(),
        }
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return folder


def generator_versions() -> dict[str, str]:
    import PIL
    import piq
    import scipy
    import skimage
    import torch

    return {
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "scipy": scipy.__version__,
        "scikit-image": skimage.__version__,
        "piq": piq.__version__,
        "torch": torch.__version__,
    }


def _parse_int_option(dataset: str, option: str, value, minimum: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise DatasetError(f"dataset '{dataset}': option {option} must be an integer, not {value!r}") from None
    if number < minimum:
        raise DatasetError(f"dataset '{dataset}': option {option} must be at least {minimum}, not {number}")
    return number


def load_embedded(name: str, info: DatasetInfo, seed=0, contents=None, size=IMAGE_SIZE, blends=MIXED_PER_CONTENT):
    seed = _parse_int_option(name, "seed", seed, 0)
    contents = None if contents is None else _parse_int_option(name, "contents", contents, 1)
    size = _parse_int_option(name, "size", size, 161)
    blends = _parse_int_option(name, "blends", blends, 1)
    folder = build_embedded(name, seed=seed, contents=contents, size=size, blends=blends)
    items = pd.read_csv(folder / ITEMS_FILE, dtype={"level": str, "labels": str})
    if name == "synthetic":
        items["level"] = items["level"].astype(int)
    items["std"], items["n_ratings"] = rater_spread(items)
    return make_dataset(info, items, folder)


def rater_spread(items: pd.DataFrame) -> tuple[np.ndarray, int]:
    """Per item: the standard deviation (ddof=1) of the six full-reference metrics' 0-100
    qualities whose mean is its pseudo-MOS, and their number (6).

    The embedded sets have no observers; their six "raters" are the metrics. Taking their spread
    as the per-image std lets the analyses that need std and counts (the Krasula analysis) run
    on them: a pair of images is "different" when the metrics agree that one is better. It is
    derived at load time from the ``fr_*`` columns, so the items file and the dataset's
    fingerprint are unchanged.
    """
    from .pseudo_mos import METRIC_MAPS, METRICS

    qualities = np.column_stack([METRIC_MAPS[m].quality(items[f"fr_{m}"].to_numpy(float)) for m in METRICS])
    return qualities.std(axis=1, ddof=1), len(METRICS)


_OPTIONS = {
    "seed": "seed of every random choice of the generator (default 0)",
    "contents": f"build only the first N of the {len(EMBEDDED_CONTENTS)} contents (quick tests)",
    "size": f"image side in pixels (default {IMAGE_SIZE}, at least 161)",
}
_MIXED_OPTIONS = dict(_OPTIONS, blends=f"blends per content (default {MIXED_PER_CONTENT})")

SYNTHETIC_INFO = DatasetInfo(
    name="synthetic",
    kind="synthetic",
    score_type="MOS",
    higher_is_better=True,
    score_range=(0.0, 100.0),
    n_contents=len(EMBEDDED_CONTENTS),
    n_items=len(EMBEDDED_CONTENTS) * len(D.SYNTHETIC_CLASSES),
    description=(
        f"embedded: {len(EMBEDDED_CONTENTS)} photos from installed packages x 39 single distortions (QAMT/DB-CNN classes: "
        "7 types x 5 levels + over/under-exposure x 2), pseudo-MOS of six FR metrics"
    ),
    download="none: built on first use from photos shipped with scikit-image, scikit-learn and matplotlib",
    needs_root=False,
    options=dict(_OPTIONS),
)

MIXED_INFO = DatasetInfo(
    name="mixed",
    kind="authentic",
    score_type="MOS",
    higher_is_better=True,
    score_range=(0.0, 100.0),
    n_contents=len(EMBEDDED_CONTENTS),
    n_items=len(EMBEDDED_CONTENTS) * MIXED_PER_CONTENT,
    description=(
        f"embedded: {len(EMBEDDED_CONTENTS)} photos x {MIXED_PER_CONTENT} authentic-like blends of 2-3 of over/under-exposure, motion blur, "
        "defocus, vignetting, contrast loss, JPEG; 26-way multi-label target; pseudo-MOS"
    ),
    download="none: built on first use from photos shipped with scikit-image, scikit-learn and matplotlib",
    needs_root=False,
    options=_MIXED_OPTIONS,
)


@register_dataset(SYNTHETIC_INFO)
def load_synthetic(root=None, seed=0, contents=None, size=IMAGE_SIZE):
    """The embedded single-distortion set (root is ignored: it builds itself in the cache)."""
    return load_embedded("synthetic", SYNTHETIC_INFO, seed=seed, contents=contents, size=size)


@register_dataset(MIXED_INFO)
def load_mixed(root=None, seed=0, contents=None, size=IMAGE_SIZE, blends=MIXED_PER_CONTENT):
    """The embedded authentic-like blend set (root is ignored: it builds itself in the cache)."""
    return load_embedded("mixed", MIXED_INFO, seed=seed, contents=contents, size=size, blends=blends)
