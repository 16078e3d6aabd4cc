"""Seconds per image of the classical baselines on one 1024x768 photo, one thread, side by side
with pyiqa's ``brisque``, ``niqe`` and ``ilniqe`` in the same process where pyiqa imports.

Ours: BRISQUE features, NIQE (patch statistics + distance), IL-NIQE (patch features + distance),
CORNIA and HOSA (descriptors + encoding with a codebook fitted beforehand, not timed). pyiqa
needs parameter files it downloads (``niqe_modelparameters.mat``, ``ILNIQE_templateModel.mat``,
BRISQUE's SVM): offline, this script writes stand-ins of the same layout (our pristine NIQE model;
random PCA/MVG of the sizes given by ``--ilniqe-dims``; 500 random support vectors for BRISQUE).
Their values change the scores, not the work, so the timings stand; the scores do not.
Each figure is the median of ``--repeats`` calls (after one warm-up); ours and pyiqa's calls of
a method alternate, so a load that changes during the run weighs on both alike. Wall-clock and
process CPU time are both reported: on a box shared with other jobs the CPU-time ratio is the
steadier one (waiting for a core is not counted).

    .venv/bin/python benchmarks/bench_classic.py [--repeats 5] [--no-pyiqa] [--methods brisque,niqe]
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


def median_seconds(functions: list, repeats: int) -> list[tuple[float, float]]:
    """(median wall s, median CPU s) of each function, their calls alternating."""
    for function in functions:
        function()  # warm-up: caches of filter matrices, imports
    wall, cpu = [[] for _ in functions], [[] for _ in functions]
    for _ in range(repeats):
        for k, function in enumerate(functions):
            started, started_cpu = time.perf_counter(), time.process_time()
            function()
            wall[k].append(time.perf_counter() - started)
            cpu[k].append(time.process_time() - started_cpu)
    return [(float(np.median(w)), float(np.median(c))) for w, c in zip(wall, cpu)]


def ours(image: np.ndarray, wanted: list[str]) -> dict:
    """Our calls of the ``wanted`` methods; what they need (models, codebooks) fitted first."""
    calls, niqe_model = {}, None
    if "brisque" in wanted:
        calls["brisque"] = lambda: B.brisque_features(image)
    if {"niqe", "ilniqe"} & set(wanted):  # pyiqa's NIQE stand-in parameters are our model
        niqe_model = N.fit_pristine(pristine_images("embedded"))
    if "niqe" in wanted:
        calls["niqe"] = lambda: N.niqe_score(image, niqe_model)
    if "ilniqe" in wanted:
        ilniqe_model = IL.fit_pristine(pristine_images("embedded"), threshold=0.5)
        calls["ilniqe"] = lambda: IL.ilniqe_distance(IL.patch_features(image)[0], ilniqe_model)
    if {"cornia", "hosa"} & set(wanted):
        patches = CB.local_patches(image)
        whitening = CB.Whitening.fit(patches)
        white = whitening(patches)
        if "cornia" in wanted:
            codewords = CB.cornia_codewords(CB.kmeans(white[::8], 200, seed=0)[0])
            calls["cornia"] = lambda: CB.cornia_encode(whitening(CB.local_patches(image)), codewords)
        if "hosa" in wanted:
            hosa_book = CB.fit_hosa_codebook(white[::8], 100, seed=0)
            calls["hosa"] = lambda: CB.hosa_encode(whitening(CB.local_patches(image)), hosa_book)
    return {"calls": calls, "niqe_model": niqe_model}


def pyiqa_calls(image: np.ndarray, niqe_model, folder: Path, ilniqe_dims: tuple[int, int], wanted: list[str]) -> dict:
    import scipy.io
    import torch

    torch.set_num_threads(1)
    from pyiqa.archs.brisque_arch import brisque
    from pyiqa.archs.niqe_arch import ILNIQE, NIQE

    x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255.0  # pyiqa reads float32 tensors
    rng = np.random.default_rng(0)
    calls = {}
    if "brisque" in wanted:
        sv = torch.from_numpy(rng.uniform(-1, 1, (500, 36)))
        sv_coef = torch.from_numpy(rng.normal(size=500))
        calls["brisque"] = lambda: brisque(x, sv_coef=sv_coef, sv=sv)
    if "niqe" in wanted:
        niqe_file = folder / "niqe_params.mat"
        scipy.io.savemat(niqe_file, {"mu_prisparam": niqe_model.mean[None], "cov_prisparam": niqe_model.covariance})
        niqe = NIQE(pretrained_model_path=str(niqe_file))
        calls["niqe"] = lambda: niqe(x)
    if "ilniqe" in wanted:
        d, m = ilniqe_dims
        template = np.empty((1, 4), dtype=object)
        a = rng.normal(size=(m, m))
        template[0, 0], template[0, 1] = rng.normal(size=(1, m)), a @ a.T / m + np.eye(m)
        template[0, 2], template[0, 3] = rng.normal(size=(1, d)), np.linalg.qr(rng.normal(size=(d, m)))[0]
        ilniqe_file = folder / "ilniqe_params.mat"
        scipy.io.savemat(ilniqe_file, {"templateModel": template})
        ilniqe = ILNIQE(pretrained_model_path=str(ilniqe_file))
        calls["ilniqe"] = lambda: ilniqe(x)
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
    parser.add_argument("--methods", default="brisque,niqe,ilniqe,cornia,hosa", help="comma-separated subset")
    args = parser.parse_args()
    wanted = args.methods.split(",")
    image = np.asarray(Image.fromarray(data.astronaut()).resize((1024, 768), Image.Resampling.BICUBIC))
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"image 1024x768; one thread; median of {args.repeats}")
    mine = ours(image, wanted)
    theirs = {}
    if not args.no_pyiqa:
        try:
            import torch

            with tempfile.TemporaryDirectory() as tmp:
                dims = tuple(int(v) for v in args.ilniqe_dims.split(","))
                theirs = pyiqa_calls(image, mine["niqe_model"], Path(tmp), dims, wanted)
                with torch.no_grad():
                    rows = _measure(mine["calls"], theirs, args.repeats)
        except ImportError as exc:
            print(f"pyiqa not importable ({exc}); timing ours only")
            rows = _measure(mine["calls"], {}, args.repeats)
    else:
        rows = _measure(mine["calls"], {}, args.repeats)
    print("| method | biqa-bench s/image | pyiqa s/image | speed-up | CPU s/image: ours / pyiqa | speed-up (CPU) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (ours_, theirs_) in rows.items():
        if theirs_ is None:
            print(f"| {name} | {ours_[0]:.3f} | – | – | {ours_[1]:.3f} / – | – |")
            continue
        print(f"| {name} | {ours_[0]:.3f} | {theirs_[0]:.3f} | {theirs_[0] / ours_[0]:.1f}x | "
              f"{ours_[1]:.3f} / {theirs_[1]:.3f} | {theirs_[1] / ours_[1]:.1f}x |")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


def _measure(mine: dict, theirs: dict, repeats: int) -> dict:
    rows = {}
    for name, call in mine.items():
        if name in theirs:
            rows[name] = tuple(median_seconds([call, theirs[name]], repeats))
        else:
            rows[name] = (median_seconds([call], repeats)[0], None)
    return rows


if __name__ == "__main__":
    main()
