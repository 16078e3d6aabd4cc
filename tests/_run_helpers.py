"""Training every split of a method the way `biqa train` does: one job per split, run by the
local executor (in this process, or a pool of ``jobs`` worker processes)."""

from __future__ import annotations

from biqa_bench.jobs import Job, local_executor
from biqa_bench.runner import run_jobs


def train_runs(method, params, dataset, split_set, out, only_splits=None, jobs=1, **fields):
    job = Job(method, params, dataset, split_set, out, **fields)
    return run_jobs(job.for_splits(only_splits), local_executor(jobs))
