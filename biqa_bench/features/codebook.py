"""Codebook features of CORNIA (Ye, Kumar, Kang and Doermann, CVPR 2012) and HOSA (Xu, Ye, Li,
Du, Liu and Doermann, IEEE TIP 2016). Pure functions.

Shared local descriptors: grey (MATLAB ``rgb2gray``) 7x7 patches, each normalised by its own mean
and contrast, ``(x - mean) / sqrt(var + C)`` with ``C = 10`` (grey in [0, 255]), then ZCA
whitening fitted on the codebook's training patches. Patches are taken on a regular grid
(stride = patch size, non-overlapping) instead of the papers' random draws, so an image's
descriptors do not depend on a seed and cover the whole image; for codebook training a seeded
sample of at most ``patches_per_image`` of them per training image is used.

* CORNIA: K-means codewords (unit length after whitening), soft-assignment coding
  ``[max(D^T x, 0), max(-D^T x, 0)]`` per patch, max pooling over the patches: 2K values.
* HOSA: K-means codewords with the per-dimension variance and skewness of the training patches
  assigned to each; each patch is soft-assigned to its ``r`` nearest codewords (weights
  ``exp(-beta d^2)`` normalised over the ``r``, ``beta`` the inverse mean squared distance of
  training patches to their nearest codeword); per codeword, the weighted mean, variance and
  skewness of its patches minus the codeword's own (first-, second-, third-order residuals):
  3 K d values, signed square root then L2 normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .nss import to_grey

PATCH_SIZE = 7
CONTRAST_CONSTANT = 10.0
WHITENING_EPSILON = 0.1


def local_patches(image: np.ndarray, size: int = PATCH_SIZE, c: float = CONTRAST_CONSTANT) -> np.ndarray:
    """Contrast-normalised non-overlapping ``size`` x ``size`` grey patches, (n, size^2)."""
    grey = to_grey(image)
    rows, cols = grey.shape[0] // size, grey.shape[1] // size
    if rows == 0 or cols == 0:
        raise ValueError(f"image of shape {grey.shape[:2]} is smaller than one {size}x{size} patch")
    patches = grey[: rows * size, : cols * size].reshape(rows, size, cols, size).transpose(0, 2, 1, 3).reshape(-1, size * size)
    patches = patches - patches.mean(axis=1, keepdims=True)
    return patches / np.sqrt(patches.var(axis=1, keepdims=True) + c)


@dataclass(frozen=True)
class Whitening:
    """ZCA whitening: ``(x - mean) @ matrix``."""

    mean: np.ndarray
    matrix: np.ndarray

    @classmethod
    def fit(cls, patches: np.ndarray, epsilon: float = WHITENING_EPSILON) -> "Whitening":
        mean = patches.mean(axis=0)
        eigenvalues, eigenvectors = np.linalg.eigh(np.cov(patches - mean, rowvar=False))
        matrix = eigenvectors @ np.diag(1.0 / np.sqrt(np.maximum(eigenvalues, 0) + epsilon)) @ eigenvectors.T
        return cls(mean, matrix)

    def __call__(self, patches: np.ndarray) -> np.ndarray:
        return (patches - self.mean) @ self.matrix


def kmeans(descriptors: np.ndarray, k: int, seed: int, max_iter: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Seeded K-means (scikit-learn, k-means++ initialisation): (centres, labels)."""
    from sklearn.cluster import KMeans

    if len(descriptors) < k:
        raise ValueError(f"{len(descriptors)} training patches are fewer than the {k} codewords; "
                         "lower codebook_size or give more training images")
    model = KMeans(n_clusters=k, n_init=1, max_iter=max_iter, random_state=seed).fit(descriptors)
    return model.cluster_centers_, model.labels_


def cornia_codewords(centres: np.ndarray) -> np.ndarray:
    """CORNIA's dictionary: the K-means centres scaled to unit length."""
    return centres / np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)


def cornia_encode(descriptors: np.ndarray, codewords: np.ndarray) -> np.ndarray:
    """Soft-assignment coding and max pooling: ``[max_i max(D x_i, 0), max_i max(-D x_i, 0)]``."""
    responses = descriptors @ codewords.T
    return np.concatenate([np.maximum(responses.max(axis=0), 0.0), np.maximum((-responses).max(axis=0), 0.0)])


@dataclass(frozen=True)
class HosaCodebook:
    centres: np.ndarray  # (K, d)
    variances: np.ndarray  # (K, d)
    skewness: np.ndarray  # (K, d)
    beta: float


def weighted_moments(x: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-codeword, per-dimension weighted mean, variance and skewness of the rows of ``x``
    (n, d) under the columns of ``weights`` (n, K): three (K, d) arrays. A codeword of zero total
    weight gets zeros; a zero variance gives zero skewness."""
    totals = weights.sum(axis=0)[:, None]
    safe = np.where(totals > 0, totals, 1.0)
    first = weights.T @ x / safe
    second = weights.T @ (x * x) / safe
    third = weights.T @ (x * x * x) / safe
    variance = np.maximum(second - first**2, 0.0)
    central_third = third - 3 * first * second + 2 * first**3
    with np.errstate(divide="ignore", invalid="ignore"):
        skew = np.where(variance > 1e-12, central_third / variance**1.5, 0.0)
    empty = np.broadcast_to(totals <= 0, first.shape)
    return np.where(empty, 0.0, first), np.where(empty, 0.0, variance), np.where(empty, 0.0, skew)


def fit_hosa_codebook(descriptors: np.ndarray, k: int, seed: int) -> HosaCodebook:
    centres, labels = kmeans(descriptors, k, seed)
    _, variances, skewness = weighted_moments(descriptors, np.eye(k)[labels])
    squared = ((descriptors - centres[labels]) ** 2).sum(axis=1)
    return HosaCodebook(centres, variances, skewness, float(1.0 / max(squared.mean(), 1e-12)))


def hosa_encode(descriptors: np.ndarray, codebook: HosaCodebook, nearest: int = 5) -> np.ndarray:
    """First-, second- and third-order residuals per codeword, signed sqrt + L2: (3 K d,)."""
    centres = codebook.centres
    k, d = centres.shape
    distances = (descriptors**2).sum(1)[:, None] - 2 * descriptors @ centres.T + (centres**2).sum(1)[None, :]
    distances = np.maximum(distances, 0.0)
    r = min(nearest, k)
    order = np.argpartition(distances, r - 1, axis=1)[:, :r]
    near = np.take_along_axis(distances, order, axis=1)
    weights = np.exp(-codebook.beta * (near - near.min(axis=1, keepdims=True)))
    weights /= weights.sum(axis=1, keepdims=True)
    assignment = np.zeros((len(descriptors), k))
    np.put_along_axis(assignment, order, weights, axis=1)
    mean, variance, skew = weighted_moments(descriptors, assignment)
    near_any = (assignment.sum(axis=0) > 0)[:, None]  # a codeword no patch is near: zero residuals
    residuals = [np.where(near_any, mean - centres, 0.0), np.where(near_any, variance - codebook.variances, 0.0),
                 np.where(near_any, skew - codebook.skewness, 0.0)]
    vector = np.concatenate(residuals, axis=1).ravel()  # per codeword: mean, variance, skewness residuals
    vector = np.sign(vector) * np.sqrt(np.abs(vector))
    norm = np.linalg.norm(vector)
    return vector / norm if norm > 0 else vector
