"""Is a CPU cnniqa run bit-reproducible? One split of the embedded synthetic set, trained under
several thread and kernel settings, each in a fresh process; prints the SHA-256 of the test
predictions (float64 bytes) and the test SROCC of each.

    python benchmarks/determinism_cnniqa.py                  # the default settings below
    python benchmarks/determinism_cnniqa.py --split 1 --epochs 2

Settings (environment of the child process, read before torch is imported):

* ``threads=N``                 cnniqa's ``num_threads`` parameter (torch intra-op threads);
* ``ATEN_CPU_CAPABILITY=avx2``  torch's own kernels dispatched as on a CPU without AVX-512;
* ``ONEDNN_MAX_CPU_ISA=AVX2``   oneDNN (convolutions) limited to AVX2 kernels;
* ``MKL_CBWR=AVX2``             MKL's conditional numerical reproducibility (matrix products):
  the AVX2 code path's results on every CPU that has AVX2;
* "as on an AVX2-only CPU": the three dispatch limits at once (ATEN_CPU_CAPABILITY,
  ONEDNN_MAX_CPU_ISA, MKL_ENABLE_INSTRUCTIONS=AVX2), which stand in for a machine without AVX-512.

Two settings that print the same hash give bit-identical predictions. Results are in
BENCHMARKS.md ("CPU determinism").
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

AVX2_CPU = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
PINNED = {"MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}

SETTINGS = {
    "threads=1 (cnniqa's default)": ({}, 1),
    "threads=2": ({}, 2),
    "threads=1, ATEN_CPU_CAPABILITY=avx2": ({"ATEN_CPU_CAPABILITY": "avx2"}, 1),
    "threads=1, ONEDNN_MAX_CPU_ISA=AVX2": ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, 1),
    "threads=1, MKL_CBWR=AVX2": ({"MKL_CBWR": "AVX2"}, 1),
    "threads=1, as on an AVX2-only CPU": (AVX2_CPU, 1),
    "threads=1, pinned (MKL_CBWR, ONEDNN_MAX_CPU_ISA)": (PINNED, 1),
    "threads=1, pinned, as on an AVX2-only CPU": (AVX2_CPU | PINNED, 1),
}


def child(split_index: int, threads: int, epochs: int | None) -> dict:
    import numpy as np
    import torch

    sys.path.insert(0, str(ROOT))
    from biqa_bench.datasets.registry import load_dataset
    from biqa_bench.evaluation.metrics import srocc
    from biqa_bench.methods import Context
    from biqa_bench.splits import make_splits
    from methods.cnniqa import CNNIQA

    data = load_dataset("synthetic")
    split = make_splits(data, repeats=split_index + 1, seed=0).splits[split_index]
    pick = lambda ids: data.with_abspaths(data.subset(ids))  # noqa: E731
    params = {"num_threads": threads} | ({"epochs": epochs} if epochs else {})
    started = time.perf_counter()
    method = CNNIQA(**params).fit(pick(split.train), pick(split.val), Context(seed=0))
    test = pick(split.test)
    prediction = np.asarray(method.predict(test, Context(seed=0)), dtype=np.float64)
    return {
        "sha256": hashlib.sha256(prediction.tobytes()).hexdigest()[:16],
        "srocc": round(float(srocc(test["quality"].to_numpy(float), prediction)), 6),
        "seconds": round(time.perf_counter() - started, 1),
        "capability": torch.backends.cpu.get_cpu_capability(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None, help="cnniqa epochs (default: the method's)")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.split, args.child, args.epochs)))
        return
    for name, (env, threads) in SETTINGS.items():
        command = [sys.executable, __file__, "--child", str(threads), "--split", str(args.split)]
        if args.epochs:
            command += ["--epochs", str(args.epochs)]
        out = subprocess.run(command, env=os.environ | env, capture_output=True, text=True, check=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        print(f"{name:40s} sha256 {result['sha256']}  SROCC {result['srocc']:.6f}  "
              f"({result['seconds']} s, torch CPU capability {result['capability']})", flush=True)


if __name__ == "__main__":
    main()
