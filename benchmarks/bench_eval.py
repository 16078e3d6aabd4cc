"""Timing of the evaluation science at KonIQ-10k scale (2015 test items, 10 splits).

Run: .venv/bin/python benchmarks/bench_eval.py (the --ci part: 20 splits x 10 methods)
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

    # --ci for 20 splits x 10 methods (the README's interactive claim): what `biqa eval --ranges
    # --low-quality --ci` computes beyond the plain evaluation, and the per-run bootstrap's cost
    from biqa_bench.evaluation.intervals import bootstrap_interval, records_with_intervals
    from biqa_bench.evaluation.krasula import krasula_analysis
    from biqa_bench.evaluation.metrics import evaluate_predictions
    from biqa_bench.evaluation.range_effect import range_effect_bootstrap, range_effect_records, range_effect_summary

    for n in (2015, 200):
        big = predictions(n=n, splits=20, methods=10)
        print(f"\n--ci, 10 methods x 20 splits x {n} test items ({len(big)} rows)")

        def plain():
            parts = [evaluate_predictions(big), range_records(big), low_quality_records(big)]
            return aggregate_records(pd.concat(parts, ignore_index=True))

        def with_ci():
            parts = [records_with_intervals(evaluate_predictions, big, 1000, 0),
                     records_with_intervals(range_records, big, 1000, 0),
                     records_with_intervals(low_quality_records, big, 1000, 0)]
            summary = aggregate_records(pd.concat(parts, ignore_index=True), ci=True)
            effect = range_effect_summary(records_with_intervals(range_effect_records, big, 1000, 0))
            return summary, effect

        timed("eval --ranges --low-quality (no intervals)", plain)
        timed("eval --ranges --low-quality --ci (t-intervals + range-effect index)", with_ci)
        one = big[(big.split == 0) & (big.method == "m0")]
        q, p = one["quality"].to_numpy(), one["prediction"].to_numpy()
        timed(f"  one run's BCa bootstrap, SROCC + PLCC, 1000 resamples, n={n}",
              lambda: [bootstrap_interval(q, p, m, 1000, 0) for m in ("srocc", "plcc")])
        timed(f"  one run's range-effect bootstrap, 1000 resamples, n={n}", lambda: range_effect_bootstrap(q, p, n_boot=1000))
        if n == 200:
            timed("eval --ci --boot-every-run, overall records only (200 runs)",
                  lambda: records_with_intervals(evaluate_predictions, big, 1000, 0, every_run=True))
        scores = {f"m{k}": big[(big.split == 0) & (big.method == f"m{k}")]["prediction"].to_numpy() for k in range(10)}
        timed(f"  Krasula analysis, 10 methods, one test set of n={n}",
              lambda: krasula_analysis(q, np.full(n, 8.0), np.full(n, 20), scores))
