"""REQA (Li and Huo, "Coarse-to-fine assessment of image quality to alleviate the range effect").

Network (section III-A, III-B):

* ResNet-50 (ImageNet) without pooling and classifier; the outputs of its stages 1-3
  (conv2_10, conv3_12, conv4_18) are the multi-scale maps fm_1..fm_3, stage 4 (conv5_9) is fm_4.
* Three feedback blocks, one per fm_d, each a ConvLSTM cell (eq. 2) iterated over T = 4 time
  steps with fm_d as the input at every step and its own hidden state fed back (eq. 1); the
  output at step t is mapped to v_{d,t} in R^32.
* A Transformer encoder on fm_4: patch embedding (P x P patches of fm_4 flattened and mapped by
  W_pe to D = 224, eq. 3), a learnable position embedding (eq. 4), a quality token (eq. 5),
  multi-head self-attention on the layer-normalised input with the residual and a layer norm
  after it (eqs. 6, 7), then MLP-I and MLP-II on the quality token give v_m.
* MLP-III on v_m (+) v_{1,t} (+) v_{2,t} (+) v_{3,t} gives the score F_t at every step (eq. 8);
  the prediction is F_T.

Losses (section III-C): at t = 1 the coarse rank-and-gradient loss over micro-batches of five
images from five different quality levels (eqs. 9-12, sigma = 1e-4); at t >= 2 the multi-level
tolerance loss max(0, |s - F_t| - l_t) with l_2, l_3, l_4 = 5, 2.5, 0 on the 0-100 scale (eq. 13);
the total is the curriculum-weighted sum (eq. 14). The harness (ResNet-50 stages, the two
learning rates) is HyperIQA's, which REQA forks: shared from :mod:`methods.hyperiqa`. Training (IV-A.3): Adam, weight decay 5e-4,
learning rates 2e-5 (ResNet-50) and 2e-4 (the rest), divided by 10 at epochs 10, 20 and 30, 40
epochs, random 224 x 224 crops. "Reduced by 10 in 10th epoch" is read as after the 10th, 20th and
30th epochs (0-based milestones 10, 20, 30: the 11th epoch is the first at 2e-6 / 2e-5), where the
10-epoch curriculum stages of IV-A.3 change too.

Choices where the paper is ambiguous or silent (each can be checked against this list):

1. Curriculum weights (IV-A.3). The paper lists w1..w4 per stage of 10 epochs: stage 1
   (0.25, 0.5, 0.25/3, 0.25/3), stage 2 (-, 0.5, 0.25, 0.25), stage 3 (-, 0.25, 0.5, 0.25),
   stage 4 (0.25, 0.25, 0.25, 0.5). w1 is not given in stages 2 and 3: we take 0 (the listed
   weights already sum to 1 there, as eq. 14 requires). Stage 1 sums to 11/12 and stage 4 to 1.25:
   we divide each stage's weights by their sum so that every stage satisfies eq. 14. With a
   number of epochs other than 40, the stages are four equal quarters of training, and the
   learning rate drops where they change (``stage_starts``: 10, 20, 30 of 40; 5, 10, 15 of 20).
2. Rank loss. Eq. 9 as printed multiplies the hinge by (|s_i - s_j| + 1) (the printed
   "|s_i - s_i|" is read as |s_i - s_j|); for a mis-ordered pair that gives
   |F_i - F_j| * |s_i - s_j| * (|s_i - s_j| + 1) / (|s_i - s_j| + sigma), while the text says it
   "reduces to" eq. 10, |s_i - s_j| * |F_i - F_j|. The default ``rank_form='eq9'`` implements
   eq. 9 as printed; ``rank_form='eq10'`` uses the factor |s_i - s_j| instead of
   (|s_i - s_j| + 1), which reduces to eq. 10 exactly (up to sigma).
3. Quality levels for micro-batches. III-C.1: "we randomly sample a mini-batch with K 2-tuples
   from the current training set ... [and] group the training samples to form a micro-batch where
   a predicted image and four anchors are sampled from five different quality scales", with
   M = floor(K/5) micro-batches. The default ``micro_levels='batch'`` reads "quality scales" as
   levels within the mini-batch: K = 5 * floor(batch_size / 5) items are drawn uniformly (a fresh
   permutation of the training set per pass), sorted by quality and cut into five equal bands,
   and micro-batch k takes one member of each band (matched at random). Every training item is
   seen about once per epoch and all K items of the mini-batch are grouped, as M = floor(K/5)
   says. ``micro_levels='acr'`` reads them as the five ACR categories of IV-A.1 on the 0-100
   scale (bad [0, 20), poor [20, 40), fair [40, 60), good [60, 80), excellent [80, 100]; the
   quintiles of the training qualities when a category is empty), one member of each per
   micro-batch, drawn without replacement within a category and cycling through a fresh
   permutation when it runs out; on a set such as KonIQ-10k, whose extreme categories hold a few
   percent of the images, those images are then drawn many times per epoch and the middle ones
   less than once, which a "randomly sampled mini-batch" does not suggest, hence not the default.
   eq. 12 is summed over the pairs of a micro-batch and averaged over micro-batches;
   eq. 13 is averaged over the images of the batch. An epoch has ceil(N / (5 * floor(batch_size / 5)))
   steps (ceil(N / batch_size) for a multiple of 5 such as the default 50).
4. Feedback blocks (Fig. 4 is not in the text): each block reduces fm_d with a 1x1 conv
   (C_d -> 64) + BN + ReLU and a 3x3 conv with stride 4, 2, 1 (d = 1, 2, 3) + BN + ReLU, so the
   three ConvLSTMs (64 hidden channels, 3x3 gates, zero initial state) run at 1/16 of the input
   size; the block output is the hidden state h_{d,t} (the printed "fo" of eq. 2 is the output
   gate), global-average-pooled and mapped to 32-d by a linear layer.
5. Transformer encoder: patch size P = 1 (each position of the 7x7 fm_4 is a token, N = 49 at
   224), 8 heads (D_h = 28), one encoder layer as eqs. 6-7 describe; MLP-I = Linear(224, 448)-GELU-
   Linear(448, 224), MLP-II = Linear(224, 32)-GELU, so v_m is 32-d like v_{d,t};
   MLP-III = Linear(128, 64)-ReLU-Linear(64, 1), shared by all time steps.
6. Batch size 50 (not stated), no horizontal flips (the paper names crops only; ``-p flip=true``
   adds them), 25 random test crops averaged
   (not stated; HyperIQA's protocol, which REQA compares against), images at the size the context
   gives them, MLP-III's output bias starting at the mean training quality, and the epoch with the
   best validation SROCC of F_T kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from biqa_bench.errors import MethodError
from biqa_bench.methods import register_method
from biqa_bench.nn.backbones import LoadedWeights
from biqa_bench.nn.method import DeepMethod, Training, init_bias_to_mean
from biqa_bench.nn.trainer import Phase, PhaseResult, StepDecay
from methods.hyperiqa import backbone_head_groups, resnet50_stages

SIGMA = 1e-4
THRESHOLDS = (5.0, 2.5, 0.0)  # l_2, l_3, l_4 on the 0-100 scale
ACR_EDGES = (20.0, 40.0, 60.0, 80.0)
#: w1..w4 per curriculum stage as printed in section IV-A.3 (w1 absent in stages 2, 3 -> 0).
PAPER_WEIGHTS = (
    (0.25, 0.5, 0.25 / 3, 0.25 / 3),
    (0.0, 0.5, 0.25, 0.25),
    (0.0, 0.25, 0.5, 0.25),
    (0.25, 0.25, 0.25, 0.5),
)


# --------------------------------------------------------------------------- losses


def rank_loss(pred_i: torch.Tensor, pred_j: torch.Tensor, s_i: torch.Tensor, s_j: torch.Tensor, sigma: float = SIGMA, form: str = "eq9") -> torch.Tensor:
    """Eq. 9 (elementwise): zero for a correctly ordered pair; see the module docstring, item 2."""
    gap = (s_i - s_j).abs()
    hinge = torch.clamp(-(s_i - s_j) * (pred_i - pred_j) / (gap + sigma), min=0)
    if form == "eq9":
        return hinge * (gap + 1)
    if form == "eq10":
        return hinge * gap
    raise MethodError(f"reqa: rank_form must be 'eq9' or 'eq10', not {form!r}")


def gradient_loss(pred_i: torch.Tensor, pred_j: torch.Tensor, s_i: torch.Tensor, s_j: torch.Tensor) -> torch.Tensor:
    """Eq. 11 (elementwise): | |s_i - s_j| - |F_i - F_j| |."""
    return ((s_i - s_j).abs() - (pred_i - pred_j).abs()).abs()


def coarse_loss(pred: torch.Tensor, quality: torch.Tensor, sigma: float = SIGMA, form: str = "eq9") -> torch.Tensor:
    """Eq. 12 for (M, 5) micro-batches: the sum over the 10 pairs, averaged over micro-batches."""
    i, j = torch.triu_indices(pred.shape[1], pred.shape[1], offset=1, device=pred.device)
    terms = rank_loss(pred[:, i], pred[:, j], quality[:, i], quality[:, j], sigma, form) + gradient_loss(
        pred[:, i], pred[:, j], quality[:, i], quality[:, j]
    )
    return terms.sum(1).mean()


def tolerance_loss(pred: torch.Tensor, quality: torch.Tensor, threshold: float) -> torch.Tensor:
    """Eq. 13: max(0, |s - F_t| - l_t), averaged over the batch."""
    return torch.clamp((quality - pred).abs() - threshold, min=0).mean()


def curriculum_stage(epoch: int, epochs: int) -> int:
    """The curriculum stage (0..3) of ``epoch`` (0-based) of ``epochs``: four equal quarters."""
    return min(3, (4 * epoch) // max(epochs, 1))


def stage_starts(epochs: int) -> tuple[int, ...]:
    """The first epochs of curriculum stages 2-4 (10, 20, 30 of 40): the learning-rate milestones,
    so that the rate drops where the stage changes for any number of epochs."""
    return tuple(e for e in range(1, epochs) if curriculum_stage(e, epochs) != curriculum_stage(e - 1, epochs))


def curriculum_weights(epoch: int, epochs: int) -> np.ndarray:
    """w1..w4 at ``epoch`` (0-based) of ``epochs``: four equal stages, each normalised to sum 1."""
    stage = curriculum_stage(epoch, epochs)
    weights = np.asarray(PAPER_WEIGHTS[stage], dtype=np.float64)
    return weights / weights.sum()


def reqa_loss(scores: torch.Tensor, quality: torch.Tensor, weights: np.ndarray, sigma: float = SIGMA, form: str = "eq9") -> tuple[torch.Tensor, dict[str, float]]:
    """Eq. 14 for a batch laid out as consecutive micro-batches of five; ``scores`` is (N, T)."""
    steps = scores.shape[1]
    if steps != len(THRESHOLDS) + 1 or len(weights) != steps:
        raise ValueError(f"REQA loss expects T = {len(THRESHOLDS) + 1} time steps, got {steps}")
    coarse = coarse_loss(scores[:, 0].reshape(-1, 5), quality.reshape(-1, 5), sigma, form)
    total = weights[0] * coarse
    parts = {"coarse": coarse.detach()}
    for t, threshold in enumerate(THRESHOLDS, start=1):
        fine = tolerance_loss(scores[:, t], quality, threshold)
        total = total + weights[t] * fine
        parts[f"fine_t{t + 1}"] = fine.detach()
    return total, parts


# --------------------------------------------------------------------------- sampling


def quality_levels(quality: np.ndarray) -> np.ndarray:
    """Level 0..4 of each item: the ACR category, or the quintile when a category is empty."""
    quality = np.asarray(quality, dtype=np.float64)
    levels = np.searchsorted(np.asarray(ACR_EDGES), quality, side="right")
    if len(np.unique(levels)) == 5:
        return levels
    order = np.argsort(quality, kind="stable")
    levels = np.empty(len(quality), dtype=np.int64)
    levels[order] = (np.arange(len(quality)) * 5) // max(len(quality), 1)
    return levels


def micro_batches(levels: np.ndarray, n_micro: int, n_steps: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Rows of ``n_steps`` batches, each ``n_micro`` micro-batches of one item per level 0..4."""
    members = [np.flatnonzero(levels == level) for level in range(5)]
    if any(len(m) == 0 for m in members):
        raise MethodError("reqa: need training items at five quality levels to form micro-batches; use at least 5 training items")
    need = n_micro * n_steps
    draws = []
    for m in members:
        cycles = [rng.permutation(m) for _ in range(math.ceil(need / len(m)))]
        draws.append(np.concatenate(cycles)[:need])
    table = np.stack(draws, axis=1)  # (need, 5): micro-batch k = one item of each level
    return [table[s * n_micro : (s + 1) * n_micro].reshape(-1) for s in range(n_steps)]


