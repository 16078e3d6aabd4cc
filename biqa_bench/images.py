"""Reading images: one function every method uses, so decoding lives in one place.

``read_image`` decodes a file to an HxWx3 uint8 RGB array. An image source object with a
``read(path)`` method can replace it in a :class:`biqa_bench.methods.Context` (the
decode-once cache of :mod:`biqa_bench.imagecache` does).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .errors import DatasetError


def read_image(path: str | Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: image not found; run `biqa datasets check` on its dataset") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot decode image ({exc}); re-download it or use --skip-broken") from None


class FileImages:
    """The plain image source: decode from the file every time."""

    def read(self, path: str | Path) -> np.ndarray:
        return read_image(path)
