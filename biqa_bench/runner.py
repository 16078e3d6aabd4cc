"""Running methods over splits: one run folder per (method, train dataset, split), resumable.

A run is complete when its ``manifest.json`` exists (it is written last, atomically), so a
crash or Ctrl-C loses at most the split in flight (a retraining with ``--force`` is written
beside the complete run and swapped in when complete: :func:`biqa_bench.store.staged_run`,
so it loses nothing), and re-running skips complete runs whose
manifest matches the requested method parameters and split file. The trained model is saved
in the run's ``model/`` folder, so later analyses (cross-dataset, gMAD) reuse it.

Each run is a :class:`biqa_bench.jobs.Job`; :func:`run_jobs` skips complete ones and hands the
rest to an executor (:mod:`biqa_bench.jobs`), whose workers call :func:`run_job`.

Predictions of a trained run on another image set are cached inside the run folder under
``inference/<dataset>-<fingerprint>.csv``: one inference pass per (model, dataset).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from . import __version__
from .datasets.registry import Dataset, info_to_dict
from .errors import MethodError, RunError
from .evaluation.ranges import quality_counts
from .imagecache import open_image_source
from .jobs import Executor, Job, OnDone, Progress, RunOutcome, SerialExecutor
from .methods import Context, Method, create_method, method_class
from .splits import SplitSet, whole_split_hash
from .store import (
    ALL_SUBSET, MANIFEST, WHOLE, SplitBusy, acquire_split_lock, cached_inference, check_run_kind_free, inference_path,
    is_complete, predictions_frame, read_manifest, record_failure, release_split_lock, run_dir, safe_name, split_value,
    staged_run, write_inference, write_run,
)


def versions() -> dict[str, str]:
    import importlib.metadata as md

    found = {"python": platform.python_version(), "biqa-bench": __version__}
    for package in ("numpy", "scipy", "pandas", "scikit-learn", "torch", "torchvision", "timm", "piq"):
        try:
            found[package] = md.version(package)
        except md.PackageNotFoundError:
            pass
    return found


#: Environment variables that change CPU floating-point results of torch (see README,
#: "Reproducibility"): recorded in each trained run's manifest where set.
NUMERICS_VARIABLES = ("MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS",
                      "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def numerics() -> dict[str, Any]:
    """What CPU results of a torch method depend on besides the seed: the CPU model, torch's
    kernel level and intra-op threads (when torch is loaded), and the variables that pin them."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    found: dict[str, Any] = {"cpu": cpu, "env": {k: os.environ[k] for k in NUMERICS_VARIABLES if k in os.environ}}
    torch = sys.modules.get("torch")
    if torch is not None:
        found["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        found["torch_threads"] = torch.get_num_threads()
    return found


def method_seed(seed: int, split_index: int) -> int:
    """The seed a method gets for one split: distinct per split, reproducible from the run seed."""
    return int(np.random.SeedSequence([seed, split_index]).generate_state(1)[0] % (2**31 - 1))


def run_manifest(
    kind: str, method: str, params: dict[str, Any], dataset: Dataset, split_set: SplitSet | None, split: "int | str",
    split_file: Path | None, seed: int,
) -> dict[str, Any]:
    """The fields every run manifest has (trained or imported); callers add their own.
    A whole-dataset run passes ``split_set=None`` and ``split=WHOLE``."""
    return {
        "kind": kind,
        "method": method,
        "params": json.loads(json.dumps(params, default=str)),
        "train_dataset": dataset.name,
        "dataset_fingerprint": dataset.fingerprint,
        "dataset_info": info_to_dict(dataset.info),
        "quality_histogram": quality_counts(dataset.items["quality"]),
        "split": split,
        "split_indices": [s.index for s in split_set.splits] if split_set is not None else [split],  # for "5 of 6 splits"
        "split_hash": whole_split_hash(dataset) if split_set is None else split_set.hash,
        "split_file": str(split_file) if split_file else None,
        "seed": seed,
        "versions": versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def missing_fields(missing: list[str]) -> dict[str, Any]:
    """The manifest fields of a whole-dataset run that left labelled items out (none: 0, [])."""
    return {"n_missing": len(missing), "missing_items": sorted(missing)}


def _reusable(folder: Path, method: str, params: dict[str, Any], split_hash: str, seed: int) -> bool:
    """True when ``folder`` holds a complete run of these settings, False when it holds none; a
    complete run of other settings is a RunError (``--force`` overwrites it)."""
    if not is_complete(folder):
        return False
    if matches_run(read_manifest(folder / MANIFEST), method, params, split_hash, seed):
        return True
    raise RunError(f"{folder}: holds a run with other parameters, seed or splits; use another --out, or --force to overwrite")


def matches_run(manifest: dict[str, Any], method: str, params: dict[str, Any], split_hash: str, seed: int) -> bool:
    return (
        manifest.get("method") == method
        and manifest.get("params") == json.loads(json.dumps(params, default=str))
        and manifest.get("split_hash") == split_hash
        and manifest.get("seed") == seed
    )


def run_jobs(jobs: Sequence[Job], executor: Executor | None = None, on_done: OnDone | None = None) -> list[RunOutcome]:
    """Run ``jobs`` on ``executor`` (default: in this process); one outcome per job, by split.

    Complete runs of the same settings are skipped here, before any job is handed out; the job
    re-checks after taking its split's lock (another process may finish it meanwhile). Runs
    communicate only through their folders, so every executor gives the same runs.
    """
    executor = executor or SerialExecutor()
    checked = set()
    outcomes, pending = [], []
    for job in jobs:
        if id(job.dataset) not in checked:
            if job.split_set.fingerprint != job.dataset.fingerprint:
                raise RunError(
                    f"split file for '{job.split_set.dataset}' does not match dataset '{job.dataset.name}'; "
                    "re-make it with `biqa splits make`"
                )
            checked.add(id(job.dataset))
        create_method(job.method, **job.params)  # fail fast on a bad name or parameters
        if not job.force and _reusable(job.folder, job.method, job.params, job.split_set.hash, job.seed):
            outcome = RunOutcome(job.split, job.folder, "skipped", 0.0)
            outcomes.append(outcome)
            if on_done:
                on_done(outcome)
            continue
        pending.append(job)
    outcomes.extend(executor.run(pending, run_job, on_done))
    return sorted(outcomes, key=lambda o: (str(o.folder.parent), o.split))


def run_job(job: Job, progress: Progress | None = None, log: logging.Logger | None = None, keep_going: bool = False) -> RunOutcome:
    """Train and test one job into its run folder, holding the split's lock.

    A split another live process holds is ``busy`` (left to it). With ``keep_going`` an error is
    recorded in the folder's ``failed.json`` and returned as ``failed``; else it is raised.
    """
    if job.kind == "pretrain":
        try:
            return _prepare_stages(job, progress, log or logging.getLogger("biqa"))
        except Exception as exc:
            if not keep_going:
                raise
            record_failure(job.folder, f"pre-training stage: {_error_line(exc)}")
            return RunOutcome(job.split, job.folder, "failed", 0.0, f"pre-training stage: {_error_line(exc)}")
    started = time.perf_counter()
    folder = job.folder
    try:
        lock = acquire_split_lock(folder)
    except SplitBusy as busy:
        return RunOutcome(job.split, folder, "busy", 0.0, str(busy))
    try:
        # finished by another process while this one waited for it (a race the checks before missed)
        if not job.force and _reusable(folder, job.method, job.params, job.split_set.hash, job.seed):
            return RunOutcome(job.split, folder, "skipped", 0.0, "finished by another process")
        try:
            _train_split(job, progress, log or logging.getLogger("biqa"))
        except Exception as exc:
            if not keep_going:
                raise
            reason = _error_line(exc)
            record_failure(folder, reason)
            return RunOutcome(job.split, folder, "failed", time.perf_counter() - started, reason)
        return RunOutcome(job.split, folder, "done", time.perf_counter() - started)
    finally:
        release_split_lock(lock)


def _error_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _train_split(job: Job, progress: Progress | None, log: logging.Logger) -> None:
    keep = ("checkpoints",) if job.params.get("resume") else ()  # a resumed run continues from its epoch checkpoints
    with staged_run(job.folder, keep=keep) as folder:  # a complete run is replaced only by a complete one
        _train_into(job, folder, progress, log)


def _train_into(job: Job, folder: Path, progress: Progress | None, log: logging.Logger) -> None:
    dataset, split = job.dataset, job.split_set.splits[_split_position(job)]
    ctx = _context(job, progress, log, folder)
    train, val, test = _split_items(job)
    skip = set(job.skip_items)
    method = create_method(job.method, **job.params)
    t0 = time.perf_counter()
    method.fit(train, val, ctx)
    fit_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    prediction = checked_prediction(method, test, ctx) if len(test) else np.zeros(0)
    predict_seconds = time.perf_counter() - t0
    method.save(folder / "model")
    predictions = predictions_frame(test, dataset.name, split.index, prediction)
    manifest = run_manifest(job.kind, job.method, job.params, dataset, job.split_set, split.index, job.split_file, job.seed)
    manifest.update({
        **_ran_with(method, ctx, job.device, fit_seconds, predict_seconds),
        "n_train": len(train),
        "n_val": len(val),
        "n_test": len(test),
        "skipped_items": sorted(skip),
        "n_skipped_items": len(skip),  # missing, unreadable or too small for the method (--skip-broken)
    })
    write_run(folder, predictions, manifest)


def _ran_with(method: Method, ctx: Context, device: str, fit_seconds: float, predict_seconds: float) -> dict[str, Any]:
    """The manifest fields saying how a method ran: seed, parameters, device, weights, versions, timings."""
    return {
        "method_seed": ctx.seed,
        # every parameter the method ran with, defaults included: "params" holds only what was asked
        # for (it identifies the run), this records what a later version's defaults cannot change
        "resolved_params": json.loads(json.dumps(method.get_params(), default=str)),
        "device": device,
        "weights_sha256": getattr(method, "weights_sha256", None),
        "pretraining": getattr(method, "pretraining_manifest", None),
        "versions": versions(),
        "numerics": numerics(),
        "timings": {"fit_s": round(fit_seconds, 3), "predict_s": round(predict_seconds, 3)},
    }


def whole_run(
    method_name: str,
    params: dict[str, Any],
    dataset: Dataset,
    out: Path,
    device: str = "cpu",
    seed: int = 0,
    progress: Progress | None = None,
    log: logging.Logger | None = None,
    image_cache: str = "none",
    skip_items: Sequence[str] = (),
    force: bool = False,
) -> RunOutcome:
    """A training-free method (e.g. ``pyiqa:musiq``) on every labelled item of ``dataset``: one
    whole-dataset run (``<out>/<dataset>/<method>/whole/``, split ``whole``); ``skip_items`` (the
    broken files of ``--skip-broken``) are left out and counted as missing. Reused when complete
    with the same settings, as split runs are."""
    if not method_class(method_name).training_free:
        raise RunError(f"--whole runs training-free methods only; '{method_name}' learns from data: train it on "
                       "splits, or import its predictions with `biqa import --whole`")
    started = time.perf_counter()
    folder = run_dir(out, dataset.name, method_name, WHOLE)
    check_run_kind_free(out, dataset.name, method_name, whole=True)
    if not force and _reusable(folder, method_name, params, whole_split_hash(dataset), seed):
        return RunOutcome(WHOLE, folder, "skipped", 0.0)
    try:
        lock = acquire_split_lock(folder)
    except SplitBusy as busy:
        return RunOutcome(WHOLE, folder, "busy", 0.0, str(busy))
    try:
        with staged_run(folder) as target:  # a complete run is replaced only by a complete one
            ctx = Context(
                device=device, seed=method_seed(seed, 0), cache_dir=_cache_dir(), work_dir=target,
                progress=progress or (lambda *a: None), log=log or logging.getLogger("biqa"),
                images=open_image_source(dataset, image_cache), dataset=dataset,
            )
            skip = set(skip_items)
            items = dataset.with_abspaths(dataset.items[~dataset.items["item_id"].isin(skip)].reset_index(drop=True))
            method = create_method(method_name, **params)
            t0 = time.perf_counter()
            prediction = checked_prediction(method, items, ctx)
            predict_seconds = time.perf_counter() - t0
            method.save(target / "model")
            manifest = run_manifest("run", method_name, params, dataset, None, WHOLE, None, seed)
            missing = sorted(skip & set(dataset.items["item_id"]))
            manifest.update({**_ran_with(method, ctx, device, 0.0, predict_seconds), "n_test": len(items),
                             **missing_fields(missing), "skipped_items": missing, "n_skipped_items": len(missing)})
            write_run(target, predictions_frame(items, dataset.name, WHOLE, prediction), manifest)
    finally:
        release_split_lock(lock)
    return RunOutcome(WHOLE, folder, "done", time.perf_counter() - started)


def _context(job: Job, progress: Progress | None, log: logging.Logger, work_dir: Path | None = None) -> Context:
    return Context(
        device=job.device,
        seed=method_seed(job.seed, job.split),
        cache_dir=_cache_dir(),
        work_dir=job.folder if work_dir is None else work_dir,
        progress=progress or (lambda *a: None),
        log=log,
        images=open_image_source(job.dataset, job.image_cache),
        dataset=job.dataset,
    )


def _split_items(job: Job) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The train, val and test items of a job's split (absolute paths; skipped items left out)."""
    dataset, split = job.dataset, job.split_set.splits[_split_position(job)]
    skip = set(job.skip_items)
    pick = lambda ids: dataset.with_abspaths(dataset.subset([i for i in ids if i not in skip]))  # noqa: E731
    return pick(split.train), pick(split.val), pick(split.test)


def _prepare_stages(job: Job, progress: Progress | None, log: logging.Logger) -> RunOutcome:
    """A ``pretrain`` job: the pre-training stages its split's fine-tuning will use, trained into
    (or found in) the stage cache, whose own lock and key make two jobs that need one stage train it
    once. It writes no run folder."""
    started = time.perf_counter()
    train, _, _ = _split_items(job)
    stages = create_method(job.method, **job.params).prepare_stages(train, _context(job, progress, log))
    reused = sum(bool(stage.get("reused")) for stage in stages)
    note = f"{len(stages)} pre-training stage(s), {reused} from the cache" if stages else "no pre-training stage"
    return RunOutcome(job.split, job.folder, "done", time.perf_counter() - started, note)


def _split_position(job: Job) -> int:
    for position, split in enumerate(job.split_set.splits):
        if split.index == job.split:
            return position
    raise RunError(f"split {job.split} is not in the split file of '{job.dataset.name}' (it has {[s.index for s in job.split_set.splits]})")


def checked_prediction(method: Method, items: pd.DataFrame, ctx: Context) -> np.ndarray:
    """``method.predict(items)`` as floats, one per item and all finite (else a MethodError)."""
    prediction = np.asarray(method.predict(items, ctx), dtype=float).reshape(-1)
    if len(prediction) != len(items):
        raise MethodError(f"method '{method.name}' returned {len(prediction)} predictions for {len(items)} items")
    if not np.all(np.isfinite(prediction)):
        raise MethodError(f"method '{method.name}' returned NaN or infinite predictions; check its training")
    return prediction


def _cache_dir() -> Path:
    from .config import cache_dir

    return cache_dir()


def load_trained(folder: Path) -> Method:
    """The trained method of a run (or cross-dataset model) folder."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise RunError(f"{folder}: not a complete run (no manifest); run `biqa train` first")
    manifest = read_manifest(manifest_path)
    method = create_method(manifest["method"], **manifest.get("params", {}))
    return method.load(folder / "model")


def predict_with_run(
    folder: Path,
    dataset: Dataset,
    device: str = "cpu",
    images: Any = None,
    progress: Progress | None = None,
    log: logging.Logger | None = None,
) -> pd.DataFrame:
    """Predict every item of ``dataset`` with a trained run: a predictions table (subset ``all``,
    the run's split), cached per (run, dataset fingerprint)."""
    folder = Path(folder)
    cache = inference_path(folder, dataset.name, dataset.fingerprint)
    if cache.is_file():
        return cached_inference(cache, split_value(read_manifest(folder / MANIFEST).get("split", 0)))
    method = load_trained(folder)
    manifest = read_manifest(folder / MANIFEST)
    ctx = Context(
        device=device,
        seed=int(manifest.get("method_seed", 0)),
        cache_dir=_cache_dir(),
        work_dir=folder,
        progress=progress or (lambda *a: None),
        log=log or logging.getLogger("biqa"),
        images=images,
        dataset=dataset,
    )
    items = dataset.with_abspaths()
    prediction = checked_prediction(method, items, ctx)
    table = predictions_frame(items, dataset.name, split_value(manifest.get("split", 0)), prediction, subset=ALL_SUBSET)
    write_inference(cache, table)
    return table


def cross_train(
    method_name: str,
    params: dict[str, Any],
    dataset: Dataset,
    out: Path,
    device: str = "cpu",
    seed: int = 0,
    val_fraction: float = 0.1,
    progress: Progress | None = None,
    log: logging.Logger | None = None,
    image_cache: str = "none",
) -> Path:
    """Train on all of ``dataset`` (val carved from it) for cross-dataset tests; reused if complete."""
    from .splits import full_train_split

    split_set = full_train_split(dataset, seed=seed, val_fraction=val_fraction)
    folder = Path(out) / "cross" / safe_name(dataset.name) / safe_name(method_name)
    if is_complete(folder):
        manifest = read_manifest(folder / MANIFEST)
        if matches_run(manifest, method_name, params, split_set.hash, seed):
            return folder
        raise RunError(f"{folder}: holds a cross-dataset model with other parameters or seed; use another --out")
    create_method(method_name, **params)
    job = Job(method_name, params, dataset, split_set, Path(out), split=split_set.splits[0].index, device=device, seed=seed,
              kind="cross-model", folder_override=folder, image_cache=image_cache)
    outcome = run_job(job, progress, log or logging.getLogger("biqa"))
    if outcome.status == "busy":
        raise RunError(f"{folder}: {outcome.note}; run the same command again when it has finished")
    return folder


def pool_scores(
    methods: Sequence[str],
    pool,
    results_dir: Path,
    device: str = "cpu",
    progress=None,
) -> pd.DataFrame:
    """Each method's score on the pool (``item_id, method, score``), from the results folder.

    For each method, in order: predictions already in ``results_dir`` for the pool dataset
    (test subsets of runs trained on it, or imported predictions; the lowest split index when
    there are several), else the trained run with the lowest split predicts the whole pool
    (:func:`biqa_bench.runner.predict_with_run`, cached in the run folder).
    """
    from .store import find_runs

    runs = find_runs(results_dir)
    if not runs:
        raise MethodError(f"{results_dir}: no complete runs; train the methods first (`biqa train`) or pass --results")
    tables = []
    for method in methods:
        mine = sorted((r for r in runs if r.method == method), key=lambda r: (r.split, str(r.folder)))
        if not mine:
            known = sorted({r.method for r in runs})
            from .errors import did_you_mean

            raise MethodError(
                f"no run of method '{method}' in {results_dir}.{did_you_mean(method, known)} "
                f"Methods with runs: {', '.join(known)}; train it with `biqa train --method {method}`"
            )
        scored = None
        for run in mine:
            predictions = run.predictions()
            on_pool = predictions[predictions["dataset"] == pool.name]
            if len(on_pool):
                scored = on_pool[["item_id", "prediction"]]
                break
        if scored is None:
            predictions = predict_with_run(mine[0].folder, pool, device=device, progress=progress)
            scored = predictions[["item_id", "prediction"]]
        tables.append(pd.DataFrame({"item_id": scored["item_id"].astype(str).to_numpy(), "method": method,
                                    "score": scored["prediction"].to_numpy(float)}))
    return pd.concat(tables, ignore_index=True)
