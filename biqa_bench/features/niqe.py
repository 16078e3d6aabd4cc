"""NIQE (Mittal, Soundararajan and Bovik, IEEE SPL 2013): the naturalness image quality
evaluator, as the authors' MATLAB code (``computequality.m``, ``estimatemodelparam.m``,
``computefeature.m``) computes it. Pure functions.

* Grey as MATLAB's ``rgb2gray`` (rounded), cropped to a multiple of the 96x96 patch size.
* Two scales: the image, then ``imresize(I, 0.5)`` of it; at each, MSCN coefficients with the
  7x7 Gaussian window (sigma 7/6), ``C = 1`` and replicated borders (``imfilter(...,
  'replicate')``), split into non-overlapping patches (96x96, then 48x48 at the same places).
* 18 features per patch and scale (:mod:`biqa_bench.features.nss`): an AGGD fit of the MSCN
  coefficients (shape, (beta_l + beta_r) / 2) and, for the H, V, D1, D2 neighbour products
  (each patch wraps on itself, as ``circshift`` of the block), AGGD shape, mean, beta_l, beta_r:
  36 per patch.
* Pristine model: the patches of each pristine image whose sharpness (mean local sigma at
  scale 1) exceeds 0.75 times that image's sharpest patch, pooled over the images; their mean and
  covariance (rows with a NaN feature left out) are the multivariate Gaussian.
* Quality of an image: the mean and covariance of all its patches (no sharpness selection);
  ``D = sqrt((mu_p - mu_d)^T pinv((S_p + S_d) / 2) (mu_p - mu_d))``; lower is better. One valid
  patch gives a zero covariance (MATLAB's ``nancov`` of one row).

:func:`patch_statistics` reduces an image to (mean, covariance) of its patch features, which the
per-image feature cache stores, so the distance to any pristine model is a matrix product.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
from scipy.special import gammaln

from .nss import aggd_fits, downsample_half, image_blocks, mscn, paired_products, to_grey

#: Bump when the features change: the feature cache is keyed by it.
FEATURE_VERSION = "niqe-1"
N_FEATURES = 36
PATCH_SIZE = 96
SHARPNESS_THRESHOLD = 0.75
BORDER = "replicate"


@dataclass(frozen=True)
class PristineModel:
    """The multivariate Gaussian of pristine patch features."""

    mean: np.ndarray  # (36,)
    covariance: np.ndarray  # (36, 36)
    n_patches: int
    n_images: int


def _scale_features(blocks: np.ndarray) -> np.ndarray:
    """(n_blocks, 18) features of MSCN blocks."""
    shape, _, left_var, right_var = aggd_fits(blocks)
    scale = np.exp(0.5 * (gammaln(1 / shape) - gammaln(3 / shape)))
    columns = [shape, 0.5 * (np.sqrt(left_var) + np.sqrt(right_var)) * scale]
    for product in paired_products(blocks):
        shape, mean, left_var, right_var = aggd_fits(product)
        scale = np.exp(0.5 * (gammaln(1 / shape) - gammaln(3 / shape)))
        columns += [shape, mean, np.sqrt(left_var) * scale, np.sqrt(right_var) * scale]
    return np.stack(columns, axis=1)


def patch_features(image: np.ndarray, patch_size: int = PATCH_SIZE, border: str = BORDER) -> tuple[np.ndarray, np.ndarray]:
    """The (n_patches, 36) NIQE features of an RGB uint8 (or grey) image and each patch's
    sharpness (mean local sigma at scale 1), patches in row-major order."""
    if patch_size % 2:
        raise ValueError(f"patch_size must be even (halved at scale 2), got {patch_size}")
    grey = to_grey(image)
    rows, cols = grey.shape[0] // patch_size, grey.shape[1] // patch_size
    if rows == 0 or cols == 0:
        raise ValueError(f"image of shape {grey.shape[:2]} is smaller than one {patch_size}x{patch_size} NIQE patch")
    grey = grey[: rows * patch_size, : cols * patch_size]
    coefficients, sigma = mscn(grey, border=border, return_sigma=True)
    sharpness = image_blocks(sigma, patch_size, patch_size).mean(axis=(1, 2))
    first = _scale_features(image_blocks(coefficients, patch_size, patch_size))
    half = downsample_half(grey)
    second = _scale_features(image_blocks(mscn(half, border=border), patch_size // 2, patch_size // 2))
    return np.hstack([first, second]), sharpness


def mean_and_covariance(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (N - 1) of the rows without a NaN; zero covariance for one row,
    NaN for none."""
    valid = features[np.all(np.isfinite(features), axis=1)]
    dim = features.shape[1]
    if len(valid) == 0:
        return np.full(dim, np.nan), np.full((dim, dim), np.nan)
    if len(valid) == 1:
        return valid[0].copy(), np.zeros((dim, dim))
    return valid.mean(axis=0), np.cov(valid, rowvar=False)


def patch_statistics(image: np.ndarray, patch_size: int = PATCH_SIZE) -> np.ndarray:
    """One image's NIQE summary, flat: the mean (36) then the covariance (36 x 36) of its patch
    features; what the per-image feature cache stores."""
    mean, covariance = mean_and_covariance(patch_features(image, patch_size)[0])
    return np.concatenate([mean, covariance.ravel()])


def split_statistics(flat: np.ndarray, dim: int = N_FEATURES) -> tuple[np.ndarray, np.ndarray]:
    flat = np.asarray(flat, dtype=np.float64)
    return flat[:dim], flat[dim:].reshape(dim, dim)


def select_sharp(features: np.ndarray, sharpness: np.ndarray, threshold: float = SHARPNESS_THRESHOLD) -> np.ndarray:
    """The patches sharper than ``threshold`` times the sharpest one (``estimatemodelparam.m``)."""
    return features[sharpness > threshold * sharpness.max()]


def fit_pristine(images: Iterable[np.ndarray], patch_size: int = PATCH_SIZE,
                 threshold: float = SHARPNESS_THRESHOLD) -> PristineModel:
    """The pristine MVG from sharp patches of pristine images (RGB uint8 or grey arrays)."""
    selected, n_images = [], 0
    for image in images:
        features, sharpness = patch_features(image, patch_size)
        selected.append(select_sharp(features, sharpness, threshold))
        n_images += 1
    if not selected:
        raise ValueError("no pristine images to fit the NIQE model on")
    stacked = np.vstack(selected)
    mean, covariance = mean_and_covariance(stacked)
    n_valid = int(np.all(np.isfinite(stacked), axis=1).sum())
    if n_valid < 2:
        raise ValueError(f"only {n_valid} usable pristine patches; give more (or larger) pristine images")
    return PristineModel(mean, covariance, n_valid, n_images)


def mvg_distance(mean_p: np.ndarray, cov_p: np.ndarray, mean_d: np.ndarray, cov_d: np.ndarray) -> float:
    """``sqrt((mu_p - mu_d)^T pinv((S_p + S_d) / 2) (mu_p - mu_d))``: NIQE's quality, lower is better."""
    difference = mean_p - mean_d
    value = difference @ np.linalg.pinv((cov_p + cov_d) / 2) @ difference
    return float(np.sqrt(max(value, 0.0)))


def niqe_score(image: np.ndarray, model: PristineModel, patch_size: int = PATCH_SIZE) -> float:
    """NIQE of one image against a pristine model (lower is better)."""
    mean, covariance = split_statistics(patch_statistics(image, patch_size))
    return mvg_distance(model.mean, model.covariance, mean, covariance)
