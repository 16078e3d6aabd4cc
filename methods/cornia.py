"""CORNIA (Ye, Kumar, Kang and Doermann, "Unsupervised feature learning framework for
no-reference image quality assessment", CVPR 2012): an unsupervised codebook of normalised local
patches, soft-assignment coding with max pooling, linear SVR.

The features are :mod:`biqa_bench.features.codebook`; the codebook and encoding cache and the
"training images only" rule are :mod:`methods._support.codebook`; the regression is
:mod:`methods._support.svr` (linear kernel, ``C`` chosen on the validation items).

Choices where we differ from the paper, or where it leaves one open:

* The codebook is learned on each split's training images (the paper learns one on CSIQ and
  uses it everywhere): a benchmark must not depend on a second database, and this way no test
  content reaches it.
* Codebook size 200 and 200 patches per training image by default (the paper: K = 10,000 from
  10,000 patches per image), so a split trains in seconds on a CPU; ``-p codebook_size=10000
  -p patches_per_image=10000`` runs the paper's sizes.
* Patches on a non-overlapping grid (see the features module); ZCA epsilon 0.1; K-means with
  k-means++ seeding, one initialisation, 100 iterations, seeded by the method seed.
* Features are standardised before the SVR (the paper does not say how it scaled them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from biqa_bench.features import codebook as CB
from biqa_bench.methods import register_method
from methods._support.codebook import CodebookSVR


@register_method("cornia")
@dataclass(eq=False)
class Cornia(CodebookSVR):
    """CORNIA: K-means codebook of whitened 7x7 patches, soft-assignment + max pooling, linear SVR."""

    FEATURE_VERSION = "cornia-1"
    REFERENCE = ("P. Ye, J. Kumar, L. Kang, D. Doermann, \"Unsupervised feature learning framework for no-reference "
                 "image quality assessment\", CVPR 2012, pp. 1098-1105")



    def learn(self, whitened: np.ndarray, seed: int) -> dict[str, np.ndarray]:
        centres, _ = CB.kmeans(whitened, self.codebook_size, seed)
        return {"codewords": CB.cornia_codewords(centres)}

    def encode(self, whitened: np.ndarray, arrays: dict[str, np.ndarray]) -> np.ndarray:
        return CB.cornia_encode(whitened, arrays["codewords"])
