"""The adapter side of the codebook methods (CORNIA, HOSA): a codebook learned without labels
from the split's *training* images only, cached by those images, then per-image encodings
(cached per image and codebook) regressed with a linear SVR (:mod:`methods._support.svr`).

The codebook key is a SHA-256 of the method, its feature version, the codebook parameters, the
method seed and the training images (absolute path, size, mtime, sorted): the same split's
training part gives the same key (another run, another repeat with the same training images),
any other gives another. Codebooks live in ``<cache_dir>/features/<name>-codebook-<version>/``
as ``.npz`` files written atomically; encodings in the feature cache under a name that carries
the codebook key. Validation and test images are only encoded, never used for the codebook.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from biqa_bench.errors import MethodError
from biqa_bench.features import codebook as CB
from biqa_bench.features.cache import FeatureCache, image_source_tag
from biqa_bench.fileio import atomic_write_bytes
from biqa_bench.methods import Context
from biqa_bench.store import safe_name
from methods._support.svr import FeatureSVR


@dataclass(eq=False)
class CodebookSVR(FeatureSVR):
    """Base of CORNIA and HOSA; subclasses define FEATURE_VERSION, ``codebook_params()``,
    ``learn(whitened, seed) -> dict of arrays`` and ``encode(whitened, arrays) -> vector``."""

    kernel = "linear"
    FEATURE_VERSION = "codebook-1"
    c_grid: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0)
    codebook_size: int = 200
    patch_size: int = CB.PATCH_SIZE
    patches_per_image: int = 200

    def codebook_params(self) -> dict[str, Any]:
        return {"codebook_size": self.codebook_size, "patch_size": self.patch_size,
                "patches_per_image": self.patches_per_image}

    def learn(self, whitened: np.ndarray, seed: int) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def encode(self, whitened: np.ndarray, arrays: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def min_image_side(self) -> int:
        return int(self.patch_size)  # one patch

    def descriptors(self, image: np.ndarray) -> np.ndarray:
        return CB.local_patches(image, self.patch_size)

    def _codebook_key(self, train_items: pd.DataFrame, seed: int) -> str:
        images = sorted([str(Path(p).absolute()), Path(p).stat().st_size, Path(p).stat().st_mtime_ns]
                        for p in train_items["path"])
        identity = {"method": self.name, "version": self.FEATURE_VERSION, "params": self.codebook_params(),
                    "seed": seed, "images": images, "source": None}
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode("utf-8")).hexdigest()

    def _sample(self, train_items: pd.DataFrame, ctx: Context) -> np.ndarray:
        """A seeded sample of at most patches_per_image descriptors of each training image."""
        paths = sorted(str(p) for p in train_items["path"])
        samples = []
        for index, path in enumerate(paths):
            ctx.progress(f"{self.name} codebook patches", index, len(paths))
            try:
                patches = self.descriptors(ctx.read_image(path))
            except ValueError as exc:
                raise MethodError(f"{path}: {exc}; leave it out (biqa train --skip-broken) or use another method") from None
            rng = np.random.default_rng(np.random.SeedSequence([ctx.seed, index]))
            take = min(self.patches_per_image, len(patches))
            samples.append(patches[np.sort(rng.choice(len(patches), take, replace=False))])
        return np.vstack(samples)

    def prepare(self, train_items: pd.DataFrame, ctx: Context) -> None:
        key = self._codebook_key(train_items, ctx.seed)
        path = Path(ctx.cache_dir) / "features" / safe_name(f"{self.name}-codebook-{self.FEATURE_VERSION}") / f"{key[:32]}.npz"
        arrays = None
        try:
            with np.load(path, allow_pickle=False) as stored:
                arrays = {k: stored[k] for k in stored.files}
        except (OSError, ValueError, EOFError):
            pass
        if arrays is None:
            patches = self._sample(train_items, ctx)
            whitening = CB.Whitening.fit(patches)
            try:
                arrays = self.learn(whitening(patches), ctx.seed)
            except ValueError as exc:
                raise MethodError(f"{self.name}: {exc}") from None
            arrays.update(whitening_mean=whitening.mean, whitening_matrix=whitening.matrix)
            buffer = io.BytesIO()
            np.savez(buffer, **arrays)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, buffer.getvalue(), fsync=False)  # a lost codebook is relearned
            ctx.log.info("%s: codebook of %d codewords from %d training images", self.name, self.codebook_size, len(train_items))
        self.codebook_ = arrays
        self.codebook_key_ = key

    def features(self, items: pd.DataFrame, ctx: Context) -> np.ndarray:
        if not hasattr(self, "codebook_"):
            raise MethodError(f"{self.name}: no codebook; call fit or load a trained model first")
        arrays = self.codebook_
        whitening = CB.Whitening(arrays["whitening_mean"], arrays["whitening_matrix"])
        cache = FeatureCache(ctx.cache_dir, f"{self.name}-encoding", f"{self.FEATURE_VERSION}-{self.codebook_key_[:24]}",
                             image_source_tag(ctx.images))

        def extract(image: np.ndarray) -> np.ndarray:
            try:
                return self.encode(whitening(self.descriptors(image)), arrays)
            except ValueError as exc:
                raise MethodError(f"{self.name}: {exc}; leave such images out (biqa train --skip-broken)") from None

        paths = [str(p) for p in items["path"]]
        return cache.compute(paths, extract, ctx.read_image, n_jobs=self.n_jobs,
                             progress=lambda done, total: ctx.progress(f"{self.name} encodings", done, total))
