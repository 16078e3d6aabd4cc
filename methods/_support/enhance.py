"""Selective enhancement for IEIT (Song et al., section III-A): classical enhancers, the
ImageNet-confidence selection rule, and the hook for user-supplied enhancer models.

IEIT enhances low-light and blurred images and keeps an enhanced image only where an ImageNet
classifier is more confident about it (top-5 probability mass) than about the original; otherwise
the original stands in. The paper uses RetinexNet and DeblurGAN-v2, whose weights cannot be
fetched here, so this module ships classical enhancers:

* :func:`enhance_low_light`: a LIME-style illumination-map enhancement. The illumination is the
  per-pixel maximum of R, G, B, smoothed by a Gaussian (LIME refines it with a structure-aware
  optimisation; the Gaussian is our simplification), floored at 0.05 and raised to ``gamma``
  (0.8, LIME's value); the image is divided by it.
* :func:`deblur_wiener` (default) and :func:`deblur_richardson_lucy`: non-blind deconvolution of
  each channel with an assumed Gaussian point-spread function (sigma 1.5 px) via scikit-image,
  on a reflect-padded image. Wiener is the default because Richardson-Lucy costs about 2 s per
  channel of a 512 x 683 image on one CPU core.

Which images are enhanced: *dark* when the mean BT.601 luma is below ``dark_threshold`` (0.25 on
[0, 1]); *blurred* when the variance of the Laplacian of the grey image (0-255) is below
``blur_threshold`` (100, a common rule of thumb), both measured on the working image. A dark
image gets the low-light enhancement, a blurred one the deblurring, one that is both gets the
low-light enhancement followed by deblurring; the result is one candidate per image.

Selection (``selection``): ``'classifier'`` (the paper's rule, needs ImageNet weights): keep the
candidate iff its top-5 confidence is higher than the original's. ``'never'``: keep every original
(E = I) -- the fallback when no ImageNet classifier is available (``pretrained='none'`` without a
weights file): with no classifier the paper's rule cannot be evaluated, so no enhancement is
assumed to help. ``'always'``: keep every candidate of a dark or blurred image.

User enhancer hook: pass ``low_light_enhancer`` / ``deblurrer`` as ``"package.module:function"``
or ``"/path/to/file.py:function"``. The callable takes one HxWx3 uint8 RGB array and returns an
HxWx3 uint8 RGB array of the same height and width (wrap RetinexNet or DeblurGAN-v2 in such a
function to reproduce the paper's enhancers). It is loaded with :func:`load_enhancer`, its output
is checked on every call, and a wrong output is a one-line :class:`MethodError`.

Speed (:func:`enhance_stream`): results are cached on disk, one file per image, under a folder
named by a hash of everything they depend on (:class:`EnhancementCache`), and cache misses are
computed by a pool of worker processes. Workers rebuild the enhancers from their names
(:class:`EnhancerSpec`), so a user hook must be importable there (a file path, or a module on
``sys.path``); the classifier rule is applied in the calling process, on the workers'
candidates. Neither changes a result: an entry holds exactly what the computation gave, and a
worker runs the same functions on the same pixels.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import io
import itertools
import json
import os
import sys
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
from scipy import ndimage

from biqa_bench.errors import MethodError
from biqa_bench.pools import pool_context
from biqa_bench.store import sha256_file

Enhancer = Callable[[np.ndarray], np.ndarray]
SELECTIONS = ("classifier", "never", "always")


# --------------------------------------------------------------------------- measurements


def luma(image: np.ndarray) -> np.ndarray:
    """BT.601 luma in [0, 1] of an HxWx3 uint8 image."""
    rgb = np.asarray(image, dtype=np.float64) / 255.0
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def brightness(image: np.ndarray) -> float:
    return float(luma(image).mean())


def sharpness(image: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image on the 0-255 scale (low = blurred)."""
    return float(ndimage.laplace(luma(image) * 255.0, mode="reflect").var())


# --------------------------------------------------------------------------- classical enhancers


