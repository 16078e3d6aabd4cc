"""The base class of the deep method adapters: shared hyper-parameters, recipes, fit/predict,
save/load. Subclasses build their network and their training phases.

A deep adapter is a dataclass (``@dataclass(eq=False)`` under ``@register_method``) whose fields
are its hyper-parameters; it inherits the fields every deep method accepts from
:class:`DeepMethod` (the CLI maps flags onto them):

* ``recipe``: ``'paper'`` (the paper's protocol), ``'quick'`` (a few small steps: tests) or, where
  an adapter has one, ``'demo'`` (the paper's network at CPU size: small crops, a few capped
  epochs, for a run of a minute or two per split on the embedded sets; not the paper's protocol);
* ``pretrained``: ``'imagenet'`` (offline weights, see :mod:`biqa_bench.nn.backbones`) or ``'none'``;
* ``weights``: an ImageNet weights file, or None to look in the torch/Hugging Face caches;
* ``test_crops``: K random crops averaged at test time, 0 = the whole image resized to the crop
  size, None = the recipe's value;
* ``resume``: continue from the checkpoints in the run folder;
* ``epochs``, ``batch_size``, ``crop``, ``image_size``, ``flip``: override the recipe (None = recipe).
  ``image_size`` is ``'source'`` (images as the context gives them: the decode-once cache's
  size when there is one, else the files' size) or an image-cache size spec (``'short512'``,
  ``'244x244'``, ``(h, w)``) to which images are resized once before cropping.

A recipe (``RECIPES[name]``) is a dict of settings; a field declared with :func:`setting` replaces
the recipe's setting of the same name unless it is None (``setting(recipe_key='s1_epochs')`` where
the recipe names it otherwise). :meth:`DeepMethod.settings` is the merged dict the hooks get.

Training targets are the 0-100 ``quality`` column; the final bias of each regressor starts at the
mean training quality (the papers do not say how the head is initialised; starting at the mean
saves the first epochs from learning an offset of ~50 at learning rates of 1e-5).
"""

from __future__ import annotations

import dataclasses
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import MethodError
from ..methods import Context, Method
from ..store import atomic_write_bytes, atomic_write_json
from .backbones import LoadedWeights
from .data import image_source
from .trainer import Phase, PhaseResult, StepDecay, TrainData, fingerprint, predict_items, resolve_device, run_phase, validation_metric


#: Field metadata key of :func:`setting`: the recipe key the field overrides.
RECIPE_KEY = "biqa_recipe_key"


def setting(default: Any = None, recipe_key: str | None = None) -> Any:
    """A hyper-parameter field that replaces the recipe's setting of the same name (or
    ``recipe_key``) when it is not None; None, the default, means "the recipe's value"."""
    return field(default=default, metadata={RECIPE_KEY: recipe_key})


@dataclass
class Training:
    """What a deep method's :meth:`DeepMethod.train` gets: the network on its device, the
    training data, the validation metric, the context, the merged settings and the run's
    fingerprint (which checkpoints are written for)."""

    model: nn.Module
    data: TrainData
    evaluate: Callable[[], float]
    ctx: Context
    device: torch.device
    settings: dict[str, Any]
    fingerprint: str


