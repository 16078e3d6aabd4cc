"""The report's gMAD section: the aggressiveness / resistance table from the analysis files and
the pair figures, found below the results folder as `biqa demo` and `biqa gmad analyze` leave them."""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from biqa_bench.report.gmad import run_simulated
from biqa_bench.report.build import build_report, gmad_analyses

from test_report_build import make_results


def add_gmad(root, n=40, seed=0):
    """A simulated gMAD competition on a small image pool, written to ROOT/gmad as the demo does."""
    rng = np.random.default_rng(seed)
    pool = root / "pool"
    pool.mkdir()
    quality = rng.uniform(0, 100, n)
    ids, paths = [], []
    for j, q in enumerate(quality):
        image = np.full((24, 32, 3), int(2 * q), np.uint8)
        path = pool / f"p{j:03d}.png"
        Image.fromarray(image).save(path)
        ids.append(path.name)
        paths.append(str(path))
    scores = pd.concat([
        pd.DataFrame({"item_id": ids, "method": "good_net", "score": quality + rng.normal(0, 3, n)}),
        pd.DataFrame({"item_id": ids, "method": "noisy&co", "score": quality + rng.normal(0, 30, n)}),
    ], ignore_index=True)
    truth = pd.Series(quality, index=ids)
    items = pd.DataFrame({"item_id": ids, "path": paths, "quality": quality})
    return run_simulated(scores, truth, ["good_net", "noisy&co"], root / "gmad", pool_items=items, levels=4,
                         n_subjects=6, seed=seed, pool_name="toy-pool")


def test_gmad_section_table_and_figures(tmp_path):
    root = make_results(tmp_path / "results", cross=False)
    result_gmad = add_gmad(root)
    assert gmad_analyses(root) == [root / "gmad" / "analysis"]
    report = build_report(root, root / "report")
    assert "gMAD competition" in report.sections and "gMAD" not in report.skipped
    table = pd.read_csv(report.tables["gmad"][2], index_col=0)
    aggressiveness = result_gmad.aggressiveness
    assert table.loc["good_net", "Aggressiveness as attacker of noisy&co"] == aggressiveness.loc["good_net", "noisy&co"]
    assert table.loc["noisy&co", "Resistance as defender against good_net"] == result_gmad.resistance.loc["noisy&co", "good_net"]
    assert np.isnan(table.loc["good_net", "Aggressiveness as attacker of good_net"])  # nobody attacks itself
    assert table.loc["good_net", "Rank"] == 1
    figures = [stem for stem in report.figures if stem.startswith("gmad_")]
    assert len(figures) == 2 and all(report.figures[s][0].stat().st_size > 1000 for s in figures)
    markdown = report.markdown.read_text()
    assert "## gMAD competition" in markdown and "6 simulated observers" in markdown
    assert "pool toy-pool (40 images)" in markdown
    assert "with good_net defending and noisy&co attacking" in markdown  # the methods' names, not file names
    tex = report.tex.read_text()
    assert "\\input{tables/gmad}" in tex and "figures/gmad_good_net-vs-noisy_co.png" in tex
