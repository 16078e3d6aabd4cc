"""`biqa sweep` and the executors behind it: same runs on every executor, failures recorded,
killed workers and concurrent sweeps resumed without duplicated or half-written runs.

The datasets are two tiny registered image sets (40 images each) instead of the embedded ones,
whose first build takes minutes on a small machine; the methods are fast feature methods from
``tests/sweep_methods`` (found by worker processes through $BIQA_METHODS_PATH) and BRISQUE.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import make_image_folder
from typer.testing import CliRunner

from biqa_bench.cli import app
from biqa_bench.errors import RunError
from biqa_bench.store import load_predictions
from biqa_bench.sweep import SweepPlan, make_executor, plan_jobs, run_sweep, slurm_minutes, split_names, sweep_status

METHODS_DIR = Path(__file__).parent / "sweep_methods"
BRISQUE = {"c_grid": [10.0], "gamma_grid": [0.1], "n_jobs": 1}


def _register_test_methods():
    from biqa_bench.methods import discover

    discover()
    name = "biqa_user_methods.sweep_methods"  # the name discovery gives it in worker processes
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, METHODS_DIR / "sweep_methods.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)


@pytest.fixture
def two_sets(tmp_path, monkeypatch):
    """Datasets 'tinya' and 'tinyb' (40 images, 20 contents each) and the test methods."""
    from biqa_bench.datasets.custom import add_custom_dataset

    monkeypatch.setenv("BIQA_METHODS_PATH", str(METHODS_DIR))
    _register_test_methods()
    roots = {}
    for seed, name in enumerate(("tinya", "tinyb")):
        root = tmp_path / name
        labels = make_image_folder(root, seed=seed, size=32)
        labels.to_csv(tmp_path / f"{name}.csv", index=False)
        add_custom_dataset(name, tmp_path / f"{name}.csv", root, (1.0, 5.0), content_column="content")
        roots[name] = root
    return roots


def _sweep(out, executor="serial", methods=("brisque", "sweep-contrast"), params=None, **fields):
    params = {"brisque": BRISQUE} if params is None else params
    plan = SweepPlan(list(methods), ["tinya", "tinyb"], repeats=3, seed=0, out=out, executor=executor,
                     params={m: p for m, p in params.items() if m in methods}, **fields)
    return run_sweep(plan_jobs(plan), make_executor(plan))


def _predictions(out):
    return load_predictions(out).sort_values(["dataset", "method", "split", "item_id"]).reset_index(drop=True)


def _assert_clean(out, runs):
    """Every run complete, and nothing else left: no temporary files, no failure records."""
    folders = sorted(p for p in Path(out).glob("tiny*/*/split_*") if p.is_dir())
    assert len(folders) == runs
    for folder in folders:
        assert {p.name for p in folder.iterdir()} == {"predictions.csv", "manifest.json", "model"}, folder
    assert not [p for p in Path(out).rglob("*.tmp")]


def test_serial_and_process_sweeps_give_identical_runs(two_sets, tmp_path):
    serial = _sweep(tmp_path / "serial")
    process = _sweep(tmp_path / "process", "process", workers=2)
    assert serial.count("done") == process.count("done") == 12 and not process.failed
    pd.testing.assert_frame_equal(_predictions(tmp_path / "serial"), _predictions(tmp_path / "process"))
    _assert_clean(tmp_path / "process", 12)
    again = _sweep(tmp_path / "process", "process", workers=2)  # rerun: nothing left to do
    assert again.count("skipped") == 12 and again.count("done") == 0


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'biqa-bench[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_sweep_gives_the_same_runs_as_serial(two_sets, tmp_path, local_ray):
    _sweep(tmp_path / "serial")
    result = _sweep(tmp_path / "ray", "ray")
    assert result.count("done") == 12 and not result.failed
    pd.testing.assert_frame_equal(_predictions(tmp_path / "serial"), _predictions(tmp_path / "ray"))
    _assert_clean(tmp_path / "ray", 12)


def test_slurm_path_through_submitits_local_executor(two_sets, tmp_path):
    pytest.importorskip("submitit", reason="submitit is not installed (pip install 'biqa-bench[slurm]')")
    methods = ("sweep-contrast",)
    _sweep(tmp_path / "serial", methods=methods)
    result = _sweep(tmp_path / "slurm", "slurm", methods=methods, slurm_cluster="local", slurm_time="0:05:00")
    assert result.count("done") == 6 and not result.failed
    pd.testing.assert_frame_equal(_predictions(tmp_path / "serial"), _predictions(tmp_path / "slurm"))
    logs = list((tmp_path / "slurm" / ".sweep" / "logs").rglob("*.out"))
    assert logs, "submitit writes each job's log under OUT/.sweep/logs"
    status = sweep_status(tmp_path / "slurm")
    assert (status["state"] == "complete").all() and len(status) == 6


def test_a_killed_worker_fails_its_job_and_a_rerun_completes_the_sweep(two_sets, tmp_path):
    out, log, marker = tmp_path / "out", tmp_path / "fits.log", tmp_path / "kill-me"
    marker.write_text("")
    params = {"sweep-mean": {"kill_split": 1, "marker": str(marker), "log_file": str(log)}}
    first = _sweep(out, "process", methods=("sweep-mean",), params=params, workers=2)
    failed = {(j.dataset.name, j.split) for j, _ in first.failed}
    assert ("tinya", 1) in failed or ("tinyb", 1) in failed
    assert all("worker process died" in o.note for _, o in first.failed)
    for job, _ in first.failed:
        assert not (job.folder / "manifest.json").exists()  # no half-written run counts as complete
    status = sweep_status(out)
    assert {(r.dataset, r.split) for r in status[status["state"] == "failed"].itertuples()} == failed
    second = _sweep(out, "process", methods=("sweep-mean",), params=params, workers=2)
    assert not second.failed and second.count("done") == len(failed) and second.count("skipped") == 6 - len(failed)
    _assert_clean(out, 6)
    fits = [tuple(line.split()[:2]) for line in log.read_text().splitlines()]
    # only jobs the first sweep reported failed (the killed one, and any the broken pool took down
    # with it) were started twice; none was completed twice
    assert {f for f in fits if fits.count(f) > 1} <= {(d, f"split_{s:02d}") for d, s in failed}
    assert sorted(set(fits)) == sorted({(d, f"split_{s:02d}") for d in ("tinya", "tinyb") for s in range(3)})


def test_two_concurrent_sweeps_train_every_split_once(two_sets, tmp_path):
    import os

    out, log = tmp_path / "out", tmp_path / "fits.log"
    command = [sys.executable, "-m", "biqa_bench", "sweep", "--methods", "sweep-mean", "--datasets", "tinya,tinyb",
               "--repeats", "3", "--out", str(out), "-p", "sweep-mean.sleep=0.4", "-p", f"sweep-mean.log_file={log}", "-q"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [r.communicate(timeout=240) + (r.returncode,) for r in runs]
    for stdout, stderr, code in results:
        assert code in (0, 3), stderr  # 3: some splits were left to the other sweep
    fits = [tuple(line.split()[:2]) for line in log.read_text().splitlines()]
    assert len(fits) == 6 and len(set(fits)) == 6
    _assert_clean(out, 6)
    rerun = CliRunner().invoke(app, ["sweep", "--methods", "sweep-mean", "--datasets", "tinya,tinyb", "--repeats", "3",
                                       "--out", str(out), "-p", "sweep-mean.sleep=0.4", "-p", f"sweep-mean.log_file={log}"])
    assert rerun.exit_code == 0 and "0 trained, 6 already complete" in rerun.output


def test_a_failing_job_is_reported_and_the_others_finish(two_sets, tmp_path):
    (two_sets["tinyb"] / "img007.png").write_bytes(b"not a png")  # one corrupt image in one dataset
    out = tmp_path / "out"
    runner = CliRunner()
    result = runner.invoke(app, ["sweep", "--methods", "sweep-mean", "--datasets", "tinya,tinyb", "--repeats", "3",
                                   "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "img007.png" in result.output and "failed" in result.output
    status = sweep_status(out)
    assert (status.loc[status["dataset"] == "tinya", "state"] == "complete").all()
    bad = status[status["dataset"] == "tinyb"]
    assert (bad["state"] == "failed").any() and bad.loc[bad["state"] == "failed", "error"].str.contains("img007.png").all()
    record = json.loads((Path(bad.loc[bad["state"] == "failed", "folder"].iloc[0]) / "failed.json").read_text())
    assert "img007.png" in record["error"] and record["traceback"]
    shown = runner.invoke(app, ["sweep", "--status", str(out)])
    assert shown.exit_code == 1 and "failed before" in shown.output and "img007.png" in shown.output
    assert "SROCC" in result.output  # the summary table of `biqa eval` for what completed


QAMT_TINY = {"recipe": "quick", "pretrained": "none", "pretrain_data": "presynth", "epochs": 1, "batch_size": 2,
             "crop": 32, "image_size": "source"}


@pytest.fixture
def presynth(two_sets, tmp_path):
    """A named synthetic pre-training set 'presynth' (6 images, a class each, contents of its own)."""
    from biqa_bench.datasets.custom import add_custom_dataset

    root = tmp_path / "presynth"
    labels = make_image_folder(root, n=6, seed=7, size=72)
    labels = labels.assign(content=[f"p{k}" for k in range(6)], class_index=range(6))
    labels.to_csv(tmp_path / "presynth.csv", index=False)
    add_custom_dataset("presynth", tmp_path / "presynth.csv", root, (1.0, 5.0), content_column="content", kind="synthetic")
    return root


@pytest.mark.parametrize("executor", ["serial", "process"])
def test_a_pretraining_stage_shared_by_two_datasets_is_trained_once(presynth, tmp_path, executor):
    """QAMT stage 1 on a named set is the same stage for both datasets (and every split): of the
    sweep's two pre-training jobs (run at once by the process pool) one trains it, the other waits on
    the stage lock and reuses it, and both fine-tuning runs start from it. Counted by the trainings themselves (``count_file``, written by
    whichever process trains), the stage cache and the run manifests, not by timing."""
    from methods._support.pretrain import pretrain_root

    out, count = tmp_path / "out", tmp_path / "stage1.log"
    params = {"sweep-qamt": {**QAMT_TINY, "count_file": str(count)}}
    plan = SweepPlan(["sweep-qamt"], ["tinya", "tinyb"], repeats=1, seed=0, out=out, executor=executor, workers=2,
                     params=params)
    jobs = plan_jobs(plan)
    assert len(jobs.runs) == 2 and len(jobs.stages) == 2  # a pre-training job before every run
    result = run_sweep(jobs, make_executor(plan))
    assert result.count("done") == 2 and not result.failed
    assert len(count.read_text().splitlines()) == 1  # stage 1 trained once, in one process
    stages = [p for p in pretrain_root().iterdir() if not p.name.startswith(".")]
    assert len(stages) == 1 and (stages[0] / "weights.pt").is_file()
    manifests = [json.loads((job.folder / "manifest.json").read_text()) for job in jobs.runs]
    assert {m["pretraining"]["stages"][0]["key"] for m in manifests} == {stages[0].name}
    assert all(m["pretraining"]["stages"][0]["reused"] for m in manifests)  # the pre-training jobs ran it before
    assert {m["train_dataset"] for m in manifests} == {"tinya", "tinyb"}
    again = run_sweep(plan_jobs(plan), make_executor(plan))  # rerun: nothing trained, the stage not touched
    assert again.count("skipped") == 2 and len(count.read_text().splitlines()) == 1


def test_executors_get_the_jobs_split_by_split(two_sets, tmp_path):
    """Jobs started together on a parallel executor are of different (method, dataset) pairs, so two
    workers do not compute the same images' features at once (the feature cache has no lock)."""
    from biqa_bench.sweep import split_by_split

    plan = SweepPlan(["brisque", "sweep-contrast"], ["tinya", "tinyb"], repeats=3, seed=0, out=tmp_path / "out",
                     params={"brisque": BRISQUE})
    jobs = plan_jobs(plan).runs
    assert [(j.dataset.name, j.method, j.split) for j in jobs[:3]] == [("tinya", "brisque", s) for s in range(3)]
    ordered = split_by_split(jobs)
    assert sorted(map(id, ordered)) == sorted(map(id, jobs))
    assert [j.split for j in ordered] == [0] * 4 + [1] * 4 + [2] * 4
    assert [(j.dataset.name, j.method) for j in ordered[:4]] == [(j.dataset.name, j.method) for j in jobs[::3]]


