"""ResNet-50 baseline (QAMT section 3.2 and 4.1, second stage; REQA's "w/o FN+TE" ablation).

An ImageNet ResNet-50 whose classifier is replaced by two fully connected layers (256, 1) with
dropout 0.5 before the first, trained end to end with the L1 loss on the 0-100 quality.

``paper`` recipe (QAMT 4.1, fine-tuning stage, with ImageNet weights in place of QAMT's
multi-task pre-trained ones, as in its "Baseline (ResNet50)" rows): Adam (0.9, 0.999), learning
rate 1e-5 for the backbone and both FC layers, mini-batch 32, 10 epochs, each epoch 100 random
224x224 crops of every training image, 60 random crops averaged at test time.

Choices where the paper is silent (written here so a reader can check them): a ReLU between the
two FC layers; no weight decay; no horizontal flips (crops only, as the paper; ``-p flip=true``
adds them); images used at the size the
context provides (``image_size='source'``: the decode-once cache's size, else the file's);
the FC output bias starts at the mean training quality; the epoch with the best validation SROCC
is kept (QAMT reports the last of 10).

``cuda_graphs=True`` (``-p cuda_graphs=true``; also QAMT's fine-tuning and HCL's curriculum 3,
which train with the same loop) replays each full-size step from a CUDA graph on a GPU
(:class:`biqa_bench.nn.trainer.CudaGraphStep`); it changes nothing on the CPU. The same model,
data and seeds, but not bit-identical results (one paper epoch on an H100: training loss 6.933
vs 6.937 eager, validation SROCC 0.907 vs 0.903; BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from biqa_bench.methods import register_method
from biqa_bench.nn.backbones import LoadedWeights, resnet50
from biqa_bench.nn.method import DeepMethod, Training, init_bias_to_mean, setting
from biqa_bench.nn.trainer import PhaseResult, epoch_batches


class ResNet50Regressor(nn.Module):
    """ResNet-50 features (2048-d after global pooling) -> dropout -> FC 256 -> ReLU -> FC 1."""

    def __init__(self, resnet: nn.Module, dropout: float = 0.5):
        super().__init__()
        resnet.fc = nn.Identity()
        self.backbone = resnet
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2048, 256), nn.ReLU(inplace=True), nn.Linear(256, 1))
        for layer in (self.head[1], self.head[3]):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images)).squeeze(1)


def epoch_rows(n_items: int, crops_per_image: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Every item ``crops_per_image`` times, shuffled, cut into batches (the last may be short)."""
    return epoch_batches(n_items, crops_per_image, batch_size, rng, join_lone_last=False)


@register_method("resnet50")
@dataclass(eq=False)
class ResNet50Baseline(DeepMethod):
    """ImageNet ResNet-50 + FC(256)-FC(1) head with dropout 0.5, L1 loss (QAMT 3.2)."""

    RECIPES = {
        "paper": dict(
            flip=False,
            epochs=10, batch_size=32, crop=224, image_size="source", test_crops=60,
            lr_backbone=1e-5, lr_head=1e-5, crops_per_image=100, weight_decay=0.0, eval_batch_size=120, max_steps=None,
        ),
        "quick": dict(
            flip=True,
            epochs=2, batch_size=4, crop=64, image_size="short80", test_crops=2,
            lr_backbone=1e-4, lr_head=1e-3, crops_per_image=1, weight_decay=0.0, eval_batch_size=16, max_steps=3,
        ),
    }

    lr_backbone: float | None = setting()
    lr_head: float | None = setting()
    crops_per_image: int | None = setting()
    dropout: float = 0.5
    cuda_graphs: bool = False

    def build_model(self, settings, pretrained, weights) -> tuple[nn.Module, LoadedWeights]:
        backbone, loaded = resnet50(pretrained, weights)
        return ResNet50Regressor(backbone, self.dropout), loaded

    def train(self, training: Training) -> list[PhaseResult]:
        return fine_tune(self, training, "train", epoch_rows)


def fine_tune(
    method: DeepMethod, training: Training, phase_name: str, batches: Callable[[int, int, int, np.random.Generator], list[np.ndarray]],
) -> list[PhaseResult]:
    """The baseline's training: backbone and head end to end, L1, rates ``lr_backbone`` and
    ``lr_head``; the output bias starts at the mean quality. QAMT's stage 2 is this on its
    pre-trained backbone (its own phase name and batch sampler keep its runs reproducible)."""
    model, settings = training.model, training.settings
    if not method.resume:
        init_bias_to_mean(model.head[3], training.data.quality)
    groups = [
        {"params": model.backbone.parameters(), "lr": settings["lr_backbone"]},
        {"params": model.head.parameters(), "lr": settings["lr_head"]},
    ]
    return [method.train_l1(training, phase_name, groups, batches)]
