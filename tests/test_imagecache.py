"""The decode-once image cache: read-back, staleness, partial builds, parallel builds, crops."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from biqa_bench.datasets.registry import DatasetInfo, make_dataset
from biqa_bench.errors import BiqaError, DatasetError
from biqa_bench.imagecache import ImageCache, decode_resized, parse_size
from biqa_bench.methods import Context

INFO = DatasetInfo(name="toy", kind="authentic", score_type="MOS", higher_is_better=True, score_range=(0, 100))
SHAPES = [(120, 160), (90, 70), (64, 64), (200, 96), (75, 133), (48, 300)]  # (h, w)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("BIQA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("BIQA_CONFIG", str(tmp_path / "config.json"))


def _texture(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / max(w - 1, 1), yy * 255 / max(h - 1, 1), (xx + yy) % 256], axis=-1)
    return np.clip(base + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)


def _make(root, shapes=SHAPES, gray_index: int | None = 2):
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for k, (h, w) in enumerate(shapes):
        image = Image.fromarray(_texture(h, w, k))
        if k == gray_index:
            name = f"img{k}.png"
            image.convert("L").save(root / name)
        elif k % 2:
            name = f"sub/img{k}.JPG"
            (root / "sub").mkdir(exist_ok=True)
            image.save(root / name, quality=90)
        else:
            name = f"img{k}.bmp"
            image.save(root / name)
        rows.append({"item_id": f"i{k}", "path": name, "score": 10.0 * k})
    return make_dataset(INFO, pd.DataFrame(rows), root)


def _reference(path, size):
    """Independent reference: decode with PIL, resize the way the size spec says."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    w, h = rgb.size
    if size == "original":
        return np.asarray(rgb)
    if isinstance(size, tuple):
        return np.asarray(rgb.resize((size[1], size[0]), Image.Resampling.BICUBIC))
    short = int(size[5:])
    if min(w, h) <= short:
        return np.asarray(rgb)
    if w <= h:
        target = (short, round(h * short / w))
    else:
        target = (round(w * short / h), short)
    return np.asarray(rgb.resize(target, Image.Resampling.BICUBIC))


@pytest.mark.parametrize("size", ["original", "short64", (50, 40)])
def test_read_back_equals_direct_decode_and_resize(tmp_path, size):
    dataset = _make(tmp_path / "data")
    cache = ImageCache.open_or_build(dataset, size=size, workers=1)
    assert len(cache) == len(SHAPES)
    for path, item_id in zip(dataset.with_abspaths()["path"], dataset.items["item_id"]):
        expected = _reference(path, size)
        got = cache.read(path)
        assert got.dtype == np.uint8 and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(cache.read_item(item_id), expected)
    if size == "short64":
        for k, original in enumerate(SHAPES):  # shorter side 64, or kept if already smaller
            assert min(cache.read_item(f"i{k}").shape[:2]) == min(64, *original)
    if isinstance(size, tuple):
        assert cache.as_array().shape == (len(SHAPES), 50, 40, 3)


def test_reads_are_zero_copy_read_only_views(tmp_path):
    dataset = _make(tmp_path / "data")
    cache = ImageCache.open_or_build(dataset, size="original", workers=1)
    image = cache.read_item("i0")
    assert np.shares_memory(image, cache.pixels)
    assert not image.flags.writeable


def test_context_reads_through_the_cache_and_misses_fall_back_to_the_file(tmp_path):
    dataset = _make(tmp_path / "data")
    cache = ImageCache.open_or_build(dataset, size="short64", workers=1)
    ctx = Context(images=cache)
    first = dataset.with_abspaths()["path"][0]
    assert np.shares_memory(ctx.read_image(first), cache.pixels)
    # relative paths and un-normalised absolute paths find the same entry
    assert dataset.items["path"][0] in cache
    assert str(dataset.root / "sub" / ".." / dataset.items["path"][0]) in cache
    outside = tmp_path / "outside.png"
    Image.fromarray(_texture(100, 150, 99)).save(outside)
    assert outside not in cache
    np.testing.assert_array_equal(ctx.read_image(outside), _reference(outside, "short64"))


