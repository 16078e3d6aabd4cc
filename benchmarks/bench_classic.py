"""Seconds per image of the classical baselines on one 1024x768 photo, one thread, side by side
with pyiqa's ``brisque``, ``niqe`` and ``ilniqe`` in the same process where pyiqa imports.

Ours: BRISQUE features, NIQE (patch statistics + distance), IL-NIQE (patch features + distance),
CORNIA and HOSA (descriptors + encoding with a codebook fitted beforehand, not timed). pyiqa
needs parameter files it downloads (``niqe_modelparameters.mat``, ``ILNIQE_templateModel.mat``,
BRISQUE's SVM): offline, this script writes stand-ins of the same layout (our pristine NIQE model;
random PCA/MVG of the sizes given by ``--ilniqe-dims``; 500 random support vectors for BRISQUE).
Their values change the scores, not the work, so the timings stand; the scores do not.
Each figure is the median of ``--repeats`` calls (after one warm-up), methods interleaved.

    .venv/bin/python benchmarks/bench_classic.py [--repeats 5] [--no-pyiqa]
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import data  # noqa: E402

from biqa_bench.features import brisque as B  # noqa: E402
from biqa_bench.features import codebook as CB  # noqa: E402
from biqa_bench.features import ilniqe as IL  # noqa: E402
from biqa_bench.features import niqe as N  # noqa: E402
from biqa_bench.features.pristine import pristine_images  # noqa: E402


def median_seconds(function, repeats: int) -> float:
    function()  # warm-up: caches of filter matrices, imports
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def ours(image: np.ndarray) -> dict:
    niqe_model = N.fit_pristine(pristine_images("embedded"))
    ilniqe_model = IL.fit_pristine(pristine_images("embedded"), threshold=0.5)
    patches = CB.local_patches(image)
    whitening = CB.Whitening.fit(patches)
    white = whitening(patches)
    centres, _ = CB.kmeans(white[::8], 200, seed=0)
    codewords = CB.cornia_codewords(centres)
    hosa_book = CB.fit_hosa_codebook(white[::8], 100, seed=0)
    calls = {
        "brisque": lambda: B.brisque_features(image),
        "niqe": lambda: N.niqe_score(image, niqe_model),
        "ilniqe": lambda: IL.ilniqe_distance(IL.patch_features(image)[0], ilniqe_model),
        "cornia": lambda: CB.cornia_encode(whitening(CB.local_patches(image)), codewords),
        "hosa": lambda: CB.hosa_encode(whitening(CB.local_patches(image)), hosa_book),
    }
    return {"calls": calls, "niqe_model": niqe_model}


def pyiqa_calls(image: np.ndarray, niqe_model, folder: Path, ilniqe_dims: tuple[int, int]) -> dict:
    import scipy.io
    import torch

    torch.set_num_threads(1)
    from pyiqa.archs.brisque_arch import brisque
    from pyiqa.archs.niqe_arch import ILNIQE, NIQE

    x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255.0  # pyiqa reads float32 tensors
    niqe_file = folder / "niqe_params.mat"
    scipy.io.savemat(niqe_file, {"mu_prisparam": niqe_model.mean[None], "cov_prisparam": niqe_model.covariance})
    rng = np.random.default_rng(0)
    d, m = ilniqe_dims
    template = np.empty((1, 4), dtype=object)
    a = rng.normal(size=(m, m))
    template[0, 0], template[0, 1] = rng.normal(size=(1, m)), a @ a.T / m + np.eye(m)
    template[0, 2], template[0, 3] = rng.normal(size=(1, d)), np.linalg.qr(rng.normal(size=(d, m)))[0]
    ilniqe_file = folder / "ilniqe_params.mat"
    scipy.io.savemat(ilniqe_file, {"templateModel": template})
    sv = torch.from_numpy(rng.uniform(-1, 1, (500, 36)))
    sv_coef = torch.from_numpy(rng.normal(size=500))
    niqe = NIQE(pretrained_model_path=str(niqe_file))
    ilniqe = ILNIQE(pretrained_model_path=str(ilniqe_file))
    calls = {"brisque": lambda: brisque(x, sv_coef=sv_coef, sv=sv), "niqe": lambda: niqe(x), "ilniqe": lambda: ilniqe(x)}
    with torch.no_grad():
        working = {}
        for name, call in calls.items():
            try:
                call()
                working[name] = call
            except Exception as exc:  # report what does not run offline, time the rest
                print(f"pyiqa {name}: does not run here ({type(exc).__name__}: {str(exc)[:120]})")
    return working


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-pyiqa", action="store_true")
    parser.add_argument("--ilniqe-dims", default="468,430", help="pyiqa IL-NIQE stand-in: features,components")
    args = parser.parse_args()
    image = np.asarray(Image.fromarray(data.astronaut()).resize((1024, 768), Image.Resampling.BICUBIC))
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"image 1024x768; one thread; median of {args.repeats}")
    mine = ours(image)
    theirs = {}
    if not args.no_pyiqa:
        try:
            import torch

            with tempfile.TemporaryDirectory() as tmp:
                dims = tuple(int(v) for v in args.ilniqe_dims.split(","))
                theirs = pyiqa_calls(image, mine["niqe_model"], Path(tmp), dims)
                with torch.no_grad():
                    rows = _measure(mine["calls"], theirs, args.repeats)
        except ImportError as exc:
            print(f"pyiqa not importable ({exc}); timing ours only")
            rows = _measure(mine["calls"], {}, args.repeats)
    else:
        rows = _measure(mine["calls"], {}, args.repeats)
    print("| method | biqa-bench s/image | pyiqa s/image | speed-up |")
    print("|---|---:|---:|---:|")
    for name, (our_time, their_time) in rows.items():
        their = f"{their_time:.3f}" if their_time is not None else "–"
        ratio = f"{their_time / our_time:.1f}x" if their_time is not None else "–"
        print(f"| {name} | {our_time:.3f} | {their} | {ratio} |")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


def _measure(mine: dict, theirs: dict, repeats: int) -> dict:
    rows = {}
    for name, call in mine.items():
        our_time = median_seconds(call, repeats)
        their_time = median_seconds(theirs[name], repeats) if name in theirs else None
        rows[name] = (our_time, their_time)
    return rows


if __name__ == "__main__":
    main()
