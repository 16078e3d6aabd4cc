"""Report figures with matplotlib (Agg backend), saved as PNG and PDF.

Each function takes tidy tables and returns a :class:`matplotlib.figure.Figure`;
:func:`save_figure` writes it. All use the Okabe-Ito palette (distinguishable with the common
colour-vision deficiencies and in grey-scale print together with the hatches/markers), labelled
axes with their units and a legend.

* :func:`scatter_figure`        -- prediction against ground truth with the fitted logistic (IEIT Fig. 8)
* :func:`range_bars_figure`     -- SROCC (or another metric) per ACR range and method
* :func:`quality_histogram_figure` -- ground-truth quality with the low-quality region shaded (IEIT Fig. 4)
* :func:`class_difference_figure`, :func:`absolute_deviation_figure` -- REQA Figs 6 and 7
* :func:`significance_figure`   -- the 1 / 0 / -1 matrix as a heat map
* :func:`range_effect_figure`   -- the range-effect index per dataset and method with its interval
* :func:`krasula_roc_figure`    -- the ROC curves of the Krasula analysis
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display needed, same output everywhere

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import BoundaryNorm, ListedColormap  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from ..evaluation.logistic import fit_logistic  # noqa: E402
from ..evaluation.metrics import plcc, srocc  # noqa: E402
from ..store import split_order  # noqa: E402
from .latex import file_stem  # noqa: E402
from .tables import RANGE_ORDER  # noqa: E402

# Okabe & Ito (2008), ordered for contrast on white; yellow last (weak on white paper).
OKABE_ITO = ["#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#000000", "#F0E442"]
HATCHES = ["", "//", "..", "xx", "\\\\", "--", "oo", "++"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
LINESTYLES = ["-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)), "-", "--"]
RANGE_LIMITS = {"Bad": "[0, 20)", "Poor": "[20, 40)", "Fair": "[40, 60)", "Good": "[60, 80)", "Excellent": "[80, 100]"}
FIG_WIDTH = 6.3  # inches: the text width of an A4/letter page with 2 cm margins, so print size = design size
QUALITY_LABEL = "Ground-truth quality (0\u2013100, higher is better)"

STYLE = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "pdf.fonttype": 42,  # embed TrueType: text stays text in the PDF
    "savefig.bbox": "tight",
}


def colour(i: int) -> str:
    return OKABE_ITO[i % len(OKABE_ITO)]


def save_figure(fig, out_dir: Path, stem: str, dpi: int = 200) -> list[Path]:
    """Write ``<stem>.png`` and ``<stem>.pdf`` into ``out_dir`` and close the figure."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = file_stem(stem)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"]
    with plt.rc_context(STYLE):
        fig.savefig(paths[0], dpi=dpi)
        fig.savefig(paths[1])
    plt.close(fig)
    return paths


def _test_rows(predictions: pd.DataFrame) -> pd.DataFrame:
    frame = predictions
    if "subset" in frame.columns and (frame["subset"] == "test").any():
        frame = frame[frame["subset"] == "test"]
    if "train_dataset" in frame.columns:
        frame = frame[frame["train_dataset"].fillna(frame["dataset"]) == frame["dataset"]]
    return frame


# --------------------------------------------------------------------------- scatter


