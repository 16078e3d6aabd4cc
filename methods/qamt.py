"""QAMT (Lai, Chu and Leng, "No-reference IQA based on quality awareness feature and multi-task
training"; ``shared/papers/qamt.txt``, sections II-IV).

Stage 1, multi-task pre-training (section 3.1, Fig. 2): a ResNet-50 (ImageNet) gives the 2048-d
feature v. Classification branch: cFC1 (v -> c1, 1024) and cFC2 (-> N classes); softmax
cross-entropy with N = 39 on the synthetic set (one (type, level) per image, eqs. 1-2), sigmoid
binary cross-entropy with N = 26 on the authentic-like set (multi-label, eqs. 3-4). Regression
branch: rFC1 (v -> s1, 1024), m1 = ReLU(s1 (+) c1) (2048-d, eq. 5), rFC2, rFC3 -> the score, L1
on the pseudo-MOS (eq. 6). Total loss L_s + L_c (eqs. 7-8). Section 4.1: Adam (0.9, 0.999),
images scaled to 256 x 256 and 224 x 224 crops, 30 epochs (the paper's "training iterations"
read as epochs, also in stage 2), mini-batch 256; learning rates:
backbone 1e-4, cFC 1e-5 (synthetic) or 1e-4 (authentic), the regression FCs 1e-6; FC layers
He-initialised.

Stage 2, fine-tuning (section 3.2, 4.1): the pre-trained ResNet-50 with a head of dropout 0.5,
FC 256, ReLU (not stated) and FC 1, L1 on the target's quality, learning rate 1e-5 everywhere,
10 epochs, mini-batch 32, 100 random 224 x 224 crops of every training image per epoch, the mean
of 60 random crops at test time (``recipe='paper'``; ``'quick'`` uses a few small crops and steps).

Pre-training data (``pretrain_data``): ``'auto'`` (default) is ``'target'`` for an authentic target
(section 2.1: blends made from the target's own images; section 4.1: "both two stage's training
sets have the same content") and ``'synthetic'`` (the embedded single-distortion set) for a
synthetic target. That embedded set is a scaled-down stand-in for the paper's corpus: 13 content
windows of photos shipped with scikit-image, scikit-learn and Matplotlib x 39 = 507 images, against
the paper's 21,869 Waterloo Exploration and PASCAL VOC images; a larger set made by ``biqa datasets
synth`` can be named instead. ``'target'`` generates the set from the training items of the split
only (never validation or test items), with :mod:`biqa_bench.datasets.synthetic`'s generator; any
other value is a registered dataset (``synthetic``, ``mixed``, or a set made by ``biqa datasets
synth``), from which every item whose content is held out of the target's training split is
removed. The task follows the set: single-label (N = 39) when every item has a ``class_index``,
multi-label (N = 26, ``labels``) otherwise. Stage 1 is cached (:mod:`methods._support.pretrain`) by its
data fingerprint, recipe, hyper-parameters, initial weights and ``pretrain_seed`` (not the split's
seed), so every split and every target that needs the same stage reuses it; the run manifest names
it (``pretraining_manifest``).

Ablation (section 4.3, Fig. 3): ``pretrain_task`` = ``'cls+reg'`` (the method), ``'cls'``
(classification branch only), ``'reg'`` (regression branch only), ``'none'`` (FT: ImageNet weights
fine-tuned directly, the resnet50 baseline).

Choices where the paper is silent or ambiguous (check them here):

1. Pseudo-MOS scale: the generator's pseudo-MOS is 0-100; stage 1 regresses
   ``pmos_scale * quality / 100`` with ``pmos_scale = 10`` (Fig. 1 sets the PMOS side by side with
   TID2013's 0-9 MOS), which keeps L_s and the cross-entropy of the same order.
2. c1 enters cFC2 and m1 through a ReLU (eq. 5 applies ReLU to the concatenation; cFC2's input
   activation is not stated); rFC2 is 512 wide with a ReLU (its width is not given); the rFC3 bias
   starts at the mean target. With ``'reg'`` alone, m1 = ReLU(s1) (1024-d); with ``'cls'`` alone
   there is no regression branch.
3. Losses are averaged over the mini-batch (eq. 2 prints a plain sum; eqs. 4 and 6 have 1/M); the
   binary cross-entropy is summed over the 26 labels as eq. 4 writes it (eq. 4's
   "log(1 - log(c^))" is read as the usual log(1 - c^); eq. 1's denominator as sum_j exp(y_j)).
4. Stage 1 keeps its last epoch (no validation set for pre-training); one crop per image per
   epoch. Stage 2 keeps the epoch with the best validation SROCC (the paper reports the last of
   10) and starts the output bias at the mean training quality. No horizontal flips in either
   stage (the paper names crops only; ``-p flip=true`` adds them, to both stages).
5. Generated sets: each source image is resized to 256 x 256 before distortion; a synthetic target
   with ``pretrain_data='target'`` gets all 39 single distortions of each training content's
   reference (``blends_per_image`` does not apply there); authentic targets
   get ``blends_per_image`` blends per training image (default 28, the embedded generator's count;
   the paper kept ~700,000 images in all, set it higher for that); the authentic-like labels are the
   generator's 26 = 19 (type, level) + 7 type indicators (see
   :mod:`biqa_bench.datasets.distortions`). The paper also splits the augmented authentic set 80/20
   by content; we pre-train on all blends of the training items (none of them is a test image).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from methods._support import pretrain as P
from biqa_bench.errors import MethodError
from biqa_bench.methods import register_method
from biqa_bench.nn.backbones import LoadedWeights, resnet50
from biqa_bench.nn.method import DeepMethod, Training, init_bias_to_mean, setting
from biqa_bench.nn.trainer import PhaseResult, TrainData, epoch_batches, resolve_device
from methods.resnet50 import fine_tune

TASKS = ("cls+reg", "cls", "reg", "none")
STAGE1_VERSION = "1"


def build_backbone(pretrained: str, weights: str | None) -> tuple[nn.Module, int, LoadedWeights]:
    """ResNet-50 without its classifier (2048-d pooled feature), its feature size, its weights."""
    model, loaded = resnet50(pretrained, weights)
    model.fc = nn.Identity()
    return model, 2048, loaded


def _he(layer: nn.Linear) -> nn.Linear:
    nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
    nn.init.zeros_(layer.bias)
    return layer


class MultiTaskNet(nn.Module):
    """Stage 1 (Fig. 2): backbone -> classification branch (cFC1, cFC2) and regression branch
    (rFC1, concatenated with c1 through ReLU, rFC2, rFC3). Returns (logits or None, score or None)."""

    def __init__(self, backbone: nn.Module, feature_dim: int, n_classes: int, task: str = "cls+reg", hidden: int = 1024, reg_hidden: int = 512):
        super().__init__()
        if task not in ("cls+reg", "cls", "reg"):
            raise MethodError(f"qamt: stage 1 task must be one of cls+reg, cls, reg, not {task!r}")
        self.task = task
        self.backbone = backbone
        self.has_cls = "cls" in task
        self.has_reg = "reg" in task
        if self.has_cls:
            self.cfc1 = _he(nn.Linear(feature_dim, hidden))
            self.cfc2 = _he(nn.Linear(hidden, n_classes))
        if self.has_reg:
            self.rfc1 = _he(nn.Linear(feature_dim, hidden))
            self.rfc2 = _he(nn.Linear(hidden * (2 if self.has_cls else 1), reg_hidden))
            self.rfc3 = _he(nn.Linear(reg_hidden, 1))

    def classification_modules(self) -> list[nn.Module]:
        return [self.cfc1, self.cfc2] if self.has_cls else []

    def regression_modules(self) -> list[nn.Module]:
        return [self.rfc1, self.rfc2, self.rfc3] if self.has_reg else []

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        v = self.backbone(images)
        logits = score = None
        c1 = None
        if self.has_cls:
            c1 = self.cfc1(v)
            logits = self.cfc2(F.relu(c1))
        if self.has_reg:
            s1 = self.rfc1(v)
            m1 = F.relu(torch.cat([s1, c1], dim=1) if c1 is not None else s1)  # eq. 5
            score = self.rfc3(F.relu(self.rfc2(m1))).squeeze(1)
        return logits, score


def classification_loss(logits: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Eq. 2 (softmax cross-entropy, class indices) or eq. 4 (sigmoid BCE summed over labels),
    both averaged over the mini-batch."""
    if kind == "synthetic":
        return F.cross_entropy(logits.float(), target.long())
    return F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none").sum(1).mean()


