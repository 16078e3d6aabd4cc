"""build_report on a fake results folder: files, sections, figures, the standalone LaTeX, the CLI."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from biqa_bench.errors import BiqaError
from biqa_bench.evaluation.metrics import srocc
from biqa_bench.report.build import build_report
from biqa_bench.report.latex import compile_pdf, first_latex_error
from biqa_bench.store import PREDICTION_COLUMNS, atomic_write_csv, run_dir, write_run

HAS_PDFLATEX = shutil.which("pdflatex") is not None
NO_PDFLATEX = "pdflatex is not installed (apt-get install texlive-latex-base texlive-latex-recommended)"
METHODS = {"good_net": 5.0, "noisy&co": 20.0}
DATASETS = {"synthetic": 80, "mixed": 60}


def make_results(root, seed=0, splits=2, cross=True):
    rng = np.random.default_rng(seed)
    pools = {d: pd.DataFrame({"item_id": [f"{d}{i:04d}" for i in range(4 * n)],
                              "quality": 100 * rng.beta(2.0, 2.0, 4 * n)}) for d, n in DATASETS.items()}
    for d, n in DATASETS.items():
        for s in range(splits):
            test = pools[d].sample(n, random_state=seed + s)
            for m, noise in METHODS.items():
                pred = np.tanh((test["quality"].to_numpy() - 50) / 40) + rng.normal(0, noise / 50, n)
                frame = pd.DataFrame({"item_id": test["item_id"], "dataset": d, "split": s, "subset": "test",
                                      "quality": test["quality"], "score": test["quality"] / 20, "prediction": pred})
                write_run(run_dir(root, d, m, s), frame,
                          {"kind": "run", "method": m, "train_dataset": d, "split": s, "split_hash": f"{d}-{s}"})
    if cross:
        for m, noise in METHODS.items():
            for train in DATASETS:
                folder = root / "cross" / train / m
                for test_set in DATASETS:
                    if test_set != train:
                        items = pools[test_set]
                        pred = items["quality"].to_numpy() + rng.normal(0, noise, len(items))
                        atomic_write_csv(folder / "inference" / f"{test_set}-0.csv", items.assign(
                            dataset=test_set, score=items["quality"] / 20, prediction=pred))
                # as `biqa cross` writes it: an empty predictions.csv, the manifest last
                write_run(folder, pd.DataFrame(columns=PREDICTION_COLUMNS),
                          {"kind": "cross-model", "method": m, "train_dataset": train, "split": 0})
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = make_results(tmp_path_factory.mktemp("results"))
    result = build_report(root, root / "report", decimals=3, aggregate="mean", pdf=HAS_PDFLATEX)
    return root, result


def test_sections_and_table_files(built):
    _root, result = built
    assert result.sections == ["Overall performance", "Five quality ranges", "Range-effect index", "Prediction deviation",
                               "Low-quality images", "Statistical significance", "Cross-dataset tests", "Protocol"]
    # the fake predictions carry no std / n_ratings: the Krasula analysis says so, per dataset; no
    # gMAD analysis in this folder: said at the top too
    assert list(result.skipped) == ["Krasula analysis on mixed", "Krasula analysis on synthetic", "gMAD"]
    for name in ("overall", "overall_rmse", "ranges_mixed", "ranges_synthetic", "low_quality", "cross", "cross_pairs",
                 "significance_mixed", "significance_synthetic", "significance_plcc_mixed", "significance_plcc_synthetic",
                 "significance_ftest_mixed", "significance_ftest_synthetic"):
        paths = result.tables[name]
        assert [p.suffix for p in paths] == [".tex", ".md", ".csv"]
        assert all(p.stat().st_size > 40 for p in paths)
    tex = result.tex.read_text()
    assert "\\usepackage{booktabs}" in tex and "\\usepackage{graphicx}" in tex
    assert "\\input{tables/overall}" in tex and "figures/scatter.pdf" in tex
    assert "noisy\\&co" in result.tables["overall"][0].read_text()


def test_overall_csv_matches_the_metric(built):
    root, result = built
    table = pd.read_csv(result.tables["overall"][2], index_col=0)
    runs = []
    for s in range(2):
        frame = pd.read_csv(run_dir(root, "mixed", "good_net", s) / "predictions.csv")
        runs.append(srocc(frame["quality"], frame["prediction"]))
    assert table.loc["good_net", "mixed SROCC"] == pytest.approx(np.mean(runs))
    weighted = (80 * table.loc["good_net", "synthetic SROCC"] + 60 * table.loc["good_net", "mixed SROCC"]) / 140
    assert table.loc["good_net", "Weighted avg. SROCC"] == pytest.approx(weighted)
    # the better method is bold in the LaTeX table
    latex = result.tables["overall"][0].read_text()
    good_row = next(line for line in latex.splitlines() if line.startswith("good"))
    assert good_row.count("\\textbf") == 6


def test_figures_exist_with_real_content(built):
    _root, result = built
    expected = {"scatter", "ranges_srocc_mixed", "ranges_srocc_synthetic", "deviation_classes_mixed",
                "deviation_absolute_mixed", "quality_histogram", "significance_mixed", "significance_plcc_mixed"}
    assert expected <= set(result.figures)
    for stem, (png, pdf) in result.figures.items():
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", stem
        assert pdf.read_bytes()[:5] == b"%PDF-", stem
        assert png.stat().st_size > 15_000, stem  # a blank 200-dpi figure is a few kB
        assert pdf.stat().st_size > 5_000, stem


@pytest.mark.skipif(not HAS_PDFLATEX, reason=NO_PDFLATEX)
def test_standalone_report_compiles(built):
    _root, result = built
    assert result.pdf is not None and result.pdf.read_bytes()[:5] == b"%PDF-"
    assert result.pdf.stat().st_size > 50_000
    log = result.tex.with_suffix(".log").read_text(errors="replace")
    assert "LaTeX Error" not in log and "Undefined control sequence" not in log


@pytest.mark.skipif(not HAS_PDFLATEX, reason=NO_PDFLATEX)
def test_compile_failure_names_the_first_error(tmp_path):
    bad = tmp_path / "bad.tex"
    bad.write_text("\\documentclass{article}\\begin{document}\\undefinedmacro\\end{document}\n")
    with pytest.raises(BiqaError, match="Undefined control sequence"):
        compile_pdf(bad)


def test_first_latex_error_reads_the_log():
    log = "This is pdfTeX\n(./x.tex\n! Missing $ inserted.\n<inserted text>\n$\nl.12 a_b\n"
    assert first_latex_error(log) == "Missing $ inserted. (l.12 a_b)"


def test_bad_arguments_are_one_line_errors(tmp_path):
    with pytest.raises(BiqaError, match="aggregate"):
        build_report(tmp_path, tmp_path / "out", aggregate="mode")
    with pytest.raises(BiqaError, match="decimals"):
        build_report(tmp_path, tmp_path / "out", decimals=9)
    with pytest.raises(BiqaError, match="no complete runs"):
        build_report(tmp_path, tmp_path / "out")


def test_cli_report_sections_only_for_existing_inputs(tmp_path):
    # one method, one split, no cross models: no significance and no cross-dataset section
    from biqa_bench.commands.report import register

    root = tmp_path / "results"
    rng = np.random.default_rng(5)
    quality = rng.uniform(0, 100, 50)
    frame = pd.DataFrame({"item_id": [str(i) for i in range(50)], "dataset": "mixed", "split": 0, "subset": "test",
                          "quality": quality, "score": quality, "prediction": quality + rng.normal(0, 10, 50)})
    write_run(run_dir(root, "mixed", "only", 0), frame, {"kind": "run", "method": "only", "train_dataset": "mixed",
                                                         "split": 0, "split_hash": "h"})
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        """test app"""

    runner = CliRunner()
    out = tmp_path / "cli"
    res = runner.invoke(app, ["report", str(root), "--out", str(out), "--decimals", "2", "--aggregate", "median"])
    assert res.exit_code == 0, res.output
    assert "left out cross-dataset" in res.output and "left out significance on mixed" in res.output
    overall = (out / "tables" / "overall.md").read_text()
    assert "Median over 1 split" in overall
    assert f"| only | {srocc(quality, frame['prediction']):.2f} |" in overall
    tex = (out / "report.tex").read_text()
    assert "Not included" in tex and "Statistical significance" not in tex and "Cross-dataset" not in tex
    assert not list((out / "tables").glob("significance*")) and not (out / "tables" / "cross.tex").exists()
    res = runner.invoke(app, ["report", str(tmp_path / "missing"), "--out", str(out)])
    assert res.exit_code == 2


def test_cross_records_fall_back_to_the_csvs_of_biqa_cross(tmp_path):
    from biqa_bench.report.build import cross_dataset_records

    assert cross_dataset_records(tmp_path) is None
    records = pd.DataFrame({"method": ["m", "m"], "train_dataset": ["a", "a"], "dataset": ["b", "a"], "split": [0, 0],
                            "subset": ["all", "all"], "n": [50, 50], "srocc": [0.7, 0.9], "krocc": 0.5, "plcc": 0.7,
                            "plcc_raw": 0.7, "rmse": 0.4, "status": "ok", "reason": ""})
    atomic_write_csv(tmp_path / "cross" / "m_a_records.csv", records)
    atomic_write_csv(tmp_path / "cross" / "records.csv", records)  # the demo's copy: not counted twice
    found = cross_dataset_records(tmp_path)
    assert len(found) == 1 and found.iloc[0]["dataset"] == "b" and found.iloc[0]["srocc"] == 0.7


def test_unreadable_cross_model_manifest_is_a_one_line_error(tmp_path):
    from biqa_bench.errors import RunError
    from biqa_bench.report.build import cross_dataset_records
    from biqa_bench.store import find_runs

    root = make_results(tmp_path / "results", splits=1)
    assert len(find_runs(root, kind="cross-model")) == len(METHODS) * len(DATASETS)
    assert {r.manifest["kind"] for r in find_runs(root)} == {"run"}
    assert len(cross_dataset_records(root)) == len(METHODS) * len(DATASETS)  # each model on the other set
    broken = root / "cross" / "mixed" / "good_net" / "manifest.json"
    broken.write_text("{not json")
    with pytest.raises(RunError, match=r"good_net.manifest\.json: unreadable manifest") as exc:
        cross_dataset_records(root)
    assert "\n" not in str(exc.value)


def test_markdown_report_links_tables_and_figures(built):
    _root, result = built
    text = result.markdown.read_text()
    assert text.startswith("# Benchmark report")
    assert "](figures/scatter.png)" in text and "| good\\_net |" in text


def test_plcc_significance_matches_per_split_plcc(built):
    """The PLCC matrix is the significance test of each split's PLCC after its own logistic fit."""
    from biqa_bench.evaluation.metrics import score_predictions
    from biqa_bench.evaluation.significance import compare_methods

    root, result = built
    rows = []
    for method in METHODS:
        for s in range(2):
            frame = pd.read_csv(run_dir(root, "mixed", method, s) / "predictions.csv")
            rows.append({"method": method, "split": s,
                         "plcc": float(score_predictions(frame["quality"], frame["prediction"]).plcc)})
    expected = compare_methods(pd.DataFrame(rows), metric="plcc", test="paired", alpha=0.05).decision
    table = pd.read_csv(result.tables["significance_plcc_mixed"][2], index_col=0)
    assert table.loc["good_net"].astype(float).tolist() == expected.loc["good_net"].astype(float).tolist()
    assert "PLCC" in result.tables["significance_plcc_mixed"][0].read_text()


