"""Backbones with offline ImageNet weights: ResNet-50, ResNet-18, VGG-16 (torchvision) and
DeiT-Small (timm).

Nothing here downloads. ImageNet weights come from, in this order:

1. ``weights=FILE`` (``--weights FILE``): any ``.pth``/``.pt``/``.bin``/``.safetensors`` state dict;
2. the torch hub cache, ``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME/hub/checkpoints``):
   torchvision's ``resnet50-0676ba61.pth`` (V1, preferred: the weights the papers used) or
   ``resnet50-11ad3fa6.pth`` (V2), ``resnet18-f37072fd.pth``, ``vgg16-397923af.pth``; timm's
   ``deit_small_patch16_224-cd65a155.pth``;
3. the Hugging Face cache (``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or ``~/.cache/huggingface/hub``):
   ``models--timm--deit_small_patch16_224.fb_in1k/snapshots/*/model.safetensors`` (or
   ``pytorch_model.bin``), ``models--timm--resnet50.tv_in1k/...`` (torchvision's key names;
   timm's ``resnet18.tv_in1k`` and ``vgg16.tv_in1k`` are timm layouts, not accepted).

``pretrained='none'`` trains from a random initialisation. A missing file is a one-line
:class:`MethodError` that says where to put it. :func:`sha256_file` gives the hash that goes into
the run manifest (methods expose it as ``weights_sha256``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import MethodError
from ..store import sha256_file  # noqa: F401 (also this module's API: tests and callers hash weights with it)

PRETRAINED_CHOICES = ("imagenet", "none")

RESNET50_FILES = ("resnet50-0676ba61.pth", "resnet50-11ad3fa6.pth")
RESNET50_URL = "https://download.pytorch.org/models/resnet50-0676ba61.pth"
RESNET50_HF = ("models--timm--resnet50.tv_in1k",)
RESNET18_FILES = ("resnet18-f37072fd.pth",)
RESNET18_URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"
VGG16_FILES = ("vgg16-397923af.pth",)
VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
DEIT_SMALL_FILES = ("deit_small_patch16_224-cd65a155.pth",)
DEIT_SMALL_URL = "https://dl.fbaipublicfiles.com/deit/deit_small_patch16_224-cd65a155.pth"
DEIT_SMALL_HF = ("models--timm--deit_small_patch16_224.fb_in1k",)


@dataclass(frozen=True)
class LoadedWeights:
    """Which file initialised a backbone (None for random initialisation) and its SHA-256."""

    path: Path | None
    sha256: str | None


def _hf_cache_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("HF_HUB_CACHE"):
        dirs.append(Path(os.environ["HF_HUB_CACHE"]))
    if os.environ.get("HF_HOME"):
        dirs.append(Path(os.environ["HF_HOME"]) / "hub")
    dirs.append(Path.home() / ".cache" / "huggingface" / "hub")
    return dirs


def _find_cached(hub_files: tuple[str, ...], hf_repos: tuple[str, ...]) -> Path | None:
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    for name in hub_files:
        if (checkpoints / name).is_file():
            return checkpoints / name
    for base in _hf_cache_dirs():
        for repo in hf_repos:
            for name in ("model.safetensors", "pytorch_model.bin"):
                found = sorted((base / repo / "snapshots").glob(f"*/{name}"))
                if found:
                    return found[-1]
    return None


def resolve_weights(
    pretrained: str, weights: str | Path | None, what: str, hub_files: tuple[str, ...], hf_repos: tuple[str, ...], url: str
) -> Path | None:
    """The weights file to use, or None for ``pretrained='none'``; MethodError if missing."""
    if pretrained not in PRETRAINED_CHOICES:
        raise MethodError(f"pretrained={pretrained!r} not understood; use one of {', '.join(PRETRAINED_CHOICES)}")
    if weights is not None and str(weights) != "":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise MethodError(f"{path}: weights file not found; give an existing {what} ImageNet weights file with --weights")
        return path
    if pretrained == "none":
        return None
    found = _find_cached(hub_files, hf_repos)
    if found is None:
        target = Path(torch.hub.get_dir()) / "checkpoints" / hub_files[0]
        raise MethodError(
            f"{what} ImageNet weights not found: put {hub_files[0]} (from {url}) at {target}, "
            f"or pass --weights FILE, or train from scratch with --pretrained none"
        )
    return found


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt or foreign file: say which, in one line
        raise MethodError(f"{path}: cannot read weights ({type(exc).__name__}: {exc}); replace the file") from None
    for key in ("model", "state_dict", "model_state"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict):
        raise MethodError(f"{path}: not a state dict; give a PyTorch/safetensors weights file")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _load_into(model: nn.Module, state: dict[str, torch.Tensor], path: Path, what: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "keys differ"
        raise MethodError(f"{path}: not {what} ImageNet weights ({first}); give the right file with --weights") from None


def resnet50(pretrained: str = "imagenet", weights: str | Path | None = None) -> tuple[nn.Module, LoadedWeights]:
    """torchvision's ResNet-50 with its 1000-class head, initialised offline."""
    import torchvision

    path = resolve_weights(pretrained, weights, "ResNet-50", RESNET50_FILES, RESNET50_HF, RESNET50_URL)
    model = torchvision.models.resnet50(weights=None)
    if path is None:
        return model, LoadedWeights(None, None)
    state = _read_state_dict(path)
    _load_into(model, state, path, "ResNet-50")
    return model, LoadedWeights(path, sha256_file(path))


