"""pyiqa's pretrained no-reference metrics as training-free methods ``pyiqa:<metric>``.

``pyiqa:musiq``, ``pyiqa:clipiqa``, ``pyiqa:niqe``, ... run the metric of that name from pyiqa
(Chen et al., IQA-PyTorch; the optional extra ``biqa-bench[pyiqa]``) on a dataset's test split
(``biqa train``) or on every labelled item (``biqa train --whole``), and on any images
(``biqa predict --run pyiqa:musiq``). Nothing is learned: ``fit`` does nothing.

Offline rule: the weights come only from the local pyiqa cache (``$TORCH_HOME/hub/pyiqa``, by
default ``~/.cache/torch/hub/pyiqa``, where pyiqa itself keeps them) or from ``-p weights=FILE``.
While a metric is created, pyiqa's download helper is replaced by a look-up in that cache and
torch's download function by an error, and Hugging Face is put offline, so a missing file is a
one-line error naming the file, the folder to put it in and the address to fetch it from; no
download is attempted. The SHA-256 of the weights files used is recorded in the run's manifest.

Choices where pyiqa leaves them to the caller (ours):
* images are fed at their own resolution as RGB in [0, 1], as pyiqa's ``imread2tensor`` does;
  images of the same size are scored together in batches of ``batch_size`` (on the GPU when
  ``--device cuda``), others one at a time; a metric returning several values per image is
  averaged to one;
* direction: the benchmark's predictions are higher-is-better (the logistic mapping and every
  analysis assume it), so a metric that pyiqa's own metadata (``lower_better`` in
  ``pyiqa.default_model_configs``) marks lower-is-better (NIQE, BRISQUE, PI, ...) is negated;
  the run's resolved parameters say ``lower_is_better: true`` and pyiqa's score is
  ``-prediction``. ``-p lower_is_better=false|true`` overrides the metadata;
* full-reference metrics are refused (there is no reference image in a BIQA benchmark).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from biqa_bench.errors import MethodError
from biqa_bench.methods import Context, Method, register_method_family

EXTRA = 'pip install "biqa-bench[pyiqa]"'


def _pyiqa():
    try:
        import pyiqa
    except ImportError as exc:
        raise MethodError(f"the pyiqa bridge needs pyiqa ({exc}); install it with {EXTRA}") from None
    return pyiqa


def metric_configs() -> dict[str, dict]:
    """pyiqa's metadata of every metric (``metric_mode``, ``lower_better``, ``score_range``)."""
    _pyiqa()
    from pyiqa.default_model_configs import DEFAULT_CONFIGS

    return DEFAULT_CONFIGS


