"""What the opinion-unaware methods (NIQE, IL-NIQE) share: no training, a pristine model (built
once and cached, :mod:`biqa_bench.features.pristine`), per-image features cached like the
trained methods' and a score that is minus the distance of an image's features to the model."""

from __future__ import annotations

import numpy as np
import pandas as pd

from biqa_bench.errors import MethodError
from biqa_bench.features.cache import FeatureCache, image_source_tag
from biqa_bench.methods import Context, Method


def image_statistics(items: pd.DataFrame, ctx: Context, name: str, version: str, extract, n_jobs: int, label: str) -> np.ndarray:
    """Per-image cached features of ``items`` (one row each) for the opinion-unaware methods."""
    cache = FeatureCache(ctx.cache_dir, name, version, image_source_tag(ctx.images))
    paths = [str(p) for p in items["path"]]

    def guarded(image: np.ndarray) -> np.ndarray:
        try:
            return extract(image)
        except ValueError as exc:
            raise MethodError(f"{label}: {exc}; leave such images out (biqa train --skip-broken) or use another method") from None

    return cache.compute(paths, guarded, ctx.read_image, n_jobs=n_jobs,
                         progress=lambda done, total: ctx.progress(f"{label} features", done, total))


class OpinionUnaware(Method):
    """Base of a method scored against a pristine model. A subclass loads its model in
    ``_model(ctx)`` (setting ``pristine_key_``, the model's cache key) and gives each item's
    distance to it in ``distances(items, ctx)``; the score is minus that distance."""

    training_free = True

    def _model(self, ctx: Context) -> None:
        raise NotImplementedError

    def distances(self, items: pd.DataFrame, ctx: Context) -> np.ndarray:
        raise NotImplementedError

    def fit(self, train_items: pd.DataFrame, val_items: pd.DataFrame, ctx: Context) -> "OpinionUnaware":
        self._model(ctx)  # opinion-unaware: the training items and labels are not used
        return self

    def predict(self, items: pd.DataFrame, ctx: Context) -> np.ndarray:
        if not hasattr(self, "pristine_key_"):
            self._model(ctx)
        if len(items) == 0:
            return np.empty(0)
        return -np.asarray(self.distances(items, ctx), dtype=float)
