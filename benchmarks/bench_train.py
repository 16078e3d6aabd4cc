"""Throughput of the deep methods: training and inference, through the data path and alone.

For each method (resnet50, reqa, ieit, hyperiqa, dbcnn, metaiqa, metaiqa-meta, wadiqam) on the
device present (or ``--device``):

* **train, pipeline**: images/s of the shared training loop (:func:`biqa_bench.nn.trainer.run_phase`)
  over a synthetic data set served by the decode-once image cache (random crops + flips cut from
  the memmap in a background thread, uint8 to the device, normalisation there), with the
  method's loss and optimizer (REQA: its micro-batch sampler and curriculum loss; IEIT: stage 1,
  image pairs held in memory as the method does, E = I; DBCNN: the fine-tuning stage, MSE through
  both streams; MetaIQA: fine-tuning, and ``metaiqa-meta`` its bi-level outer step over the
  paper's 5 episodes of ``--batch-size`` images each, half support and half query, second order;
  WaDIQaM: ``--batch-size`` images x 32 patches of 32 x 32, whatever ``--crop``, counted in patches);
* **train, model only**: the same loss and optimizer on random tensors already on the device;
* **ratio** = pipeline / model only (the data path's efficiency; 1.0 = the model never waits);
* **infer, pipeline**: :func:`biqa_bench.nn.trainer.predict_items` with one random crop per
  image; **infer, model only**: forward passes on random tensors on the device;
* **peak GPU memory** during training (CUDA only).

Models start from random weights (``pretrained='none'``): throughput does not depend on them.
Synthetic images are random-texture JPEGs written once to a temporary folder and decoded into the
image cache before timing. Prints a Markdown table. Examples::

    .venv/bin/python benchmarks/bench_train.py                      # CPU, small settings
    .venv/bin/python benchmarks/bench_train.py --device cuda --crop 224 --image-size 256 \\
        --images 2048 --steps 60 --batch-size 256 --methods resnet50
"""

from __future__ import annotations

import argparse
import logging
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from biqa_bench.datasets.registry import DatasetInfo, make_dataset
from biqa_bench.imagecache import ImageCache
from biqa_bench.methods import Context, create_method
from biqa_bench.nn.data import MemoryImages
from biqa_bench.nn.trainer import Phase, StepDecay, TrainData, autocast, predict_items, resolve_device, run_phase


