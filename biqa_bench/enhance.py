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
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from scipy import ndimage

from .errors import MethodError

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

        from .nn.data import Normalizer, resize_to
        from .nn.trainer import autocast

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

    def candidate(self, image: np.ndarray) -> tuple[np.ndarray | None, bool, bool]:
        dark = brightness(image) < self.dark_threshold
        blurred = sharpness(image) < self.blur_threshold
        if not (dark or blurred):
            return None, dark, blurred
        out = image
        if dark:
            out = self.low_light(out)
        if blurred:
            out = self.deblur(out)
        return out, dark, blurred

    def __call__(self, images: Sequence[np.ndarray]) -> list[Enhancement]:
        found = [self.candidate(np.asarray(image)) for image in images]
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
