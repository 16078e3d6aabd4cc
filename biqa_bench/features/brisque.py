"""BRISQUE natural-scene-statistics features (Mittal, Moorthy and Bovik, IEEE TIP 2012).

Pure functions, following the authors' reference MATLAB code (``brisque_feature.m``,
``estimateggdparam.m``, ``estimateaggdparam.m``):

* the image is converted to grey as MATLAB's ``rgb2gray`` does (rounded to uint8), in [0, 255];
* MSCN coefficients ``(I - mu) / (sigma + C)`` with a 7x7 Gaussian window of sigma 7/6
  (normalised to sum 1) and ``C = 1``;
* a generalized Gaussian (GGD) fit of the MSCN coefficients: shape and variance (2 features);
* asymmetric GGD (AGGD) fits of the products of each coefficient with its horizontal,
  vertical, main-diagonal and anti-diagonal neighbour (``circshift`` wrap-around kept, as in
  the reference): shape, mean, left variance, right variance (4 x 4 features);
* the same 18 features on the image downsampled by 2 (bicubic with anti-aliasing and
  symmetric padding, like MATLAB's ``imresize(I, 0.5)``): 36 features in all.

Shapes are estimated by the moment-matching grid search of the paper (shape grid 0.2:0.001:10).

The local mean and variance use zero padding at the border, as the reference code's
``filter2(..., 'same')`` does (``border="mirror"`` is available for other uses). Checked against
piq's independent implementation in the tests. The building blocks (MSCN, GGD/AGGD fits, the
resize) live in :mod:`biqa_bench.features.nss`, shared with NIQE and IL-NIQE; they are re-exported
here. Feature version 3: the filters and the resize are exact float64 sparse products (version 2
resized in float32 through PIL; features agree to ~1e-6 relative). The strip-wise computation of
issue #19 changed only the summation order (features agree to ~1e-12 relative), so the version,
and with it the feature cache, stays.
"""

from __future__ import annotations

import numpy as np

from .nss import (  # noqa: F401  (re-exported: the BRISQUE API predates the shared module)
    AGGD_RATIO as _AGGD_RATIO,
    GGD_RATIO as _GGD_RATIO,
    PAIR_SHIFTS as _PAIR_SHIFTS,
    RGB2GRAY as _RGB2GRAY,
    SHAPE_GRID as _SHAPE_GRID,
    AGGDFit,
    GGDFit,
    aggd_fits,
    downsample_half,
    fit_aggd,
    fit_ggd,
    gaussian_window,
    ggd_fits,
    image_fits,
    mscn,
    paired_products,
    to_grey,
)

#: Bump when the features change: the feature cache is keyed by it.
FEATURE_VERSION = "brisque-3"
#: The shortest image side BRISQUE's two scales are computed on (the second is half of it).
MIN_SIDE = 8
N_FEATURES = 36
FEATURE_NAMES = [
    f"s{scale}_{name}"
    for scale in (1, 2)
    for name in ["mscn_shape", "mscn_var"]
    + [f"{pair}_{p}" for pair in ("h", "v", "d1", "d2") for p in ("shape", "mean", "lvar", "rvar")]
]


def scale_features(grey: np.ndarray, border: str = "zero") -> np.ndarray:
    """The 18 features of one scale."""
    (shape, variance), products = image_fits(mscn(grey, border=border))
    return np.concatenate([shape, variance, *(values for fit in products for values in fit)])


def brisque_features(image: np.ndarray, border: str = "zero") -> np.ndarray:
    """The 36 BRISQUE features of an RGB uint8 (or grey) image, in the order of FEATURE_NAMES."""
    grey = to_grey(image)
    if min(grey.shape) < MIN_SIDE:
        raise ValueError(f"image of shape {grey.shape} is too small for BRISQUE (needs at least {MIN_SIDE}x{MIN_SIDE})")
    return np.concatenate([scale_features(grey, border), scale_features(downsample_half(grey), border)])
