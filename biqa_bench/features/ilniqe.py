"""IL-NIQE (Zhang, Zhang and Bovik, "A feature-enriched completely blind image quality
evaluator", IEEE TIP 24(8), 2015). Pure functions.

The image is resized to 504x504 (MATLAB ``imresize``, bicubic) and cut into 36 patches of
84x84; every feature is computed at two scales (the image, then ``imresize(I, 0.5)`` of it, patches
at the same places) from five groups of natural-scene statistics, per patch and scale:

1. MSCN coefficients of the grey image (7x7 Gaussian window, sigma 7/6, ``C = 1``, replicated
   border): GGD shape and scale (2).
2. Products of neighbouring MSCN coefficients (H, V, D1, D2; each patch wraps on itself): AGGD
   shape, mean, left and right scale (16).
3. Gradients of each opponent colour channel (O1 = 0.06R + 0.63G + 0.27B, O2 = 0.30R + 0.04G -
   0.35B, O3 = 0.34R - 0.60G + 0.17B) by Gaussian derivative filters (sigma 0.5, 5 taps): GGD
   shape and scale of the horizontal and vertical components and Weibull shape and scale of the
   gradient magnitude (3 x 6 = 18).
4. Log-Gabor responses of the grey image, 3 scales (minimum wavelength 2.4, ratio 1.31,
   bandwidth sigma_onf 0.55) x 4 orientations (angular sigma pi/4/1.1): GGD shape and scale of the
   even (real) and odd (imaginary) parts (12 x 4 = 48).
5. Colour: log(RGB + 1) minus its patch mean, projected on (1,1,1)/sqrt3, (1,1,-2)/sqrt6,
   (1,-1,0)/sqrt2: Gaussian mean and variance of each (6).

90 features per scale, 180 per patch. The pristine model: the sharp patches of pristine images
(NIQE's rule: mean local sigma above 0.75 of the image's sharpest), their mean and principal
components (PCA, the first ``n_components``), and the MVG (mean, covariance) of the projected
patches. Quality: each test patch projected the same way (a non-finite feature takes the pristine
mean's value), ``q_i = sqrt((nu - y_i)^T pinv((Sigma + Sigma') / 2) (nu - y_i))`` with
``Sigma'`` the covariance of the image's projected patches; the score is the mean of ``q_i``
(lower is better). Every value above that the paper does not fix is ours; the adapter lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

import numpy as np
from scipy.special import gammaln

from .niqe import SHARPNESS_THRESHOLD, mean_and_covariance, select_sharp
from .nss import (
    SHAPE_GRID, aggd_fits, filter_matrix, ggd_fits, image_blocks, imresize, mscn, paired_products, separable, to_grey,
)

FEATURE_VERSION = "ilniqe-1"
RESIZE = 504
PATCH_SIZE = 84
N_PATCHES = (RESIZE // PATCH_SIZE) ** 2
FEATURES_PER_SCALE = 2 + 16 + 18 + 48 + 6
N_FEATURES = 2 * FEATURES_PER_SCALE
OPPONENT = np.array([[0.06, 0.63, 0.27], [0.30, 0.04, -0.35], [0.34, -0.60, 0.17]])
LOG_GABOR = {"scales": 3, "orientations": 4, "min_wavelength": 2.4, "mult": 1.31, "sigma_onf": 0.55,
             "d_theta_on_sigma": 1.1}
GRADIENT_SIGMA = 0.5
_COLOUR_AXES = np.array([[1, 1, 1] / np.sqrt(3), [1, 1, -2] / np.sqrt(6), [1, -1, 0] / np.sqrt(2)])
# Weibull: squared coefficient of variation Gamma(1+2/k)/Gamma(1+1/k)^2 - 1, decreasing in k
_WEIBULL_CV2 = np.exp(gammaln(1 + 2 / SHAPE_GRID) - 2 * gammaln(1 + 1 / SHAPE_GRID)) - 1


def _scale_from_variance(shape: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """GGD scale beta = sqrt(variance Gamma(1/a) / Gamma(3/a))."""
    return np.sqrt(variance * np.exp(gammaln(1 / shape) - gammaln(3 / shape)))


def _ggd_columns(blocks: np.ndarray) -> list[np.ndarray]:
    shape, variance = ggd_fits(blocks)
    return [shape, _scale_from_variance(shape, variance)]


def weibull_fits(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weibull (shape k, scale lambda) of each block of non-negative values, by matching the mean
    and the coefficient of variation on the shape grid."""
    flat = blocks.reshape(len(blocks), -1)
    mean = flat.mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cv2 = flat.var(axis=1) / mean**2
    curve = _WEIBULL_CV2[::-1]  # increasing
    values = np.where(np.isfinite(cv2), cv2, curve[0])
    upper = np.clip(np.searchsorted(curve, values), 1, len(curve) - 1)
    pick = np.where(np.abs(curve[upper] - values) <= np.abs(curve[upper - 1] - values), upper, upper - 1)
    shape = SHAPE_GRID[len(curve) - 1 - pick]
    scale = mean / np.exp(gammaln(1 + 1 / shape))
    ok = np.isfinite(cv2) & (mean > 0)
    return np.where(ok, shape, np.nan), np.where(ok, scale, np.nan)


