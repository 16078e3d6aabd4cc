"""Benchmark the decode-once image cache against decoding JPEGs with PIL.

Generates N textured 1024x768 JPEGs (PIL quality 90) in a temporary folder, builds the cache
(timed, at the given size and worker count), then measures, single process:

* whole images per second: cache read + copy out of the map vs. PIL decode + resize;
* random 224x224 crops (with flips) per second: ``ImageCache.batch`` vs. PIL decode + resize
  + crop.

Prints a Markdown table. Example::

    .venv/bin/python benchmarks/bench_imagecache.py --n 400 --workers 2
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from biqa_bench.datasets.registry import DatasetInfo, make_dataset
from biqa_bench.imagecache import ImageCache, decode_resized, parse_size


def make_images(folder: Path, n: int, width: int, height: int, seed: int) -> pd.DataFrame:
    """Textured stand-in photos: colour gradients, smooth blobs, fine noise; JPEG quality 90."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    rows = []
    for k in range(n):
        phase = rng.uniform(0, 2 * np.pi, 3)
        freq = rng.uniform(2, 12, 3) * 2 * np.pi
        channels = []
        for c in range(3):
            gradient = 255 * (xx / width if c != 1 else yy / height)
            waves = 40 * np.sin(freq[c] * xx / width + phase[c]) * np.cos(freq[(c + 1) % 3] * yy / height)
            channels.append(0.6 * gradient + waves)
        image = np.stack(channels, axis=-1) + rng.normal(0, 10, (height, width, 3)).astype(np.float32)
        name = f"img{k:05d}.jpg"
        Image.fromarray(np.clip(image + 40, 0, 255).astype(np.uint8)).save(folder / name, quality=90)
        rows.append({"item_id": f"i{k:05d}", "path": name, "score": float(rng.uniform(0, 100))})
    return pd.DataFrame(rows)


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="number of JPEGs to generate")
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=768)
    parser.add_argument("--size", default="short512", help="cache size spec: short<N>, original or HxW")
    parser.add_argument("--workers", type=int, default=2, help="processes for the cache build")
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64, help="crops per batch() call")
    parser.add_argument("--crops", type=int, default=20000, help="random crops to time from the cache")
    parser.add_argument("--pil-images", type=int, default=200, help="images to time with PIL")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    size = parse_size(args.size)

    with tempfile.TemporaryDirectory(prefix="biqa-bench-imagecache-") as tmp:
        root = Path(tmp) / "images"
        root.mkdir()
        started = time.perf_counter()
        items = make_images(root, args.n, args.width, args.height, args.seed)
        generate_s = time.perf_counter() - started
        jpeg_mb = sum(os.path.getsize(root / p) for p in items["path"]) / 1e6
        info = DatasetInfo(name="bench", kind="authentic", score_type="MOS", higher_is_better=True, score_range=(0, 100))
        dataset = make_dataset(info, items, root)
        paths = list(dataset.with_abspaths()["path"])
        ids = list(dataset.items["item_id"])
        rows: list[tuple[str, str]] = []

        started = time.perf_counter()
        cache = ImageCache.open_or_build(dataset, size=size, workers=args.workers, cache_root=Path(tmp) / "cache")
        build_s = time.perf_counter() - started
        started = time.perf_counter()
        ImageCache.open_or_build(dataset, size=size, workers=args.workers, cache_root=Path(tmp) / "cache")
        reopen_s = time.perf_counter() - started
        draft_started = time.perf_counter()
        ImageCache.open_or_build(dataset, size=size, workers=args.workers, draft=True, cache_root=Path(tmp) / "cache-draft")
        draft_build_s = time.perf_counter() - draft_started

        # whole images: copy each image out of the map (a zero-copy view alone would time nothing)
        rng = np.random.default_rng(args.seed)
        order = rng.permutation(len(ids))
        started = time.perf_counter()
        checksum = 0
        for i in order:
            checksum += int(np.array(cache.read(paths[i]))[0, 0, 0])
        cache_images_s = _rate(len(order), time.perf_counter() - started)

        n_pil = min(args.pil_images, len(paths))
        started = time.perf_counter()
        for i in order[:n_pil]:
            checksum += int(decode_resized(paths[i], size)[0, 0, 0])
        pil_images_s = _rate(n_pil, time.perf_counter() - started)
        started = time.perf_counter()
        for i in order[:n_pil]:
            checksum += int(decode_resized(paths[i], size, draft=True)[0, 0, 0])
        pil_draft_images_s = _rate(n_pil, time.perf_counter() - started)

        # random crops with flips, in batches, as a trainer draws them
        n_batches = max(1, args.crops // args.batch)
        out = np.empty((args.batch, args.crop, args.crop, 3), dtype=np.uint8)
        started = time.perf_counter()
        for b in range(n_batches):
            chosen = [ids[i] for i in rng.integers(0, len(ids), args.batch)]
            cache.batch(chosen, crop=args.crop, rng=rng, out=out)
        cache_crops_s = _rate(n_batches * args.batch, time.perf_counter() - started)

        started = time.perf_counter()
        for i in order[:n_pil]:
            image = decode_resized(paths[i], size)
            top = rng.integers(0, image.shape[0] - args.crop + 1)
            left = rng.integers(0, image.shape[1] - args.crop + 1)
            patch = image[top : top + args.crop, left : left + args.crop]
            checksum += int(np.ascontiguousarray(patch[:, ::-1] if rng.random() < 0.5 else patch)[0, 0, 0])
        pil_crops_s = _rate(n_pil, time.perf_counter() - started)

    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s), "
        f"Python {platform.python_version()}, Pillow {Image.__version__}, numpy {np.__version__}"
    )
    print(
        f"Data: {args.n} JPEGs {args.width}x{args.height} q90 ({jpeg_mb:.0f} MB, generated in {generate_s:.1f} s); "
        f"cache size {size.key}, {cache.nbytes / 1e6:.0f} MB of pixels; build workers {args.workers}\n"
    )
    rows = [
        ("cache build (decode + resize + write)", f"{build_s:.1f} s ({_rate(args.n, build_s):.0f} img/s)"),
        ("cache build with JPEG draft decoding", f"{draft_build_s:.1f} s ({_rate(args.n, draft_build_s):.0f} img/s)"),
        ("cache re-open (fresh, validated)", f"{reopen_s * 1000:.0f} ms"),
        ("whole images, PIL decode + resize", f"{pil_images_s:.0f} img/s"),
        ("whole images, PIL draft decode + resize", f"{pil_draft_images_s:.0f} img/s"),
        ("whole images, cache read + copy", f"{cache_images_s:.0f} img/s ({cache_images_s / pil_images_s:.0f}x PIL)"),
        (f"random {args.crop} crops + flips, PIL decode + resize + crop", f"{pil_crops_s:.0f} crops/s"),
        (
            f"random {args.crop} crops + flips, cache batch({args.batch})",
            f"{cache_crops_s:.0f} crops/s ({cache_crops_s / pil_crops_s:.0f}x PIL)",
        ),
    ]
    print("| measurement (single process unless noted) | result |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