def test_second_open_reuses_the_cache(tmp_path):
    dataset = _make(tmp_path / "data")
    first = ImageCache.open_or_build(dataset, size="short64", workers=1)
    calls = []
    second = ImageCache.open_or_build(dataset, size="short64", workers=1, progress=lambda d, t: calls.append((d, t)))
    assert second.folder == first.folder
    assert second.meta["built_at"] == first.meta["built_at"]
    assert calls == [(len(SHAPES), len(SHAPES))]


def test_changed_items_or_size_give_a_fresh_cache(tmp_path):
    dataset = _make(tmp_path / "data")
    full = ImageCache.open_or_build(dataset, size="short64", workers=1)
    fewer = make_dataset(INFO, dataset.items.iloc[1:], dataset.root)
    smaller = ImageCache.open_or_build(fewer, size="short64", workers=1)
    assert smaller.folder != full.folder and len(smaller) == len(SHAPES) - 1
    with pytest.raises(DatasetError):
        smaller.read_item("i0")
    other_size = ImageCache.open_or_build(dataset, size="short32", workers=1)
    assert other_size.folder != full.folder
    assert min(other_size.read_item("i0").shape[:2]) == 32


def test_replaced_file_makes_the_cache_stale(tmp_path):
    dataset = _make(tmp_path / "data")
    old = ImageCache.open_or_build(dataset, size="original", workers=1)
    path = dataset.abspath(dataset.items["path"][0])
    replacement = _texture(*SHAPES[0], seed=1234)
    Image.fromarray(replacement).save(path)
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    new = ImageCache.open_or_build(dataset, size="original", workers=1)
    assert new.folder == old.folder
    assert new.meta["image_fingerprint"] != old.meta["image_fingerprint"]
    np.testing.assert_array_equal(new.read_item("i0"), replacement)


