"""MetaIQA (Zhu, Li, Wu, Dong and Shi, "MetaIQA: deep meta-learning for no-reference image
quality assessment", CVPR 2020).

Idea (section 3): learn a *quality prior* shared by distortions, by meta-learning over
distortion-specific NR-IQA tasks from synthetically distorted images, then fine-tune it on the
target (authentic) database.

Network: an ImageNet ResNet-18 (its 1000-d output) followed by FC 1024, batch norm, PReLU,
dropout 0.5, FC 512, batch norm, PReLU, dropout 0.5, FC 1 and a sigmoid (the score in [0, 1];
here times 100, the 0-100 quality scale). Loss: the squared error on the quality / 100.

Meta-training (section 3.2, Algorithm 1), the bi-level gradient optimisation: every task T_i is
one distortion type with a support set D_s and a query set D_q. The inner level adapts the
parameters on the support set, theta'_i = theta - alpha grad L_s(theta) (``meta_inner_steps``
steps); the outer level updates theta with the gradient of the query losses at the adapted
parameters, summed over a meta-batch of tasks: theta <- theta - beta grad_theta sum_i
L_q(theta'_i), differentiating through the inner step (second order; ``first_order=True``
drops the second-order term). Fine-tuning (section 3.3): the whole network on the target's
training images.

Readings where the paper is silent or ambiguous (each can be checked against this list):

1. Tasks come from the shared generator's single-distortion set (``pretrain_data``, default
   the embedded ``synthetic`` set, or any ``biqa datasets synth --kind synthetic`` set, or
   ``'target'``; content held out of the target's split removed), one task per distortion type
   (9 types: JPEG, JPEG 2000, blur, noise, ...; the paper uses the 24 TID2013 and 25 KADID-10k
   types). Labels are the generator's pseudo-MOS (0-100). Cached as a stage keyed by its data,
   recipe, initial weights and ``pretrain_seed``: shared by every split and target with the
   same data.
2. Episodes: each epoch every type's images are shuffled and cut into episodes of
   ``meta_support`` + ``meta_query`` images (first the support set, then the query set; a type
   with fewer images than that is drawn with replacement), all episodes are shuffled and
   grouped into meta-batches of ``meta_tasks`` (5) episodes: one outer step each.
3. Rates (the paper gives alpha and beta without the head/backbone split): inner SGD at
   ``meta_inner_lr`` (1e-4), outer Adam at ``meta_outer_lr`` (1e-4), both times
   ``head_scale`` (100, the authors' release's 1e-2 for the FC head) for the head; 50 meta
   epochs, rates x 0.8 every 10 epochs; images resized to 256 x 256, random 224 x 224 crops and
   flips. Batch-norm statistics are updated by every support and query pass.
4. Fine-tuning: Adam, backbone 1e-5 and head 1e-3 (the same 100x), x 0.8 every 10 epochs, 100
   epochs, mini-batch 50, images resized to 256 x 256, random 224 x 224 crops and flips; at
   test time the whole image resized to 224 x 224 (``test_crops=0``); the epoch with the best
   validation SROCC kept.
5. The meta stage keeps its last epoch (no validation set for pre-training).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from methods._support import pretrain as P
from biqa_bench.errors import MethodError
from biqa_bench.methods import register_method
from biqa_bench.nn.backbones import LoadedWeights, resnet18
from biqa_bench.nn.method import DeepMethod, Training, setting
from biqa_bench.nn.trainer import Phase, PhaseResult, StepDecay, TrainData, resolve_device, run_phase

STAGE_VERSION = "1"


class MetaIQANet(nn.Module):
    """ResNet-18 (1000-d output) -> FC 1024 - BN - PReLU - dropout - FC 512 - BN - PReLU - dropout
    - FC 1 - sigmoid, times 100: the quality (N,) on the 0-100 scale."""

    def __init__(self, backbone: nn.Module, feature_dim: int = 1000, dropout: float = 0.5):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(
            nn.Linear(feature_dim, 1024), nn.BatchNorm1d(1024), nn.PReLU(), nn.Dropout(dropout),
            nn.Linear(1024, 512), nn.BatchNorm1d(512), nn.PReLU(), nn.Dropout(dropout),
            nn.Linear(512, 1),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return 100.0 * torch.sigmoid(self.head(self.backbone(images)).squeeze(1))


def quality_loss(predicted: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """The squared error on the [0, 1] scale (quality / 100), averaged (in at least fp32)."""
    dtype = torch.promote_types(predicted.dtype, torch.float32)
    return F.mse_loss(predicted.to(dtype) / 100.0, quality.to(dtype) / 100.0)


def task_labels(items) -> np.ndarray:
    """The task (distortion type, 0..K-1 in the class table's order) of every single-distortion item."""
    from biqa_bench.datasets import distortions as D

    types = list(dict.fromkeys(name for name, _ in D.SYNTHETIC_CLASSES))
    classes = P.classification_targets(items, "synthetic")
    return np.array([types.index(D.SYNTHETIC_CLASSES[c][0]) for c in classes], dtype=np.int64)


def episodes(tasks: np.ndarray, support: int, query: int, meta_tasks: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch's outer steps: rows of ``meta_tasks`` episodes, each ``support`` then ``query``
    rows of one task (see the module docstring, item 2)."""
    size = support + query
    found = []
    for task in np.unique(tasks):
        members = rng.permutation(np.flatnonzero(tasks == task))
        if len(members) < size:
            members = rng.choice(members, size, replace=True)
        found += [members[i : i + size] for i in range(0, len(members) - size + 1, size)]
    order = rng.permutation(len(found))
    steps = [np.concatenate([found[k] for k in order[i : i + meta_tasks]]) for i in range(0, len(order), meta_tasks)]
    return [s for s in steps if len(s) >= size]


def bilevel_loss(
    model: nn.Module, images: torch.Tensor, quality: torch.Tensor, support: int, query: int, inner_lrs: dict[str, float],
    inner_steps: int = 1, first_order: bool = False,
) -> torch.Tensor:
    """The outer objective of one meta-batch: for every episode (``support`` then ``query`` rows),
    adapt the parameters on its support set by ``inner_steps`` SGD steps at ``inner_lrs`` (per
    parameter name), and average the query losses at the adapted parameters. Its gradient with
    respect to the model's parameters is the meta-gradient (through the inner steps unless
    ``first_order``)."""
    size = support + query
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    n_tasks = len(images) // size
    total = images.new_zeros(())
    for t in range(n_tasks):
        rows = slice(t * size, (t + 1) * size)
        x, q = images[rows], quality[rows]
        fast = params
        for _ in range(inner_steps):
            inner = quality_loss(functional_call(model, (fast, buffers), (x[:support],)), q[:support])
            grads = torch.autograd.grad(inner, list(fast.values()), create_graph=not first_order, allow_unused=True)
            fast = {
                name: p if g is None else p - inner_lrs[name] * (g.detach() if first_order else g)
                for (name, p), g in zip(fast.items(), grads)
            }
        total = total + quality_loss(functional_call(model, (fast, buffers), (x[support:],)), q[support:])
    return total / max(n_tasks, 1)


def head_groups(model: MetaIQANet, backbone_lr: float, head_lr: float) -> list[dict[str, Any]]:
    return [{"params": list(model.backbone.parameters()), "lr": backbone_lr}, {"params": list(model.head.parameters()), "lr": head_lr}]


def decay_milestones(epochs: int, every: int = 10) -> list[int]:
    """Epochs (0-based) where the rates are multiplied by 0.8: every ``every`` epochs."""
    return list(range(every, int(epochs), every))


_META_PAPER = dict(
    meta_epochs=50, meta_tasks=5, meta_support=16, meta_query=16, meta_inner_steps=1, meta_inner_lr=1e-4,
    meta_outer_lr=1e-4, meta_image_size=256, meta_crop=224, meta_max_steps=None,
)


@register_method("metaiqa")
@dataclass(eq=False)
class MetaIQA(DeepMethod):
    """MetaIQA: a quality prior meta-learned over distortion-type tasks (cached), fine-tuned on the target."""

    RECIPES = {
        "paper": dict(
            flip=True, epochs=100, batch_size=50, crop=224, image_size="256x256", test_crops=0,
            lr_backbone=1e-5, lr_head=1e-3, head_scale=100.0, weight_decay=0.0, eval_batch_size=50, max_steps=None, **_META_PAPER,
        ),
        "quick": dict(
            flip=True, epochs=2, batch_size=4, crop=64, image_size="72x72", test_crops=0,
            lr_backbone=1e-4, lr_head=1e-3, head_scale=10.0, weight_decay=0.0, eval_batch_size=16, max_steps=3,
            meta_epochs=1, meta_tasks=2, meta_support=2, meta_query=2, meta_inner_steps=1, meta_inner_lr=1e-3,
            meta_outer_lr=1e-4, meta_image_size=72, meta_crop=64, meta_max_steps=2,
        ),
        # CPU-sized (the ``recipe`` entry of biqa_bench.nn.method): second-order meta steps, then fine-tuning
        "demo": dict(
            flip=True, epochs=2, batch_size=8, crop=64, image_size="72x72", test_crops=0,
            lr_backbone=1e-4, lr_head=1e-3, head_scale=10.0, weight_decay=0.0, eval_batch_size=16, max_steps=8,
            meta_epochs=1, meta_tasks=2, meta_support=4, meta_query=4, meta_inner_steps=1, meta_inner_lr=1e-3,
            meta_outer_lr=1e-4, meta_image_size=72, meta_crop=64, meta_max_steps=4,
        ),
    }
    EXTRA_STATE = ("pretraining_manifest",)
    STAGE_STATES = ("_prior",)

    pretrain_data: str = "synthetic"
    pretrain_seed: int = 0
    pretrain_epochs: int | None = setting(recipe_key="meta_epochs")
    inner_steps: int | None = setting(recipe_key="meta_inner_steps")
    first_order: bool = False
    meta: bool = True
    lr_backbone: float | None = setting()
    lr_head: float | None = setting()
    dropout: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        self.first_order, self.meta = bool(self.first_order), bool(self.meta)

    def settings(self) -> dict[str, Any]:
        merged = super().settings()
        for key in ("meta_tasks", "meta_support", "meta_query", "meta_inner_steps", "meta_epochs"):
            if int(merged[key]) < 1:
                raise MethodError(f"metaiqa: {key} must be at least 1, not {merged[key]}")
        for key in ("meta_support", "meta_query"):
            if int(merged[key]) < 2:  # the head's batch norm needs two images in training mode
                raise MethodError(f"metaiqa: {key} must be at least 2 images, not {merged[key]}")
        return merged

    # ------------------------------------------------------------------ meta-training (the quality prior)

    def stage_inputs(self, settings: dict[str, Any], pset: P.PretrainSet, loaded: LoadedWeights) -> dict[str, Any]:
        return {
            "version": STAGE_VERSION,
            "data": pset.describe(),
            "recipe": self.recipe,
            "settings": {**{k: v for k, v in settings.items() if k.startswith("meta_")}, "flip": settings["flip"], "head_scale": settings["head_scale"]},
            "first_order": self.first_order,
            "dropout": float(self.dropout),
            "backbone": "resnet18",
            "init": {"pretrained": self.pretrained, "weights_sha256": loaded.sha256},
            "seed": int(self.pretrain_seed),
        }

    def pretrain(self, train_items, ctx, settings: dict[str, Any]) -> P.StageResult:
        pset = P.synthetic_pretrain_set("metaiqa", self.pretrain_data, train_items, ctx, int(self.pretrain_seed), "tasks")
        torch.manual_seed(int(self.pretrain_seed))
        backbone, loaded = resnet18(self.pretrained, self.weights)
        device = resolve_device(ctx.device)

        def train(work, key):
            torch.manual_seed(int(self.pretrain_seed))
            net = self._to_device(MetaIQANet(backbone, dropout=self.dropout), device)
            history = self._meta_train(net, pset, settings, P.stage_context(ctx, work, self.pretrain_seed), device, key)
            return net.state_dict(), {"history": history.as_dict(), "n_items": int(len(pset.items)), "kind": pset.kind}

        return P.cached_stage("metaiqa", "meta", self.stage_inputs(settings, pset, loaded), train, log=ctx.log)

    def _meta_train(self, net: MetaIQANet, pset: P.PretrainSet, settings, ctx, device, key: str) -> PhaseResult:
        items = pset.items
        source = P.pretrain_image_source(pset, settings["meta_image_size"], progress=ctx.progress)
        tasks = task_labels(items)
        scale = float(settings["head_scale"])
        inner_lr = float(settings["meta_inner_lr"])
        head_names = {f"head.{n}" for n, _ in net.head.named_parameters()}
        inner_lrs = {n: inner_lr * (scale if n in head_names else 1.0) for n, _ in net.named_parameters()}
        outer = float(settings["meta_outer_lr"])
        optimizer = torch.optim.Adam(head_groups(net, outer, outer * scale))
        quality = items["quality"].to_numpy(np.float64)
        data = TrainData(item_ids=items["item_id"].astype(str).to_numpy(), quality=quality, source=source, crop=int(settings["meta_crop"]), flip=settings["flip"])
        support, query, meta_tasks = int(settings["meta_support"]), int(settings["meta_query"]), int(settings["meta_tasks"])
        steps, first_order = int(settings["meta_inner_steps"]), self.first_order

        def loss(images: torch.Tensor, q: torch.Tensor, epoch: int):
            value = bilevel_loss(net, images, q, support, query, inner_lrs, steps, first_order)
            return value, {"query_mse": value.detach()}

        epochs = int(settings["meta_epochs"])
        phase = Phase(
            name="meta", epochs=epochs, optimizer=optimizer, schedule=StepDecay(decay_milestones(epochs), 0.8),
            batches=lambda epoch, rng: episodes(tasks, support, query, meta_tasks, rng), loss=loss, train_modules=[net],
            evaluate=None, max_steps=settings.get("meta_max_steps"),
        )
        return run_phase(phase, net, data, ctx, device, "metaiqa meta-training", key, resume=True)

    # ------------------------------------------------------------------ protocol

    def fit(self, train_items, val_items, ctx) -> "MetaIQA":
        settings = self.fit_settings(train_items)
        if not self.meta:
            return self.fit_from_stages(train_items, val_items, ctx, {"meta": False, "stages": []})
        result = self.pretrain(train_items, ctx, settings)
        return self.fit_from_stages(train_items, val_items, ctx, {"meta": True, "stages": [result.summary()]},
                                    _prior=result.state_dict())

    def build_model(self, settings, pretrained, weights) -> tuple[nn.Module, LoadedWeights]:
        backbone, loaded = resnet18(pretrained, weights)
        model = MetaIQANet(backbone, dropout=self.dropout)
        if self._prior is not None:
            model.load_state_dict(self._prior)
        return model, loaded

    def train(self, training: Training) -> list[PhaseResult]:
        model, settings = training.model, training.settings
        n, batch = len(training.data.item_ids), int(settings["batch_size"])
        epochs = int(settings["epochs"])

        def loss(images: torch.Tensor, quality: torch.Tensor, epoch: int):
            mse = quality_loss(model(images), quality)
            return mse, {"mse": mse.detach()}

        phase = Phase(
            name="finetune", epochs=epochs,
            optimizer=torch.optim.Adam(head_groups(model, settings["lr_backbone"], settings["lr_head"]), weight_decay=settings["weight_decay"]),
            schedule=StepDecay(decay_milestones(epochs), 0.8), batches=lambda epoch, rng: P.epoch_batches(n, 1, batch, rng),
            loss=loss, train_modules=[model], evaluate=training.evaluate, max_steps=settings.get("max_steps"),
        )
        return [self.run_phase(training, phase)]
