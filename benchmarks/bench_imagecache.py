"""Benchmark the decode-once image cache against decoding JPEGs with PIL.

Generates N textured JPEGs (default 400 at 1024x768, PIL quality 90) in a temporary folder,
builds the cache (timed, at the given size and worker count), then measures, in this process:

* whole images per second: cache read + copy out of the map vs. PIL decode + resize;
* random 224x224 crops (with flips) per second: ``ImageCache.batch`` vs. PIL decode + resize
  + crop + flip.

Each read measurement is the best of ``--repeats`` passes (as ``timeit`` does), reported both
per wall-clock second and per CPU second of this process, since a shared machine's load moves
the wall-clock figures. The cache is read warm (its pages are in the OS page cache after the
build, as they are for a training run after its first epoch). Prints a Markdown table.
Example::

    .venv/bin/python benchmarks/bench_imagecache.py --n 400 --workers 2
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from PIL import Image

from biqa_bench.datasets.registry import DatasetInfo, make_dataset
from biqa_bench.imagecache import ImageCache, decode_resized, parse_size


def make_images(folder: Path, n: int, width: int, height: int, seed: int) -> pd.DataFrame:
    """Textured stand-in photos: colour gradients, smooth waves, fine noise; JPEG quality 90."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    # one noise field, a different window of it per image: cheaper than fresh noise each time
    noise = rng.normal(0, 10, (height + 64, width + 64, 3)).astype(np.float32)
    rows = []
    for k in range(n):
        phase = rng.uniform(0, 2 * np.pi, 3)
        freq = rng.uniform(2, 12, 3) * 2 * np.pi
        channels = []
        for c in range(3):
            gradient = 255 * (xx / width if c != 1 else yy / height)
            waves = 40 * np.sin(freq[c] * xx / width + phase[c]) * np.cos(freq[(c + 1) % 3] * yy / height)
            channels.append(0.6 * gradient + waves)
        dy, dx = (int(v) for v in rng.integers(0, 64, 2))
        image = np.stack(channels, axis=-1) + noise[dy : dy + height, dx : dx + width]
        name = f"img{k:05d}.jpg"
        Image.fromarray(np.clip(image + 40, 0, 255).astype(np.uint8)).save(folder / name, quality=90)
        rows.append({"item_id": f"i{k:05d}", "path": name, "score": float(rng.uniform(0, 100))})
    return pd.DataFrame(rows)


def best_rate(work: Callable[[], int], repeats: int) -> tuple[float, float]:
    """(items per wall second, items per CPU second of this process), best of ``repeats``."""
    best_wall = best_cpu = 0.0
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        count = work()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        best_wall = max(best_wall, count / wall)
        best_cpu = max(best_cpu, count / max(cpu, 1e-9))
    return best_wall, best_cpu


