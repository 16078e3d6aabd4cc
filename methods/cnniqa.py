"""CNNIQA (Kang, Ye, Li and Doermann, CVPR 2014): a small patch CNN trained from scratch.

The network of the paper: 32x32 locally normalised grey patches, one 7x7 convolution with 50
filters, global max and min pooling of each feature map (100 values), two fully connected
layers of 800 ReLU units with dropout, one output; L1 loss; every training patch carries the
quality of its image, and an image's prediction is the mean over its non-overlapping patches.

Local normalisation (paper, eq. 1): ``(I - mu) / (sigma + C)`` over a 3x3 window of the grey
image in [0, 255], C = 1.

Differences from the paper, made so a split trains in seconds on a CPU: Adam instead of SGD
with momentum, a few epochs of ``patches_per_image`` random patches per image instead of all
patches for many epochs, validation on at most ``val_patches`` patches per image. Targets are
standardised with the training mean and deviation (L1 on a rescaled target is the same
criterion). The epoch with the best validation SROCC is kept; the test items are never seen.

Defaults (6 epochs x 8 patches per image, Adam lr 3e-3, batch 64) were set by hand for a fit +
predict of about 13 CPU-seconds on one core on the embedded ``synthetic`` set (lr 3e-3 beat
1e-3 there on 3 splits, mean SROCC 0.50 vs 0.47); the paper's schedule is many times longer.

Training images are decoded and normalised once per fit (float32, one array per image), so
memory grows with the training set: about 0.25 MiB per 256x256 image.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from scipy import ndimage
from torch import nn

from biqa_bench.errors import MethodError
from biqa_bench.evaluation.metrics import srocc
from biqa_bench.features.brisque import to_grey
from biqa_bench.methods import Context, Method, register_method
from biqa_bench.nn.trainer import Phase, StepDecay, TrainData, resolve_device, run_phase
from biqa_bench.store import atomic_write_bytes, atomic_write_json

PATCH = 32
PREDICT_CHUNK = 64  # test images decoded and scored at a time


def local_normalise(grey: np.ndarray, window: int = 3, c: float = 1.0) -> np.ndarray:
    """Kang et al.'s local normalisation of a grey image in [0, 255] (float32 out)."""
    grey = np.asarray(grey, dtype=np.float64)
    mu = ndimage.uniform_filter(grey, size=window, mode="reflect")
    variance = ndimage.uniform_filter(grey * grey, size=window, mode="reflect") - mu * mu
    return ((grey - mu) / (np.sqrt(np.maximum(variance, 0.0)) + c)).astype(np.float32)


def patch_grid(shape: tuple[int, int], size: int = PATCH, stride: int = PATCH) -> np.ndarray:
    """Top-left corners (row, col) of the patches of a grid over an image; centred."""
    height, width = shape
    if height < size or width < size:
        raise ValueError(f"image of shape {shape} is smaller than a {size}x{size} patch")
    rows = np.arange(0, height - size + 1, stride)
    cols = np.arange(0, width - size + 1, stride)
    rows = rows + (height - size - rows[-1]) // 2
    cols = cols + (width - size - cols[-1]) // 2
    return np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1).reshape(-1, 2)


def cut_patches(image: np.ndarray, corners: np.ndarray, size: int = PATCH) -> np.ndarray:
    """(n, size, size) patches of a 2-d array at the given top-left corners."""
    windows = np.lib.stride_tricks.sliding_window_view(image, (size, size))
    return windows[corners[:, 0], corners[:, 1]]


class _TorchThreads:
    def __init__(self, threads: int | None):
        self.threads = threads

    def __enter__(self) -> None:
        self.previous = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)

    def __exit__(self, *exc) -> None:
        torch.set_num_threads(self.previous)


class CNNIQANet(nn.Module):
    def __init__(self, filters: int = 50, kernel: int = 7, hidden: int = 800, dropout: float = 0.5):
        super().__init__()
        self.conv = nn.Conv2d(1, filters, kernel)
        self.head = nn.Sequential(
            nn.Linear(2 * filters, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, 1),
        )

    def forward(self, patches: torch.Tensor) -> torch.Tensor:  # (n, 1, 32, 32) -> (n,)
        maps = self.conv(patches).flatten(2)
        # max/min with indices: their backward is a cheap scatter (amax/amin's is ~2x slower on CPU)
        pooled = torch.cat([maps.max(dim=2).values, maps.min(dim=2).values], dim=1)
        return self.head(pooled).squeeze(1)


