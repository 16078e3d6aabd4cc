"""IEIT (Song, Li, Chen, Liu and Qian): intermediary enhancement and iterative training.

Network (section III): two DeiT-Small backbones (ImageNet). V1 sees the image I and gives f1;
V2 sees the image and its selectively enhanced version E and gives f2 = V2(I), f3 = V2(E) (one
backbone with shared weights applied to each image: the paper's "f2, f3 = V2(I, E)");
f4 = f2 (+) f3 (concatenation, the fusion the paper found best); R1(f1 (+) f4) = s1 and
R2(f2 (+) f3) = s2, each regressor three fully connected layers. s1 is the prediction.

Training (Algorithm 1, eqs. 1-6, IV-A):

* stage 1: V1, V2, R1, R2 with L1(s1) + lambda * L1(s2), lambda = 1;
* stage 2a: V1 frozen; V2 and R2 trained with L1(s2) on low-quality images only (quality < 25 on
  the 0-100 scale: the lowest quarter of the nominal score interval, IEIT's definition, taken from
  :func:`biqa_bench.evaluation.ranges.low_quality_mask`, rule 'nominal'; the paper's "lowest 25%
  MOS" could also mean the lowest quartile of the items; the report's ``--low-quality-rule``
  does not change this training threshold);
* stage 2b: R1 trained on all images with the features of V1 and V2 detached (eqs. 3-6).
  Reading taken: 2a and 2b run one after the other ("After V2 is optimized with low-quality
  images, we finally fine-tune R1"), each a phase of its own with the stage-2 schedule below
  from its start and a fresh SGD state. The paper could also be read as one stage 2 where every
  batch of all images gives l2 on its low-quality members (eq. 2, ``y_j < t``) and l1 on all from
  detached features (the ``d(.)`` of eq. 4 suggests V2 still has gradients then); not done here.
* SGD; stage 1: learning rate 0.001 for 10 epochs, 0.005 for 10 epochs, then 0.03; stage 2:
  0.001, 0.003, then 0.01; when the validation performance has not improved for 20 epochs the
  rate is multiplied by 0.3, until it falls below 5e-5 (then the stage ends); the 20 epochs are
  counted after the warm-up (the warm-up epochs never trigger a cut).
* images resized to 244 x 244, random 224 x 224 crops (the same crop for I and E); no horizontal
  flips, as the paper names crops only (``-p flip=true`` mirrors each training pair with
  probability 1/2, the same flip for I and E).

Selective enhancement: :mod:`methods._support.enhance` (classical low-light enhancement and deblurring in
place of RetinexNet and DeblurGAN-v2, whose weights are not available offline; user models plug in
through ``low_light_enhancer`` / ``deblurrer`` = ``"module:function"``). The selection classifier
is DeiT-Small with its ImageNet head, from the same weights file as the backbones. Without ImageNet
weights (``pretrained='none'`` and no ``weights``) the classifier rule cannot be evaluated and
``selection='auto'`` falls back to ``'never'`` (E = I, "no quality gain assumed"); a log line says
so. The classifier's weights are saved with the model so that prediction needs no weights file.

Enhancement is the slow part of a fit (tens of ms per image on one core), so it is cached and
parallel (:func:`methods._support.enhance.enhance_stream`): each image's result (E at ``enhance_size``
and its dark/blurred/kept flags) is stored under ``<cache>/enhance/<settings hash>/``, keyed by
the SHA-256 of the working image's pixels; the settings hash covers ``enhance_size``, the
thresholds, ``deblur``, the hooks (names and source files), the selection mode and, for the
classifier rule, the classifier's state and the device type. The splits after the first,
prediction and re-runs read it back; a corrupt entry is recomputed. Misses are computed by
``enhance_workers`` processes (None = min(8, CPUs), 1 = in this process); with the classifier
rule the workers propose the candidates and the classifier decides here, in batches as before.
The pairs are the same bit for bit with or without the cache and for any number of workers. A
script that fits IEIT with more than one worker needs an ``if __name__ == '__main__':`` guard
(the workers are started by forkserver, which imports the main module). Kept images take about
1 MB each at ``short512``: delete ``<cache>/enhance`` to reclaim the space.

Choices where the paper is silent (check them here): SGD momentum 0.9 and no weight decay; batch
size 64; ReLU after the first two FC layers only (a ReLU on the output would clamp the score),
widths d -> d/2 -> d/4 -> 1; each stage capped at ``epochs`` (300) in case the plateau rule does
not end it; the plateau metric is the validation SROCC of s1 (stages 1 and 2b) and of s2 on the
low-quality validation items (stage 2a; with fewer than three such items the metric is undefined,
the rate decays every 20 epochs and the last epoch is kept); the best validation epoch of each
stage is kept; enhancement runs on the image at ``enhance_size`` (shorter side at most 512; E is
cached at this size) before the 244 x 244 resize; the mean of 10 random crops at test time; the
final bias of each regressor starts at the mean training quality. If the training split has no
low-quality image, stage 2a is skipped (logged).
"""

