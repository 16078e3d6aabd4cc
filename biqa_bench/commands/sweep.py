"""`biqa sweep`: methods x datasets x splits as jobs on a serial, process, Ray or SLURM executor."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..cli_common import check_device, console, err_console, run_command, warn
from ..errors import BiqaError

# exit codes besides 0 (every job complete) and 2 (an error you can fix, nothing ran)
FAILED_EXIT = 1  # at least one job failed (recorded; run the same command again to retry it)
BUSY_EXIT = 3  # no failure, but some jobs are being trained by another process


def register(main: typer.Typer) -> None:
    main.command("sweep")(sweep)


def _names(text: Optional[str]) -> Optional[list[str]]:
    from ..sweep import split_names

    return None if text is None else split_names(text)


def _method_params(methods: list[str], pairs: Optional[list[str]], recipe: Optional[str], plan_params: dict) -> dict:
    """``-p METHOD.key=value`` per method (checked as `biqa train -p` checks them), ``--recipe``
    for the methods that take one, over the plan file's ``[params.METHOD]``."""
    import inspect

    from ..methods import method_class
    from .core import method_params

    given: dict[str, list[str]] = {}
    for pair in pairs or []:
        method, dot, rest = pair.partition(".")
        if not dot or method not in methods or "=" not in rest:
            raise BiqaError(f"sweep parameter '{pair}' must read METHOD.key=value with METHOD one of {', '.join(methods)}")
        given.setdefault(method, []).append(rest)
    params = {}
    for method in methods:
        takes_recipe = "recipe" in inspect.signature(method_class(method).__init__).parameters
        values = dict(plan_params.get(method, {}))
        values.update(method_params(method, given.get(method), recipe=recipe if takes_recipe else None))
        if values:
            params[method] = values
    return params


