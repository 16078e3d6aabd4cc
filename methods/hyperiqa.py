"""HyperIQA (Su, Yan, Zhu, Zhang, Ge, Sun and Zhang, "Blindly assess image quality in the wild
guided by a self-adaptive hyper network", CVPR 2020), and the harness REQA forks from it.

Network (section 3):

* **Content understanding**: an ImageNet ResNet-50 without its classifier; its stage-4 map
  (2048 x 7 x 7 at 224) feeds the hyper network.
* **Local distortion aware (LDA) module**: the outputs of stages 1-3 are each reduced by a 1 x 1
  convolution (to 16, 32 and 64 channels), average-pooled to 8 x 8, 4 x 4 and 2 x 2 and mapped
  by a linear layer to 16 values; the globally pooled stage 4 is mapped to 224 - 3 x 16 = 176
  values; their concatenation is the 224-d multi-scale content vector v_x, the target
  network's input.
* **Hyper network**: three 1 x 1 convolutions (2048 -> 1024 -> 512 -> 112, ReLU) on the stage-4
  map, then one weight-generating branch per target layer: a 3 x 3 convolution whose output
  (at 7 x 7) is reshaped into that layer's weight matrix, and a global pooling + linear layer
  for its bias. The weights are generated per image.
* **Target network**: five fully connected layers 224 -> 112 -> 56 -> 28 -> 14 -> 1 with
  sigmoid activations between them, their weights and biases those generated for the image.

Training (section 4.2): L1 loss; Adam with weight decay 5e-4; 16 epochs; mini-batch 96; 25
random 224 x 224 crops of every training image with random horizontal flips per epoch; learning
rate 2e-5, ten times that (2e-4) for the hyper network, divided by 10 after every 5 epochs; the
mean prediction of 25 random 224 x 224 crops at test time.

The harness (:func:`resnet50_stages`, :func:`backbone_head_groups`) is shared with
:mod:`methods.reqa`, which forks HyperIQA's: the ResNet-50 stages and the two learning rates.

Readings where the paper is silent or ambiguous (each can be checked against this list):

1. The LDA poolings are adaptive average poolings to the 8 x 8, 4 x 4, 2 x 2 and 1 x 1 grids that
   a 7 x 7 / stride 7 pooling gives at 224 (identical there), and the hyper network's map is
   pooled to 7 x 7 before the weight-generating convolutions: other crop sizes (the ``quick``
   recipe's 64) then build the same weight shapes.
2. The LDA layers train at the backbone's rate (they belong to the content network in the
   authors' release); the hyper network (1 x 1 convolutions and branches) at 10x.
3. The target network has five layers (the sizes above; the paper's figure shows the hidden
   layers, the last maps 14 values to the score); sigmoid after each hidden layer, none after
   the last.
4. "Reduced by 10 after every 5 epochs" as 0-based milestones 5, 10, 15 for both groups (the
   authors' release instead drops only the hyper rate, every 6 epochs, and resets Adam each
   epoch); the epoch with the best validation SROCC is kept (the paper reports the best epoch
   without naming a validation set; the test items are never used here).
5. Images at the size the context gives them (the paper resizes KonIQ-10k to 512 x 384 and
   LIVE Challenge to 500 x 500 first: ``-p image_size=512x384``); the hyper network's layers are
   He-initialised; the generated output bias's linear layer starts at the mean training quality.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import torch
from torch import nn
from torch.nn import functional as F

from biqa_bench.methods import register_method
from biqa_bench.nn.backbones import LoadedWeights, ResNetStages, resnet50
from biqa_bench.nn.method import DeepMethod, Training, init_bias_to_mean, setting
from biqa_bench.nn.trainer import PhaseResult
from methods.resnet50 import epoch_rows

TARGET_SIZES = (224, 112, 56, 28, 14, 1)
LDA_CHANNELS = (16, 32, 64)
LDA_GRIDS = (8, 4, 2)
LDA_OUT = 16
HYPER_CHANNELS = 112
HYPER_GRID = 7


# --------------------------------------------------------------------------- the shared harness


def resnet50_stages(pretrained: str, weights: str | None) -> tuple[ResNetStages, LoadedWeights]:
    """The ImageNet ResNet-50 cut into its four stages (HyperIQA's and REQA's backbone)."""
    resnet, loaded = resnet50(pretrained, weights)
    return ResNetStages(resnet), loaded


def backbone_head_groups(backbone: Iterable[nn.Parameter], head: Iterable[nn.Parameter], settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Adam parameter groups at ``lr_backbone`` and ``lr_head`` (HyperIQA's 2e-5 and 10x that)."""
    return [{"params": list(backbone), "lr": settings["lr_backbone"]}, {"params": list(head), "lr": settings["lr_head"]}]


# --------------------------------------------------------------------------- network


class LocalDistortionAware(nn.Module):
    """Stages 1-4 -> the 224-d multi-scale content vector v_x."""

    def __init__(self, stage_channels: tuple[int, int, int, int], target_in: int = TARGET_SIZES[0]):
        super().__init__()
        self.reduce = nn.ModuleList([nn.Conv2d(c, r, 1, bias=False) for c, r in zip(stage_channels[:3], LDA_CHANNELS)])
        self.fcs = nn.ModuleList([nn.Linear(r * g * g, LDA_OUT) for r, g in zip(LDA_CHANNELS, LDA_GRIDS)])
        self.fc4 = nn.Linear(stage_channels[3], target_in - LDA_OUT * len(LDA_CHANNELS))

    def forward(self, maps: list[torch.Tensor]) -> torch.Tensor:
        parts = [fc(F.adaptive_avg_pool2d(reduce(m), g).flatten(1)) for reduce, fc, g, m in zip(self.reduce, self.fcs, LDA_GRIDS, maps[:3])]
        parts.append(self.fc4(maps[3].mean(dim=(2, 3))))
        return torch.cat(parts, dim=1)