def scatter_figure(predictions: pd.DataFrame, split=None, max_points: int = 5000, seed: int = 0,
                   panel_size: float | None = None):
    """Grid of scatter plots (rows: methods, columns: datasets) of each method's prediction
    against the ground-truth quality on one test split, with the 4-parameter logistic fitted
    on that split and SROCC/PLCC in the corner (IEIT Fig. 8).

    ``split`` defaults to the lowest split index present. Panels with more than ``max_points``
    items show a seeded random sample of them (the curve and figures use all items).
    """
    from matplotlib.ticker import MaxNLocator

    frame = _test_rows(predictions)
    if split is None:
        split = sorted(frame["split"].unique(), key=split_order)[0]
    frame = frame[frame["split"] == split]
    methods = sorted(frame["method"].unique(), key=str)
    datasets = sorted(frame["dataset"].unique(), key=str)
    rng = np.random.default_rng(seed)
    if panel_size is None:  # fit a page: about 6.3 in wide and 8.4 in tall
        panel_size = max(1.1, min(2.2, 5.8 / len(datasets), 7.8 / len(methods)))
    small = panel_size < 1.8
    with plt.rc_context({**STYLE, **({"xtick.labelsize": 6.5, "ytick.labelsize": 6.5} if small else {})}):
        fig, axes = plt.subplots(len(methods), len(datasets), squeeze=False, layout="constrained",
                                 figsize=(panel_size * len(datasets) + 0.5, panel_size * len(methods) + 0.7))
        for i, method in enumerate(methods):
            for j, dataset in enumerate(datasets):
                ax = axes[i, j]
                group = frame[(frame["method"] == method) & (frame["dataset"] == dataset)]
                if i == 0:
                    n_items = int(frame[frame["dataset"] == dataset].groupby("method").size().max())
                    ax.set_title(f"{dataset}\n(n = {n_items})")
                if j == 0:
                    ax.set_ylabel(method, fontweight="bold")
                ax.xaxis.set_major_locator(MaxNLocator(3 if small else 4))
                ax.yaxis.set_major_locator(MaxNLocator(3 if small else 5))
                ax.set_ylim(-3, 103)
                if group.empty:
                    ax.text(0.5, 0.5, "no predictions", ha="center", va="center", transform=ax.transAxes, fontsize=7)
                    ax.set_xticks([])
                    continue
                x = group["prediction"].to_numpy(float)
                y = group["quality"].to_numpy(float)
                shown = np.arange(len(x))
                if len(x) > max_points:
                    shown = rng.choice(len(x), size=max_points, replace=False)
                ax.scatter(x[shown], y[shown], s=4 if small else 6, alpha=0.45, color=colour(0), linewidths=0,
                           label="test image")
                fit = fit_logistic(x, y)
                grid = np.linspace(np.min(x), np.max(x), 200)
                label = ("fitted 4-parameter logistic" if fit.success else "flat logistic (PLCC not defined)" if fit.flat
                         else "linear fit (logistic failed)")
                ax.plot(grid, fit.predict(grid), color=colour(1), linewidth=1.4, label=label)
                mapped = fit.predict(x)
                ax.text(0.03, 0.97, f"SROCC {srocc(y, x):.3f}\nPLCC {plcc(y, mapped):.3f}",
                        transform=ax.transAxes, va="top", ha="left", fontsize=6 if small else 7,
                        bbox=dict(boxstyle="round,pad=0.2", facecolor="white", edgecolor="none", alpha=0.8))
        fig.supxlabel("Prediction (each method's own scale)", fontsize=STYLE["axes.labelsize"])
        fig.supylabel("Ground-truth quality (0\u2013100)", fontsize=STYLE["axes.labelsize"])
        handles, labels = axes[0, 0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="outside upper center", ncol=len(handles), frameon=False,
                       markerscale=2.5)
    return fig


# --------------------------------------------------------------------------- ranges


