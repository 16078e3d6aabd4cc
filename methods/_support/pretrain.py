"""Pre-training stages as first-class cached steps, and the data they train on.

A *stage* (QAMT's multi-task pre-training, HCL's restoration and per-database curricula) is
identified by a SHA-256 of everything that determines its result: the method and stage names, a
code version, the data fingerprint, the recipe and the hyper-parameters that reach the stage, the
initial weights and the pre-training seed. It lives under

    cache_dir()/pretrain/<key>/weights.pt      the trained state dict (torch.save)
                              /manifest.json   key, inputs, history, timings, weights SHA-256

written into a temporary sibling folder and renamed into place when complete (a folder with a
manifest is a finished stage). A second fit with the same inputs (another split, another target
that needs the same stage) loads it instead of training; any changed input gives another key. An
interrupted stage resumes from ``pretrain/.<key>.partial/checkpoints`` (the trainer's epoch
checkpoints), and a lock file serialises two processes that want the same stage at once.

Pre-training data (:func:`resolve_pretrain_set`):

* a registered dataset by name (``synthetic``/``mixed`` built in, or a set made by
  ``biqa datasets synth``), with items whose content is held out of the target's training split
  removed (content identity = ``content_id`` or its file stem): the paper's rule that no test
  content leaks into pre-training, applied to every named set;
* ``'target'``: a set generated from the target's *training* items only, with the shared generator
  (:func:`biqa_bench.datasets.synthetic.generate_content`): authentic-like blends of each training
  image (authentic targets) or the 39 single distortions of each training content's reference
  image (synthetic targets with a ``reference_path`` column; the training image itself otherwise).
  Generated sets are cached under ``cache_dir()/pretrain/data/<key>/``, keyed by the training
  items (ids, paths, file sizes) and the generation parameters.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from biqa_bench.errors import MethodError
from biqa_bench.nn.trainer import epoch_batches
from biqa_bench.store import atomic_folder, atomic_write_bytes, atomic_write_json, file_lock

STAGE_FORMAT = 1
DATA_FORMAT = 1
WEIGHTS = "weights.pt"
MANIFEST = "manifest.json"
GENERATED_SIZE = 256  # QAMT 4.1: pre-training images are scaled to 256 x 256


def pretrain_root() -> Path:
    from biqa_bench.config import cache_path

    return cache_path("pretrain")


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))


def stage_key(inputs: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of a stage's inputs."""
    return hashlib.sha256(_canonical(inputs).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- the stage cache


@dataclass
class StageResult:
    """A finished stage: where it lives, its manifest, and whether this call reused it."""

    key: str
    folder: Path
    manifest: dict[str, Any]
    reused: bool

    def state_dict(self) -> dict[str, Any]:
        import torch

        return torch.load(self.folder / WEIGHTS, map_location="cpu", weights_only=True)

    def summary(self) -> dict[str, Any]:
        """What a run manifest records about the stage it used."""
        return {
            "stage": self.manifest.get("stage"),
            "key": self.key,
            "folder": str(self.folder),
            "reused": self.reused,
            "weights_sha256": self.manifest.get("weights_sha256"),
            "inputs": self.manifest.get("inputs"),
            "seconds": self.manifest.get("seconds"),
        }


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / MANIFEST
    if not path.is_file() or not (folder / WEIGHTS).is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return manifest if manifest.get("format") == STAGE_FORMAT else None


TrainFn = Callable[[Path, str], "tuple[dict[str, Any], dict[str, Any]]"]


def cached_stage(method: str, stage: str, inputs: dict[str, Any], train: TrainFn, root: Path | None = None, log=None) -> StageResult:
    """The stage with these inputs: loaded from the cache, or trained by ``train(work_dir, key)``.

    ``train`` returns ``(state_dict, info)``; ``info`` (history, counts: JSON-able) goes into the
    manifest. ``work_dir`` persists across interrupted attempts (checkpoints for resuming) and is
    removed once the stage is stored.
    """
    import torch

    root = Path(root) if root is not None else pretrain_root()
    full_inputs = {"method": method, "stage": stage, "format": STAGE_FORMAT, **inputs}
    key = stage_key(full_inputs)
    folder = root / key
    manifest = _read_manifest(folder)
    if manifest is not None:
        if log is not None:
            log.info("%s %s: reusing pre-trained stage %s", method, stage, folder)
        return StageResult(key, folder, manifest, reused=True)
    with file_lock(root / f".{key}.lock"):
        manifest = _read_manifest(folder)  # another process may have finished it meanwhile
        if manifest is not None:
            return StageResult(key, folder, manifest, reused=True)
        work = root / f".{key}.partial"
        work.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        state, info = train(work, key)
        seconds = time.perf_counter() - started
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in state.items()}, buffer)
        blob = buffer.getvalue()
        with atomic_folder(folder, replace=True) as tmp:  # a folder there is stale (no valid manifest)
            atomic_write_bytes(tmp / WEIGHTS, blob)
            manifest = {
                "format": STAGE_FORMAT,
                "key": key,
                "method": method,
                "stage": stage,
                "inputs": json.loads(_canonical(full_inputs)),
                "weights_sha256": hashlib.sha256(blob).hexdigest(),
                "seconds": round(seconds, 3),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                **info,
            }
            atomic_write_json(tmp / MANIFEST, manifest)
        shutil.rmtree(work, ignore_errors=True)
    if log is not None:
        log.info("%s %s: pre-trained in %.1f s, stored in %s", method, stage, seconds, folder)
    return StageResult(key, folder, json.loads((folder / MANIFEST).read_text()), reused=False)


