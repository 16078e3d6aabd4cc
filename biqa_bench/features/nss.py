"""Natural-scene-statistics building blocks shared by BRISQUE, NIQE and IL-NIQE.

One place for: MATLAB's ``rgb2gray``; MSCN coefficients ``(I - mu) / (sigma + C)`` with
a 7x7 Gaussian window (sigma 7/6); generalized Gaussian (GGD) and asymmetric GGD (AGGD)
moment-matching fits (``estimateggdparam.m`` / ``estimateaggdparam.m`` of the authors' code,
shape grid 0.2:0.001:10); products of neighbouring coefficients (``circshift``); and MATLAB's
``imresize`` (bicubic, anti-aliased, symmetric padding).

Speed (issue #19): every linear filter is a product with a cached sparse banded matrix per axis
(the window is separable, the border rule folds into the matrix), so the two local moments of
MSCN and the bicubic resize are each two sparse products; the fits reduce the data to a few
moments in one pass each and find the grid shape by bisection on the monotonic moment-ratio
curve (the same grid point as the reference's exhaustive ``argmin``). Fits are vectorised over
blocks (NIQE's 96x96 patches); a whole image is one block.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import sparse
from scipy.special import gammaln

SHAPE_GRID = np.round(np.arange(0.2, 10.0 + 5e-4, 0.001), 3)
# GGD: rho(shape) = Gamma(1/a) Gamma(3/a) / Gamma(2/a)^2  (= E[x^2] / E[|x|]^2), decreasing in a
GGD_RATIO = np.exp(gammaln(1 / SHAPE_GRID) + gammaln(3 / SHAPE_GRID) - 2 * gammaln(2 / SHAPE_GRID))
# AGGD: r(shape) = Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a))  (= E[|x|]^2 / E[x^2] when symmetric), increasing
AGGD_RATIO = 1.0 / GGD_RATIO
# Neighbour offsets (rows, cols) of the reference code's circshift: H, V, D1, D2.
PAIR_SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))
# MATLAB's rgb2gray weights (the luminance row of the inverse of the YIQ matrix).
RGB2GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])
#: Border rules of the local moments: zero padding (``filter2(..., 'same')``, BRISQUE's code),
#: symmetric reflection, or edge replication (``imfilter(..., 'replicate')``, NIQE's code).
BORDERS = ("zero", "mirror", "replicate")
ZERO_RESIDUE = 1e-9  # |MSCN| below this is a rounding residue of a flat area (true values >= ~1e-7)
_GREY_LUT = np.arange(256, dtype=np.float64)[:, None] * RGB2GRAY[None, :]


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

    @property
    def left_scale(self) -> float:
        """beta_l = sigma_l sqrt(Gamma(1/a) / Gamma(3/a)) (NIQE's feature)."""
        return float(np.sqrt(self.left_variance) * _std_to_scale(self.shape))

    @property
    def right_scale(self) -> float:
        return float(np.sqrt(self.right_variance) * _std_to_scale(self.shape))


def _std_to_scale(shape):
    return np.exp(0.5 * (gammaln(1 / shape) - gammaln(3 / shape)))


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
    if image.dtype == np.uint8:  # three table look-ups instead of a float matrix product
        grey = _GREY_LUT[image[..., 0], 0] + _GREY_LUT[image[..., 1], 1]
        grey += _GREY_LUT[image[..., 2], 2]
        return np.clip(np.round(grey, out=grey), 0, 255, out=grey)
    return image[..., :3].astype(np.float64) @ RGB2GRAY


# ------------------------------------------------------------------------ linear filters


def _fold(index: np.ndarray, n: int, border: str) -> np.ndarray:
    """Source index of each tap under the border rule; -1 where the tap reads a zero."""
    if border == "replicate":
        return np.clip(index, 0, n - 1)
    if border == "mirror":  # symmetric: ... b a | a b ... (scipy 'reflect', MATLAB 'symmetric')
        period = np.mod(index, 2 * n)
        return np.where(period < n, period, 2 * n - 1 - period)
    return np.where((index >= 0) & (index < n), index, -1)


def _matrix(rows: np.ndarray, cols: np.ndarray, weights: np.ndarray, shape: tuple[int, int]) -> sparse.csr_matrix:
    keep = cols >= 0
    matrix = sparse.coo_matrix((weights[keep], (rows[keep], cols[keep])), shape=shape).tocsr()
    matrix.sum_duplicates()
    return matrix


@lru_cache(maxsize=64)
def filter_matrix(n: int, kernel: tuple[float, ...], border: str) -> sparse.csr_matrix:
    """The (n, n) sparse matrix of correlating a length-n signal with ``kernel`` (odd length)."""
    if border not in BORDERS:
        raise ValueError(f"border must be one of {list(BORDERS)}, got {border!r}")
    taps = np.asarray(kernel, dtype=np.float64)
    half = len(taps) // 2
    rows = np.repeat(np.arange(n), len(taps))
    cols = _fold(rows + np.tile(np.arange(-half, half + 1), n), n, border)
    return _matrix(rows, cols, np.tile(taps, n), (n, n))


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    return (1.5 * ax**3 - 2.5 * ax**2 + 1) * (ax <= 1) + (-0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))


