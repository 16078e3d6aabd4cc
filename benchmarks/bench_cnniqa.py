"""Time and check the two demo methods (brisque, cnniqa) on ~500 images of 256x256.

Default: the embedded ``synthetic`` dataset (built on first use under $BIQA_CACHE) with the
repository's seeded content splits (``--splits 0,1,2``). ``--dataset made`` instead makes a set
here: 20 crops of scikit-image's photographs x 5 distortions (blur, white noise, JPEG, contrast
loss, under-exposure) x 5 levels, quality = PSNR mapped to 0-100, one 72/8/20 content split.
Prints wall and CPU seconds of fit+predict and the test SROCC per method and split (BRISQUE
twice: cold and warm feature cache).

    .venv/bin/python benchmarks/bench_cnniqa.py [--dataset synthetic] [--splits 0,1,2]
"""

from __future__ import annotations

import argparse
import io
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage
from skimage import data

from biqa_bench.evaluation.metrics import srocc
from biqa_bench.methods import Context, create_method

PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
          "camera", "coins", "moon", "brick", "grass", "gravel", "cell"]


def pristine_crops(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    crops = []
    while len(crops) < n:
        for name in PHOTOS:
            image = getattr(data, name)()
            if image.ndim == 2:
                image = np.repeat(image[..., None], 3, axis=2)
            r = rng.integers(0, image.shape[0] - 256 + 1)
            c = rng.integers(0, image.shape[1] - 256 + 1)
            crops.append(np.ascontiguousarray(image[r:r + 256, c:c + 256, :3]))
            if len(crops) == n:
                break
    return crops


def distort(image: np.ndarray, kind: str, level: int, rng: np.random.Generator) -> np.ndarray:
    x = image.astype(np.float64)
    if kind == "blur":
        x = ndimage.gaussian_filter(x, sigma=(0.6 * level, 0.6 * level, 0))
    elif kind == "noise":
        x = x + rng.normal(0, 6 * level, x.shape)
    elif kind == "jpeg":
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=[40, 20, 10, 6, 3][level - 1])
        return np.asarray(Image.open(buffer).convert("RGB"))
    elif kind == "contrast":
        x = x.mean() + (x - x.mean()) * (1 - 0.17 * level)
    elif kind == "dark":
        x = 255 * (x / 255) ** (1 + 0.5 * level)
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def make_items(folder: Path, seed: int = 0, contents: int = 20) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for content, image in enumerate(pristine_crops(contents, rng)):
        for kind in ["blur", "noise", "jpeg", "contrast", "dark"]:
            for level in range(1, 6):
                distorted = distort(image, kind, level, rng)
                path = folder / f"c{content:02d}_{kind}_{level}.png"
                Image.fromarray(distorted).save(path)
                mse = np.mean((distorted.astype(float) - image.astype(float)) ** 2)
                psnr = 10 * np.log10(255**2 / max(mse, 1e-3))
                rows.append({"item_id": path.stem, "path": str(path.resolve()), "content_id": content,
                             "distortion": kind, "level": level,
                             "quality": float(np.clip((psnr - 12) * 3.5, 0, 100))})
    items = pd.DataFrame(rows)
    items["score"] = items["quality"]
    return items


def split_by_content(items: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    contents = np.random.default_rng(seed).permutation(items["content_id"].unique())
    n_test = round(0.2 * len(contents))
    n_val = max(1, round(0.1 * (len(contents) - n_test)))
    test, val = set(contents[:n_test]), set(contents[n_test:n_test + n_val])
    in_test, in_val = items["content_id"].isin(test), items["content_id"].isin(val)
    return items[~in_test & ~in_val], items[in_val], items[in_test]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic", help="a registered dataset, or 'made'")
    parser.add_argument("--splits", default="0", help="split indices (registered datasets)")
    parser.add_argument("--folder", type=Path, default=None, help="where 'made' images and the feature cache go")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", default="brisque,cnniqa")
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="bench_cnniqa_"))
    folder.mkdir(parents=True, exist_ok=True)
    if args.dataset == "made":
        started = time.perf_counter()
        items = make_items(folder, args.seed)
        print(f"made {len(items)} images in {time.perf_counter() - started:.1f} s under {folder}")
        splits = [split_by_content(items, args.seed)]
    else:
        from biqa_bench.datasets.registry import load_dataset
        from biqa_bench.splits import make_splits

        dataset = load_dataset(args.dataset)
        indices = [int(k) for k in args.splits.split(",")]
        split_set = make_splits(dataset, repeats=max(indices) + 1, seed=args.seed)
        splits = [tuple(dataset.with_abspaths(dataset.subset(ids))
                        for ids in (split_set.splits[k].train, split_set.splits[k].val, split_set.splits[k].test))
                  for k in indices]
    logging.basicConfig(level=logging.WARNING)
    for name in args.methods.split(","):
        ctx = Context(seed=args.seed, cache_dir=folder / "cache")
        for index, (train, val, test) in enumerate(splits):
            for attempt in ("cold cache", "warm cache") if name == "brisque" and index == 0 else ("",):
                method = create_method(name)
                started, cpu = time.perf_counter(), time.process_time()
                method.fit(train, val, ctx)
                prediction = method.predict(test, ctx)
                seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
                print(f"{name:8s} split {index} ({len(train)}/{len(val)}/{len(test)}) {attempt:10s}: fit+predict "
                      f"{seconds:5.1f} s wall, {cpu:5.1f} s CPU; test SROCC {srocc(test['quality'], prediction):.3f}",
                      flush=True)


if __name__ == "__main__":
    main()
