"""DBCNN (Zhang, Ma, Yan, Deng and Wang, "Blind image quality assessment using a deep bilinear
convolutional neural network", IEEE TCSVT 30(1), 2020).

Two streams (section III):

* **S-CNN** for synthetic distortions: nine 3 x 3 convolutions with batch norm and ReLU
  (3 -> 48, 48 -> 48 /2, 48 -> 64, 64 -> 64 /2, 64 -> 64, 64 -> 64 /2, 64 -> 128, 128 -> 128,
  128 -> 128 /2; a 224 x 224 input gives 128 x 14 x 14), pre-trained to classify the distortion
  type and level of synthetically distorted images: global average pooling, two 1 x 1
  convolutions to 256 channels with batch norm and ReLU, and a linear layer to the 39 classes
  (III-A; softmax cross-entropy).
* **VGG-16** (ImageNet) for authentic distortions: its convolutional layers up to conv5_3 and
  its ReLU (512 channels at 1/16 of the input; the last max pooling removed).

Bilinear pooling (III-B, eq. 3-5): the S-CNN map is resized (bilinear interpolation) to the
VGG-16 map's size; B = (1 / HW) sum_l f_V(l) f_S(l)^T (512 x 128), flattened to 65,536 values,
signed square root sign(x) sqrt(|x| + 1e-8) and L2 normalisation, then one linear layer gives the
quality. Loss: mean squared error on the quality (IV-A).

Training (IV-A), two stages: (1) the linear layer alone, both streams frozen: SGD with momentum
0.9, learning rate 1e-3, weight decay 5e-4, 50 epochs; (2) the whole network fine-tuned: Adam,
learning rate 1e-5, weight decay 5e-4, 50 epochs; mini-batch 8, random horizontal flips, and the
epoch with the best validation SROCC kept in each stage. S-CNN pre-training: SGD with momentum
0.9, weight decay 5e-4, mini-batch 128, 30 epochs with the learning rate decaying log-linearly
from 1e-1 to 1e-4, images scaled to a 256 shorter side, random 224 x 224 crops and flips.

Readings where the paper is silent or ambiguous (each can be checked against this list):

1. S-CNN pre-training data (``pretrain_data``): the paper distorts Waterloo Exploration and
   PASCAL VOC images with nine distortion types at five levels (39 classes). Here: the shared
   generator's 39-class single-distortion set (:mod:`biqa_bench.datasets.distortions`; default
   the embedded ``synthetic`` set, or any registered set made by ``biqa datasets synth --kind
   synthetic``, or ``'target'``: the 39 distortions of the training images), with the items
   whose content is held out of the target's split removed (:mod:`biqa_bench.pretrain`); cached
   as a stage keyed by its data, recipe, initial state and ``pretrain_seed``, so every split and
   every target that sees the same data reuses it. The paper keeps a held-out 20 % to monitor
   classification; we keep the last epoch (no validation for pre-training). The S-CNN starts
   from a random He initialisation (batch-norm scale 1) in every case: ``pretrained`` applies to
   VGG-16 only.
2. Crops: the paper trains on random crops of the images at their resolution (432 x 432 on LIVE,
   448 x 448 on LIVE Challenge in the authors' release) and tests on the whole image. The
   ``paper`` recipe takes 448 x 448 random crops, and tests the whole image resized to the crop
   size (``test_crops=0``; a batch needs one size); ``-p test_crops=K`` averages K crops instead.
3. The signed square root: after ReLU both streams are non-negative, so sign(x) is 1 and the
   root is sqrt(x + 1e-8), as printed; the sign is kept for generality.
4. Stage 1 initialises the linear layer He-normal with its bias at the mean training quality
   (the paper does not say how); stage 2 starts from stage 1's best state. In stage 1 the two
   streams stay in evaluation mode (frozen batch-norm statistics).
5. Targets are the 0-100 quality (MSE on that scale; the paper regresses each database's MOS or
   DMOS as distributed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from methods._support import pretrain as P
from biqa_bench.methods import register_method
from biqa_bench.nn.backbones import LoadedWeights, vgg16
from biqa_bench.nn.method import DeepMethod, Training, init_bias_to_mean, setting
from biqa_bench.nn.trainer import EpochRates, Phase, PhaseResult, StepDecay, TrainData, resolve_device, run_phase

STAGE_VERSION = "1"
#: (in, out, stride) of the nine S-CNN convolutions (section III-A, Fig. 2).
SCNN_CONVS = ((3, 48, 1), (48, 48, 2), (48, 64, 1), (64, 64, 2), (64, 64, 1), (64, 64, 2), (64, 128, 1), (128, 128, 1), (128, 128, 2))


def _he_init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class SCNN(nn.Module):
    """The S-CNN: ``features`` (128 channels at 1/16) and the distortion classifier used to pre-train it."""

    def __init__(self, n_classes: int = 39):
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out, stride in SCNN_CONVS:
            layers += [nn.Conv2d(c_in, c_out, 3, stride, 1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.projection = nn.Sequential(
            nn.Conv2d(128, 256, 1), nn.BatchNorm2d(256), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 1), nn.BatchNorm2d(256), nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(256, n_classes)
        _he_init(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pooled = self.features(images).mean(dim=(2, 3), keepdim=True)
        return self.classifier(self.projection(pooled).flatten(1))


def vgg16_features(vgg: nn.Module) -> nn.Sequential:
    """VGG-16's convolutional layers through conv5_3 + ReLU (its last max pooling removed)."""
    return nn.Sequential(*list(vgg.features.children())[:-1])