def _torchvision_model(build, pretrained, weights, what, files, url) -> tuple[nn.Module, LoadedWeights]:
    path = resolve_weights(pretrained, weights, what, files, (), url)
    model = build(weights=None)
    if path is None:
        return model, LoadedWeights(None, None)
    _load_into(model, _read_state_dict(path), path, what)
    return model, LoadedWeights(path, sha256_file(path))


def resnet18(pretrained: str = "imagenet", weights: str | Path | None = None) -> tuple[nn.Module, LoadedWeights]:
    """torchvision's ResNet-18 with its 1000-class head, initialised offline (MetaIQA)."""
    import torchvision

    return _torchvision_model(torchvision.models.resnet18, pretrained, weights, "ResNet-18", RESNET18_FILES, RESNET18_URL)


def vgg16(pretrained: str = "imagenet", weights: str | Path | None = None) -> tuple[nn.Module, LoadedWeights]:
    """torchvision's VGG-16 (no batch norm) with its classifier, initialised offline (DBCNN)."""
    import torchvision

    return _torchvision_model(torchvision.models.vgg16, pretrained, weights, "VGG-16", VGG16_FILES, VGG16_URL)


def deit_small(
    pretrained: str = "imagenet", weights: str | Path | None = None, img_size: int = 224, num_classes: int = 1000
) -> tuple[nn.Module, LoadedWeights]:
    """timm's ``deit_small_patch16_224`` (ViT-S/16, 384-d) at ``img_size``, initialised offline.

    With ``num_classes=0`` the model returns the 384-d class-token feature. The position
    embedding of the file is resampled to ``img_size`` by timm's checkpoint filter.
    """
    import timm
    from timm.models.vision_transformer import checkpoint_filter_fn

    path = resolve_weights(pretrained, weights, "DeiT-Small", DEIT_SMALL_FILES, DEIT_SMALL_HF, DEIT_SMALL_URL)
    model = timm.create_model("deit_small_patch16_224", pretrained=False, img_size=img_size, num_classes=num_classes)
    if path is None:
        return model, LoadedWeights(None, None)
    state = checkpoint_filter_fn(_read_state_dict(path), model)
    if num_classes == 0:
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
    _load_into(model, state, path, "DeiT-Small")
    return model, LoadedWeights(path, sha256_file(path))


class ResNetStages(nn.Module):
    """A torchvision ResNet cut into its stem and four stages; returns the four stage outputs."""

    def __init__(self, resnet: nn.Module):
        super().__init__()
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4
        self.channels = tuple(
            stage[-1].conv3.out_channels if hasattr(stage[-1], "conv3") else stage[-1].conv2.out_channels
            for stage in (self.layer1, self.layer2, self.layer3, self.layer4)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        out = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            out.append(x)
        return out