class HyperNetwork(nn.Module):
    """The stage-4 map -> per-image weights (N, out, in) and biases (N, out) of every target layer."""

    def __init__(self, channels: int, sizes: tuple[int, ...] = TARGET_SIZES, hidden: int = HYPER_CHANNELS, grid: int = HYPER_GRID):
        super().__init__()
        self.sizes, self.grid = sizes, grid
        self.reduce = nn.Sequential(
            nn.Conv2d(channels, 1024, 1), nn.ReLU(inplace=True), nn.Conv2d(1024, 512, 1), nn.ReLU(inplace=True),
            nn.Conv2d(512, hidden, 1), nn.ReLU(inplace=True),
        )
        self.weight_convs = nn.ModuleList()
        for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):
            if (n_in * n_out) % (grid * grid):
                raise ValueError(f"target layer {n_in}x{n_out} does not reshape from a {grid}x{grid} map")
            self.weight_convs.append(nn.Conv2d(hidden, n_in * n_out // (grid * grid), 3, padding=1))
        self.last_weight = nn.Linear(hidden, sizes[-2] * sizes[-1])  # the 14 -> 1 layer: from the pooled map
        self.biases = nn.ModuleList([nn.Linear(hidden, n_out) for n_out in sizes[1:]])
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, fm4: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        h = self.reduce(F.adaptive_avg_pool2d(fm4, self.grid))
        pooled = h.mean(dim=(2, 3))
        n = len(h)
        weights = [conv(h).reshape(n, n_out, n_in) for conv, n_in, n_out in zip(self.weight_convs, self.sizes[:-2], self.sizes[1:-1])]
        weights.append(self.last_weight(pooled).reshape(n, self.sizes[-1], self.sizes[-2]))
        return weights, [fc(pooled) for fc in self.biases]


def target_network(v: torch.Tensor, weights: list[torch.Tensor], biases: list[torch.Tensor]) -> torch.Tensor:
    """The per-image fully connected target network on v (N, 224): sigmoid between layers."""
    x = v
    for k, (w, b) in enumerate(zip(weights, biases)):
        x = torch.bmm(w, x.unsqueeze(2)).squeeze(2) + b
        if k < len(weights) - 1:
            x = torch.sigmoid(x)
    return x.squeeze(1)


class HyperIQANet(nn.Module):
    """ResNet-50 stages -> LDA (v_x) and hyper network (target weights) -> target network -> (N,)."""

    def __init__(self, stages: nn.Module):
        super().__init__()
        self.stages = stages
        self.lda = LocalDistortionAware(stages.channels)
        self.hyper = HyperNetwork(stages.channels[3])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        maps = self.stages(images)
        weights, biases = self.hyper(maps[3])
        return target_network(self.lda(maps), weights, biases)

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.stages.parameters()) + list(self.lda.parameters())

    def hyper_parameters(self) -> list[nn.Parameter]:
        return list(self.hyper.parameters())


@register_method("hyperiqa")
@dataclass(eq=False)
class HyperIQA(DeepMethod):
    """HyperIQA: a hyper network generating a per-image target network from ResNet-50 content features."""

    RECIPES = {
        "paper": dict(
            flip=True, epochs=16, batch_size=96, crop=224, image_size="source", test_crops=25, crops_per_image=25,
            lr_backbone=2e-5, lr_head=2e-4, weight_decay=5e-4, milestones=(5, 10, 15), eval_batch_size=100, max_steps=None,
        ),
        "quick": dict(
            flip=True, epochs=2, batch_size=4, crop=64, image_size="short80", test_crops=2, crops_per_image=1,
            lr_backbone=1e-4, lr_head=1e-3, weight_decay=5e-4, milestones=(1,), eval_batch_size=16, max_steps=3,
        ),
        # CPU-sized (the ``recipe`` entry of biqa_bench.nn.method): the paper's network, 2 short epochs of small crops
        "demo": dict(
            flip=True, epochs=2, batch_size=8, crop=64, image_size="short72", test_crops=2, crops_per_image=1,
            lr_backbone=1e-4, lr_head=1e-3, weight_decay=5e-4, milestones=(1,), eval_batch_size=16, max_steps=8,
        ),
    }
    lr_backbone: float | None = setting()
    lr_head: float | None = setting()
    crops_per_image: int | None = setting()
    cuda_graphs: bool = False

    def build_model(self, settings, pretrained, weights) -> tuple[nn.Module, LoadedWeights]:
        stages, loaded = resnet50_stages(pretrained, weights)
        return HyperIQANet(stages), loaded

    def train(self, training: Training) -> list[PhaseResult]:
        model = training.model
        if not self.resume:
            init_bias_to_mean(model.hyper.biases[-1], training.data.quality)
        groups = backbone_head_groups(model.backbone_parameters(), model.hyper_parameters(), training.settings)
        return [self.train_l1(training, "train", groups, epoch_rows, milestones=training.settings["milestones"])]
