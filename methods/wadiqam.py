"""WaDIQaM-NR (Bosse, Maniry, Mueller, Wiegand and Samek, "Deep neural networks for no-reference
and full-reference image quality assessment", IEEE TIP 27(1), 2018), the no-reference variant.

Network (section III): 32 x 32 RGB patches through ten 3 x 3 convolutions with zero padding and
ReLUs, in five pairs of 32, 64, 128, 256 and 512 channels each followed by 2 x 2 max pooling
(a 512-d feature per patch: the VGG-like feature extractor); two branches of FC-512, ReLU,
dropout 0.5, FC-1 give the patch quality y_i and the patch weight alpha_i. Weighted average
patch aggregation (eq. 8-9): w_i = max(0, alpha_i) + eps and the image quality is
q = sum_i w_i y_i / sum_i w_i; the loss is the mean absolute error between q and the image's
quality (eq. 10), so every patch is trained through its image's score only.

Training (section IV-A): N_p = 32 random patches per image, mini-batches of 4 images (128
patches), Adam with learning rate 1e-4, 3000 epochs, the epoch with the best validation result
kept (the paper's early stopping), the same number of random patches at test time.

Readings where the paper is silent or ambiguous (each can be checked against this list):

1. eps = 1e-6 in w_i (the paper names a small stabilising constant without its value).
2. Patches are ImageNet-normalised RGB (the shared data path's normalisation); the paper feeds
   patches without naming a normalisation. The network trains from scratch (``pretrained`` does
   not apply: there are no ImageNet weights for it, and ``--weights`` is refused).
3. Test: 32 seeded random patches per image, pooled with the learned weights (not the plain
   mean of the trainer's other methods); ``test_crops=0`` scores the whole image resized to one
   32 x 32 patch, which only a smoke test wants.
4. One epoch draws N_p fresh random patches of every training image once; random horizontal
   flips are off (the paper names none; ``-p flip=true`` adds them); images at the size the
   context gives them (the paper crops patches from the images at their resolution).
5. The quality output's bias starts at the mean training quality (as every regressor here);
   no weight decay (none named).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from biqa_bench.errors import MethodError
from biqa_bench.methods import register_method
from biqa_bench.nn.backbones import LoadedWeights
from biqa_bench.nn.method import DeepMethod, Training, init_bias_to_mean, setting
from biqa_bench.nn.trainer import Phase, PhaseResult, StepDecay

EPS = 1e-6
CHANNELS = (32, 64, 128, 256, 512)


def weighted_pool(quality: torch.Tensor, alpha: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Eqs. 8-9 over the last axis: sum w_i y_i / sum w_i with w_i = max(0, alpha_i) + eps."""
    weights = torch.clamp(alpha, min=0) + eps
    return (weights * quality).sum(-1) / weights.sum(-1)


