"""``build_report``: everything under a results folder -> tables, figures, report.tex (and PDF).

Output layout (``out_dir``)::

    report.tex  report.md  [report.pdf]
    tables/<name>.tex|.md|.csv      figures/<name>.png|.pdf      records/<analysis>.csv

Each analysis becomes a section only when its inputs exist (e.g. the per-split significance
tests need two methods on the same split files and at least two splits, the per-image F-test
two methods that predicted the same test set of one split; the cross-dataset section needs
``biqa cross`` models); what was left out, and why, is listed in :class:`ReportResult.skipped`
and at the top of the report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import AnalysisError, BiqaError
from ..evaluation.intervals import records_with_intervals
from ..evaluation.metrics import common_whole_items
from ..splits import split_coverage
from ..store import (atomic_write_csv, atomic_write_text, dataset_infos, find_runs, is_whole, load_predictions, runs_table,
                     split_order)
from . import figures as F
from . import tables as T
from .analyses import krasula_section, range_effect_section
from .latex import Section, compile_pdf, file_stem, report_document

#: Metrics whose per-split values the report tests for significance (REQA Table III uses SROCC).
SIGNIFICANCE_METRICS = ("srocc", "plcc")

LOW_QUALITY_FRACTION = 0.25

#: Package versions the Protocol section states (the manifests record more).
PROTOCOL_PACKAGES = ("biqa-bench", "torch", "python")


@dataclass
class ReportResult:
    out_dir: Path
    tex: Path
    markdown: Path
    pdf: Path | None
    tables: dict[str, list[Path]] = field(default_factory=dict)  # table name -> .tex/.md/.csv
    figures: dict[str, list[Path]] = field(default_factory=dict)  # figure stem -> .png/.pdf
    sections: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # analysis -> why it is not in the report
    splits: list[str] = field(default_factory=list)  # per method and dataset: "5 of 6 splits; split 2 missing"


class _Builder:
    def __init__(self, out_dir: Path, decimals: int, aggregate: str, ci: bool = False, n_boot: int = 0, seed: int = 0,
                 every_run: bool = False):
        self.out_dir = Path(out_dir)
        self.decimals = decimals
        self.aggregate = aggregate
        self.ci = ci  # every table cell with its 95 % interval (biqa report --ci)
        self.n_boot = n_boot  # bootstrap resamples for a figure resting on one run
        self.boot = n_boot if ci else 0  # what the record functions are given
        self.seed = seed
        self.every_run = every_run  # bootstrap every run into the records, not only one-run figures
        self.sections: list[Section] = []
        self.md_parts: list[str] = []
        self.result_tables: dict[str, list[Path]] = {}
        self.result_figures: dict[str, list[Path]] = {}
        self.skipped: dict[str, str] = {}

    def table(self, section: Section, table: T.Table) -> None:
        self.result_tables[table.name] = T.write_table(table, self.out_dir / "tables")
        section.add_table(table.name)
        self.md_parts.append(T.to_markdown(table) + "\n")

    def figure(self, section: Section, fig, stem: str, caption: str) -> None:
        paths = F.save_figure(fig, self.out_dir / "figures", stem)
        self.result_figures[file_stem(stem)] = paths
        section.add_figure(f"figures/{paths[1].name}", caption)
        self.md_parts.append(f"![{caption}](figures/{paths[0].name})\n\n*{caption}*\n")

    def image(self, section: Section, source: Path, stem: str, caption: str) -> None:
        """An image file made elsewhere (e.g. a gMAD pair figure), copied into figures/."""
        from ..store import atomic_write_bytes

        target = self.out_dir / "figures" / f"{file_stem(stem)}{Path(source).suffix.lower()}"
        atomic_write_bytes(target, Path(source).read_bytes())
        self.result_figures[file_stem(stem)] = [target]
        section.add_figure(f"figures/{target.name}", caption)
        self.md_parts.append(f"![{caption}](figures/{target.name})\n\n*{caption}*\n")

    def section(self, title: str, text: str = "") -> Section:
        section = Section(title, text)
        self.sections.append(section)
        self.md_parts.append(f"## {title}\n\n{text}\n" if text else f"## {title}\n")
        return section

    def records(self, name: str, frame: pd.DataFrame) -> None:
        atomic_write_csv(self.out_dir / "records" / f"{name}.csv", frame)


def _intra(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["train_dataset"].fillna(frame["dataset"]) == frame["dataset"]]


def overall_records(predictions: pd.DataFrame, n_boot: int = 0, seed: int = 0) -> pd.DataFrame:
    """Per (method, train dataset, dataset, split) records on the test rows (``n_boot``: with
    each run's bootstrap interval)."""
    from ..evaluation.metrics import evaluate_predictions

    test = predictions[predictions["subset"] == "test"] if "subset" in predictions.columns else predictions
    return evaluate_predictions(test, n_boot=n_boot, seed=seed)


def _one_or_many(values) -> str:
    found = sorted({json.dumps(v, sort_keys=True, default=str) if isinstance(v, (dict, list)) else str(v) for v in values})
    return found[0] if len(found) == 1 else " | ".join(found)


def protocol_records(results_dir: Path) -> pd.DataFrame:
    """What each (method, training dataset) was run with, from the run manifests: how many splits,
    the split files' hashes, run seeds, device, the parameters asked for and every parameter
    resolved, the weights' SHA-256 and the package versions. Values that differ between the runs
    of one pair are all listed, separated by ' | '."""
    rows: dict[tuple[str, str], list[dict]] = {}
    for run in find_runs(results_dir):
        rows.setdefault((run.method, run.train_dataset), []).append(run.manifest)
    records = []
    for (method, dataset), manifests in sorted(rows.items()):
        versions = [{k: m.get("versions", {}).get(k) for k in PROTOCOL_PACKAGES} for m in manifests]
        resolved = [m["resolved_params"] for m in manifests if isinstance(m.get("resolved_params"), dict)]
        keys = sorted({k for r in resolved for k in r})
        differs = [k for k in keys if len({json.dumps(r.get(k), sort_keys=True, default=str) for r in resolved}) > 1]
        records.append({
            "method": method, "dataset": dataset, "runs": len(manifests),
            "split_hash": _one_or_many(m.get("split_hash") for m in manifests),
            "seed": _one_or_many(m.get("seed") for m in manifests),
            "device": _one_or_many(m.get("device") for m in manifests),
            "params": _one_or_many(m.get("params", {}) for m in manifests),
            "resolved_params": _one_or_many(m.get("resolved_params", "not recorded") for m in manifests),
            "weights_sha256": _one_or_many(m.get("weights_sha256") for m in manifests),
            "versions": _one_or_many(versions),
            "differs": ", ".join(differs),  # resolved parameters that are not the same in every run
        })
    return pd.DataFrame(records)


def protocol_text(records: pd.DataFrame) -> str:
    """The protocol section's paragraph: one sentence per (method, dataset), what is unknown left out."""

    def known(value) -> bool:
        return str(value) not in ("None", "", "nan")

    sentences = []
    for row in records.itertuples(index=False):
        text = f"{row.method} on {row.dataset}: {row.runs} split(s)"
        text += f" of split file {row.split_hash}" if known(row.split_hash) else ""
        text += f", run seed {row.seed}" if known(row.seed) else ""
        text += f", device {row.device}" if known(row.device) else ""
        try:
            asked = json.loads(row.params)
        except ValueError:  # runs that differ: 'A | B', shown as recorded
            asked = str(row.params)
        if isinstance(asked, dict) and "imported_from" in asked:
            text += f"; predictions imported from {asked['imported_from']}"
        elif isinstance(asked, dict):
            text += "; parameters given: " + (", ".join(f"{k}={v}" for k, v in asked.items()) or "none (the defaults)")
        else:
            text += f"; parameters given: {asked}"
        text += f"; weights SHA-256 {row.weights_sha256[:12]}" if known(row.weights_sha256) else ""
        sentences.append(text + ".")
    versions = records["versions"].unique() if len(records) else []
    if len(versions) == 1 and str(versions[0]).startswith("{"):
        recorded = json.loads(versions[0])
        found = {k: recorded[k] for k in PROTOCOL_PACKAGES if recorded.get(k)}
        if found:
            sentences.append("Software: " + ", ".join(f"{k} {v}" for k, v in found.items()) + ".")
    sentences.append("Every parameter with its default resolved is in records/protocol.csv.")
    return " ".join(sentences)


def cross_dataset_records(results_dir: Path, n_boot: int = 0, seed: int = 0) -> pd.DataFrame | None:
    """Cross-dataset records from the models of ``biqa cross`` below ``results_dir``: recomputed
    from their cached predictions on each test set, or, failing those, read from the records
    CSVs that ``biqa cross`` wrote. None when there are none. ``n_boot`` > 0: with each test's
    bootstrap interval (recomputed records only)."""
    from ..evaluation.cross import cross_records

    parts = []
    for run in find_runs(results_dir, kind="cross-model"):
        frame = run.inference()
        if frame is None:
            continue
        for _dataset, group in frame.groupby("dataset"):
            if str(_dataset) != str(run.train_dataset):
                parts.append(cross_records(group, None, n_boot=n_boot, seed=seed))
    if not parts:
        for path in sorted(Path(results_dir).rglob("*records.csv")):
            if "cross" not in path.parts:
                continue
            frame = pd.read_csv(path)
            if {"train_dataset", "dataset", "srocc", "method"} <= set(frame.columns):
                parts.append(frame[frame["train_dataset"] != frame["dataset"]])
    if not parts:
        return None
    records = pd.concat(parts, ignore_index=True)
    keys = [c for c in ("method", "train_dataset", "dataset", "split") if c in records.columns]
    return records.drop_duplicates(keys, keep="last").reset_index(drop=True)


def _per_image_f_test(b: "_Builder", test: pd.DataFrame, dataset: str, alpha: float, section) -> None:
    """The F-test matrix on the lowest split whose test set every method predicted (same items)."""
    from ..evaluation.significance import f_test_on_common_split

    if test["method"].nunique() < 2:
        return
    try:
        found = f_test_on_common_split(test, alpha)
    except AnalysisError as exc:
        b.skipped[f"per-image F-test on {dataset}"] = str(exc)
        return
    if found is None:
        b.skipped[f"per-image F-test on {dataset}"] = "no split whose test set every method predicted"
        return
    split = found.split
    where = "every labelled item (whole-dataset runs)" if is_whole(split) else f"test set of split {split}"
    label = "whole dataset" if is_whole(split) else f"split {split}"
    caption = (
        f"Per-image F-test on {dataset}, {where} ({found.n} images): residual variances "
        f"after each method's logistic mapping, two-sided, alpha = {alpha:g}, no correction for multiple "
        f"comparisons; 1 / 0 / {T.DASH}1 means the row method's residuals are significantly smaller than / "
        "indistinguishable from / larger than the column method's."
    )
    stem = f"significance_ftest_{dataset}"
    b.table(section(), T.significance_table(found.decision, dataset=dataset, name=stem, caption=caption,
                                            title=f"Per-image F-test on {dataset}"))
    b.figure(section(), F.significance_figure(found.decision, f"Per-image F-test on {dataset}, {label}"), stem,
             f"Per-image F-test on {dataset} ({label}): 1 (blue) row method better, 0 (grey) "
             "indistinguishable, -1 (vermillion) row method worse.")
    b.records(f"significance_ftest_pvalues_{file_stem(dataset)}", found.pvalue.reset_index(names="method"))


def _overall_section(b: _Builder, test, aggregate, decimals) -> pd.DataFrame:
    """The overall SROCC/PLCC (and RMSE) tables and the scatter plot."""
    records = records_with_intervals(overall_records, test, b.boot, b.seed, b.every_run)
    b.records("overall", records)
    section = b.section(
        "Overall performance",
        "Each method is trained on the training part of every split and tested on its test part; "
        "PLCC and RMSE are computed after the 4-parameter logistic mapping fitted on each test split.",
    )
    b.table(section, T.overall_table(records, ("srocc", "plcc"), aggregate, decimals, ci=b.ci))
    if len(records) and records["rmse"].notna().any():
        b.table(section, T.overall_table(records, ("rmse",), aggregate, decimals, name="overall_rmse", ci=b.ci))
    first_split = sorted(test["split"].unique(), key=split_order)[0]
    shown = "every labelled item (whole-dataset runs)" if is_whole(first_split) else f"the test part of split {first_split}"
    b.figure(section, F.scatter_figure(test, split=first_split), "scatter",
             f"Prediction against ground-truth quality on {shown}, with the "
             "4-parameter logistic fitted on it (one row per method, one column per dataset).")
    return records


def _ranges_section(b: _Builder, test, datasets, min_items, aggregate, decimals) -> None:
    """The five ACR ranges."""
    from ..evaluation.ranges import range_records

    ranges = records_with_intervals(range_records, test, b.boot, b.seed, b.every_run, min_items=min_items)
    b.records("ranges", ranges)
    defined = ranges[ranges["status"] == "ok"]
    if len(defined):
        section = b.section(
            "Five quality ranges",
            "The test items are divided by ground-truth quality into the five ACR ranges Bad [0, 20), Poor [20, 40), "
            "Fair [40, 60), Good [60, 80) and Excellent [80, 100] (REQA). A method is not re-fitted per range: "
            f"PLCC uses the logistic of the whole test split. A range with fewer than {min_items} items or "
            "constant scores is not defined.",
        )
        for dataset in datasets:
            if (defined["dataset"] == dataset).any():
                b.table(section, T.ranges_table(ranges, dataset, ("srocc", "plcc"), aggregate, decimals, ci=b.ci))
                b.figure(section, F.range_bars_figure(ranges, dataset, "srocc", aggregate), f"ranges_srocc_{dataset}",
                         f"SROCC per ACR range on {dataset} ({aggregate} over splits; error bars: standard deviation "
                         "over splits; n/d: not defined).")
    else:
        b.skipped["ranges"] = f"no ACR range has {min_items} or more test items with varying scores"


def _deviation_section(b: _Builder, test, datasets) -> None:
    """The deviation of the mapped predictions (REQA Figs 6 and 7)."""
    from ..evaluation.deviation import absolute_deviation_table, class_difference_table

    classes = class_difference_table(test)
    absolute = absolute_deviation_table(test)
    b.records("deviation_classes", classes)
    b.records("deviation_absolute", absolute)
    section = b.section(
        "Prediction deviation",
        "Predictions are mapped to the 0-100 quality scale by the logistic of their test split; the plots count "
        "test items (pooled over splits) by the difference between the ACR class of the mapped prediction and of "
        "the ground truth, and by the absolute deviation in bins of 2.5 points (REQA Figs 6 and 7).",
    )
    for dataset in datasets:
        b.figure(section, F.class_difference_figure(classes, dataset), f"deviation_classes_{dataset}",
                 f"ACR-class deviation of the mapped predictions on {dataset}.")
        b.figure(section, F.absolute_deviation_figure(absolute, dataset), f"deviation_absolute_{dataset}",
                 f"Absolute deviation of the mapped predictions from the ground truth on {dataset}.")


def _low_quality_section(b: "_Builder", test: pd.DataFrame, results_dir: Path, rule: str, min_items: int) -> None:
    """The low-quality section (IEIT Table II and Fig. 4): the table when some dataset has enough
    low-quality test items per split, and the quality histogram. ``rule`` is ``'nominal'`` (IEIT:
    quality below 25, the lowest quarter of the nominal score range) or ``'quantile'`` (the lowest
    quarter of each test split by quality, for sets whose scores rarely reach the bottom quarter of
    their range, such as the embedded demo sets)."""
    from ..evaluation.ranges import check_low_quality, low_quality_records

    check_low_quality(rule, LOW_QUALITY_FRACTION)
    threshold = 100.0 * LOW_QUALITY_FRACTION
    low = records_with_intervals(low_quality_records, test, b.boot, b.seed, b.every_run, rule=rule,
                                 fraction=LOW_QUALITY_FRACTION, min_items=min_items)
    b.records("low_quality", low)
    if rule == "nominal":
        text = (f"Low-quality images are those whose score lies in the lowest quarter of the dataset's nominal score "
                f"range, i.e. quality below {threshold:g} on the 0-100 scale (IEIT).")
        definition = f"quality below {threshold:g} on the 0-100 scale, the lowest quarter of the nominal score range"
        shaded = f"shaded: the low-quality region (quality below {threshold:g})"
    else:
        text = ("Low-quality images are the lowest quarter of each test split by ground-truth quality (ties at the "
                "cut-off included; biqa report --low-quality-rule quantile), not IEIT's fixed region of quality below "
                f"{threshold:g}: these datasets have too few images there.")
        definition = "the lowest quarter of each test split by quality"
        shaded = (f"shaded: quality below {threshold:g}, IEIT's low-quality region (the table takes the lowest quarter "
                  "of each test split instead)")
    defined = (low["status"] == "ok").any()
    if not defined:
        b.skipped["low-quality table"] = f"no dataset has {min_items} or more low-quality test items with varying scores"
        text += f" No dataset has {min_items} or more low-quality test items, so there is no table."
    section = b.section("Low-quality images", text)
    if defined:
        b.table(section, T.low_quality_table(low, ("srocc", "plcc"), b.aggregate, b.decimals, definition=definition,
                                             ci=b.ci))
    counts = {run.train_dataset: run.manifest["quality_histogram"] for run in find_runs(results_dir)
              if run.manifest.get("quality_histogram")}
    partial = sorted(set(test["dataset"]) - set(counts), key=str)
    b.figure(section, F.quality_histogram_figure(test, threshold, counts=counts), "quality_histogram",
             f"Ground-truth quality of each dataset's images; {shaded}."
             + (f" For {', '.join(map(str, partial))} only the test images seen over the splits (runs made before "
                "manifests kept the whole dataset's distribution, or imported from elsewhere)." if partial else ""))


def _significance_section(b: _Builder, test, datasets, results_dir, alpha, significance_test, records) -> None:
    """Per-split significance tests per dataset and the per-image F-test."""
    from ..evaluation.significance import check_split_hashes, compare_methods

    try:
        check_split_hashes(runs_table(results_dir))
        hashes_ok = None
    except AnalysisError as exc:
        hashes_ok = str(exc)
    sig_section = None

    def significance_section():
        nonlocal sig_section
        if sig_section is None:
            metrics = " and ".join(m.upper() for m in SIGNIFICANCE_METRICS)
            per_split_test = (f"{significance_test} t-test" if significance_test != "wilcoxon" else "Wilcoxon signed-rank test")
            sig_section = b.section(
                "Statistical significance",
                f"Per-split {metrics} of each pair of methods on the same split files, {per_split_test} "
                f"(alpha = {alpha:g}, two-sided); and per image, on one split's test set, the F-test on the "
                "residual variances after each method's logistic mapping (Sheikh et al. 2006).",
            )
        return sig_section

    for dataset in datasets:
        if hashes_ok is not None:
            b.skipped[f"significance on {dataset}"] = hashes_ok
            continue
        per_split = records[(records["dataset"] == dataset) & (records["train_dataset"] == dataset)]
        per_split = per_split[~per_split["split"].map(is_whole).astype(bool)]  # one test set: per image only
        methods = sorted(per_split["method"].unique(), key=str)
        if len(methods) < 2 or per_split["split"].nunique() < 2:
            b.skipped[f"significance on {dataset}"] = "per-split tests need two or more methods and two or more splits" + (
                " (whole-dataset runs have none)" if (test["dataset"] == dataset).any() and per_split.empty else "")
            metrics_to_test = ()
        else:
            metrics_to_test = SIGNIFICANCE_METRICS
        test_name = {"paired": "paired t-test", "welch": "Welch's t-test", "wilcoxon": "Wilcoxon signed-rank test"}
        for metric in metrics_to_test:
            label = metric.upper()
            suffix = "" if metric == "srocc" else f"_{metric}"  # SROCC keeps the names it always had
            try:
                result = compare_methods(per_split[["method", "split", metric]], metric=metric, test=significance_test,
                                         alpha=alpha)
            except AnalysisError as exc:
                b.skipped[f"{label} significance on {dataset}"] = str(exc)
                continue
            b.table(significance_section(), T.significance_table(result.decision, metric, dataset,
                                                      test_name.get(significance_test, significance_test), alpha,
                                                      name=f"significance{suffix}_{dataset}"))
            b.figure(sig_section, F.significance_figure(result.decision, f"{label} significance on {dataset}"),
                     f"significance{suffix}_{dataset}", f"Significance of per-split {label} differences on {dataset}: "
                     "1 (blue) row method better, 0 (grey) indistinguishable, -1 (vermillion) row method worse.")
            b.records(f"significance_pvalues{suffix}_{file_stem(dataset)}", result.pvalue.reset_index(names="method"))
        _per_image_f_test(b, test[test["dataset"] == dataset], dataset, alpha, significance_section)


def _cross_dataset_section(b: _Builder, results_dir, aggregate, decimals) -> None:
    """The cross-dataset tables, from the models of ``biqa cross``."""
    cross = cross_dataset_records(results_dir, b.boot, b.seed)
    if cross is not None and len(cross):
        b.records("cross", cross)
        section = b.section(
            "Cross-dataset tests",
            "Each model is trained on all of one dataset and tested on every item of another; PLCC after the "
            "logistic fitted on the test set's labels rescaled to 1-5.",
        )
        b.table(section, T.cross_table(cross, ("srocc", "plcc"), aggregate, decimals, ci=b.ci))
        b.table(section, T.cross_pairs_table(cross, ("srocc", "plcc"), aggregate, decimals, ci=b.ci))
    else:
        b.skipped["cross-dataset"] = "no cross-dataset models found (run `biqa cross`)"


def _protocol_section(b: _Builder, results_dir) -> pd.DataFrame:
    """What every method ran with, from the manifests."""
    protocol = protocol_records(results_dir)
    if len(protocol):
        b.records("protocol", protocol)
        b.section("Protocol", protocol_text(protocol))
    return protocol


def whole_runs_text(results_dir: Path, notes: list[str]) -> str:
    """The introduction's sentence on whole-dataset runs: which, on how many items, how many labelled
    items each left out (``--allow-missing``), and the common items they were compared on."""
    parts = []
    for run in find_runs(results_dir):
        if run.is_whole:
            n, missing = run.manifest.get("n_test"), int(run.manifest.get("n_missing") or 0)
            left = f", {missing} labelled items without a prediction left out" if missing else ""
            parts.append(f"{run.method} on {run.train_dataset} ({n} items{left})")
    if not parts:
        return ""
    text = " Whole-dataset runs (every labelled item, no split): " + "; ".join(parts) + "."
    return text + "".join(f" The {note}." for note in notes)


def gmad_analyses(results_dir: Path) -> list[Path]:
    """The folders below ``results_dir`` that hold a gMAD analysis (``biqa gmad analyze``, the
    demo's ``gmad/analysis``): each has gmad.json, aggressiveness.csv and resistance.csv."""
    found = []
    for marker in sorted(Path(results_dir).rglob("gmad.json")):
        folder = marker.parent
        if (folder / "aggressiveness.csv").is_file() and (folder / "resistance.csv").is_file():
            found.append(folder)
    return found


def _gmad_table(folder: Path, name: str) -> T.Table:
    """Aggressiveness (row attacks column) and resistance (row defends against column) of one
    gMAD analysis, with each method's overall rank, as one table."""
    aggressiveness = pd.read_csv(folder / "aggressiveness.csv", index_col=0)
    resistance = pd.read_csv(folder / "resistance.csv", index_col=0)
    methods = sorted(set(aggressiveness.index.astype(str)) | set(resistance.index.astype(str)), key=str)
    aggressiveness = aggressiveness.reindex(index=methods, columns=methods)
    resistance = resistance.reindex(index=methods, columns=methods)
    columns = {}
    for method in methods:
        columns[("Aggressiveness as attacker of", method)] = aggressiveness[method].to_numpy(float)
    for method in methods:
        columns[("Resistance as defender against", method)] = resistance[method].to_numpy(float)
    ranking_path = folder / "ranking.csv"
    if ranking_path.is_file():
        ranking = pd.read_csv(ranking_path).set_index("method").reindex(methods)
        columns[("", "Rank")] = ranking["rank"].to_numpy(float)
    values = pd.DataFrame(columns, index=pd.Index(methods, name="method"))
    values.columns = pd.MultiIndex.from_tuples(list(columns))
    better = {c: ("lower" if c[1] == "Rank" else "higher") for c in values.columns}
    caption = (
        "gMAD competition (Ma et al., TPAMI 2020): aggressiveness of the row method attacking the column method "
        "(mean preference for the attacker's better image, -100 to 100, weighted over the defender's quality levels; "
        "high: the attacker found pairs the defender wrongly rates equal) and resistance of the row method defending "
        "against the column method (100 - |preference|, 0 to 100; high: the attacker's pairs look alike). "
        f"Rank: by the mean of the two ranks. {T.DASH}: a method does not compete with itself."
    )
    return T.Table(name, "gMAD competition", caption, values, better, 1, highlight=False)


def _gmad_observers(folder: Path) -> str:
    """Who judged the pairs: simulated observers (``biqa gmad simulate``: subjects sim01, ...)
    or people, from the judgments file next to the analysis when there is one."""
    for candidate in (folder.parent / "judgments.csv", folder / "judgments.csv"):
        if candidate.is_file():
            subjects = pd.read_csv(candidate, usecols=["subject"])["subject"].astype(str).unique()
            if len(subjects) and all(s.startswith("sim") and s[3:].isdigit() for s in subjects):
                return (f"{len(subjects)} simulated observers who see the pool's ground-truth quality through noise "
                        "(biqa gmad simulate): this checks the procedure, not human opinion")
            return f"{len(subjects)} subjects ({candidate.name})"
    return "the judgments the analysis was given"


def _gmad_figure_names(folder: Path) -> dict[str, tuple[str, str]]:
    """Pair-figure file stem ("<defender>-vs-<attacker>", file-safe) -> the methods' own names,
    from the pair ids of the selection's pairs.csv ("<stem>-L<level>")."""
    path = folder.parent / "pairs.csv"
    if not path.is_file():
        return {}
    pairs = pd.read_csv(path, usecols=["pair_id", "defender", "attacker"], dtype=str)
    return {pid.rsplit("-L", 1)[0]: (d, a) for pid, d, a in pairs.itertuples(index=False, name=None)}


def gmad_section(b: "_Builder", results_dir: Path) -> None:
    """The gMAD section: per analysis found, the aggressiveness / resistance table and the pair
    figures with the observers' verdict; skipped (and said so) when there is none."""
    folders = gmad_analyses(results_dir)
    if not folders:
        b.skipped["gMAD"] = "no gMAD analysis found (run `biqa gmad analyze`)"
        return
    text = (
        "In the group maximum differentiation (gMAD) competition one method, the defender, is held fixed: at each "
        "of its quality levels, pool images it rates (nearly) equal are found; the other method, the attacker, picks "
        "among them the two it rates most differently. Observers then say which of the two looks better. An "
        "attacker whose better image is preferred has found a failure of the defender (aggressiveness); a defender "
        "whose pairs look alike resisted (resistance)."
    )
    for folder in folders:
        selection_path = folder.parent / "selection.json"
        selection = json.loads(selection_path.read_text()) if selection_path.is_file() else {}
        where = folder.relative_to(results_dir) if folder.is_relative_to(results_dir) else folder
        facts = [f"Analysis {where}"]
        if selection.get("pool"):
            facts.append(f"pool {selection['pool']} ({selection.get('pool_size', '?')} images)")
        if "pairs" in selection:
            facts.append(f"{selection['pairs']} pairs from {selection.get('levels', '?')} levels per (defender, attacker)")
        facts.append(f"judged by {_gmad_observers(folder)}")
        text += " " + "; ".join(facts) + "."
    section = b.section("gMAD competition", text)
    for k, folder in enumerate(folders):
        suffix = "" if len(folders) == 1 else f"_{k + 1}"
        table = _gmad_table(folder, f"gmad{suffix}")
        flat = table.values.set_axis([f"{g} {l}".strip() for g, l in table.values.columns], axis=1)
        b.records(f"gmad{suffix}", flat.reset_index())
        b.table(section, table)
        names = _gmad_figure_names(folder)
        for path in sorted((folder / "figures").glob("*.png")):
            defender, attacker = names.get(path.stem, path.stem.partition("-vs-")[::2])
            b.image(section, path, f"gmad{suffix}_{path.stem}",
                    f"gMAD pairs with {defender} defending and {attacker} attacking: per level of {defender}, the "
                    f"image {attacker} rates best (top) and worst (bottom) among those {defender} rates equal, with "
                    "the observers' mean preference (> 0: the top image looks better).")


def build_report(
    results_dir: Path,
    out_dir: Path,
    decimals: int = 3,
    aggregate: str = "mean",
    pdf: bool = False,
    min_items: int = 10,
    significance_test: str = "paired",
    alpha: float = 0.05,
    low_quality_rule: str = "nominal",
    ci: bool = False,
    n_boot: int = 1000,
    seed: int = 0,
    boot_every_run: bool = False,
) -> ReportResult:
    """Write the tables, figures and standalone ``report.tex`` (and ``report.pdf`` with ``pdf``)
    for every run below ``results_dir`` into ``out_dir``; see the module docstring.

    ``ci``: every table cell carries its 95 % interval (the t-interval over splits, or for a
    figure resting on one run its BCa bootstrap over test images, ``n_boot`` resamples seeded
    with ``seed``; with ``boot_every_run`` every run is bootstrapped, for the records;
    :func:`biqa_bench.evaluation.intervals.records_with_intervals`)."""
    if not isinstance(decimals, int) or not 0 <= decimals <= 6:
        raise BiqaError(f"decimals must be an integer from 0 to 6, not {decimals!r}")
    if aggregate not in T.AGGREGATES:
        raise BiqaError(f"aggregate must be 'mean' or 'median', not '{aggregate}'")
    results_dir = Path(results_dir)
    predictions = load_predictions(results_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    b = _Builder(out_dir, decimals, aggregate, ci, n_boot, seed, boot_every_run)
    test = _intra(predictions[predictions["subset"] == "test"]) if "subset" in predictions else _intra(predictions)
    if test.empty:
        raise BiqaError(
            f"{results_dir}: the runs hold no within-dataset test predictions (subset 'test'); "
            "re-run `biqa train`, which writes them"
        )
    common = common_whole_items(test)  # whole-dataset runs of different methods: on the same items
    test = common.predictions
    datasets = sorted(test["dataset"].unique(), key=str)

    records = _overall_section(b, test, aggregate, decimals)
    _ranges_section(b, test, datasets, min_items, aggregate, decimals)
    range_effect_section(b, test, min_items, ci, n_boot, seed, boot_every_run)
    _deviation_section(b, test, datasets)
    _low_quality_section(b, test, results_dir, low_quality_rule, min_items)
    _significance_section(b, test, datasets, results_dir, alpha, significance_test, records)
    krasula_section(b, test, dataset_infos(results_dir), alpha)
    _cross_dataset_section(b, results_dir, aggregate, decimals)
    gmad_section(b, results_dir)
    protocol = _protocol_section(b, results_dir)

    # ---------------------------------------------------------------- documents
    coverage = [f"{c.method} on {c.train_dataset}: {c.text}" for c in split_coverage(find_runs(results_dir))]
    methods = sorted(test["method"].unique(), key=str)
    intro = (
        f"Results folder: {results_dir}. Methods: {', '.join(methods)}. Datasets: {', '.join(datasets)}. "
        f"Splits per method and dataset: {'; '.join(coverage) if coverage else '0'}. Values in the tables are the "
        f"{aggregate} over splits with {decimals} decimals."
    )
    mixed = protocol[protocol["differs"] != ""] if len(protocol) else protocol
    if len(mixed):
        intro += " Caution: the splits of " + "; ".join(
            f"{row.method} on {row.dataset} ran with different {row.differs}" for row in mixed.itertuples(index=False)
        ) + " (records/protocol.csv); re-run them with one setting to compare like with like."
    intro += whole_runs_text(results_dir, common.notes())
    if b.skipped:
        intro += " Not included: " + "; ".join(f"{k} ({v})" for k, v in b.skipped.items()) + "."
    tex = out_dir / "report.tex"
    atomic_write_text(tex, report_document("Benchmark report", b.sections, intro, base=out_dir))
    markdown = out_dir / "report.md"
    atomic_write_text(markdown, "# Benchmark report\n\n" + intro + "\n\n" + "\n".join(b.md_parts))
    pdf_path = compile_pdf(tex) if pdf else None
    return ReportResult(out_dir, tex, markdown, pdf_path, b.result_tables, b.result_figures,
                        [s.title for s in b.sections], b.skipped, coverage)