class _EpochPatches:
    """CNNIQA's training patches as an image source of the shared trainer: row ``j`` is draw ``j``
    of image ``owners[j]`` (``patches_per_image`` draws per image). :meth:`draw` gives each draw
    a fresh random position and returns the epoch's batches: the shuffle first, then the
    positions image by image, the order this adapter drew them in before it used the trainer,
    so that a seed gives the same patches (and the same model) as then."""

    def __init__(self, images: list[np.ndarray], per_image: int):
        self.images = images
        self.owners = np.repeat(np.arange(len(images)), per_image)
        self.corners = np.zeros((0, 2), dtype=np.int64)

    def draw(self, rng: np.random.Generator, batch_size: int) -> list[np.ndarray]:
        order = rng.permutation(len(self.owners))
        self.corners = np.array([
            (rng.integers(0, self.images[i].shape[0] - PATCH + 1), rng.integers(0, self.images[i].shape[1] - PATCH + 1))
            for i in self.owners
        ])
        return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]

    def batch(self, ids, crop, rng, flip: bool = False) -> np.ndarray:
        """The patches of rows ``ids`` at this epoch's positions (positions come from draw, not rng)."""
        rows = [int(j) for j in ids]
        return np.stack([self.images[self.owners[j]][r:r + PATCH, c:c + PATCH] for j in rows for r, c in [self.corners[j]]])