class WaDIQaMNet(nn.Module):
    """The NR network: patches (N, 3, 32, 32) -> (patch quality y, patch weight alpha), each (N,)."""

    def __init__(self, channels: tuple[int, ...] = CHANNELS, hidden: int = 512, dropout: float = 0.5):
        super().__init__()
        layers: list[nn.Module] = []
        previous = 3
        for width in channels:
            layers += [nn.Conv2d(previous, width, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            previous = width
        self.features = nn.Sequential(*layers)
        self.quality = nn.Sequential(nn.Linear(previous, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, 1))
        self.weight = nn.Sequential(nn.Linear(previous, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, 1))

    def forward(self, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature = self.features(patches)
        feature = F.adaptive_max_pool2d(feature, 1).flatten(1)  # 1 x 1 already for 32 x 32 patches
        return self.quality(feature).squeeze(1), self.weight(feature).squeeze(1)

    def image_scores(self, patches: torch.Tensor, per_image: int) -> torch.Tensor:
        """Image qualities of ``patches`` laid out as consecutive groups of ``per_image``."""
        y, alpha = self(patches)
        return weighted_pool(y.reshape(-1, per_image), alpha.reshape(-1, per_image))


def image_batches(n_items: int, per_image: int, images_per_batch: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Every image once in a seeded order, ``images_per_batch`` images a step, each image's row
    repeated ``per_image`` times consecutively (each repeat gets its own random patch)."""
    order = rng.permutation(n_items)
    return [np.repeat(order[i : i + images_per_batch], per_image) for i in range(0, n_items, images_per_batch)]


def pooled_forward(model: WaDIQaMNet, crops: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """A score function for :func:`~biqa_bench.nn.trainer.predict_items`, which lays out K crops
    of n images as K blocks of n and averages each image's K outputs: the weighted image score
    (eq. 9) is returned for each of its K crops, so that mean is the weighted pooling."""
    k = max(int(crops), 1)

    def forward(patches: torch.Tensor) -> torch.Tensor:
        y, alpha = model(patches)
        pooled = weighted_pool(y.reshape(k, -1).T, alpha.reshape(k, -1).T)
        return pooled.unsqueeze(0).expand(k, -1).reshape(-1)

    return forward


@register_method("wadiqam")
@dataclass(eq=False)
class WaDIQaM(DeepMethod):
    """WaDIQaM-NR: a 10-conv VGG-like patch network with learned patch weights, trained from scratch."""

    RECIPES = {
        "paper": dict(
            flip=False, epochs=3000, batch_size=4, crop=32, image_size="source", test_crops=32,
            patches_per_image=32, lr=1e-4, weight_decay=0.0, eval_batch_size=512, max_steps=None,
        ),
        "quick": dict(
            flip=True, epochs=2, batch_size=2, crop=32, image_size="source", test_crops=4,
            patches_per_image=4, lr=1e-4, weight_decay=0.0, eval_batch_size=64, max_steps=3,
        ),
        # CPU-sized (the ``recipe`` entry of biqa_bench.nn.method): the paper's network and patches, 2 short epochs
        "demo": dict(
            flip=False, epochs=2, batch_size=4, crop=32, image_size="short128", test_crops=8,
            patches_per_image=8, lr=3e-4, weight_decay=0.0, eval_batch_size=256, max_steps=25,
        ),
    }
    pretrained: str = "none"  # no ImageNet weights exist for this network (see reading 2)
    patches_per_image: int | None = setting()
    lr: float | None = setting()
    dropout: float = 0.5

    def settings(self) -> dict[str, Any]:
        merged = super().settings()
        if self.weights is not None or self.pretrained != "none":
            raise MethodError("wadiqam: trains from scratch (the paper's network has no ImageNet weights); use --pretrained none and no --weights")
        if int(merged["crop"]) < 32:
            raise MethodError(f"wadiqam: patches must be at least 32 x 32 (five 2 x 2 poolings), not {merged['crop']}")
        if int(merged["patches_per_image"]) < 1:
            raise MethodError("wadiqam: patches_per_image must be at least 1")
        return merged

    def build_model(self, settings, pretrained, weights) -> tuple[nn.Module, LoadedWeights]:
        return WaDIQaMNet(dropout=self.dropout), LoadedWeights(None, None)

    def score_function(self, model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        return pooled_forward(model, int(self.settings()["test_crops"]))

    def train(self, training: Training) -> list[PhaseResult]:
        model, data, settings = training.model, training.data, training.settings
        if not self.resume:
            init_bias_to_mean(model.quality[-1], data.quality)
        per_image, images = int(settings["patches_per_image"]), int(settings["batch_size"])
        optimizer = torch.optim.Adam(model.parameters(), lr=settings["lr"], weight_decay=settings["weight_decay"])

        def loss(patches: torch.Tensor, quality: torch.Tensor, epoch: int):
            predicted = model.image_scores(patches, per_image).float()
            l1 = F.l1_loss(predicted, quality.reshape(-1, per_image)[:, 0])  # eq. 10, one target per image
            return l1, {"l1": l1.detach()}

        n = len(data.item_ids)
        phase = Phase(
            name="train", epochs=int(settings["epochs"]), optimizer=optimizer, schedule=StepDecay([]),
            batches=lambda epoch, rng: image_batches(n, per_image, images, rng), loss=loss, train_modules=[model],
            evaluate=training.evaluate, max_steps=settings.get("max_steps"),
        )
        return [self.run_phase(training, phase)]