def test_quality_histogram_draws_the_whole_dataset_from_the_manifests(tmp_path):
    """Runs that keep the dataset's distribution give the figure every image, not only test ones."""
    import json

    from biqa_bench.evaluation.ranges import quality_counts
    from biqa_bench.report import figures as F

    root = make_results(tmp_path / "results", splits=2, cross=False)
    whole = np.concatenate([np.full(30, 10.0), np.full(70, 80.0)])  # 100 images, 30 below 25
    for folder in root.rglob("manifest.json"):
        manifest = json.loads(folder.read_text())
        if manifest["train_dataset"] == "mixed":
            folder.write_text(json.dumps({**manifest, "quality_histogram": quality_counts(whole)}))
    result = build_report(root, root / "report")
    assert "For synthetic only the test images" in result.tex.read_text()
    test = pd.concat(pd.read_csv(p) for p in root.rglob("predictions.csv"))
    figure = F.quality_histogram_figure(test, 25.0, counts={"mixed": quality_counts(whole)})
    titles = {ax.get_title().split("\n")[0]: ax.get_title() for ax in figure.axes if ax.get_visible()}
    assert titles["mixed"].endswith("100 images, 30 low quality (30.0%)")
    n_synthetic = test[test["dataset"] == "synthetic"]["item_id"].nunique()
    assert f"{n_synthetic} test images" in titles["synthetic"]
    mixed_axes = next(ax for ax in figure.axes if ax.get_title().startswith("mixed"))
    # the two hist() calls: the images at or above the threshold, then the low-quality ones
    assert [sum(bar.get_height() for bar in c) for c in mixed_axes.containers] == [70, 30]


