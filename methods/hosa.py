"""HOSA (Xu, Ye, Li, Du, Liu and Doermann, "Blind image quality assessment based on high order
statistics aggregation", IEEE TIP 25(9), 2016): a small K-means codebook of normalised local
patches with each codeword's variance and skewness; the soft-weighted first-, second- and
third-order differences between an image's patches and the codewords, aggregated per codeword;
linear SVR.

The features are :mod:`biqa_bench.features.codebook`; the codebook and encoding cache and the
"training images only" rule are :mod:`methods._support.codebook`; the regression is
:mod:`methods._support.svr` (linear kernel, ``C`` chosen on the validation items).

Choices where we differ from the paper, or where it leaves one open:

* The codebook is learned on each split's training images (the paper learns one on CSIQ).
* K = 100 codewords and r = 5 nearest codewords per patch as in the paper; 400 patches per
  training image for the codebook; patches on a non-overlapping grid; ZCA epsilon 0.1.
* Soft weights ``exp(-beta d^2)`` over the r nearest codewords, normalised, with ``beta`` the
  inverse mean squared distance of the training patches to their nearest codeword (the paper's
  kernel width is not given in a form we could reproduce); the per-codeword statistics are the
  weighted mean, variance and skewness of the patches, minus the codeword's mean, variance and
  skewness (from its hard-assigned training patches); a codeword no patch is near contributes
  zeros.
* Signed square root and L2 normalisation of the whole vector (power normalisation), then
  standardisation before the SVR.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from biqa_bench.features import codebook as CB
from biqa_bench.methods import register_method
from methods._support.codebook import CodebookSVR


@register_method("hosa")
@dataclass(eq=False)
class Hosa(CodebookSVR):
    """HOSA: codebook with per-codeword mean/variance/skewness residuals (r nearest), linear SVR."""

    FEATURE_VERSION = "hosa-1"
    REFERENCE = ("J. Xu, P. Ye, Q. Li, H. Du, Y. Liu, D. Doermann, \"Blind image quality assessment based on high order "
                 "statistics aggregation\", IEEE Transactions on Image Processing 25(9):4444-4457, 2016")

    codebook_size: int = 100
    nearest: int = 5
    patches_per_image: int = 400

    def codebook_params(self):
        return {**super().codebook_params(), "nearest": self.nearest}

    def learn(self, whitened: np.ndarray, seed: int) -> dict[str, np.ndarray]:
        book = CB.fit_hosa_codebook(whitened, self.codebook_size, seed)
        return {"centres": book.centres, "variances": book.variances, "skewness": book.skewness,
                "beta": np.array(book.beta)}

    def encode(self, whitened: np.ndarray, arrays: dict[str, np.ndarray]) -> np.ndarray:
        book = CB.HosaCodebook(arrays["centres"], arrays["variances"], arrays["skewness"], float(arrays["beta"]))
        return CB.hosa_encode(whitened, book, self.nearest)
