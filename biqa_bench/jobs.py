"""The unit of work (:class:`Job`) and the executors that run jobs.

A job is one (method, parameters, train dataset, split, image-cache spec, results folder): it
writes exactly one run folder through :func:`biqa_bench.runner.run_job` (split lock, resume,
atomic writes, manifest last). Jobs share nothing but their run folders and the caches, so any
executor gives the same runs:

* :class:`SerialExecutor` - in this process, one job after the other (progress and log reach the
  caller);
* :class:`ProcessExecutor` - a local process pool (``workers`` processes, for CPU methods);
* :class:`RayExecutor` - one Ray task per job (extra ``biqa-bench[ray]``);
* :class:`SlurmExecutor` - one SLURM job array through submitit (extra ``biqa-bench[slurm]``).

The cluster engines need the results folder and the cache on a file system every node sees.

An executor's :meth:`Executor.run` takes jobs and the function that runs one
(:func:`biqa_bench.runner.run_job`) and returns one :class:`RunOutcome` per job. With
``keep_going`` a job that raises is recorded (``failed.json`` in its run folder) and returned as
``failed``; the other jobs go on. Without it the first error stops the run and is raised, as
``biqa train`` wants.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import RunError
from .store import is_complete, record_failure

Progress = Callable[[str, float, "float | None"], None]
OnDone = Callable[["RunOutcome"], None]

#: The environment a job depends on (config, caches, dataset roots, user method folders): every
#: ``BIQA_*`` variable and these. A worker may have been started before the caller changed them (a
#: pool's server process outlives one command; a cluster node has its own), so every job carries
#: the caller's values into its worker.
JOB_ENVIRONMENT = ("XDG_CONFIG_HOME", "XDG_CACHE_HOME")


@dataclass(frozen=True)
class Job:
    """One training run: ``method`` with ``params`` on split ``split`` of ``split_set``.

    ``kind`` is ``run`` (a split of a benchmark, folder ``OUT/DATASET/METHOD/split_NN``),
    ``pretrain`` (the pre-training stages that split's ``run`` job will use, into the stage cache;
    no run folder of its own) or ``cross-model`` (trained on all of the dataset, folder given). ``image_cache`` is a spec as
    ``biqa train --image-cache`` takes it (``none``, ``short512``, ``original``, ``HxW``): the
    job opens that cache of its dataset where it runs.
    """

    method: str
    params: dict[str, Any]
    dataset: Any  # biqa_bench.datasets.registry.Dataset
    split_set: Any  # biqa_bench.splits.SplitSet
    out: Path
    split: int = 0
    split_file: Path | None = None
    seed: int = 0
    device: str = "cpu"
    image_cache: str = "none"
    skip_items: tuple[str, ...] = ()
    force: bool = False
    kind: str = "run"
    folder_override: Path | None = None
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def folder(self) -> Path:
        if self.folder_override is not None:
            return Path(self.folder_override)
        from .store import run_dir

        return run_dir(self.out, self.dataset.name, self.method, self.split)

    @property
    def label(self) -> str:
        return f"{self.method} on {self.dataset.name} split {self.split}"

    def for_splits(self, only: Sequence[int] | None = None) -> list["Job"]:
        """This job once per split of its split set (those in ``only`` when given)."""
        return [
            dataclasses.replace(self, split=s.index)
            for s in self.split_set.splits
            if only is None or s.index in set(only)
        ]


@dataclass(frozen=True)
class RunOutcome:
    split: int
    folder: Path
    status: str  # "done" | "skipped" | "busy" (another process is training it) | "failed"
    seconds: float
    note: str = ""


def caller_environment() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name.startswith("BIQA_") or name in JOB_ENVIRONMENT}


#: What executes one job where it is called: ``work(job, progress, log, keep_going)``
#: (:func:`biqa_bench.runner.run_job`; module-level, so that it pickles into workers).
Work = Callable[[Job, "Progress | None", "logging.Logger | None", bool], RunOutcome]


def _execute_in_worker(work: Work, job: Job, keep_going: bool) -> RunOutcome:
    # logs go to the worker's "biqa" logger; progress is not forwarded
    os.environ.update(job.environment)
    return work(job, None, logging.getLogger("biqa"), keep_going)


def _with_environment(job: Job) -> Job:
    return job if job.environment else dataclasses.replace(job, environment=caller_environment())


class Executor:
    """Runs jobs and returns their outcomes (in the order they finish); see the module docstring."""

    name = "executor"

    def __init__(self, keep_going: bool = False):
        self.keep_going = keep_going

    def run(self, jobs: Sequence[Job], work: Work, on_done: OnDone | None = None) -> list[RunOutcome]:
        raise NotImplementedError

    def _failed(self, job: Job, reason: str) -> RunOutcome:
        """The outcome of a job whose worker died or could not report (a crash, ``kill -9``)."""
        if is_complete(job.folder):  # it finished before its worker was lost
            return RunOutcome(job.split, job.folder, "done", 0.0, "finished before its worker was lost")
        record_failure(job.folder, reason)
        return RunOutcome(job.split, job.folder, "failed", 0.0, reason)


class SerialExecutor(Executor):
    """Every job in this process, one after the other."""

    name = "serial"

    def __init__(self, progress: Progress | None = None, log: logging.Logger | None = None, keep_going: bool = False):
        super().__init__(keep_going)
        self.progress = progress
        self.log = log

    def run(self, jobs: Sequence[Job], work: Work, on_done: OnDone | None = None) -> list[RunOutcome]:
        outcomes = []
        for job in jobs:
            outcome = work(job, self.progress, self.log or logging.getLogger("biqa"), self.keep_going)
            outcomes.append(outcome)
            if on_done:
                on_done(outcome)
        return outcomes


class ProcessExecutor(Executor):
    """A local process pool of ``workers`` processes (forkserver; progress is not forwarded)."""

    name = "process"

    def __init__(
        self, workers: int = 2, keep_going: bool = False, inline_single: bool = False,
        progress: Progress | None = None, log: logging.Logger | None = None,
    ):
        if workers < 1:
            raise RunError(f"--jobs / --workers must be at least 1, not {workers}")
        super().__init__(keep_going)
        self.workers = workers
        self.inline_single = inline_single  # one job alone runs here, with progress (biqa train)
        self.progress, self.log = progress, log

    def run(self, jobs: Sequence[Job], work: Work, on_done: OnDone | None = None) -> list[RunOutcome]:
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        from concurrent.futures.process import BrokenProcessPool

        from .pools import pool_context

        if not jobs:
            return []
        if self.inline_single and len(jobs) == 1:
            return SerialExecutor(self.progress, self.log, self.keep_going).run(jobs, work, on_done)
        outcomes = []
        # forkserver: no fork of a parent whose torch/OpenMP thread pools may be running
        executor = ProcessPoolExecutor(max_workers=min(self.workers, len(jobs)), mp_context=pool_context())
        try:
            futures = {executor.submit(_execute_in_worker, work, _with_environment(job), self.keep_going): job for job in jobs}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    try:
                        outcome = future.result()
                    except BrokenProcessPool:
                        if not self.keep_going:
                            raise
                        outcome = self._failed(futures[future], "its worker process died (killed, or out of memory); run again to retry")
                    outcomes.append(outcome)
                    if on_done:
                        on_done(outcome)
        except BaseException:
            executor.shutdown(wait=False, cancel_futures=True)
            raise
        executor.shutdown(wait=True)
        return outcomes


def local_executor(workers: int = 1, progress: Progress | None = None, log: logging.Logger | None = None, keep_going: bool = False) -> Executor:
    """In this process for one worker, else a process pool: what ``biqa train --jobs N`` uses."""
    if workers < 1:
        raise RunError(f"--jobs / --workers must be at least 1, not {workers}")
    if workers == 1:
        return SerialExecutor(progress, log, keep_going)
    return ProcessExecutor(workers, keep_going, inline_single=True, progress=progress, log=log)


def _uses_gpu(method: str) -> bool:
    from .methods import method_class

    return bool(getattr(method_class(method), "uses_gpu", False))


def _missing_extra(engine: str, extra: str) -> RunError:
    return RunError(f"the {engine} executor needs {engine.capitalize()}: pip install 'biqa-bench[{extra}]'")


class RayExecutor(Executor):
    """One Ray task per job: ``num_gpus=1`` for methods that use a GPU when the cluster has GPUs,
    else ``num_cpus=1``. ``address``: ``local`` starts Ray in this process, ``auto`` joins the
    cluster this node belongs to, ``ray://HOST:PORT`` a remote one. If Ray is already started in
    this process (``ray.init`` by the caller), that is used."""

    name = "ray"

    def __init__(self, address: str = "auto", keep_going: bool = True):
        try:
            import ray  # noqa: F401 - only whether it is installed
        except ImportError:
            raise _missing_extra("ray", "ray") from None
        super().__init__(keep_going)
        self.address = address

    def _connect(self):
        import ray

        if ray.is_initialized():
            return ray
        try:
            if self.address == "local":
                ray.init(include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=self.address, log_to_driver=False)
        except ConnectionError as exc:
            raise RunError(
                f"no Ray cluster at --ray-address {self.address} ({str(exc).splitlines()[0]}); "
                "start one with `ray start --head`, or use --ray-address local"
            ) from None
        return ray

    def run(self, jobs: Sequence[Job], work: Work, on_done: OnDone | None = None) -> list[RunOutcome]:
        if not jobs:
            return []
        ray = self._connect()
        gpus = ray.cluster_resources().get("GPU", 0) > 0
        task = ray.remote(_execute_in_worker)
        refs = {}
        for job in jobs:
            resources = {"num_gpus": 1} if gpus and _uses_gpu(job.method) else {"num_cpus": 1}
            refs[task.options(max_retries=0, **resources).remote(work, _with_environment(job), self.keep_going)] = job
        outcomes = []
        try:
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1)
                for ref in ready:
                    job = refs.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # the task raised with keep_going off, or its worker died
                        if not self.keep_going:
                            raise
                        outcome = self._failed(job, f"Ray task failed: {str(exc).strip().splitlines()[0]}")
                    outcomes.append(outcome)
                    if on_done:
                        on_done(outcome)
        except BaseException:
            for ref in refs:
                ray.cancel(ref, force=True)
            raise
        return outcomes


class SlurmExecutor(Executor):
    """All jobs as one SLURM job array through submitit; logs under ``log_folder`` (``%j`` = job
    id). ``cluster`` is submitit's: ``slurm``, or ``local`` / ``debug`` to run the same path on
    this machine. This process waits for the array and reports each job as it ends; the jobs
    themselves go on if it is stopped (``biqa sweep --status OUT`` reads them back)."""

    name = "slurm"

    def __init__(
        self, log_folder: Path, partition: str | None = None, time_min: int = 60, gpus_per_job: int = 0,
        array_parallelism: int = 64, cluster: str = "slurm", keep_going: bool = True, poll_s: float = 1.0,
    ):
        try:
            import submitit  # noqa: F401
        except ImportError:
            raise _missing_extra("slurm", "slurm") from None
        super().__init__(keep_going)
        self.log_folder = Path(log_folder)
        self.partition, self.time_min, self.gpus_per_job = partition, int(time_min), int(gpus_per_job)
        self.array_parallelism, self.cluster, self.poll_s = int(array_parallelism), cluster, poll_s

    def _executor(self):
        import submitit

        executor = submitit.AutoExecutor(folder=str(self.log_folder / "%j"), cluster=self.cluster)
        parameters: dict[str, Any] = {"timeout_min": self.time_min, "slurm_array_parallelism": self.array_parallelism}
        if self.gpus_per_job:
            parameters["gpus_per_node"] = self.gpus_per_job
        if self.partition:
            parameters["slurm_partition"] = self.partition
        executor.update_parameters(**parameters)
        return executor

    def run(self, jobs: Sequence[Job], work: Work, on_done: OnDone | None = None) -> list[RunOutcome]:
        import time

        if not jobs:
            return []
        jobs = [_with_environment(job) for job in jobs]
        submitted = self._executor().map_array(_execute_in_worker, [work] * len(jobs), jobs, [self.keep_going] * len(jobs))
        waiting = dict(zip(submitted, jobs))
        outcomes = []
        while waiting:
            finished = [handle for handle in waiting if handle.done()]
            if not finished:
                time.sleep(self.poll_s)
                continue
            for handle in finished:
                job = waiting.pop(handle)
                try:
                    outcome = handle.result()
                except Exception as exc:  # submitit's error for a job that raised, was killed or timed out
                    if not self.keep_going:
                        raise
                    outcome = self._failed(job, f"SLURM job {handle.job_id} failed: {str(exc).strip().splitlines()[-1]}")
                outcomes.append(outcome)
                if on_done:
                    on_done(outcome)
        return outcomes
