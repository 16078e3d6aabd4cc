"""Sweeps: every (method, dataset, split) of a benchmark as jobs, on any executor, resumable.

A :class:`SweepPlan` (from ``biqa sweep`` options or a TOML plan file) expands into the jobs of
:mod:`biqa_bench.jobs`: one ``run`` job per (method, dataset, split), and before it, for a method
with pre-training stages (QAMT stage 1, HCL curricula 1-2), a ``pretrain`` job that fills the
stage cache (keyed by the stage hash and locked, so a stage two jobs need is trained once). The
run folders are the only state: a job is complete when its folder holds a complete run of the
same settings, failed when it holds a ``failed.json``, running while another process holds its
split lock; rerunning a sweep runs only what is missing or failed. The job list is recorded in
``OUT/.sweep/jobs.json`` so that :func:`sweep_status` reads the state back later from anywhere.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from .errors import BiqaError, RunError
from .jobs import Executor, Job, ProcessExecutor, RayExecutor, RunOutcome, SerialExecutor, SlurmExecutor
from .store import (
    MANIFEST, SplitBusy, acquire_split_lock, atomic_write_json, is_complete, read_failure, read_manifest,
    release_split_lock,
)

EXECUTORS = ("serial", "process", "ray", "slurm")
SWEEP_DIR = ".sweep"
JOBS_FILE = "jobs.json"
STATES = ("complete", "failed", "running", "pending", "other-settings")


@dataclass
class SweepPlan:
    """What a sweep runs and where (the fields of a plan file; see README "Running on a cluster")."""

    methods: list[str]
    datasets: list[str]
    repeats: int = 10
    seed: int = 0
    out: Path = Path("results")
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # per method
    device: str = "cpu"
    image_cache: str = "none"
    executor: str = "serial"
    workers: int = 2
    ray_address: str = "auto"
    slurm_partition: str | None = None
    slurm_time: str = "60"
    slurm_gpus_per_job: int = 0
    slurm_array_parallelism: int = 64
    slurm_cluster: str = "slurm"

    def __post_init__(self):
        self.out = Path(self.out)
        if not self.methods:
            raise BiqaError("a sweep needs at least one method: --methods a,b or methods = [...] in the plan file")
        if not self.datasets:
            raise BiqaError("a sweep needs at least one dataset: --datasets a,b or datasets = [...] in the plan file")
        if self.executor not in EXECUTORS:
            raise BiqaError(f"--executor must be one of {', '.join(EXECUTORS)}, not '{self.executor}'")
        if self.repeats < 1 or self.seed < 0:
            raise BiqaError(f"--repeats must be >= 1 and --seed >= 0 (got {self.repeats}, {self.seed})")
        unknown = sorted(set(self.params) - set(self.methods))
        if unknown:
            raise BiqaError(f"parameters given for {unknown}, which the sweep does not run (methods: {', '.join(self.methods)})")


def read_plan(path: Path, **overrides: Any) -> SweepPlan:
    """A plan file (TOML, read with the standard library): the fields of :class:`SweepPlan`, with
    ``[params.METHOD]`` tables of hyper-parameters. ``overrides`` (options given on the command
    line) replace the file's values."""
    path = Path(path)
    try:
        import tomllib
    except ImportError:  # pragma: no cover - Python 3.10
        raise BiqaError(f"{path}: plan files need Python 3.11 or newer (tomllib); give the plan as options instead") from None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BiqaError(f"{path}: no such plan file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BiqaError(f"{path}: not a readable TOML plan ({exc}); fix it, see README 'Running on a cluster'") from None
    names = {f.name for f in dataclasses.fields(SweepPlan)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise BiqaError(f"{path}: unknown plan key(s) {unknown}; known: {', '.join(sorted(names))}")
    for key in ("methods", "datasets"):
        if isinstance(data.get(key), str):
            data[key] = split_names(data[key])
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return SweepPlan(**data)
    except TypeError as exc:
        raise BiqaError(f"{path}: {exc}; see README 'Running on a cluster'") from None


def split_names(text: str) -> list[str]:
    """``"koniq,synthetic:contents=5,size=161,bid"`` -> ``["koniq", "synthetic:contents=5,size=161",
    "bid"]``: a part with ``=`` and no ``:`` is one more option of the dataset before it."""
    names: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if names and "=" in part and ":" not in part and ":" in names[-1]:
            names[-1] += f",{part}"
        else:
            names.append(part)
    return names


@dataclass
class SweepJobs:
    """The jobs of a plan: ``pretrain`` jobs first (those that have any), then the ``run`` jobs."""

    plan: SweepPlan
    runs: list[Job]
    stages: dict[int, Job]  # position in runs -> the pretrain job it depends on

    def table(self) -> pd.DataFrame:
        """One row per run job: method, dataset, split, folder, state (see :data:`STATES`), error."""
        rows = []
        for position, job in enumerate(self.runs):
            state, error = job_state(job)
            rows.append({
                "method": job.method, "dataset": job.dataset.name, "split": job.split, "state": state,
                "pretraining": position in self.stages, "folder": str(job.folder), "error": error,
            })
        return pd.DataFrame(rows, columns=["method", "dataset", "split", "state", "pretraining", "folder", "error"])


def plan_jobs(plan: SweepPlan, warn: Callable[[str], None] | None = None) -> SweepJobs:
    """Load every dataset, make (or check) its split file under ``OUT/splits`` and expand the plan
    into jobs; a bad method name or parameter is an error before anything runs."""
    from .datasets.registry import load_dataset
    from .methods import create_method
    from .splits import resolve_splits

    out = plan.out.resolve()  # jobs may run elsewhere (another node's working directory)
    for method in plan.methods:
        create_method(method, **plan.params.get(method, {}))
    runs, stages = [], {}
    for spec in plan.datasets:
        dataset = load_dataset(spec)
        split_set, split_file = resolve_splits(dataset, None, out, plan.repeats, plan.seed, warn=warn)
        for method in plan.methods:
            template = Job(
                method, dict(plan.params.get(method, {})), dataset, split_set, out, split_file=Path(split_file).resolve(),
                seed=plan.seed, device=plan.device, image_cache=plan.image_cache,
            )
            staged = _has_stages(method)
            for job in template.for_splits():
                if staged:
                    stages[len(runs)] = dataclasses.replace(job, kind="pretrain")
                runs.append(job)
    return SweepJobs(plan, runs, stages)


def _has_stages(method: str) -> bool:
    from .methods import Method, method_class

    return method_class(method).prepare_stages is not Method.prepare_stages


def job_state(job: Job) -> tuple[str, str]:
    """(state, error) of a run job, from its folder alone (see :func:`folder_state`)."""
    return folder_state(job.folder, job.method, job.params, job.split_set.hash, job.seed)


def folder_state(folder: Path, method: str, params: dict[str, Any], split_hash: str, seed: int) -> tuple[str, str]:
    """(state, error) of a run folder: complete (a complete run of these settings), failed (its last
    job's error), running (another live process holds its split lock), pending, or other-settings."""
    from .runner import matches_run

    folder = Path(folder)
    if is_complete(folder):
        if matches_run(read_manifest(folder / MANIFEST), method, params, split_hash, seed):
            return "complete", ""
        return "other-settings", "holds a run of other parameters, seed or splits; use another --out"
    if folder.parent.is_dir() and _locked(folder):
        return "running", ""
    failure = read_failure(folder)
    if failure is not None:
        return "failed", str(failure.get("error", ""))
    return "pending", ""


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(params, default=str))


def _locked(folder: Path) -> bool:
    lock = folder.parent / f".{folder.name}.lock"
    if not lock.exists():
        return False
    try:
        handle = acquire_split_lock(folder)
    except SplitBusy:
        return True
    release_split_lock(handle)
    return False


def record_jobs(jobs: SweepJobs) -> Path:
    """``OUT/.sweep/jobs.json``: the run jobs of this sweep (merged with earlier sweeps into the
    same folder), for :func:`sweep_status`."""
    import json

    path = jobs.plan.out / SWEEP_DIR / JOBS_FILE
    known = {}
    if path.is_file():
        try:
            known = {(r["method"], r["dataset"], r["split"]): r for r in json.loads(path.read_text())["jobs"]}
        except (OSError, ValueError, KeyError, TypeError):
            known = {}
    for job in jobs.runs:
        known[(job.method, job.dataset.name, job.split)] = {
            "method": job.method, "dataset": job.dataset.name, "split": job.split, "folder": str(job.folder),
            "params": _jsonable(job.params), "split_hash": job.split_set.hash, "seed": job.seed,
        }
    atomic_write_json(path, {"jobs": [known[k] for k in sorted(known, key=lambda k: (k[0], k[1], k[2]))]})
    return path


def sweep_status(out: Path) -> pd.DataFrame:
    """The state of every job recorded in ``OUT/.sweep/jobs.json``, read back from the run folders
    (after the submitting shell is gone): the columns of :meth:`SweepJobs.table` but ``pretraining``."""
    import json

    path = Path(out) / SWEEP_DIR / JOBS_FILE
    if not path.is_file():
        raise BiqaError(f"{path}: no sweep was started in {out}; run `biqa sweep ... --out {out}` first")
    try:
        records = json.loads(path.read_text())["jobs"]
    except (OSError, ValueError, KeyError) as exc:
        raise BiqaError(f"{path}: unreadable sweep record ({exc}); rerun the sweep to rewrite it") from None
    rows = []
    for record in records:
        state, error = folder_state(record["folder"], record["method"], record["params"], record["split_hash"], record["seed"])
        rows.append({"method": record["method"], "dataset": record["dataset"], "split": record["split"], "state": state,
                     "folder": record["folder"], "error": error})
    return pd.DataFrame(rows, columns=["method", "dataset", "split", "state", "folder", "error"])


def state_counts(table: pd.DataFrame) -> dict[str, int]:
    return {state: int((table["state"] == state).sum()) for state in STATES}


def make_executor(plan: SweepPlan, progress=None, log=None) -> Executor:
    """The executor a plan names; sweeps keep going past a failed job (it is recorded)."""
    if plan.executor == "serial":
        return SerialExecutor(progress, log, keep_going=True)
    if plan.executor == "process":
        return ProcessExecutor(plan.workers, keep_going=True)
    if plan.executor == "ray":
        return RayExecutor(plan.ray_address, keep_going=True)
    if plan.slurm_cluster not in ("slurm", "local", "debug"):
        raise BiqaError(f"--slurm-cluster must be slurm, local or debug, not '{plan.slurm_cluster}'")
    return SlurmExecutor(
        plan.out / SWEEP_DIR / "logs", partition=plan.slurm_partition, time_min=slurm_minutes(plan.slurm_time),
        gpus_per_job=plan.slurm_gpus_per_job, array_parallelism=plan.slurm_array_parallelism, cluster=plan.slurm_cluster,
    )


def slurm_minutes(text: str | int) -> int:
    """Minutes of a SLURM time limit, in sbatch's formats: ``M``, ``M:S``, ``H:M:S``, ``D-H``,
    ``D-H:M``, ``D-H:M:S`` (seconds rounded up to a minute)."""
    value = str(text).strip()
    try:
        days, dash, rest = value.partition("-") if "-" in value else ("0", "", value)
        parts = [int(p) for p in rest.split(":")]
        if any(p < 0 for p in parts) or not 1 <= len(parts) <= 3:
            raise ValueError(value)
        if dash:  # D-H, D-H:M, D-H:M:S
            hours, minutes, seconds = (parts + [0, 0])[:3]
        elif len(parts) == 3:
            hours, minutes, seconds = parts
        else:  # M or M:S
            hours, minutes, seconds = 0, parts[0], parts[1] if len(parts) == 2 else 0
        total = int(days) * 1440 + hours * 60 + minutes + (1 if seconds else 0)
    except ValueError:
        raise BiqaError(f"--slurm-time takes minutes, M:S, H:M:S or D-H:M:S (as sbatch --time), not '{text}'") from None
    if total < 1:
        raise BiqaError(f"--slurm-time must be at least one minute, not '{text}'")
    return total


@dataclass
class SweepResult:
    outcomes: list[tuple[Job, RunOutcome]]

    def count(self, status: str) -> int:
        return sum(o.status == status for _, o in self.outcomes)

    @property
    def failed(self) -> list[tuple[Job, RunOutcome]]:
        return [(j, o) for j, o in self.outcomes if o.status == "failed"]


def split_by_split(jobs: list[Job]) -> list[Job]:
    """The jobs in the order executors start them: split by split (the first split of every
    method and dataset, then the second...), the plan's order within a split. On a parallel
    executor, jobs running at once are then of different methods or datasets where there are
    several: the first split of each fills its per-image feature cache (or pre-training stage) and
    the later splits read it, instead of two workers computing the same images' features at once
    (the feature cache has no lock: both would miss) or one waiting on the other's stage lock."""
    return sorted(jobs, key=lambda job: job.split)


def run_sweep(jobs: SweepJobs, executor: Executor, on_done: Callable[[Job, RunOutcome], None] | None = None) -> SweepResult:
    """Run what is not complete: the pre-training jobs of the pending runs first, then the runs
    whose pre-training succeeded (a failed stage fails its runs, recorded). Complete runs of the
    same settings are ``skipped``; a complete run of other settings is an error before anything
    runs (use another ``--out``)."""
    from .runner import run_job

    record_jobs(jobs)
    results: list[tuple[Job, RunOutcome]] = []
    pending: list[int] = []
    for position, job in enumerate(jobs.runs):
        state, error = job_state(job)
        if state == "other-settings":
            raise RunError(f"{job.folder}: {error}")
        if state == "complete":
            outcome = RunOutcome(job.split, job.folder, "skipped", 0.0)
            results.append((job, outcome))
            if on_done:
                on_done(job, outcome)
        else:
            pending.append(position)
    stage_jobs = split_by_split([jobs.stages[p] for p in pending if p in jobs.stages])
    by_folder = {j.folder: j for j in stage_jobs}
    failed_stage = {}

    def stage_done(outcome: RunOutcome) -> None:
        if outcome.status == "failed":
            failed_stage[outcome.folder] = outcome

    executor.run(stage_jobs, run_job, stage_done)
    runnable = []
    for position in pending:
        job = jobs.runs[position]
        if job.folder in failed_stage and job.folder in by_folder:
            outcome = failed_stage[job.folder]
            results.append((job, outcome))
            if on_done:
                on_done(job, outcome)
        else:
            runnable.append(job)
    by_run = {j.folder: j for j in runnable}

    def run_done(outcome: RunOutcome) -> None:
        job = by_run[outcome.folder]
        results.append((job, outcome))
        if on_done:
            on_done(job, outcome)

    executor.run(split_by_split(runnable), run_job, run_done)
    return SweepResult(results)
