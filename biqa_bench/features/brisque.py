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
piq's independent implementation in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.special import gammaln

#: Bump when the features change: the feature cache is keyed by it.
FEATURE_VERSION = "brisque-2"
N_FEATURES = 36
FEATURE_NAMES = [
    f"s{scale}_{name}"
    for scale in (1, 2)
    for name in ["mscn_shape", "mscn_var"]
    + [f"{pair}_{p}" for pair in ("h", "v", "d1", "d2") for p in ("shape", "mean", "lvar", "rvar")]
]

_SHAPE_GRID = np.round(np.arange(0.2, 10.0 + 5e-4, 0.001), 3)
# GGD: rho(shape) = Gamma(1/a) Gamma(3/a) / Gamma(2/a)^2  (= E[x^2] / E[|x|]^2)
_GGD_RATIO = np.exp(gammaln(1 / _SHAPE_GRID) + gammaln(3 / _SHAPE_GRID) - 2 * gammaln(2 / _SHAPE_GRID))
# AGGD: r(shape) = Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a))  (= E[|x|]^2 / E[x^2] when symmetric)
_AGGD_RATIO = 1.0 / _GGD_RATIO
# Neighbour offsets (rows, cols) of the reference code's circshift: H, V, D1, D2.
_PAIR_SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))
# MATLAB's rgb2gray weights (the luminance row of the inverse of the YIQ matrix).
_RGB2GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])
_BORDER_MODES = {"zero": "constant", "mirror": "reflect"}


@dataclass(frozen=True)
class GGDFit:
    shape: float  # alpha
    variance: float  # sigma^2 = E[x^2]


@dataclass(frozen=True)
class AGGDFit:
    shape: float  # alpha (nu)
    mean: float  # eta = (beta_r - beta_l) Gamma(2/a) / Gamma(1/a)
    left_variance: float  # sigma_l^2
    right_variance: float  # sigma_r^2


def gaussian_window(size: int = 7, sigma: float = 7 / 6) -> np.ndarray:
    """MATLAB's ``fspecial('gaussian', size, sigma)``: sampled, normalised to sum 1."""
    x = np.arange(size, dtype=float) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    window = np.outer(g, g)
    return window / window.sum()


def to_grey(image: np.ndarray) -> np.ndarray:
    """An HxWx3 uint8 RGB (or HxW) image to float64 grey in [0, 255], as MATLAB's rgb2gray."""
    image = np.asarray(image)
    if image.ndim == 2:
        return image.astype(np.float64)
    if image.ndim != 3 or image.shape[2] < 3:
        raise ValueError(f"expected an HxW or HxWx3 image, got shape {image.shape}")
    rgb = image[..., :3].astype(np.float64)
    grey = rgb @ _RGB2GRAY
    if image.dtype == np.uint8:
        grey = np.clip(np.round(grey), 0, 255)
    return grey


