"""Natural-scene-statistics building blocks shared by BRISQUE, NIQE and IL-NIQE.

One place for: MATLAB's ``rgb2gray``; MSCN coefficients ``(I - mu) / (sigma + C)`` with
a 7x7 Gaussian window (sigma 7/6); generalized Gaussian (GGD) and asymmetric GGD (AGGD)
moment-matching fits (``estimateggdparam.m`` / ``estimateaggdparam.m`` of the authors' code,
shape grid 0.2:0.001:10); products of neighbouring coefficients (``circshift``); and MATLAB's
``imresize`` (bicubic, anti-aliased, symmetric padding).

Speed (issue #19, the hot path of BRISQUE, NIQE and IL-NIQE): whole-image passes over 6 MB
float64 arrays were memory-bound (and each fresh temporary cost page faults), so the MSCN and the
whole-image fits run strip by strip over rows (``STRIP_ELEMENTS`` per strip) in a few reused
buffers: each strip is padded by the border rule into a buffer (:func:`_padded_rows`, no padded
copy of the image), filtered down the columns by a cached sparse band matrix and along the rows by
``ndimage.correlate1d``, both moments in the same strip. The fits reduce the data to sums
(:func:`ggd_moments`, :func:`aggd_moments`) that add up over strips, and find the grid shape by
bisection on the monotonic moment-ratio curve (the same grid point as the reference's exhaustive
``argmin``); :func:`image_fits` makes the four neighbour products of a strip in one buffer and,
when no coefficient is zero, counts negative products from sign bools. Fits are vectorised over
blocks too (NIQE's 96x96 patches). The resize stays two sparse products per image (faster than
a strided correlation at scale 1/2, measured). Everything is float64 (float32 would move the
grid-searched shapes by a grid step now and then); the results agree with the whole-array
computation to ~1e-12 relative (summation order), checked against a plain reference in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage, sparse
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
#: Elements per row strip of the strip-wise passes (MSCN, the whole-image fits): a strip's few
#: buffers stay in a core's cache, where passes over whole 6 MB arrays were memory-bound.
STRIP_ELEMENTS = 1 << 15


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
    if image.dtype == np.uint8:
        # (R w_r + G w_g) + B w_b term by term, rounded: the same products and sums as a table
        # look-up per channel (bit for bit), without the gathers or a float matrix product;
        # strip by strip, so the one temporary stays small
        height, width = image.shape[:2]
        grey = np.empty((height, width))
        rows_per_strip = _strip_rows(width)
        term = np.empty((rows_per_strip, width))
        for start in range(0, height, rows_per_strip):
            stop = min(height, start + rows_per_strip)
            rows, part = image[start:stop], grey[start:stop]
            np.multiply(rows[..., 0], RGB2GRAY[0], out=part)
            part += np.multiply(rows[..., 1], RGB2GRAY[1], out=term[: stop - start])
            part += np.multiply(rows[..., 2], RGB2GRAY[2], out=term[: stop - start])
            np.round(part, out=part)  # in [0, 255] without a clip: the weights are >= 0 and sum to < 1
        return grey
    return image[..., :3].astype(np.float64) @ RGB2GRAY


# ------------------------------------------------------------------------ linear filters


def _fold(index: np.ndarray, n: int, border: str) -> np.ndarray:
    """Source index of each tap under the border rule; -1 where the tap reads a zero."""
    if border == "replicate":
        return np.clip(index, 0, n - 1)
    if border == "wrap":  # periodic, MATLAB's circshift
        return np.mod(index, n)
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


def _padded_rows(image: np.ndarray, start: int, stop: int, half: int, border: str, out: np.ndarray) -> np.ndarray:
    """Rows ``start - half .. stop + half`` of a 2-d image with ``half`` columns more on each
    side, the outside filled by the border rule of :func:`_fold` (or ``"wrap"``), written into
    ``out`` (a buffer of at least that size, reused strip after strip: no padded copy of the whole
    image); returns the filled view."""
    height, width = image.shape
    n = stop - start + 2 * half
    view = out[:n, : width + 2 * half]
    inner = view[:, half: half + width]
    lo, hi = max(0, start - half), min(height, stop + half)  # the rows inside the image
    inner[lo - start + half: hi - start + half] = image[lo:hi]
    outside = [*range(lo - start + half), *range(hi - start + half, n)]
    if outside:
        for row, source in zip(outside, _fold(np.array(outside) + start - half, height, border)):
            inner[row] = image[source] if source >= 0 else 0.0
    if half and border == "zero":
        view[:, :half] = view[:, half + width:] = 0.0
    elif half:
        left, right = _border_columns(width, half, border)
        view[:, :half], view[:, half + width:] = inner[:, left], inner[:, right]
    return view


@lru_cache(maxsize=64)
def _border_columns(width: int, half: int, border: str) -> tuple[np.ndarray, np.ndarray]:
    """The source columns of the ``half`` padding columns left and right of a row."""
    return _fold(np.arange(-half, 0), width, border), _fold(np.arange(width, width + half), width, border)


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


def _moment_kernel(window: np.ndarray | None) -> np.ndarray:
    window = gaussian_window() if window is None else window
    g = window[window.shape[0] // 2]
    return g / g.sum()  # separable: the outer product of this 1-d kernel is the window


def _strip_rows(width: int) -> int:
    return max(1, STRIP_ELEMENTS // width)


@lru_cache(maxsize=16)
def _band_matrix(n: int, taps: tuple[float, ...]) -> sparse.csr_matrix:
    """(n, n + len(taps) - 1) matrix of the valid correlation with ``taps`` along the first axis."""
    return sparse.diags([np.full(n, tap) for tap in taps], offsets=list(range(len(taps))),
                        shape=(n, n + len(taps) - 1), format="csr")


def _moment_strips(grey: np.ndarray, kernel: np.ndarray, border: str):
    """Yield ``(start, stop, mu, sigma)``, the local mean and standard deviation of rows
    ``start:stop``, strip after strip: the padded strip and its square, each one sparse band
    product down the columns (a C loop over whole rows) and one ``correlate1d`` along the rows
    (contiguous), all in buffers that stay in cache. The arrays are buffers reused for the next
    strip; the consumer may overwrite them."""
    if border not in BORDERS:
        raise ValueError(f"border must be one of {list(BORDERS)}, got {border!r}")
    half = len(kernel) // 2
    height, width = grey.shape
    padded_width = width + 2 * half
    rows_per_strip = _strip_rows(padded_width)
    source, square = np.empty((2, rows_per_strip + 2 * half, padded_width))
    along_rows = np.empty((2, rows_per_strip, padded_width))
    scratch = np.empty((rows_per_strip, width))
    taps = tuple(kernel)
    for start in range(0, height, rows_per_strip):
        stop = min(height, start + rows_per_strip)
        n = stop - start
        strip = _padded_rows(grey, start, stop, half, border, source)
        band = _band_matrix(n, taps)
        mu_rows, second_rows = along_rows[0, :n], along_rows[1, :n]
        ndimage.correlate1d(band @ strip, kernel, axis=1, output=mu_rows, mode="constant")
        ndimage.correlate1d(band @ np.multiply(strip, strip, out=square[: n + 2 * half]), kernel, axis=1,
                            output=second_rows, mode="constant")
        mu, second = mu_rows[:, half: half + width], second_rows[:, half: half + width]
        second -= np.multiply(mu, mu, out=scratch[:n])
        yield start, stop, mu, np.sqrt(np.abs(second, out=second), out=second)


def local_moments(grey: np.ndarray, window: np.ndarray | None = None, border: str = "zero") -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-weighted local mean and standard deviation of a grey image."""
    grey = np.asarray(grey, dtype=np.float64)
    mu, sigma = np.empty_like(grey), np.empty_like(grey)
    for start, stop, mu_rows, sigma_rows in _moment_strips(grey, _moment_kernel(window), border):
        mu[start:stop], sigma[start:stop] = mu_rows, sigma_rows
    return mu, sigma


