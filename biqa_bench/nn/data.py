"""Data for the deep methods: image sources, seeded crop batches, device-side preprocessing.

An *image source* has ``batch(item_ids, crop, rng, flip)`` -> (N, crop, crop, C) uint8 and
``read_item(item_id)`` -> HxWxC uint8. The decode-once :class:`biqa_bench.imagecache.ImageCache`
is one (zero-copy crops from a memmap); :class:`MemoryImages` is the other (images decoded once
per fit through ``ctx.read_image`` and kept in memory, optionally resized; C may be 6 when a
method stacks an image with its enhanced version so both get the same crop).

Crops, flips and the order of items come from numpy Generators seeded by (seed, phase, epoch), so
a run is reproducible and a resumed run sees the batches the interrupted one would have seen.
Batches are cut in a background thread (the data path overlaps the model) and normalised on the
device: uint8 travels to the GPU (pinned, non-blocking), the float conversion, ImageNet
normalisation and channels-last layout happen there.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image

from ..errors import MethodError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def parse_image_size(size: Any):
    """``'source'`` (use images as the context gives them) or an image-cache size spec."""
    if size is None or size == "source":
        return None
    from ..imagecache import parse_size

    return parse_size(size)


def resize_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic (antialiased) resize of an HxWxC uint8 image; C may be a multiple of 3."""
    if image.shape[0] == height and image.shape[1] == width:
        return image
    channels = image.shape[2]
    parts = [
        np.asarray(Image.fromarray(np.ascontiguousarray(image[:, :, c : c + 3])).resize((width, height), Image.Resampling.BICUBIC))
        for c in range(0, channels, 3)
    ]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)


#: An image is upscaled to fit the crop by at most this factor; beyond it the crop is an error.
MAX_CROP_UPSCALE = 4.0


def fit_size(image: np.ndarray, spec, min_side: int) -> np.ndarray:
    """Resize to the size spec (None keeps it), then upscale if a side is below ``min_side``
    (by at most :data:`MAX_CROP_UPSCALE`: a crop far larger than the image is a MethodError)."""
    height, width = image.shape[:2]
    if spec is not None:
        width, height = spec.target(width, height)
    shorter = min(height, width)
    if shorter * MAX_CROP_UPSCALE < min_side:
        raise MethodError(
            f"a {width}x{height} image cannot give {min_side}x{min_side} crops (it would be upscaled "
            f"{min_side / shorter:.0f}x); use a smaller crop (-p crop=N) or a larger image_size"
        )
    if shorter < min_side:  # a crop must fit: upscale the few too-small images, aspect kept
        scale = min_side / shorter
        height, width = max(min_side, round(height * scale)), max(min_side, round(width * scale))
    return resize_to(image, height, width)


class MemoryImages:
    """Images held in memory, keyed by item id; the same ``batch`` contract as ImageCache."""

    def __init__(self, images: dict[str, np.ndarray]):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def read_item(self, item_id: str) -> np.ndarray:
        try:
            return self.images[str(item_id)]
        except KeyError:
            raise MethodError(f"item '{item_id}' was not loaded into memory; load it with MemoryImages.from_items") from None

    def views(self, item_ids: Sequence[str]) -> list[list[np.ndarray]]:
        """Per item, the arrays whose channels make its image (one here; crops cut each alike)."""
        return [[self.read_item(i)] for i in item_ids]

    def batch(self, item_ids: Sequence[str], crop, rng: np.random.Generator, flip: bool = True) -> np.ndarray:
        ch, cw = (crop, crop) if isinstance(crop, int) else crop
        views = self.views(item_ids)
        n = len(views)
        out = np.empty((n, ch, cw, sum(p.shape[2] for p in views[0]) if n else 3), dtype=np.uint8)
        heights = np.array([v[0].shape[0] for v in views], dtype=np.int64)
        widths = np.array([v[0].shape[1] for v in views], dtype=np.int64)
        if n and ((heights < ch) | (widths < cw)).any():
            k = int(np.flatnonzero((heights < ch) | (widths < cw))[0])
            raise MethodError(f"item '{item_ids[k]}' is {widths[k]}x{heights[k]}, smaller than the {cw}x{ch} crop; use a smaller crop")
        tops = rng.integers(0, heights - ch + 1) if n else heights
        lefts = rng.integers(0, widths - cw + 1) if n else widths
        flips = (rng.random(n) < 0.5) if flip else np.zeros(n, dtype=bool)
        for row, (parts, top, left, mirrored) in enumerate(zip(views, tops, lefts, flips)):
            if len(parts) == 1:
                patch = parts[0][top : top + ch, left : left + cw]
                out[row] = patch[:, ::-1] if mirrored else patch
                continue
            start = 0
            for part in parts:  # each part cropped and flipped alike into its own channels
                patch = part[top : top + ch, left : left + cw]
                patch = patch[:, ::-1] if mirrored else patch
                for c in range(part.shape[2]):  # one long strided copy per channel: ~5x faster
                    out[row, :, :, start + c] = patch[:, :, c]  # than a 3-channel slice of 6
                start += part.shape[2]
        return out

    @classmethod
    def from_items(
        cls,
        items: pd.DataFrame,
        ctx,
        size=None,
        min_side: int = 0,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
        label: str = "loading images",
    ) -> "MemoryImages":
        """Decode each item once (``ctx.read_image``), resize to ``size`` and keep it."""
        spec = parse_image_size(size)
        images: dict[str, np.ndarray] = {}
        total = len(items)
        for k, (item_id, path) in enumerate(zip(items["item_id"].astype(str), items["path"])):
            try:
                image = fit_size(np.asarray(ctx.read_image(path)), spec, min_side)
            except MethodError as exc:
                raise MethodError(f"{path}: {exc}") from None
            if transform is not None:
                image = transform(image)
            images[item_id] = np.ascontiguousarray(image)
            if k % 64 == 0 or k + 1 == total:
                ctx.progress(label, k + 1, total)
        return cls(images)