def enhance_low_light(image: np.ndarray, gamma: float = 0.8, sigma: float = 2.0, floor: float = 0.05) -> np.ndarray:
    """LIME-style enhancement: divide by the smoothed max-RGB illumination map raised to gamma."""
    rgb = np.asarray(image, dtype=np.float64) / 255.0
    illumination = ndimage.gaussian_filter(rgb.max(axis=2), sigma=sigma, mode="reflect")
    illumination = np.maximum(illumination, floor) ** gamma
    return np.clip(rgb / illumination[..., None] * 255.0 + 0.5, 0, 255).astype(np.uint8)


def gaussian_psf(sigma: float = 1.5) -> np.ndarray:
    radius = max(1, int(np.ceil(3 * sigma)))
    x = np.arange(-radius, radius + 1)
    g = np.exp(-(x**2) / (2 * sigma**2))
    psf = np.outer(g, g)
    return psf / psf.sum()


def _per_channel(image: np.ndarray, restore: Callable[[np.ndarray], np.ndarray], pad: int) -> np.ndarray:
    rgb = np.asarray(image, dtype=np.float64) / 255.0
    out = np.empty_like(rgb)
    for c in range(rgb.shape[2]):
        padded = np.pad(rgb[..., c], pad, mode="reflect")
        out[..., c] = restore(padded)[pad:-pad, pad:-pad]
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)


def deblur_wiener(image: np.ndarray, sigma: float = 1.5, balance: float = 0.05) -> np.ndarray:
    """Wiener deconvolution with a Gaussian PSF (scikit-image), channel by channel."""
    from skimage import restoration

    psf = gaussian_psf(sigma)
    return _per_channel(image, lambda x: restoration.wiener(x, psf, balance, clip=True), psf.shape[0])


def deblur_richardson_lucy(image: np.ndarray, sigma: float = 1.5, iterations: int = 10) -> np.ndarray:
    """Richardson-Lucy deconvolution with a Gaussian PSF (scikit-image), channel by channel."""
    from skimage import restoration

    psf = gaussian_psf(sigma)
    return _per_channel(image, lambda x: restoration.richardson_lucy(x, psf, num_iter=iterations, clip=True), psf.shape[0])


DEBLURRERS: dict[str, Enhancer] = {"wiener": deblur_wiener, "richardson_lucy": deblur_richardson_lucy}


# --------------------------------------------------------------------------- user hook


def _checked(function: Callable, spec: str) -> Enhancer:
    def call(image: np.ndarray) -> np.ndarray:
        out = function(image)
        out = np.asarray(out)
        if out.dtype != np.uint8 or out.shape != image.shape:
            raise MethodError(
                f"enhancer {spec} returned {out.dtype} {out.shape} for a uint8 {image.shape} image; "
                "it must return an HxWx3 uint8 array of the input's size"
            )
        return out

    call.__name__ = getattr(function, "__name__", "enhancer")
    return call


def load_enhancer(spec: str) -> Enhancer:
    """``"package.module:function"`` or ``"/path/file.py:function"`` -> a checked enhancer."""
    module_name, sep, attribute = str(spec).rpartition(":")
    if not sep or not module_name or not attribute:
        raise MethodError(f"enhancer '{spec}': write it as 'package.module:function' or '/path/file.py:function'")
    try:
        if module_name.endswith(".py") or "/" in module_name or "\\" in module_name:
            path = Path(module_name).expanduser()
            if not path.is_file():
                raise MethodError(f"enhancer '{spec}': {path} not found")
            key = f"biqa_user_enhancer_{abs(hash(str(path.resolve())))}"
            module = sys.modules.get(key)
            if module is None:
                loader_spec = importlib.util.spec_from_file_location(key, path)
                module = importlib.util.module_from_spec(loader_spec)
                loader_spec.loader.exec_module(module)
                sys.modules[key] = module
        else:
            module = importlib.import_module(module_name)
    except MethodError:
        raise
    except Exception as exc:
        raise MethodError(f"enhancer '{spec}': cannot import {module_name} ({type(exc).__name__}: {exc})") from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise MethodError(f"enhancer '{spec}': {module_name} has no callable '{attribute}'")
    return _checked(function, spec)


# --------------------------------------------------------------------------- selection


