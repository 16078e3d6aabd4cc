"""Report tables: content against independent computations, marking, ties, escaping, rendering."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from biqa_bench.evaluation.metrics import score_predictions
from biqa_bench.report import tables as T
from biqa_bench.report.latex import PREAMBLE, latex_escape


def _records(seed=0, methods=("alpha", "beta", "gamma"), datasets=(("small", 40), ("large", 120)), splits=3):
    """Per-split records computed with the project's metrics on random data."""
    rng = np.random.default_rng(seed)
    rows = []
    for noise, method in zip((5.0, 15.0, 30.0, 45.0), methods):
        for dataset, n in datasets:
            for split in range(splits):
                quality = rng.uniform(0, 100, n)
                prediction = quality + rng.normal(0, noise, n)
                scores = score_predictions(quality, prediction)
                rows.append(scores.as_record(method=method, dataset=dataset, split=split, subset="test"))
                rows[-1]["truth"], rows[-1]["pred"] = quality, prediction
    return pd.DataFrame(rows)


def _column(table, group, label):
    return table.values[(group, label)]


def test_overall_values_match_scipy_and_weighted_average_by_hand():
    records = _records()
    table = T.overall_table(records.drop(columns=["truth", "pred"]), ("srocc", "plcc"), "mean", 3)
    for method in ("alpha", "beta", "gamma"):
        for dataset in ("small", "large"):
            rows = records[(records["method"] == method) & (records["dataset"] == dataset)]
            expected = np.mean([stats.spearmanr(t, p).statistic for t, p in zip(rows["truth"], rows["pred"])])
            assert _column(table, dataset, "SROCC")[method] == pytest.approx(expected, abs=1e-12)
        # weighted by test items: (40 * small + 120 * large) / 160
        small, large = _column(table, "small", "SROCC")[method], _column(table, "large", "SROCC")[method]
        assert _column(table, T.WEIGHTED, "SROCC")[method] == pytest.approx((40 * small + 120 * large) / 160)
    assert "Mean over 3 splits" in table.caption
    assert "large 120" in table.caption and "small 40" in table.caption


def test_median_aggregate_and_caption():
    records = _records(seed=3).drop(columns=["truth", "pred"])
    table = T.overall_table(records, ("plcc",), "median", 3)
    rows = records[(records["method"] == "beta") & (records["dataset"] == "small")]
    assert _column(table, "small", "PLCC")["beta"] == pytest.approx(np.median(rows["plcc"]))
    assert table.caption.startswith("PLCC") and "Median over 3 splits" in table.caption


def test_bold_is_column_maximum_and_underline_second():
    records = _records(seed=1).drop(columns=["truth", "pred"])
    table = T.overall_table(records, ("srocc", "plcc"), "mean", 3)
    ranks = table.ranks()
    for column in table.values.columns:
        values = table.values[column].round(3)
        assert values[ranks[column] == 1].tolist() == [values.max()]
        second = sorted(values.unique())[-2]
        assert values[ranks[column] == 2].tolist() == [second]
    latex = T.to_latex(table)
    best = table.values[("large", "SROCC")].round(3).max()
    assert f"\\textbf{{{best:.3f}}}" in latex


def test_rmse_lower_is_best():
    records = _records(seed=2).drop(columns=["truth", "pred"])
    table = T.overall_table(records, ("rmse",), "mean", 3)
    ranks = table.ranks()
    column = ("small", "RMSE")
    assert table.values[column][ranks[column] == 1].round(3).tolist() == [table.values[column].round(3).min()]


def _table(values, decimals=3, better="higher"):
    frame = pd.DataFrame({("d", "SROCC"): values}, index=[f"m{i}" for i in range(len(values))])
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    return T.Table("t", "t", "caption", frame, {("d", "SROCC"): better}, decimals)


def test_ties_are_marked_alike():
    # two tied for best: both bold, nobody second
    ranks = _table([0.9, 0.9, 0.8]).ranks()[("d", "SROCC")].tolist()
    assert ranks == [1, 1, 0]
    # one best, two tied for second: both underlined
    ranks = _table([0.95, 0.9, 0.9, 0.1]).ranks()[("d", "SROCC")].tolist()
    assert ranks == [1, 2, 2, 0]
    # ties are judged on the printed value: 0.9124 and 0.9121 both print 0.912
    ranks = _table([0.9124, 0.9121, 0.5]).ranks()[("d", "SROCC")].tolist()
    assert ranks == [1, 1, 0]
    # with 4 decimals they differ
    ranks = _table([0.9124, 0.9121, 0.5], decimals=4).ranks()[("d", "SROCC")].tolist()
    assert ranks == [1, 2, 0]
    # lower is better
    ranks = _table([3.0, 1.0, 2.0], better="lower").ranks()[("d", "SROCC")].tolist()
    assert ranks == [0, 1, 2]
    # two values: the better is bold, the other (last) is not underlined; one value: unmarked
    assert _table([0.5, 0.6]).ranks()[("d", "SROCC")].tolist() == [0, 1]
    assert _table([0.5, float("nan")]).ranks()[("d", "SROCC")].tolist() == [0, 0]