def synthetic_dataset(folder: Path, n: int, size: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        base = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize((size, size), Image.Resampling.BICUBIC)
        image.save(folder / f"{i:05d}.jpg", quality=90)
        rows.append({"item_id": f"s{i:05d}", "path": f"{i:05d}.jpg", "score": float(rng.uniform(0, 100))})
    info = DatasetInfo("benchtrain", "authentic", "MOS", True, (0.0, 100.0), needs_root=False)
    return make_dataset(info, pd.DataFrame(rows), folder)


def method_loss(name: str, model, settings, data: TrainData):
    """(loss(images, quality), optimizer) exactly as the method trains (IEIT: stage 1)."""
    if name == "resnet50":
        optimizer = torch.optim.Adam(
            [{"params": model.backbone.parameters(), "lr": settings["lr_backbone"]}, {"params": model.head.parameters(), "lr": settings["lr_head"]}]
        )
        return (lambda x, q, e: (torch.nn.functional.l1_loss(model(x).float(), q), {})), optimizer
    if name == "reqa":
        from methods.reqa import curriculum_weights, reqa_loss

        optimizer = torch.optim.Adam(
            [{"params": model.stages.parameters(), "lr": settings["lr_backbone"]}, {"params": model.head_parameters(), "lr": settings["lr_head"]}],
            weight_decay=settings["weight_decay"],
        )
        return (lambda x, q, e: reqa_loss(model(x).float(), q, curriculum_weights(0, 40))), optimizer
    if name == "ieit":
        from methods.ieit import make_stage1

        phase = make_stage1(model, data, settings, lambda: float("nan"))
        phase.schedule.start_epoch(phase.optimizer, 0)
        return phase.loss, phase.optimizer
    if name == "hyperiqa":
        from methods.hyperiqa import backbone_head_groups

        optimizer = torch.optim.Adam(backbone_head_groups(model.backbone_parameters(), model.hyper_parameters(), settings), weight_decay=settings["weight_decay"])
        return (lambda x, q, e: (torch.nn.functional.l1_loss(model(x).float(), q), {})), optimizer
    if name == "dbcnn":
        optimizer = torch.optim.Adam(model.parameters(), lr=settings["lr"], weight_decay=settings["weight_decay"])
        return (lambda x, q, e: (torch.nn.functional.mse_loss(model(x).float(), q), {})), optimizer
    if name == "metaiqa":
        from methods.metaiqa import head_groups, quality_loss

        optimizer = torch.optim.Adam(head_groups(model, settings["lr_backbone"], settings["lr_head"]))
        return (lambda x, q, e: (quality_loss(model(x), q), {})), optimizer
    if name == "metaiqa-meta":
        from methods.metaiqa import bilevel_loss, head_groups

        scale = settings["head_scale"]
        heads = {f"head.{n}" for n, _ in model.head.named_parameters()}
        inner = {n: settings["meta_inner_lr"] * (scale if n in heads else 1.0) for n, _ in model.named_parameters()}
        optimizer = torch.optim.Adam(head_groups(model, settings["meta_outer_lr"], settings["meta_outer_lr"] * scale))
        support, query = int(settings["meta_support"]), int(settings["meta_query"])
        return (lambda x, q, e: (bilevel_loss(model, x, q, support, query, inner), {})), optimizer
    if name == "wadiqam":
        per_image = int(settings["patches_per_image"])
        optimizer = torch.optim.Adam(model.parameters(), lr=settings["lr"])
        return (lambda x, q, e: (torch.nn.functional.l1_loss(model.image_scores(x, per_image).float(), q.reshape(-1, per_image)[:, 0]), {})), optimizer
    raise SystemExit(f"unknown method {name}")


def sampler(name: str, settings, data: TrainData, batch: int, steps: int):
    if name == "reqa":
        from methods.reqa import batch_micro_batches  # the default micro_levels='batch'

        return lambda epoch, rng: batch_micro_batches(data.quality, batch // 5, steps, rng)
    if name == "wadiqam":  # each image's patches are consecutive rows
        per_image = int(settings["patches_per_image"])
        return lambda epoch, rng: [np.repeat(rng.integers(0, len(data.item_ids), batch // per_image), per_image) for _ in range(steps)]
    return lambda epoch, rng: [rng.integers(0, len(data.item_ids), batch) for _ in range(steps)]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_method(name: str, args, dataset, cache: ImageCache, device: torch.device) -> dict:
    crop = 32 if name == "wadiqam" else args.crop  # WaDIQaM's patches are 32 x 32
    extra = {}
    if name == "metaiqa-meta" and args.batch_size:
        extra = {"meta_support": max(2, args.batch_size // 2), "meta_query": max(2, args.batch_size - args.batch_size // 2)}
    method = create_method(name.removesuffix("-meta"), recipe="paper", pretrained="none", crop=crop, batch_size=args.batch_size or None, **({"test_crops": 1} if name == "wadiqam" else {}))
    settings = {**method.settings(), **extra}
    batch = int(settings["batch_size"])
    if name == "reqa":
        batch = batch // 5 * 5
    elif name == "metaiqa-meta":
        batch = int(settings["meta_tasks"]) * (int(settings["meta_support"]) + int(settings["meta_query"]))
    elif name == "wadiqam":
        batch *= int(settings["patches_per_image"])
    torch.manual_seed(0)
    model, _ = method.build_model(settings, "none", None)
    model = method._to_device(model, device)
    items = dataset.items
    if name == "ieit":  # the method holds (image, enhanced) pairs in memory; E = I here
        source = MemoryImages({i: np.concatenate([cache.read_item(i)] * 2, axis=2) for i in items["item_id"]})
        channels = 6
    else:
        source, channels = cache, 3
    data = TrainData(items["item_id"].to_numpy(), items["quality"].to_numpy(dtype=float), source, crop)
    loss, optimizer = method_loss(name, model, settings, data)
    ctx = Context(device=str(device), seed=0, work_dir=None, log=logging.getLogger("bench"))

    def pipeline_train(steps: int) -> float:
        phase = Phase("bench", 1, optimizer, StepDecay([]), sampler(name, settings, data, batch, steps), loss, [model], None, max_steps=steps)
        sync(device)
        started = time.perf_counter()
        run_phase(phase, model, data, ctx, device, name, "bench")
        sync(device)
        return steps * batch / (time.perf_counter() - started)

    x = torch.randn(batch, channels, crop, crop, device=device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    q = torch.rand(batch, device=device) * 100

    def model_train(steps: int) -> float:
        model.train()
        sync(device)
        started = time.perf_counter()
        for _ in range(steps):
            with autocast(device):
                value, _ = loss(x, q, 0)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
        sync(device)
        return steps * batch / (time.perf_counter() - started)

    score = method.score_function(model)
    ids = items["item_id"].tolist()[: args.infer_images]

    def pipeline_infer() -> float:
        model.eval()
        sync(device)
        started = time.perf_counter()
        predict_items(score, source, ids, crop, 1, device, seed=0, batch_size=args.infer_batch)
        sync(device)
        return len(ids) / (time.perf_counter() - started)

    xi = torch.randn(args.infer_batch, channels, crop, crop, device=device)
    if device.type == "cuda":
        xi = xi.contiguous(memory_format=torch.channels_last)

    @torch.no_grad()
    def model_infer() -> float:
        model.eval()
        passes = max(1, len(ids) // args.infer_batch)
        sync(device)
        started = time.perf_counter()
        for _ in range(passes):
            with autocast(device):
                score(xi)
        sync(device)
        return passes * args.infer_batch / (time.perf_counter() - started)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model_train(args.warmup)  # cudnn autotuning, allocator warm-up
    pipeline_train(args.warmup)
    train_model = model_train(args.steps)
    train_pipe = pipeline_train(args.steps)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    model_infer()
    infer_model = model_infer()
    infer_pipe = pipeline_infer()
    return {
        "method": name, "batch": batch, "train_pipe": train_pipe, "train_model": train_model,
        "infer_pipe": infer_pipe, "infer_model": infer_model, "peak_gib": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--methods", default="resnet50,reqa,ieit,hyperiqa,dbcnn,metaiqa,metaiqa-meta,wadiqam")
    parser.add_argument("--images", type=int, default=40, help="synthetic images in the data set")
    parser.add_argument("--image-size", type=int, default=80, help="side of the square synthetic images")
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8, help="0 = the paper recipe's batch size")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--infer-images", type=int, default=32)
    parser.add_argument("--infer-batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        dataset = synthetic_dataset(folder, args.images, args.image_size)
        cache = ImageCache.open_or_build(dataset, size="original", workers=2, cache_root=folder / "cache")
        rows = [bench_method(name.strip(), args, dataset, cache, device) for name in args.methods.split(",")]
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    precision = "bf16 autocast, channels-last" if device.type == "cuda" else "fp32"
    print(f"Device: {where}; {precision}; crop {args.crop}; {args.images} synthetic {args.image_size}x{args.image_size} images; {args.steps} timed steps\n")
    print("| method | batch | train img/s (pipeline) | train img/s (model only) | ratio | infer img/s (pipeline) | infer img/s (model only) | ratio | peak GPU GiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['method']} | {r['batch']} | {r['train_pipe']:.1f} | {r['train_model']:.1f} | {r['train_pipe'] / r['train_model']:.2f} | "
            f"{r['infer_pipe']:.1f} | {r['infer_model']:.1f} | {r['infer_pipe'] / r['infer_model']:.2f} | "
            + ("n/a" if np.isnan(r["peak_gib"]) else f"{r['peak_gib']:.2f}") + " |"
        )


if __name__ == "__main__":
    main()