@dataclass(eq=False)
class DeepMethod(Method):
    """Shared machinery; subclasses set ``RECIPES``, add their fields and implement the hooks below."""

    uses_gpu: ClassVar[bool] = True
    RECIPES: ClassVar[dict[str, dict[str, Any]]] = {}
    # Attributes learned besides the network, saved into model.pt by extra_state.
    EXTRA_STATE: ClassVar[tuple[str, ...]] = ()
    # What pre-training stages hand to build_model during fit_from_stages (None outside it).
    STAGE_STATES: ClassVar[tuple[str, ...]] = ()
    # Replay train_l1's steps from CUDA graphs (trainer.CudaGraphStep); methods that train with
    # train_l1 take it as a field (``cuda_graphs: bool = False``, ``-p cuda_graphs=true``); ignored on the CPU.
    cuda_graphs = False  # not annotated: a class attribute here, a field where a subclass declares it

    recipe: str = "paper"
    pretrained: str = "imagenet"
    weights: str | None = None
    test_crops: int | None = setting()
    resume: bool = False
    epochs: int | None = setting()
    batch_size: int | None = setting()
    crop: int | None = setting()
    image_size: Any = setting()
    flip: bool | None = setting()

    def __post_init__(self) -> None:
        self.weights = None if self.weights in (None, "") else str(self.weights)
        self.resume = bool(self.resume)
        if "cuda_graphs" in self.__dataclass_fields__:
            self.cuda_graphs = bool(self.cuda_graphs)
        self.weights_sha256: str | None = None
        self._model: nn.Module | None = None
        self._history: list[dict[str, Any]] = []
        self.pretraining_manifest: dict[str, Any] | None = None  # see fit_from_stages
        for name in self.STAGE_STATES:
            setattr(self, name, None)

    # ------------------------------------------------------------------ hooks for subclasses

    def build_model(self, settings: dict[str, Any], pretrained: str, weights: str | None) -> tuple[nn.Module, LoadedWeights]:
        raise NotImplementedError

    def train(self, training: Training) -> list[PhaseResult]:
        """Train ``training.model`` (in place) through one or more phases; return their results."""
        raise NotImplementedError

    def score_function(self, model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        return model

    def prepare_source(self, items: pd.DataFrame, ctx: Context, settings: dict[str, Any], device: torch.device):
        return image_source(items, ctx, settings["image_size"], settings["crop"])

    def extra_state(self) -> dict[str, Any]:
        """Fitted state besides the network (saved into model.pt): the ``EXTRA_STATE`` attributes."""
        return {name: getattr(self, name) for name in self.EXTRA_STATE}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        for name in self.EXTRA_STATE:
            setattr(self, name, state.get(name))

    # ------------------------------------------------------------------ settings

    def settings(self) -> dict[str, Any]:
        if self.recipe not in self.RECIPES:
            raise MethodError(f"{self.name}: unknown recipe '{self.recipe}'; use one of {', '.join(sorted(self.RECIPES))}")
        merged = dict(self.RECIPES[self.recipe])
        for hyper in dataclasses.fields(self):
            if RECIPE_KEY in hyper.metadata and getattr(self, hyper.name) is not None:
                merged[hyper.metadata[RECIPE_KEY] or hyper.name] = getattr(self, hyper.name)
        merged.setdefault("flip", True)
        if not isinstance(merged["flip"], bool):
            raise MethodError(f"{self.name}: flip must be true or false (-p flip=true), not {merged['flip']!r}")
        for key in ("epochs", "batch_size", "crop"):
            if int(merged[key]) < 1:
                raise MethodError(f"{self.name}: {key} must be at least 1, not {merged[key]}")
        if int(merged["test_crops"]) < 0:
            raise MethodError(f"{self.name}: test_crops must be 0 (whole image) or a positive number of crops")
        return merged

    def min_image_side(self) -> int:
        """Images are resized to ``image_size`` (a fixed HxW fits any image) and then upscaled to
        fit the crop by at most MAX_CROP_UPSCALE, so smaller ones cannot give a crop."""
        import math

        from .data import MAX_CROP_UPSCALE, parse_image_size

        settings = self.settings()
        need = math.ceil(int(settings["crop"]) / MAX_CROP_UPSCALE)
        spec = parse_image_size(settings.get("image_size"))
        if spec is not None and min(spec.target(1, 1)) >= need:  # resized to a fixed size first
            return 1
        return need

    def check_choice(self, field_name: str, choices) -> None:
        """A MethodError naming the choices when the field's value is not one of them."""
        value = getattr(self, field_name)
        if value not in choices:
            raise MethodError(f"{self.name}: {field_name} must be one of {', '.join(choices)}, not {value!r}")

    # ------------------------------------------------------------------ protocol

    def fit_from_stages(self, train_items: pd.DataFrame, val_items: pd.DataFrame, ctx: Context,
                        manifest: dict[str, Any], **stage_states: Any) -> "DeepMethod":
        """The shared fit, after pre-training stages: ``stage_states`` become attributes that
        ``build_model`` reads, cleared afterwards (they are not the fitted state), and
        ``manifest`` is kept as ``pretraining_manifest`` (saved with the model)."""
        unknown = sorted(set(stage_states) - set(self.STAGE_STATES))
        if unknown:
            raise TypeError(f"{type(self).__name__}.fit_from_stages: {unknown} are not in its STAGE_STATES")
        self.pretraining_manifest = manifest
        for name, value in stage_states.items():
            setattr(self, name, value)
        try:
            return DeepMethod.fit(self, train_items, val_items, ctx)
        finally:
            for name in stage_states:
                setattr(self, name, None)

    def fit_settings(self, train_items: pd.DataFrame) -> dict[str, Any]:
        """The settings of a fit (checked), and a MethodError if there is nothing to train on."""
        settings = self.settings()
        if len(train_items) == 0:
            raise MethodError(f"{self.name}: no training items; check the split")
        return settings

    def fit(self, train_items: pd.DataFrame, val_items: pd.DataFrame, ctx: Context) -> "DeepMethod":
        settings = self.fit_settings(train_items)
        device = resolve_device(ctx.device)
        torch.manual_seed(int(ctx.seed))
        model, loaded = self.build_model(settings, self.pretrained, self.weights)
        self.weights_sha256 = loaded.sha256
        model = self._to_device(model, device)
        self._model = model
        train_source = self.prepare_source(train_items, ctx, settings, device)
        data = TrainData(
            item_ids=train_items["item_id"].astype(str).to_numpy(),
            quality=train_items["quality"].to_numpy(dtype=np.float64),
            source=train_source,
            crop=int(settings["crop"]),
            flip=settings["flip"],
        )
        if len(val_items):
            val_source = self.prepare_source(val_items, ctx, settings, device)
            val_ids = val_items["item_id"].astype(str).tolist()
            val_quality = val_items["quality"].to_numpy(dtype=np.float64)

            def evaluate() -> float:
                model.eval()
                return validation_metric(
                    lambda: predict_items(
                        self.score_function(model), val_source, val_ids, data.crop, int(settings["test_crops"]),
                        device, ctx.seed, batch_size=int(settings.get("eval_batch_size", 64)),
                    ),
                    val_quality,
                )
        else:
            ctx.log.warning("%s: no validation items; the last epoch is kept", self.name)

            def evaluate() -> float:
                return float("nan")

        run_fp = fingerprint(self.name, self.get_params_for_fingerprint(), sorted(data.item_ids.tolist()), sorted(val_items["item_id"].astype(str)), ctx.seed)
        results = self.train(Training(model, data, evaluate, ctx, device, settings, run_fp))
        self._history = [r.as_dict() for r in results]
        self._settings = settings
        model.eval()
        return self

    def get_params_for_fingerprint(self) -> dict[str, Any]:
        params = self.get_params()
        params.pop("resume", None)
        return params

    def predict(self, items: pd.DataFrame, ctx: Context) -> np.ndarray:
        if self._model is None:
            raise MethodError(f"{self.name}: not trained; call fit or load a saved model first")
        settings = self.settings()
        device = resolve_device(ctx.device)
        model = self._to_device(self._model, device)
        self._model = model
        model.eval()
        if len(items) == 0:
            return np.zeros(0)
        source = self.prepare_source(items, ctx, settings, device)
        return predict_items(
            self.score_function(model), source, items["item_id"].astype(str).tolist(), int(settings["crop"]),
            int(settings["test_crops"]), device, ctx.seed, batch_size=int(settings.get("eval_batch_size", 64)),
            progress=ctx.progress, label=f"{self.name} predicting",
        )

    def run_phase(self, training: Training, phase: Phase) -> PhaseResult:
        """:func:`biqa_bench.nn.trainer.run_phase` for this method's training (resumed when ``resume``)."""
        return run_phase(
            phase, training.model, training.data, training.ctx, training.device, self.name, training.fingerprint, resume=self.resume
        )

    def train_l1(
        self, training: Training, phase_name: str, groups: list[dict[str, Any]],
        batches: Callable[[int, int, int, np.random.Generator], list[np.ndarray]], train_modules: Sequence[nn.Module] | None = None,
        milestones: Sequence[int] = (),
    ) -> PhaseResult:
        """One phase of L1 regression on the 0-100 quality (the ResNet-50 baseline, QAMT stage 2, HCL
        curriculum 3, HyperIQA): Adam (0.9, 0.999) on the parameter ``groups`` with the recipe's
        weight decay, the rates divided by 10 at each 0-based ``milestones`` epoch (none: constant);
        each epoch ``batches(n_items, crops_per_image, batch_size, rng)`` gives the rows;
        ``train_modules`` (default: the whole model) are in training mode.
        With ``cuda_graphs`` on a CUDA device the steps are replayed from a CUDA graph (the rates
        are constant within an epoch and the loss does not depend on the epoch, as that needs; a
        graph is captured per epoch)."""
        model, settings, data = training.model, training.settings, training.data
        graphs = bool(self.cuda_graphs) and training.device.type == "cuda"
        optimizer = torch.optim.Adam(groups, betas=(0.9, 0.999), weight_decay=settings["weight_decay"], capturable=graphs)
        n, per_image, batch = len(data.item_ids), int(settings["crops_per_image"]), int(settings["batch_size"])

        def loss(images: torch.Tensor, quality: torch.Tensor, epoch: int):
            l1 = F.l1_loss(model(images).float(), quality)
            return l1, {"l1": l1.detach()}

        phase = Phase(
            name=phase_name, epochs=int(settings["epochs"]), optimizer=optimizer, schedule=StepDecay(milestones, 0.1),
            batches=lambda epoch, rng: batches(n, per_image, batch, rng), loss=loss,
            train_modules=[model] if train_modules is None else train_modules,
            evaluate=training.evaluate, max_steps=settings.get("max_steps"), cuda_graph=graphs,
        )
        return self.run_phase(training, phase)

    @staticmethod
    def _to_device(model: nn.Module, device: torch.device) -> nn.Module:
        model = model.to(device)
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        return model

    # ------------------------------------------------------------------ persistence

    def save(self, folder: Path) -> None:
        if self._model is None:
            raise MethodError(f"{self.name}: nothing to save; train it first")
        folder = Path(folder)
        buffer = io.BytesIO()
        state = {k: v.detach().cpu() for k, v in self._model.state_dict().items()}
        torch.save({"model": state, "extra": self.extra_state()}, buffer)
        atomic_write_bytes(folder / "model.pt", buffer.getvalue())
        atomic_write_json(
            folder / "config.json",
            {
                "method": self.name,
                "params": self.get_params(),
                "settings": self.settings(),
                "weights_sha256": self.weights_sha256,
                "history": self._history,
            },
        )

    def load(self, folder: Path) -> "DeepMethod":
        folder = Path(folder)
        if not (folder / "model.pt").is_file() or not (folder / "config.json").is_file():
            raise MethodError(f"{folder}: no saved {self.name} model (model.pt, config.json); train it first with `biqa train`")
        config = json.loads((folder / "config.json").read_text())
        if config.get("method") != self.name:
            raise MethodError(f"{folder}: holds a '{config.get('method')}' model, not '{self.name}'")
        for key, value in config["params"].items():
            setattr(self, key, value)
        self.weights_sha256 = config.get("weights_sha256")
        self._history = config.get("history", [])
        settings = self.settings()
        model, _ = self.build_model(settings, "none", None)  # the saved state replaces every weight
        saved = torch.load(folder / "model.pt", map_location="cpu", weights_only=False)
        model.load_state_dict(saved["model"])
        self.load_extra_state(saved.get("extra", {}))
        model.eval()
        self._model = model
        return self


def init_bias_to_mean(layer: nn.Linear, quality: np.ndarray) -> None:
    """Start a regressor's output at the mean training quality (see the module docstring)."""
    with torch.no_grad():
        layer.bias.fill_(float(np.mean(quality)))