def test_undefined_prints_dash_and_is_never_marked():
    table = _table([0.7, float("nan"), 0.6, 0.5])
    assert table.ranks()[("d", "SROCC")].tolist() == [1, 0, 2, 0]
    assert "| m1 | \u2013 |" in T.to_markdown(table)
    assert re.search(r"m1 & -- \\\\", T.to_latex(table))
    assert "m1," in T.to_csv(table) and "m1,\n" in T.to_csv(table)


def test_decimals_and_negative_numbers():
    table = _table([0.123456, -0.5, -0.7], decimals=2)
    latex = T.to_latex(table)
    assert "\\textbf{0.12}" in latex and "\\underline{$-$0.50}" in latex
    assert "**0.12**" in T.to_markdown(table) and "<ins>-0.50</ins>" in T.to_markdown(table)
    assert "0.123456" in T.to_csv(table)  # the CSV keeps full precision


def test_latex_escaping_of_specials():
    assert latex_escape("A&B_c%d#e$f{g}h~i^j\\k") == (
        r"A\&B\_c\%d\#e\$f\{g\}h\textasciitilde{}i\textasciicircum{}j\textbackslash{}k"
    )
    records = _records(methods=("net_v2&co", "50%#1", "x{y}")).drop(columns=["truth", "pred"])
    records["dataset"] = records["dataset"].map({"small": "my_set#1", "large": "big&set"})
    latex = T.to_latex(T.overall_table(records))
    assert r"net\_v2\&co" in latex and r"50\%\#1" in latex and r"x\{y\}" in latex
    assert r"my\_set\#1" in latex and r"big\&set" in latex
    body = latex.split("\\midrule")[1]
    assert "net_v2" not in body and "50%" not in body


def test_markdown_escapes_pipes_and_underscores():
    records = _records(methods=("a|b", "c_d", "e*f")).drop(columns=["truth", "pred"])
    text = T.to_markdown(T.overall_table(records))
    assert r"a\|b" in text and r"c\_d" in text and r"e\*f" in text


def test_partial_figures_carry_a_dagger():
    records = _records().drop(columns=["truth", "pred"])
    records["status"] = "ok"
    records.loc[(records["method"] == "beta") & (records["dataset"] == "small") & (records["split"] == 0), "status"] = "undefined"
    table = T.overall_table(records)
    assert table.partial.loc["beta", ("small", "SROCC")]
    assert not table.partial.loc["alpha", ("small", "SROCC")]
    rows = records[(records["method"] == "beta") & (records["dataset"] == "small") & (records["split"] > 0)]
    assert table.values.loc["beta", ("small", "SROCC")] == pytest.approx(rows["srocc"].mean())
    assert "\u2020" in T.to_markdown(table) and "$^{\\dagger}$" in T.to_latex(table)


def test_a_mean_over_fewer_splits_is_never_marked_best():
    records = _records().drop(columns=["truth", "pred"])
    records["status"] = "ok"
    # gamma (the noisiest) gets the best small-set SROCC, but on one split of three only
    gamma_small = (records["method"] == "gamma") & (records["dataset"] == "small")
    records.loc[gamma_small & (records["split"] == 0), "srocc"] = 0.999
    records.loc[gamma_small & (records["split"] > 0), "status"] = "undefined"
    table = T.overall_table(records)
    column = table.values.columns.get_loc(("small", "SROCC"))
    assert table.partial.loc["gamma", ("small", "SROCC")]
    assert table.values.loc["gamma", ("small", "SROCC")] == pytest.approx(0.999)
    ranks = table.ranks().iloc[:, column]
    assert ranks["gamma"] == 0 and ranks["alpha"] == 1  # the best of the full-split means
    assert ranks["beta"] == 0  # two values compete: only the best is marked


def test_weighted_average_skips_missing_datasets():
    values = pd.DataFrame({"a": [0.5, np.nan], "b": [0.8, 0.6]}, index=["m1", "m2"])
    average, incomplete = T.weighted_average(values, pd.Series({"a": 100.0, "b": 300.0}))
    assert average["m1"] == pytest.approx((0.5 * 100 + 0.8 * 300) / 400)
    assert average["m2"] == pytest.approx(0.6)
    assert incomplete.tolist() == [False, True]


def test_ranges_table_layout_and_undefined():
    rows = []
    for method, base in (("m1", 0.5), ("m2", 0.7)):
        for split in range(2):
            for k, name in enumerate(["Bad", "Poor", "Fair", "Good", "Excellent"]):
                undefined = name == "Bad"
                rows.append({"method": method, "train_dataset": "koniq", "dataset": "koniq", "split": split,
                             "subset": name, "n": 5 if undefined else 50,
                             "srocc": np.nan if undefined else base + 0.01 * k + 0.01 * split,
                             "krocc": np.nan, "plcc": np.nan if undefined else base, "plcc_raw": np.nan,
                             "rmse": np.nan, "status": "undefined" if undefined else "ok",
                             "reason": "only 5 items" if undefined else ""})
    table = T.ranges_table(pd.DataFrame(rows), "koniq")
    assert list(table.values.columns)[:5] == [("SROCC", r) for r in ["Excellent", "Good", "Fair", "Poor", "Bad"]]
    assert np.isnan(table.values.loc["m1", ("SROCC", "Bad")])
    assert table.values.loc["m2", ("SROCC", "Good")] == pytest.approx(0.7 + 0.03 + 0.005)
    assert table.ranks().loc["m2", ("SROCC", "Good")] == 1
    assert "Excellent 50" in table.caption


