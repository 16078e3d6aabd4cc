"""Reading images: one function every method uses, so decoding lives in one place.

``read_image`` decodes a file to an HxWx3 uint8 RGB array. An image source object with a
``read(path)`` method can replace it in a :class:`biqa_bench.methods.Context` (the
decode-once cache of :mod:`biqa_bench.imagecache` does).

``DECODE_ERRORS`` is what PIL raises for a missing, truncated or corrupt file (or one past its
decompression-bomb limit): every reader catches exactly these and turns them into a one-line
:class:`~biqa_bench.errors.BiqaError`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .errors import DatasetError

DECODE_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


class ImageReadError(DatasetError):
    """A file :func:`read_image` could not decode; ``reason`` is the decoder's own message."""

    def __init__(self, message: str, path: str | Path, reason: str) -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason


def read_image(path: str | Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
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
