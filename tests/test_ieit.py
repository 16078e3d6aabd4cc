"""IEIT: selective enhancement (classical enhancers, selection rule, user hook), the bilateral
network, stage 2 freezing V1 and training V2 on low-quality items only, save/load."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from scipy import ndimage
from timm.models.vision_transformer import VisionTransformer

from methods._support import enhance
from biqa_bench.errors import MethodError
from biqa_bench.methods import Context, create_method
from biqa_bench.nn.backbones import LoadedWeights
from biqa_bench.nn.data import MemoryImages
from biqa_bench.nn.trainer import TrainData, run_phase
from methods import ieit
from methods.ieit import IEITNet, low_quality, make_stage1, make_stage2_backbone, make_stage2_regressor
from _deep_helpers import make_ctx, one_thread_tmp_env  # noqa: F401 (autouse fixture)


def tiny_vit(seed: int) -> VisionTransformer:
    torch.manual_seed(seed)
    return VisionTransformer(img_size=32, patch_size=16, embed_dim=24, depth=1, num_heads=2, num_classes=0)


def tiny_net() -> IEITNet:
    return IEITNet(tiny_vit(0), tiny_vit(1))


# --------------------------------------------------------------------------- enhancement


def test_flags_dark_and_blurred_images():
    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    dark = (sharp * 0.15).astype(np.uint8)
    blurred = ndimage.gaussian_filter(sharp.astype(float), sigma=(3, 3, 0)).astype(np.uint8)
    assert enhance.brightness(dark) < 0.25 <= enhance.brightness(sharp)
    assert enhance.sharpness(blurred) < 100 <= enhance.sharpness(sharp)
    found = enhance.SelectiveEnhancer(selection="always")
    assert found.candidate(sharp)[0] is None
    assert found.candidate(dark)[1:] == (True, False)
    assert found.candidate(blurred)[1:] == (False, True)


def test_low_light_enhancement_by_hand():
    grey = np.full((8, 8, 3), 40, dtype=np.uint8)  # uniform: the illumination is 40/255 everywhere
    out = enhance.enhance_low_light(grey)
    expected = np.clip(40 / 255 / (40 / 255) ** 0.8 * 255 + 0.5, 0, 255).astype(np.uint8)
    assert out.dtype == np.uint8 and out.shape == grey.shape and (out == expected).all()
    black = np.zeros((4, 4, 3), dtype=np.uint8)
    assert (enhance.enhance_low_light(black) == 0).all()  # the floor keeps the division finite


@pytest.mark.parametrize("deblur", [enhance.deblur_wiener, enhance.deblur_richardson_lucy])
def test_deblurring_brings_a_blurred_image_closer_to_the_sharp_one(deblur):
    rng = np.random.default_rng(1)
    sharp = ndimage.zoom(rng.uniform(0, 255, (12, 12, 3)), (4, 4, 1), order=1)  # smooth-ish content
    blurred = np.stack([ndimage.convolve(sharp[..., c], enhance.gaussian_psf(1.5), mode="reflect") for c in range(3)], axis=2)
    restored = deblur(blurred.astype(np.uint8)).astype(float)
    assert restored.shape == sharp.shape
    assert np.mean((restored - sharp) ** 2) < np.mean((blurred - sharp) ** 2)


def test_selection_rule_keeps_candidates_only_where_confidence_rises():
    rng = np.random.default_rng(2)
    dark = (rng.integers(0, 256, (32, 32, 3)) * 0.1).astype(np.uint8)
    sharp = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    brighter_is_better = lambda images: np.array([enhance.brightness(i) for i in images])  # noqa: E731
    darker_is_better = lambda images: -brighter_is_better(images)  # noqa: E731
    kept = enhance.SelectiveEnhancer(confidence=brighter_is_better)([dark, sharp])
    assert kept[0].kept and kept[0].confidence_enhanced > kept[0].confidence_original
    assert not kept[1].kept and kept[1].image is sharp
    refused = enhance.SelectiveEnhancer(confidence=darker_is_better)([dark])
    assert not refused[0].kept and np.array_equal(refused[0].image, dark)
    assert not enhance.SelectiveEnhancer(selection="never")([dark])[0].kept
    assert enhance.SelectiveEnhancer(selection="always")([dark])[0].kept
    with pytest.raises(MethodError, match="needs ImageNet weights"):
        enhance.SelectiveEnhancer(selection="classifier")


def test_top5_confidence_of_a_classifier():
    torch.manual_seed(0)
    classifier = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 10))
    images = [np.random.default_rng(k).integers(0, 256, (20, 30, 3), dtype=np.uint8) for k in range(3)]
    scores = enhance.Top5Confidence(classifier, size=16)(images)
    from biqa_bench.nn.data import Normalizer, resize_to

    with torch.no_grad():
        logits = classifier(Normalizer(torch.device("cpu"))(np.stack([resize_to(i, 16, 16) for i in images])))
    expected = np.sort(torch.softmax(logits, 1).numpy(), axis=1)[:, -5:].sum(1)
    np.testing.assert_allclose(scores, expected, rtol=1e-6)


def test_user_enhancer_hook(tmp_path):
    module = tmp_path / "my_enhancers.py"
    module.write_text(
        "import numpy as np\n"
        "def invert(image):\n    return 255 - image\n"
        "def wrong(image):\n    return image.astype('float32')\n"
    )
    invert = enhance.load_enhancer(f"{module}:invert")
    image = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    assert np.array_equal(invert(image), 255 - image)
    with pytest.raises(MethodError, match="uint8"):
        enhance.load_enhancer(f"{module}:wrong")(image)
    with pytest.raises(MethodError, match="no callable"):
        enhance.load_enhancer(f"{module}:missing")
    with pytest.raises(MethodError, match="module:function"):
        enhance.load_enhancer("just_a_name")
    assert enhance.load_enhancer("methods._support.enhance:enhance_low_light")(image).shape == image.shape


# --------------------------------------------------------------------------- network and stages


def test_forward_shapes_with_deit_small():
    method = create_method("ieit", recipe="quick", pretrained="none")
    model, loaded = method.build_model(method.settings(), "none", None)
    assert loaded.sha256 is None and model.v1.num_features == 384
    assert [l.out_features for l in model.r1.layers if hasattr(l, "out_features")] == [576, 288, 1]
    with torch.no_grad():
        s1, s2 = model.eval()(torch.randn(2, 6, 32, 32))
    assert s1.shape == (2,) and s2.shape == (2,)


def _data(high_noise_seed: int | None = None) -> TrainData:
    rng = np.random.default_rng(0)
    quality = np.array([10.0, 20.0, 24.9, 60.0, 80.0, 95.0])
    ids = np.array([f"q{i}" for i in range(len(quality))])
    images = {i: rng.integers(0, 256, (36, 36, 6), dtype=np.uint8) for i in ids}
    if high_noise_seed is not None:  # change every high-quality item's pixels
        other = np.random.default_rng(high_noise_seed)
        for i, q in zip(ids, quality):
            if q >= 25:
                images[i] = other.integers(0, 256, (36, 36, 6), dtype=np.uint8)
    return TrainData(ids, quality, MemoryImages(images), 32)


SETTINGS = dict(ieit.IEIT.RECIPES["quick"], epochs=2, batch_size=2, max_steps=None)


def _stage2(data: TrainData, tmp_path: Path) -> IEITNet:
    model = tiny_net()
    phase = make_stage2_backbone(model, data, SETTINGS, lambda: float("nan"))
    ctx = Context(device="cpu", seed=5, work_dir=None, log=logging.getLogger("test"))
    run_phase(phase, model, data, ctx, torch.device("cpu"), "ieit", "fp")
    return model


def test_low_quality_is_the_lowest_quarter_of_the_range():
    np.testing.assert_array_equal(low_quality(np.array([0.0, 24.99, 25.0, 80.0])), [True, True, False, False])


def test_stage2_freezes_v1_and_trains_v2_from_low_quality_items_only(tmp_path):
    before = tiny_net().state_dict()
    model = _stage2(_data(), tmp_path)
    after = model.state_dict()
    for name in after:
        if name.startswith(("v1.", "r1.")):
            assert torch.equal(before[name], after[name]), name  # V1 (and R1) bit-identical
    assert any(not torch.equal(before[n], after[n]) for n in after if n.startswith("v2."))
    assert any(not torch.equal(before[n], after[n]) for n in after if n.startswith("r2."))
    # different pixels for the high-quality items change nothing: V2 never saw them
    other = _stage2(_data(high_noise_seed=9), tmp_path).state_dict()
    for name in after:
        assert torch.equal(after[name], other[name]), name


def test_stage2_regressor_trains_r1_only_on_detached_features():
    data = _data()
    model = tiny_net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    phase = make_stage2_regressor(model, data, SETTINGS, lambda: float("nan"))
    ctx = Context(device="cpu", seed=5, work_dir=None, log=logging.getLogger("test"))
    run_phase(phase, model, data, ctx, torch.device("cpu"), "ieit", "fp")
    after = model.state_dict()
    assert all(torch.equal(before[n], after[n]) for n in after if not n.startswith("r1."))
    assert any(not torch.equal(before[n], after[n]) for n in after if n.startswith("r1."))


def test_stage1_steps_lower_the_loss_on_a_tiny_batch():
    data = _data()
    model = tiny_net()
    phase = make_stage1(model, data, dict(SETTINGS, lr1=0.01), lambda: float("nan"))
    phase.schedule.start_epoch(phase.optimizer, 0)
    from biqa_bench.nn.data import Normalizer

    pairs = Normalizer(torch.device("cpu"), 6)(np.stack([data.source.read_item(i)[:32, :32] for i in data.item_ids]))
    quality = torch.tensor(data.quality, dtype=torch.float32)
    losses = []
    for _ in range(8):
        loss, parts = phase.loss(pairs, quality, 0)
        phase.optimizer.zero_grad()
        loss.backward()
        phase.optimizer.step()
        losses.append(float(loss.detach()))
    assert set(parts) == {"l1_s1", "l1_s2"} and losses[-1] < losses[0]


def make_items(folder: Path, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        quality = float(np.linspace(5, 95, n)[i])
        image = (rng.integers(0, 256, (40, 40, 3)) * (0.1 if quality < 25 else 1.0)).astype(np.uint8)
        path = folder / f"{i}.png"
        Image.fromarray(image).save(path)
        rows.append({"item_id": f"e{i}", "path": str(path), "quality": quality, "score": quality, "content_id": f"e{i}"})
    return pd.DataFrame(rows)


def test_quick_fit_save_load_identical(tmp_path, monkeypatch):
    seeds = iter(range(100))
    monkeypatch.setattr(ieit.IEIT, "make_backbone", lambda self, *a, **k: (tiny_vit(next(seeds)), LoadedWeights(None, None)))
    items = make_items(tmp_path / "img", 12)
    ctx = make_ctx(tmp_path, seed=2)
    method = create_method("ieit", recipe="quick", pretrained="none", selection="always")
    method.fit(items.iloc[:8], items.iloc[8:10], ctx)
    assert [r["name"] for r in method._history] == ["stage1", "stage2-v2", "stage2-r1"]
    assert method._enhancement_log["kept"] >= 1  # the dark images were enhanced
    prediction = method.predict(items.iloc[10:], ctx)
    method.save(tmp_path / "model")
    loaded = create_method("ieit").load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict(items.iloc[10:], ctx), prediction)


def test_without_imagenet_weights_selection_falls_back_to_originals(tmp_path, monkeypatch):
    monkeypatch.setattr(ieit.IEIT, "make_backbone", lambda self, *a, **k: (tiny_vit(0), LoadedWeights(None, None)))
    items = make_items(tmp_path / "img", 4)
    method = create_method("ieit", recipe="quick", pretrained="none")
    ctx = make_ctx(tmp_path, None, seed=2)
    source = method.prepare_source(items, ctx, method.settings(), torch.device("cpu"))
    assert method._enhancement_log["selection"] == "never" and method._enhancement_log["kept"] == 0
    pair = source.read_item("e0")
    assert pair.shape == (40, 40, 6) and np.array_equal(pair[..., :3], pair[..., 3:])


# --------------------------------------------------------------------------- enhancement cache and workers


def enhancement_items(folder: Path, n: int = 8) -> pd.DataFrame:
    """Dark, blurred, dark-and-blurred and sharp 48 x 64 images, in turn."""
    rng = np.random.default_rng(4)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        image = rng.integers(0, 256, (48, 64, 3)).astype(float)
        if i % 4 in (1, 2):
            image = ndimage.gaussian_filter(image, sigma=(2.5, 2.5, 0))
        if i % 4 in (0, 2):
            image = image * 0.15
        path = folder / f"{i}.png"
        Image.fromarray(image.astype(np.uint8)).save(path)
        rows.append({"item_id": f"x{i}", "path": str(path), "quality": 10.0 * i, "score": 10.0 * i, "content_id": f"x{i}"})
    return pd.DataFrame(rows)


def count_proposals(monkeypatch) -> list[int]:
    """Count the images the enhancer examines in this process (cache misses computed here)."""
    calls = [0]
    propose = enhance.SelectiveEnhancer.propose

    def counted(self, image):
        calls[0] += 1
        return propose(self, image)

    monkeypatch.setattr(enhance.SelectiveEnhancer, "propose", counted)
    return calls


def pairs(source: MemoryImages) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in source.images.items()}


def prepare(items, ctx, **params):
    method = create_method("ieit", recipe="quick", pretrained="none", **params)
    source = method.prepare_source(items, ctx, method.settings(), torch.device("cpu"))
    return method, pairs(source)


def test_second_prepare_source_reuses_the_cached_enhancements(tmp_path, monkeypatch):
    monkeypatch.setenv("BIQA_CACHE", str(tmp_path / "cache"))
    items = enhancement_items(tmp_path / "img")
    ctx = make_ctx(tmp_path, None)
    calls = count_proposals(monkeypatch)
    first, before = prepare(items, ctx, selection="always", enhance_workers=1)
    assert calls[0] == len(items) and first._enhancement_stats["computed"] == len(items)
    assert first._enhancement_log["kept"] == 6 and first._enhancement_log["flagged"] == 6
    entries = list((tmp_path / "cache" / "enhance").rglob("*.npz"))
    assert len(entries) == len(items)
    assert len(list((tmp_path / "cache" / "enhance").glob("*/key.json"))) == 1

    second, after = prepare(items, ctx, selection="always", enhance_workers=1)  # a new instance: the next split
    assert calls[0] == len(items), "nothing recomputed"
    assert second._enhancement_stats == {"cached": len(items), "computed": 0, "workers": 1, "unsaved": 0}
    assert second._enhancement_log == first._enhancement_log
    assert before.keys() == after.keys() and all(np.array_equal(before[k], after[k]) for k in before)
    # the stored images are E at the working size: the dark images' E differs from I
    assert not np.array_equal(after["x0"][..., :3], after["x0"][..., 3:])
    assert np.array_equal(after["x3"][..., :3], after["x3"][..., 3:])  # sharp: E = I


@pytest.mark.parametrize("change", [dict(dark_threshold=0.3), dict(deblur="richardson_lucy"), dict(enhance_size="40x40"),
                                    dict(selection="never")])
def test_a_changed_setting_misses_the_cache(tmp_path, monkeypatch, change):
    monkeypatch.setenv("BIQA_CACHE", str(tmp_path / "cache"))
    items = enhancement_items(tmp_path / "img", 4)
    ctx = make_ctx(tmp_path, None)
    prepare(items, ctx, selection="always", enhance_workers=1)
    changed, _ = prepare(items, ctx, **{"selection": "always", "enhance_workers": 1, **change})
    assert changed._enhancement_stats["computed"] == len(items) and changed._enhancement_stats["cached"] == 0
    assert len(list((tmp_path / "cache" / "enhance").glob("*/key.json"))) == 2


def test_an_edited_user_hook_misses_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BIQA_CACHE", str(tmp_path / "cache"))
    hook = tmp_path / "hooks.py"
    hook.write_text("def brighten(image):\n    return (image // 2 + 100).astype(image.dtype)\n")
    items = enhancement_items(tmp_path / "img", 4)
    ctx = make_ctx(tmp_path, None)
    params = dict(selection="always", enhance_workers=1, low_light_enhancer=f"{hook}:brighten")
    assert prepare(items, ctx, **params)[0]._enhancement_stats["computed"] == 4
    assert prepare(items, ctx, **params)[0]._enhancement_stats["cached"] == 4
    hook.write_text("def brighten(image):\n    return (image // 2 + 90).astype(image.dtype)\n")
    assert prepare(items, ctx, **params)[0]._enhancement_stats["computed"] == 4


def tiny_classifier() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 10))


@pytest.mark.parametrize("selection", ["always", "classifier"])
def test_worker_processes_give_the_same_pairs(tmp_path, monkeypatch, selection):
    monkeypatch.setattr(enhance, "POOL_MIN_MISSES", 0)  # a pool even for a handful of images
    hook = tmp_path / "hooks.py"  # a user hook, loaded by name in the workers
    hook.write_text("def brighten(image):\n    return (image // 2 + 100).astype(image.dtype)\n")
    items = enhancement_items(tmp_path / "img", 12)
    ctx = make_ctx(tmp_path, None)
    results = {}
    for workers in (1, 2):
        monkeypatch.setenv("BIQA_CACHE", str(tmp_path / f"cache{workers}"))
        method = create_method("ieit", recipe="quick", pretrained="none", selection=selection, enhance_workers=workers,
                               low_light_enhancer=f"{hook}:brighten")
        if selection == "classifier":
            method._classifier = tiny_classifier()
        source = method.prepare_source(items, ctx, method.settings(), torch.device("cpu"))
        assert method._enhancement_stats["workers"] == workers and method._enhancement_stats["computed"] == len(items)
        results[workers] = (pairs(source), dict(method._enhancement_log))
    (one, log_one), (two, log_two) = results[1], results[2]
    assert log_one == log_two and log_one["selection"] == selection and log_one["flagged"] == 9
    assert one.keys() == two.keys() and all(np.array_equal(one[k], two[k]) for k in one)


def test_a_broken_worker_pool_leaves_the_work_to_this_process(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("BIQA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(enhance, "POOL_MIN_MISSES", 0)
    hook = tmp_path / "hooks.py"  # kills any worker process that runs it; fine in this one
    hook.write_text(
        "import multiprocessing, os\n"
        "def invert(image):\n"
        "    if multiprocessing.parent_process() is not None:\n"
        "        os._exit(3)\n"
        "    return 255 - image\n"
    )
    items = enhancement_items(tmp_path / "img", 8)
    ctx = make_ctx(tmp_path, None)
    with caplog.at_level(logging.WARNING, logger="test"):
        method, pooled = prepare(items, ctx, selection="always", enhance_workers=2, low_light_enhancer=f"{hook}:invert")
    assert "BrokenProcessPool" in method._enhancement_stats["pool_error"] and method._enhancement_stats["computed"] == 8
    assert "enhanced in this process" in caplog.text
    monkeypatch.setenv("BIQA_CACHE", str(tmp_path / "cache-here"))
    _, here = prepare(items, ctx, selection="always", enhance_workers=1, low_light_enhancer=f"{hook}:invert")
    assert all(np.array_equal(pooled[k], here[k]) for k in here)


def test_a_corrupt_cache_entry_is_recomputed(tmp_path, monkeypatch):
    monkeypatch.setenv("BIQA_CACHE", str(tmp_path / "cache"))
    items = enhancement_items(tmp_path / "img", 4)
    ctx = make_ctx(tmp_path, None)
    _, before = prepare(items, ctx, selection="always", enhance_workers=1)
    entries = sorted((tmp_path / "cache" / "enhance").rglob("*.npz"), key=lambda p: p.stat().st_size)
    entries[-1].write_bytes(entries[-1].read_bytes()[:-100])  # truncated (an entry with an image)
    raw = bytearray(entries[-2].read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one flipped byte: the zip CRC catches it
    entries[-2].write_bytes(bytes(raw))
    entries[0].write_bytes(b"not an npz")
    method, after = prepare(items, ctx, selection="always", enhance_workers=1)
    assert method._enhancement_stats["computed"] == 3 and method._enhancement_stats["cached"] == 1
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert prepare(items, ctx, selection="always", enhance_workers=1)[0]._enhancement_stats["cached"] == 4  # rewritten


@pytest.mark.parametrize("value", [0, 2.5, "4", True])
def test_bad_enhance_workers_is_a_one_line_error(tmp_path, value):
    items = enhancement_items(tmp_path / "img", 1)
    with pytest.raises(MethodError, match="enhance_workers must be a whole number") as info:
        prepare(items, make_ctx(tmp_path, None), selection="always", enhance_workers=value)
    assert "\n" not in str(info.value)


def test_a_threshold_that_is_not_a_number_is_a_one_line_error(tmp_path):
    items = enhancement_items(tmp_path / "img", 1)
    with pytest.raises(MethodError, match="dark_threshold must be a number"):
        prepare(items, make_ctx(tmp_path, None), selection="always", dark_threshold="dim")


def test_enhance_workers_is_recorded_but_not_part_of_the_run_fingerprint():
    method = create_method("ieit", enhance_workers=3)
    assert method.get_params()["enhance_workers"] == 3
    assert "enhance_workers" not in method.get_params_for_fingerprint()


# --------------------------------------------------------------------------- the paper's numbers


def test_paper_recipe_and_schedule_follow_section_iv_a():
    paper = ieit.IEIT.RECIPES["paper"]
    assert (paper["crop"], paper["image_size"], paper["lam"]) == (224, "244x244", 1.0)
    assert (paper["patience"], paper["factor"], paper["min_lr"]) == (20, 0.3, 5e-5)
    # stage 1: 0.001 x 10 epochs, 0.005 x 10, then 0.03; stage 2: 0.001, 0.003, then 0.01
    for stage, rates in ((1, [0.001] * 10 + [0.005] * 10 + [0.03]), (2, [0.001] * 10 + [0.003] * 10 + [0.01])):
        schedule = ieit._schedule(paper, stage)
        assert [schedule.rate(e) for e in range(21)] == rates
    # no improvement after epoch 1: the rate is cut to 0.03 * 0.3 after 20 bad epochs past warm-up
    # (epochs 20..39; the warm-up epochs 1..19 do not count)
    schedule = ieit._schedule(paper, 1)
    stops = [schedule.end_epoch(e, 1.0 if e == 0 else 0.0) for e in range(39)]
    assert not any(stops) and schedule.rate(39) == 0.03
    assert not schedule.end_epoch(39, 0.0) and schedule.rate(40) == pytest.approx(0.009)
    # 0.03 * 0.3**5 = 7.29e-5 >= 5e-5 goes on; 0.03 * 0.3**6 = 2.187e-5 < 5e-5 ends the stage
    schedule.current = 0.03 * 0.3**5
    schedule.bad_epochs = 19
    assert schedule.end_epoch(40, 0.0) and schedule.current == pytest.approx(2.187e-5)


def test_regressor_widths_and_fusion_by_concatenation():
    model = tiny_net()  # 24-d features: R1 sees f1 (+) f2 (+) f3 = 72, R2 sees f2 (+) f3 = 48
    widths = lambda r: [(l.in_features, l.out_features) for l in r.layers if isinstance(l, torch.nn.Linear)]  # noqa: E731
    assert widths(model.r1) == [(72, 36), (36, 18), (18, 1)]
    assert widths(model.r2) == [(48, 24), (24, 12), (12, 1)]
    pairs = torch.randn(3, 6, 32, 32)
    with torch.no_grad():
        f1, f2, f3 = model.v1(pairs[:, :3]), model.v2(pairs[:, :3]), model.v2(pairs[:, 3:])
        s1, s2 = model(pairs)
        torch.testing.assert_close(s1, model.r1(torch.cat([f1, f2, f3], 1)))
        torch.testing.assert_close(s2, model.r2(torch.cat([f2, f3], 1)))


def test_stage_losses_are_the_papers_l1_terms():
    data = _data()
    model = tiny_net()
    pairs = torch.randn(4, 6, 32, 32)
    quality = torch.tensor([10.0, 20.0, 60.0, 90.0])
    with torch.no_grad():
        s1, s2 = model(pairs)
    l1, l2 = (quality - s1).abs().mean(), (quality - s2).abs().mean()
    for lam in (1.0, 2.5):  # Algorithm 1: l_t = l1 + lambda * l2
        loss, _ = make_stage1(model, data, dict(SETTINGS, lam=lam), lambda: float("nan")).loss(pairs, quality, 0)
        torch.testing.assert_close(loss.detach(), l1 + lam * l2)
    loss, _ = make_stage2_backbone(model, data, SETTINGS, lambda: float("nan")).loss(pairs, quality, 0)
    torch.testing.assert_close(loss.detach(), l2)  # eq. 2 (the sampler gives it low-quality rows only)
    loss, _ = make_stage2_regressor(model, data, SETTINGS, lambda: float("nan")).loss(pairs, quality, 0)
    torch.testing.assert_close(loss.detach(), l1)  # eq. 6
    assert loss.requires_grad and not any(p.requires_grad for p in model.v2.parameters())