def test_per_image_f_test_matrix_is_the_f_test_of_the_first_split(built):
    """The report's per-image table: scipy's F distribution on the variances of each method's
    residuals after its own logistic, computed here from the runs' predictions of split 0."""
    from scipy import stats

    from biqa_bench.evaluation.logistic import fit_logistic
    from biqa_bench.store import load_predictions

    root, result = built
    test = load_predictions(root)
    test = test[(test["dataset"] == "mixed") & (test["split"] == 0) & (test["subset"] == "test")]
    variances = {}
    for method, group in test.groupby("method"):
        group = group.sort_values("item_id")
        q, p = group["quality"].to_numpy(float), group["prediction"].to_numpy(float)
        variances[method] = (np.var(q - fit_logistic(p, q).predict(p), ddof=1), len(q))
    (va, n), (vb, _) = variances["good_net"], variances["noisy&co"]
    ratio = va / vb
    p_value = 2 * min(stats.f.cdf(ratio, n - 1, n - 1), stats.f.sf(ratio, n - 1, n - 1))
    assert va < vb and p_value < 0.05  # good_net's noise is a quarter of noisy&co's
    table = pd.read_csv(result.tables["significance_ftest_mixed"][2], index_col=0)
    assert table.loc["good_net", "noisy&co"] == 1 and table.loc["noisy&co", "good_net"] == -1
    pvalues = pd.read_csv(root / "report" / "records" / "significance_ftest_pvalues_mixed.csv", index_col=0)
    assert pvalues.loc["good_net", "noisy&co"] == pytest.approx(p_value, rel=1e-9)
    assert "split 0 (60 images)" in result.tables["significance_ftest_mixed"][1].read_text()