def mscn(grey: np.ndarray, window: np.ndarray | None = None, c: float = 1.0, border: str = "zero",
         return_sigma: bool = False):
    """Mean-subtracted contrast-normalised coefficients of a grey image in [0, 255].

    ``border="zero"`` pads with zeros like BRISQUE's ``filter2(..., 'same')``; ``"mirror"``
    reflects the image, ``"replicate"`` repeats its edge (NIQE's ``imfilter``). With
    ``return_sigma`` also the local standard deviation (NIQE's patch sharpness).
    """
    grey = np.asarray(grey, dtype=np.float64)
    coefficients = np.empty_like(grey)
    local_sigma = np.empty_like(grey) if return_sigma else None
    for start, stop, mu, sigma in _moment_strips(grey, _moment_kernel(window), border):
        part = coefficients[start:stop]
        np.subtract(grey[start:stop], mu, out=part)
        if local_sigma is not None:
            local_sigma[start:stop] = sigma
        part /= np.add(sigma, c, out=sigma)
        # Flat areas leave float residues (~1e-12) whose sign depends on summation order; the
        # AGGD fits split the data by sign, so they are exact zeros, as in the reference code.
        residue = np.abs(part, out=mu) < ZERO_RESIDUE
        if residue.any():
            part[residue] = 0.0
    return (coefficients, local_sigma) if return_sigma else coefficients


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