def test_plan_file_dry_run_and_rerun(two_sets, tmp_path):
    out = tmp_path / "out"
    plan = tmp_path / "plan.toml"
    plan.write_text(
        f'methods = ["brisque", "sweep-contrast"]\ndatasets = ["tinya", "tinyb"]\nrepeats = 3\nseed = 0\nout = "{out}"\n'
        '[params.brisque]\nc_grid = [10.0]\ngamma_grid = [0.1]\nn_jobs = 1\n'
    )
    runner = CliRunner()
    dry = runner.invoke(app, ["sweep", str(plan), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "12 jobs, 0 already complete, 12 to run" in dry.output and not list(out.glob("tiny*"))
    ran = runner.invoke(app, ["sweep", str(plan), "--executor", "process", "--workers", "2", "-q"])
    assert ran.exit_code == 0, ran.output
    assert "12 trained, 0 already complete, 0 failed" in ran.output and "SROCC" in ran.output
    again = runner.invoke(app, ["sweep", str(plan), "--dry-run"])
    assert "12 jobs, 12 already complete, 0 to run" in again.output
    manifest = json.loads((out / "tinya" / "brisque" / "split_00" / "manifest.json").read_text())
    assert manifest["params"] == {"c_grid": [10.0], "gamma_grid": [0.1], "n_jobs": 1}
    shown = runner.invoke(app, ["sweep", "--status", str(out)])
    assert shown.exit_code == 0 and "12 jobs, 12 already complete" in shown.output


def test_plan_and_option_errors_are_one_line(two_sets, tmp_path):
    runner = CliRunner()
    bad = tmp_path / "bad.toml"
    bad.write_text('methods = ["brisque"]\ndatasets = ["tinya"]\nworkerz = 3\n')
    result = runner.invoke(app, ["sweep", str(bad)])
    assert result.exit_code == 2 and "unknown plan key(s) ['workerz']" in result.output
    result = runner.invoke(app, ["sweep", "--methods", "brisque", "--datasets", "tinya", "--executor", "dask"])
    assert result.exit_code == 2 and "--executor must be one of serial, process, ray, slurm" in result.output
    result = runner.invoke(app, ["sweep", "--methods", "brisque", "--datasets", "tinya", "-p", "c_grid=[1]"])
    assert result.exit_code == 2 and "METHOD.key=value" in result.output
    result = runner.invoke(app, ["sweep", "--status", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "no sweep was started" in result.output


def test_missing_engines_name_their_extra(monkeypatch, tmp_path):
    from biqa_bench.jobs import RayExecutor, SlurmExecutor

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(RunError, match=r"pip install 'biqa-bench\[ray\]'"):
        RayExecutor("local")
    with pytest.raises(RunError, match=r"pip install 'biqa-bench\[slurm\]'"):
        SlurmExecutor(tmp_path / "logs")


def test_slurm_time_and_dataset_lists():
    # sbatch --time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S
    assert [slurm_minutes(t) for t in ("90", "45:30", "1:30:00", "0:00:30", "2-3", "1-00:10", "1-00:00:00")] == [90, 46, 90, 1, 3060, 1450, 1440]
    assert split_names("koniq, synthetic:contents=5,size=161 ,bid") == ["koniq", "synthetic:contents=5,size=161", "bid"]
    with pytest.raises(Exception, match="--slurm-time"):
        slurm_minutes("soon")


def test_sweep_ci_shows_the_intervals_of_biqa_eval_ci(two_sets, tmp_path, monkeypatch):
    from biqa_bench.cli_common import console
    from biqa_bench.evaluation.intervals import format_interval
    from biqa_bench.evaluation.results import evaluate_results

    monkeypatch.setattr(console, "_width", 240)  # the whole table on one line per row
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["sweep", "--methods", "sweep-mean", "--datasets", "tinya", "--repeats", "3",
                                      "--out", str(out), "-q", "--ci"])
    assert result.exit_code == 0, result.output
    assert "mean [95 % interval]" in result.output
    _, summary, _ = evaluate_results(out, False, False, 10, "nominal", 0.25, ci=True, n_boot=1000, seed=0)
    row = summary[summary["subset"] == "test"].iloc[0]
    assert row["srocc_ci_low"] < row["srocc_mean"] < row["srocc_ci_high"]  # three splits: a t-interval
    assert format_interval(row["srocc_mean"], row["srocc_ci_low"], row["srocc_ci_high"]) in result.output