def stage_context(ctx, work_dir: Path, seed: int):
    """A copy of the run's context for a stage: checkpoints in the stage's work folder, the
    pre-training seed (not the split's, so the stage is shared across splits), and images decoded
    from files (the run's image cache holds the target, not this data)."""
    return dataclasses.replace(ctx, work_dir=Path(work_dir), images=None, seed=int(seed))


# --------------------------------------------------------------------------- pre-training data


@dataclass
class PretrainSet:
    """Pre-training items (absolute ``path``; ``reference`` absolute when pairs exist) and what
    identifies them for the stage key."""

    name: str
    kind: str  # 'synthetic' (single distortion, class_index) or 'authentic' (blends, labels)
    items: pd.DataFrame
    fingerprint: str
    description: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "fingerprint": self.fingerprint, "n_items": int(len(self.items)), **self.description}


def _stem(text: str) -> str:
    return Path(str(text)).stem


def held_out_contents(dataset, train_items: pd.DataFrame) -> set[str]:
    """Contents of the target that are not in its training items (test and validation contents)."""
    if dataset is None:
        return set()
    train = set(train_items["content_id"].astype(str))
    return {c for c in dataset.items["content_id"].astype(str).unique() if c not in train}


def _items_fingerprint(items: pd.DataFrame, columns: list[str]) -> str:
    frame = items[columns].astype(str).sort_values(columns[0])
    return hashlib.sha256(frame.to_csv(index=False).encode("utf-8")).hexdigest()[:16]


