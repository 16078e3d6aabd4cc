"""Writing the gMAD competition's folders and figures (the science is :mod:`biqa_bench.evaluation.gmad`).

Output of ``biqa gmad select`` (:func:`write_selection`)::

    DIR/pairs.csv          one row per (defender, attacker, level); status ok | empty
    DIR/pool_scores.csv    item_id, method, score: every method's score on the pool
    DIR/pool_items.csv     item_id, path (absolute), quality (empty for an unlabelled folder)
    DIR/selection.json     methods, pool, levels, tolerance, counts
    DIR/figures/<defender>-vs-<attacker>.png
    DIR/test_images/<pair_id>_1.<ext>, <pair_id>_2.<ext>, key.csv   (for a subjective test)

Output of ``biqa gmad analyze`` (:func:`write_analysis`): per_pair.csv, aggressiveness.csv,
resistance.csv, ranking.csv, gmad.json and, when the pool's images are known, figures with the
observers' verdict. :func:`run_simulated` is the whole competition with simulated observers
(``biqa demo``).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import AnalysisError
from ..evaluation import gmad
from ..store import atomic_write_csv, atomic_write_json

POOL_SCORES = "pool_scores.csv"
POOL_ITEMS = "pool_items.csv"


def pool_items_table(pool) -> pd.DataFrame:
    items = pool.with_abspaths()
    return pd.DataFrame({"item_id": items["item_id"].astype(str), "path": items["path"], "quality": items["quality"]})


def write_selection(
    scores: pd.DataFrame,
    methods: Sequence[str],
    out: Path,
    pool_items: pd.DataFrame | None = None,
    levels: int = gmad.DEFAULT_LEVELS,
    tolerance: float = gmad.DEFAULT_TOLERANCE,
    figures: bool = True,
    export: bool = True,
    pool_name: str = "",
    band: float | None = None,
) -> pd.DataFrame:
    """Select the pairs and write the ``select`` output folder; returns the pairs table.

    ``pool_items`` (item_id, path absolute, quality) enables the figures and the test folder.
    """
    out = Path(out)
    pairs = gmad.select_all(scores, methods, levels=levels, tolerance=tolerance, band=band)
    atomic_write_csv(out / "pairs.csv", pairs)
    # the pool is what every method scored: the level weights of `analyze` are shares of it
    common = set(gmad.common_pool(scores, list(methods)).index)
    kept = scores[scores["method"].isin(methods) & scores["item_id"].astype(str).isin(common)]
    atomic_write_csv(out / POOL_SCORES, kept[["item_id", "method", "score"]])
    if pool_items is not None:
        atomic_write_csv(out / POOL_ITEMS, pool_items)
        paths = dict(zip(pool_items["item_id"].astype(str), pool_items["path"]))
        if figures:
            pair_figures(pairs, paths, out / "figures")
        if export:
            export_pairs(pairs, paths, out / "test_images")
    atomic_write_json(
        out / "selection.json",
        {
            "methods": list(methods),
            "pool": pool_name,
            "pool_size": int(pairs["pool_size"].max()),
            "levels": int(levels),
            "tolerance_fraction_of_level": float(tolerance),
            "pairs": int((pairs["status"] == "ok").sum()),
            "empty_levels": int((pairs["status"] != "ok").sum()),
        },
    )
    return pairs


def run_simulated(
    scores: pd.DataFrame,
    truth: pd.Series,
    methods: Sequence[str],
    out: Path,
    pool_items: pd.DataFrame | None = None,
    levels: int = gmad.DEFAULT_LEVELS,
    tolerance: float = gmad.DEFAULT_TOLERANCE,
    n_subjects: int = 20,
    noise: float = 5.0,
    scale: str = "-100..100",
    seed: int = 0,
    pool_name: str = "",
) -> gmad.GmadResult:
    """The whole competition with simulated observers (what `biqa demo` runs).

    Writes ``out/pairs.csv`` (and figures, test images), ``out/judgments.csv`` and ``out/analysis/``.
    """
    out = Path(out)
    pairs = write_selection(scores, methods, out, pool_items, levels, tolerance, pool_name=pool_name)
    judgments = gmad.simulate_judgments(pairs, truth, n_subjects=n_subjects, noise=noise, seed=seed, scale=scale)
    atomic_write_csv(out / "judgments.csv", judgments)
    pool_scores = gmad.read_table(out / POOL_SCORES, "pool scores", ["item_id", "method", "score"])
    return write_analysis(pairs, judgments, out / "analysis", pool_scores, pool_items, scale=scale)


def sibling(pairs_path: Path, name: str) -> Path | None:
    candidate = Path(pairs_path).parent / name
    return candidate if candidate.is_file() else None


def write_analysis(
    pairs: pd.DataFrame,
    judgments: pd.DataFrame,
    out: Path,
    pool_scores: pd.DataFrame | None = None,
    pool_items: pd.DataFrame | None = None,
    scale: str | None = None,
    screen: bool | None = None,
) -> gmad.GmadResult:
    """Analyse and write the ``analyze`` output folder; returns the result."""
    out = Path(out)
    result = gmad.analyze(pairs, judgments, pool_scores, scale=scale, screen=screen)
    atomic_write_csv(out / "per_pair.csv", result.per_pair)
    atomic_write_csv(out / "aggressiveness.csv", result.aggressiveness.reset_index())
    atomic_write_csv(out / "resistance.csv", result.resistance.reset_index())
    atomic_write_csv(out / "ranking.csv", result.ranking)
    atomic_write_json(out / "gmad.json", result.to_dict())
    if pool_items is not None:
        paths = dict(zip(pool_items["item_id"].astype(str), pool_items["path"]))
        preferences = result.per_pair.set_index("pair_id")["mean"].to_dict()
        pair_figures(pairs, paths, out / "figures", preferences)
    return result


def _thumbnail(path: str | Path, max_side: int) -> np.ndarray:
    from ..images import read_image

    image = read_image(path)
    step = max(1, int(math.ceil(max(image.shape[:2]) / max_side)))
    return image[::step, ::step]


def pair_figure(
    pairs: pd.DataFrame,
    image_paths: Mapping[str, str | Path],
    out_path: str | Path,
    preferences: Mapping[str, float] | None = None,
    max_side: int = 384,
    dpi: int = 110,
) -> Path:
    """One PNG of the pairs of one (defender, attacker): a column per level, the attacker's best
    image on top, its worst below, each titled with both methods' scores.

    ``image_paths`` maps item id -> absolute path. ``preferences`` (pair id -> mean preference)
    adds the observers' verdict under each column.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if pairs[["defender", "attacker"]].drop_duplicates().shape[0] != 1:
        raise AnalysisError("pair_figure draws one (defender, attacker) at a time")
    pairs = pairs.sort_values("level").reset_index(drop=True)
    defender, attacker = pairs.loc[0, "defender"], pairs.loc[0, "attacker"]
    thumbnails = {
        str(item): _thumbnail(image_paths[str(item)], max_side)
        for item in pd.unique(gmad.ok_pairs(pairs)[["image_best", "image_worst"]].to_numpy().ravel())
    }
    # empty levels get a grey placeholder of the usual image shape, so all columns line up
    shape = next(iter(thumbnails.values())).shape[:2] if thumbnails else (3, 4)
    placeholder = np.full(shape + (3,), 236, dtype=np.uint8)
    n = len(pairs)
    fig, axes = plt.subplots(2, n, figsize=(2.6 * n + 1.0, 6.0), squeeze=False)
    for col, pair in pairs.iterrows():
        top, bottom = axes[0, col], axes[1, col]
        top.set_title(f"level {int(pair['level'])}\n{defender} \u2248 {pair['level_centre']:.3g}", fontsize=9)
        for ax in (top, bottom):
            ax.set_xticks([])
            ax.set_yticks([])
        if pair["status"] != "ok":
            for ax in (top, bottom):
                ax.imshow(placeholder)
                for spine in ax.spines.values():
                    spine.set_edgecolor("0.85")
            top.text(0.5, 0.5, "no pair", ha="center", va="center", fontsize=11, color="0.4", transform=top.transAxes)
            bottom.text(0.5, 0.5, _wrap(str(pair["reason"]), 30), ha="center", va="center", fontsize=6.5,
                        color="0.35", transform=bottom.transAxes)
            continue
        for ax, which in ((top, "best"), (bottom, "worst")):
            item = str(pair[f"image_{which}"])
            ax.imshow(thumbnails[item])
            label = f"{item}\n{attacker}: {pair[f'attacker_{which}']:.3g}   {defender}: {pair[f'defender_{which}']:.3g}"
            if which == "worst" and preferences is not None and np.isfinite(preferences.get(pair["pair_id"], np.nan)):
                label += f"\nobservers: {preferences[pair['pair_id']]:+.0f} (>0: top better)"
            ax.set_xlabel(label, fontsize=7.5)
            for spine in ax.spines.values():
                spine.set_edgecolor("tab:green" if which == "best" else "tab:red")
                spine.set_linewidth(2)
    fig.suptitle(f"gMAD: defender {defender} (rates each pair equal) vs attacker {attacker}", fontsize=11)
    fig.tight_layout(rect=(0.03, 0, 1, 0.95), h_pad=2.5)  # room for the top row's two-line labels
    for row, (which, colour) in enumerate((("best", "tab:green"), ("worst", "tab:red"))):
        box = axes[row, 0].get_position()
        fig.text(0.012, (box.y0 + box.y1) / 2, f"{attacker}: {which}", rotation=90, ha="center", va="center",
                 fontsize=9, color=colour, fontweight="bold")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=dpi)
    plt.close(fig)
    return out_path


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


