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


class SharedReference:
    """piq's FSIMc and VSI of many images against one reference, the reference's maps computed once.

    ``fsim(x)`` equals ``piq.fsim(x, reference.expand_as(x))`` and ``vsi(x)`` equals
    ``piq.vsi(x, reference.expand_as(x))`` with piq's default parameters (tested to agree), for
    Nx3xHxW images in [0, 1]. Phase congruency (FSIM) and saliency (VSI) are most of their cost;
    computing the reference's only once nearly halves it when many distortions of one image are
    scored. Uses piq's own filter, phase-congruency, saliency and similarity helpers.
    """

    def __init__(self, reference):
        self.reference = reference  # 1x3xHxW, 0-1
        self._fsim_maps = None
        self._vsi_maps = None

    # FSIMc (piq.fsim, chromatic=True, scales=4, orientations=4, min_length=6, mult=2,
    # sigma_f=0.55, delta_theta=1.2, k=2)
    @staticmethod
    def _fsim_side(images, filters=None):
        import torch
        from piq.fsim import _construct_filters, _phase_congruency
        from piq.functional import gradient_map, rgb2yiq, scharr_filter

        images = images * 255.0
        kernel_size = max(1, round(min(images.shape[-2:]) / 256))
        images = torch.nn.functional.avg_pool2d(images, kernel_size)
        yiq = rgb2yiq(images)
        lum = yiq[:, :1]
        if filters is None:
            filters = _construct_filters(lum, 4, 4, 6, 2, 0.55, 1.2)
        pc = _phase_congruency(lum, filters=filters, scales=4, orientations=4, k=2.0)
        sch = scharr_filter(device=lum.device, dtype=lum.dtype)
        grad = gradient_map(lum, torch.stack([sch, sch.transpose(-1, -2)]))
        return {"yiq": yiq, "pc": pc, "grad": grad, "filters": filters}

    def fsim(self, x):
        import torch
        from piq.functional import similarity_map

        if self._fsim_maps is None:
            self._fsim_maps = self._fsim_side(self.reference)
        ref = self._fsim_maps
        dist = self._fsim_side(x, ref["filters"])
        t1, t2, t3, t4, lmbda = 0.85, 160, 200, 200, 0.03
        pc_max = torch.where(dist["pc"] > ref["pc"], dist["pc"], ref["pc"])
        score = similarity_map(dist["grad"], ref["grad"], t2) * similarity_map(dist["pc"], ref["pc"], t1) * pc_max
        s_i = similarity_map(dist["yiq"][:, 1:2], ref["yiq"][:, 1:2], t3)
        s_q = similarity_map(dist["yiq"][:, 2:], ref["yiq"][:, 2:], t4)
        score = score * torch.abs(s_i * s_q) ** lmbda
        return score.sum(dim=[1, 2, 3]) / pc_max.sum(dim=[1, 2, 3])

    # VSI (piq.vsi defaults: c1=1.27, c2=386, c3=130, alpha=0.4, beta=0.02, omega_0=0.021,
    # sigma_f=1.34, sigma_d=145, sigma_c=0.001)
    @staticmethod
    def _vsi_side(images):
        import torch
        from piq.functional import gradient_map, rgb2lmn, scharr_filter
        from piq.vsi import sdsp
        from torch.nn.functional import avg_pool2d, pad

        images = images * 255.0
        vs = sdsp(images, data_range=255, omega_0=0.021, sigma_f=1.34, sigma_d=145.0, sigma_c=0.001)
        lmn = rgb2lmn(images)
        kernel_size = max(1, round(min(vs.size()[-2:]) / 256))
        padding = kernel_size // 2
        if padding:
            pads = [padding, (kernel_size - 1) // 2, padding, (kernel_size - 1) // 2]
            vs, lmn = pad(vs, pad=pads, mode="replicate"), pad(lmn, pad=pads, mode="replicate")
        vs, lmn = avg_pool2d(vs, kernel_size=kernel_size), avg_pool2d(lmn, kernel_size=kernel_size)
        sch = scharr_filter(device=lmn.device, dtype=lmn.dtype)
        grad = gradient_map(lmn[:, :1], torch.stack([sch, sch.transpose(1, 2)]))
        return {"vs": vs, "lmn": lmn, "grad": grad}

    def vsi(self, x):
        import torch
        from piq.functional import similarity_map

        if self._vsi_maps is None:
            self._vsi_maps = self._vsi_side(self.reference)
        ref = self._vsi_maps
        dist = self._vsi_side(x)
        c1, c2, c3, alpha, beta = 1.27, 386.0, 130.0, 0.4, 0.02
        s_vs = similarity_map(dist["vs"], ref["vs"], c1)
        s_gm = similarity_map(dist["grad"], ref["grad"], c2)
        s_c = similarity_map(dist["lmn"][:, 1:2], ref["lmn"][:, 1:2], c3) * similarity_map(
            dist["lmn"][:, 2:], ref["lmn"][:, 2:], c3
        )
        # s_c ** beta for a possibly negative s_c, real part (as piq does it)
        s_c_real_pow = s_c.abs() ** beta * torch.cos(torch.atan2(torch.zeros_like(s_c), s_c) * beta)
        vs_max = torch.max(dist["vs"], ref["vs"])
        eps = torch.finfo(vs_max.dtype).eps
        output = s_vs * s_gm.pow(alpha) * s_c_real_pow * vs_max
        return ((output.sum(dim=(-1, -2)) + eps) / (vs_max.sum(dim=(-1, -2)) + eps)).squeeze(-1)


def fsim_shared_reference(x, reference):
    """``piq.fsim(x, reference.expand_as(x))`` via :class:`SharedReference`."""
    return SharedReference(reference).fsim(x)


def vsi_shared_reference(x, reference):
    """``piq.vsi(x, reference.expand_as(x))`` via :class:`SharedReference`."""
    return SharedReference(reference).vsi(x)


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
        cached = SharedReference(ref_one) if shared else None
        for start in range(0, dist.shape[0], batch_size):
            x = to_tensor(dist[start : start + batch_size])
            y = ref_one.expand_as(x) if shared else to_tensor(ref[start : start + batch_size])
            x_luma, y_luma = _luma(x), _luma(y)
            values = {
                "ssim": piq.ssim(x_luma, y_luma, data_range=1.0, reduction="none"),
                "ms_ssim": piq.multi_scale_ssim(x_luma, y_luma, data_range=1.0, reduction="none"),
                "mdsi": piq.mdsi(x, y, data_range=1.0, reduction="none"),
                "vsi": cached.vsi(x) if shared else piq.vsi(x, y, data_range=1.0, reduction="none"),
                "fsim": cached.fsim(x) if shared else piq.fsim(x, y, data_range=1.0, reduction="none"),
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
