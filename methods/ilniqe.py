"""IL-NIQE (Zhang, Zhang and Bovik, "A feature-enriched completely blind image quality
evaluator", IEEE TIP 24(8):2579-2591, 2015): opinion-unaware, no training on labels.

The algorithm is :mod:`biqa_bench.features.ilniqe` (504x504 resize, 84x84 patches, NSS,
gradient, log-Gabor and colour statistics at two scales, PCA, a pristine MVG, the mean over the
patches of a Bhattacharyya-like distance). The prediction is the *negated* score (higher is
better).

Choices where the paper leaves one open, or where we could not follow it (the authors' code and
their 90 pristine photos are not available offline; the features below are our reading of the
paper's description, not a port of their code, so scores are not the published IL-NIQE values):

* Pristine images: ``-p pristine=DIR``, by default the 10 photos the embedded data sets are cut
  from (see :mod:`methods.niqe` for what that means on the embedded sets).
* Pristine patches are selected by sharpness as in NIQE, with threshold 0.5 of each image's
  sharpest patch (``-p sharpness_threshold``): NIQE's 0.75 keeps about 50 patches of the 10
  embedded photos, fewer than the 180 features.
* PCA keeps ``n_components`` = 100 directions by default (the paper: 430 of 468 features, from
  far more pristine patches); never more than the pristine patches minus one.
* 90 features per scale (listed in the features module): grey MSCN GGD (2) and neighbour-product
  AGGD (16); opponent-channel gradient GGD and gradient-magnitude Weibull by moment matching
  (18); log-Gabor 3 scales x 4 orientations on the grey image, GGD of even and odd parts (48);
  log-opponent colour Gaussian fits (6). Gradient sigma 0.5; log-Gabor minimum wavelength 2.4,
  scale ratio 1.31, sigma_onf 0.55, angular sigma pi/4/1.1. The second scale is MATLAB's
  ``imresize(I, 0.5)`` of the resized image.
* A non-finite patch feature (a flat patch) takes the pristine mean's value before projection.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from biqa_bench.features import ilniqe as IL
from biqa_bench.features.pristine import EMBEDDED, cached_model
from biqa_bench.methods import Context, register_method
from methods._support.pristine import OpinionUnaware, image_statistics

REFERENCE = ("L. Zhang, L. Zhang, A. C. Bovik, \"A feature-enriched completely blind image quality evaluator\", "
             "IEEE Transactions on Image Processing 24(8):2579-2591, 2015")


@register_method("ilniqe")
class Ilniqe(OpinionUnaware):
    """IL-NIQE: patch-wise MVG distance of enriched NSS features (PCA) to a pristine model (opinion-unaware)."""

    REFERENCE = REFERENCE

    def __init__(self, pristine: str = EMBEDDED, n_components: int = 100, sharpness_threshold: float = 0.5,
                 n_jobs: int = 2):
        self.pristine = pristine
        self.n_components = n_components
        self.sharpness_threshold = sharpness_threshold
        self.n_jobs = n_jobs

    def min_image_side(self) -> int:
        return 2  # every image is resized to 504 x 504 first

    def _model(self, ctx: Context) -> None:
        def fit(images):
            model = IL.fit_pristine(images, self.n_components, self.sharpness_threshold)
            return {"feature_mean": model.feature_mean, "components": model.components, "mean": model.mean,
                    "covariance": model.covariance, "counts": np.array([model.n_patches, model.n_images])}

        arrays, key = cached_model(ctx.cache_dir, "ilniqe", IL.FEATURE_VERSION, str(self.pristine),
                                   {"n_components": self.n_components, "sharpness_threshold": self.sharpness_threshold}, fit)
        n_patches, n_images = (int(v) for v in arrays["counts"])
        self.model_ = IL.PristineModel(arrays["feature_mean"], arrays["components"], arrays["mean"],
                                       arrays["covariance"], n_patches, n_images)
        self.pristine_key_ = key
        ctx.log.info("ilniqe: pristine model from %s (%d patches of %d images, %d components)", self.pristine,
                     n_patches, n_images, arrays["components"].shape[1])

    def distances(self, items: pd.DataFrame, ctx: Context) -> np.ndarray:
        rows = image_statistics(items, ctx, "ilniqe", IL.FEATURE_VERSION, lambda image: IL.patch_features(image)[0].ravel(),
                                self.n_jobs, "IL-NIQE")
        return np.array([IL.ilniqe_distance(row.reshape(IL.N_PATCHES, IL.N_FEATURES), self.model_) for row in rows])
