"""NIQE (Mittal, Soundararajan and Bovik, "Making a 'completely blind' image quality analyzer",
IEEE Signal Processing Letters 20(3), 2013): opinion-unaware, no training on labels.

The algorithm is :mod:`biqa_bench.features.niqe` (the authors' MATLAB code: 96x96 patches, 36
NSS features at two scales, sharpness-selected pristine patches, a multivariate Gaussian, the
MVG distance as the score). The prediction is the *negated* distance, so that higher is better
like every other method's.

Choices where the paper leaves one open, or where we differ from the authors' setting:

* Pristine images: ``-p pristine=DIR`` (a folder, searched recursively), by default the
  distinct photographs the embedded data sets are cut from (10 photos bundled with
  scikit-image, scikit-learn and Matplotlib, whole), not the authors' 125 pristine photos, which
  are not redistributable: scores are therefore not the published NIQE values (the ranking
  mechanism is the same). The embedded sets are distortions of these very photos, so on them the
  default model has seen the contents (not their labels); give another folder for a clean test.
* Colour images are converted with MATLAB's ``rgb2gray`` (rounded to integers), as BRISQUE here.
* ``fit`` learns nothing from the training items or their labels: it fits (or loads from the
  cache) the pristine model. The same model serves every split. An image smaller than one patch
  is an error naming it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from biqa_bench.features import niqe as N
from biqa_bench.features.pristine import EMBEDDED, cached_model
from biqa_bench.methods import Context, register_method
from methods._support.pristine import OpinionUnaware, image_statistics

REFERENCE = ("A. Mittal, R. Soundararajan, A. C. Bovik, \"Making a 'completely blind' image quality analyzer\", "
             "IEEE Signal Processing Letters 20(3):209-212, 2013")


@register_method("niqe")
class Niqe(OpinionUnaware):
    """NIQE: MVG distance of 96x96-patch NSS features to a pristine model (opinion-unaware)."""

    REFERENCE = REFERENCE

    def __init__(self, pristine: str = EMBEDDED, patch_size: int = N.PATCH_SIZE,
                 sharpness_threshold: float = N.SHARPNESS_THRESHOLD, n_jobs: int = 2):
        self.pristine = pristine
        self.patch_size = patch_size
        self.sharpness_threshold = sharpness_threshold
        self.n_jobs = n_jobs

    def _version(self) -> str:
        return f"{N.FEATURE_VERSION}-p{self.patch_size}"

    def _model(self, ctx: Context) -> None:
        def fit(images):
            model = N.fit_pristine(images, self.patch_size, self.sharpness_threshold)
            return {"mean": model.mean, "covariance": model.covariance,
                    "counts": np.array([model.n_patches, model.n_images])}

        arrays, key = cached_model(ctx.cache_dir, "niqe", self._version(), str(self.pristine),
                                   {"patch_size": self.patch_size, "sharpness_threshold": self.sharpness_threshold}, fit)
        self.pristine_mean_, self.pristine_covariance_ = arrays["mean"], arrays["covariance"]
        self.pristine_patches_, self.pristine_images_ = (int(v) for v in arrays["counts"])
        self.pristine_key_ = key
        ctx.log.info("niqe: pristine model from %s (%d patches of %d images)", self.pristine,
                     self.pristine_patches_, self.pristine_images_)

    def min_image_side(self) -> int:
        return int(self.patch_size)  # one patch

    def distances(self, items: pd.DataFrame, ctx: Context) -> np.ndarray:
        rows = image_statistics(items, ctx, "niqe", self._version(),
                                lambda image: N.patch_statistics(image, self.patch_size), self.n_jobs, "NIQE")
        return np.array([N.mvg_distance(self.pristine_mean_, self.pristine_covariance_, *N.split_statistics(row)) for row in rows])