def _row_dots(rows: np.ndarray) -> np.ndarray:
    """Sum of squares of each row (a stack of BLAS dots; einsum is ~3x slower)."""
    return np.matmul(rows[:, None, :], rows[:, :, None])[:, 0, 0]


def _row_counts(mask: np.ndarray) -> np.ndarray:
    """True entries of each row of a bool array (counting a float array's non-zeros is ~4x
    slower than comparing and counting the bools)."""
    return np.array([np.count_nonzero(row) for row in mask]) if len(mask) <= 8 else np.count_nonzero(mask, axis=1)


# The fits need only sums over each block, so a block's data may arrive in pieces (the strips of a
# whole image) whose moments add up: GGD (count, sum x^2, sum |x|); AGGD (count, sum x^2,
# sum min(x, 0)^2, count x < 0, count x != 0, sum x, sum min(x, 0)).
GGD_MOMENTS, AGGD_MOMENTS = 3, 7


def ggd_moments(flat: np.ndarray, scratch: np.ndarray | None = None) -> np.ndarray:
    """(GGD_MOMENTS, n_blocks) sums of each row of ``flat`` (``scratch``: a buffer of its shape)."""
    magnitude = np.abs(flat, out=scratch)
    return np.stack([np.full(len(flat), flat.shape[1], dtype=np.float64), _row_dots(flat), magnitude.sum(axis=1)])


def aggd_moments(flat: np.ndarray, scratch: np.ndarray | None = None, counts: tuple | None = None) -> np.ndarray:
    """(AGGD_MOMENTS, n_blocks) sums of each row of ``flat`` (``scratch``: a buffer of its shape;
    ``counts``: the rows' (count x < 0, count x != 0) where the caller knows them)."""
    left = np.minimum(flat, 0.0, out=scratch)
    n_left, n_nonzero = (_row_counts(flat < 0), _row_counts(flat != 0)) if counts is None else counts
    return np.stack([np.full(len(flat), flat.shape[1], dtype=np.float64), _row_dots(flat), _row_dots(left),
                     n_left, n_nonzero, flat.sum(axis=1), left.sum(axis=1)])