def range_bars_figure(range_records: pd.DataFrame, dataset: str, metric: str = "srocc", aggregate: str = "mean"):
    """Grouped bars: one group per ACR range (Excellent .. Bad, the order of the range tables),
    one bar per method, the
    ``aggregate`` over splits with the standard deviation as error bar; 'n/d' marks a range where
    the figure is not defined."""
    frame = range_records[range_records["dataset"] == dataset].copy()
    if "train_dataset" in frame.columns:
        frame = frame[frame["train_dataset"].fillna(frame["dataset"]) == frame["dataset"]]
    if "status" in frame.columns:
        frame.loc[frame["status"].astype(str) == "undefined", metric] = np.nan
    methods = sorted(frame["method"].unique(), key=str)
    ranges = [r for r in RANGE_ORDER if r in set(frame["subset"])]  # the tables' order (REQA Table I)
    label = {"srocc": "SROCC", "plcc": "PLCC", "krocc": "KROCC", "rmse": "RMSE (quality points)"}.get(metric, metric)
    width = 0.8 / max(len(methods), 1)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(FIG_WIDTH, 3.0))
        low = 0.0
        for k, method in enumerate(methods):
            centres, heights, errors = [], [], []
            for r_index, name in enumerate(ranges):
                values = frame[(frame["method"] == method) & (frame["subset"] == name)][metric].astype(float).dropna()
                centre = r_index - 0.4 + width * (k + 0.5)
                if values.empty:
                    # x in data, y in axes units: the mark sits at the bottom whatever the limits
                    ax.text(centre, 0.03, "n/d", rotation=90, ha="center", va="bottom", fontsize=7, color="0.3",
                            transform=ax.get_xaxis_transform())
                    continue
                centres.append(centre)
                heights.append(float(getattr(values, aggregate)()))
                errors.append(float(values.std(ddof=1)) if len(values) > 1 else 0.0)
            if centres:
                ax.bar(centres, heights, width=width * 0.95, yerr=errors, capsize=2, color=colour(k),
                       hatch=HATCHES[k % len(HATCHES)], edgecolor="white", linewidth=0.5,
                       error_kw=dict(elinewidth=0.8, ecolor="0.2"), label=method)
                low = min(low, min(h - e for h, e in zip(heights, errors)))
        ax.axhline(0, color="0.3", linewidth=0.6)
        ax.set_xlim(-0.5, len(ranges) - 0.5)
        ax.set_xticks(range(len(ranges)))
        ax.set_xticklabels([f"{r}\n{RANGE_LIMITS[r]}" for r in ranges])
        ax.set_xlabel("ACR range of the ground-truth quality (0\u2013100 scale)")
        ax.set_ylabel(f"{label} ({aggregate} over splits)")
        if metric != "rmse":
            ax.set_ylim(min(-0.05, low - 0.05), 1.0)
        ax.set_title(f"{label} per quality range on {dataset}")
        if methods:
            ax.legend(title="Method", frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- quality histogram


def quality_histogram_figure(predictions: pd.DataFrame, low_quality_threshold: float = 25.0, bin_width: float = 5.0,
                             counts: Mapping[str, Sequence[int]] | None = None):
    """Histogram of the ground-truth quality of each dataset's images, the low-quality region
    (quality below the threshold) shaded and its bars in vermillion (IEIT Fig. 4). Up to three
    datasets per row.

    ``counts[dataset]`` (the 100 one-point bins of :func:`biqa_bench.evaluation.ranges.quality_counts`,
    kept in run manifests) gives the whole dataset; a dataset without it is drawn from the test
    items of ``predictions`` (each image counted once) and its title says so."""
    counts = counts or {}
    keys = ["dataset", "item_id"] if "item_id" in predictions.columns else ["dataset", "quality"]
    items = predictions.drop_duplicates(keys)
    datasets = sorted(items["dataset"].unique(), key=str)
    bins = np.union1d(np.arange(0.0, 100.0 + bin_width / 2, bin_width), [low_quality_threshold])
    n_cols = min(3, len(datasets))
    n_rows = int(np.ceil(len(datasets) / n_cols))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(n_rows, n_cols, squeeze=False, figsize=(FIG_WIDTH, 2.5 * n_rows + 0.4))
        for index, dataset in enumerate(datasets):
            ax = axes[index // n_cols, index % n_cols]
            if dataset in counts:  # one-point bins: draw their centres weighted by their counts
                values, weights, what = np.arange(100) + 0.5, np.asarray(counts[dataset], dtype=float), "images"
            else:
                values = np.clip(items[items["dataset"] == dataset]["quality"].to_numpy(float), 0.0, 100.0)
                weights, what = np.ones(len(values)), "test images"
            low = values < low_quality_threshold
            n, n_low = int(weights.sum()), int(weights[low].sum())
            ax.axvspan(0, low_quality_threshold, color=colour(1), alpha=0.12, linewidth=0)
            ax.hist(values[~low], bins=bins, weights=weights[~low], color=colour(0), edgecolor="white", linewidth=0.5,
                    label="images")
            ax.hist(values[low], bins=bins, weights=weights[low], color=colour(1), edgecolor="white", linewidth=0.5,
                    hatch="//", label=f"low-quality images (quality < {low_quality_threshold:g})")
            ax.axvline(low_quality_threshold, color=colour(1), linestyle="--", linewidth=1.0)
            share = 100.0 * n_low / n if n else 0.0
            ax.set_title(f"{dataset}\n{n} {what}, {n_low} low quality ({share:.1f}%)")
            ax.set_xlim(0, 100)
            if index // n_cols == n_rows - 1:
                ax.set_xlabel("Ground-truth quality (0\u2013100)")
            if index % n_cols == 0:
                ax.set_ylabel("Number of images")
        for index in range(len(datasets), n_rows * n_cols):
            axes[index // n_cols, index % n_cols].set_visible(False)
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=2, frameon=False, bbox_to_anchor=(0.5, 1.0))
        fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- deviation


def _grouped_bars(ax, table: pd.DataFrame, x_column: str, y_column: str, methods, positions):
    width = 0.8 / max(len(methods), 1)
    for k, method in enumerate(methods):
        rows = table[table["method"] == method].set_index(x_column)[y_column]
        heights = [float(rows.get(x, 0.0)) for x in positions]
        ax.bar(np.arange(len(positions)) - 0.4 + width * (k + 0.5), heights, width=width * 0.95,
               color=colour(k), hatch=HATCHES[k % len(HATCHES)], edgecolor="white", linewidth=0.5, label=method)


def class_difference_figure(table: pd.DataFrame, dataset: str):
    """REQA Fig. 6: share of test images per ACR-class difference (mapped prediction minus
    ground truth) per method, from :func:`biqa_bench.evaluation.deviation.class_difference_table`."""
    frame = table[table["dataset"] == dataset]
    if "train_dataset" in frame.columns:
        frame = frame[frame["train_dataset"].fillna(frame["dataset"]) == frame["dataset"]]
    frame = frame.assign(percent=100.0 * frame["fraction"].astype(float))
    methods = sorted(frame["method"].unique(), key=str)
    differences = sorted(frame["difference"].unique())
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(FIG_WIDTH, 2.8))
        _grouped_bars(ax, frame, "difference", "percent", methods, differences)
        ax.set_xticks(range(len(differences)))
        ax.set_xticklabels([f"{d:+d}".replace("-", "\u2212") if d else "0" for d in differences])
        ax.set_xlabel("ACR class of mapped prediction \u2212 ACR class of ground truth (classes)")
        ax.set_ylabel("Test images (%)")
        ax.set_ylim(0, 100)
        ax.set_title(f"Deviation in ACR classes on {dataset}")
        ax.legend(title="Method", frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.tight_layout()
    return fig


def absolute_deviation_figure(table: pd.DataFrame, dataset: str, coverage: float = 0.995):
    """REQA Fig. 7: share of test images per bin of |mapped prediction - quality| (points on the
    0-100 scale) per method, as step lines; the x axis stops where every method has
    ``coverage`` of its images."""
    frame = table[table["dataset"] == dataset]
    if "train_dataset" in frame.columns:
        frame = frame[frame["train_dataset"].fillna(frame["dataset"]) == frame["dataset"]]
    methods = sorted(frame["method"].unique(), key=str)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(FIG_WIDTH, 2.8))
        x_max = 0.0
        for k, method in enumerate(methods):
            rows = frame[frame["method"] == method].sort_values("bin_low")
            edges = np.append(rows["bin_low"].to_numpy(float), rows["bin_high"].to_numpy(float)[-1])
            percent = 100.0 * rows["fraction"].to_numpy(float)
            ax.stairs(percent, edges, color=colour(k), linestyle=LINESTYLES[k % len(LINESTYLES)], linewidth=1.5,
                      label=method)
            cumulative = np.cumsum(rows["fraction"].to_numpy(float))
            reach = np.searchsorted(cumulative, coverage * cumulative[-1]) if len(cumulative) else 0
            x_max = max(x_max, float(rows["bin_high"].to_numpy(float)[min(reach, len(rows) - 1)]))
        width = float(frame["bin_high"].iloc[0] - frame["bin_low"].iloc[0]) if len(frame) else 2.5
        ax.set_xlim(0, max(x_max, 4 * width))
        ax.set_ylim(bottom=0)
        ax.set_xlabel(f"|mapped prediction \u2212 ground truth| (quality points, bins of {width:g})")
        ax.set_ylabel("Test images (%)")
        ax.set_title(f"Absolute deviation on {dataset}")
        ax.legend(title="Method", frameon=False)
        fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- significance


def significance_figure(matrix: pd.DataFrame, title: str = "Statistical significance"):
    """Heat map of the 1 / 0 / -1 matrix (row better / indistinguishable / worse than column)."""
    values = matrix.astype(float).to_numpy()
    n_rows, n_cols = values.shape
    cmap = ListedColormap([OKABE_ITO[1], "#DDDDDD", OKABE_ITO[0]])
    norm = BoundaryNorm([-1.5, -0.5, 0.5, 1.5], cmap.N)
    with plt.rc_context(STYLE):
        cell = max(0.3, min(0.55, 3.6 / max(n_rows, n_cols)))
        fig, ax = plt.subplots(figsize=(2.8 + cell * n_cols, 1.4 + cell * n_rows))
        masked = np.ma.masked_invalid(values)
        ax.imshow(masked, cmap=cmap, norm=norm, aspect="equal")
        for r in range(n_rows):
            for c in range(n_cols):
                v = values[r, c]
                text = "\u2013" if np.isnan(v) else f"{int(v):d}".replace("-", "\u2212")
                ax.text(c, r, text, ha="center", va="center", fontsize=8,
                        color="white" if (not np.isnan(v) and v != 0) else "black")
        ax.set_xticks(range(n_cols))
        ax.set_xticklabels([str(c) for c in matrix.columns], rotation=35, ha="right")
        ax.set_yticks(range(n_rows))
        ax.set_yticklabels([str(i) for i in matrix.index])
        ax.set_xlabel("Column method")
        ax.set_ylabel("Row method")
        ax.set_xticks(np.arange(-0.5, n_cols, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, n_rows, 1), minor=True)
        ax.grid(which="minor", color="white", linewidth=1.5)
        ax.tick_params(which="minor", length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title(title)
        legend = [Patch(color=OKABE_ITO[0], label="1: row better"), Patch(color="#DDDDDD", label="0: indistinguishable"),
                  Patch(color=OKABE_ITO[1], label="\u22121: row worse")]
        ax.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
        fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- range-effect index


def range_effect_figure(summary: pd.DataFrame):
    """Grouped bars of the range-effect index: one group per dataset, one bar per method, the
    error bar its 95 % interval (:func:`biqa_bench.evaluation.range_effect.range_effect_summary`);
    a dashed line at 1 (no correlation lost inside the ranges)."""
    frame = summary[summary["train_dataset"].fillna(summary["dataset"]) == summary["dataset"]]
    methods = sorted(frame["method"].unique(), key=str)
    datasets = sorted(frame["dataset"].unique(), key=str)
    width = 0.8 / max(len(methods), 1)
    indexed = frame.set_index(["method", "dataset"])
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(FIG_WIDTH, 2.8))
        low, high = 0.0, 1.0
        for k, method in enumerate(methods):
            for d, dataset in enumerate(datasets):
                centre = d - 0.4 + width * (k + 0.5)
                if (method, dataset) not in indexed.index or not np.isfinite(indexed.loc[(method, dataset), "rei"]):
                    ax.text(centre, 0.03, "n/d", rotation=90, ha="center", va="bottom", fontsize=7, color="0.3",
                            transform=ax.get_xaxis_transform())
                    continue
                row = indexed.loc[(method, dataset)]
                value = float(row["rei"])
                bounds = (float(row["rei_ci_low"]), float(row["rei_ci_high"]))
                error = None
                if np.isfinite(bounds).all():
                    error = [[value - bounds[0]], [bounds[1] - value]]
                    low, high = min(low, bounds[0]), max(high, bounds[1])
                ax.bar([centre], [value], width=width * 0.95, yerr=error, capsize=2, color=colour(k),
                       hatch=HATCHES[k % len(HATCHES)], edgecolor="white", linewidth=0.5,
                       error_kw=dict(elinewidth=0.8, ecolor="0.2"), label=method if d == 0 else None)
                low = min(low, value)
        ax.axhline(1.0, color="0.3", linewidth=0.7, linestyle="--")
        ax.axhline(0.0, color="0.3", linewidth=0.6)
        ax.set_xlim(-0.5, len(datasets) - 0.5)
        ax.set_xticks(range(len(datasets)))
        ax.set_xticklabels(datasets)
        ax.set_xlabel("Dataset")
        ax.set_ylabel("Range-effect index")
        ax.set_ylim(min(-0.05, low - 0.05), max(1.05, high + 0.05))
        ax.set_title("Range-effect index (1: no correlation lost inside the ACR ranges; bars: 95 % interval)")
        if methods:
            ax.legend(title="Method", frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- Krasula ROC


def krasula_roc_figure(result, title: str):
    """The two ROC curves of the Krasula analysis (:class:`biqa_bench.evaluation.krasula.KrasulaResult`):
    different vs similar pairs by |score difference|, and better vs worse by the signed difference;
    one line per method with its AUC in the legend, the chance diagonal dashed."""
    panels = (("different_similar", "Different vs similar", "auc_ds"), ("better_worse", "Better vs worse", "auc_bw"))
    aucs = result.summary.set_index("method")
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(FIG_WIDTH, 3.1), layout="constrained")
        for ax, (analysis, label, column) in zip(axes, panels):
            for k, method in enumerate(result.methods):
                fpr, tpr = result.roc[(analysis, method)]
                ax.plot(fpr, tpr, color=colour(k), linestyle=LINESTYLES[k % len(LINESTYLES)], linewidth=1.3,
                        label=f"{method} (AUC {aucs.loc[method, column]:.3f})")
            ax.plot([0, 1], [0, 1], color="0.6", linewidth=0.7, linestyle="--", label="chance")
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1.01)
            ax.set_aspect("equal")
            ax.set_xlabel("False-positive rate")
            ax.set_ylabel("True-positive rate")
            count = result.n_different + result.n_similar if analysis == "different_similar" else 2 * result.n_different
            ax.set_title(f"{label} ({count} pairs)")
            ax.legend(frameon=False, loc="lower right", fontsize=7)
        fig.suptitle(title, fontsize=STYLE["axes.titlesize"])
    return fig
