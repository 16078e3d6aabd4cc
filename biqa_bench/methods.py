"""The Method protocol, the method registry and adapter discovery.

A method follows scikit-learn's estimator contract:

* ``__init__(**hyper_parameters)`` stores hyper-parameters only (all keyword, all JSON-able);
* ``fit(train_items, val_items, ctx)`` learns; items are DataFrames of the dataset's items
  table with absolute ``path`` values (see :mod:`biqa_bench.datasets.registry`);
* ``predict(items, ctx) -> np.ndarray`` of one float per row, higher = better quality;
* ``save(folder)`` / ``load(folder)`` persist the learned state.

Adapters register with ``@register_method("name")``; a family of adapters named
``prefix:<suffix>`` (e.g. ``pyiqa:musiq``) registers a factory with
``@register_method_family("prefix")``, called once per suffix asked for. They are discovered from the top-level
``methods/`` package, from folders named in ``$BIQA_METHODS_PATH`` (``os.pathsep``-separated),
and from the entry-point group ``biqa_bench.methods``.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import os
import pickle
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .errors import MethodError

ENTRY_POINT_GROUP = "biqa_bench.methods"


def _no_progress(description: str, completed: float, total: float | None) -> None:
    return None


@dataclass
class Context:
    """What a method may use besides its items: device, seed, folders, progress, log, images."""

    device: str = "cpu"
    seed: int = 0
    cache_dir: Path = field(default_factory=lambda: Path(".biqa-cache"))
    work_dir: Path | None = None  # the run folder (checkpoints may go here)
    progress: Callable[[str, float, float | None], None] = _no_progress
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("biqa"))
    images: Any = None  # an image source with .read(path) -> HxWx3 uint8; see biqa_bench.images
    dataset: Any = None  # the Dataset the items come from, when known
    options: dict[str, Any] = field(default_factory=dict)  # free-form runner options (recipe, resume, ...)

    def read_image(self, path: str | Path) -> np.ndarray:
        if self.images is None:
            from .images import read_image

            return read_image(path)
        return self.images.read(path)


class Method:
    """Base class for adapters; subclasses override fit/predict and, if needed, save/load."""

    name: str = "method"
    #: True if the method has nothing to learn (fit is a no-op); such methods may be run
    #: directly on any image set (gMAD pools, cross-dataset tests).
    training_free: bool = False
    #: True if the method trains on a GPU when one is given (a cluster job then asks for one).
    uses_gpu: bool = False

    def min_image_side(self) -> int:
        """The shortest image side, in pixels, this method (with its parameters) can read. `biqa
        train` refuses smaller images in one line before training (or leaves them out with
        --skip-broken) and `biqa datasets check` lists them; 1 means any size."""
        return 1

    def get_params(self) -> dict[str, Any]:
        signature = inspect.signature(type(self).__init__)
        return {
            name: getattr(self, name)
            for name in signature.parameters
            if name != "self" and hasattr(self, name)
        }

    def fit(self, train_items: pd.DataFrame, val_items: pd.DataFrame, ctx: Context) -> "Method":
        raise NotImplementedError

    def predict(self, items: pd.DataFrame, ctx: Context) -> np.ndarray:
        raise NotImplementedError

    def prepare_stages(self, train_items: pd.DataFrame, ctx: Context) -> list[dict[str, Any]]:
        """Train (or find in the cache) the pre-training stages ``fit`` would use on these training
        items, and return their summaries; ``fit`` then reuses them. A sweep runs this as a job of
        its own before the fine-tuning jobs. Default: the method has no such stages."""
        return []

    def save(self, folder: Path) -> None:
        """Default: pickle the instance's __dict__ (fine for small classical models)."""
        from .store import atomic_write_bytes

        atomic_write_bytes(Path(folder) / "model.pkl", pickle.dumps(self.__dict__))

    def load(self, folder: Path) -> "Method":
        path = Path(folder) / "model.pkl"
        if not path.is_file():
            raise MethodError(f"{path}: no saved model; train it first with `biqa train`")
        self.__dict__.update(pickle.loads(path.read_bytes()))
        return self


_REGISTRY: dict[str, type[Method]] = {}
_FAMILIES: dict[str, Callable[[str], type[Method]]] = {}
_DISCOVERED = False


def register_method(name: str) -> Callable[[type[Method]], type[Method]]:
    """Class decorator: make an adapter available as ``name``."""

    def decorate(cls: type[Method]) -> type[Method]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def register_method_family(prefix: str) -> Callable[[Callable[[str], type[Method]]], Callable[[str], type[Method]]]:
    """Decorator of ``factory(suffix) -> adapter class``: the methods ``prefix:<suffix>``. The
    factory raises MethodError for a suffix it does not know; its docstring's first line is the
    family's summary in ``biqa methods list``."""

    def decorate(factory: Callable[[str], type[Method]]) -> Callable[[str], type[Method]]:
        _FAMILIES[prefix] = factory
        return factory

    return decorate


def method_families() -> dict[str, Callable[[str], type[Method]]]:
    """The registered families by prefix (after discovery)."""
    discover()
    return dict(_FAMILIES)


def _import_folder(folder: Path, log: logging.Logger) -> None:
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        module_name = f"biqa_user_methods.{path.stem}"
        if module_name in sys.modules:
            continue
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # a broken user file must not hide the others; say which
            del sys.modules[module_name]
            raise MethodError(f"{path}: cannot import method adapter ({type(exc).__name__}: {exc}); fix the file") from None


def discover(log: logging.Logger | None = None) -> dict[str, type[Method]]:
    """Import the built-in adapters, user folders and entry points once; return the registry."""
    global _DISCOVERED
    log = log or logging.getLogger("biqa")
    if not _DISCOVERED:
        _DISCOVERED = True
        import methods as builtin_methods

        for info in sorted(Path(builtin_methods.__file__).parent.glob("*.py")):
            if not info.name.startswith("_"):
                importlib.import_module(f"methods.{info.stem}")
        for folder in filter(None, os.environ.get("BIQA_METHODS_PATH", "").split(os.pathsep)):
            _import_folder(Path(folder), log)
        for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                entry.load()
            except Exception as exc:
                raise MethodError(f"entry point '{entry.name}' ({entry.value}) failed to load: {exc}") from None
    return dict(_REGISTRY)


def method_names() -> list[str]:
    return sorted(discover())


def method_class(name: str) -> type[Method]:
    """The registered adapter class called ``name``; an unknown name is a MethodError with a suggestion."""
    registry = discover()
    if name not in registry:
        prefix, _, suffix = name.partition(":")
        if suffix and prefix in _FAMILIES:
            cls = _FAMILIES[prefix](suffix)
            cls.name = name
            _REGISTRY[name] = cls
            return cls
        from .errors import did_you_mean

        known = list(registry) + [f"{p}:" for p in _FAMILIES]
        raise MethodError(f"unknown method '{name}'.{did_you_mean(name, known)} See `biqa methods list`.")
    return registry[name]


def min_image_sides() -> dict[str, int]:
    """Each method's shortest readable image side with its default parameters (above 1 only)."""
    sides = {}
    for name, cls in sorted(discover().items()):
        try:
            side = int(cls().min_image_side())
        except Exception:  # a method that needs parameters to be built states no default minimum
            continue
        if side > 1:
            sides[name] = side
    return sides


def create_method(name: str, **params: Any) -> Method:
    cls = method_class(name)
    try:
        return cls(**params)
    except TypeError as exc:
        accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        raise MethodError(f"method '{name}': bad parameters {sorted(params)} ({exc}); it accepts {accepted}") from None
