"""Benchmark IEIT's selective enhancement: cold (computed) vs. cached, 1 vs. N worker processes.

Generates N textured 512x384 JPEGs (quality 90) in a temporary folder: a third darkened, a third
blurred, a third left alone, so that about two thirds are flagged, as in a set with many
low-quality images. Then times ``IEIT.prepare_source`` (``selection='always'``, the other
enhancement settings at their defaults, ``image_size`` 244x244) on them:

* ``read only``: the same reading and resizing with the enhancement left out (the floor);
* ``cold, W workers``: an empty enhancement cache, misses computed by W processes;
* ``cached``: the same call again (every image from the cache).

Each cold run uses its own empty cache folder; every run checks that its pairs equal the first
run's, bit for bit. Prints a Markdown table (wall-clock seconds and ms per image). Example::

    .venv/bin/python benchmarks/bench_ieit_enhance.py --n 150 --workers 1 2
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# torch and the methods are imported in the functions: the worker processes import this file
# (as any spawned process imports its parent's main module) and need none of them


def make_images(folder: Path, n: int, width: int = 512, height: int = 384, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    noise = rng.normal(0, 12, (height + 64, width + 64, 3)).astype(np.float32)
    rows = []
    for k in range(n):
        freq = rng.uniform(2, 12, 3) * 2 * np.pi
        channels = [0.6 * 255 * (xx / width if c != 1 else yy / height)
                    + 40 * np.sin(freq[c] * xx / width) * np.cos(freq[(c + 1) % 3] * yy / height) for c in range(3)]
        dy, dx = (int(v) for v in rng.integers(0, 64, 2))
        image = np.clip(np.stack(channels, axis=-1) + noise[dy : dy + height, dx : dx + width] + 40, 0, 255)
        if k % 3 == 0:
            image = image * 0.2  # dark
        elif k % 3 == 1:
            image = ndimage.gaussian_filter(image, sigma=(2.5, 2.5, 0))  # blurred
        path = folder / f"img{k:05d}.jpg"
        Image.fromarray(image.astype(np.uint8)).save(path, quality=90)
        rows.append({"item_id": f"i{k:05d}", "path": str(path), "quality": 50.0, "score": 50.0, "content_id": f"i{k:05d}"})
    return pd.DataFrame(rows)


def run(items: pd.DataFrame, ctx, workers: int) -> tuple[float, dict, dict]:
    import torch

    from biqa_bench.methods import create_method

    method = create_method("ieit", recipe="quick", pretrained="none", selection="always", image_size="244x244",
                           crop=224, enhance_workers=workers)
    started = time.perf_counter()
    source = method.prepare_source(items, ctx, method.settings(), torch.device("cpu"))
    return time.perf_counter() - started, source.images, dict(method._enhancement_stats, **method._enhancement_log)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=150)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    import torch

    from biqa_bench.methods import Context
    from biqa_bench.nn.data import fit_size, parse_image_size

    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "img").mkdir()
        items = make_images(tmp / "img", args.n)
        ctx = Context(device="cpu", seed=0, cache_dir=tmp / "cache", log=logging.getLogger("bench"))

        started = time.perf_counter()
        work = parse_image_size("short512")
        for path in items["path"]:
            fit_size(fit_size(np.asarray(ctx.read_image(path)), work, 224), parse_image_size("244x244"), 224)
        rows.append(("read only (decode + resize, no enhancement)", time.perf_counter() - started, "-"))

        reference = None
        for workers in args.workers:
            os.environ["BIQA_CACHE"] = str(tmp / f"cache-{workers}")
            for label in (f"cold, {workers} worker{'s' if workers > 1 else ''}", f"cached (again, enhance_workers={workers})"):
                seconds, images, stats = run(items, ctx, workers)
                if reference is None:
                    reference = images
                assert images.keys() == reference.keys() and all(np.array_equal(images[k], reference[k]) for k in images), label
                rows.append((label, seconds, f"{stats['computed']} computed / {stats['cached']} cached, {stats['flagged']} flagged"))
    print(f"{args.n} JPEGs 512x384, selection=always; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end\n")
    print("| run | seconds | ms / image | images |")
    print("|---|---:|---:|---|")
    for label, seconds, what in rows:
        print(f"| {label} | {seconds:.2f} | {1000 * seconds / args.n:.1f} | {what} |")


if __name__ == "__main__":
    main()