def _children_cpu() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="number of JPEGs to generate")
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=768)
    parser.add_argument("--size", default="short512", help="cache size spec: short<N>, original or HxW")
    parser.add_argument("--workers", type=int, default=2, help="processes for the cache build")
    parser.add_argument("--draft", action="store_true", help="also time builds/decodes with JPEG draft mode")
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64, help="crops per batch() call")
    parser.add_argument("--crops", type=int, default=12800, help="random crops per timed pass from the cache")
    parser.add_argument("--pil-images", type=int, default=100, help="images per timed pass with PIL")
    parser.add_argument("--repeats", type=int, default=3)
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

        def build(cache_root: Path, draft: bool = False) -> tuple[ImageCache, float, float]:
            wall, cpu = time.perf_counter(), _children_cpu()
            cache = ImageCache.open_or_build(dataset, size=size, workers=args.workers, draft=draft, cache_root=cache_root)
            return cache, time.perf_counter() - wall, _children_cpu() - cpu

        cache, build_s, build_cpu = build(Path(tmp) / "cache")
        _, reopen_s, _ = build(Path(tmp) / "cache")
        if args.draft:
            _, draft_build_s, draft_build_cpu = build(Path(tmp) / "cache-draft", draft=True)

        rng = np.random.default_rng(args.seed)
        n_pil = min(args.pil_images, len(paths))
        sink = []

        def cache_images() -> int:
            for i in rng.permutation(len(paths)):
                sink.append(np.array(cache.read(paths[i]))[0, 0, 0])  # copy: a view alone times nothing
            return len(paths)

        def pil_images(draft: bool = False) -> Callable[[], int]:
            def work() -> int:
                for i in rng.choice(len(paths), n_pil, replace=False):
                    sink.append(decode_resized(paths[i], size, draft=draft)[0, 0, 0])
                return n_pil

            return work

        out = np.empty((args.batch, args.crop, args.crop, 3), dtype=np.uint8)
        n_batches = max(1, args.crops // args.batch)

        def cache_crops() -> int:
            for _ in range(n_batches):
                chosen = [ids[i] for i in rng.integers(0, len(ids), args.batch)]
                cache.batch(chosen, crop=args.crop, rng=rng, out=out)
            return n_batches * args.batch

        def pil_crops() -> int:
            for i in rng.choice(len(paths), n_pil, replace=False):
                image = decode_resized(paths[i], size)
                top = rng.integers(0, image.shape[0] - args.crop + 1)
                left = rng.integers(0, image.shape[1] - args.crop + 1)
                patch = image[top : top + args.crop, left : left + args.crop]
                sink.append(np.ascontiguousarray(patch[:, ::-1] if rng.random() < 0.5 else patch)[0, 0, 0])
            return n_pil

        rates = {
            "whole images, PIL decode + resize": pil_images(),
            "whole images, cache read + copy": cache_images,
            f"random {args.crop} crops + flips, PIL decode + resize + crop": pil_crops,
            f"random {args.crop} crops + flips, cache batch({args.batch})": cache_crops,
        }
        if args.draft:
            rates["whole images, PIL draft decode + resize"] = pil_images(draft=True)
        measured = {name: best_rate(work, args.repeats) for name, work in rates.items()}

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU(s), load average {load:.1f} at the end; "
        f"Python {platform.python_version()}, Pillow {Image.__version__}, numpy {np.__version__}"
    )
    print(
        f"Data: {args.n} JPEGs {args.width}x{args.height} q90 ({jpeg_mb:.0f} MB, generated in {generate_s:.0f} s); "
        f"cache {size.key}: {cache.nbytes / 1e6:.0f} MB of pixels\n"
    )
    print("| measurement | per wall-clock second | per CPU second |")
    print("|---|---|---|")
    print(
        f"| cache build, {args.workers} worker processes | {build_s:.1f} s, {args.n / build_s:.0f} img/s "
        f"| {build_cpu:.1f} CPU s, {args.n / build_cpu:.0f} img/s |"
    )
    if args.draft:
        print(
            f"| cache build, JPEG draft decoding | {draft_build_s:.1f} s, {args.n / draft_build_s:.0f} img/s "
            f"| {draft_build_cpu:.1f} CPU s, {args.n / draft_build_cpu:.0f} img/s |"
        )
    print(f"| cache re-open (validated, no rebuild) | {reopen_s * 1000:.0f} ms | |")
    pil_image = measured["whole images, PIL decode + resize"]
    pil_crop = measured[f"random {args.crop} crops + flips, PIL decode + resize + crop"]
    for name, (wall, cpu) in measured.items():
        unit = "crops/s" if "crops" in name else "img/s"
        base = pil_crop if "crops" in name else pil_image
        speedup = f" ({wall / base[0]:.0f}x PIL)" if "cache" in name else ""
        print(f"| {name} | {wall:,.0f} {unit}{speedup} | {cpu:,.0f} {unit} |")


if __name__ == "__main__":
    main()
