"""The plan files shipped under plans/ stay runnable: every method and parameter they name exists,
every database is registered, and the plan expands into the jobs its header promises."""

from __future__ import annotations

from pathlib import Path

from conftest import make_image_folder

from biqa_bench.datasets.registry import registered
from biqa_bench.methods import create_method
from biqa_bench.sweep import EXECUTORS, plan_jobs, read_plan

PLANS = Path(__file__).resolve().parent.parent / "plans"
PAPER_DATABASES = {"koniq", "clive", "bid", "spaq", "cid2013", "live", "csiq", "tid2013"}


def test_main_table_plan_names_only_real_methods_parameters_and_databases():
    plan = read_plan(PLANS / "main-table.toml")
    assert set(plan.datasets) == PAPER_DATABASES and set(plan.datasets) <= set(registered())
    assert plan.repeats == 10 and plan.executor in EXECUTORS
    assert len(plan.methods) >= 10 and len(set(plan.methods)) == len(plan.methods)
    assert {"reqa", "ieit", "qamt", "hcl", "hyperiqa", "dbcnn", "metaiqa", "wadiqam"} <= set(plan.methods)
    for method in plan.methods:  # raises on an unknown method or parameter
        create_method(method, **plan.params.get(method, {}))


def test_main_table_plan_expands_into_one_job_per_method_and_split(tmp_path):
    """The same plan on a tiny registered set in place of the eight databases (their files are not
    on a test machine): one run job per (method, split), a pre-training job only where a method has
    pre-training stages (QAMT, HCL)."""
    from biqa_bench.datasets.custom import add_custom_dataset

    labels = make_image_folder(tmp_path / "tiny", seed=0, size=32)
    labels.to_csv(tmp_path / "tiny.csv", index=False)
    add_custom_dataset("plantiny", tmp_path / "tiny.csv", tmp_path / "tiny", (1.0, 5.0), content_column="content")
    plan = read_plan(PLANS / "main-table.toml", datasets=["plantiny"], out=tmp_path / "out", executor="serial")
    jobs = plan_jobs(plan)
    assert len(jobs.runs) == len(plan.methods) * plan.repeats
    staged = {jobs.runs[position].method for position in jobs.stages}
    assert staged == {"qamt", "hcl"}
    table = jobs.table()
    assert (table["state"] == "pending").all()
    assert table.groupby("method")["split"].nunique().eq(plan.repeats).all()
