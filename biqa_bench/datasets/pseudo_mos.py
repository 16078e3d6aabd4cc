"""Pseudo-MOS: the mean of six full-reference IQA metrics, each mapped to 0-100 (higher is better).

QAMT (section 2.2) labels its generated images with the average of SSIM, MS-SSIM, MDSI, VSI, FSIM
and GMSD. Their raw outputs live on different scales and directions (GMSD and MDSI are distances,
0 for identical images; the others are similarities, 1 for identical images), so each is first
mapped to a 0-100 quality with a **fixed** clipped linear map

    q = 100 * clip((value - worst) / (best - worst), 0, 1)

where ``best`` is the metric's value on identical images (so a pristine image scores exactly 100)
and ``worst`` is a fixed floor: roughly the metric's value on the most severe distortions of this
generator: the 0.5th percentile of each similarity (99.5th of each distance) over the 871 images
of the embedded ``synthetic`` and ``mixed`` sets at seed 0, rounded outwards, then frozen (see
:data:`METRIC_MAPS`). MDSI is coarse near identity (piq's MDSI pools deviations with a fourth
root, so even the mildest distortion scores about 0.19 against 0 for identical images); its map
keeps identity at 100 and mild distortions near 70. The map is monotonic, so every metric's ranking of
images is kept, and each metric spans most of 0-100, so none dominates the average merely by
having a wider raw range (VSI, for example, rarely falls below 0.85).

Why fixed maps, not per-set min-max: a min-max map depends on which images are in the set, so the
same image would get a different pseudo-MOS in a user's generated set and in the embedded set,
and adding images would change every label. Fixed maps give one scale shared by every set this
tool generates, so pre-training on one set and evaluating on another compares like with like.

All metrics come from ``piq`` and run batched in torch on float images in [0, 1]. SSIM and
MS-SSIM are computed on the luma channel (ITU-R BT.601 Y), the convention of their authors'
reference code; MDSI, VSI and FSIM (FSIMc) use colour as piq implements them; piq's GMSD works on
luma internally. MS-SSIM with piq's default 11x11 window needs both sides > (11 - 1) * 2**4 = 160
pixels, so images must be at least 161x161 (the embedded sets use 256x256).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import BiqaError

METRICS = ("ssim", "ms_ssim", "mdsi", "vsi", "fsim", "gmsd")
MIN_SIDE = 161  # MS-SSIM: 5 scales of an 11x11 window need sides > 160


@dataclass(frozen=True)
class MetricMap:
    """Fixed clipped linear map of a raw metric value to 0-100 quality."""

    metric: str
    best: float  # value for identical images
    worst: float  # value mapped to 0

    def quality(self, value) -> np.ndarray:
        value = np.asarray(value, dtype=float)
        return 100.0 * np.clip((value - self.worst) / (self.best - self.worst), 0.0, 1.0)


#: The fixed maps. ``worst`` values: see the module docstring (calibrated once, then frozen; they
#: are part of the generator's version, so changing them must bump GENERATOR_VERSION in
#: :mod:`biqa_bench.datasets.synthetic`).
METRIC_MAPS: dict[str, MetricMap] = {
    "ssim": MetricMap("ssim", best=1.0, worst=0.2),
    "ms_ssim": MetricMap("ms_ssim", best=1.0, worst=0.4),
    "mdsi": MetricMap("mdsi", best=0.0, worst=0.65),
    "vsi": MetricMap("vsi", best=1.0, worst=0.75),
    "fsim": MetricMap("fsim", best=1.0, worst=0.45),
    "gmsd": MetricMap("gmsd", best=0.0, worst=0.32),
}


class PseudoMOSError(BiqaError):
    """Images that the full-reference metrics cannot compare."""


def _as_batch(images) -> np.ndarray:
    array = np.asarray(images)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] != 3:
        raise PseudoMOSError(f"expected HxWx3 or NxHxWx3 RGB images, got shape {array.shape}")
    return array


def _luma(x):
    weights = x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)


@contextmanager
def torch_threads(n: int | None):
    """Run torch with ``n`` intra-op threads (None: leave as is), restoring the setting after."""
    import torch

    if n is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def fsim_shared_reference(x, reference):
    """piq's FSIMc of every image in ``x`` (Nx3xHxW, 0-1) against one ``reference`` (1x3xHxW).

    The same computation as ``piq.fsim(x, reference.expand_as(x))`` (tested to agree), but the
    reference's phase-congruency and gradient maps are computed once instead of N times: phase
    congruency is most of FSIM's cost, so this nearly halves it when many distortions of one
    image are scored. Uses piq's filter and phase-congruency helpers with piq's default parameters.
    """
    import torch
    from piq.fsim import _construct_filters, _phase_congruency
    from piq.functional import gradient_map, rgb2yiq, scharr_filter, similarity_map

    scales, orientations, k = 4, 4, 2.0
    x = x * 255.0
    y = reference * 255.0
    kernel_size = max(1, round(min(x.shape[-2:]) / 256))
    x = torch.nn.functional.avg_pool2d(x, kernel_size)
    y = torch.nn.functional.avg_pool2d(y, kernel_size)
    x_yiq, y_yiq = rgb2yiq(x), rgb2yiq(y)
    x_lum, y_lum = x_yiq[:, :1], y_yiq[:, :1]
    filters = _construct_filters(x_lum, scales, orientations, 6, 2, 0.55, 1.2)
    pc_x = _phase_congruency(x_lum, filters=filters, scales=scales, orientations=orientations, k=k)
    pc_y = _phase_congruency(y_lum, filters=filters, scales=scales, orientations=orientations, k=k)
    sch = scharr_filter(device=x_lum.device, dtype=x_lum.dtype)
    kernels = torch.stack([sch, sch.transpose(-1, -2)])
    grad_x, grad_y = gradient_map(x_lum, kernels), gradient_map(y_lum, kernels)
    t1, t2, t3, t4, lmbda = 0.85, 160, 200, 200, 0.03
    pc_sim = similarity_map(pc_x, pc_y, t1)
    gm_sim = similarity_map(grad_x, grad_y, t2)
    pc_max = torch.where(pc_x > pc_y, pc_x, pc_y)
    score = gm_sim * pc_sim * pc_max
    s_i = similarity_map(x_yiq[:, 1:2], y_yiq[:, 1:2], t3)
    s_q = similarity_map(x_yiq[:, 2:], y_yiq[:, 2:], t4)
    score = score * torch.abs(s_i * s_q) ** lmbda
    return score.sum(dim=[1, 2, 3]) / pc_max.sum(dim=[1, 2, 3])


def vsi_shared_reference(x, reference):
    """piq's VSI of every image in ``x`` (Nx3xHxW, 0-1) against one ``reference`` (1x3xHxW).

    The same computation as ``piq.vsi(x, reference.expand_as(x))`` with piq's default parameters
    (tested to agree), with the reference's saliency map (SDSP) computed once.
    """
    import torch
    from piq.functional import gradient_map, rgb2lmn, scharr_filter, similarity_map
    from piq.vsi import sdsp
    from torch.nn.functional import avg_pool2d, pad

    c1, c2, c3, alpha, beta = 1.27, 386.0, 130.0, 0.4, 0.02
    x = x * 255.0
    y = reference * 255.0
    vs_x = sdsp(x, data_range=255, omega_0=0.021, sigma_f=1.34, sigma_d=145.0, sigma_c=0.001)
    vs_y = sdsp(y, data_range=255, omega_0=0.021, sigma_f=1.34, sigma_d=145.0, sigma_c=0.001)
    x_lmn, y_lmn = rgb2lmn(x), rgb2lmn(y)
    kernel_size = max(1, round(min(vs_x.size()[-2:]) / 256))
    padding = kernel_size // 2
    if padding:
        pads = [padding, (kernel_size - 1) // 2, padding, (kernel_size - 1) // 2]
        vs_x, vs_y = pad(vs_x, pad=pads, mode="replicate"), pad(vs_y, pad=pads, mode="replicate")
        x_lmn, y_lmn = pad(x_lmn, pad=pads, mode="replicate"), pad(y_lmn, pad=pads, mode="replicate")
    vs_x, vs_y = avg_pool2d(vs_x, kernel_size=kernel_size), avg_pool2d(vs_y, kernel_size=kernel_size)
    x_lmn, y_lmn = avg_pool2d(x_lmn, kernel_size=kernel_size), avg_pool2d(y_lmn, kernel_size=kernel_size)
    sch = scharr_filter(device=x_lmn.device, dtype=x_lmn.dtype)
    kernels = torch.stack([sch, sch.transpose(1, 2)])
    gm_x, gm_y = gradient_map(x_lmn[:, :1], kernels), gradient_map(y_lmn[:, :1], kernels)
    s_vs = similarity_map(vs_x, vs_y, c1)
    s_gm = similarity_map(gm_x, gm_y, c2)
    s_c = similarity_map(x_lmn[:, 1:2], y_lmn[:, 1:2], c3) * similarity_map(x_lmn[:, 2:], y_lmn[:, 2:], c3)
    # s_c ** beta for a possibly negative s_c, real part (as piq does it)
    s_c_real_pow = s_c.abs() ** beta * torch.cos(torch.atan2(torch.zeros_like(s_c), s_c) * beta)
    vs_max = torch.max(vs_x, vs_y)
    eps = torch.finfo(vs_max.dtype).eps
    output = s_vs * s_gm.pow(alpha) * s_c_real_pow * vs_max
    return ((output.sum(dim=(-1, -2)) + eps) / (vs_max.sum(dim=(-1, -2)) + eps)).squeeze(-1)


def fr_metrics(distorted, reference, batch_size: int = 2, threads: int | None = 1) -> pd.DataFrame:
    """Raw values of the six metrics, one row per distorted image.

    ``distorted``: NxHxWx3 uint8 (or one HxWx3 image); ``reference``: one HxWx3 image shared by all
    rows, or NxHxWx3 matched row by row. ``threads``: torch intra-op threads while scoring; one by
    default, because piq's many small convolutions gain little from threads and become ~10x slower
    when the cores are busy (the generators parallelise over processes instead); None keeps the
    current setting.
    """
    import piq
    import torch

    dist = _as_batch(distorted)
    ref = _as_batch(reference)
    shared = ref.shape[0] == 1  # one reference for all rows: FSIM and VSI reuse its maps
    if (not shared and ref.shape != dist.shape) or ref.shape[1:] != dist.shape[1:]:
        raise PseudoMOSError(f"distorted images {dist.shape} and references {ref.shape} differ in shape")
    h, w = dist.shape[1:3]
    if min(h, w) < MIN_SIDE:
        raise PseudoMOSError(
            f"images of {h}x{w} pixels are too small for MS-SSIM; use images of at least {MIN_SIDE}x{MIN_SIDE}"
        )

    def to_tensor(array):
        return torch.from_numpy(np.array(array, dtype=np.float32)).permute(0, 3, 1, 2) / 255.0

    columns: dict[str, list[np.ndarray]] = {m: [] for m in METRICS}
    with torch.inference_mode(), torch_threads(threads):
        ref_one = to_tensor(ref[:1]) if shared else None
        for start in range(0, dist.shape[0], batch_size):
            x = to_tensor(dist[start : start + batch_size])
            y = ref_one.expand_as(x) if shared else to_tensor(ref[start : start + batch_size])
            x_luma, y_luma = _luma(x), _luma(y)
            values = {
                "ssim": piq.ssim(x_luma, y_luma, data_range=1.0, reduction="none"),
                "ms_ssim": piq.multi_scale_ssim(x_luma, y_luma, data_range=1.0, reduction="none"),
                "mdsi": piq.mdsi(x, y, data_range=1.0, reduction="none"),
                "vsi": vsi_shared_reference(x, ref_one) if shared else piq.vsi(x, y, data_range=1.0, reduction="none"),
                "fsim": fsim_shared_reference(x, ref_one) if shared else piq.fsim(x, y, data_range=1.0, reduction="none"),
                "gmsd": piq.gmsd(x, y, data_range=1.0, reduction="none"),
            }
            for metric, value in values.items():
                columns[metric].append(value.reshape(-1).double().numpy())
    return pd.DataFrame({m: np.concatenate(columns[m]) for m in METRICS})


def metric_qualities(raw: pd.DataFrame) -> pd.DataFrame:
    """Each raw metric column mapped to 0-100 with :data:`METRIC_MAPS`."""
    return pd.DataFrame({m: METRIC_MAPS[m].quality(raw[m].to_numpy()) for m in METRICS}, index=raw.index)


@dataclass(frozen=True)
class PseudoMOS:
    """The pseudo-MOS per image (``score``) with the raw and mapped metric values behind it."""

    score: np.ndarray  # mean of the six mapped qualities, 0-100
    raw: pd.DataFrame  # raw metric values
    qualities: pd.DataFrame  # mapped 0-100 per metric


def pseudo_mos(distorted, reference, batch_size: int = 2, threads: int | None = 1) -> PseudoMOS:
    """Pseudo-MOS of distorted images against their reference (see the module docstring)."""
    raw = fr_metrics(distorted, reference, batch_size=batch_size, threads=threads)
    qualities = metric_qualities(raw)
    return PseudoMOS(score=qualities.mean(axis=1).to_numpy(), raw=raw, qualities=qualities)