class Top5Confidence:
    """Sum of the top-5 softmax probabilities of an ImageNet classifier (input resized to 224)."""

    def __init__(self, classifier, device="cpu", size: int = 224, batch_size: int = 32):
        import torch

        self.classifier = classifier.eval()
        self.device = torch.device(device)
        self.size = size
        self.batch_size = batch_size

    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
        import torch

        from biqa_bench.nn.data import Normalizer, resize_to
        from biqa_bench.nn.trainer import autocast

        self.classifier.to(self.device)
        normalize = Normalizer(self.device)
        out = []
        with torch.no_grad():
            for start in range(0, len(images), self.batch_size):
                chunk = np.stack([resize_to(np.asarray(i), self.size, self.size) for i in images[start : start + self.batch_size]])
                with autocast(self.device):
                    logits = self.classifier(normalize(chunk)).float()
                out.append(torch.softmax(logits, dim=1).topk(5, dim=1).values.sum(1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)


@dataclass
class Enhancement:
    """One image's outcome: the image V2 sees as E, and why."""

    image: np.ndarray
    dark: bool
    blurred: bool
    kept: bool  # the enhanced candidate replaced the original
    confidence_original: float = float("nan")
    confidence_enhanced: float = float("nan")


class SelectiveEnhancer:
    """Flag dark/blurred images, enhance them, keep a candidate only where the rule says so."""

    def __init__(
        self,
        low_light: Enhancer = enhance_low_light,
        deblur: Enhancer = deblur_wiener,
        confidence: Callable[[Sequence[np.ndarray]], np.ndarray] | None = None,
        selection: str = "classifier",
        dark_threshold: float = 0.25,
        blur_threshold: float = 100.0,
    ):
        if selection not in SELECTIONS:
            raise MethodError(f"selection '{selection}' not understood; use one of {', '.join(SELECTIONS)}")
        if selection == "classifier" and confidence is None:
            raise MethodError(
                "selective enhancement by classifier confidence needs ImageNet weights; give --weights FILE "
                "or use selection='never' (keep originals) or 'always'"
            )
        self.low_light = low_light
        self.deblur = deblur
        self.confidence = confidence
        self.selection = selection
        self.dark_threshold = dark_threshold
        self.blur_threshold = blur_threshold

    def flags(self, image: np.ndarray) -> tuple[bool, bool]:
        """(dark, blurred) of one working image."""
        return brightness(image) < self.dark_threshold, sharpness(image) < self.blur_threshold

    def candidate(self, image: np.ndarray) -> tuple[np.ndarray | None, bool, bool]:
        dark, blurred = self.flags(image)
        if not (dark or blurred):
            return None, dark, blurred
        out = image
        if dark:
            out = self.low_light(out)
        if blurred:
            out = self.deblur(out)
        return out, dark, blurred

    def propose(self, image: np.ndarray) -> tuple[np.ndarray | None, bool, bool]:
        """:meth:`candidate`, except that ``selection='never'`` computes no candidate (it would
        be discarded): the image-by-image half of the work, the one worker processes do."""
        if self.selection == "never":
            return (None, *self.flags(image))
        return self.candidate(image)

    def __call__(self, images: Sequence[np.ndarray]) -> list[Enhancement]:
        images = [np.asarray(image) for image in images]
        return self.select(images, [self.propose(image) for image in images])

    def select(self, images: Sequence[np.ndarray], found: Sequence[tuple[np.ndarray | None, bool, bool]]) -> list[Enhancement]:
        """Apply the selection rule to the images and their :meth:`propose` results (the
        classifier scores the flagged ones in one call)."""
        results = [Enhancement(np.asarray(image), dark, blurred, False) for image, (_, dark, blurred) in zip(images, found)]
        flagged = [k for k, (cand, _, _) in enumerate(found) if cand is not None]
        if not flagged or self.selection == "never":
            return results
        if self.selection == "always":
            for k in flagged:
                results[k].image, results[k].kept = found[k][0], True
            return results
        scores = self.confidence([np.asarray(images[k]) for k in flagged] + [found[k][0] for k in flagged])
        for n, k in enumerate(flagged):
            original, enhanced = float(scores[n]), float(scores[len(flagged) + n])
            results[k].confidence_original, results[k].confidence_enhanced = original, enhanced
            if enhanced > original:
                results[k].image, results[k].kept = found[k][0], True
        return results


# --------------------------------------------------------------------------- by name, for workers


@dataclass(frozen=True)
class EnhancerSpec:
    """The candidate step by name: what a worker process needs to rebuild it (picklable).

    ``deblur`` names a built-in deblurrer (:data:`DEBLURRERS`); ``low_light_enhancer`` /
    ``deblurrer`` are user hooks as ``"module:function"`` strings (None = the built-in).
    """

    deblur: str = "wiener"
    low_light_enhancer: str | None = None
    deblurrer: str | None = None
    dark_threshold: float = 0.25
    blur_threshold: float = 100.0

    def functions(self) -> tuple[Enhancer, Enhancer]:
        if self.deblur not in DEBLURRERS:
            raise MethodError(f"deblur '{self.deblur}' not understood; use one of {', '.join(DEBLURRERS)}")
        low_light = load_enhancer(self.low_light_enhancer) if self.low_light_enhancer else enhance_low_light
        deblur = load_enhancer(self.deblurrer) if self.deblurrer else DEBLURRERS[self.deblur]
        return low_light, deblur

    def build(self, confidence=None, selection: str = "always") -> SelectiveEnhancer:
        low_light, deblur = self.functions()
        return SelectiveEnhancer(low_light, deblur, confidence, selection, self.dark_threshold, self.blur_threshold)

    def identity(self) -> dict[str, Any]:
        """What the candidates depend on besides the pixels, for the cache key: the settings, the
        source of this module and of each user hook, and the numeric libraries' versions."""
        from importlib import metadata

        versions = {}
        for package in ("numpy", "scipy", "scikit-image"):
            try:
                versions[package] = metadata.version(package)
            except metadata.PackageNotFoundError:  # pragma: no cover - installed with the package
                versions[package] = None
        return {
            "deblur": self.deblur,
            "low_light_enhancer": self.low_light_enhancer,
            "deblurrer": self.deblurrer,
            "dark_threshold": float(self.dark_threshold),
            "blur_threshold": float(self.blur_threshold),
            "hook_sources": {name: hook_source_sha256(spec) for name, spec in
                             (("low_light_enhancer", self.low_light_enhancer), ("deblurrer", self.deblurrer)) if spec},
            "enhance_module": _module_sha256(),
            "versions": versions,
        }


@lru_cache(maxsize=1)
def _module_sha256() -> str:
    """SHA-256 of this file: an edit to an enhancer or to the selection rule invalidates the cache."""
    return sha256_file(__file__)


def hook_source_sha256(spec: str) -> str | None:
    """SHA-256 of the source file of a ``"module:function"`` hook, None where there is none (an
    edited hook then misses the cache; a hook whose behaviour changes without its file changing,
    e.g. new weights read by it, does not: clear ``<cache>/enhance`` then)."""
    module_name = str(spec).rpartition(":")[0]
    try:
        if module_name.endswith(".py") or "/" in module_name or "\\" in module_name:
            return sha256_file(Path(module_name).expanduser())
        found = importlib.util.find_spec(module_name)
        origin = getattr(found, "origin", None)
        return sha256_file(origin) if origin and Path(origin).is_file() else None
    except Exception:  # the hook itself is loaded (and a bad one reported) elsewhere
        return None


# --------------------------------------------------------------------------- the disk cache

CACHE_FORMAT = 1


def pixels_sha256(image: np.ndarray) -> str:
    """SHA-256 of an image's shape and pixels (the per-image part of the cache key)."""
    image = np.ascontiguousarray(image)
    digest = hashlib.sha256(f"{image.dtype.str}{image.shape}".encode())
    digest.update(memoryview(image).cast("B"))
    return digest.hexdigest()


def cache_folder(identity: dict[str, Any], root: Path | None = None) -> Path:
    """``<cache>/enhance/<hash of identity>/``, with the identity in ``key.json`` for people."""
    text = json.dumps({"format": CACHE_FORMAT, **identity}, sort_keys=True, default=str)
    if root is None:
        from biqa_bench.config import cache_path

        root = cache_path("enhance")
    folder = Path(root) / hashlib.sha256(text.encode()).hexdigest()[:20]
    if not (folder / "key.json").is_file():
        from biqa_bench.store import atomic_write_bytes

        try:
            atomic_write_bytes(folder / "key.json", (json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n").encode(), fsync=False)
        except OSError:  # an unwritable cache only costs the recomputation; entries report it
            pass
    return folder


class EnhancementCache:
    """One image's :class:`Enhancement` per file, ``<folder>/<sha[:2]>/<sha>.npz``, keyed by the
    SHA-256 of the working image's pixels (:func:`pixels_sha256`); the folder's name holds the
    rest of the key (:func:`cache_folder`).

    Why the pixels rather than the file's path, size and mtime: the working image has to be read
    anyway (it is half of IEIT's pair), hashing it costs about 0.4 ms, and the key is then exact:
    it also changes with what the image went through before the enhancer (the decode-once
    cache's size and draft mode, the resize to the working size), which a file's identity does
    not show, and a file rewritten within the mtime's resolution cannot be mistaken for the old.

    An entry holds the flags, the two confidences and, only when the candidate was kept, the
    enhanced image (otherwise E is the original, which the caller has). Entries are written
    through a temporary file and a rename, so a crash never leaves half an entry; one that does
    not read back whole (a zip CRC or shape mismatch, garbage) is a miss and is rewritten.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.write_errors = 0

    def path(self, digest: str) -> Path:
        return self.folder / digest[:2] / f"{digest}.npz"

    def load(self, digest: str, original: np.ndarray) -> Enhancement | None:
        try:
            with np.load(self.path(digest), allow_pickle=False) as data:
                flags = np.asarray(data["flags"])
                confidence = np.asarray(data["confidence"], dtype=np.float64)
                image = np.asarray(data["image"]) if "image" in data.files else None
        except FileNotFoundError:
            return None
        except Exception:  # corrupt or foreign: recompute (and overwrite) it
            return None
        if flags.shape != (3,) or confidence.shape != (2,):
            return None
        dark, blurred, kept = (bool(v) for v in flags)
        if kept != (image is not None) or (image is not None and (image.dtype != np.uint8 or image.shape != original.shape)):
            return None
        return Enhancement(image if kept else original, dark, blurred, kept, float(confidence[0]), float(confidence[1]))

    def store(self, digest: str, result: Enhancement) -> bool:
        from biqa_bench.store import atomic_write_bytes

        arrays = {
            "flags": np.array([result.dark, result.blurred, result.kept], dtype=np.uint8),
            "confidence": np.array([result.confidence_original, result.confidence_enhanced], dtype=np.float64),
        }
        if result.kept:
            arrays["image"] = np.ascontiguousarray(result.image)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        try:
            atomic_write_bytes(self.path(digest), buffer.getvalue(), fsync=False)  # cheap to recompute
        except OSError:
            self.write_errors += 1
            return False
        return True


# --------------------------------------------------------------------------- worker pool

#: Misses computed in the calling process before a pool is started (a pool costs about a second
#: to start; fewer misses are cheaper here).
POOL_MIN_MISSES = 32
#: Images per pool job: small enough to balance the load, large enough to amortise a job's cost.
JOB_IMAGES = 4

_WORKER_ENHANCERS: dict[tuple[EnhancerSpec, bool], SelectiveEnhancer] = {}


def _init_worker() -> None:
    """Worker set-up: one thread for torch (a user hook may use it) and the numeric libraries;
    Ctrl-C is the parent's to handle (it cancels the queued jobs)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = "1"
    if "torch" in sys.modules:  # otherwise torch, if a hook imports it, reads OMP_NUM_THREADS
        sys.modules["torch"].set_num_threads(1)


def _propose_job(spec: EnhancerSpec, measure_only: bool, images: list[np.ndarray]) -> list[tuple[np.ndarray | None, bool, bool]]:
    enhancer = _WORKER_ENHANCERS.get((spec, measure_only))
    if enhancer is None:
        enhancer = _WORKER_ENHANCERS[(spec, measure_only)] = spec.build(selection="never" if measure_only else "always")
    return [enhancer.propose(image) for image in images]


@dataclass
class _Chunk:
    originals: list[np.ndarray]
    digests: list[str | None] = field(default_factory=list)
    results: list[Enhancement | None] = field(default_factory=list)
    jobs: list[tuple[list[int], Any]] = field(default_factory=list)  # (indices, future)
    here: list[int] = field(default_factory=list)  # misses computed in this process


def enhance_stream(
    originals: Iterable[np.ndarray],
    enhancer: SelectiveEnhancer,
    spec: EnhancerSpec,
    cache: EnhancementCache | None = None,
    workers: int = 1,
    chunk: int = 16,
    stats: dict[str, int] | None = None,
) -> Iterator[tuple[np.ndarray, Enhancement]]:
    """``(original, enhancement)`` for each working image, in order, as :meth:`SelectiveEnhancer.__call__`
    would give them, reading ``originals`` lazily.

    Each image is looked up in ``cache``; misses are proposed (flags and candidate) by ``workers``
    processes (1 = here; a pool starts once :data:`POOL_MIN_MISSES` misses were seen), then the
    selection rule runs here, ``chunk`` images at a time (the classifier batch), and the results
    are stored. ``spec`` must describe ``enhancer``'s enhancers (the workers rebuild them by name).
    ``stats`` receives ``cached``, ``computed``, ``workers`` (processes used) and ``unsaved``, and
    ``pool_error`` when the worker pool broke (the rest is then computed here).
    """
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    stats = {} if stats is None else stats
    stats.update(cached=0, computed=0, workers=1, unsaved=0)
    source = iter(originals)
    pending: deque[_Chunk] = deque()
    pool: ProcessPoolExecutor | None = None
    pool_failed = False
    misses_seen = 0
    measure_only = enhancer.selection == "never"

    def give_up_pool(exc: BaseException) -> None:
        # A worker died (a crashing hook, or a main module that cannot be imported again, as with
        # `python - < script`): the results do not depend on where they are computed, so the
        # rest is computed here; the caller reports stats["pool_error"].
        nonlocal pool, pool_failed
        pool_failed = True
        stats["pool_error"] = f"{type(exc).__name__}: {exc}"
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
            pool = None

    def finish(part: _Chunk) -> Iterator[tuple[np.ndarray, Enhancement]]:
        found: dict[int, tuple] = {}
        for indices, future in part.jobs:
            try:
                found.update(zip(indices, future.result()))
            except BrokenProcessPool as exc:
                give_up_pool(exc)
                part.here = part.here + indices
        for k in part.here:
            found[k] = enhancer.propose(part.originals[k])
        misses = sorted(found)
        if misses:
            selected = enhancer.select([part.originals[k] for k in misses], [found[k] for k in misses])
            for k, result in zip(misses, selected):
                part.results[k] = result
                if cache is not None and not cache.store(part.digests[k], result):
                    stats["unsaved"] += 1
        stats["computed"] += len(misses)
        stats["cached"] += len(part.originals) - len(misses)
        for original, result in zip(part.originals, part.results):
            yield original, result

    try:
        while True:
            batch = [np.asarray(image) for image in itertools.islice(source, chunk)]
            if batch:
                part = _Chunk(batch)
                for image in batch:
                    digest = pixels_sha256(image) if cache is not None else None
                    part.digests.append(digest)
                    part.results.append(cache.load(digest, image) if cache is not None else None)
                misses = [k for k, result in enumerate(part.results) if result is None]
                misses_seen += len(misses)
                if pool is None and not pool_failed and workers > 1 and misses_seen >= POOL_MIN_MISSES:
                    pool = ProcessPoolExecutor(max_workers=workers, mp_context=pool_context(), initializer=_init_worker)
                    stats["workers"] = workers
                for start in range(0, len(misses) if pool is not None else 0, JOB_IMAGES):
                    indices = misses[start : start + JOB_IMAGES]
                    try:
                        part.jobs.append((indices, pool.submit(_propose_job, spec, measure_only, [batch[k] for k in indices])))
                    except BrokenProcessPool as exc:
                        give_up_pool(exc)
                        break
                submitted = {k for indices, _ in part.jobs for k in indices}
                part.here = [k for k in misses if k not in submitted]
                pending.append(part)
            # with a pool, keep about two jobs per worker queued; without one, nothing read ahead
            ahead = 0 if pool is None else max(1, -(-2 * workers * JOB_IMAGES // chunk))
            while pending and (not batch or len(pending) > ahead):
                yield from finish(pending.popleft())
            if not batch:
                break
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