def test_cross_table_pairs_and_weighted_average():
    rows = []
    for method, v in (("m1", 0.6), ("m2", 0.8)):
        for test, n in (("b", 100), ("c", 300)):
            rows.append({"method": method, "train_dataset": "a", "dataset": test, "split": 0, "subset": "all",
                         "n": n, "srocc": v + (0.1 if test == "c" else 0.0), "plcc": v, "status": "ok"})
    table = T.cross_table(pd.DataFrame(rows), ("srocc",))
    assert ("a \u2192 b", "SROCC") in table.values.columns
    avg = table.values.loc["m2", ("a \u2192 weighted avg.", "SROCC")]
    assert avg == pytest.approx((0.8 * 100 + 0.9 * 300) / 400)
    assert "a $\\rightarrow$ b" in T.to_latex(table)


def test_significance_table_prints_integers():
    matrix = pd.DataFrame([[0, -1], [1, 0]], index=["x_1", "y"], columns=["x_1", "y"])
    table = T.significance_table(matrix, dataset="clive")
    latex = T.to_latex(table)
    assert r"x\_1 & 0 & $-$1 \\" in latex and "textbf" not in latex
    assert "x_1,0,-1" in T.to_csv(table)


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed (apt-get install texlive-latex-base texlive-latex-recommended)")
def test_table_with_nasty_names_compiles(tmp_path):
    records = _records(methods=("A&B", "c_d%", "e#f$~^\\{}")).drop(columns=["truth", "pred"])
    (tmp_path / "t.tex").write_text(T.to_latex(T.overall_table(records)))
    (tmp_path / "doc.tex").write_text(PREAMBLE + "\\begin{document}\n\\input{t}\n\\end{document}\n")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    assert proc.returncode == 0, proc.stdout.decode(errors="replace")[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000


def test_cross_pairs_table_has_pairs_as_rows_and_marks_each_pair():
    """REQA Table IV's layout: rows are pairs, methods across; the marks compare methods within a
    pair and metric, never across pairs or metrics."""
    figures = {  # (train, test) -> {method: srocc}; plcc = srocc - 0.1 except where stated
        ("clive", "bid"): {"pqr": 0.714, "dbcnn": 0.762, "reqa": 0.825},
        ("clive", "koniq"): {"pqr": 0.757, "dbcnn": 0.754, "reqa": 0.762},
        ("koniq", "clive"): {"pqr": 0.770, "dbcnn": 0.755, "reqa": 0.772},
    }
    rows = []
    for (train, test), by_method in figures.items():
        for method, value in by_method.items():
            for split, jitter in enumerate((-0.01, 0.01)):  # two splits: the mean is the figure
                plcc = 0.99 if (train, test, method) == ("clive", "koniq", "pqr") else value - 0.1
                rows.append({"method": method, "train_dataset": train, "dataset": test, "split": split, "subset": "all",
                             "n": 100, "srocc": value + jitter, "plcc": plcc + jitter, "status": "ok"})
    table = T.cross_pairs_table(pd.DataFrame(rows))
    assert list(table.values.index) == ["clive \u2192 bid", "clive \u2192 koniq", "koniq \u2192 clive"]
    assert list(table.values.columns) == [(g, m) for g in ("SROCC", "PLCC") for m in ("dbcnn", "pqr", "reqa")]
    for (train, test), by_method in figures.items():
        for method, value in by_method.items():
            assert table.values.loc[f"{train} \u2192 {test}", ("SROCC", method)] == pytest.approx(value)
    ranks = table.ranks()
    assert ranks.loc["clive \u2192 bid", ("SROCC", "reqa")] == 1 and ranks.loc["clive \u2192 bid", ("SROCC", "dbcnn")] == 2
    assert ranks.loc["clive \u2192 koniq", ("SROCC", "reqa")] == 1 and ranks.loc["clive \u2192 koniq", ("SROCC", "pqr")] == 2
    assert ranks.loc["koniq \u2192 clive", ("SROCC", "dbcnn")] == 0
    # PLCC is its own contest: pqr's 0.99 wins there although it is second on SROCC
    assert ranks.loc["clive \u2192 koniq", ("PLCC", "pqr")] == 1 and ranks.loc["clive \u2192 koniq", ("PLCC", "reqa")] == 2
    assert int((ranks == 1).sum().sum()) == 6  # one best per pair and metric
    latex = T.to_latex(table)
    assert "Training $\\rightarrow$ testing" in latex and "clive $\\rightarrow$ bid & \\underline{0.762} & 0.714 & \\textbf{0.825}" in latex
    markdown = T.to_markdown(table)
    assert "| clive → bid | <ins>0.762</ins> | 0.714 | **0.825** |" in markdown
