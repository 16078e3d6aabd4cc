"""How fast does `biqa datasets check` verify a download? Times check_dataset on a KonIQ-layout
replica of full-size (1024x768) JPEGs with 1 and 2 decoding threads, and the label parsing
of the real TID2013 / CSIQ / BID label files.

Run: .venv/bin/python benchmarks/bench_datasets_check.py [--images 300]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from biqa_bench.datasets import load_dataset
from biqa_bench.datasets.check import check_dataset

REAL = Path("/work/shared/fixtures/real-labels")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=300)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "koniq"
        (root / "1024x768").mkdir(parents=True)
        base = (rng.random((768, 1024, 3)) * 255).astype(np.uint8)
        names = [f"{i:08d}.jpg" for i in range(args.images)]
        for i, name in enumerate(names):
            Image.fromarray(np.roll(base, i, axis=1)).save(root / "1024x768" / name, quality=90)
        counts = rng.integers(1, 40, size=(len(names), 5))
        pd.DataFrame({"image_name": names, **{f"c{k+1}": counts[:, k] for k in range(5)}, "c_total": counts.sum(1),
                      "MOS": 3.0, "SD": 0.5, "MOS_zscore": 50.0}).to_csv(root / "koniq10k_scores_and_distributions.csv", index=False)
        dataset = load_dataset("koniq", root)
        for workers in (1, 2):
            start = time.perf_counter()
            report = check_dataset(dataset, workers=workers)
            elapsed = time.perf_counter() - start
            assert report.ok
            print(f"check {len(names)} JPEGs 1024x768, workers={workers}: {elapsed:.2f} s, {len(names) / elapsed:.0f} images/s")
        for name, label, target in (("tid2013", "tid2013_mos_with_names.txt", "mos_with_names.txt"),
                                    ("csiq", "csiq_dmos_workbook.xlsx", "csiq.DMOS.xlsx"),
                                    ("bid", "bid_DatabaseGrades.xls", "DatabaseGrades.xls")):
            if not (REAL / label).is_file():
                continue
            folder = Path(tmp) / name
            folder.mkdir()
            shutil.copy(REAL / label, folder / target)
            start = time.perf_counter()
            n = len(load_dataset(name, folder).items)
            print(f"load {name} ({n} items) from the real label file: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
