"""Shared deep-learning parts: offline weights, image sources, schedules, the training loop
(resume, validation selection), test-time prediction, and the resnet50 baseline."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from biqa_bench.errors import MethodError
from biqa_bench.methods import create_method
from biqa_bench.nn import backbones
from biqa_bench.nn.data import MemoryImages, Normalizer, PairedImages, fit_size, resize_to
from biqa_bench.nn.trainer import Phase, StepDecay, TrainData, WarmupPlateau, predict_items, run_phase
from _deep_helpers import make_ctx, make_items, one_thread_tmp_env  # noqa: F401 (autouse fixture)


@pytest.fixture
def no_weight_caches(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "hub" / "checkpoints"


# --------------------------------------------------------------------------- weights


def test_missing_weights_is_one_line_error_naming_the_place(no_weight_caches):
    with pytest.raises(MethodError) as info:
        backbones.resnet50("imagenet", None)
    message = str(info.value)
    assert "\n" not in message
    assert str(no_weight_caches / "resnet50-0676ba61.pth") in message
    assert "--weights" in message and "--pretrained none" in message
    with pytest.raises(MethodError, match="deit_small_patch16_224-cd65a155.pth"):
        backbones.deit_small("imagenet", None)
    with pytest.raises(MethodError, match="not found"):
        backbones.resnet50("imagenet", no_weight_caches / "nowhere.pth")
    with pytest.raises(MethodError, match="pretrained"):
        backbones.resnet50("imagenet21k", None)


def test_method_fit_reports_missing_weights(no_weight_caches, tmp_path):
    items = make_items(tmp_path / "img", 3)
    method = create_method("resnet50", recipe="quick", pretrained="imagenet")
    with pytest.raises(MethodError, match="ResNet-50 ImageNet weights not found"):
        method.fit(items, items.iloc[:0], make_ctx(tmp_path))


def test_weights_file_is_loaded_hashed_and_found_in_the_hub_cache(no_weight_caches, tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.resnet50(weights=None)
    no_weight_caches.mkdir(parents=True)
    path = no_weight_caches / "resnet50-0676ba61.pth"
    torch.save(reference.state_dict(), path)
    model, loaded = backbones.resnet50("imagenet", None)  # found in the (patched) hub cache
    assert loaded.path == path
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    for (name, a), b in zip(reference.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), name
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, wrong)
    with pytest.raises(MethodError, match="not ResNet-50 ImageNet weights"):
        backbones.resnet50("imagenet", wrong)


def test_deit_weights_load_at_another_image_size(tmp_path):
    import timm

    reference = timm.create_model("deit_small_patch16_224", pretrained=False)
    path = tmp_path / "deit.pth"
    torch.save({"model": reference.state_dict()}, path)  # the official files wrap it in "model"
    model, loaded = backbones.deit_small("none", path, img_size=32, num_classes=0)
    assert loaded.sha256 == backbones.sha256_file(path)
    assert torch.equal(model.blocks[0].attn.qkv.weight, reference.blocks[0].attn.qkv.weight)
    assert model.pos_embed.shape[1] == 1 + 4  # class token + 2 x 2 patches, resampled
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 384)


# --------------------------------------------------------------------------- data


def test_memory_crops_are_seeded_windows_of_the_image():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (20, 30, 6), dtype=np.uint8)
    source = MemoryImages({"a": image})
    first = source.batch(["a"] * 8, 8, np.random.default_rng(5))
    again = source.batch(["a"] * 8, 8, np.random.default_rng(5))
    assert first.shape == (8, 8, 8, 6) and np.array_equal(first, again)
    windows = {image[t : t + 8, l : l + 8].tobytes() for t in range(13) for l in range(23)}
    flipped = {image[t : t + 8, l : l + 8][:, ::-1].tobytes() for t in range(13) for l in range(23)}
    for crop in first:
        assert crop.tobytes() in windows | flipped
    unflipped = source.batch(["a"] * 8, 8, np.random.default_rng(5), flip=False)
    assert all(c.tobytes() in windows for c in unflipped)
    with pytest.raises(MethodError, match="smaller than"):
        source.batch(["a"], 25, np.random.default_rng(0))


def test_normalizer_matches_imagenet_normalisation():
    pixels = np.random.default_rng(1).integers(0, 256, (2, 4, 5, 3), dtype=np.uint8)
    out = Normalizer(torch.device("cpu"))(pixels)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    expected = ((pixels / 255.0 - mean) / std).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_predict_items_whole_image_and_seeded_crops():
    rng = np.random.default_rng(2)
    source = MemoryImages({f"k{i}": rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for i in range(5)})
    ids = [f"k{i}" for i in range(5)]
    forward = lambda x: x[:, 0].mean(dim=(1, 2))  # noqa: E731 - mean of the normalised red channel
    whole = predict_items(forward, source, ids, 16, 0, torch.device("cpu"), seed=0, batch_size=2)
    expected = [((resize_to(source.read_item(i), 16, 16)[..., 0] / 255.0 - 0.485) / 0.229).mean() for i in ids]
    np.testing.assert_allclose(whole, expected, rtol=1e-5)
    crops = predict_items(forward, source, ids, 16, 4, torch.device("cpu"), seed=0, batch_size=8)
    assert np.array_equal(crops, predict_items(forward, source, ids, 16, 4, torch.device("cpu"), seed=0, batch_size=8))
    assert not np.array_equal(crops, predict_items(forward, source, ids, 16, 4, torch.device("cpu"), seed=1, batch_size=8))


# --------------------------------------------------------------------------- schedules


def test_step_decay_divides_by_ten_at_milestones():
    schedule = StepDecay([10, 20, 30], 0.1)
    assert [schedule.factor(e) for e in (0, 9, 10, 19, 20, 30, 39)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.001, 0.001])


def test_warmup_plateau_schedule():
    schedule = WarmupPlateau(0.03, ((10, 0.001), (10, 0.005)), patience=20, factor=0.3, min_lr=5e-5)
    assert [schedule.rate(e) for e in (0, 9, 10, 19, 20)] == [0.001, 0.001, 0.005, 0.005, 0.03]
    stops = [schedule.end_epoch(e, 0.5 if e == 0 else 0.1) for e in range(39)]
    # the best epoch was the first; the 19 warm-up epochs after it do not count, 19 warm ones are not yet 20
    assert schedule.rate(39) == 0.03 and schedule.bad_epochs == 19 and not any(stops)
    assert not schedule.end_epoch(39, 0.1)
    assert schedule.current == pytest.approx(0.03 * 0.3) and schedule.bad_epochs == 0  # 20 epochs without gain once warm
    epoch = 40
    while not schedule.end_epoch(epoch, 0.1):
        epoch += 1
    assert schedule.current < 5e-5 <= schedule.current / 0.3


# --------------------------------------------------------------------------- training loop


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 1))

    def forward(self, x):
        return self.net(x).squeeze(1)


def _tiny_phase(model, epochs, n, evaluate=None):
    def loss(images, quality, epoch):
        value = torch.nn.functional.l1_loss(model(images), quality / 100)
        return value, {}

    return Phase(
        name="train", epochs=epochs, optimizer=torch.optim.Adam(model.parameters(), lr=0.05), schedule=StepDecay([2]),
        batches=lambda epoch, rng: [rng.permutation(n)[:4], rng.permutation(n)[:4]], loss=loss, train_modules=[model], evaluate=evaluate,
    )


def _tiny_data(n=8):
    rng = np.random.default_rng(0)
    ids = np.array([f"k{i}" for i in range(n)])
    source = MemoryImages({i: rng.integers(0, 256, (12, 12, 3), dtype=np.uint8) for i in ids})
    return TrainData(ids, rng.uniform(0, 100, n), source, 8)


def test_resume_continues_with_the_same_batches(tmp_path):
    data = _tiny_data()
    torch.manual_seed(0)
    straight = Tiny()
    initial = {k: v.clone() for k, v in straight.state_dict().items()}
    run_phase(_tiny_phase(straight, 3, 8), straight, data, make_ctx(tmp_path, "a"), torch.device("cpu"), "t", "fp")

    interrupted = Tiny()
    interrupted.load_state_dict(initial)
    ctx = make_ctx(tmp_path, "b")
    run_phase(_tiny_phase(interrupted, 2, 8), interrupted, data, ctx, torch.device("cpu"), "t", "fp")
    resumed = Tiny()
    result = run_phase(_tiny_phase(resumed, 3, 8), resumed, data, ctx, torch.device("cpu"), "t", "fp", resume=True)
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(MethodError, match="another configuration"):
        run_phase(_tiny_phase(Tiny(), 3, 8), Tiny(), data, ctx, torch.device("cpu"), "t", "other", resume=True)


def test_selection_keeps_the_best_validation_epoch(tmp_path):
    data = _tiny_data()
    scores = iter([0.1, 0.7, 0.3])
    model = Tiny()
    snapshots = []

    def evaluate():
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(scores)

    result = run_phase(_tiny_phase(model, 3, 8, evaluate), model, data, make_ctx(tmp_path, None), torch.device("cpu"), "t", "fp")
    assert result.best_epoch == 2 and result.best_metric == 0.7
    for name, value in model.state_dict().items():
        assert torch.equal(value, snapshots[1][name])


# --------------------------------------------------------------------------- resnet50


def test_resnet50_head_shape_and_steps_lower_the_loss():
    from methods.resnet50 import ResNet50Regressor

    torch.manual_seed(0)
    model = ResNet50Regressor(torchvision.models.resnet50(weights=None), dropout=0.0)
    assert isinstance(model.head[0], nn.Dropout) and model.head[1].out_features == 256 and model.head[3].out_features == 1
    images, quality = torch.randn(4, 3, 32, 32), torch.tensor([10.0, 30.0, 60.0, 90.0])
    assert model(images).shape == (4,)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(6):
        loss = torch.nn.functional.l1_loss(model(images), quality)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    with torch.no_grad():
        final = float(torch.nn.functional.l1_loss(model(images), quality))
    assert final < losses[0]


def test_resnet50_quick_fit_save_load_identical(tmp_path):
    items = make_items(tmp_path / "img", 12, size=(36, 36))
    ctx = make_ctx(tmp_path)
    method = create_method("resnet50", recipe="quick", pretrained="none", crop=32, image_size="36x36", epochs=1, test_crops=1)
    method.fit(items.iloc[:8], items.iloc[8:10], ctx)
    assert method.weights_sha256 is None
    assert (tmp_path / "run" / "checkpoints" / "train.pt").is_file()
    prediction = method.predict(items.iloc[10:], ctx)
    assert prediction.shape == (2,) and np.isfinite(prediction).all()
    method.save(tmp_path / "model")
    loaded = create_method("resnet50").load(tmp_path / "model")
    assert loaded.recipe == "quick" and loaded.crop == 32
    assert np.array_equal(loaded.predict(items.iloc[10:], ctx), prediction)


def test_fit_reads_crops_from_the_image_cache_and_records_the_weights_hash(tmp_path):
    from biqa_bench.datasets.registry import DatasetInfo, make_dataset
    from biqa_bench.imagecache import ImageCache
    from biqa_bench.nn.data import image_source

    items = make_items(tmp_path / "img", 8, size=(36, 40))
    relative = items.assign(path=[Path(p).name for p in items["path"]])
    dataset = make_dataset(DatasetInfo("tiny", "authentic", "MOS", True, (0.0, 100.0), needs_root=False), relative, tmp_path / "img")
    cache = ImageCache.open_or_build(dataset, size="original", workers=1, cache_root=tmp_path / "images")
    ctx = make_ctx(tmp_path)
    ctx.images = cache
    assert image_source(items, ctx, "source", 32) is cache  # zero-copy crops from the memmap
    assert isinstance(image_source(items, ctx, "source", 64), MemoryImages)  # too small: upscaled copies
    weights = tmp_path / "r50.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), weights)
    method = create_method("resnet50", recipe="quick", weights=str(weights), crop=32, image_size="source", epochs=1, test_crops=1)
    method.fit(items.iloc[:6], items.iloc[6:], ctx)
    assert method.weights_sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert np.isfinite(method.predict(items.iloc[6:], ctx)).all()


def test_checkpoints_are_throttled_but_the_last_epoch_is_always_saved(tmp_path, monkeypatch):
    import biqa_bench.nn.trainer as T

    saved: list[tuple[str, int | None]] = []
    real_save = T._save

    def counting_save(path, obj):
        saved.append((Path(path).name, obj.get("epoch_done") if "fingerprint" in obj else None))
        real_save(path, obj)

    monkeypatch.setattr(T, "_save", counting_save)
    data = _tiny_data()
    monkeypatch.setenv("BIQA_CHECKPOINT_EVERY_S", "3600")
    run_phase(_tiny_phase(Tiny(), 3, 8), Tiny(), data, make_ctx(tmp_path, "slow"), torch.device("cpu"), "t", "fp")
    assert [s for s in saved if s[0] == "train.pt"] == [("train.pt", 3)]  # only after the last epoch
    assert sum(name == "train-best.pt" for name, _ in saved) == 1  # the best state goes with it
    saved.clear()
    monkeypatch.setenv("BIQA_CHECKPOINT_EVERY_S", "0")
    run_phase(_tiny_phase(Tiny(), 3, 8), Tiny(), data, make_ctx(tmp_path, "every"), torch.device("cpu"), "t", "fp")
    assert [s for s in saved if s[0] == "train.pt"] == [("train.pt", 1), ("train.pt", 2), ("train.pt", 3)]
    monkeypatch.setenv("BIQA_CHECKPOINT_EVERY_S", "soon")
    with pytest.raises(MethodError, match="BIQA_CHECKPOINT_EVERY_S"):
        run_phase(_tiny_phase(Tiny(), 3, 8), Tiny(), data, make_ctx(tmp_path, "bad"), torch.device("cpu"), "t", "fp")


def test_paired_images_crop_and_flip_both_halves_alike():
    rng = np.random.default_rng(0)
    first = MemoryImages({f"d{i}": rng.integers(0, 255, (20, 30, 3), dtype=np.uint8) for i in range(4)})
    # each partner is its image + 1: any crop/flip mismatch between the halves breaks the equality
    second = MemoryImages({f"r{i}": first.read_item(f"d{i}") + 1 for i in range(4)})
    paired = PairedImages(first, second, {f"d{i}": f"r{i}" for i in range(4)})
    assert len(paired) == 4
    batch = paired.batch(["d0", "d1", "d2", "d3", "d0"], 8, np.random.default_rng(3), flip=True)
    assert batch.shape == (5, 8, 8, 6)
    np.testing.assert_array_equal(batch[..., 3:], batch[..., :3] + 1)
    with pytest.raises(MethodError, match="no partner"):
        paired.read_item("r0")
    small = PairedImages(first, MemoryImages({"r0": np.zeros((10, 30, 3), np.uint8)}), {"d0": "r0"})
    with pytest.raises(MethodError, match="differ in size"):
        small.read_item("d0")


class _FlipSpy(MemoryImages):
    def __init__(self, images):
        super().__init__(images)
        self.flips = []

    def batch(self, item_ids, crop, rng, flip=True):
        self.flips.append(flip)
        return super().batch(item_ids, crop, rng, flip=flip)


@pytest.mark.parametrize("flip", [True, False])
def test_training_batches_flip_only_when_the_data_says_so(tmp_path, flip):
    base = _tiny_data()
    spy = _FlipSpy(base.source.images)
    data = TrainData(base.item_ids, base.quality, spy, 8, flip=flip)
    model = Tiny()
    run_phase(_tiny_phase(model, 1, 8), model, data, make_ctx(tmp_path, "f"), torch.device("cpu"), "t", "fp")
    assert spy.flips == [flip, flip]  # two training batches, each drawn with the data's setting
    # with flips off, a crop is never mirrored: every crop of a left-to-right ramp increases
    ramp = MemoryImages({"r": np.tile(np.arange(12, dtype=np.uint8)[None, :, None], (12, 1, 3))})
    crops = ramp.batch(["r"] * 20, 8, np.random.default_rng(1), flip=False)
    assert (np.diff(crops[..., 0].astype(int), axis=2) > 0).all()


def test_crops_upscale_small_images_at_most_four_times():
    image = np.zeros((30, 40, 3), np.uint8)
    assert fit_size(image, None, 64).shape == (64, 85, 3)  # shorter side 30 -> 64, aspect kept
    assert fit_size(image, None, 120).shape == (120, 160, 3)  # exactly 4x
    with pytest.raises(MethodError, match="cannot give 121x121 crops"):
        fit_size(image, None, 121)  # before, -p crop=9999 upscaled every image to 9999 px and ran out of memory
