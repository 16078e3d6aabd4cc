"""Test data shared by the method tests: images whose quality is known by construction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage
from skimage import data


def blur_items(folder: Path, contents: int = 8, levels: int = 6, size: int = 96, seed: int = 0) -> pd.DataFrame:
    """Crops of scikit-image photos blurred at ``levels`` strengths; quality falls with blur."""
    rng = np.random.default_rng(seed)
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.immunohistochemistry()]
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for content in range(contents):
        photo = photos[content % len(photos)]
        r, c = rng.integers(0, photo.shape[0] - size), rng.integers(0, photo.shape[1] - size)
        crop = photo[r:r + size, c:c + size].astype(float)
        for level in range(levels):
            blurred = ndimage.gaussian_filter(crop, sigma=(0.7 * level, 0.7 * level, 0)) if level else crop
            path = folder / f"c{content}_l{level}.png"
            Image.fromarray(np.clip(np.round(blurred), 0, 255).astype(np.uint8)).save(path)
            quality = 100 - 15 * level + rng.normal(0, 2)
            rows.append({"item_id": path.stem, "path": str(path), "content_id": content, "quality": quality, "score": quality})
    return pd.DataFrame(rows)
