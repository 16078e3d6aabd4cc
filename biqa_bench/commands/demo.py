"""`biqa demo`: the whole benchmark on the embedded data sets, offline, in minutes."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import typer

from ..cli_common import comma_list, console, progress_bar, run_command

DEMO_DATASETS = ("synthetic", "mixed")
DEMO_METHODS = ("brisque", "cnniqa")
DEMO_LOW_QUALITY_RULE = "quantile"


def register(main: typer.Typer) -> None:
    main.command("demo")(demo)


@run_command
def demo(
    out: Path = typer.Option(Path("results/demo"), "--out", "-o", help="Results folder of the demo."),
    repeats: int = typer.Option(5, "--repeats", "-n", help="Repeated splits per dataset."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the data, the splits and the methods."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write the report at the end."),
    jobs: int = typer.Option(2, "--jobs", "-j", help="Splits trained at once in worker processes."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    methods: str = typer.Option(",".join(DEMO_METHODS), "--methods", "-m",
                                help="Comma-separated methods to run, e.g. brisque,cnniqa,niqe,ilniqe,cornia,hosa."),
) -> None:
    """A complete small benchmark on the embedded data sets: splits, two methods, eval, ranges,
    low-quality subset, significance, cross-dataset, gMAD (simulated observers) and the report.

    Runs offline; a second run reuses everything it finds. Example: biqa demo --out results/demo
    """
    import pandas as pd

    from ..datasets.registry import load_dataset
    from ..evaluation.cross import cross_records
    from ..evaluation.significance import compare_methods
    from ..jobs import Job, local_executor
    from ..runner import cross_train, predict_with_run, run_jobs
    from ..store import atomic_write_csv
    from ..cli_common import render_summary, resolve_splits
    from ..evaluation.results import evaluate_results

    started = time.perf_counter()
    method_list = _method_list(methods)
    log = logging.getLogger("biqa")
    out = Path(out)
    with progress_bar(not quiet) as bar:
        # 1. data: built from photos shipped with scikit-image on first use, then cached
        from ..datasets import synthetic as embedded

        datasets = {}
        for name in DEMO_DATASETS:
            spec = f"{name}:seed={seed}" if seed else name
            embedded.set_progress(lambda done, total, name=name: bar(f"building embedded '{name}'", done, total))
            try:
                datasets[name] = load_dataset(spec)
            finally:
                embedded.set_progress(None)
            console.print(f"[bold]data[/] {datasets[name].name}: {len(datasets[name].items)} images, "
                          f"{datasets[name].items['content_id'].nunique()} contents")
        # 2. splits and 3. training, every method on the same split files
        for name, data in datasets.items():
            split_set, split_path = resolve_splits(data, None, out, repeats, seed)
            for method in method_list:
                job = Job(method, {}, data, split_set, out, split_file=split_path, seed=seed)
                outcomes = run_jobs(job.for_splits(), local_executor(jobs, progress=bar, log=log))
                done = sum(o.status == "done" for o in outcomes)
                seconds = sum(o.seconds for o in outcomes)
                console.print(f"[bold]train[/] {method} on {data.name}: {done} splits trained "
                              f"({seconds:.0f} s), {len(outcomes) - done} reused")
    # 4. evaluation: overall, five ACR ranges, low-quality subset. The embedded sets' pseudo-MOS
    # seldom falls below 25 (7 and 20 images), too few per test split for IEIT's nominal rule:
    # the demo takes the lowest quarter of each test split (the quantile rule) instead.
    records, summary, _notes = evaluate_results(out, ranges=True, low_quality=True, min_items=10,
                                                 rule=DEMO_LOW_QUALITY_RULE, fraction=0.25)
    atomic_write_csv(out / "eval" / "records.csv", records)
    atomic_write_csv(out / "eval" / "summary.csv", summary)
    render_summary(summary[summary["subset"] == "test"], "Demo: overall (mean ± std over splits)")
    # 5. significance of SROCC over the shared splits, per dataset
    overall = records[records["subset"] == "test"]
    for name, group in overall.groupby("dataset"):
        result = compare_methods(group[["method", "split", "srocc"]], metric="srocc")
        atomic_write_csv(out / "significance" / f"{name}_srocc_matrix.csv", result.matrix.reset_index())
        console.print(f"[bold]significance[/] {name} (paired t-test on SROCC, {len(group['split'].unique())} splits):")
        console.print(result.matrix.to_string())
    # 6. cross-dataset: train on all of one embedded set, test on the other
    cross_rows = []
    scores = []
    with progress_bar(not quiet) as bar:
        for train_name, test_name in (("synthetic", "mixed"), ("mixed", "synthetic")):
            for method in method_list:
                folder = cross_train(method, {}, datasets[train_name], out, seed=seed, progress=bar, log=log)
                predictions = predict_with_run(folder, datasets[test_name], progress=bar, log=log)
                predictions = predictions.assign(method=method, train_dataset=datasets[train_name].name)
                cross_rows.append(cross_records(predictions, datasets[test_name].info, datasets[train_name].name))
                if train_name == "synthetic":
                    scores.append(predictions[["item_id", "method", "prediction"]].rename(columns={"prediction": "score"}))
    cross_table = pd.concat(cross_rows, ignore_index=True)
    atomic_write_csv(out / "cross" / "records.csv", cross_table)
    console.print("[bold]cross-dataset[/] SROCC (rows: trained on; columns: tested on):")
    console.print(cross_table.pivot_table(index=["method", "train_dataset"], columns="dataset", values="srocc").round(3).to_string())
    # 7. gMAD on the mixed pool, models trained on the synthetic set, simulated observers
    _demo_gmad(out, pd.concat(scores, ignore_index=True), datasets["mixed"], seed, method_list)
    # 8. report, with 95 % intervals in every table
    if report:
        from ..report.build import build_report

        result = build_report(out, out / "report", low_quality_rule=DEMO_LOW_QUALITY_RULE, ci=True, seed=seed)
        console.print(f"[bold]report[/] {result.out_dir}")
    console.print(f"demo finished in {time.perf_counter() - started:.0f} s; results in {out}")


def _method_list(methods: str) -> list[str]:
    """--methods as names, once each, checked before any work (an unknown one is a one-line error)."""
    from ..errors import BiqaError
    from ..methods import method_class

    names = list(dict.fromkeys(comma_list(methods)))
    if not names:
        raise BiqaError("--methods: give at least one method name, e.g. --methods brisque,niqe")
    for name in names:
        method_class(name)  # an unknown name is a one-line error with a suggestion
    return names


def _demo_gmad(out: Path, scores, pool, seed: int, methods: list[str]) -> None:
    from ..report.gmad import pool_items_table, run_simulated

    truth = pool.items.set_index("item_id")["quality"]
    result = run_simulated(scores, truth, list(methods), out / "gmad", pool_items=pool_items_table(pool), seed=seed,
                           pool_name=pool.name)
    console.print("[bold]gMAD[/] on the mixed pool (models trained on 'synthetic'; simulated observers, truth = pseudo-MOS):")
    console.print(f"aggressiveness (row attacks column):\n{result.aggressiveness.round(1).to_string()}")
    console.print(f"resistance (row defends against column):\n{result.resistance.round(1).to_string()}")