@register_method("cnniqa")
@dataclass(eq=False)
class CNNIQA(Method):
    """Kang et al.'s patch CNN, trained from scratch per split (CPU: seconds)."""

    uses_gpu: ClassVar[bool] = True

    epochs: int = 6
    patches_per_image: int = 8
    lr: float = 3e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    val_patches: int = 16
    test_stride: int = PATCH
    num_threads: int | None = 1

    def _threads(self):
        """Torch CPU threads while fitting/predicting (restored after).

        One thread is the fastest for this tiny network: measured on a shared 2-core machine,
        two OpenMP threads spent ~5x the CPU time per patch (barrier spinning).
        """
        return _TorchThreads(self.num_threads)

    def min_image_side(self) -> int:
        return PATCH  # one 32x32 patch

    # -- data -----------------------------------------------------------------------------
    def _load(self, items: pd.DataFrame, ctx: Context, what: str) -> list[np.ndarray]:
        images = []
        for done, path in enumerate(items["path"], start=1):
            grey = to_grey(ctx.read_image(str(path)))
            if min(grey.shape) < PATCH:
                raise MethodError(f"{path}: image of shape {grey.shape} is smaller than a {PATCH}x{PATCH} patch")
            images.append(local_normalise(grey))
            ctx.progress(f"cnniqa: loading {what} images", done, len(items))
        return images

    def _image_patches(self, images: list[np.ndarray], limit: int | None, stride: int) -> tuple[np.ndarray, np.ndarray]:
        """Grid patches of every image (at most ``limit`` each, evenly spaced) and their owner index."""
        patches, owners = [], []
        for index, image in enumerate(images):
            corners = patch_grid(image.shape, PATCH, stride)
            if limit is not None and len(corners) > limit:
                corners = corners[np.linspace(0, len(corners) - 1, limit).round().astype(int)]
            patches.append(cut_patches(image, corners))
            owners.append(np.full(len(corners), index))
        return np.concatenate(patches), np.concatenate(owners)

    def _predict_images(self, images: list[np.ndarray], limit: int | None, stride: int, device: str) -> np.ndarray:
        patches, owners = self._image_patches(images, limit, stride)
        self.net_.eval()
        outputs = []
        with torch.no_grad():
            for start in range(0, len(patches), 1024):
                batch = torch.from_numpy(np.ascontiguousarray(patches[start:start + 1024])).unsqueeze(1).to(device)
                outputs.append(self.net_(batch).cpu().numpy())
        per_patch = np.concatenate(outputs).astype(np.float64)
        sums = np.bincount(owners, weights=per_patch, minlength=len(images))
        counts = np.bincount(owners, minlength=len(images))
        return sums / counts * self.target_std_ + self.target_mean_

    # -- contract -------------------------------------------------------------------------
    def fit(self, train_items: pd.DataFrame, val_items: pd.DataFrame, ctx: Context) -> "CNNIQA":
        with self._threads():
            return self._fit(train_items, val_items, ctx)

    def predict(self, items: pd.DataFrame, ctx: Context) -> np.ndarray:
        with self._threads():
            return self._predict(items, ctx)

    def _fit(self, train_items: pd.DataFrame, val_items: pd.DataFrame, ctx: Context) -> "CNNIQA":
        if len(train_items) < 2:
            raise MethodError(f"cnniqa: needs at least 2 training items, got {len(train_items)}")
        device = resolve_device(ctx.device)
        torch.manual_seed(ctx.seed)
        rng = np.random.default_rng(ctx.seed)
        started = time.perf_counter()

        train_images = self._load(train_items, ctx, "training")
        val_images = self._load(val_items, ctx, "validation") if len(val_items) else []
        quality = train_items["quality"].to_numpy(dtype=np.float64)
        val_quality = val_items["quality"].to_numpy(dtype=np.float64) if len(val_items) else np.empty(0)
        self.target_mean_ = float(quality.mean())
        self.target_std_ = float(quality.std()) or 1.0
        targets = ((quality - self.target_mean_) / self.target_std_).astype(np.float32)

        self.net_ = CNNIQANet().to(device)
        optimiser = torch.optim.Adam(self.net_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        loss_fn = nn.L1Loss()
        patches = _EpochPatches(train_images, self.patches_per_image)
        data = TrainData(item_ids=np.arange(len(patches.owners)), quality=targets[patches.owners], source=patches,
                         crop=PATCH, flip=False, normalize=lambda batch: batch.unsqueeze(1).to(device))

        def evaluate() -> float:
            return srocc(val_quality, self._predict_images(val_images, self.val_patches, PATCH, device))

        phase = Phase(
            name="cnniqa", epochs=self.epochs, optimizer=optimiser, schedule=StepDecay(()),  # a constant rate
            batches=lambda epoch, generator: patches.draw(generator, self.batch_size),
            loss=lambda inputs, labels, epoch: (loss_fn(self.net_(inputs), labels), {}),
            train_modules=[self.net_], evaluate=evaluate if val_images else None,
            rng=lambda epoch: rng,  # one generator over the epochs, as before the shared trainer
        )
        # no checkpoints in the run folder: a split trains in seconds and is never resumed
        result = run_phase(phase, self.net_, data, replace(ctx, work_dir=None), device, "cnniqa", "")
        self.best_epoch_ = result.best_epoch
        self.history_ = [
            {"epoch": r["epoch"], "train_l1": r["loss"], **({"val_srocc": r["val_srocc"]} if val_images else {})}
            for r in result.history
        ]
        self.fit_seconds_ = time.perf_counter() - started
        self.net_.to("cpu")
        return self

    def _predict(self, items: pd.DataFrame, ctx: Context) -> np.ndarray:
        if not hasattr(self, "net_"):
            raise MethodError("cnniqa: not fitted; call fit or load a trained model first")
        if len(items) == 0:
            return np.empty(0)
        self.net_.to(ctx.device)
        try:
            # in chunks of images, so memory stays flat on large test sets
            predictions = []
            for start in range(0, len(items), PREDICT_CHUNK):
                chunk = items.iloc[start:start + PREDICT_CHUNK]
                images = self._load(chunk, ctx, "test")
                predictions.append(self._predict_images(images, None, self.test_stride, ctx.device))
                ctx.progress("cnniqa: predicting", min(start + PREDICT_CHUNK, len(items)), len(items))
            return np.concatenate(predictions)
        finally:
            self.net_.to("cpu")

    def save(self, folder: Path) -> None:
        if not hasattr(self, "net_"):
            raise MethodError("cnniqa: not fitted; nothing to save")
        import io

        buffer = io.BytesIO()
        torch.save({k: v.cpu() for k, v in self.net_.state_dict().items()}, buffer)
        atomic_write_bytes(Path(folder) / "cnniqa.pt", buffer.getvalue())
        atomic_write_json(Path(folder) / "cnniqa.json", {
            "params": self.get_params(),
            "target_mean": self.target_mean_,
            "target_std": self.target_std_,
            "best_epoch": self.best_epoch_,
            "history": self.history_,
        })

    def load(self, folder: Path) -> "CNNIQA":
        weights, meta = Path(folder) / "cnniqa.pt", Path(folder) / "cnniqa.json"
        if not weights.is_file() or not meta.is_file():
            raise MethodError(f"{folder}: no saved cnniqa model (cnniqa.pt, cnniqa.json); train it first with `biqa train`")
        info = json.loads(meta.read_text())
        for name, value in info["params"].items():
            setattr(self, name, value)
        self.target_mean_, self.target_std_ = float(info["target_mean"]), float(info["target_std"])
        self.best_epoch_, self.history_ = info["best_epoch"], info["history"]
        self.net_ = CNNIQANet()
        self.net_.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        return self
