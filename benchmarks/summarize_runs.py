"""Markdown tables of the speed and accuracy recorded in training runs and pre-training stages.

Reads what `biqa train` and the pre-training cache already write (nothing is re-timed here):

* each run folder (``manifest.json`` + ``model/config.json``): per training phase the number of
  epochs, the mean training images/s over its epochs, seconds per epoch, the peak GPU memory
  (CUDA runs), then the prediction time, test crops/s and the test SROCC / PLCC (PLCC after the
  four-parameter logistic, :func:`biqa_bench.evaluation.metrics.score_predictions`);
* each pre-training stage (``<cache>/pretrain/<key>/manifest.json``): items, epochs, images/s,
  seconds, peak GPU memory.

    python benchmarks/summarize_runs.py results-gpu /tmp/biqa-cache/pretrain
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from biqa_bench.evaluation.metrics import score_predictions


def _phases(history: list[dict]) -> list[dict]:
    rows = []
    for phase in history:
        epochs = phase.get("history") or []
        if not epochs:
            continue
        peaks = [e["peak_gpu_gib"] for e in epochs if "peak_gpu_gib" in e]
        rows.append({
            "phase": phase.get("name"),
            "epochs": len(epochs),
            "img_s": float(np.mean([e["images_per_s"] for e in epochs])),
            "epoch_s": float(np.mean([e["seconds"] for e in epochs])),
            "peak_gib": max(peaks) if peaks else float("nan"),
            "loss": float(epochs[-1]["loss"]),
        })
    return rows


def _short(params: dict) -> str:
    keep = {k: v for k, v in params.items() if v is not None and k not in ("recipe", "pretrained", "weights", "resume", "dropout")}
    return ", ".join(f"{k}={v}" for k, v in sorted(keep.items())) or "-"


def run_rows(root: Path) -> list[dict]:
    rows = []
    for config in sorted(root.rglob("model/config.json")):
        folder = config.parent.parent
        manifest_file = folder / "manifest.json"
        if not manifest_file.is_file():
            continue
        manifest, cfg = json.loads(manifest_file.read_text()), json.loads(config.read_text())
        metrics = {"srocc": float("nan"), "plcc": float("nan")}
        predictions = folder / "predictions.csv"
        if predictions.is_file():
            frame = pd.read_csv(predictions)
            if len(frame) >= 4:
                result = score_predictions(frame["quality"].to_numpy(float), frame["prediction"].to_numpy(float))
                metrics = {"srocc": float(result.srocc), "plcc": float(result.plcc)}
        crops = int(cfg.get("settings", {}).get("test_crops", 1)) or 1
        predict_s = float(manifest.get("timings", {}).get("predict_s", float("nan")))
        base = {
            "dataset": manifest.get("dataset_info", {}).get("name"), "method": manifest.get("method"),
            "params": _short(cfg.get("params", {})), "split": manifest.get("split"), "n_train": manifest.get("n_train"),
            "n_test": manifest.get("n_test"), "fit_s": manifest.get("timings", {}).get("fit_s"), "predict_s": predict_s,
            "test_crops_s": manifest.get("n_test", 0) * crops / predict_s if predict_s > 0 else float("nan"), **metrics,
        }
        for phase in _phases(cfg.get("history", [])) or [{}]:
            rows.append({**base, **phase})
    return rows


def stage_rows(root: Path) -> list[dict]:
    rows = []
    for manifest_file in sorted(root.rglob("manifest.json")):
        manifest = json.loads(manifest_file.read_text())
        if "stage" not in manifest or "history" not in manifest:
            continue
        history = manifest["history"]
        for phase in _phases(history if isinstance(history, list) else [history]):
            rows.append({"method": manifest.get("method"), "stage": manifest.get("stage"), "n_items": manifest.get("n_items"),
                         "seconds": manifest.get("seconds"), **phase})
    return rows


def markdown(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "(none)"
    def cell(value):
        if isinstance(value, float):
            return "–" if not np.isfinite(value) else (f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}")
        return str(value)
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+", type=Path, help="results folders and/or pre-training cache folders")
    args = parser.parse_args()
    runs = pd.DataFrame([r for root in args.roots for r in run_rows(root)])
    stages = pd.DataFrame([r for root in args.roots for r in stage_rows(root)])
    print("Training runs\n")
    print(markdown(runs))
    print("\nPre-training stages\n")
    print(markdown(stages))


if __name__ == "__main__":
    main()