def test_partial_build_is_never_used(tmp_path):
    dataset = _make(tmp_path / "data")

    def crash(done, total):
        if done >= 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ImageCache.open_or_build(dataset, size="original", workers=1, progress=crash)
    images = tmp_path / "cache" / "images"
    assert not [p for p in images.iterdir() if not p.name.startswith(".")]  # nothing in place
    assert not list(images.glob(".partial-*"))  # and the temp folder is cleaned up
    # a crashed process's leftover (dead pid) is swept; a truncated cache is rebuilt, not read
    cache = ImageCache.open_or_build(dataset, size="original", workers=1)
    leftover = images / f".partial-{cache.folder.name}-999999999-deadbeef"
    leftover.mkdir()
    with open(cache.folder / "pixels.u8", "r+b") as handle:
        handle.truncate(cache.nbytes // 2)
    rebuilt = ImageCache.open_or_build(dataset, size="original", workers=1)
    assert not leftover.exists()
    np.testing.assert_array_equal(rebuilt.read_item("i5"), _reference(dataset.abspath(dataset.items["path"][5]), "original"))
    # a cache without its completion record is not a cache
    meta = json.loads((rebuilt.folder / "meta.json").read_text())
    meta["complete"] = False
    (rebuilt.folder / "meta.json").write_text(json.dumps(meta))
    again = ImageCache.open_or_build(dataset, size="original", workers=1)
    assert again.meta["complete"] is True and again.meta["built_at"] >= meta["built_at"]


def test_parallel_build_equals_serial_build(tmp_path):
    shapes = [(40 + 3 * k, 50 + 5 * (k % 7)) for k in range(40)]
    dataset = _make(tmp_path / "data", shapes=shapes, gray_index=None)
    calls = []
    parallel = ImageCache.open_or_build(
        dataset, size="short32", workers=2, progress=lambda d, t: calls.append((d, t)), cache_root=tmp_path / "par"
    )
    serial = ImageCache.open_or_build(dataset, size="short32", workers=1, cache_root=tmp_path / "ser")
    assert (parallel.folder / "pixels.u8").read_bytes() == (serial.folder / "pixels.u8").read_bytes()
    np.testing.assert_array_equal(parallel.offsets, serial.offsets)
    assert calls[0] == (0, 40) and calls[-1] == (40, 40)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_batch_shapes_determinism_and_crops_come_from_the_image(tmp_path):
    dataset = _make(tmp_path / "data", gray_index=None)
    cache = ImageCache.open_or_build(dataset, size="original", workers=1)
    ids = ["i0", "i1", "i3", "i0"]
    a = cache.batch(ids, crop=40, rng=7)
    b = cache.batch(ids, crop=40, rng=np.random.default_rng(7))
    c = cache.batch(ids, crop=40, rng=8)
    assert a.shape == (4, 40, 40, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # every crop is a window of its image, possibly mirrored
    for row, item_id in zip(a, ids):
        image = cache.read_item(item_id)
        found = False
        for candidate in (row, row[:, ::-1]):
            h, w = image.shape[:2]
            for top in range(h - 40 + 1):
                hits = np.flatnonzero((image[top, : w - 40 + 1, 0] == candidate[0, 0, 0]))
                for left in hits:
                    if np.array_equal(image[top : top + 40, left : left + 40], candidate):
                        found = True
                        break
                if found:
                    break
            if found:
                break
        assert found
    rect = cache.batch(["i1"], crop=(30, 20), rng=0, flip=False)
    assert rect.shape == (1, 30, 20, 3)
    with pytest.raises(BiqaError, match="smaller than"):
        cache.batch(["i5"], crop=64, rng=0)  # i5 is 48 pixels tall


def test_batch_flip_rate_and_tensor_path(tmp_path):
    torch = pytest.importorskip("torch")
    dataset = _make(tmp_path / "data", shapes=[(32, 32)], gray_index=None)
    cache = ImageCache.open_or_build(dataset, size="original", workers=1)
    image = cache.read_item("i0")
    crops = cache.batch(["i0"] * 400, crop=32, rng=3)
    mirrored = np.array([np.array_equal(c, image[:, ::-1]) for c in crops])
    assert all(np.array_equal(c, image) or m for c, m in zip(crops, mirrored))
    assert 150 < mirrored.sum() < 250
    tensor = cache.batch(["i0", "i0"], crop=16, rng=1, as_tensor=True)
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.uint8 and tuple(tensor.shape) == (2, 16, 16, 3)
    np.testing.assert_array_equal(tensor.numpy(), cache.batch(["i0", "i0"], crop=16, rng=1))


def test_fixed_size_whole_batch_and_pickling(tmp_path):
    import pickle

    dataset = _make(tmp_path / "data")
    cache = ImageCache.open_or_build(dataset, size=(24, 36), workers=1)
    whole = cache.batch(["i2", "i4"], crop=None, rng=0, flip=False)
    np.testing.assert_array_equal(whole, cache.as_array()[[2, 4]])
    _ = cache.pixels  # open the map, then pickle: the copy reopens it lazily
    clone = pickle.loads(pickle.dumps(cache))
    np.testing.assert_array_equal(clone.read_item("i3"), cache.read_item("i3"))


def test_broken_and_missing_images_are_named(tmp_path):
    dataset = _make(tmp_path / "data", gray_index=None)
    jpeg = dataset.abspath(dataset.items["path"][1])
    data = open(jpeg, "rb").read()
    open(jpeg, "wb").write(data[: len(data) // 2])  # truncated JPEG: header fine, decode fails
    with pytest.raises(DatasetError, match=r"img1\.JPG.*biqa datasets check.*--skip-broken"):
        ImageCache.open_or_build(dataset, size="original", workers=1)
    with pytest.raises(DatasetError, match=r"img1\.JPG"):
        decode_resized(jpeg)
    os.remove(dataset.abspath(dataset.items["path"][3]))
    with pytest.raises(DatasetError, match=r"not found.*img3\.JPG"):
        ImageCache.open_or_build(dataset, size="original", workers=2)
    images = tmp_path / "cache" / "images"
    assert not list(images.glob(".partial-*"))


def test_size_specs():
    assert parse_size("short512").target(1024, 768) == (683, 512)
    assert parse_size("short512").target(768, 1024) == (512, 683)
    assert parse_size("short512").target(500, 500) == (500, 500)  # never upscaled
    assert parse_size((384, 512)).target(1024, 768) == (512, 384)
    assert parse_size("384x512") == parse_size([384, 512])
    assert parse_size("original").target(7, 9) == (7, 9)
    for bad in ["short", "short0", "big", (0, 4), (2.5, 3), "3x"]:
        with pytest.raises(BiqaError, match="not understood"):
            parse_size(bad)


def test_draft_decoding_is_a_separate_cache_close_to_the_full_decode(tmp_path):
    dataset = _make(tmp_path / "data", shapes=[(90, 70), (400, 600)], gray_index=None)  # i1 is a JPEG
    exact = ImageCache.open_or_build(dataset, size="short96", workers=1)
    draft = ImageCache.open_or_build(dataset, size="short96", workers=1, draft=True)
    assert draft.folder != exact.folder and draft.meta["draft"] is True
    a, b = exact.read_item("i1").astype(int), draft.read_item("i1").astype(int)
    assert a.shape == b.shape == (96, 144, 3)
    assert 0 < np.abs(a - b).mean() < 8  # a reduced-scale DCT decode, then the same resize
    np.testing.assert_array_equal(exact.read_item("i0"), draft.read_item("i0"))  # BMP: no draft mode
    jpeg = dataset.abspath(dataset.items["path"][1])
    np.testing.assert_array_equal(draft.read(jpeg), decode_resized(jpeg, "short96", draft=True))


def _build_in_process(dataset, cache_root):
    cache = ImageCache.open_or_build(dataset, size="short32", workers=1, cache_root=cache_root)
    return str(cache.folder), np.array(cache.read_item("i3"))


def test_concurrent_builds_of_one_cache_both_succeed(tmp_path):
    from concurrent.futures import ProcessPoolExecutor

    shapes = [(40 + k, 60) for k in range(24)]
    dataset = _make(tmp_path / "data", shapes=shapes, gray_index=None)
    with ProcessPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(_build_in_process, [dataset, dataset], [tmp_path / "shared"] * 2))
    assert results[0][0] == results[1][0]
    np.testing.assert_array_equal(results[0][1], results[1][1])
    cache = ImageCache.open_or_build(dataset, size="short32", workers=1, cache_root=tmp_path / "shared")
    np.testing.assert_array_equal(cache.read_item("i3"), _reference(dataset.abspath(dataset.items["path"][3]), "short32"))
    assert [p.name for p in (tmp_path / "shared").iterdir()] == [cache.folder.name]  # no partial or stale left


def test_a_replacing_build_keeps_a_complete_folder_another_process_finished_meanwhile(tmp_path):
    """The race behind 'image cache vanished right after it was built': a second builder moved
    the first one's fresh cache aside just as the first was opening it."""
    from biqa_bench.fileio import atomic_folder

    final = tmp_path / "cache"
    final.mkdir()
    (final / "stale").write_text("old")  # what both builders saw as stale when they started

    def complete(folder):
        return (folder / "meta").is_file()

    with atomic_folder(final, replace=True, complete=complete) as tmp:
        (tmp / "meta").write_text("ours")
        # meanwhile another builder finished first and put its complete folder in place
        (final / "stale").unlink()
        (final / "meta").write_text("theirs")
    assert (final / "meta").read_text() == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # ours removed, nothing left aside

    (final / "meta").unlink()  # a stale folder (not complete) is still replaced
    with atomic_folder(final, replace=True, complete=complete) as tmp:
        (tmp / "meta").write_text("new")
    assert (final / "meta").read_text() == "new"
