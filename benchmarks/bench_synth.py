"""Throughput of the synthetic-data generator: distortion, pseudo-MOS, and whole builds.

Prints images per second for
  1. each distortion type alone (256x256, one process),
  2. the pseudo-MOS (six FR metrics, batched, one torch thread),
  3. full embedded builds of ``synthetic`` and ``mixed`` from scratch (into a temporary cache),
  4. ``synthesize_folder`` on a folder of pristine images (the embedded contents written out).

Wall time and the CPU time of this process and its workers are both printed: on a shared
machine the CPU time is the steadier figure.

    .venv/bin/python benchmarks/bench_synth.py [--workers 2] [--skip-builds]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(fn):
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = fn()
    return result, time.perf_counter() - wall, cpu_seconds() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default min(2, CPUs))")
    parser.add_argument("--skip-builds", action="store_true", help="only the per-distortion and pseudo-MOS figures")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["BIQA_CACHE"] = str(Path(tmp) / "cache")
        os.environ["BIQA_CONFIG"] = str(Path(tmp) / "config.json")
        from biqa_bench.datasets import distortions as D
        from biqa_bench.datasets import synthetic as S
        from biqa_bench.datasets.pseudo_mos import pseudo_mos
        from biqa_bench.datasets.synth import synthesize_folder

        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
        reference = S.EMBEDDED_CONTENTS[0].image()
        print("\n1. distortions on 256x256 (one process), images/s:")
        for kind, table in (("synthetic", D.SYNTHETIC_DISTORTIONS), ("authentic", D.AUTHENTIC_DISTORTIONS)):
            for name, dist in table.items():
                rng = np.random.default_rng(0)
                repeats = 4
                _, wall, _ = timed(lambda: [dist(reference, lv, rng) for _ in range(repeats)
                                            for lv in range(1, dist.n_levels + 1)])
                print(f"   {kind:9s} {name:16s} {repeats * dist.n_levels / wall:8.1f}")

        batch = np.stack([D.SYNTHETIC_DISTORTIONS["white_noise"](reference, 1 + i % 5, np.random.default_rng(i))
                          for i in range(32)])
        pseudo_mos(batch[:2], reference)  # warm-up
        _, wall, cpu = timed(lambda: pseudo_mos(batch, reference))
        print(f"\n2. pseudo-MOS, 32 images 256x256 against one reference: {32 / wall:.2f} images/s "
              f"({wall:.1f} s wall, {cpu:.1f} s CPU, one torch thread)")

        if args.skip_builds:
            return
        print("\n3. embedded builds from scratch:")
        total_wall = total_cpu = 0.0
        for name in ("synthetic", "mixed"):
            folder, wall, cpu = timed(lambda: S.build_embedded(name, workers=args.workers))
            n = sum(1 for _ in (folder / "images").rglob("*.png"))
            total_wall += wall
            total_cpu += cpu
            print(f"   {name:9s} {n:4d} images in {wall:6.1f} s wall ({n / wall:5.2f} images/s), {cpu:6.1f} s CPU")
        print(f"   both: {total_wall:.1f} s wall, {total_cpu:.1f} s CPU")

        print("\n4. synthesize_folder on the 13 embedded contents (256x256 PNGs), kind synthetic and authentic:")
        sources = Path(tmp) / "pristine"
        sources.mkdir()
        from PIL import Image

        for content in S.EMBEDDED_CONTENTS:
            Image.fromarray(content.image()).save(sources / f"{content.content_id}.png")
        for kind in ("synthetic", "authentic"):
            out = Path(tmp) / f"gen-{kind}"
            _, wall, cpu = timed(lambda: synthesize_folder(sources, out, kind=kind, seed=0, workers=args.workers))
            n = sum(1 for _ in (out / "images").rglob("*.png"))
            print(f"   {kind:9s} {n:4d} images in {wall:6.1f} s wall ({n / wall:5.2f} images/s), {cpu:6.1f} s CPU")
            _, wall, _ = timed(lambda: synthesize_folder(sources, out, kind=kind, seed=0, workers=args.workers))
            print(f"   {kind:9s} re-run (everything finished, resumed): {wall:.2f} s")


if __name__ == "__main__":
    main()
