"""Benchmark HCL curriculum 1's restoration pairs: decoded into memory vs. decode-once caches.

Generates N textured 512x384 PNG pairs in a temporary folder (each reference shared by
``--per-reference`` distorted images, as the 39 single distortions of a synthetic set share one)
and times three ways of making the 6-channel (distorted, reference) source at 256 x 256:

* ``in memory (serial)``: every distorted image and its reference decoded and resized in this
  process, the pair kept in a dict (what curriculum 1 did before; references decoded once per
  distorted image);
* ``caches, cold``: ``PairedImages`` over two decode-once image caches (distorted images,
  unique references) built by W worker processes (what curriculum 1 does now);
* ``caches, warm``: the same caches opened again.

Then one epoch's batches (batch 32, 224 crops) are drawn from each source. Checks that both
sources give the same pairs (within 1 grey level: the resize paths differ). Prints a Markdown
table and the resident memory the in-memory dict holds. Example::

    .venv/bin/python benchmarks/bench_hcl_pairs.py --n 400 --workers 2
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_pairs(folder: Path, n: int, per_reference: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    references = {}
    for i in range(n):
        r = i // per_reference
        if r not in references:
            base = rng.integers(0, 256, (48, 64, 3)).astype(np.uint8)
            image = Image.fromarray(base).resize((512, 384), Image.Resampling.BICUBIC)
            references[r] = folder / f"ref{r}.png"
            image.save(references[r])
        reference = np.asarray(Image.open(references[r]))
        distorted = np.clip(reference.astype(np.int16) + rng.integers(-40, 40, reference.shape), 0, 255).astype(np.uint8)
        path = folder / f"d{i}.png"
        Image.fromarray(distorted).save(path)
        rows.append({"item_id": f"d{i}", "path": str(path), "reference": str(references[r])})
    return pd.DataFrame(rows)


def in_memory(items: pd.DataFrame, size: int):
    from biqa_bench.images import read_image
    from biqa_bench.nn.data import MemoryImages, resize_to

    pairs = {}
    for row in items.itertuples(index=False):
        distorted = resize_to(np.asarray(read_image(row.path))[..., :3], size, size)
        reference = resize_to(np.asarray(read_image(row.reference))[..., :3], size, size)
        pairs[row.item_id] = np.ascontiguousarray(np.concatenate([distorted, reference], axis=2))
    return MemoryImages(pairs)


def cached(items: pd.DataFrame, size: int, workers: int, fingerprint: str):
    from methods._support import pretrain as P
    from biqa_bench.nn.data import PairedImages

    pset = P.PretrainSet("bench", "synthetic", items, fingerprint)
    distorted = P.pretrain_image_source(pset, size, workers=workers)
    unique = pd.Series(items["reference"].unique())
    refs = P.PretrainSet("bench-references", "synthetic", pd.DataFrame({"item_id": unique, "path": unique}), f"{fingerprint}-references")
    references = P.pretrain_image_source(refs, size, workers=workers)
    return PairedImages(distorted, references, dict(zip(items["item_id"], items["reference"])))


def epoch(source, ids: list[str], batch: int, crop: int) -> float:
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    order = rng.permutation(len(ids))
    for start in range(0, len(ids), batch):
        source.batch([ids[k] for k in order[start : start + batch]], crop, rng)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=400, help="distorted images")
    parser.add_argument("--per-reference", type=int, default=39)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-hcl-pairs-") as tmp:
        tmp = Path(tmp)
        os.environ["BIQA_CACHE"] = str(tmp / "cache")
        (tmp / "images").mkdir()
        items = make_pairs(tmp / "images", args.n, args.per_reference)
        ids = items["item_id"].tolist()
        rows = []
        t0 = time.perf_counter()
        memory = in_memory(items, args.size)
        rows.append(("in memory (serial)", time.perf_counter() - t0, epoch(memory, ids, 32, 224)))
        t0 = time.perf_counter()
        source = cached(items, args.size, args.workers, fingerprint="bench-1")
        rows.append((f"caches, cold, {args.workers} workers", time.perf_counter() - t0, epoch(source, ids, 32, 224)))
        t0 = time.perf_counter()
        source = cached(items, args.size, args.workers, fingerprint="bench-1")
        rows.append(("caches, warm", time.perf_counter() - t0, epoch(source, ids, 32, 224)))
        worst = max(int(np.abs(memory.read_item(i).astype(int) - source.read_item(i).astype(int)).max()) for i in ids)
        held = sum(v.nbytes for v in memory.images.values())
        print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs; {args.n} pairs of 512x384 PNGs, "
              f"{args.per_reference} per reference, resized to {args.size}x{args.size}\n")
        print("| source | make s | ms / pair | one epoch of batches (32 x 224 crops) s |")
        print("|---|---:|---:|---:|")
        for name, make, draw in rows:
            print(f"| {name} | {make:.2f} | {1000 * make / args.n:.1f} | {draw:.2f} |")
        print(f"\nlargest pixel difference between the sources: {worst}; the in-memory dict held {held / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
