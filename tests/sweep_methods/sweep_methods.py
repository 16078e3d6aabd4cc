"""Fast feature methods for the sweep tests, found by worker processes through $BIQA_METHODS_PATH
(methods registered in conftest exist only in the test process).

``sweep-mean`` fits quality to the mean brightness, ``sweep-contrast`` to the pixel standard
deviation; ``sweep-qamt`` is QAMT on a tiny backbone (below). Test hooks (all off by default): ``log_file`` gets one line per fit (split, PID);
``sleep`` seconds per fit; ``kill_split`` with ``marker``: the fit of that split kills its own
process with SIGKILL while the marker file exists (removing it first, so a rerun succeeds).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np

from biqa_bench.methods import Method, register_method


class _Feature(Method):
    def __init__(self, log_file: str | None = None, sleep: float = 0.0, kill_split: int | None = None, marker: str | None = None):
        self.log_file, self.sleep, self.kill_split, self.marker = log_file, sleep, kill_split, marker

    def feature(self, image: np.ndarray) -> float:
        raise NotImplementedError

    def fit(self, train_items, val_items, ctx):
        split = ctx.work_dir.name if ctx.work_dir is not None else "?"
        if self.log_file:
            with open(self.log_file, "a") as handle:
                handle.write(f"{ctx.dataset.name} {split} {os.getpid()}\n")
        if self.kill_split is not None and split == f"split_{self.kill_split:02d}" and self.marker and Path(self.marker).exists():
            Path(self.marker).unlink()
            (ctx.work_dir / "half-written.tmp").write_text("work in flight")
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(self.sleep)
        x = np.array([self.feature(ctx.read_image(p)) for p in train_items["path"]])
        self.slope_, self.intercept_ = np.polyfit(x, train_items["quality"].to_numpy(), 1)
        return self

    def predict(self, items, ctx):
        return self.slope_ * np.array([self.feature(ctx.read_image(p)) for p in items["path"]]) + self.intercept_


@register_method("sweep-mean")
class SweepMean(_Feature):
    def feature(self, image):
        return float(image.mean())


@register_method("sweep-contrast")
class SweepContrast(_Feature):
    def feature(self, image):
        return float(image.std())


def _qamt_counting():
    """``sweep-qamt``: QAMT itself (stage 1 cached by its stage hash, fine-tuning from it) on a
    one-block-per-stage ResNet instead of ResNet-50 (as tests/test_qamt.py does, but inside the job's
    own process), with one test hook, ``count_file``: one line (PID) per stage-1 training actually
    run, written by whichever process trains it. Neither is part of the stage key."""
    import contextlib
    from dataclasses import dataclass

    import torchvision
    from torch import nn

    import methods.qamt as Q
    from biqa_bench.nn.backbones import LoadedWeights

    def tiny_backbone(pretrained, weights):
        model = torchvision.models.resnet.ResNet(torchvision.models.resnet.BasicBlock, [1, 1, 1, 1])
        model.fc = nn.Identity()
        return model, 512, LoadedWeights(None, None)

    @contextlib.contextmanager
    def tiny():  # for the duration of one call in this process (a job runs alone in its worker)
        original, Q.build_backbone = Q.build_backbone, tiny_backbone
        try:
            yield
        finally:
            Q.build_backbone = original

    @register_method("sweep-qamt")
    @dataclass(eq=False)
    class SweepQAMT(Q.QAMT):
        count_file: str | None = None

        def pretrain(self, *args, **kwargs):
            with tiny():
                return super().pretrain(*args, **kwargs)

        def build_model(self, *args, **kwargs):
            with tiny():
                return super().build_model(*args, **kwargs)

        def _train_stage1(self, *args, **kwargs):
            if self.count_file:
                with open(self.count_file, "a") as handle:
                    handle.write(f"stage1 {os.getpid()}\n")
            return super()._train_stage1(*args, **kwargs)

    return SweepQAMT


SweepQAMT = _qamt_counting()