@run_command
def sweep(
    plan_file: Optional[Path] = typer.Argument(None, help="Plan file (TOML); options given here override it."),
    methods: Optional[str] = typer.Option(None, "--methods", "-m", help="Comma-separated methods."),
    datasets: Optional[str] = typer.Option(None, "--datasets", "-d", help="Comma-separated datasets (with options as name:key=value)."),
    repeats: Optional[int] = typer.Option(None, "--repeats", "-n", help="Splits per dataset (default 10)."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, help="Run seed of the splits and methods (default 0)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Results folder (default results); on a shared file system for ray/slurm."),
    executor: Optional[str] = typer.Option(None, "--executor", "-e", help="serial (default), process, ray or slurm."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", help="process: worker processes (default 2)."),
    param: Optional[list[str]] = typer.Option(None, "--param", "-p", help="METHOD.key=value (repeatable)."),
    recipe: Optional[str] = typer.Option(None, "--recipe", help="Deep methods: 'paper', 'quick' or 'demo' (see `biqa methods info NAME`)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu (default) or cuda."),
    image_cache: Optional[str] = typer.Option(None, "--image-cache", help="Decode-once cache: none, short512, original or HxW."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="ray: auto (default), local or ray://HOST:PORT."),
    slurm_partition: Optional[str] = typer.Option(None, "--slurm-partition", help="slurm: partition."),
    slurm_time: Optional[str] = typer.Option(None, "--slurm-time", help="slurm: time limit per job, minutes or H:MM:SS (default 60)."),
    slurm_gpus_per_job: Optional[int] = typer.Option(None, "--slurm-gpus-per-job", help="slurm: GPUs per job (default 0)."),
    slurm_array_parallelism: Optional[int] = typer.Option(None, "--slurm-array-parallelism", help="slurm: jobs of the array running at once (default 64)."),
    slurm_cluster: Optional[str] = typer.Option(None, "--slurm-cluster", help="slurm: submitit's cluster, slurm (default), or local / debug to try the path here."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the job table (and what is complete) and stop."),
    status: Optional[Path] = typer.Option(None, "--status", help="Print the state of the sweep in this results folder, read from its run folders."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ci: bool = typer.Option(False, "--ci", help="End summary with 95 % intervals (t over splits), as `biqa eval --ci`."),
) -> None:
    """Train every method on every split of every dataset, as jobs on an executor; resumable.

    Rerunning the same command runs only what is missing or failed. Exit code 0 when every job is
    complete, 1 when some failed (each is listed with its error), 3 when some are being trained by
    another process.

    Example: biqa sweep --methods brisque,cnniqa --datasets synthetic,mixed --repeats 3 --executor process
    """
    from ..sweep import SweepPlan, plan_jobs, read_plan

    if status is not None:
        _show_status(status)
        return
    options = {
        "methods": _names(methods), "datasets": _names(datasets), "repeats": repeats, "seed": seed, "out": out,
        "executor": executor, "workers": workers, "device": check_device(device) if device else None,
        "image_cache": image_cache, "ray_address": ray_address, "slurm_partition": slurm_partition, "slurm_time": slurm_time,
        "slurm_gpus_per_job": slurm_gpus_per_job, "slurm_array_parallelism": slurm_array_parallelism, "slurm_cluster": slurm_cluster,
    }
    if plan_file is not None:
        plan = read_plan(plan_file, **options)
    else:
        plan = SweepPlan(**{k: v for k, v in options.items() if v is not None and k not in ("methods", "datasets")},
                         methods=options["methods"] or [], datasets=options["datasets"] or [])
    plan.params = _method_params(plan.methods, param, recipe, plan.params)
    jobs = plan_jobs(plan, warn=warn)
    table = jobs.table()
    if dry_run:
        _render_jobs(table, f"Sweep plan: {len(table)} jobs on '{plan.executor}' (+ {len(jobs.stages)} pre-training jobs), results in {plan.out}")
        return
    _run(plan, jobs, table, quiet, ci)


def _run(plan, jobs, table, quiet: bool, ci: bool = False) -> None:
    from ..sweep import make_executor, run_sweep

    total = len(table)
    counts = {"done": 0, "skipped": 0, "failed": 0, "busy": 0}
    started = time.perf_counter()
    parallel = {"serial": 1, "process": plan.workers}.get(plan.executor)

    with _job_progress(not quiet, total) as advance:
        executor = make_executor(plan, log=logging.getLogger("biqa"))

        def on_done(job, outcome) -> None:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
            finished = sum(counts.values())
            left = total - finished
            running = min(parallel, left) if parallel else None
            advance(finished, counts, running)
            if outcome.status == "skipped":
                return
            note = f", {outcome.note}" if outcome.note else f" ({outcome.seconds:.1f} s)"
            console.print(f"{job.method} on {job.dataset.name} split {job.split}: {outcome.status}{note}", highlight=False)

        result = run_sweep(jobs, executor, on_done)
    seconds = time.perf_counter() - started
    console.print(
        f"sweep: {counts['done']} trained, {counts['skipped']} already complete, {counts['failed']} failed"
        + (f", {counts['busy']} being trained by another process" if counts["busy"] else "")
        + f" in {seconds:.0f} s; results in {plan.out}", highlight=False,
    )
    _render_summary(plan.out, ci, plan.seed)
    if result.failed:
        for job, outcome in result.failed:
            err_console.print(f"[bold red]failed:[/] {job.method} on {job.dataset.name} split {job.split}: {outcome.note}",
                              highlight=False, soft_wrap=True)
        err_console.print(f"{len(result.failed)} job(s) failed; run the same command again to retry them "
                          f"(errors in each folder's failed.json)", highlight=False, soft_wrap=True)
        raise typer.Exit(FAILED_EXIT)
    if counts["busy"]:
        raise typer.Exit(BUSY_EXIT)


class _job_progress:
    """A Rich bar over jobs (done / running / failed / skipped-complete, ETA) on a terminal."""

    def __init__(self, enabled: bool, total: int):
        self.enabled = enabled and err_console.is_terminal
        self.total = total

    def __enter__(self):
        if not self.enabled:
            return lambda *args: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"),
            TimeRemainingColumn(), console=err_console, transient=True,
        )
        self.progress.__enter__()
        task = self.progress.add_task("jobs", total=self.total)

        def advance(finished: int, counts: dict, running) -> None:
            text = (f"jobs: {counts['done']} done, " + (f"{running} running, " if running is not None else "")
                    + f"{counts['failed']} failed, {counts['skipped']} skipped (complete)")
            self.progress.update(task, completed=finished, description=text)

        return advance

    def __exit__(self, *exc):
        if self.enabled:
            self.progress.__exit__(*exc)
        return False


def _render_summary(out: Path, ci: bool = False, seed: int = 0) -> None:
    """The overall table of `biqa eval` (with --ci, `biqa eval --ci`'s intervals, same seed)."""
    from ..store import find_runs
    from ..cli_common import render_summary
    from ..evaluation.results import evaluate_results

    if not find_runs(out):
        return
    _, summary, _notes = evaluate_results(out, ranges=False, low_quality=False, min_items=10, rule="nominal", fraction=0.25,
                                          ci=ci, n_boot=1000, seed=seed)
    shown = "mean [95 % interval]" if ci else "mean ± std over splits"
    render_summary(summary[summary["subset"] == "test"], f"{out}: overall ({shown}), as `biqa eval{' --ci' if ci else ''}`",
                   ci=ci)


def _render_jobs(table, title: str) -> None:
    from ..sweep import STATES

    view = Table(title=title)
    for column in ("method", "dataset", "splits", "pre-training", *STATES):
        view.add_column(column, justify="left" if column in ("method", "dataset") else "right", no_wrap=True)
    for (method, dataset), group in table.groupby(["method", "dataset"], sort=False):
        pretraining = "yes" if "pretraining" in group and group["pretraining"].any() else "–"
        view.add_row(method, dataset, str(len(group)), pretraining, *(str(int((group["state"] == s).sum())) for s in STATES))
    console.print(view)
    complete = int((table["state"] == "complete").sum())
    console.print(f"{len(table)} jobs, {complete} already complete, {len(table) - complete} to run", highlight=False)
    for _, row in table[table["state"] == "failed"].iterrows():
        console.print(f"failed before: {row['method']} on {row['dataset']} split {row['split']}: {row['error']}", highlight=False)


def _show_status(out: Path) -> None:
    from ..sweep import sweep_status

    table = sweep_status(out)
    _render_jobs(table, f"Sweep in {out}: state read from its run folders")
    if (table["state"] == "failed").any():
        raise typer.Exit(FAILED_EXIT)
    if (table["state"] != "complete").any():
        raise typer.Exit(BUSY_EXIT)