def test_f_test_matrix_decisions_follow_the_p_values():
    from biqa_bench.evaluation.significance import f_test_matrix, residual_f_test, mapped_residuals

    rng = np.random.default_rng(3)
    truth = rng.uniform(0, 100, 120)
    predictions = {"a": truth + rng.normal(0, 5, 120), "b": truth + rng.normal(0, 5.2, 120), "c": truth + rng.normal(0, 25, 120)}
    decision, pvalue = f_test_matrix(truth, predictions, alpha=0.05)
    assert list(decision.index) == ["a", "b", "c"] and (decision.to_numpy() == -decision.to_numpy().T).all()
    assert decision.loc["a", "b"] == 0 and decision.loc["a", "c"] == 1 and decision.loc["c", "b"] == -1
    expected = residual_f_test(mapped_residuals(truth, predictions["a"]), mapped_residuals(truth, predictions["b"])).pvalue
    assert pvalue.loc["a", "b"] == pvalue.loc["b", "a"] == pytest.approx(expected) and np.isnan(pvalue.loc["a", "a"])


def test_one_split_still_gets_the_per_image_f_test(tmp_path):
    root = make_results(tmp_path / "results", splits=1, cross=False)
    result = build_report(root, root / "report")
    assert "significance_ftest_mixed" in result.tables and "significance_mixed" not in result.tables
    assert "two or more splits" in result.skipped["significance on mixed"]
    assert "Statistical significance" in result.sections


