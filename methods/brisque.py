"""BRISQUE (Mittal, Moorthy and Bovik, IEEE TIP 2012): 36 natural-scene-statistics features
(:mod:`biqa_bench.features.brisque`) regressed onto quality with an RBF support vector
regressor trained per split (:mod:`methods._support.svr`, shared with CORNIA and HOSA).

Features are computed once per image and cached across splits and runs
(:class:`biqa_bench.features.cache.FeatureCache` under ``ctx.cache_dir``). The regression
(standardisation, ``C`` and ``gamma`` chosen on the validation items by SROCC, or by seeded
k-fold cross-validation when there are too few, refit on train + validation) is described in
:mod:`methods._support.svr`. The test items are never seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from biqa_bench.errors import MethodError
from biqa_bench.features.brisque import FEATURE_VERSION, MIN_SIDE, N_FEATURES, brisque_features
from biqa_bench.features.cache import FeatureCache, image_source_tag
from biqa_bench.methods import Context, register_method
from methods._support.svr import FeatureSVR


def brisque_feature_matrix(items: pd.DataFrame, ctx: Context, n_jobs: int = 1) -> np.ndarray:
    """The (n_items, 36) BRISQUE features of ``items``, from the cache where possible."""
    cache = FeatureCache(ctx.cache_dir, "brisque", FEATURE_VERSION, image_source_tag(ctx.images))
    paths = [str(p) for p in items["path"]]

    def report(done: int, total: int) -> None:
        ctx.progress("BRISQUE features", done, total)

    features = cache.compute(paths, brisque_features, ctx.read_image, n_jobs=n_jobs, progress=report)
    if len(paths) and features.shape[1] != N_FEATURES:
        raise MethodError(f"{cache.folder}: cached BRISQUE features have {features.shape[1]} columns, "
                          f"expected {N_FEATURES}; delete that folder")
    return features.reshape(len(paths), N_FEATURES)


@register_method("brisque")
@dataclass(eq=False)
class Brisque(FeatureSVR):
    """BRISQUE features + RBF SVR (C, gamma chosen on the validation items)."""

    kernel = "rbf"
    REFERENCE = ("A. Mittal, A. K. Moorthy, A. C. Bovik, \"No-reference image quality assessment in the spatial domain\", "
                 "IEEE Transactions on Image Processing 21(12):4695-4708, 2012")

    gamma_grid: tuple[float, ...] = (0.003, 0.01, 0.03, 0.1)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.gamma_grid = tuple(self.gamma_grid)

    def min_image_side(self) -> int:
        return MIN_SIDE

    def features(self, items: pd.DataFrame, ctx: Context) -> np.ndarray:
        return brisque_feature_matrix(items, ctx, self.n_jobs)
