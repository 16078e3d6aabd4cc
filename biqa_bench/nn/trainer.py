"""The shared training loop of the deep methods: phases, schedules, checkpoints, selection.

A method trains in one or more :class:`Phase` s (IEIT has three). A phase names its optimizer
(per-group learning rates: each group's ``base_lr`` is its rate before scheduling), a schedule, a
sampler that turns (epoch, rng) into the rows of each step, and a loss. :func:`run_phase`

* draws each epoch's batches from ``numpy`` Generators seeded by (seed, phase, epoch) and cuts the
  crops in a background thread; the device normalises them (:mod:`biqa_bench.nn.data`);
* runs in bf16 autocast with channels-last tensors on CUDA, plain fp32 on CPU;
* reports ``ctx.progress(description, step, total)`` with the running loss and images/s;
* after every epoch scores the validation items (SROCC; never the test items) and keeps the best
  state; writes a checkpoint (``<work_dir>/checkpoints/<phase>.pt``, atomically, with the best
  state beside it) after the phase's last epoch and after any epoch that ends at least
  :func:`checkpoint_interval` seconds (60; ``$BIQA_CHECKPOINT_EVERY_S``) after the previous
  checkpoint, so that ``resume=True`` continues after the last saved epoch with the same batches.
  (A ResNet-50 checkpoint with its Adam state is 293 MB and its best state 98 MB: written after
  every 0.13 s epoch of QAMT pre-training on 351 images, they made a 30-epoch stage take 46 s on
  an H100, BENCHMARKS.md);
* ends with the best validation state loaded (the last one when there are no validation items).

:func:`predict_items` is the test-time protocol: the mean over K seeded random crops, or the
whole image resized to the crop size (``test_crops=0``).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import math
import os
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import MethodError
from ..evaluation.metrics import srocc
from ..store import atomic_write_bytes
from .data import Normalizer, prefetch, read_whole


def autocast(device: torch.device):
    """bf16 autocast on CUDA; nothing (fp32) elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def resolve_device(name: str) -> torch.device:
    try:
        device = torch.device(name or "cpu")
    except RuntimeError:
        raise MethodError(f"device '{name}' is not a torch device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MethodError(f"device '{name}' asked for but CUDA is not available here; use --device cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def _seed_of(*parts: Any) -> list[int]:
    return [zlib.crc32(str(p).encode()) for p in parts]


# --------------------------------------------------------------------------- schedules


def set_base_lrs(optimizer: torch.optim.Optimizer) -> None:
    for group in optimizer.param_groups:
        group.setdefault("base_lr", group["lr"])


class StepDecay:
    """Each group's ``base_lr`` times ``gamma`` for every milestone epoch reached (0-based)."""

    def __init__(self, milestones: Sequence[int], gamma: float = 0.1):
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = gamma

    def factor(self, epoch: int) -> float:
        return self.gamma ** sum(epoch >= m for m in self.milestones)

    def start_epoch(self, optimizer: torch.optim.Optimizer, epoch: int) -> None:
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * self.factor(epoch)

    def end_epoch(self, epoch: int, metric: float) -> bool:
        return False

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None


class EpochRates:
    """A given rate for every epoch (0-based; the last one continues), for all groups, scaled
    by each group's ``lr_scale`` (default 1): DBCNN's S-CNN decays its rate log-linearly."""

    def __init__(self, rates: Sequence[float]):
        if not rates:
            raise ValueError("EpochRates needs at least one rate")
        self.rates = [float(r) for r in rates]

    def rate(self, epoch: int) -> float:
        return self.rates[min(int(epoch), len(self.rates) - 1)]

    def start_epoch(self, optimizer: torch.optim.Optimizer, epoch: int) -> None:
        for group in optimizer.param_groups:
            group["lr"] = self.rate(epoch) * group.get("lr_scale", 1.0)

    def end_epoch(self, epoch: int, metric: float) -> bool:
        return False

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None


class WarmupPlateau:
    """IEIT's schedule: warm-up rates for fixed numbers of epochs, then ``lr``; when the
    validation metric has not improved for ``patience`` epochs the rate is multiplied by
    ``factor``; training stops once the rate falls below ``min_lr``. Only epochs at the main
    rate count towards ``patience`` (IEIT IV-A: the plateau rule follows the warm-up), so the
    first cut comes at the earliest ``patience`` epochs after the warm-up.

    The rates apply to every group, scaled by the group's ``lr_scale`` (default 1).
    """

    def __init__(self, lr: float, warmup: Sequence[tuple[int, float]] = (), patience: int = 20, factor: float = 0.3, min_lr: float = 5e-5):
        self.lr = lr
        self.warmup = [(int(n), float(rate)) for n, rate in warmup]
        self.patience = patience
        self.factor = factor
        self.min_lr = min_lr
        self.current = lr
        self.best = -math.inf
        self.bad_epochs = 0

    @property
    def warmup_epochs(self) -> int:
        return sum(n for n, _ in self.warmup)

    def rate(self, epoch: int) -> float:
        start = 0
        for n, rate in self.warmup:
            if epoch < start + n:
                return rate
            start += n
        return self.current

    def start_epoch(self, optimizer: torch.optim.Optimizer, epoch: int) -> None:
        for group in optimizer.param_groups:
            group["lr"] = self.rate(epoch) * group.get("lr_scale", 1.0)

    def end_epoch(self, epoch: int, metric: float) -> bool:
        if math.isfinite(metric) and metric > self.best:
            self.best, self.bad_epochs = metric, 0
        elif epoch >= self.warmup_epochs:  # the plateau rule is for the main rate: warm-up epochs do not count
            self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            self.current *= self.factor
            self.bad_epochs = 0
        return self.current < self.min_lr

    def state_dict(self) -> dict:
        return {"current": self.current, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.current, self.best, self.bad_epochs = state["current"], state["best"], state["bad_epochs"]


# --------------------------------------------------------------------------- samplers


def epoch_batches(n_items: int, per_item: int, batch_size: int, rng: np.random.Generator, join_lone_last: bool = True) -> list[np.ndarray]:
    """Every row ``per_item`` times in a seeded random order, cut into batches; a phase's
    ``batches`` for L1 regression (see :meth:`biqa_bench.nn.method.DeepMethod.train_l1`). The last
    batch may be short; with ``join_lone_last`` a last batch of one row joins the one before it
    (batch norm cannot train on one crop whose feature map is 1 x 1)."""
    rows = rng.permutation(np.repeat(np.arange(n_items), per_item))
    batches = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    if join_lone_last and len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2:] = [np.concatenate(batches[-2:])]
    return batches


# --------------------------------------------------------------------------- phases


LossFn = Callable[[torch.Tensor, torch.Tensor, int], "tuple[torch.Tensor, dict[str, float]]"]


@dataclass
class Phase:
    """One stretch of training with its own optimizer, schedule, sampler and loss."""

    name: str
    epochs: int
    optimizer: torch.optim.Optimizer
    schedule: Any
    batches: Callable[[int, np.random.Generator], list[np.ndarray]]  # rows of each step
    loss: LossFn
    train_modules: Sequence[nn.Module]
    evaluate: Callable[[], float] | None = None  # validation metric, higher is better
    max_steps: int | None = None  # per-epoch cap (the quick recipes)
    # Replay each full-size step from a CUDA graph (see CudaGraphStep). Only for phases whose loss
    # and learning rates change at most between epochs, with an optimizer built capturable=True.
    cuda_graph: bool = False
    # The epoch's generator (its batches and crops). None: a fresh one seeded by (seed, phase,
    # epoch), which also reseeds torch, so a resumed phase sees the batches the interrupted one
    # would have. A method that keeps one generator over its epochs (CNNIQA) also owns torch's
    # random state: nothing is reseeded.
    rng: Callable[[int], np.random.Generator] | None = None


@dataclass
class PhaseResult:
    name: str
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    best_metric: float = float("nan")
    selection: str = "validation SROCC"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "history": self.history,
            "best_epoch": self.best_epoch,
            "best_metric": self.best_metric,
            "selection": self.selection,
        }


