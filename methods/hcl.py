"""HCL (Wang, Chen, Yuan, Li, Ma and Hu, "Hierarchical curriculum learning for no-reference image
quality assessment", IJCV 2023). Only the abstract is available (``shared/papers/hcl-abstract.txt``),
so every architectural and training detail below is OUR design, written down so a reader can check
it; none of it should be read as the authors' numbers.

What the abstract fixes:

* Curriculum 1 (C1): image restoration on massive distorted/reference pairs teaches the model
  quality knowledge (semantics and distortions); its encoder becomes the quality backbone.
* Curriculum 2 (C2): several lightweight sub-networks learn the scoring rules of several synthetic
  IQA databases independently; a cross-dataset quality assessment correlation (CQAC) module lets
  them share what is similar and keep what differs.
* Curriculum 3 (C3): the whole model is fine-tuned on the target authentic database, fusing the
  learned knowledge into one score.

Our design (each a choice; hyper-parameters in brackets):

1. Encoder: ResNet-50 (ImageNet weights, offline), cut into its four stages; the quality feature
   is the global average of stage 4 (2048-d).
2. C1 decoder: a light top-down decoder (FPN-like): 1x1 lateral convolutions of the four stages to
   128 channels, upsampled and summed from stage 4 down to stage 1, each sum followed by a 3x3
   conv-BN-ReLU, then a 3x3 conv to RGB upsampled to the input size. It predicts the residual
   (restored = distorted + residual). Loss: L1 between restored and reference pixels (both
   ImageNet-normalised). Pairs: ``restoration_data``, a registered set with reference images
   (``synthetic``/``mixed`` embedded, or a ``biqa datasets synth`` set; items whose content is held
   out of the target's training split are removed), or ``'target'``, generated from the target's
   training items only: for an authentic target ``blends_per_image`` (28) blends of each training
   image, the training image (resized to 256 x 256) as reference; for a synthetic target with
   reference images all 39 single distortions of each training content's reference
   (``blends_per_image`` does not apply: there are no blends, and a subset would drop distortion
   classes). The distorted image and its reference get the same random crop. Adam, encoder
   1e-4, decoder 1e-3, 10 epochs, batch 32, 224 crops of 256 x 256 images.
3. C2 sub-networks: one per database in ``iqa_databases`` (comma-separated registered names, e.g.
   ``live,csiq,tid2013``, the classic synthetic databases: the abstract names none; or the embedded
   ``synthetic``, ``mixed``, user synth sets or ``'target'``; held-out target contents removed as
   above); each is Linear(2048, 256)-ReLU giving a 256-d per-database feature f_k. The default
   ``synthetic,mixed`` is what exists offline; ``mixed`` holds generated authentic-like blends
   (registry kind 'authentic'), synthetic only in the sense of artificially distorted, and gives
   the CQAC a second scoring rule to relate (with one database it has nothing to correlate).
4. CQAC: the K features, plus a learned embedding per database, are K tokens of one transformer
   encoder layer (4-head self-attention across databases, feed-forward 512, residuals and layer
   norms, no dropout): every database's feature is refined by attending to the others. A linear
   head per database maps its refined feature to that database's score (0-100 quality; bias
   starting at the database's mean quality).
5. C2 training: the C1 encoder is frozen (kept in eval mode: C2 teaches scoring rules, not
   features); the sub-networks, CQAC and heads train on the union of the databases, every image
   passing through all K branches and supervised only on its own database's head (L1). The
   abstract's "independently" is read as: each database has its own sub-network and head and is
   scored only against its own labels (scores of different databases are never put on one
   scale); the sub-networks are nonetheless trained together, since the CQAC that relates them
   needs all K features of an image, so a database's loss also reaches the other sub-networks
   through the CQAC. Images are drawn uniformly from the union (no re-balancing of database
   sizes), one crop per image per epoch. Adam 1e-4, 10 epochs, batch 64, 224 crops, images stored
   with the shorter side scaled down to 384 (smaller images are kept as they are).
6. C3: fusion = a linear layer over the K database scores (weights starting at 1/K, bias at 0),
   trained end to end with everything else on the target: L1, Adam, encoder 2e-5 and the rest
   2e-4, weight decay 5e-4, 16 epochs, batch 32, 25 random 224 crops of every training image per
   epoch with random horizontal flips, and the mean of 25 crops at test time (HyperIQA's protocol,
   common on authentic sets; the abstract gives none). The epoch with the best validation SROCC
   is kept. Curricula 1 and 2 flip their crops too (``-p flip=false`` turns flips off in all three).
7. Ablations (``ablation``): ``'no_c1'``: the encoder starts from ImageNet (no restoration);
   ``'no_c2'``: the sub-networks, CQAC and heads start untrained at C3 (random initialisation;
   the heads' biases start at the target's mean training quality, as every regressor here);
   ``'no_c3'``: the encoder, sub-networks, CQAC and heads stay as C2 left them (frozen, batch-norm
   statistics included), and only the K + 1 fusion parameters are fitted on the target at the
   C3 recipe's ``lr_rest`` (a score needs the target's scale); ``'none'``: the full method.
8. Caching (:mod:`methods._support.pretrain`): C1 is keyed by its data, recipe, initial weights and
   ``pretrain_seed``; C2 by the C1 stage it starts from, its databases, recipe and seed. Both are
   shared by every split and target whose training content does not change the data (the
   ``'target'`` data and the held-out filtering do, on purpose).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from methods._support import pretrain as P
from biqa_bench.errors import MethodError
from biqa_bench.methods import register_method
from biqa_bench.nn.backbones import LoadedWeights, ResNetStages, resnet50
from biqa_bench.nn.data import PairedImages
from biqa_bench.nn.method import DeepMethod, Training, setting
from biqa_bench.nn.trainer import PhaseResult, TrainData, epoch_batches, resolve_device

ABLATIONS = ("none", "no_c1", "no_c2", "no_c3")
STAGE_VERSION = "2"  # 2: curriculum-1 pairs from decode-once image caches (PIL resize of the cache)


def build_encoder(pretrained: str, weights: str | None) -> tuple[ResNetStages, LoadedWeights]:
    """ResNet-50 cut into its stem and four stages (channels 256, 512, 1024, 2048)."""
    model, loaded = resnet50(pretrained, weights)
    return ResNetStages(model), loaded


class RestorationDecoder(nn.Module):
    """Top-down decoder over the four encoder stages -> an RGB residual at the input size."""

    def __init__(self, channels: tuple[int, ...], width: int = 128):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in channels)
        self.smooth = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
            for _ in channels
        )
        self.to_rgb = nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, stages: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        x = None
        for k in reversed(range(len(stages))):
            lateral = self.lateral[k](stages[k])
            x = lateral if x is None else lateral + F.interpolate(x, size=lateral.shape[-2:], mode="bilinear", align_corners=False)
            x = self.smooth[k](x)
        return F.interpolate(self.to_rgb(x), size=size, mode="bilinear", align_corners=False)


class RestorationNet(nn.Module):
    """Curriculum 1: encoder + decoder; restored = distorted + predicted residual."""

    def __init__(self, encoder: ResNetStages, width: int = 128):
        super().__init__()
        self.encoder = encoder
        self.decoder = RestorationDecoder(encoder.channels, width)

    def forward(self, distorted: torch.Tensor) -> torch.Tensor:
        return distorted + self.decoder(self.encoder(distorted), distorted.shape[-2:])


def restoration_loss(restored: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean absolute pixel error (ImageNet-normalised pixels)."""
    return F.l1_loss(restored.float(), reference.float())


