"""Report layout: figures with the text (narrow ones two to a row), tables and figures in the
order they were added, one order of the ACR ranges, distinct significance headings, the
quantile low-quality rule, and `--help` without a type beside plain flags."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from biqa_bench.cli import main
from biqa_bench.evaluation.ranges import range_records
from biqa_bench.report import figures as F
from biqa_bench.report import tables as T
from biqa_bench.report.build import _Builder, _low_quality_section
from biqa_bench.report.latex import HALF_WIDTH_IN, Section, figure_rows, natural_width, report_document

from test_report_build import make_results


def png(path, inches: float, dpi: int = 100):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (int(inches * dpi), 50)).save(path, dpi=(dpi, dpi))
    return path


def test_narrow_figures_share_a_row_and_wide_ones_stand_alone(tmp_path):
    png(tmp_path / "figures" / "a.png", 3.0)
    png(tmp_path / "figures" / "b.png", 3.5)
    png(tmp_path / "figures" / "c.png", 6.3)
    png(tmp_path / "figures" / "d.png", 2.0)
    assert natural_width(tmp_path / "figures" / "a.pdf") == pytest.approx(3.0, rel=1e-3)  # read from the PNG beside the PDF
    assert natural_width(tmp_path / "figures" / "none.pdf") is None
    figures = [(f"figures/{name}.pdf", name) for name in "abcd"]
    rows = figure_rows(figures, tmp_path)
    assert [[caption for _, caption in row] for row in rows] == [["a", "b"], ["c"], ["d"]]
    assert 3.5 <= HALF_WIDTH_IN < 6.3
    assert figure_rows(figures) == [[f] for f in figures]  # sizes unknown: one per row


def test_sections_keep_the_order_of_tables_and_figures_and_run_on(tmp_path):
    section = Section("Ranges", "text")
    section.add_table("ranges_a")
    section.add_figure("figures/ranges_a.pdf", "range figure a")
    section.add_table("ranges_b")
    section.add_figure("figures/ranges_b.pdf", "range figure b")
    tex = report_document("R", [section, Section("Next")], base=tmp_path)
    order = [tex.index(s) for s in ("tables/ranges_a", "range figure a", "tables/ranges_b", "range figure b")]
    assert order == sorted(order)
    assert "\\clearpage" not in tex  # sections run on; figures stay in place ([H])
    assert "\\begin{figure}[H]" in tex and "\\fitgraphics{figures/ranges_a.pdf}" in tex
    legacy = Section("Old")  # filled directly: tables first, then figures
    legacy.tables.append("t")
    legacy.figures.append(("figures/f.pdf", "f"))
    assert legacy.blocks() == [("table", ["t"]), ("figure", [("figures/f.pdf", "f")])]


def test_range_tables_and_figures_use_one_order():
    rng = np.random.default_rng(0)
    quality = rng.uniform(0, 100, 400)
    predictions = pd.DataFrame({"method": "m", "dataset": "toy", "split": 0, "quality": quality,
                                "prediction": quality + rng.normal(0, 10, 400)})
    records = range_records(predictions)
    table = T.ranges_table(records, "toy", ("srocc",))
    table_order = [label for _, label in table.values.columns]
    fig = F.range_bars_figure(records, "toy")
    figure_order = [tick.get_text().split("\n")[0] for tick in fig.axes[0].get_xticklabels()]
    assert table_order == figure_order == ["Excellent", "Good", "Fair", "Poor", "Bad"]


def test_significance_tables_of_two_metrics_have_their_own_heading():
    matrix = pd.DataFrame([[0, 1], [-1, 0]], index=["a", "b"], columns=["a", "b"])
    srocc = T.significance_table(matrix, "srocc", "toy")
    plcc = T.significance_table(matrix, "plcc", "toy")
    assert srocc.title == "SROCC significance on toy" and plcc.title == "PLCC significance on toy"


def test_quantile_rule_gives_the_low_quality_table_where_the_nominal_one_has_too_few(tmp_path):
    root = make_results(tmp_path / "res", cross=False)
    from biqa_bench.store import load_predictions

    test = load_predictions(root)
    test = test[test["subset"] == "test"]
    test = test.assign(quality=50 + test["quality"] / 2)  # no image below 25: nominal rule is empty
    nominal = _Builder(tmp_path / "nominal", 3, "mean")
    _low_quality_section(nominal, test, root, "nominal", 10)
    assert "low-quality table" in nominal.skipped and nominal.sections[0].tables == []
    assert "so there is no table" in "".join(nominal.md_parts)  # said in the Markdown too
    quantile = _Builder(tmp_path / "quantile", 3, "mean")
    _low_quality_section(quantile, test, root, "quantile", 10)
    assert quantile.skipped == {} and quantile.sections[0].tables == ["low_quality"]
    markdown = "".join(quantile.md_parts)
    assert "lowest quarter of each test split" in markdown
    records = pd.read_csv(tmp_path / "quantile" / "records" / "low_quality.csv")
    # a quarter of each split's test items (ties at the cut-off included)
    expected = test.groupby(["method", "dataset", "split"])["quality"].apply(lambda q: int((q <= q.quantile(0.25)).sum()))
    got = records.set_index(["method", "dataset", "split"])["n"]
    assert got.sort_index().tolist() == expected.sort_index().tolist()


def test_help_shows_no_type_beside_plain_flags(capsys):
    for command in (["eval", "--help"], ["demo", "--help"], ["train", "--help"]):
        assert main(command) == 0
        out = capsys.readouterr().out
        assert "<bool>" not in out
    assert main(["eval", "--help"]) == 0
    assert "<int>" in capsys.readouterr().out  # options that take a value keep theirs


def test_help_reflows_paragraphs_but_keeps_examples_and_brackets_on_their_lines(capsys):
    from biqa_bench.cli import reflow_paragraph

    assert reflow_paragraph("one line\n    and its rest\nExample: a\nExample: b\n- item\n2. step") == (
        "one line and its rest\nExample: a\nExample: b\n- item\n2. step")
    assert reflow_paragraph("a figure of\n0.912 and a year\n2026 stay in the sentence") == (
        "a figure of 0.912 and a year 2026 stay in the sentence")
    assert main(["report", "--help"]) == 0
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    # the second paragraph wraps at the terminal, not at the docstring's source breaks
    assert "layouts of the" not in lines and "cross-dataset" not in lines  # short stubs of 95-column lines
    assert any("[low, high]" in line for line in lines)  # not eaten as Rich markup
    assert sum(line.startswith("Example: biqa report") for line in lines) == 2
