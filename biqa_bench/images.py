"""Reading images: one function every method uses, so decoding lives in one place.

``read_image`` decodes a file to an HxWx3 uint8 RGB array. An image source object with a
``read(path)`` method can replace it in a :class:`biqa_bench.methods.Context` (the
decode-once cache of :mod:`biqa_bench.imagecache` does).

Every PIL mode a dataset can hold becomes 8-bit RGB in :func:`to_rgb` (the one conversion):
PIL's own ``convert("RGB")`` for 8-bit modes (1, L, LA, P, PA, RGB, RGBA, CMYK, YCbCr; alpha
is dropped, as PIL does), and a rescale for the high-bit-depth grey modes, which PIL would clip
at 255 (a 16-bit PNG turned near-white): ``I;16*`` and ``I`` (how PIL opens 16-bit grey PNG and
TIFF files) map 0..65535 to 0..255 (``round(v / 257)``, values outside clipped), and ``F``
(32-bit float) is read as 0..1 (``round(v * 255)``, clipped; NaN as 0), the convention of
float images (scikit-image, HDR tools). 16-bit colour PNGs PIL already reduces to 8-bit RGB.

``DECODE_ERRORS`` is what PIL raises for a missing, truncated or corrupt file (or one past its
decompression-bomb limit): every reader catches exactly these and turns them into a one-line
:class:`~biqa_bench.errors.BiqaError`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .errors import DatasetError

#: Bumped when decoding changes the pixels of some file (2: high bit depths rescaled, not clipped);
#: the decode-once image cache and the feature cache key on it, so no stale pixels are reused.
DECODER_VERSION = 2

DECODE_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


class ImageReadError(DatasetError):
    """A file :func:`read_image` could not decode; ``reason`` is the decoder's own message."""

    def __init__(self, message: str, path: str | Path, reason: str) -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason


def is_high_bit_depth(mode: str) -> bool:
    """True for the PIL modes :func:`to_rgb` rescales (16-bit and 32-bit grey, float)."""
    return mode.startswith("I;16") or mode in ("I", "F")


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as an 8-bit RGB PIL image, high bit depths rescaled (see the module docstring)."""
    if not is_high_bit_depth(image.mode):
        return image.convert("RGB")
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        values = np.nan_to_num(values, nan=0.0) * 255.0
    else:
        values = values / 257.0
    grey = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return Image.fromarray(np.repeat(grey[..., None], 3, axis=2), mode="RGB")


def read_image(path: str | Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(to_rgb(image))
    except FileNotFoundError as exc:
        message = f"{path}: image not found; run `biqa datasets check` on its dataset"
        raise ImageReadError(message, path, str(exc)) from None
    except DECODE_ERRORS as exc:
        message = f"{path}: cannot decode image ({exc}); re-download it or use --skip-broken"
        raise ImageReadError(message, path, str(exc)) from None


class FileImages:
    """The plain image source: decode from the file every time."""

    def read(self, path: str | Path) -> np.ndarray:
        return read_image(path)