def multitask_loss(
    logits: torch.Tensor | None, score: torch.Tensor | None, class_target: torch.Tensor, pmos: torch.Tensor, kind: str
) -> tuple[torch.Tensor, dict[str, float]]:
    """L = L_s + L_c (eqs. 7-8); either term is absent when its branch is (CLS / REG ablation)."""
    total = None
    parts: dict[str, float] = {}
    if score is not None:
        l_s = F.l1_loss(score.float(), pmos.float())  # eq. 6
        total = l_s
        parts["l_s"] = float(l_s.detach())
    if logits is not None:
        l_c = classification_loss(logits, class_target, kind)
        total = l_c if total is None else total + l_c
        parts["l_c"] = float(l_c.detach())
    if total is None:
        raise MethodError("qamt: a stage-1 network needs a classification or a regression branch")
    return total, parts


class QualityRegressor(nn.Module):
    """Stage 2 (section 3.2): backbone -> dropout -> FC 256 -> ReLU -> FC 1."""

    def __init__(self, backbone: nn.Module, feature_dim: int, dropout: float = 0.5):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(nn.Dropout(dropout), _he(nn.Linear(feature_dim, 256)), nn.ReLU(inplace=True), _he(nn.Linear(256, 1)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images)).squeeze(1)


_STAGE2 = dict(lr_backbone=1e-5, lr_head=1e-5, weight_decay=0.0)
_STAGE1_PAPER = dict(
    s1_epochs=30, s1_batch_size=256, s1_image_size=256, s1_crop=224, s1_lr_backbone=1e-4,
    s1_lr_cls_synthetic=1e-5, s1_lr_cls_authentic=1e-4, s1_lr_reg=1e-6, s1_max_steps=None, blends_per_image=28,
)