@dataclass
class TrainData:
    """What the loop needs about the training items: ids, qualities, the image source."""

    item_ids: np.ndarray
    quality: np.ndarray
    source: Any
    crop: int
    flip: bool = True  # random horizontal flips of the training crops (probability 1/2)
    # batch from the source -> model input on the device; None: ImageNet-normalised uint8 (Normalizer)
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None


def _detached(loss: torch.Tensor, parts: dict[str, Any]):
    return loss.detach(), {k: v.detach() if torch.is_tensor(v) else v for k, v in parts.items()}


def train_step(phase: "Phase", normalize: Normalizer, device: torch.device, epoch: int, pixels: torch.Tensor, target: torch.Tensor):
    """One eager step on a uint8 batch and its CPU targets; the loss and its parts, detached."""
    images = normalize(pixels)
    target = target.to(device, non_blocking=True)
    with autocast(device):
        loss, parts = phase.loss(images, target, epoch)
    phase.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    phase.optimizer.step()
    return _detached(loss, parts)


class CudaGraphStep:
    """One epoch's full-size training steps (normalise, forward, loss, backward, optimizer step)
    captured once in a CUDA graph and replayed.

    At the papers' batch of 32 a ResNet-50 step on an H100 is bound by the host (kernel launches,
    autograd, the optimizer's Python), not by the GPU: one graph replay launches the whole step
    (2.4x faster in ``benchmarks/bench_small_batch.py``, BENCHMARKS.md). The first ``warmup``
    full-size steps of the epoch run eagerly on a side stream (cuDNN autotuning, the optimizer's
    state; CUDA requires it before a capture), the next one is captured and replayed, and later
    ones copy their batch into the captured input tensors and replay. Every step trains on its own
    batch, as in eager mode. A batch of another size (an epoch's short last batch) runs eagerly.

    Valid only when the loss and the learning rates are fixed within the epoch (a new instance is
    made each epoch, so a schedule may change rates between epochs) and the optimizer was built
    with ``capturable=True``: the captured kernels keep the rates they were captured with.
    """

    def __init__(self, phase: "Phase", normalize: Normalizer, device: torch.device, epoch: int, batch_size: int, warmup: int = 3):
        self.phase, self.normalize, self.device, self.epoch = phase, normalize, device, epoch
        self.batch_size, self.warmup = batch_size, warmup
        self.eager_steps = self.replays = self.warmed = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.side = torch.cuda.Stream(device)

    def eager(self, pixels: torch.Tensor, target: torch.Tensor):
        return train_step(self.phase, self.normalize, self.device, self.epoch, pixels, target)

    def __call__(self, pixels: torch.Tensor, target: torch.Tensor):
        if len(target) != self.batch_size:
            self.eager_steps += 1
            return self.eager(pixels, target)
        if self.graph is None and self.warmed < self.warmup:
            self.side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(self.side):
                out = self.eager(pixels, target)
            torch.cuda.current_stream(self.device).wait_stream(self.side)
            self.eager_steps += 1
            self.warmed += 1
            return out
        if self.graph is None:
            self.pixels = pixels.to(self.device, non_blocking=True)
            self.target = target.to(self.device, non_blocking=True)
            self.phase.optimizer.zero_grad(set_to_none=True)
            self.graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(self.graph):
                    images = self.normalize(self.pixels)
                    with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
                        loss, parts = self.phase.loss(images, self.target, self.epoch)
                    loss.backward()
                    self.phase.optimizer.step()
            except RuntimeError as error:  # e.g. an operation that synchronises with the host
                first = (str(error).strip().splitlines() or [""])[0][:200]
                raise MethodError(
                    f"phase {self.phase.name}: capturing the training step in a CUDA graph failed ({first}); "
                    "train without -p cuda_graphs=true"
                ) from None
            # Detached: holding the captured autograd graph would keep its AccumulateGrad nodes
            # (tied to the capture stream) alive into the next epoch's warm-up.
            self.outputs = _detached(loss, parts)
        else:
            self.pixels.copy_(pixels, non_blocking=True)
            self.target.copy_(target, non_blocking=True)
        self.graph.replay()
        self.replays += 1
        return self.outputs


def fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()[:16]


def _save(path: Path, obj: Any) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def checkpoint_interval() -> float:
    """Seconds of training between two checkpoints of a phase: ``$BIQA_CHECKPOINT_EVERY_S``
    (0 = after every epoch), else 60. A crash loses at most this much of the phase in flight."""
    value = os.environ.get("BIQA_CHECKPOINT_EVERY_S", "").strip()
    if not value:
        return 60.0
    try:
        seconds = float(value)
    except ValueError:
        raise MethodError(f"BIQA_CHECKPOINT_EVERY_S={value!r} is not a number of seconds; unset it or give e.g. 60") from None
    return max(0.0, seconds)


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _load_checkpoint(phase: Phase, model: nn.Module, checkpoint: Path, best_file: Path | None, run_fingerprint: str):
    """Restore the model, optimizer and schedule of an interrupted phase: (result so far, first
    epoch to train, best state, whether the phase had finished)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    if state.get("fingerprint") != run_fingerprint:
        raise MethodError(
            f"{checkpoint}: checkpoint written for another configuration or split; "
            "delete the checkpoints folder or run without --resume"
        )
    model.load_state_dict(state["model"])
    phase.optimizer.load_state_dict(state["optimizer"])
    phase.schedule.load_state_dict(state["schedule"])
    result = PhaseResult(phase.name, state["history"], state["best_epoch"], state["best_metric"], state["selection"])
    start_epoch = state["epoch_done"]
    best_state = torch.load(best_file, map_location="cpu", weights_only=True) if best_file is not None and best_file.is_file() else None
    return result, start_epoch, best_state, bool(state.get("stopped") or start_epoch >= phase.epochs)


def _train_epoch(phase: Phase, model: nn.Module, data: TrainData, ctx, device: torch.device, label: str, epoch: int,
                 normalize: Normalizer, quality: torch.Tensor) -> tuple[dict[str, float], dict[str, float]]:
    """One epoch of ``phase``: its seeded batches through the training steps. Returns the mean
    loss and loss parts, and the speed (images/s, seconds, peak GPU memory)."""
    if phase.rng is None:
        rng = np.random.default_rng(_seed_of(ctx.seed, phase.name, epoch))
        torch.manual_seed(int(rng.integers(2**62)))
    else:
        rng = phase.rng(epoch)
    steps = phase.batches(epoch, rng)
    if phase.max_steps is not None:
        steps = steps[: phase.max_steps]
    total_steps = len(steps) * phase.epochs
    phase.schedule.start_epoch(phase.optimizer, epoch)
    model.eval()
    for module in phase.train_modules:
        module.train()

    def produce():
        for rows in steps:
            ids = [str(i) for i in data.item_ids[rows]]
            yield data.source.batch(ids, data.crop, rng, flip=data.flip), rows

    # Sums stay on the device: reading a loss every step would stall the GPU queue.
    loss_acc, n_images, parts_acc = torch.zeros((), device=device), 0, {}
    loss_sum = 0.0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = last_report = time.perf_counter()
    graphed = None
    if phase.cuda_graph and device.type == "cuda" and steps:
        graphed = CudaGraphStep(phase, normalize, device, epoch, batch_size=max(len(rows) for rows in steps))
    for step, (pixels, rows) in enumerate(prefetch(produce(), pin=device.type == "cuda")):
        if graphed is not None:
            loss, parts = graphed(pixels, quality[rows])
        else:
            loss, parts = train_step(phase, normalize, device, epoch, pixels, quality[rows])
        loss_acc += loss.float() * len(rows)
        n_images += len(rows)
        for key, part in parts.items():
            parts_acc[key] = parts_acc.get(key, 0.0) + torch.as_tensor(part).float() * len(rows)
        now = time.perf_counter()
        if now - last_report > 0.5 or step + 1 == len(steps):
            last_report = now
            loss_sum = float(loss_acc)
            if not math.isfinite(loss_sum):
                raise MethodError(f"{label}: the loss became {loss_sum} in phase {phase.name}, epoch {epoch + 1}; lower the learning rate")
            rate = n_images / max(now - started, 1e-9)
            ctx.progress(
                f"{label} {phase.name} epoch {epoch + 1}/{phase.epochs} · loss {loss_sum / max(n_images, 1):.3f} · {rate:.0f} img/s",
                epoch * len(steps) + step + 1,
                total_steps,
            )
    parts_sum = {k: float(v) for k, v in parts_acc.items()}
    seconds = time.perf_counter() - started
    peak = {"peak_gpu_gib": torch.cuda.max_memory_allocated(device) / 2**30} if device.type == "cuda" else {}
    losses = {"loss": loss_sum / max(n_images, 1), **{k: v / max(n_images, 1) for k, v in parts_sum.items()}}
    return losses, {"images_per_s": n_images / max(seconds, 1e-9), "seconds": seconds, **peak}


def run_phase(
    phase: Phase,
    model: nn.Module,
    data: TrainData,
    ctx,
    device: torch.device,
    label: str,
    run_fingerprint: str,
    resume: bool = False,
) -> PhaseResult:
    """Train ``model`` through ``phase``; return its history with the best state loaded."""
    set_base_lrs(phase.optimizer)
    result = PhaseResult(phase.name)
    best_state: dict[str, torch.Tensor] | None = None
    start_epoch = 0
    folder = Path(ctx.work_dir) / "checkpoints" if ctx.work_dir is not None else None
    checkpoint = folder / f"{phase.name}.pt" if folder else None
    best_file = folder / f"{phase.name}-best.pt" if folder else None
    if resume and checkpoint is not None and checkpoint.is_file():
        result, start_epoch, best_state, finished = _load_checkpoint(phase, model, checkpoint, best_file, run_fingerprint)
        if finished:
            if best_state is not None:
                model.load_state_dict(best_state)
            ctx.log.info("%s: phase %s already finished; resumed from %s", label, phase.name, checkpoint)
            return result
        ctx.log.info("%s: resuming phase %s after epoch %d", label, phase.name, start_epoch)

    normalize = data.normalize or Normalizer(device, channels=_channels(data.source, data.item_ids))
    quality = torch.as_tensor(np.asarray(data.quality, dtype=np.float32))
    every, last_saved, best_unsaved = checkpoint_interval(), time.perf_counter(), False
    for epoch in range(start_epoch, phase.epochs):
        losses, speed = _train_epoch(phase, model, data, ctx, device, label, epoch, normalize, quality)
        metric = float(phase.evaluate()) if phase.evaluate is not None else float("nan")
        record = {"epoch": epoch + 1, **losses, "val_srocc": metric, "lr": [g["lr"] for g in phase.optimizer.param_groups], **speed}
        result.history.append(record)
        scored_before = result.best_epoch is not None and math.isfinite(result.best_metric)
        if math.isfinite(metric):
            improved = not scored_before or metric > result.best_metric
            result.selection = "validation SROCC"
        else:  # no validation score (yet): keep the latest epoch until one is scored
            improved = not scored_before
            if improved:
                result.selection = "last epoch (no validation score)"
        if improved:
            result.best_epoch, result.best_metric = epoch + 1, metric
            best_state, best_unsaved = _cpu_state(model), True
        ctx.log.info("%s %s epoch %d: %s", label, phase.name, epoch + 1, json.dumps(record, default=str))
        stop = phase.schedule.end_epoch(epoch, metric)
        due = stop or epoch + 1 == phase.epochs or time.perf_counter() - last_saved >= every
        if checkpoint is not None and due:
            if best_unsaved and best_file is not None:
                _save(best_file, best_state)
            best_unsaved = False
            _save(
                checkpoint,
                {
                    "fingerprint": run_fingerprint,
                    "epoch_done": epoch + 1,
                    "model": _cpu_state(model),
                    "optimizer": phase.optimizer.state_dict(),
                    "schedule": phase.schedule.state_dict(),
                    "history": result.history,
                    "best_epoch": result.best_epoch,
                    "best_metric": result.best_metric,
                    "selection": result.selection,
                    "stopped": stop,
                },
            )
            last_saved = time.perf_counter()
        if stop:
            ctx.log.info("%s: phase %s stopped by its schedule after epoch %d", label, phase.name, epoch + 1)
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return result


def _channels(source, item_ids) -> int:
    if len(item_ids) == 0:
        return 3
    return int(np.asarray(source.read_item(str(item_ids[0]))).shape[2])


# --------------------------------------------------------------------------- prediction


@torch.no_grad()
def predict_items(
    forward: Callable[[torch.Tensor], torch.Tensor],
    source,
    item_ids: Sequence[str],
    crop: int,
    test_crops: int,
    device: torch.device,
    seed: int,
    batch_size: int = 64,
    progress: Callable[[str, float, float | None], None] | None = None,
    label: str = "predicting",
) -> np.ndarray:
    """Scores of ``item_ids``: mean over ``test_crops`` seeded random crops (no flips) per item,
    or one pass over the whole image resized to crop x crop when ``test_crops`` is 0.

    The crops of an item depend only on ``seed`` and the item's position in ``item_ids``.
    """
    item_ids = [str(i) for i in item_ids]
    if not item_ids:
        return np.zeros(0)
    normalize = Normalizer(device, channels=_channels(source, item_ids))
    per_pass = max(1, batch_size // max(test_crops, 1))
    starts = range(0, len(item_ids), per_pass)

    def produce():  # runs in prefetch's thread: the next crops are cut while the GPU scores these
        for start in starts:
            ids = item_ids[start : start + per_pass]
            if test_crops <= 0:
                yield read_whole(source, ids, crop), start
            else:
                rng = np.random.default_rng(_seed_of(seed, "test-crops", start))
                yield np.concatenate([source.batch(ids, crop, rng, flip=False) for _ in range(test_crops)]), start

    # Scores stay on the device until the end: a copy back per batch would stall the GPU queue.
    out = torch.empty(len(item_ids), dtype=torch.float32, device=device)
    for pixels, start in prefetch(produce(), pin=device.type == "cuda"):
        n = min(per_pass, len(item_ids) - start)
        with autocast(device):
            scores = forward(normalize(pixels)).float().reshape(-1)
        out[start : start + n] = scores.reshape(max(test_crops, 1), n).mean(0)
        if progress is not None:
            progress(label, min(start + per_pass, len(item_ids)), len(item_ids))
    return out.cpu().numpy().astype(np.float64)


def validation_metric(predict: Callable[[], np.ndarray], quality: np.ndarray) -> float:
    """SROCC between the validation qualities and predictions (NaN when undefined)."""
    if len(quality) < 3:
        return float("nan")
    prediction = predict()
    if not np.isfinite(prediction).all() or np.ptp(prediction) == 0:
        return float("nan")
    return float(srocc(quality, prediction))


def state_copy(module: nn.Module) -> dict[str, torch.Tensor]:
    return copy.deepcopy(_cpu_state(module))
