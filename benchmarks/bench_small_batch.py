"""Benchmark the ResNet-50 baseline's training step at the papers' small batch (32) on random tensors.

At batch 32 the H100 trains the `resnet50` paper recipe at ~920 img/s against ~3,900 img/s at
batch 256: the question is whether the step is bound by the GPU or by the host (kernel launches,
the optimizer's Python, autograd). This script times the same model, loss (L1 on the 0-100
quality) and optimizer (Adam, the recipe's learning rates) on tensors already on the device in
three ways:

* ``eager``: what the shared trainer does (bf16 autocast, channels-last, Adam's default
  multi-tensor implementation);
* ``fused``: the same with ``Adam(fused=True)``;
* ``graph``: the whole step (forward, backward, ``Adam(capturable=True)``) captured once in a
  CUDA graph and replayed, inputs copied into static tensors (CUDA only).

No data pipeline is involved (``bench_train.py --batch-size 32`` measures it). Example::

    python benchmarks/bench_small_batch.py --device cuda --batch-size 32 --steps 200
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from biqa_bench.nn.trainer import autocast  # noqa: E402
from methods.resnet50 import ResNet50Baseline  # noqa: E402


def build(device: torch.device, crop: int):
    method = ResNet50Baseline(recipe="paper", pretrained="none")
    settings = method.settings()
    torch.manual_seed(0)
    model, _ = method.build_model(settings, "none", None)
    model = method._to_device(model, device)
    model.train()
    return model, settings


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_eager(device, batch, crop, steps, warmup, fused: bool) -> float:
    model, settings = build(device, crop)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings["lr_backbone"], fused=fused or None)
    x = torch.randn(batch, 3, crop, crop, device=device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    q = torch.rand(batch, device=device) * 100

    def step():
        with autocast(device):
            loss = F.l1_loss(model(x).float(), q)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps * batch / (time.perf_counter() - started)


def time_graph(device, batch, crop, steps, warmup) -> float:
    model, settings = build(device, crop)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings["lr_backbone"], capturable=True)
    static_x = torch.randn(batch, 3, crop, crop, device=device).contiguous(memory_format=torch.channels_last)
    static_q = torch.rand(batch, device=device) * 100
    fresh_x = torch.randn_like(static_x)
    fresh_q = torch.rand_like(static_q) * 100

    def forward_backward():
        with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
            loss = F.l1_loss(model(static_x).float(), static_q)
        loss.backward()
        optimizer.step()
        return loss

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up on a side stream, as CUDA graph capture requires
        for _ in range(max(3, warmup)):
            optimizer.zero_grad(set_to_none=True)
            forward_backward()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    optimizer.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        forward_backward()
    sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        static_x.copy_(fresh_x, non_blocking=True)  # what a fed loop would do each step
        static_q.copy_(fresh_q, non_blocking=True)
        graph.replay()
    sync(device)
    return steps * batch / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[32])
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--modes", default="eager,fused,graph")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        name = torch.cuda.get_device_name(device)
    else:
        name = "CPU"
    print(f"{name}; torch {torch.__version__}; ResNet-50 + FC(256, 1), L1, Adam; crop {args.crop}; {args.steps} timed steps\n")
    print("| batch | mode | train img/s |")
    print("|---:|---|---:|")
    for batch in args.batch_size:
        for mode in args.modes.split(","):
            if mode == "graph" and device.type != "cuda":
                continue
            try:
                if mode == "graph":
                    rate = time_graph(device, batch, args.crop, args.steps, args.warmup)
                else:
                    rate = time_eager(device, batch, args.crop, args.steps, args.warmup, fused=mode == "fused" and device.type == "cuda")
            except Exception as error:  # noqa: BLE001 - a mode that cannot run here is reported, the others go on
                print(f"| {batch} | {mode} | failed: {type(error).__name__}: {str(error).splitlines()[0][:120]} |", flush=True)
                continue
            print(f"| {batch} | {mode} | {rate:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
