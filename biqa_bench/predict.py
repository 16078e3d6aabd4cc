"""Scoring any images with a trained run or a training-free method (`biqa predict`).

``score_images`` takes a run folder (its saved model: a deep method's checkpoint, BRISQUE's
SVR, ...) or the name of a training-free method (e.g. ``pyiqa:musiq``), and image files or a
folder of them. Every image is decoded once first (as ``biqa datasets check`` does); those that
do not decode are listed in the result, not fatal. The method then predicts the others in one
call, which batches on the GPU where the method does (deep methods: ``eval_batch_size``).

A run's model predicts an image the same as it predicted it in the run's ``predictions.csv``
when its prediction depends on the image only: BRISQUE and CNNIQA (a fixed grid of patches),
and deep methods with ``test_crops=0`` (the whole image). Deep methods with K random test crops
draw them from the run's seed and the image's position in the list (see
:func:`biqa_bench.nn.trainer.predict_items`), so their scores equal the run's only for the same
images in the same order, and otherwise differ by the crops' sampling noise.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from .datasets.registry import Dataset, DatasetInfo, make_dataset
from .errors import BiqaError, DatasetError, MethodError

Progress = Callable[[str, float, "float | None"], None]


def images_dataset(inputs: Sequence[str | Path], name: str | None = None) -> Dataset:
    """Image files, or one folder of them (searched recursively), as an unlabelled dataset:
    item id = the path relative to the folder (or to the files' common folder), score 0 and
    quality NaN (no labels)."""
    from .datasets._files import IMAGE_EXTENSIONS

    paths = [Path(p).expanduser() for p in inputs]
    if not paths:
        raise DatasetError("no images given; pass --images DIR or one or more image files")
    if len(paths) == 1 and paths[0].is_dir():
        root = paths[0].resolve()
        files = sorted(p.resolve() for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise DatasetError(f"{root}: no images found (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
    else:
        for path in paths:
            if path.is_dir():
                raise DatasetError(f"{path}: a folder among image files; pass one folder alone, or files")
            if not path.exists():
                raise DatasetError(f"{path}: no such image file")
        files = [p.resolve() for p in paths]
        root = Path(os.path.commonpath([str(p.parent) for p in files]))
    relative = [p.relative_to(root).as_posix() for p in files]
    if len(set(relative)) != len(relative):
        raise DatasetError(f"an image is given twice ({_first_duplicate(relative)}); give each once")
    info = DatasetInfo(
        name=name or f"images@{root.name or 'root'}", kind="authentic", score_type="MOS", higher_is_better=True,
        score_range=(0.0, 100.0), needs_root=False, description=f"unlabelled images of {root}",
    )
    dataset = make_dataset(info, pd.DataFrame({"item_id": relative, "path": relative, "score": 0.0}), root)
    dataset.items["quality"] = np.nan  # no labels: score 0 only keeps the items table valid
    return dataset


def _first_duplicate(values: list[str]) -> str:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            return value
        seen.add(value)
    return ""


@dataclass(frozen=True)
class ImageScores:
    """What :func:`score_images` returns: one row per scored image (item_id, path, prediction;
    higher is better, as in every predictions table) and the images that did not decode."""

    scores: pd.DataFrame
    unreadable: dict[str, str]  # path -> decoder message
    method: str
    source: str  # the run folder, or 'training-free'
    manifest: dict[str, Any] = field(default_factory=dict)  # the run's, when scored with a run
    notes: tuple[str, ...] = ()  # caveats on the scores, for the user

    def to_dict(self) -> dict:
        return {
            "method": self.method, "source": self.source, "n_scored": int(len(self.scores)),
            "scores": [{"item_id": i, "path": p, "prediction": float(v)}
                       for i, p, v in zip(self.scores["item_id"], self.scores["path"], self.scores["prediction"])],
            "unreadable": [{"path": p, "reason": r} for p, r in self.unreadable.items()],
            "notes": list(self.notes),
        }


def resolve_scorer(run_or_method: str | Path, results: Path | None = None) -> tuple[str, Path | None]:
    """(method name, run folder or None) for ``--run``: an existing folder is a run folder; a
    training-free method's name runs as it is; another method's name takes its run in
    ``results`` with the lowest split (an error when it has runs on several datasets)."""
    from .methods import method_class
    from .store import MANIFEST, find_runs, read_manifest, split_order

    path = Path(run_or_method).expanduser()
    if path.is_dir():
        if not (path / MANIFEST).is_file():
            raise MethodError(f"{path}: not a run folder (no {MANIFEST}); pass e.g. results/DATASET/METHOD/split_00")
        return str(read_manifest(path / MANIFEST)["method"]), path
    name = str(run_or_method)
    if os.sep in name or name.startswith("."):
        raise MethodError(f"{name}: no such run folder; pass a run folder or a method name")
    if method_class(name).training_free:
        return name, None
    if results is None or not Path(results).is_dir():
        raise MethodError(f"method '{name}' learns from data: pass a run folder of it (results/DATASET/{name}/split_00)")
    runs = [r for r in find_runs(results) if r.method == name and (r.folder / "model").exists()]
    if not runs:
        raise MethodError(f"no trained run of '{name}' in {results}; train it (`biqa train --method {name}`) "
                          "or pass its run folder")
    datasets = sorted({r.train_dataset for r in runs})
    if len(datasets) > 1:
        raise MethodError(f"'{name}' has runs on {', '.join(datasets)} in {results}; pass one run folder, "
                          f"e.g. {runs[0].folder}")
    return name, min(runs, key=lambda r: (split_order(r.split), str(r.folder))).folder


def score_images(
    run_or_method: str | Path,
    images: Sequence[str | Path],
    device: str = "cpu",
    results: Path | None = None,
    progress: Progress | None = None,
    log: logging.Logger | None = None,
    workers: int = 2,
    params: dict[str, Any] | None = None,
) -> ImageScores:
    """Scores of ``images`` (files or one folder) by a run's model or a training-free method;
    see the module docstring. ``params`` are a training-free method's parameters."""
    from .datasets.check import check_dataset
    from .methods import Context, create_method
    from .config import cache_dir
    from .runner import checked_prediction, load_trained
    from .store import MANIFEST, read_manifest

    method_name, folder = resolve_scorer(run_or_method, results)
    if folder is not None and params:
        raise BiqaError(f"{folder}: a run predicts with the parameters it was trained with; drop -p")
    dataset = images_dataset(images)
    report = check_dataset(dataset, workers=workers,
                           progress=None if progress is None else lambda done, total: progress("decoding images", done, total))
    unreadable = {str(dataset.root / p): report.errors.get(p, "not found") for p in report.broken}
    usable = dataset.items[~dataset.items["path"].isin(set(report.broken))]
    manifest: dict[str, Any] = {}
    if folder is not None:
        manifest = read_manifest(folder / MANIFEST)
        method = load_trained(folder)
    else:
        method = create_method(method_name, **(params or {}))
    ctx = Context(
        device=device, seed=int(manifest.get("method_seed", 0)), cache_dir=cache_dir(), work_dir=folder,
        progress=progress or (lambda *a: None), log=log or logging.getLogger("biqa"), dataset=dataset,
    )
    items = dataset.with_abspaths(usable.reset_index(drop=True))
    prediction = checked_prediction(method, items, ctx) if len(items) else np.zeros(0)
    scores = pd.DataFrame({"item_id": items["item_id"].to_numpy(), "path": items["path"].to_numpy(),
                           "prediction": prediction})
    return ImageScores(scores, unreadable, method_name, str(folder) if folder is not None else "training-free", manifest,
                       position_notes(method))


def position_notes(method) -> tuple[str, ...]:
    """The caveat for deep methods whose K random test crops are seeded by the image's position in
    the list (see the module docstring); nothing for methods whose score depends on the image only."""
    settings = getattr(method, "settings", None)
    crops = int(settings().get("test_crops", 0) or 0) if callable(settings) else 0
    if crops <= 0:
        return ()
    return (f"{method.name} averages {crops} random test crops seeded by each image's position in the list: "
            "the same images in another order or company get other crops (scores differ by their sampling "
            "noise); a run trained with --test-crops 0 scores the whole image",)
