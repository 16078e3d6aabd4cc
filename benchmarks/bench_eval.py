"""Timing of the evaluation science at KonIQ-10k scale (2015 test items, 10 splits).

Run: .venv/bin/python benchmarks/bench_eval.py
"""

import time

import numpy as np
import pandas as pd

from biqa_bench.evaluation.deviation import absolute_deviation_table, class_difference_table
from biqa_bench.evaluation.ranges import aggregate_records, low_quality_records, range_records
from biqa_bench.evaluation.significance import bootstrap_difference, compare_methods, per_image_tests, split_metric_table


def predictions(n=2015, splits=10, methods=5, seed=0):
    rng = np.random.default_rng(seed)
    frames = []
    for split in range(splits):
        quality = np.clip(rng.normal(58, 15, n), 0, 100)
        for k in range(methods):
            frames.append(pd.DataFrame({
                "method": f"m{k}", "train_dataset": "koniq", "item_id": [f"{i}" for i in range(n)],
                "dataset": "koniq", "split": split, "subset": "test", "quality": quality, "score": 1 + quality / 25,
                "prediction": quality / 100 + rng.normal(0, 0.05 + 0.02 * k, n),
            }))
    return pd.concat(frames, ignore_index=True)


def timed(label, fn):
    start = time.perf_counter()
    result = fn()
    print(f"{label}: {time.perf_counter() - start:.2f} s")
    return result


if __name__ == "__main__":
    table = predictions()
    print(f"{len(table)} prediction rows (5 methods x 10 splits x 2015 items)")
    records = timed("range_records", lambda: range_records(table))
    low = timed("low_quality_records", lambda: low_quality_records(table))
    timed("aggregate_records", lambda: aggregate_records(pd.concat([records, low])))
    timed("class_difference_table", lambda: class_difference_table(table))
    timed("absolute_deviation_table", lambda: absolute_deviation_table(table))
    per_split = timed("split_metric_table", lambda: split_metric_table(table))
    timed("compare_methods (paired, Holm)", lambda: compare_methods(per_split[["method", "split", "srocc"]], holm=True))
    one = table[table["split"] == 0]
    q = one[one.method == "m0"]["quality"].to_numpy()
    a, b = one[one.method == "m0"]["prediction"].to_numpy(), one[one.method == "m1"]["prediction"].to_numpy()
    timed("bootstrap_difference srocc, 2000 resamples, n=2015", lambda: bootstrap_difference(q, a, b, "srocc", 2000))
    timed("per_image_tests plcc, 2000 resamples, n=2015", lambda: per_image_tests(one, "m0", "m1", metric="plcc"))