def pair_figures(
    pairs: pd.DataFrame,
    image_paths: Mapping[str, str | Path],
    out_dir: str | Path,
    preferences: Mapping[str, float] | None = None,
) -> list[Path]:
    """:func:`pair_figure` for every (defender, attacker); files ``<defender>-vs-<attacker>.png``."""
    out_dir = Path(out_dir)
    written = []
    for (defender, attacker), group in pairs.groupby(["defender", "attacker"], sort=True):
        name = gmad.pair_id(defender, attacker, 0).rsplit("-L", 1)[0] + ".png"
        written.append(pair_figure(group, image_paths, out_dir / name, preferences))
    return written


def export_pairs(pairs: pd.DataFrame, image_paths: Mapping[str, str | Path], out_dir: str | Path) -> pd.DataFrame:
    """Copy the images of every pair into ``out_dir`` for a subjective test.

    Files are ``<pair_id>_1<ext>`` (the attacker's best, the *first* image of the judgment scale)
    and ``<pair_id>_2<ext>`` (its worst): real copies, not links. The test software should show
    the two in random left/right order and record the preference for image 1. Also writes
    ``key.csv`` (pair id, position, file, item id, source path) and returns it.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for pair in gmad.ok_pairs(pairs).itertuples(index=False):
        for position, item in ((1, pair.image_best), (2, pair.image_worst)):
            item = str(item)
            if item not in image_paths:
                raise AnalysisError(f"no image path for pool item '{item}' (pair {pair.pair_id}); pass the pool's items")
            source = Path(image_paths[item])
            if not source.is_file():
                raise AnalysisError(f"{source}: image of pool item '{item}' not found; check the pool's root folder")
            target = out_dir / f"{pair.pair_id}_{position}{source.suffix.lower()}"
            shutil.copyfile(source, target)  # follows links: the folder holds plain files
            rows.append({"pair_id": pair.pair_id, "position": position, "file": target.name,
                         "item_id": item, "source": str(source)})
    key = pd.DataFrame(rows, columns=["pair_id", "position", "file", "item_id", "source"])
    atomic_write_csv(out_dir / "key.csv", key)
    return key
