"""Write N seeded pristine crops from the photos the embedded sets use, as a source folder for
``biqa datasets synth`` at scale (the GPU pre-training benchmarks need >= 20,000 generated images).

Each crop is a random square window (side 160 px up to the photo's short side) of one of the
distinct source photos behind :data:`biqa_bench.datasets.synthetic.EMBEDDED_CONTENTS`, resized to
``--size`` and flipped at random. Only ten photos stand behind them, so crops overlap in content:
fine for throughput and for exercising the pipeline, not a substitute for a real pristine corpus
(QAMT used 21,869 Waterloo Exploration and PASCAL VOC images).

    python benchmarks/make_pristine.py --n 520 --out /tmp/pristine      # 520 x 39 = 20,280 images
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from biqa_bench.datasets.synthetic import EMBEDDED_CONTENTS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, required=True, help="number of crops")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    photos, seen = [], set()
    for content in EMBEDDED_CONTENTS:
        if content.source not in seen:
            seen.add(content.source)
            photos.append((content.source, np.asarray(content.load())[..., :3]))
    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    for i in range(args.n):
        source, photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        side = int(rng.integers(160, min(h, w) + 1))
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        window = Image.fromarray(np.ascontiguousarray(photo[top : top + side, left : left + side]))
        window = window.convert("RGB").resize((args.size, args.size), Image.Resampling.LANCZOS)
        if rng.random() < 0.5:
            window = window.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        window.save(args.out / f"p{i:05d}.png")
    print(f"wrote {args.n} crops of {len(photos)} photos to {args.out}")


if __name__ == "__main__":
    main()