def batch_micro_batches(quality: np.ndarray, n_micro: int, n_steps: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Rows of ``n_steps`` batches of ``5 * n_micro`` items drawn uniformly (every item once per
    pass over a fresh permutation), each grouped into ``n_micro`` micro-batches of five: the batch
    sorted by quality is cut into five equal quality bands, and micro-batch k takes one member of
    each band (members matched at random), so its five members come from five different quality
    levels of the batch."""
    quality = np.asarray(quality, dtype=np.float64)
    if len(quality) < 5:
        raise MethodError("reqa: need training items at five quality levels to form micro-batches; use at least 5 training items")
    size = 5 * n_micro
    need = size * n_steps
    order = np.concatenate([rng.permutation(len(quality)) for _ in range(math.ceil(need / len(quality)))])[:need]
    steps = []
    for s in range(n_steps):
        rows = order[s * size : (s + 1) * size]
        bands = rows[np.argsort(quality[rows], kind="stable")].reshape(5, n_micro)  # band b = b-th fifth by quality
        table = np.stack([rng.permutation(band) for band in bands], axis=1)  # (n_micro, 5): one of each band
        steps.append(table.reshape(-1))
    return steps


# --------------------------------------------------------------------------- network


class ConvLSTMCell(nn.Module):
    """Eq. 2: gates from 3x3 convolutions of the input and of the previous hidden state."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.from_input = nn.Conv2d(channels, 4 * hidden, 3, padding=1)
        self.from_hidden = nn.Conv2d(hidden, 4 * hidden, 3, padding=1, bias=False)

    def forward(self, input_term: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        i, f, o, g = (input_term + self.from_hidden(h)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class FeedbackBlock(nn.Module):
    """One feedback block: reduce fm_d, iterate the ConvLSTM T times, map each output to 32-d."""

    def __init__(self, channels: int, stride: int, hidden: int = 64, out_dim: int = 32):
        super().__init__()
        self.reduce = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
        )
        self.cell = ConvLSTMCell(hidden, hidden)
        self.project = nn.Linear(hidden, out_dim)

    def forward(self, fm: torch.Tensor, steps: int) -> list[torch.Tensor]:
        x = self.reduce(fm)
        input_term = self.cell.from_input(x)  # fm_d is the input at every step: compute once
        h = torch.zeros_like(x)
        c = torch.zeros_like(x)
        out = []
        for _ in range(steps):
            h, c = self.cell(input_term, h, c)
            out.append(self.project(h.mean(dim=(2, 3))))
        return out


class QualityEncoder(nn.Module):
    """The Transformer encoder on fm_4 (eqs. 3-7) with MLP-I and MLP-II on the quality token."""

    def __init__(self, channels: int, tokens: int, dim: int = 224, heads: int = 8, patch: int = 1, out_dim: int = 32):
        super().__init__()
        self.embed = nn.Conv2d(channels, dim, kernel_size=patch, stride=patch)  # = flatten + W_pe
        self.position = nn.Parameter(torch.zeros(1, tokens, dim))
        self.quality_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.position, std=0.02)
        nn.init.trunc_normal_(self.quality_token, std=0.02)
        self.norm_in = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)  # out_proj = W_ma
        self.norm_out = nn.LayerNorm(dim)
        self.mlp1 = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.mlp2 = nn.Sequential(nn.Linear(dim, out_dim), nn.GELU())

    def forward(self, fm4: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(fm4).flatten(2).transpose(1, 2)
        if tokens.shape[1] != self.position.shape[1]:
            raise MethodError(
                f"reqa: the stage-4 map has {tokens.shape[1]} patches but the model was built for "
                f"{self.position.shape[1]}; predict with the crop size it was trained with"
            )
        x = torch.cat([self.quality_token.expand(len(tokens), -1, -1), tokens + self.position], dim=1)
        normed = self.norm_in(x)
        attended, _ = self.attention(normed, normed, normed, need_weights=False)
        x = self.norm_out(attended + x)
        return self.mlp2(self.mlp1(x[:, 0]))


class REQANet(nn.Module):
    """Backbone stages -> feedback network + Transformer encoder -> F_1..F_T, shape (N, T)."""

    def __init__(self, stages: nn.Module, crop: int, steps: int = 4, hidden: int = 64, dim: int = 224, heads: int = 8, patch: int = 1, vector: int = 32):
        super().__init__()
        self.stages = stages
        self.steps = steps
        c1, c2, c3, c4 = stages.channels
        self.feedback = nn.ModuleList(
            [FeedbackBlock(c, stride, hidden, vector) for c, stride in ((c1, 4), (c2, 2), (c3, 1))]
        )
        side = crop
        for _ in range(5):  # the stem and three stages halve the size, rounding up
            side = (side + 1) // 2
        side //= patch
        if side < 1:
            raise MethodError(f"reqa: crop {crop} is too small for patch size {patch} on the 1/32 stage-4 map; use crop >= {32 * patch}")
        self.encoder = QualityEncoder(c4, side * side, dim, heads, patch, vector)
        self.mlp3 = nn.Sequential(nn.Linear(4 * vector, 64), nn.ReLU(inplace=True), nn.Linear(64, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        fm1, fm2, fm3, fm4 = self.stages(images)
        v_m = self.encoder(fm4)
        per_block = [block(fm, self.steps) for block, fm in zip(self.feedback, (fm1, fm2, fm3))]
        scores = [self.mlp3(torch.cat([v_m, per_block[0][t], per_block[1][t], per_block[2][t]], dim=1)) for t in range(self.steps)]
        return torch.cat(scores, dim=1)

    def head_parameters(self):
        return [p for name, p in self.named_parameters() if not name.startswith("stages.")]


@register_method("reqa")
@dataclass(eq=False)
class REQA(DeepMethod):
    """REQA: feedback ConvLSTM blocks + Transformer encoder on ResNet-50, coarse-to-fine losses."""

    RECIPES = {
        "paper": dict(
            flip=False,
            epochs=40, batch_size=50, crop=224, image_size="source", test_crops=25,
            lr_backbone=2e-5, lr_head=2e-4, weight_decay=5e-4, milestones="stages", eval_batch_size=100, max_steps=None,
        ),
        "quick": dict(
            flip=True,
            epochs=2, batch_size=10, crop=64, image_size="short80", test_crops=2,
            lr_backbone=1e-4, lr_head=1e-3, weight_decay=5e-4, milestones=(), eval_batch_size=16, max_steps=2,
        ),
    }

    rank_form: str = "eq9"
    micro_levels: str = "batch"
    steps: int = 4
    patch: int = 1
    heads: int = 8

    def settings(self) -> dict[str, Any]:
        merged = super().settings()
        if int(merged["batch_size"]) < 5:
            raise MethodError("reqa: batch_size must be at least 5 (one micro-batch of five quality levels)")
        if self.steps != len(THRESHOLDS) + 1:
            raise MethodError(f"reqa: the paper's losses are defined for T = {len(THRESHOLDS) + 1} time steps, not {self.steps}")
        if self.rank_form not in ("eq9", "eq10"):
            raise MethodError(f"reqa: rank_form must be 'eq9' or 'eq10', not {self.rank_form!r}")
        if self.micro_levels not in ("batch", "acr"):
            raise MethodError(f"reqa: micro_levels must be 'batch' or 'acr', not {self.micro_levels!r}")
        return merged

    def make_stages(self, pretrained: str, weights: str | None) -> tuple[nn.Module, LoadedWeights]:
        return resnet50_stages(pretrained, weights)

    def build_model(self, settings, pretrained, weights) -> tuple[nn.Module, LoadedWeights]:
        stages, loaded = self.make_stages(pretrained, weights)
        return REQANet(stages, int(settings["crop"]), steps=self.steps, heads=self.heads, patch=self.patch), loaded

    def score_function(self, model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda images: model(images)[:, -1]

    def train(self, training: Training) -> list[PhaseResult]:
        model, data, settings = training.model, training.data, training.settings
        init_bias_to_mean(model.mlp3[-1], data.quality)
        optimizer = torch.optim.Adam(backbone_head_groups(model.stages.parameters(), model.head_parameters(), settings), weight_decay=settings["weight_decay"])
        epochs = int(settings["epochs"])
        n_micro = int(settings["batch_size"]) // 5
        n_steps = max(1, math.ceil(len(data.item_ids) / (5 * n_micro)))
        if self.micro_levels == "acr":
            levels = quality_levels(data.quality)
            draw = lambda epoch, rng: micro_batches(levels, n_micro, n_steps, rng)  # noqa: E731
        else:
            draw = lambda epoch, rng: batch_micro_batches(data.quality, n_micro, n_steps, rng)  # noqa: E731
        form = self.rank_form

        def loss(images: torch.Tensor, quality: torch.Tensor, epoch: int):
            return reqa_loss(model(images).float(), quality, curriculum_weights(epoch, epochs), SIGMA, form)

        phase = Phase(
            name="train",
            epochs=epochs,
            optimizer=optimizer,
            schedule=StepDecay(stage_starts(epochs) if settings["milestones"] == "stages" else settings["milestones"], 0.1),
            batches=draw,
            loss=loss,
            train_modules=[model],
            evaluate=training.evaluate,
            max_steps=settings.get("max_steps"),
        )
        return [self.run_phase(training, phase)]
