"""`biqa sweep` on each executor: the same sweep's wall time, and each engine's per-job overhead.

1. The sweep: ``--methods`` (default BRISQUE and NIQE, one thread each) x the two embedded data
   sets x ``--repeats`` splits, run by ``serial``, ``process`` (2 workers) and ``ray`` (local Ray,
   2 CPUs; its start-up timed apart). Every run gets a fresh results folder and a fresh cache (the
   embedded sets' images linked in, so no executor finds another's features); the script checks
   that the three give the same predictions.
2. Per-job overhead: ``--trivial-jobs`` N jobs of a method that does almost nothing
   (``sweep-mean`` of ``tests/sweep_methods``: a line fitted to the mean brightness of 40 images
   of 24 x 24) on ``serial``, ``process``, ``ray`` and ``slurm`` through submitit's ``local``
   executor (one Python process per job, as on a cluster node); overhead = (t_engine - t_serial) / N.

Only the library's own calls are timed (``plan_jobs`` apart, ``run_sweep`` with the executor);
no CLI start-up. The embedded sets are built first if the cache lacks them (minutes, not timed).

    .venv/bin/python benchmarks/bench_sweep.py [--methods brisque,niqe] [--repeats 3] [--trivial-jobs 12]
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TEST_METHODS = ROOT / "tests" / "sweep_methods"
PARAMS = {"brisque": {"n_jobs": 1}, "niqe": {}, "cornia": {"n_jobs": 1}, "hosa": {"n_jobs": 1}}


def fresh_cache(work: Path, name: str, embedded: Path) -> Path:
    """An empty cache but for the embedded sets (linked): what a new user's first sweep finds."""
    cache = work / f"cache-{name}"
    cache.mkdir()
    (cache / "embedded").symlink_to(embedded, target_is_directory=True)
    os.environ["BIQA_CACHE"] = str(cache)
    return cache


def timed_sweep(plan, executor):
    from biqa_bench.sweep import plan_jobs, run_sweep

    started = time.perf_counter()
    jobs = plan_jobs(plan)
    planned = time.perf_counter()
    result = run_sweep(jobs, executor)
    done = time.perf_counter()
    if result.failed or result.count("done") != len(jobs.runs):
        raise SystemExit(f"{plan.executor}: {result.count('done')} of {len(jobs.runs)} done; failed: "
                         f"{[(j.label, o.note) for j, o in result.failed]}")
    return planned - started, done - planned, len(jobs.runs)


def start_ray(ray) -> float:
    """Seconds to start a local Ray with 2 CPUs (a fresh one for each measurement)."""
    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    return time.perf_counter() - started


def predictions(out: Path) -> pd.DataFrame:
    from biqa_bench.store import load_predictions

    return load_predictions(out).sort_values(["dataset", "method", "split", "item_id"]).reset_index(drop=True)


def make_executor(plan):
    from biqa_bench.sweep import make_executor as make

    return make(plan)


def tiny_dataset(work: Path) -> str:
    """A registered 40-image dataset (24 x 24 PNGs, 20 contents) for the trivial jobs."""
    from biqa_bench.datasets.custom import add_custom_dataset

    rng = np.random.default_rng(0)
    folder = work / "tiny"
    folder.mkdir()
    rows = []
    for k in range(40):
        score = 1 + 4 * k / 39
        image = np.clip(rng.normal(20 + 45 * score, 10, (24, 24, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / f"img{k:03d}.png")
        rows.append({"path": f"img{k:03d}.png", "score": round(score, 4), "content": f"c{k // 2}"})
    pd.DataFrame(rows).to_csv(work / "tiny.csv", index=False)
    add_custom_dataset("benchtiny", work / "tiny.csv", folder, (1.0, 5.0), content_column="content")
    return "benchtiny"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="brisque,niqe")
    parser.add_argument("--datasets", default="synthetic,mixed")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trivial-jobs", type=int, default=12)
    parser.add_argument("--skip-sweep", action="store_true", help="only the per-job overhead")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    os.environ["BIQA_CONFIG"] = str(work / "config.json")
    os.environ["BIQA_METHODS_PATH"] = str(TEST_METHODS)  # sweep-mean, found by every worker
    from biqa_bench.config import cache_path
    from biqa_bench.datasets.registry import load_dataset
    from biqa_bench.sweep import SweepPlan

    import ray

    methods = args.methods.split(",")
    datasets = args.datasets.split(",")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} at the start")
    try:
        embedded = cache_path("embedded")
        for name in datasets:
            load_dataset(name)  # built into the user's cache if missing (not timed)
        embedded = embedded.resolve()
        rows = []
        ray_start = []

        if not args.skip_sweep:
            outs = {}
            for name, fields in (("serial", {}), ("process", {"workers": 2}), ("ray", {})):
                fresh_cache(work, name, embedded)
                outs[name] = work / f"out-{name}"
                plan = SweepPlan(methods, datasets, repeats=args.repeats, seed=0, out=outs[name], executor=name,
                                 params={m: PARAMS.get(m, {}) for m in methods}, **fields)
                if name == "ray":
                    ray_start.append(start_ray(ray))
                plan_s, run_s, n = timed_sweep(plan, make_executor(plan))
                if name == "ray":
                    ray.shutdown()
                rows.append((name, n, plan_s, run_s))
                print(f"sweep {name}: {n} jobs, plan {plan_s:.1f} s, run {run_s:.1f} s", flush=True)
            for name in ("process", "ray"):
                pd.testing.assert_frame_equal(predictions(outs["serial"]), predictions(outs[name]))
            serial_s = rows[0][3]
            print("\n| executor | jobs | plan (s) | run (s) | serial / this |\n|---|---|---|---|---|")
            for name, n, plan_s, run_s in rows:
                print(f"| {name} | {n} | {plan_s:.1f} | {run_s:.1f} | {serial_s / run_s:.2f} |")
            print(f"\nidentical predictions on all three executors; Ray start-up (ray.init, 2 CPUs) {ray_start[0]:.1f} s, not in 'run'")

        fresh_cache(work, "trivial", embedded)
        tiny = tiny_dataset(work)
        n = args.trivial_jobs
        overhead = []
        for name, fields in (("serial", {}), ("process", {"workers": 2}), ("ray", {}),
                             ("slurm", {"slurm_cluster": "local", "slurm_time": "10", "slurm_array_parallelism": 2})):
            plan = SweepPlan(["sweep-mean"], [tiny], repeats=n, seed=0, out=work / f"trivial-{name}", executor=name, **fields)
            if name == "ray":
                ray_start.append(start_ray(ray))
            executor = make_executor(plan)
            if name == "slurm":
                executor.poll_s = 0.2
            _, run_s, jobs = timed_sweep(plan, executor)
            if name == "ray":
                ray.shutdown()
            overhead.append((name, jobs, run_s))
            print(f"trivial {name}: {jobs} jobs in {run_s:.2f} s", flush=True)
        serial_s = overhead[0][2]
        print("\n| executor | jobs | run (s) | per job (s) | overhead per job vs serial (s) |\n|---|---|---|---|---|")
        for name, jobs, run_s in overhead:
            print(f"| {name} | {jobs} | {run_s:.2f} | {run_s / jobs:.3f} | {(run_s - serial_s) / jobs:+.3f} |")
        print(f"\nRay start-up (ray.init, 2 CPUs, not in 'run'): {', '.join(f'{t:.1f} s' for t in ray_start)}")
        print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end")
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