def ggd_from_moments(moments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(shape, variance) from :func:`ggd_moments` (``estimateggdparam.m``); NaN shape where the
    data has no spread."""
    n, total_sq, abs_sum = moments
    variance = total_sq / n
    mean_abs = abs_sum / n
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = variance / mean_abs**2
    shape = SHAPE_GRID[_nearest_on_grid(GGD_RATIO, rho, increasing=False)]
    return np.where(mean_abs > 0, shape, np.nan), variance


def aggd_from_moments(moments: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(shape, mean, left variance, right variance) from :func:`aggd_moments`
    (``estimateaggdparam.m``). NaN where degenerate: a side with no samples or no spread (the
    ratio of the two sides' spreads, on which the estimate rests, is then undefined)."""
    n, total_sq, left_sq, n_left, n_nonzero, total_sum, left_sum = moments
    n_right = n_nonzero - n_left
    right_sq = total_sq - left_sq
    abs_mean = (total_sum - 2 * left_sum) / n
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
    nan = np.full(len(n), np.nan)
    return (np.where(ok, shape, nan), np.where(ok, mean, nan),
            np.where(n_left > 0, left_var, nan), np.where(n_right > 0, right_var, nan))


def ggd_fits(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zero-mean GGD fit of each block (first axis: blocks; a whole image is ``x[None]``)
    (``estimateggdparam.m``): (shape, variance) arrays; NaN shape where the block has no spread."""
    return ggd_from_moments(ggd_moments(_flat(blocks)))


def aggd_fits(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric GGD fit of each block (``estimateaggdparam.m``): (shape, mean, left variance,
    right variance) arrays, NaN where degenerate (:func:`aggd_from_moments`)."""
    return aggd_from_moments(aggd_moments(_flat(blocks)))


def image_fits(coefficients: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], list[tuple[np.ndarray, ...]]]:
    """The GGD fit of a whole 2-d MSCN image and the AGGD fits of its four paired products
    (H, V, D1, D2, wrapping like :func:`paired_products`), as length-1 arrays: the same as
    ``ggd_fits(c[None])`` and ``aggd_fits(p[None])`` for each ``p`` of ``paired_products(c)``,
    computed strip by strip (the four product strips made in one reused buffer, their moments
    summed)."""
    coefficients = np.asarray(coefficients, dtype=np.float64)
    height, width = coefficients.shape
    rows_per_strip = _strip_rows(width)
    wrapped = np.empty((rows_per_strip + 2, width + 2))
    products = np.empty((len(PAIR_SHIFTS), rows_per_strip * width))
    scratch = np.empty_like(products)
    negative, differ = np.empty(wrapped.shape, dtype=bool), np.empty((rows_per_strip, width), dtype=bool)
    # Without zero coefficients no product is zero and a product is negative where the two
    # signs differ: counted on bools, 8x less memory than comparing the float products.
    signs_decide = np.count_nonzero(coefficients) == coefficients.size
    ggd = np.zeros((GGD_MOMENTS, 1))
    aggd = np.zeros((AGGD_MOMENTS, len(PAIR_SHIFTS)))
    for start in range(0, height, rows_per_strip):
        stop = min(height, start + rows_per_strip)
        n, size = stop - start, (stop - start) * width
        strip = coefficients[start:stop]
        ggd += ggd_moments(strip.reshape(1, size), scratch[:1, :size])
        # np.roll(c, (dr, dc))[i, j] = c[i - dr, j - dc]: a view into the strip wrapped by one
        neighbourhood = _padded_rows(coefficients, start, stop, 1, "wrap", wrapped)
        if signs_decide:
            signs = np.less(neighbourhood, 0.0, out=negative[: n + 2])
            n_left = np.empty(len(PAIR_SHIFTS))
        for k, (dr, dc) in enumerate(PAIR_SHIFTS):
            neighbours = neighbourhood[1 - dr: 1 - dr + n, 1 - dc: 1 - dc + width]
            np.multiply(strip, neighbours, out=products[k, :size].reshape(n, width))
            if signs_decide:
                opposite = np.not_equal(signs[1: n + 1, 1: width + 1], signs[1 - dr: 1 - dr + n, 1 - dc: 1 - dc + width],
                                        out=differ[:n])
                n_left[k] = np.count_nonzero(opposite)
        counts = (n_left, np.full(len(PAIR_SHIFTS), size)) if signs_decide else None
        aggd += aggd_moments(products[:, :size], scratch[:, :size], counts)
    shape, mean, left_variance, right_variance = aggd_from_moments(aggd)
    fits = [(shape[k: k + 1], mean[k: k + 1], left_variance[k: k + 1], right_variance[k: k + 1]) for k in range(len(PAIR_SHIFTS))]
    return ggd_from_moments(ggd), fits


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
    # np.roll(c, (dr, dc))[i, j] = c[i - dr, j - dc]: a view into c wrapped by one on each side
    # (one copy instead of a rolled copy per neighbour)
    height, width = coefficients.shape[-2:]
    wrapped = np.pad(coefficients, [(0, 0)] * (coefficients.ndim - 2) + [(1, 1), (1, 1)], mode="wrap")
    return [coefficients * wrapped[..., 1 - dr: 1 - dr + height, 1 - dc: 1 - dc + width] for dr, dc in PAIR_SHIFTS]
