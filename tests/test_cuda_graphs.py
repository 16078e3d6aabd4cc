"""CUDA-graph replay of train_l1's steps (trainer.CudaGraphStep, ``-p cuda_graphs=true``).

On the CPU the flag must change nothing; the graph itself is checked by the tests marked
``cuda`` (skipped without a GPU; run them on the device machine:
``python -m pytest tests/test_cuda_graphs.py``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from biqa_bench.cli_common import check_param_types
from biqa_bench.errors import BiqaError
from biqa_bench.methods import create_method, discover
from biqa_bench.nn import trainer
from biqa_bench.nn.data import MemoryImages
from biqa_bench.nn.trainer import Phase, StepDecay, TrainData, run_phase
from _deep_helpers import make_ctx, make_items, one_thread_tmp_env  # noqa: F401 (autouse fixture)

ORIGINAL_STEP = trainer.CudaGraphStep
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("name", ["resnet50", "qamt", "hcl"])
def test_methods_training_with_train_l1_take_the_flag(name):
    method = create_method(name, recipe="quick", cuda_graphs=True)
    assert method.get_params()["cuda_graphs"] is True
    assert create_method(name, recipe="quick").get_params()["cuda_graphs"] is False
    with pytest.raises(BiqaError, match="cuda_graphs"):
        check_param_types(name, discover()[name], {"cuda_graphs": 1})


def test_flag_changes_nothing_on_the_cpu(tmp_path):
    items = make_items(tmp_path / "img", 10, size=(36, 36))
    predictions = []
    for flag in (False, True):
        ctx = make_ctx(tmp_path, f"run-{flag}")
        method = create_method("resnet50", recipe="quick", pretrained="none", crop=32, image_size="36x36", epochs=1, test_crops=1, cuda_graphs=flag)
        method.fit(items.iloc[:6], items.iloc[6:8], ctx)
        predictions.append(method.predict(items.iloc[8:], ctx))
    assert np.array_equal(predictions[0], predictions[1])


class SmallNet(nn.Module):
    """Convolutions, batch norm and a linear head: what a graph must replay (no dropout, so that
    eager and graph runs draw no random numbers and can be compared)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 1),
        )

    def forward(self, x):
        return self.net(x).squeeze(1)


class SmallNetState:
    initial: dict[str, torch.Tensor] = {}


def _train(graph: bool, device: torch.device, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    ids = np.array([f"k{i}" for i in range(30)])
    data = TrainData(ids, rng.uniform(0, 100, 30), MemoryImages({i: rng.integers(0, 256, (20, 20, 3), dtype=np.uint8) for i in ids}), 16)
    torch.manual_seed(0)
    model = SmallNet().to(device).to(memory_format=torch.channels_last)
    SmallNetState.initial = {k: v.detach().clone() for k, v in model.named_parameters()}
    # SGD, not Adam: Adam(capturable=True) computes its bias corrections on the device in
    # another order than the eager Adam, and dividing by sqrt(v) of tiny gradients magnifies those
    # last-bit differences to ~1e-3 of a weight within 14 steps (seen on an H100); the replay is
    # what is under test here.
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def loss(images, quality, epoch):
        value = nn.functional.l1_loss(model(images).float(), quality)
        return value, {"l1": value.detach()}

    phase = Phase(
        name="train", epochs=2, optimizer=optimizer, schedule=StepDecay([]),
        # six full batches of 4 rows, then a short one of 3
        batches=lambda epoch, rng: [rng.permutation(30)[:4] for _ in range(6)] + [rng.permutation(30)[:3]],
        loss=loss, train_modules=[model], cuda_graph=graph,
    )
    steps = []

    class Recording(ORIGINAL_STEP):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            steps.append(self)

    with monkeypatch.context() as patch:
        patch.setattr(trainer, "CudaGraphStep", Recording)
        result = run_phase(phase, model, data, make_ctx(tmp_path, None), device, "t", "fp")
    return model, result, steps


@cuda
@pytest.mark.filterwarnings("error:The AccumulateGrad node:UserWarning")  # autograd: nodes kept alive across streams
def test_graph_replay_trains_like_eager_steps(tmp_path, monkeypatch):
    device = trainer.resolve_device("cuda")
    eager, eager_result, none = _train(False, device, tmp_path, monkeypatch)
    graphed, graph_result, steps = _train(True, device, tmp_path, monkeypatch)
    assert none == []
    assert len(steps) == 2  # one graph per epoch
    for step in steps:  # 3 eager warm-up steps, the captured step and 2 more replayed, the short batch eager
        assert step.warmed == 3 and step.replays == 3 and step.eager_steps == 4
    for (name, a), b in zip(eager.state_dict().items(), graphed.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), rtol=1e-3, atol=1e-5), name
    for a, b in zip(eager_result.history, graph_result.history):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-3)
    moved = max(float((value.detach() - SmallNetState.initial[name]).abs().max()) for name, value in eager.named_parameters())
    assert moved > 1e-3  # the runs trained: the tolerance above is far below what 14 steps change


def test_a_failed_capture_is_a_one_line_error(monkeypatch):
    """Without a GPU the capture itself is stubbed: it fails as CUDA does for an operation that
    synchronises with the host, and the user gets one line naming the way out."""
    import contextlib

    from biqa_bench.errors import MethodError

    @contextlib.contextmanager
    def failing_capture(graph):
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing\nmore lines")
        yield

    monkeypatch.setattr(torch.cuda, "Stream", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", lambda: object())
    monkeypatch.setattr(torch.cuda, "graph", failing_capture)
    model = nn.Linear(3, 1)
    phase = Phase("train", 1, torch.optim.SGD(model.parameters(), lr=0.1), StepDecay([]), lambda e, r: [], lambda i, q, e: (q.sum(), {}), [model])
    step = trainer.CudaGraphStep(phase, lambda x: x.float(), torch.device("cpu"), 0, batch_size=2, warmup=0)
    with pytest.raises(MethodError) as error:
        step(torch.zeros(2, 3), torch.zeros(2))
    message = str(error.value)
    assert "operation not permitted when stream is capturing" in message and "more lines" not in message
    assert "without -p cuda_graphs=true" in message and "\n" not in message