@register_method("qamt")
@dataclass(eq=False)
class QAMT(DeepMethod):
    """Quality-aware multi-task pre-training (stage 1, cached) + ResNet-50 fine-tuning (stage 2)."""

    RECIPES = {
        "paper": dict(
            flip=False,
            epochs=10, batch_size=32, crop=224, image_size="source", test_crops=60, crops_per_image=100,
            eval_batch_size=120, max_steps=None, **_STAGE2, **_STAGE1_PAPER,
        ),
        "quick": dict(
            flip=True,
            epochs=2, batch_size=4, crop=64, image_size="short80", test_crops=2, crops_per_image=1,
            eval_batch_size=16, max_steps=3, lr_backbone=1e-4, lr_head=1e-3, weight_decay=0.0,
            s1_epochs=1, s1_batch_size=4, s1_image_size=72, s1_crop=64, s1_lr_backbone=1e-4,
            s1_lr_cls_synthetic=1e-4, s1_lr_cls_authentic=1e-4, s1_lr_reg=1e-4, s1_max_steps=3, blends_per_image=2,
        ),
    }
    EXTRA_STATE = ("pretraining_manifest",)
    STAGE_STATES = ("_stage1_backbone",)

    pretrain_task: str = "cls+reg"
    pretrain_data: str = "auto"
    pretrain_seed: int = 0
    pretrain_epochs: int | None = setting(recipe_key="s1_epochs")
    blends_per_image: int | None = setting()
    pmos_scale: float = 10.0
    lr_backbone: float | None = setting()
    lr_head: float | None = setting()
    crops_per_image: int | None = setting()
    dropout: float = 0.5
    cuda_graphs: bool = False

    def settings(self) -> dict[str, Any]:
        self.check_choice("pretrain_task", TASKS)
        return super().settings()

    # ------------------------------------------------------------------ stage 1

    def pretrain_spec(self, ctx) -> str:
        if self.pretrain_data != "auto":
            return self.pretrain_data
        dataset = getattr(ctx, "dataset", None)
        return "synthetic" if dataset is not None and dataset.info.kind == "synthetic" else "target"

    def stage1_inputs(self, settings: dict[str, Any], pset: P.PretrainSet, loaded: LoadedWeights) -> dict[str, Any]:
        """Everything the stage-1 result depends on (its cache key is their SHA-256)."""
        return {
            "version": STAGE1_VERSION,
            "task": self.pretrain_task,
            "data": pset.describe(),
            "recipe": self.recipe,
            "settings": {**{k: v for k, v in settings.items() if k.startswith("s1_")}, "flip": settings["flip"]},
            "pmos_scale": float(self.pmos_scale),
            "backbone": "resnet50",
            "init": {"pretrained": self.pretrained, "weights_sha256": loaded.sha256},
            "seed": int(self.pretrain_seed),
        }

    def pretrain(self, train_items, ctx, settings: dict[str, Any]) -> P.StageResult:
        """Stage 1 for this split: from the cache, or trained and stored there."""
        spec = self.pretrain_spec(ctx)
        pset = P.resolve_pretrain_set(spec, train_items, ctx, seed=int(self.pretrain_seed), per_source=P.generated_per_source(spec, ctx, settings["blends_per_image"]))
        # Seeded so that a randomly initialised backbone (pretrained='none') is a function of the
        # stage key too (ImageNet weights replace every random value anyway).
        torch.manual_seed(int(self.pretrain_seed))
        backbone, feature_dim, loaded = build_backbone(self.pretrained, self.weights)
        inputs = self.stage1_inputs(settings, pset, loaded)
        device = resolve_device(ctx.device)

        def train(work, key):
            torch.manual_seed(int(self.pretrain_seed))
            net = self._to_device(MultiTaskNet(backbone, feature_dim, P.n_classes(pset.kind), self.pretrain_task), device)
            history = self._train_stage1(net, pset, settings, P.stage_context(ctx, work, self.pretrain_seed), device, key)
            return net.state_dict(), {"history": history.as_dict(), "n_items": int(len(pset.items)), "kind": pset.kind}

        return P.cached_stage("qamt", f"stage1-{self.pretrain_task}", inputs, train, log=ctx.log)

    def _train_stage1(self, net: MultiTaskNet, pset: P.PretrainSet, settings, ctx, device, key: str) -> PhaseResult:
        items = pset.items
        n = len(items)
        source = P.pretrain_image_source(pset, int(settings["s1_image_size"]), progress=ctx.progress)
        class_target = torch.as_tensor(P.classification_targets(items, pset.kind)).to(device)
        pmos = torch.as_tensor(items["quality"].to_numpy(np.float32) * float(self.pmos_scale) / 100.0).to(device)
        if net.has_reg:
            init_bias_to_mean(net.rfc3, pmos.cpu().numpy())
        lr_cls = settings["s1_lr_cls_synthetic"] if pset.kind == "synthetic" else settings["s1_lr_cls_authentic"]
        groups = [{"params": net.backbone.parameters(), "lr": settings["s1_lr_backbone"]}]
        if net.has_cls:
            groups.append({"params": [p for m in net.classification_modules() for p in m.parameters()], "lr": lr_cls})
        if net.has_reg:
            groups.append({"params": [p for m in net.regression_modules() for p in m.parameters()], "lr": settings["s1_lr_reg"]})
        optimizer = torch.optim.Adam(groups, betas=(0.9, 0.999))
        # The trainer hands each step its rows' "quality"; here that is the row index, from which
        # the loss looks up the class target and the pseudo-MOS of each crop.
        data = TrainData(item_ids=items["item_id"].astype(str).to_numpy(), quality=np.arange(n, dtype=np.float64), source=source, crop=int(settings["s1_crop"]), flip=settings["flip"])

        def loss(images: torch.Tensor, rows: torch.Tensor, epoch: int):
            rows = rows.long()
            logits, score = net(images)
            return multitask_loss(logits, score, class_target[rows], pmos[rows], pset.kind)

        return P.run_stage_phase("stage1", net, data, optimizer, loss, [net], settings, "s1", ctx, device, "qamt pre-training", key)

    # ------------------------------------------------------------------ protocol

    def prepare_stages(self, train_items, ctx) -> list[dict[str, Any]]:
        if self.pretrain_task == "none":
            return []
        return [self.pretrain(train_items, ctx, self.fit_settings(train_items)).summary()]

    def fit(self, train_items, val_items, ctx) -> "QAMT":
        settings = self.fit_settings(train_items)
        if self.pretrain_task == "none":
            return self.fit_from_stages(train_items, val_items, ctx, {"pretrain_task": "none", "stages": []})
        result = self.pretrain(train_items, ctx, settings)
        backbone = {k.removeprefix("backbone."): v for k, v in result.state_dict().items() if k.startswith("backbone.")}
        manifest = {"pretrain_task": self.pretrain_task, "stages": [result.summary()]}
        return self.fit_from_stages(train_items, val_items, ctx, manifest, _stage1_backbone=backbone)

    def build_model(self, settings, pretrained, weights) -> tuple[nn.Module, LoadedWeights]:
        backbone, feature_dim, loaded = build_backbone(pretrained, weights)
        if self._stage1_backbone is not None:
            backbone.load_state_dict(self._stage1_backbone)
        return QualityRegressor(backbone, feature_dim, self.dropout), loaded

    def train(self, training: Training) -> list[PhaseResult]:
        return fine_tune(self, training, "finetune", epoch_batches)