def bilinear_pool(authentic: torch.Tensor, synthetic: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Eqs. 3-5: (N, C1, H, W) and (N, C2, h, w) -> (N, C1 * C2), the second map resized to
    H x W, averaged outer products over positions, signed square root, L2 normalisation."""
    n, c1, h, w = authentic.shape
    if synthetic.shape[2:] != (h, w):
        synthetic = F.interpolate(synthetic, size=(h, w), mode="bilinear", align_corners=False)
    a = authentic.reshape(n, c1, h * w)
    s = synthetic.reshape(n, synthetic.shape[1], h * w)
    pooled = torch.bmm(a, s.transpose(1, 2)).reshape(n, -1) / (h * w)
    rooted = torch.sign(pooled) * torch.sqrt(pooled.abs() + eps)
    return F.normalize(rooted, dim=1)


class DBCNNNet(nn.Module):
    """VGG-16 and S-CNN streams -> bilinear pooling -> one linear layer -> quality (N,)."""

    def __init__(self, vgg_features: nn.Module, scnn_features: nn.Module, vgg_channels: int = 512, scnn_channels: int = 128):
        super().__init__()
        self.vgg = vgg_features
        self.scnn = scnn_features
        self.fc = nn.Linear(vgg_channels * scnn_channels, 1)
        nn.init.kaiming_normal_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc(bilinear_pool(self.vgg(images), self.scnn(images))).squeeze(1)


def log_spaced_rates(first: float, last: float, epochs: int) -> list[float]:
    """The S-CNN's per-epoch rates: ``epochs`` values log-spaced from ``first`` to ``last``."""
    return [float(r) for r in np.logspace(math.log10(first), math.log10(last), max(int(epochs), 1))]


_PRETRAIN_PAPER = dict(
    s1_epochs=30, s1_batch_size=128, s1_image_size="short256", s1_crop=224, s1_lr_first=1e-1, s1_lr_last=1e-4,
    s1_weight_decay=5e-4, s1_max_steps=None,
)


@register_method("dbcnn")
@dataclass(eq=False)
class DBCNN(DeepMethod):
    """Deep bilinear CNN: a pre-trained S-CNN (cached) and VGG-16, bilinear pooling, two-stage training."""

    RECIPES = {
        "paper": dict(
            flip=True, epochs=50, fc_epochs=50, batch_size=8, crop=448, image_size="source", test_crops=0,
            lr_fc=1e-3, lr=1e-5, weight_decay=5e-4, eval_batch_size=8, max_steps=None, **_PRETRAIN_PAPER,
        ),
        "quick": dict(
            flip=True, epochs=1, fc_epochs=1, batch_size=4, crop=64, image_size="short80", test_crops=0,
            lr_fc=1e-3, lr=1e-4, weight_decay=5e-4, eval_batch_size=16, max_steps=2,
            s1_epochs=1, s1_batch_size=4, s1_image_size=72, s1_crop=64, s1_lr_first=1e-2, s1_lr_last=1e-3,
            s1_weight_decay=5e-4, s1_max_steps=2,
        ),
        # CPU-sized (the ``recipe`` entry of biqa_bench.nn.method): both streams, both stages, a few steps each
        "demo": dict(
            flip=True, epochs=1, fc_epochs=1, batch_size=8, crop=64, image_size="short72", test_crops=0,
            lr_fc=1e-3, lr=1e-4, weight_decay=5e-4, eval_batch_size=16, max_steps=8,
            s1_epochs=2, s1_batch_size=16, s1_image_size=72, s1_crop=64, s1_lr_first=1e-2, s1_lr_last=1e-3,
            s1_weight_decay=5e-4, s1_max_steps=10,
        ),
    }
    EXTRA_STATE = ("pretraining_manifest",)
    STAGE_STATES = ("_scnn_state",)

    fc_epochs: int | None = setting()
    pretrain_data: str = "synthetic"
    pretrain_seed: int = 0
    pretrain_epochs: int | None = setting(recipe_key="s1_epochs")

    # ------------------------------------------------------------------ S-CNN pre-training

    def stage_inputs(self, settings: dict[str, Any], pset: P.PretrainSet) -> dict[str, Any]:
        """Everything the S-CNN depends on (its cache key is their SHA-256)."""
        return {
            "version": STAGE_VERSION,
            "data": pset.describe(),
            "recipe": self.recipe,
            "settings": {**{k: v for k, v in settings.items() if k.startswith("s1_")}, "flip": settings["flip"]},
            "init": "he-normal",
            "seed": int(self.pretrain_seed),
        }

    def pretrain(self, train_items, ctx, settings: dict[str, Any]) -> P.StageResult:
        """The S-CNN for this split: from the cache, or trained and stored there."""
        pset = P.synthetic_pretrain_set("dbcnn", self.pretrain_data, train_items, ctx, int(self.pretrain_seed), "classes")
        device = resolve_device(ctx.device)

        def train(work, key):
            torch.manual_seed(int(self.pretrain_seed))
            net = self._to_device(SCNN(P.n_classes("synthetic")), device)
            history = self._train_scnn(net, pset, settings, P.stage_context(ctx, work, self.pretrain_seed), device, key)
            return net.state_dict(), {"history": history.as_dict(), "n_items": int(len(pset.items)), "kind": pset.kind}

        return P.cached_stage("dbcnn", "scnn", self.stage_inputs(settings, pset), train, log=ctx.log)

    def _train_scnn(self, net: SCNN, pset: P.PretrainSet, settings, ctx, device, key: str) -> PhaseResult:
        items = pset.items
        source = P.pretrain_image_source(pset, settings["s1_image_size"], progress=ctx.progress)
        classes = torch.as_tensor(P.classification_targets(items, "synthetic")).to(device)
        optimizer = torch.optim.SGD(net.parameters(), lr=settings["s1_lr_first"], momentum=0.9, weight_decay=settings["s1_weight_decay"])
        # The trainer hands each step its rows' "quality": here the row index, from which the loss
        # looks up each crop's class.
        n = len(items)
        data = TrainData(item_ids=items["item_id"].astype(str).to_numpy(), quality=np.arange(n, dtype=np.float64), source=source, crop=int(settings["s1_crop"]), flip=settings["flip"])

        def loss(images: torch.Tensor, rows: torch.Tensor, epoch: int):
            ce = F.cross_entropy(net(images).float(), classes[rows.long()])
            return ce, {"cross_entropy": ce.detach()}

        epochs, batch = int(settings["s1_epochs"]), int(settings["s1_batch_size"])
        phase = Phase(
            name="scnn", epochs=epochs, optimizer=optimizer,
            schedule=EpochRates(log_spaced_rates(settings["s1_lr_first"], settings["s1_lr_last"], epochs)),
            batches=lambda epoch, rng: P.epoch_batches(n, 1, batch, rng), loss=loss, train_modules=[net],
            evaluate=None, max_steps=settings.get("s1_max_steps"),
        )
        return run_phase(phase, net, data, ctx, device, "dbcnn S-CNN pre-training", key, resume=True)

    # ------------------------------------------------------------------ protocol

    def fit(self, train_items, val_items, ctx) -> "DBCNN":
        settings = self.fit_settings(train_items)
        result = self.pretrain(train_items, ctx, settings)
        scnn = {k.removeprefix("features."): v for k, v in result.state_dict().items() if k.startswith("features.")}
        return self.fit_from_stages(train_items, val_items, ctx, {"stages": [result.summary()]}, _scnn_state=scnn)

    def build_model(self, settings, pretrained, weights) -> tuple[nn.Module, LoadedWeights]:
        vgg, loaded = vgg16(pretrained, weights)
        scnn = SCNN(P.n_classes("synthetic")).features
        if self._scnn_state is not None:
            scnn.load_state_dict(self._scnn_state)
        return DBCNNNet(vgg16_features(vgg), scnn), loaded

    def train(self, training: Training) -> list[PhaseResult]:
        model, data, settings, evaluate = training.model, training.data, training.settings, training.evaluate
        if not self.resume:
            init_bias_to_mean(model.fc, data.quality)
        n, batch = len(data.item_ids), int(settings["batch_size"])
        batches = lambda epoch, rng: P.epoch_batches(n, 1, batch, rng)  # noqa: E731

        def loss(images: torch.Tensor, quality: torch.Tensor, epoch: int):
            mse = F.mse_loss(model(images).float(), quality)
            return mse, {"mse": mse.detach()}

        for p in list(model.vgg.parameters()) + list(model.scnn.parameters()):
            p.requires_grad_(False)
        fc_phase = Phase(
            name="fc", epochs=int(settings["fc_epochs"]),
            optimizer=torch.optim.SGD(model.fc.parameters(), lr=settings["lr_fc"], momentum=0.9, weight_decay=settings["weight_decay"]),
            schedule=StepDecay([]), batches=batches, loss=loss, train_modules=[model.fc], evaluate=evaluate,
            max_steps=settings.get("max_steps"),
        )
        try:
            first = self.run_phase(training, fc_phase)
        finally:
            for p in model.parameters():
                p.requires_grad_(True)
        tune_phase = Phase(
            name="finetune", epochs=int(settings["epochs"]),
            optimizer=torch.optim.Adam(model.parameters(), lr=settings["lr"], weight_decay=settings["weight_decay"]),
            schedule=StepDecay([]), batches=batches, loss=loss, train_modules=[model], evaluate=evaluate,
            max_steps=settings.get("max_steps"),
        )
        return [first, self.run_phase(training, tune_phase)]