def mscn(grey: np.ndarray, window: np.ndarray | None = None, c: float = 1.0, border: str = "zero") -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients of a grey image in [0, 255].

    ``border="zero"`` pads with zeros like the reference code's ``filter2(..., 'same')``;
    ``"mirror"`` reflects the image instead (no false edges on the 3-pixel border).
    """
    if border not in _BORDER_MODES:
        raise ValueError(f"border must be one of {sorted(_BORDER_MODES)}, got {border!r}")
    mode = _BORDER_MODES[border]
    grey = np.asarray(grey, dtype=np.float64)
    window = gaussian_window() if window is None else window
    g = window[window.shape[0] // 2]
    g = g / g.sum()  # separable: the outer product of this 1-d kernel is the window

    def blur(a: np.ndarray) -> np.ndarray:
        return ndimage.correlate1d(ndimage.correlate1d(a, g, axis=0, mode=mode, cval=0.0), g, axis=1, mode=mode, cval=0.0)

    mu = blur(grey)
    sigma = np.sqrt(np.abs(blur(grey * grey) - mu * mu))
    return (grey - mu) / (sigma + c)


def fit_ggd(values: np.ndarray) -> GGDFit:
    """Zero-mean GGD fit by moment matching (``estimateggdparam.m``); NaN shape if degenerate."""
    x = np.asarray(values, dtype=np.float64).ravel()
    variance = float(np.mean(x * x)) if x.size else float("nan")
    mean_abs = float(np.mean(np.abs(x))) if x.size else float("nan")
    if not (mean_abs > 0):
        return GGDFit(float("nan"), variance)
    rho = variance / mean_abs**2
    shape = float(_SHAPE_GRID[np.argmin(np.abs(rho - _GGD_RATIO))])
    return GGDFit(shape, variance)


def fit_aggd(values: np.ndarray) -> AGGDFit:
    """Asymmetric GGD fit by moment matching (``estimateaggdparam.m``); NaN if degenerate.

    Degenerate means a side with no samples or no spread: the ratio of the two sides'
    spreads, on which the estimate rests, is then undefined.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    left, right = x[x < 0], x[x > 0]
    if left.size == 0 or right.size == 0:
        nan = float("nan")
        return AGGDFit(nan, nan, float(np.mean(left**2)) if left.size else nan,
                       float(np.mean(right**2)) if right.size else nan)
    left_std = np.sqrt(np.mean(left * left))
    right_std = np.sqrt(np.mean(right * right))
    gamma_hat = left_std / right_std
    r_hat = np.mean(np.abs(x)) ** 2 / np.mean(x * x)
    r_hat_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    shape = float(_SHAPE_GRID[np.argmin((_AGGD_RATIO - r_hat_norm) ** 2)])
    # eta = (beta_r - beta_l) Gamma(2/a)/Gamma(1/a), beta = std * sqrt(Gamma(1/a)/Gamma(3/a))
    scale = np.exp(0.5 * (gammaln(1 / shape) - gammaln(3 / shape)))
    mean = (right_std - left_std) * np.exp(gammaln(2 / shape) - gammaln(1 / shape)) * scale
    return AGGDFit(shape, float(mean), float(left_std**2), float(right_std**2))


def paired_products(coefficients: np.ndarray) -> list[np.ndarray]:
    """Products with the H, V, D1, D2 neighbours (wrap-around like MATLAB's circshift)."""
    return [coefficients * np.roll(coefficients, shift, axis=(0, 1)) for shift in _PAIR_SHIFTS]


def scale_features(grey: np.ndarray, border: str = "zero") -> np.ndarray:
    """The 18 features of one scale."""
    coefficients = mscn(grey, border=border)
    ggd = fit_ggd(coefficients)
    features = [ggd.shape, ggd.variance]
    for product in paired_products(coefficients):
        fit = fit_aggd(product)
        features += [fit.shape, fit.mean, fit.left_variance, fit.right_variance]
    return np.asarray(features, dtype=np.float64)


def downsample_half(grey: np.ndarray) -> np.ndarray:
    """Halve an image as MATLAB's ``imresize(I, 0.5)``: bicubic (a = -0.5) with the kernel
    widened for anti-aliasing, symmetric padding at the border, ceil(size / 2) output.

    PIL's bicubic resize uses the same widened kernel and sample positions for an exact factor
    of 2, but renormalises the kernel at the border instead of padding; so the image is padded
    symmetrically (8 pixels, more than the kernel radius of 4, plus one on an odd side), resized
    by exactly 2 and cropped.
    """
    grey = np.asarray(grey, dtype=np.float64)
    height, width = grey.shape
    pad = 8
    padded = np.pad(grey, ((pad, pad + height % 2), (pad, pad + width % 2)), mode="symmetric")
    size = (padded.shape[1] // 2, padded.shape[0] // 2)
    resized = np.asarray(Image.fromarray(padded.astype(np.float32)).resize(size, Image.Resampling.BICUBIC), dtype=np.float64)
    return resized[pad // 2:pad // 2 + (height + 1) // 2, pad // 2:pad // 2 + (width + 1) // 2]


def brisque_features(image: np.ndarray, border: str = "zero") -> np.ndarray:
    """The 36 BRISQUE features of an RGB uint8 (or grey) image, in the order of FEATURE_NAMES."""
    grey = to_grey(image)
    if min(grey.shape) < 8:
        raise ValueError(f"image of shape {grey.shape} is too small for BRISQUE (needs at least 8x8)")
    return np.concatenate([scale_features(grey, border), scale_features(downsample_half(grey), border)])