def load_named_set(spec: str, excluded_contents: set[str] | frozenset = frozenset()) -> PretrainSet:
    """A registered dataset as pre-training data, without the items of ``excluded_contents``."""
    from biqa_bench.datasets.registry import load_dataset

    dataset = load_dataset(spec)
    items = dataset.with_abspaths()
    if "reference_path" in items.columns:
        items["reference"] = [str(dataset.root / p) if isinstance(p, str) and p else "" for p in items["reference_path"]]
    excluded = {str(c) for c in excluded_contents}
    excluded_stems = {_stem(c) for c in excluded}
    contents = items["content_id"].astype(str)
    drop = contents.isin(excluded) | contents.map(_stem).isin(excluded_stems)
    dropped = sorted(set(contents[drop]))
    items = items.loc[~drop].reset_index(drop=True)
    if len(items) == 0:
        raise MethodError(
            f"pre-training set '{spec}': every item shares content with the target's held-out items; "
            "use pre-training data made from other photos, or 'target'"
        )
    classes = pd.to_numeric(items["class_index"], errors="coerce") if "class_index" in items.columns else None
    kind = "synthetic" if classes is not None and (classes >= 0).all() else "authentic"
    columns = [c for c in ("item_id", "path", "quality", "content_id", "class_index", "labels", "reference") if c in items.columns]
    return PretrainSet(
        name=spec,
        kind=kind,
        items=items,
        fingerprint=_items_fingerprint(items, columns),
        description={"dataset_fingerprint": dataset.fingerprint, "excluded_contents": dropped},
    )


def _file_signature(path: str) -> str:
    try:
        return str(os.path.getsize(path))
    except OSError:
        return "missing"


def _source_content(item_id: str) -> str:
    return "src-" + hashlib.sha1(str(item_id).encode("utf-8")).hexdigest()[:12]


def _resized(image: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    image = np.asarray(image)[..., :3]
    if image.shape[:2] == (size, size):
        return np.ascontiguousarray(image)
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((size, size), Image.Resampling.BICUBIC))


def target_sources(train_items: pd.DataFrame, kind: str, dataset_root: Path | None) -> pd.DataFrame:
    """The images the target-derived set is generated from: one row per source, with the source
    item and content. Synthetic targets with reference paths: each training content's reference
    image once; otherwise each training image."""
    if kind == "synthetic" and "reference_path" in train_items.columns and dataset_root is not None:
        first = train_items.drop_duplicates("content_id")
        return pd.DataFrame(
            {
                "source_item_id": first["content_id"].astype(str).to_numpy(),
                "source_path": [str(Path(dataset_root) / p) for p in first["reference_path"]],
                "source_content_id": first["content_id"].astype(str).to_numpy(),
            }
        )
    return pd.DataFrame(
        {
            "source_item_id": train_items["item_id"].astype(str).to_numpy(),
            "source_path": train_items["path"].astype(str).to_numpy(),
            "source_content_id": train_items["content_id"].astype(str).to_numpy(),
        }
    )


def target_pretrain_set(
    train_items: pd.DataFrame,
    kind: str,
    seed: int,
    per_source: int | None,
    read_image: Callable[[str], np.ndarray],
    dataset_root: Path | None = None,
    size: int = GENERATED_SIZE,
    progress: Callable[[str, float, float | None], None] | None = None,
) -> PretrainSet:
    """Pre-training data generated from the training items only (see the module docstring).

    ``kind='authentic'``: ``per_source`` blends of each training image (26-way multi-label);
    ``kind='synthetic'``: the 39 single distortions (or a seeded ``per_source`` of them) of each
    training content's reference. Every source is resized to ``size`` x ``size``; pseudo-MOS labels
    come from the generator. Cached by the sources and the parameters.
    """
    from biqa_bench.datasets import synthetic as generator

    if kind not in ("synthetic", "authentic"):
        raise MethodError(f"pre-training set kind must be 'synthetic' or 'authentic', not {kind!r}")
    sources = target_sources(train_items, kind, dataset_root)
    params = {
        "format": DATA_FORMAT,
        "generator_version": generator.GENERATOR_VERSION,
        "kind": kind,
        "seed": int(seed),
        "per_source": per_source,
        "size": int(size),
        "sources": sorted(
            f"{i}\t{p}\t{_file_signature(p)}" for i, p in zip(sources["source_item_id"], sources["source_path"])
        ),
    }
    key = stage_key(params)
    folder = pretrain_root() / "data" / key
    items_file = folder / "items.csv"
    if not items_file.is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(folder.parent / f".{key}.lock"):
            if not items_file.is_file():
                _generate(folder, sources, kind, seed, per_source, size, read_image, progress, params)
    items = pd.read_csv(items_file, dtype={"item_id": str, "content_id": str, "labels": str, "level": str, "source_item_id": str, "source_content_id": str})
    items["path"] = [str(folder / p) for p in items["path"]]
    items["reference"] = [str(folder / p) for p in items["reference_path"]]
    items["quality"] = items["score"].astype(float)  # pseudo-MOS, 0-100, higher is better
    return PretrainSet(
        name="target",
        kind=kind,
        items=items,
        fingerprint=key[:16],
        description={"generated_from": "training items", "n_sources": int(len(sources)), "folder": str(folder)},
    )