@lru_cache(maxsize=8)
def log_gabor_bank(rows: int, cols: int) -> np.ndarray:
    """(scales x orientations, rows, cols) frequency responses of the log-Gabor filters."""
    p = LOG_GABOR
    u = np.fft.fftfreq(cols)[None, :]
    v = np.fft.fftfreq(rows)[:, None]
    radius = np.sqrt(u**2 + v**2)
    radius[0, 0] = 1.0
    theta = np.arctan2(-v, u)
    theta_sigma = np.pi / p["orientations"] / p["d_theta_on_sigma"]
    bank = []
    for s in range(p["scales"]):
        f0 = 1.0 / (p["min_wavelength"] * p["mult"] ** s)
        radial = np.exp(-(np.log(radius / f0) ** 2) / (2 * np.log(p["sigma_onf"]) ** 2))
        radial[0, 0] = 0.0
        for o in range(p["orientations"]):
            angle = o * np.pi / p["orientations"]
            d_theta = np.abs(np.arctan2(np.sin(theta - angle), np.cos(theta - angle)))
            bank.append(radial * np.exp(-(d_theta**2) / (2 * theta_sigma**2)))
    return np.stack(bank)


@lru_cache(maxsize=2)
def _derivative_kernels(sigma: float = GRADIENT_SIGMA) -> tuple[tuple[float, ...], tuple[float, ...]]:
    radius = max(1, int(np.ceil(3 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=float)
    g = np.exp(-(x**2) / (2 * sigma**2))
    g /= g.sum()
    d = -x * g / sigma**2
    return tuple(g), tuple(d)


def _scale_features(rgb: np.ndarray, grey: np.ndarray, patch: int) -> np.ndarray:
    """(n_patches, 90) features of one scale."""
    blocks = lambda image: image_blocks(image, patch, patch)  # noqa: E731
    coefficients = blocks(mscn(grey, border="replicate"))
    columns = _ggd_columns(coefficients)
    for product in paired_products(coefficients):
        shape, mean, left_var, right_var = aggd_fits(product)
        columns += [shape, mean, _scale_from_variance(shape, left_var), _scale_from_variance(shape, right_var)]
    smooth, derivative = _derivative_kernels()
    rows, cols = grey.shape
    opponent = rgb @ OPPONENT.T
    for channel in range(3):
        image = opponent[..., channel]
        horizontal = separable(image, filter_matrix(rows, smooth, "mirror"), filter_matrix(cols, derivative, "mirror"))
        vertical = separable(image, filter_matrix(rows, derivative, "mirror"), filter_matrix(cols, smooth, "mirror"))
        columns += _ggd_columns(blocks(horizontal)) + _ggd_columns(blocks(vertical))
        columns += list(weibull_fits(blocks(np.sqrt(horizontal**2 + vertical**2))))
    spectrum = np.fft.fft2(grey)
    for response in log_gabor_bank(rows, cols):
        filtered = np.fft.ifft2(spectrum * response)
        columns += _ggd_columns(blocks(filtered.real)) + _ggd_columns(blocks(filtered.imag))
    log_rgb = np.log(rgb + 1.0)
    for axis in _COLOUR_AXES:
        projected = blocks(log_rgb @ axis)
        projected = projected - projected.mean(axis=(1, 2), keepdims=True)
        columns += [projected.mean(axis=(1, 2)), projected.var(axis=(1, 2))]
    return np.stack(columns, axis=1)


def patch_features(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (36, 180) IL-NIQE features of an RGB uint8 image and each patch's sharpness."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if min(image.shape[:2]) < 2:
        raise ValueError(f"image of shape {image.shape[:2]} is too small for IL-NIQE")
    rgb = np.stack([imresize(image[..., c].astype(np.float64), size=(RESIZE, RESIZE)) for c in range(3)], axis=-1)
    rgb = np.clip(rgb, 0, 255)
    grey = np.clip(np.round(rgb @ np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])), 0, 255)
    _, sigma = mscn(grey, border="replicate", return_sigma=True)
    sharpness = image_blocks(sigma, PATCH_SIZE, PATCH_SIZE).mean(axis=(1, 2))
    first = _scale_features(rgb, grey, PATCH_SIZE)
    half_rgb = np.clip(np.stack([imresize(rgb[..., c], scale=0.5) for c in range(3)], axis=-1), 0, 255)
    second = _scale_features(half_rgb, imresize(grey, scale=0.5), PATCH_SIZE // 2)
    return np.hstack([first, second]), sharpness


@dataclass(frozen=True)
class PristineModel:
    feature_mean: np.ndarray  # (180,) mean of the pristine patch features (PCA centre)
    components: np.ndarray  # (180, m) principal directions
    mean: np.ndarray  # (m,) MVG mean of the projected pristine patches
    covariance: np.ndarray  # (m, m)
    n_patches: int
    n_images: int


def fit_pristine(images: Iterable[np.ndarray], n_components: int = 100,
                 threshold: float = SHARPNESS_THRESHOLD) -> PristineModel:
    selected, n_images = [], 0
    for image in images:
        features, sharpness = patch_features(image)
        selected.append(select_sharp(features, sharpness, threshold))
        n_images += 1
    if not selected:
        raise ValueError("no pristine images to fit the IL-NIQE model on")
    stacked = np.vstack(selected)
    stacked = stacked[np.all(np.isfinite(stacked), axis=1)]
    if len(stacked) < 3:
        raise ValueError(f"only {len(stacked)} usable pristine patches; give more pristine images")
    feature_mean = stacked.mean(axis=0)
    centred = stacked - feature_mean
    m = int(min(n_components, len(stacked) - 1, stacked.shape[1]))
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[:m].T
    projected = centred @ components
    mean, covariance = mean_and_covariance(projected)
    return PristineModel(feature_mean, components, mean, covariance, len(stacked), n_images)


def ilniqe_distance(features: np.ndarray, model: PristineModel) -> float:
    """Mean over the patches of the Bhattacharyya-like distance to the pristine MVG."""
    features = np.where(np.isfinite(features), features, model.feature_mean[None, :])
    projected = (features - model.feature_mean) @ model.components
    _, covariance = mean_and_covariance(projected)
    inverse = np.linalg.pinv((model.covariance + covariance) / 2)
    difference = projected - model.mean
    q = np.einsum("ij,jk,ik->i", difference, inverse, difference)
    return float(np.mean(np.sqrt(np.maximum(q, 0.0))))