def test_protocol_section_states_what_each_method_ran_with(tmp_path):
    from biqa_bench.report.build import protocol_records, protocol_text

    frame = pd.DataFrame({"item_id": ["a", "b"], "dataset": "d", "split": 0, "subset": "test",
                          "quality": [10.0, 90.0], "score": [1.0, 9.0], "prediction": [0.1, 0.9]})
    versions = {"biqa-bench": "0.1.0", "torch": "2.14.1", "python": "3.11.7"}
    for split in (0, 1):
        write_run(run_dir(tmp_path, "d", "net", split), frame.assign(split=split), {
            "kind": "run", "method": "net", "train_dataset": "d", "split": split, "split_hash": "abc123", "seed": 7,
            "device": "cuda", "params": {"recipe": "paper"}, "resolved_params": {"recipe": "paper", "flip": None},
            "weights_sha256": "0123456789abcdef" * 4, "versions": versions})
    write_run(run_dir(tmp_path, "d", "ext", 0), frame, {
        "kind": "run", "method": "ext", "train_dataset": "d", "split": 0, "split_hash": "abc123", "seed": 0,
        "params": {"imported_from": "/x/preds.csv"}, "versions": versions})
    records = protocol_records(tmp_path)
    assert records[["method", "runs", "split_hash", "seed", "device"]].values.tolist() == [
        ["ext", 1, "abc123", "0", "None"], ["net", 2, "abc123", "7", "cuda"]]
    assert records.loc[1, "resolved_params"] == '{"flip": null, "recipe": "paper"}'
    text = protocol_text(records)
    assert ("ext on d: 1 split(s) of split file abc123, run seed 0; predictions imported from /x/preds.csv." in text)
    assert ("net on d: 2 split(s) of split file abc123, run seed 7, device cuda; parameters given: recipe=paper; "
            "weights SHA-256 0123456789ab." in text)
    assert "Software: biqa-bench 0.1.0, torch 2.14.1, python 3.11.7." in text
    # runs of one pair that differ are all listed
    write_run(run_dir(tmp_path, "d", "net", 2), frame.assign(split=2), {
        "kind": "run", "method": "net", "train_dataset": "d", "split": 2, "split_hash": "other", "seed": 7})
    assert protocol_records(tmp_path).loc[1, "split_hash"] == "abc123 | other"
    assert protocol_records(tmp_path).loc[1, "differs"] == ""  # split 2 recorded no resolved parameters
    # a default that changed between runs (a results folder resumed with a newer version) is named
    write_run(run_dir(tmp_path, "d", "net", 3), frame.assign(split=3), {
        "kind": "run", "method": "net", "train_dataset": "d", "split": 3, "split_hash": "abc123", "seed": 7,
        "resolved_params": {"recipe": "paper", "flip": False}})
    assert protocol_records(tmp_path).loc[1, "differs"] == "flip"
    result = build_report(tmp_path, tmp_path / "report", pdf=False)
    assert "Caution: the splits of net on d ran with different flip (records/protocol.csv)" in result.markdown.read_text()
    assert 'parameters given: {"recipe": "paper"} | {}' in protocol_text(protocol_records(tmp_path))  # as recorded