class PairedImages(MemoryImages):
    """Two image sources stacked on the channel axis (H x W x 6): ``first`` read by the item id,
    ``second`` by ``partner[item_id]`` (e.g. a distorted image and its reference). Both halves get
    the same crop and flip; the sources may be decode-once caches, so nothing is held in memory."""

    def __init__(self, first, second, partner: dict[str, str]):
        self.first, self.second = first, second
        self.partner = {str(k): str(v) for k, v in partner.items()}

    def __len__(self) -> int:
        return len(self.partner)

    def _pair(self, item_id: str) -> list[np.ndarray]:
        item_id = str(item_id)
        if item_id not in self.partner:
            raise MethodError(f"item '{item_id}' has no partner image in this paired source")
        a, b = self.first.read_item(item_id), self.second.read_item(self.partner[item_id])
        if a.shape[:2] != b.shape[:2]:
            raise MethodError(f"item '{item_id}': its images differ in size ({a.shape[1]}x{a.shape[0]} and {b.shape[1]}x{b.shape[0]}); give both one size")
        return [a, b]

    def views(self, item_ids: Sequence[str]) -> list[list[np.ndarray]]:
        return [self._pair(i) for i in item_ids]  # no concatenated copy: batch crops each half

    def read_item(self, item_id: str) -> np.ndarray:
        return np.concatenate(self._pair(item_id), axis=2)


def image_source(items: pd.DataFrame, ctx, size, crop: int):
    """The image source for ``items``: the context's ImageCache when it can serve them as they
    are (``size='source'``, every item cached and at least crop-sized), else images decoded once
    into memory at ``size``."""
    cache = ctx.images
    if parse_image_size(size) is None and cache is not None and hasattr(cache, "batch") and hasattr(cache, "index_of"):
        ids = items["item_id"].astype(str).tolist()
        try:
            index = [cache.index_of(i) for i in ids]
        except Exception:  # not this dataset's cache: fall back to decoding
            index = None
        if index is not None and len(index) and (cache.heights[index] >= crop).all() and (cache.widths[index] >= crop).all():
            return cache
    return MemoryImages.from_items(items, ctx, size=size, min_side=crop)


def read_whole(source, item_ids: Sequence[str], size: int) -> np.ndarray:
    """Whole images resized to size x size (the ``test_crops=0`` prediction input)."""
    return np.stack([resize_to(np.asarray(source.read_item(i)), size, size) for i in item_ids])


# --------------------------------------------------------------------------- device side


class Normalizer:
    """uint8 NHWC batch -> normalised float NCHW on the device (channels-last on CUDA)."""

    def __init__(self, device: torch.device, channels: int = 3):
        reps = channels // 3
        self.device = device
        self.mean = torch.tensor(IMAGENET_MEAN * reps, device=device).view(1, -1, 1, 1) * 255.0
        self.std = torch.tensor(IMAGENET_STD * reps, device=device).view(1, -1, 1, 1) * 255.0
        self.channels_last = device.type == "cuda"

    def __call__(self, batch: np.ndarray | torch.Tensor) -> torch.Tensor:
        tensor = torch.from_numpy(batch) if isinstance(batch, np.ndarray) else batch
        tensor = tensor.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
        tensor = (tensor - self.mean) / self.std
        if self.channels_last:
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        return tensor.contiguous() if not self.channels_last else tensor


def prefetch(batches: Iterable[Any], depth: int = 3, pin: bool = False) -> Iterator[Any]:
    """Iterate ``batches`` produced in a background thread, ``depth`` ahead (pinned if asked).

    Items are ``(uint8 array, ...)`` tuples; the first element is turned into a (pinned) tensor.
    An exception in the producer is re-raised in the consumer.
    """
    done = object()
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in batches:
                if stop.is_set():
                    return
                array, *rest = item
                tensor = torch.from_numpy(array)
                if pin:
                    tensor = tensor.pin_memory()
                slots.put((tensor, *rest))
            slots.put(done)
        except BaseException as exc:  # hand the error to the consumer, which raises it
            slots.put(exc)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                slots.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)