def _generate(folder, sources, kind, seed, per_source, size, read_image, progress, params) -> None:
    from biqa_bench.datasets.synthetic import generate_content

    with atomic_folder(folder, replace=True) as tmp:  # a folder there is stale (no items.csv)
        frames = []
        for k, row in enumerate(sources.itertuples(index=False)):
            reference = _resized(read_image(row.source_path), size)
            content = _source_content(row.source_item_id)
            frame = generate_content(
                reference, content, kind, seed, tmp,
                image_dir=f"images/{content}", reference_path=f"reference/{content}.png", per_content=per_source,
            )
            frame["source_item_id"] = row.source_item_id
            frame["source_content_id"] = row.source_content_id
            frames.append(frame)
            if progress is not None:
                progress("generating pre-training images", k + 1, len(sources))
        items = pd.concat(frames, ignore_index=True)
        items.to_csv(tmp / "items.csv", index=False)
        atomic_write_json(tmp / MANIFEST, {**{k: v for k, v in params.items() if k != "sources"}, "n_sources": len(sources), "n_items": len(items)})


def target_kind(ctx) -> str:
    """The kind of data ``'target'`` generates: the target dataset's kind, authentic when the
    context names no dataset."""
    dataset = getattr(ctx, "dataset", None)
    return dataset.info.kind if dataset is not None else "authentic"


def generated_per_source(spec: str, ctx, blends_per_image: int) -> int | None:
    """``per_source`` for :func:`resolve_pretrain_set` from a method's ``blends_per_image``: that
    many blends of each training image when ``'target'`` generates an authentic set; None (all 39
    single distortions of each training reference, as the papers' synthetic sets) for a synthetic
    target, where there are no blends to count; None for a named set (nothing is generated)."""
    return int(blends_per_image) if spec == "target" and target_kind(ctx) == "authentic" else None


def synthetic_pretrain_set(method: str, spec: str, train_items: pd.DataFrame, ctx, seed: int, labels: str) -> PretrainSet:
    """:func:`resolve_pretrain_set` for a stage that learns from single-distortion ``labels``
    (classes, tasks): a set without them is a MethodError naming the sets that have them."""
    pset = resolve_pretrain_set(spec, train_items, ctx, seed=seed, per_source=None, kind="synthetic")
    if pset.kind != "synthetic":
        raise MethodError(
            f"{method}: pre-training set '{spec}' has no single-distortion {labels}; "
            "use 'synthetic', 'target' or a set made by `biqa datasets synth --kind synthetic`"
        )
    return pset


def resolve_pretrain_set(
    spec: str,
    train_items: pd.DataFrame,
    ctx,
    seed: int,
    per_source: int | None,
    kind: str | None = None,
) -> PretrainSet:
    """The pre-training data named by ``spec``: ``'target'`` or a registered dataset name.

    ``kind`` (for ``'target'``): 'synthetic' or 'authentic'; None follows the target dataset's kind
    (authentic when the context names no dataset).
    """
    dataset = getattr(ctx, "dataset", None)
    if spec == "target":
        if kind is None:
            kind = target_kind(ctx)
        return target_pretrain_set(
            train_items, kind, seed, per_source, ctx.read_image,
            dataset_root=dataset.root if dataset is not None else None, progress=ctx.progress,
        )
    if dataset is None:
        ctx.log.warning("pre-training set '%s': the target dataset is unknown, so held-out contents cannot be excluded", spec)
    return load_named_set(spec, held_out_contents(dataset, train_items))