def pyiqa_cache_dir() -> Path:
    """Where pyiqa keeps downloaded weights: ``<torch hub dir>/pyiqa`` (``$TORCH_HOME`` honoured)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "pyiqa"


class WeightsMissing(MethodError):
    """A weights file pyiqa needs is not in the local cache."""


@contextlib.contextmanager
def offline_weights(metric: str):
    """While pyiqa builds ``metric``: weights only from the local cache, no download of any kind.
    Yields the list of weight files used (filled as pyiqa asks for them)."""
    from urllib.parse import urlparse

    import torch.hub

    used: list[Path] = []

    def from_cache(url, model_dir=None, progress=True, file_name=None):
        folder = Path(model_dir) if model_dir else pyiqa_cache_dir()
        path = folder / (file_name or os.path.basename(urlparse(url).path))
        if not path.is_file():
            raise WeightsMissing(
                f"{path}: weights of pyiqa:{metric} not found (nothing is downloaded); fetch {url} "
                f"on a machine with internet and put it in {folder}, or pass -p weights=FILE"
            )
        used.append(path)
        return str(path)

    def no_download(url, dst, *args, **kwargs):
        raise WeightsMissing(
            f"{dst}: weights of pyiqa:{metric} not in the local torch cache (nothing is downloaded); "
            f"fetch {url} on a machine with internet and put it there"
        )

    patched = [(torch.hub, "download_url_to_file", no_download)]
    for name, module in list(sys.modules.items()):
        if (name == "pyiqa" or name.startswith("pyiqa.")) and hasattr(module, "load_file_from_url"):
            patched.append((module, "load_file_from_url", from_cache))
    hub_constants = sys.modules.get("huggingface_hub.constants")
    if hub_constants is not None and hasattr(hub_constants, "HF_HUB_OFFLINE"):
        patched.append((hub_constants, "HF_HUB_OFFLINE", True))
    saved = [(module, attribute, getattr(module, attribute)) for module, attribute, _ in patched]
    environment = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    try:
        for module, attribute, value in patched:
            setattr(module, attribute, value)
        os.environ.update({k: "1" for k in environment})
        yield used
    finally:
        for module, attribute, value in saved:
            setattr(module, attribute, value)
        for key, value in environment.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class PyiqaMetric(Method):
    """A pyiqa no-reference metric with its pretrained weights (pyiqa:<metric>, from the local cache only)."""

    training_free = True
    metric: str = ""  # set per metric by the factory

    def __init__(self, weights: str | None = None, batch_size: int = 8, lower_is_better: bool | None = None):
        self.weights = weights
        self.batch_size = batch_size
        self.lower_is_better = lower_is_better

    def direction_lower_is_better(self) -> bool:
        """This run's direction: the parameter, else pyiqa's metadata of the metric."""
        if self.lower_is_better is not None:
            return bool(self.lower_is_better)
        return bool(metric_configs()[self.metric].get("lower_better", False))

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "metric": self.metric, "lower_is_better": self.direction_lower_is_better()}

    def fit(self, train_items: pd.DataFrame, val_items: pd.DataFrame, ctx: Context) -> "PyiqaMetric":
        return self  # pretrained: nothing to learn

    def _create(self, device: str):
        import torch

        from biqa_bench.store import sha256_file

        pyiqa = _pyiqa()
        options: dict[str, Any] = {}
        if self.weights is not None:
            if not Path(self.weights).is_file():
                raise WeightsMissing(f"{self.weights}: no such weights file for pyiqa:{self.metric} (-p weights=FILE)")
            options["pretrained_model_path"] = str(self.weights)
        printed = io.StringIO()  # pyiqa prints where it loads weights from; the library never prints
        with offline_weights(self.metric) as used, contextlib.redirect_stdout(printed):
            try:
                metric = pyiqa.create_metric(self.metric, device=torch.device(device), **options)
            except MethodError:
                raise
            except Exception as exc:  # a metric that needs something else from the network, a broken file
                raise MethodError(
                    f"pyiqa:{self.metric}: cannot be created offline ({type(exc).__name__}: {exc}); "
                    f"its weights go in {pyiqa_cache_dir()}"
                ) from None
        files = ([Path(self.weights)] if self.weights else []) + used
        self.weights_sha256 = json.dumps({f.name: sha256_file(f) for f in files}, sort_keys=True) if files else None
        return metric

    def predict(self, items: pd.DataFrame, ctx: Context) -> np.ndarray:
        import torch

        if len(items) == 0:
            return np.zeros(0)
        metric = self._create(ctx.device)
        scores = np.empty(len(items), dtype=float)
        paths = list(items["path"])
        start = 0
        with torch.no_grad():
            while start < len(paths):
                images = [ctx.read_image(paths[start])]
                while (start + len(images) < len(paths) and len(images) < max(1, int(self.batch_size))):
                    candidate = ctx.read_image(paths[start + len(images)])
                    if candidate.shape != images[0].shape:
                        break
                    images.append(candidate)
                pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div(255.0)
                output = metric(pixels.to(ctx.device))
                values = torch.as_tensor(output, dtype=torch.float32).reshape(len(images), -1).mean(1)
                scores[start:start + len(images)] = values.cpu().numpy()
                start += len(images)
                ctx.progress(f"{self.name} predicting", start, len(paths))
        return -scores if self.direction_lower_is_better() else scores

    def save(self, folder: Path) -> None:
        from biqa_bench.store import atomic_write_json

        atomic_write_json(Path(folder) / "pyiqa.json", self.get_params())

    def load(self, folder: Path) -> "PyiqaMetric":
        return self  # nothing learned: the parameters come from the run's manifest


@register_method_family("pyiqa")
def pyiqa_method(metric: str) -> type[Method]:
    """pyiqa's pretrained no-reference metrics, e.g. pyiqa:musiq, pyiqa:clipiqa, pyiqa:niqe (the optional pyiqa extra)."""
    configs = metric_configs()
    if metric not in configs:
        from biqa_bench.errors import did_you_mean

        no_reference = sorted(k for k, v in configs.items() if v.get("metric_mode") == "NR")
        raise MethodError(f"pyiqa has no metric '{metric}'.{did_you_mean(metric, no_reference)} "
                          f"Its no-reference metrics: {', '.join(no_reference)}")
    if configs[metric].get("metric_mode") != "NR":
        raise MethodError(f"pyiqa:{metric} is a full-reference metric ({configs[metric].get('metric_mode')}); "
                          "a blind benchmark has no reference images: use a no-reference one, or import its scores "
                          "with `biqa import --whole`")
    return type(f"Pyiqa_{metric}", (PyiqaMetric,), {"metric": metric, "__doc__": PyiqaMetric.__doc__})