@lru_cache(maxsize=64)
def resize_matrix(n_in: int, n_out: int, scale: float) -> sparse.csr_matrix:
    """MATLAB ``imresize`` along one axis: bicubic (a = -0.5), kernel widened by 1/scale when
    shrinking (anti-aliasing), output sample x at input position x/scale + (1 - 1/scale)/2,
    rows normalised to sum 1, symmetric padding at the border."""
    width = 4.0 / scale if scale < 1 else 4.0
    x = np.arange(1, n_out + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    taps = int(np.ceil(width)) + 2
    index = np.floor(u - width / 2)[:, None] + np.arange(taps)[None, :]
    distance = u[:, None] - index
    weight = scale * _cubic(scale * distance) if scale < 1 else _cubic(distance)
    weight /= weight.sum(axis=1, keepdims=True)
    rows = np.repeat(np.arange(n_out), taps)
    cols = _fold(index.astype(np.int64).ravel() - 1, n_in, "mirror")
    return _matrix(rows, cols, weight.ravel(), (n_out, n_in))


def separable(image: np.ndarray, row_matrix: sparse.csr_matrix, col_matrix: sparse.csr_matrix) -> np.ndarray:
    """``row_matrix @ image @ col_matrix.T`` for a 2-d float64 image (a transposed view: sparse
    products run along the first axis, so the column pass works on a contiguous transpose)."""
    return (col_matrix @ np.ascontiguousarray(row_matrix @ image).T.copy()).T


def imresize(image: np.ndarray, scale: float | None = None, size: tuple[int, int] | None = None) -> np.ndarray:
    """MATLAB's ``imresize(I, scale)`` or ``imresize(I, [rows cols])`` (bicubic, anti-aliased)
    of a 2-d image, in float64."""
    image = np.asarray(image, dtype=np.float64)
    height, width = image.shape
    if size is None:
        if scale is None:
            raise ValueError("give scale or size")
        size = (int(np.ceil(height * scale)), int(np.ceil(width * scale)))
        scales = (scale, scale)
    else:
        scales = (size[0] / height, size[1] / width)
    return separable(image, resize_matrix(height, size[0], scales[0]), resize_matrix(width, size[1], scales[1]))


def downsample_half(grey: np.ndarray) -> np.ndarray:
    """Halve an image as MATLAB's ``imresize(I, 0.5)``: ceil(size / 2) output."""
    return imresize(grey, scale=0.5)


def local_moments(grey: np.ndarray, window: np.ndarray | None = None, border: str = "zero") -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-weighted local mean and standard deviation of a grey image."""
    grey = np.asarray(grey, dtype=np.float64)
    window = gaussian_window() if window is None else window
    g = window[window.shape[0] // 2]
    kernel = tuple(g / g.sum())  # separable: the outer product of this 1-d kernel is the window
    rows, cols = filter_matrix(grey.shape[0], kernel, border), filter_matrix(grey.shape[1], kernel, border)
    mu = separable(grey, rows, cols)
    second = separable(grey * grey, rows, cols)
    second -= mu * mu
    sigma = np.sqrt(np.abs(second, out=second), out=second)
    return mu, sigma


def mscn(grey: np.ndarray, window: np.ndarray | None = None, c: float = 1.0, border: str = "zero",
         return_sigma: bool = False):
    """Mean-subtracted contrast-normalised coefficients of a grey image in [0, 255].

    ``border="zero"`` pads with zeros like BRISQUE's ``filter2(..., 'same')``; ``"mirror"``
    reflects the image, ``"replicate"`` repeats its edge (NIQE's ``imfilter``). With
    ``return_sigma`` also the local standard deviation (NIQE's patch sharpness).
    """
    grey = np.asarray(grey, dtype=np.float64)
    mu, sigma = local_moments(grey, window, border)
    coefficients = grey - mu
    coefficients /= sigma + c
    # Flat areas leave float residues (~1e-12) whose sign depends on summation order; the AGGD
    # fits split the data by sign, so they are exact zeros, as in the reference implementation.
    coefficients[np.abs(coefficients) < ZERO_RESIDUE] = 0.0
    return (coefficients, sigma) if return_sigma else coefficients


# ------------------------------------------------------------------------ the fits


def _nearest_on_grid(ratio_curve: np.ndarray, values: np.ndarray, increasing: bool) -> np.ndarray:
    """Grid index minimising |curve - value| (first index on a tie, as MATLAB's min), by
    bisection on the monotonic curve; NaN values give index 0 (callers mask them)."""
    curve = ratio_curve if increasing else ratio_curve[::-1]
    values = np.where(np.isfinite(values), values, curve[0])
    upper = np.clip(np.searchsorted(curve, values), 1, len(curve) - 1)
    lower = upper - 1
    d_upper, d_lower = np.abs(curve[upper] - values), np.abs(curve[lower] - values)
    # reversed, the lower original index (MATLAB's pick on a tie) is the upper one
    index = np.where(d_upper < d_lower if increasing else d_upper <= d_lower, upper, lower)
    return index if increasing else len(curve) - 1 - index


def image_blocks(image: np.ndarray, block_rows: int, block_cols: int) -> np.ndarray:
    """The non-overlapping blocks of a 2-d image in row-major order, (n, block_rows, block_cols);
    a remainder at the bottom/right is dropped (NIQE crops it)."""
    rows, cols = image.shape[0] // block_rows, image.shape[1] // block_cols
    cropped = np.asarray(image)[: rows * block_rows, : cols * block_cols]
    return np.ascontiguousarray(
        cropped.reshape(rows, block_rows, cols, block_cols).transpose(0, 2, 1, 3).reshape(rows * cols, block_rows, block_cols)
    )


def _flat(blocks: np.ndarray) -> np.ndarray:
    blocks = np.asarray(blocks, dtype=np.float64)
    return blocks.reshape(len(blocks), -1)


def ggd_fits(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zero-mean GGD fit of each block (first axis: blocks; a whole image is ``x[None]``) (``estimateggdparam.m``): (shape, variance) arrays; NaN
    shape where the block has no spread."""
    flat = _flat(blocks)
    variance = np.einsum("ij,ij->i", flat, flat) / flat.shape[1]
    mean_abs = np.abs(flat).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = variance / mean_abs**2
    shape = SHAPE_GRID[_nearest_on_grid(GGD_RATIO, rho, increasing=False)]
    return np.where(mean_abs > 0, shape, np.nan), variance


def aggd_fits(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric GGD fit of each block (``estimateaggdparam.m``): (shape, mean, left variance,
    right variance) arrays. NaN where degenerate: a side with no samples or no spread (the
    ratio of the two sides' spreads, on which the estimate rests, is then undefined)."""
    flat = _flat(blocks)
    n = flat.shape[1]
    total_sq = np.einsum("ij,ij->i", flat, flat)
    left = np.minimum(flat, 0.0)
    left_sq = np.einsum("ij,ij->i", left, left)
    n_left = np.count_nonzero(left, axis=1)
    n_right = np.count_nonzero(flat, axis=1) - n_left
    right_sq = total_sq - left_sq
    abs_mean = (flat.sum(axis=1) - 2 * left.sum(axis=1)) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        left_var, right_var = left_sq / n_left, right_sq / n_right
        left_std, right_std = np.sqrt(left_var), np.sqrt(right_var)
        gamma_hat = left_std / right_std
        r_hat = abs_mean**2 / (total_sq / n)
        r_hat_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    ok = (n_left > 0) & (n_right > 0) & (left_sq > 0) & (right_sq > 0)
    shape = SHAPE_GRID[_nearest_on_grid(AGGD_RATIO, r_hat_norm, increasing=True)]
    # eta = (beta_r - beta_l) Gamma(2/a)/Gamma(1/a), beta = std * sqrt(Gamma(1/a)/Gamma(3/a))
    mean = (right_std - left_std) * np.exp(gammaln(2 / shape) - gammaln(1 / shape)) * _std_to_scale(shape)
    nan = np.full(len(flat), np.nan)
    return (np.where(ok, shape, nan), np.where(ok, mean, nan),
            np.where(n_left > 0, left_var, nan), np.where(n_right > 0, right_var, nan))


def fit_ggd(values: np.ndarray) -> GGDFit:
    """Zero-mean GGD fit of all ``values`` by moment matching; NaN shape if degenerate."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if not x.size:
        return GGDFit(float("nan"), float("nan"))
    shape, variance = ggd_fits(x[None])
    return GGDFit(float(shape[0]), float(variance[0]))


def fit_aggd(values: np.ndarray) -> AGGDFit:
    """Asymmetric GGD fit of all ``values`` by moment matching; NaN if degenerate."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if not x.size:
        return AGGDFit(*(float("nan"),) * 4)
    return AGGDFit(*(float(v[0]) for v in aggd_fits(x[None])))


def paired_products(coefficients: np.ndarray) -> list[np.ndarray]:
    """Products with the H, V, D1, D2 neighbours (wrap-around like MATLAB's circshift); on a
    (n, h, w) stack of blocks each block wraps on itself (NIQE's per-block ``circshift``)."""
    axes = (0, 1) if coefficients.ndim == 2 else (1, 2)
    return [coefficients * np.roll(coefficients, shift, axis=axes) for shift in PAIR_SHIFTS]