def classification_targets(items: pd.DataFrame, kind: str) -> np.ndarray:
    """Class index per item (synthetic: N = 39) or the 26-way multi-hot matrix (authentic)."""
    from biqa_bench.datasets import distortions as D

    if kind == "synthetic":
        if "class_index" not in items.columns:
            raise MethodError("pre-training set has no 'class_index' column; make it with `biqa datasets synth --kind synthetic`")
        classes = pd.to_numeric(items["class_index"], errors="coerce").to_numpy()
        if np.isnan(classes).any() or (classes < 0).any() or (classes >= len(D.SYNTHETIC_CLASSES)).any():
            raise MethodError(f"pre-training set: class_index must be 0..{len(D.SYNTHETIC_CLASSES) - 1} for every item")
        return classes.astype(np.int64)
    if "labels" not in items.columns:
        raise MethodError("pre-training set has no 'labels' column; make it with `biqa datasets synth --kind authentic`")
    return np.stack([D.multi_hot(D.parse_labels(text)) for text in items["labels"]]) if len(items) else np.zeros((0, len(D.AUTHENTIC_CLASSES)), np.float32)


def n_classes(kind: str) -> int:
    from biqa_bench.datasets import distortions as D

    return len(D.SYNTHETIC_CLASSES) if kind == "synthetic" else len(D.AUTHENTIC_CLASSES)


# --------------------------------------------------------------------------- training helpers


def pretrain_image_source(pset: PretrainSet, size, workers: int | None = None, progress=None):
    """A decode-once :class:`~biqa_bench.imagecache.ImageCache` of the pre-training images at
    ``size``: an int N for N x N (QAMT 4.1 scales them to 256 x 256) or an image-cache size spec
    (``'short384'``); keyed by their paths and files."""
    from types import SimpleNamespace

    from biqa_bench.imagecache import ImageCache

    items = pset.items[["item_id", "path"]].astype(str)
    view = SimpleNamespace(
        root=Path("/"), items=items, spec=f"pretrain-{pset.name}", fingerprint=pset.fingerprint,
        info=SimpleNamespace(name=f"pretrain-{pset.name.replace(':', '@')}"),
    )
    if workers is None:
        workers = 1 if len(items) < 256 else max(1, min(8, os.cpu_count() or 1))
    report = (lambda done, total: progress("decoding pre-training images", done, total)) if progress else None
    spec = (int(size), int(size)) if isinstance(size, (int, np.integer)) else size
    return ImageCache.open_or_build(view, size=spec, workers=workers, progress=report)


def run_stage_phase(name: str, net, data, optimizer, loss, train_modules, settings: dict[str, Any], prefix: str, ctx, device, label: str, key: str):
    """Train a stage's network for one phase: constant rates, one crop per item per epoch
    (:func:`epoch_batches`), no validation set (the last epoch is kept), resumable from the stage's
    work folder. ``prefix`` names the stage's settings (``<prefix>_epochs``, ``_batch_size``,
    ``_max_steps``)."""
    from biqa_bench.nn.trainer import Phase, StepDecay, run_phase

    n, batch = len(data.item_ids), int(settings[f"{prefix}_batch_size"])
    phase = Phase(
        name=name, epochs=int(settings[f"{prefix}_epochs"]), optimizer=optimizer, schedule=StepDecay([]),
        batches=lambda epoch, rng: epoch_batches(n, 1, batch, rng), loss=loss, train_modules=train_modules,
        evaluate=None, max_steps=settings.get(f"{prefix}_max_steps"),
    )
    return run_phase(phase, net, data, ctx, device, label, key, resume=True)