from __future__ import annotations

import hashlib
import os
from contextlib import closing
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from methods._support.enhance import (
    DEBLURRERS, EnhancementCache, EnhancerSpec, SelectiveEnhancer, Top5Confidence, cache_folder, enhance_stream,
)
from biqa_bench.errors import MethodError
from biqa_bench.methods import register_method
from biqa_bench.nn.backbones import LoadedWeights, deit_small
from biqa_bench.nn.data import MemoryImages, fit_size, parse_image_size
from biqa_bench.nn.method import DeepMethod, Training, init_bias_to_mean
from biqa_bench.nn.trainer import Phase, PhaseResult, TrainData, WarmupPlateau, predict_items, validation_metric

LOW_QUALITY_BELOW = 25.0


def low_quality(quality: np.ndarray) -> np.ndarray:
    """IEIT's low-quality images: the lowest quarter of the nominal range (quality < 25)."""
    try:
        from biqa_bench.evaluation.ranges import low_quality_mask
    except ImportError:  # pragma: no cover - the evaluation module is part of the package
        return np.asarray(quality, dtype=float) < LOW_QUALITY_BELOW
    return np.asarray(low_quality_mask(np.asarray(quality, dtype=float), (0.0, 100.0), rule="nominal", fraction=0.25))


class Regressor(nn.Module):
    """Three FC layers, widths d -> d/2 -> d/4 -> 1, ReLU after the first two."""

    def __init__(self, dim: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(dim, dim // 2), nn.ReLU(inplace=True), nn.Linear(dim // 2, dim // 4), nn.ReLU(inplace=True), nn.Linear(dim // 4, 1)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features).squeeze(1)


class IEITNet(nn.Module):
    """The bilateral network on a 6-channel input (image, enhanced image); returns (s1, s2)."""

    def __init__(self, v1: nn.Module, v2: nn.Module):
        super().__init__()
        self.v1, self.v2 = v1, v2
        dim = int(getattr(v1, "num_features", 384))
        self.r1 = Regressor(3 * dim)
        self.r2 = Regressor(2 * dim)

    def branch2(self, pairs: torch.Tensor) -> torch.Tensor:
        """f4 = f2 (+) f3 from V2 applied to I and E."""
        image, enhanced = pairs[:, :3], pairs[:, 3:]
        f2, f3 = self.v2(torch.cat([image, enhanced])).chunk(2)
        return torch.cat([f2, f3], dim=1)

    def forward(self, pairs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f1 = self.v1(pairs[:, :3])
        f4 = self.branch2(pairs)
        return self.r1(torch.cat([f1, f4], dim=1)), self.r2(f4)


def _sgd(parameters, momentum: float, weight_decay: float) -> torch.optim.SGD:
    return torch.optim.SGD(parameters, lr=1e-3, momentum=momentum, weight_decay=weight_decay)


def _rows(candidates: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(candidates)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _schedule(settings: dict[str, Any], stage: int) -> WarmupPlateau:
    return WarmupPlateau(
        settings[f"lr{stage}"], settings[f"warmup{stage}"], settings["patience"], settings["factor"], settings["min_lr"]
    )


def make_stage1(model: IEITNet, data: TrainData, settings: dict[str, Any], evaluate: Callable[[], float]) -> Phase:
    lam = float(settings["lam"])
    n = len(data.item_ids)

    def loss(pairs, quality, epoch):
        s1, s2 = model(pairs)
        l1 = F.l1_loss(s1.float(), quality)
        l2 = F.l1_loss(s2.float(), quality)
        return l1 + lam * l2, {"l1_s1": l1.detach(), "l1_s2": l2.detach()}

    return Phase(
        name="stage1", epochs=int(settings["epochs"]), optimizer=_sgd(model.parameters(), settings["momentum"], settings["weight_decay"]),
        schedule=_schedule(settings, 1), batches=lambda epoch, rng: _rows(np.arange(n), int(settings["batch_size"]), rng),
        loss=loss, train_modules=[model], evaluate=evaluate, max_steps=settings.get("max_steps"),
    )


def make_stage2_backbone(model: IEITNet, data: TrainData, settings: dict[str, Any], evaluate: Callable[[], float]) -> Phase:
    """Stage 2a: V1 frozen, V2 and R2 trained on the low-quality items only."""
    rows = np.flatnonzero(low_quality(data.quality))
    for p in model.v1.parameters():
        p.requires_grad_(False)
    parameters = list(model.v2.parameters()) + list(model.r2.parameters())

    def loss(pairs, quality, epoch):
        s2 = model.r2(model.branch2(pairs))
        l2 = F.l1_loss(s2.float(), quality)
        return l2, {"l1_s2": l2.detach()}

    return Phase(
        name="stage2-v2", epochs=int(settings["epochs"]), optimizer=_sgd(parameters, settings["momentum"], settings["weight_decay"]),
        schedule=_schedule(settings, 2), batches=lambda epoch, rng: _rows(rows, int(settings["batch_size"]), rng),
        loss=loss, train_modules=[model.v2, model.r2], evaluate=evaluate, max_steps=settings.get("max_steps"),
    )


def make_stage2_regressor(model: IEITNet, data: TrainData, settings: dict[str, Any], evaluate: Callable[[], float]) -> Phase:
    """Stage 2b: R1 trained on all items from detached V1 and V2 features."""
    n = len(data.item_ids)
    for p in list(model.v1.parameters()) + list(model.v2.parameters()) + list(model.r2.parameters()):
        p.requires_grad_(False)

    def loss(pairs, quality, epoch):
        with torch.no_grad():
            f1 = model.v1(pairs[:, :3])
            f4 = model.branch2(pairs)
        s1 = model.r1(torch.cat([f1, f4], dim=1).detach())
        l1 = F.l1_loss(s1.float(), quality)
        return l1, {"l1_s1": l1.detach()}

    return Phase(
        name="stage2-r1", epochs=int(settings["epochs"]), optimizer=_sgd(model.r1.parameters(), settings["momentum"], settings["weight_decay"]),
        schedule=_schedule(settings, 2), batches=lambda epoch, rng: _rows(np.arange(n), int(settings["batch_size"]), rng),
        loss=loss, train_modules=[model.r1], evaluate=evaluate, max_steps=settings.get("max_steps"),
    )


@register_method("ieit")
@dataclass(eq=False)
class IEIT(DeepMethod):
    """IEIT: bilateral DeiT-Small on image + selectively enhanced image, two training stages."""

    RECIPES = {
        "paper": dict(
            flip=False,
            epochs=300, batch_size=64, crop=224, image_size="244x244", test_crops=10, eval_batch_size=128,
            lr1=0.03, warmup1=((10, 0.001), (10, 0.005)), lr2=0.01, warmup2=((10, 0.001), (10, 0.003)),
            patience=20, factor=0.3, min_lr=5e-5, momentum=0.9, weight_decay=0.0, lam=1.0, max_steps=None,
        ),
        "quick": dict(
            flip=True,
            epochs=1, batch_size=4, crop=32, image_size="40x40", test_crops=2, eval_batch_size=16,
            lr1=1e-3, warmup1=(), lr2=1e-3, warmup2=(), patience=1000, factor=0.3, min_lr=5e-5,
            momentum=0.9, weight_decay=0.0, lam=1.0, max_steps=2,
        ),
    }

    selection: str = "auto"
    dark_threshold: float = 0.25
    blur_threshold: float = 100.0
    deblur: str = "wiener"
    low_light_enhancer: str | None = None
    deblurrer: str | None = None
    enhance_size: Any = "short512"
    enhance_workers: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self._classifier: nn.Module | None = None
        self._classifier_digest: tuple[nn.Module, str] | None = None
        self._enhancement_log: dict[str, Any] = {}
        self._enhancement_stats: dict[str, int] = {}

    # ------------------------------------------------------------------ model

    def make_backbone(self, settings, pretrained, weights, num_classes: int = 0) -> tuple[nn.Module, LoadedWeights]:
        return deit_small(pretrained, weights, img_size=int(settings["crop"]), num_classes=num_classes)

    def make_classifier(self, pretrained, weights) -> nn.Module | None:
        """DeiT-Small with its ImageNet head at 224, or None without ImageNet weights."""
        if pretrained == "none" and not weights:
            return None
        classifier, _ = deit_small(pretrained, weights, img_size=224, num_classes=1000)
        return classifier.eval()

    def build_model(self, settings, pretrained, weights) -> tuple[nn.Module, LoadedWeights]:
        v1, loaded = self.make_backbone(settings, pretrained, weights)
        v2, _ = self.make_backbone(settings, pretrained, weights)
        return IEITNet(v1, v2), loaded

    def score_function(self, model):
        return lambda pairs: model(pairs)[0]

    # ------------------------------------------------------------------ enhancement

    def _selection(self) -> str:
        if self.selection == "auto":
            return "classifier" if self._classifier is not None else "never"
        return self.selection

    def enhancer_spec(self) -> EnhancerSpec:
        if self.deblur not in DEBLURRERS:
            raise MethodError(f"ieit: deblur '{self.deblur}' not understood; use one of {', '.join(DEBLURRERS)}")
        for name in ("dark_threshold", "blur_threshold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise MethodError(f"ieit: {name} must be a number (e.g. -p {name}=0.3), not {value!r}")
        return EnhancerSpec(self.deblur, self.low_light_enhancer, self.deblurrer, self.dark_threshold, self.blur_threshold)

    def enhancer(self, device) -> SelectiveEnhancer:
        confidence = Top5Confidence(self._classifier, device) if self._classifier is not None else None
        return self.enhancer_spec().build(confidence, self._selection())

    def _workers(self) -> int:
        """``enhance_workers``: None = min(8, CPUs); 1 = in this process."""
        value = self.enhance_workers
        if value is None:
            return max(1, min(8, os.cpu_count() or 1))
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise MethodError(
                f"ieit: enhance_workers must be a whole number of processes, at least 1 (1 = enhance in this process), "
                f"or None for min(8, CPUs); not {value!r}"
            )
        return int(value)

    def _classifier_sha256(self) -> str:
        """SHA-256 of the classifier's state (names, dtypes, shapes, bytes): the same for the weights
        file's classifier and for the copy a saved model restores, which has no file."""
        if self._classifier_digest is not None and self._classifier_digest[0] is self._classifier:
            return self._classifier_digest[1]
        digest = hashlib.sha256()
        for name, tensor in sorted(self._classifier.state_dict().items()):
            flat = tensor.detach().cpu().contiguous().reshape(-1)
            digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}|".encode())
            digest.update(flat.view(torch.uint8).numpy().tobytes())
        self._classifier_digest = (self._classifier, digest.hexdigest())
        return self._classifier_digest[1]

    def cache_identity(self, spec: EnhancerSpec, selection: str, device) -> dict[str, Any]:
        """Everything an enhancement depends on besides the working image's pixels (which key each
        entry): the enhancers and thresholds, the working size, the selection mode and, for the
        classifier rule, the classifier's state and the device type (bf16 autocast on CUDA)."""
        work = parse_image_size(self.enhance_size)
        identity = {"enhancer": spec.identity(), "enhance_size": None if work is None else work.key, "selection": selection}
        if selection == "classifier":
            identity["classifier"] = {"state_sha256": self._classifier_sha256(), "device": torch.device(device).type, "input": 224}
        return identity

    def prepare_source(self, items, ctx, settings, device):
        """Images and their selected enhancements, resized to ``image_size`` and stacked (6 ch).

        The enhancement of each image comes from the disk cache when it was computed before with
        the same settings; misses are computed by ``enhance_workers`` processes
        (:func:`methods._support.enhance.enhance_stream`). Either way the pairs are the same.
        """
        cached = getattr(self, "_val_source_cache", None)
        if cached is not None and cached[0] == tuple(items["item_id"].astype(str)):
            return cached[1]
        workers = self._workers()
        if self._classifier is None and self.selection in ("auto", "classifier") and (self.pretrained != "none" or self.weights):
            self._classifier = self.make_classifier(self.pretrained, self.weights)
        if self.selection == "auto" and self._classifier is None and not self._enhancement_log.get("warned"):
            ctx.log.warning("ieit: no ImageNet classifier (pretrained='none'): selective enhancement keeps the originals (E = I)")
            self._enhancement_log["warned"] = True
        spec = self.enhancer_spec()
        enhancer = self.enhancer(device)
        store = EnhancementCache(cache_folder(self.cache_identity(spec, enhancer.selection, device)))
        work, size, crop = parse_image_size(self.enhance_size), settings["image_size"], int(settings["crop"])
        size_spec = parse_image_size(size)
        ids = items["item_id"].astype(str).tolist()
        # lazily read: only the images in flight are held at the working size
        originals = (fit_size(np.asarray(ctx.read_image(p)), work, crop) for p in items["path"])
        images: dict[str, np.ndarray] = {}
        stats: dict[str, int] = {}
        kept = flagged = 0
        chunk = 16
        with closing(enhance_stream(originals, enhancer, spec, store, workers, chunk, stats)) as stream:
            for done, (item_id, (original, result)) in enumerate(zip(ids, stream), start=1):
                # fit_size of the 6-channel pair resizes I and E separately; E = I needs one resize
                small = fit_size(original, size_spec, crop)
                enhanced = fit_size(result.image, size_spec, crop) if result.image is not original else small
                images[item_id] = np.concatenate([small, enhanced], axis=2)
                kept += int(result.kept)
                flagged += int(result.dark or result.blurred)
                if done % chunk == 0 or done == len(ids):
                    ctx.progress("ieit selective enhancement", done, len(ids))
        ctx.log.info(
            "ieit: %d of %d images dark or blurred, enhancement kept for %d (selection=%s); %d from the enhancement cache, "
            "%d computed (%d process%s)", flagged, len(ids), kept, enhancer.selection, stats["cached"], stats["computed"],
            stats["workers"], "es" if stats["workers"] > 1 else "",
        )
        if stats.get("pool_error"):
            ctx.log.warning("ieit: the enhancement worker processes failed (%s); the rest was enhanced in this process "
                            "(enhance_workers=1 skips them; a script needs an `if __name__ == '__main__':` guard for more)",
                            stats["pool_error"])
        if stats["unsaved"]:
            ctx.log.warning("ieit: %d enhancements could not be written to %s; they will be computed again next time",
                            stats["unsaved"], store.folder)
        self._enhancement_log.update({"flagged": flagged, "kept": kept, "n": len(ids), "selection": enhancer.selection})
        self._enhancement_stats = dict(stats)
        return MemoryImages(images)

    # ------------------------------------------------------------------ training

    def train(self, training: Training) -> list[PhaseResult]:
        model, data, settings, evaluate, ctx, device = training.model, training.data, training.settings, training.evaluate, training.ctx, training.device
        init_bias_to_mean(model.r1.layers[-1], data.quality)
        init_bias_to_mean(model.r2.layers[-1], data.quality)
        results = [self.run_phase(training, make_stage1(model, data, settings, evaluate))]

        low_rows = np.flatnonzero(low_quality(data.quality))
        if len(low_rows) == 0:
            ctx.log.warning("ieit: no low-quality training item (quality < 25); stage 2a (V2 on low-quality images) skipped")
        else:
            evaluate_low = self._low_quality_evaluator(model, ctx, device, settings)
            results.append(self.run_phase(training, make_stage2_backbone(model, data, settings, evaluate_low)))
        results.append(self.run_phase(training, make_stage2_regressor(model, data, settings, evaluate)))
        for p in model.parameters():
            p.requires_grad_(True)
        return results

    def _low_quality_evaluator(self, model, ctx, device, settings) -> Callable[[], float]:
        val = getattr(self, "_val_for_stage2", None)
        if val is None:
            return lambda: float("nan")
        source, ids, quality = val
        mask = low_quality(quality)
        ids_low = [i for i, m in zip(ids, mask) if m]
        quality_low = quality[mask]

        def evaluate() -> float:
            model.eval()
            return validation_metric(
                lambda: predict_items(lambda pairs: model.r2(model.branch2(pairs)), source, ids_low, int(settings["crop"]),
                                      int(settings["test_crops"]), device, ctx.seed, int(settings["eval_batch_size"])),
                quality_low,
            )

        return evaluate

    def fit(self, train_items, val_items, ctx):
        self._classifier = None
        self._val_for_stage2 = None
        if len(val_items):
            # Stage 2a's plateau metric needs the validation pairs; they are built once here and
            # reused by the shared fit (prepare_source is deterministic for the same items).
            settings = self.settings()
            from biqa_bench.nn.trainer import resolve_device

            device = resolve_device(ctx.device)
            source = self.prepare_source(val_items, ctx, settings, device)
            self._val_source_cache = (tuple(val_items["item_id"].astype(str)), source)
            self._val_for_stage2 = (source, val_items["item_id"].astype(str).tolist(), val_items["quality"].to_numpy(dtype=float))
        try:
            return super().fit(train_items, val_items, ctx)
        finally:
            self._val_source_cache = None
            self._val_for_stage2 = None

    def get_params_for_fingerprint(self) -> dict[str, Any]:
        params = super().get_params_for_fingerprint()
        params.pop("enhance_workers", None)  # changes the speed, not a result: resuming stays possible
        return params

    # ------------------------------------------------------------------ persistence

    def extra_state(self) -> dict[str, Any]:
        classifier = None if self._classifier is None else {k: v.detach().cpu() for k, v in self._classifier.state_dict().items()}
        return {"classifier": classifier, "enhancement": dict(self._enhancement_log)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self._enhancement_log = dict(state.get("enhancement", {}))
        if state.get("classifier") is not None:
            classifier, _ = deit_small("none", None, img_size=224, num_classes=1000)
            classifier.load_state_dict(state["classifier"])
            self._classifier = classifier.eval()
        else:
            self._classifier = None