class CQAC(nn.Module):
    """Cross-dataset quality assessment correlation: one transformer encoder layer whose K tokens
    are the per-database features (plus a learned database embedding)."""

    def __init__(self, n_databases: int, dim: int = 256, heads: int = 4):
        super().__init__()
        self.database_embedding = nn.Parameter(torch.zeros(1, n_databases, dim))
        nn.init.normal_(self.database_embedding, std=0.02)
        self.layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.0, batch_first=True)

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # (N, K, dim) -> (N, K, dim)
        return self.layer(features + self.database_embedding)


class HCLNet(nn.Module):
    """Encoder -> K sub-networks -> CQAC -> K database scores -> fusion (one score)."""

    def __init__(self, encoder: ResNetStages, n_databases: int, dim: int = 256, heads: int = 4):
        super().__init__()
        self.encoder = encoder
        self.n_databases = n_databases
        feature_dim = encoder.channels[-1]
        self.subnets = nn.ModuleList(nn.Sequential(nn.Linear(feature_dim, dim), nn.ReLU(inplace=True)) for _ in range(n_databases))
        self.cqac = CQAC(n_databases, dim, heads)
        self.heads = nn.ModuleList(nn.Linear(dim, 1) for _ in range(n_databases))
        self.fusion = nn.Linear(n_databases, 1)
        with torch.no_grad():
            self.fusion.weight.fill_(1.0 / n_databases)
            self.fusion.bias.zero_()

    def quality_modules(self) -> list[nn.Module]:
        """What curriculum 2 trains."""
        return [self.subnets, self.cqac, self.heads]

    def feature(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images)[-1].mean(dim=(2, 3))

    def database_scores(self, feature: torch.Tensor) -> torch.Tensor:  # (N, K)
        per_database = torch.stack([subnet(feature) for subnet in self.subnets], dim=1)
        refined = self.cqac(per_database)
        return torch.cat([head(refined[:, k]) for k, head in enumerate(self.heads)], dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fusion(self.database_scores(self.feature(images))).squeeze(1)


def database_loss(scores: torch.Tensor, database: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """C2: each image's L1 error on its own database's head, averaged over the batch."""
    own = scores.float().gather(1, database.long().view(-1, 1)).squeeze(1)
    return (own - quality.float()).abs().mean()


def parse_databases(value) -> list[str]:
    names = [v.strip() for v in value.split(",")] if isinstance(value, str) else [str(v).strip() for v in value]
    names = [n for n in names if n]
    if not names:
        raise MethodError("hcl: iqa_databases names no database; give e.g. 'live,csiq,tid2013' or 'synthetic,mixed'")
    return names


_C1 = dict(c1_epochs=10, c1_batch_size=32, c1_image_size=256, c1_crop=224, c1_lr_encoder=1e-4, c1_lr_decoder=1e-3, c1_max_steps=None)
_C2 = dict(c2_epochs=10, c2_batch_size=64, c2_image_size="short384", c2_crop=224, c2_lr=1e-4, c2_max_steps=None)


@register_method("hcl")
@dataclass(eq=False)
class HCL(DeepMethod):
    """Hierarchical curriculum learning: restoration (C1), per-database scoring with CQAC (C2),
    fine-tuning on the target (C3). See the module docstring for every design choice."""

    RECIPES = {
        "paper": dict(
            flip=True,
            epochs=16, batch_size=32, crop=224, image_size="source", test_crops=25, crops_per_image=25,
            lr_encoder=2e-5, lr_rest=2e-4, weight_decay=5e-4, eval_batch_size=100, max_steps=None,
            blends_per_image=28, **_C1, **_C2,
        ),
        "quick": dict(
            flip=True,
            epochs=2, batch_size=4, crop=64, image_size="short80", test_crops=2, crops_per_image=1,
            lr_encoder=1e-4, lr_rest=1e-3, weight_decay=0.0, eval_batch_size=16, max_steps=3, blends_per_image=2,
            c1_epochs=1, c1_batch_size=4, c1_image_size=72, c1_crop=64, c1_lr_encoder=1e-4, c1_lr_decoder=1e-3, c1_max_steps=2,
            c2_epochs=1, c2_batch_size=4, c2_image_size=72, c2_crop=64, c2_lr=1e-3, c2_max_steps=2,
        ),
    }
    EXTRA_STATE = ("pretraining_manifest",)
    STAGE_STATES = ("_pretrained_state",)

    restoration_data: str = "synthetic"
    iqa_databases: str = "synthetic,mixed"
    ablation: str = "none"
    pretrain_seed: int = 0
    blends_per_image: int | None = setting()
    crops_per_image: int | None = setting()
    c1_epochs: int | None = setting()
    c2_epochs: int | None = setting()
    cuda_graphs: bool = False

    def settings(self) -> dict[str, Any]:
        self.check_choice("ablation", ABLATIONS)
        return super().settings()

    @property
    def databases(self) -> list[str]:
        return parse_databases(self.iqa_databases)

    # ------------------------------------------------------------------ curriculum 1

    def curriculum1(self, train_items, ctx, settings, loaded: LoadedWeights) -> P.StageResult:
        pset = P.resolve_pretrain_set(
            self.restoration_data, train_items, ctx, seed=int(self.pretrain_seed), per_source=P.generated_per_source(self.restoration_data, ctx, settings["blends_per_image"])
        )
        if "reference" not in pset.items.columns or (pset.items["reference"].astype(str) == "").any():
            raise MethodError(
                f"hcl: restoration data '{self.restoration_data}' has no reference image per item (column reference_path); "
                "use 'synthetic', 'mixed', a `biqa datasets synth` set, or 'target'"
            )
        inputs = {
            "version": STAGE_VERSION, "data": pset.describe(), "recipe": self.recipe,
            "settings": {**{k: v for k, v in settings.items() if k.startswith("c1_")}, "flip": settings["flip"]},
            "init": {"pretrained": self.pretrained, "weights_sha256": loaded.sha256}, "seed": int(self.pretrain_seed),
        }
        device = resolve_device(ctx.device)

        def train(work, key):
            torch.manual_seed(int(self.pretrain_seed))
            encoder, _ = build_encoder(self.pretrained, self.weights)
            net = self._to_device(RestorationNet(encoder), device)
            history = self._train_c1(net, pset, settings, P.stage_context(ctx, work, self.pretrain_seed), device, key)
            return net.state_dict(), {"history": history.as_dict(), "n_items": int(len(pset.items))}

        return P.cached_stage("hcl", "c1-restoration", inputs, train, log=ctx.log)

    def _train_c1(self, net: RestorationNet, pset: P.PretrainSet, settings, ctx, device, key) -> PhaseResult:
        size, crop = int(settings["c1_image_size"]), int(settings["c1_crop"])
        items = pset.items
        # Distorted images and their (far fewer) references each decoded once, in parallel, into
        # memory-mapped caches at size x size: a large restoration corpus need not fit in memory.
        distorted = P.pretrain_image_source(pset, size, progress=ctx.progress)
        unique = pd.Series(items["reference"].astype(str).unique())
        references = P.pretrain_image_source(
            P.PretrainSet(f"{pset.name}-references", pset.kind, pd.DataFrame({"item_id": unique, "path": unique}), f"{pset.fingerprint}-references"),
            size, progress=ctx.progress,
        )
        source = PairedImages(distorted, references, dict(zip(items["item_id"].astype(str), items["reference"].astype(str))))
        data = TrainData(item_ids=items["item_id"].astype(str).to_numpy(), quality=np.zeros(len(items)), source=source, crop=crop, flip=settings["flip"])
        optimizer = torch.optim.Adam(
            [{"params": net.encoder.parameters(), "lr": settings["c1_lr_encoder"]}, {"params": net.decoder.parameters(), "lr": settings["c1_lr_decoder"]}]
        )

        def loss(pixels: torch.Tensor, _unused: torch.Tensor, epoch: int):
            value = restoration_loss(net(pixels[:, :3]), pixels[:, 3:])
            return value, {"l1_restoration": float(value.detach())}

        return P.run_stage_phase("c1", net, data, optimizer, loss, [net], settings, "c1", ctx, device, "hcl curriculum 1", key)

    # ------------------------------------------------------------------ curriculum 2

    def curriculum2(self, train_items, ctx, settings, encoder_state: dict | None, c1: P.StageResult | None, loaded: LoadedWeights) -> P.StageResult:
        sets = [
            P.resolve_pretrain_set(spec, train_items, ctx, seed=int(self.pretrain_seed), per_source=P.generated_per_source(spec, ctx, settings["blends_per_image"]))
            for spec in self.databases
        ]
        frames = []
        for k, pset in enumerate(sets):
            frame = pset.items[["item_id", "path", "quality", "content_id"]].copy()
            frame["item_id"] = [f"{k}:{i}" for i in frame["item_id"]]
            frame["database"] = k
            frames.append(frame)
        union = P.PretrainSet("+".join(self.databases), "mixed", pd.concat(frames, ignore_index=True), "+".join(s.fingerprint for s in sets))
        inputs = {
            "version": STAGE_VERSION, "databases": [s.describe() for s in sets], "recipe": self.recipe,
            "settings": {**{k: v for k, v in settings.items() if k.startswith("c2_")}, "flip": settings["flip"]},
            "start": {"c1": c1.key if c1 is not None else None, "pretrained": self.pretrained, "weights_sha256": loaded.sha256},
            "seed": int(self.pretrain_seed),
        }
        device = resolve_device(ctx.device)

        def train(work, key):
            torch.manual_seed(int(self.pretrain_seed))
            encoder, _ = build_encoder(self.pretrained, self.weights)
            if encoder_state is not None:
                encoder.load_state_dict(encoder_state)
            net = self._to_device(HCLNet(encoder, len(sets)), device)
            history = self._train_c2(net, union, settings, P.stage_context(ctx, work, self.pretrain_seed), device, key)
            return net.state_dict(), {"history": history.as_dict(), "n_items": [int(len(s.items)) for s in sets]}

        return P.cached_stage("hcl", "c2-databases", inputs, train, log=ctx.log)

    def _train_c2(self, net: HCLNet, union: P.PretrainSet, settings, ctx, device, key) -> PhaseResult:
        items = union.items
        n = len(items)
        source = P.pretrain_image_source(union, settings["c2_image_size"], progress=ctx.progress)
        database = torch.tensor(items["database"].to_numpy(np.int64), device=device)
        quality = torch.as_tensor(items["quality"].to_numpy(np.float32), device=device)
        with torch.no_grad():
            for k, head in enumerate(net.heads):
                head.bias.fill_(float(items.loc[items["database"] == k, "quality"].mean()))
        for parameter in net.encoder.parameters():
            parameter.requires_grad_(False)
        params = [p for m in net.quality_modules() for p in m.parameters()]
        optimizer = torch.optim.Adam(params, lr=settings["c2_lr"])
        data = TrainData(item_ids=items["item_id"].astype(str).to_numpy(), quality=np.arange(n, dtype=np.float64), source=source, crop=int(settings["c2_crop"]), flip=settings["flip"])

        def loss(images: torch.Tensor, rows: torch.Tensor, epoch: int):
            rows = rows.long()
            with torch.no_grad():
                feature = net.feature(images)
            value = database_loss(net.database_scores(feature), database[rows], quality[rows])
            return value, {"l1_own_database": float(value.detach())}

        try:
            return P.run_stage_phase("c2", net, data, optimizer, loss, net.quality_modules(), settings, "c2", ctx, device, "hcl curriculum 2", key)
        finally:
            for parameter in net.encoder.parameters():
                parameter.requires_grad_(True)

    # ------------------------------------------------------------------ protocol

    def _curricula(self, train_items, ctx, settings) -> tuple[list[dict[str, Any]], dict | None]:
        """Curricula 1 and 2 (as the ablation keeps them): their summaries and the state they leave."""
        if len(train_items) == 0:
            raise MethodError("hcl: no training items; check the split")
        self.databases  # noqa: B018 - fail fast on an empty list
        _, loaded = build_encoder(self.pretrained, self.weights)
        stages = []
        c1 = None
        encoder_state = None
        if self.ablation != "no_c1":
            c1 = self.curriculum1(train_items, ctx, settings, loaded)
            stages.append(c1.summary())
            encoder_state = {k.removeprefix("encoder."): v for k, v in c1.state_dict().items() if k.startswith("encoder.")}
        state = {f"encoder.{k}": v for k, v in encoder_state.items()} if encoder_state is not None else None
        if self.ablation != "no_c2":
            c2 = self.curriculum2(train_items, ctx, settings, encoder_state, c1, loaded)
            stages.append(c2.summary())
            state = c2.state_dict()
        return stages, state

    def prepare_stages(self, train_items, ctx) -> list[dict[str, Any]]:
        return self._curricula(train_items, ctx, self.settings())[0]

    def fit(self, train_items, val_items, ctx) -> "HCL":
        settings = self.settings()
        stages, state = self._curricula(train_items, ctx, settings)
        manifest = {"ablation": self.ablation, "databases": self.databases, "stages": stages}
        return self.fit_from_stages(train_items, val_items, ctx, manifest, _pretrained_state=state)

    def build_model(self, settings, pretrained, weights) -> tuple[nn.Module, LoadedWeights]:
        encoder, loaded = build_encoder(pretrained, weights)
        net = HCLNet(encoder, len(self.databases))
        if self._pretrained_state is not None:
            missing, unexpected = net.load_state_dict(self._pretrained_state, strict=False)
            if unexpected:
                raise MethodError(f"hcl: pre-trained state does not fit the network ({unexpected[:3]}); delete the pretrain cache entry")
        return net, loaded

    def train(self, training: Training) -> list[PhaseResult]:
        model, settings = training.model, training.settings
        if self.ablation == "no_c2" and not self.resume:
            with torch.no_grad():  # untrained heads: start them at the target's mean quality
                for head in model.heads:
                    head.bias.fill_(float(np.mean(training.data.quality)))
        frozen: list[nn.Parameter] = []
        if self.ablation == "no_c3":
            trained = [model.fusion]
            groups = [{"params": model.fusion.parameters(), "lr": settings["lr_rest"]}]
            frozen = [p for name, p in model.named_parameters() if not name.startswith("fusion.")]
        else:
            trained = [model]
            rest = [p for name, p in model.named_parameters() if not name.startswith("encoder.")]
            groups = [{"params": model.encoder.parameters(), "lr": settings["lr_encoder"]}, {"params": rest, "lr": settings["lr_rest"]}]
        for parameter in frozen:
            parameter.requires_grad_(False)
        try:
            phase_name = "c3" if self.ablation != "no_c3" else "fusion"
            return [self.train_l1(training, phase_name, groups, epoch_batches, train_modules=trained)]
        finally:
            for parameter in frozen:
                parameter.requires_grad_(True)
