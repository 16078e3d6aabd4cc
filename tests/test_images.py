"""Decoding errors: one tuple (images.DECODE_ERRORS), one-line BiqaErrors on every reading path."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from biqa_bench import imagecache, images
from biqa_bench.datasets import synth
from biqa_bench.errors import BiqaError, DatasetError


def _png(path, size=(200, 180)) -> bytes:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    data = buffer.getvalue()
    path.write_bytes(data)
    return data


@pytest.fixture
def files(tmp_path):
    """A garbage file (no image header) and a truncated PNG (header fine, pixel data cut)."""
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"this is not an image at all")
    truncated = tmp_path / "truncated.png"
    data = _png(truncated)
    truncated.write_bytes(data[: len(data) // 2])
    return garbage, truncated


def _one_line(exc: pytest.ExceptionInfo, name: str) -> None:
    message = str(exc.value)
    assert "\n" not in message and name in message
    assert exc.value.__cause__ is None and exc.value.__suppress_context__


def test_decode_errors_is_the_union_of_what_the_readers_caught():
    for error in (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        assert error in images.DECODE_ERRORS
    assert not issubclass(Image.DecompressionBombError, (OSError, ValueError))  # hence listed


def test_read_image_names_a_broken_file(files, tmp_path):
    for path in files:
        with pytest.raises(DatasetError, match="cannot decode image.*--skip-broken") as exc:
            images.read_image(path)
        _one_line(exc, path.name)
        assert isinstance(exc.value, images.ImageReadError) and exc.value.reason
    with pytest.raises(DatasetError, match="image not found") as exc:
        images.read_image(tmp_path / "missing.png")
    _one_line(exc, "missing.png")


def test_decompression_bomb_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    _png(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 200x180 > 2x the limit: PIL refuses
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)
    with pytest.raises(DatasetError, match="cannot decode image") as exc:
        images.read_image(path)
    _one_line(exc, "big.png")
    with pytest.raises(DatasetError, match="cannot decode image") as exc:
        imagecache.decode_resized(path)
    _one_line(exc, "big.png")
    with pytest.raises(synth.SynthError, match="cannot read image") as exc:
        synth._check_header(path, None)
    _one_line(exc, "big.png")


@pytest.mark.parametrize("error", images.DECODE_ERRORS)
def test_every_decode_error_is_one_line_on_every_path(tmp_path, monkeypatch, error):
    path = tmp_path / "any.png"
    _png(path)

    def broken_open(*args, **kwargs):
        raise error("decoder failed")

    monkeypatch.setattr(Image, "open", broken_open)
    readers = [
        lambda: images.read_image(path),
        lambda: imagecache.decode_resized(path, size="short64"),
        lambda: synth._check_header(path, None),
        lambda: synth._read_source(path),
    ]
    for read in readers:
        with pytest.raises(BiqaError, match="decoder failed") as exc:
            read()
        _one_line(exc, "any.png")
    # the cache's decode worker reports the file instead of raising
    spec = imagecache.parse_size("original")
    message = imagecache._decode_into((str(tmp_path / "pixels"), 0, 180, 200, str(path), spec, False))
    assert message == f"{path}: cannot decode image (decoder failed)"


def test_image_cache_build_names_garbage_files(files, tmp_path):
    garbage, truncated = files
    folder = tmp_path / "cache" / "set"
    for path in files:
        with pytest.raises(DatasetError, match="cannot decode image") as exc:
            imagecache.decode_resized(path, size="short64")
        _one_line(exc, path.name)
    with pytest.raises(DatasetError, match=r"garbage\.jpg.*--skip-broken") as exc:
        imagecache.ImageCache._build(folder, tmp_path, ["g", "t"], [garbage.name, truncated.name],
                                     imagecache.parse_size("original"), False, 1, None, None, "set")
    assert "\n" not in str(exc.value)
    assert not list(folder.parent.glob(".partial-*"))


def test_synthesize_names_garbage_and_truncated_sources(files, tmp_path):
    garbage, truncated = files
    with pytest.raises(synth.SynthError, match="cannot read image.*remove or replace") as exc:
        synth.synthesize_files([garbage], tmp_path, tmp_path / "out1", kind="authentic", workers=1, per_image=1)
    _one_line(exc, garbage.name)
    # the header of the truncated file is fine: the worker's full decode fails
    synth._check_header(truncated, None)
    with pytest.raises(synth.SynthError, match="cannot read image.*remove or replace") as exc:
        synth.synthesize_files([truncated], tmp_path, tmp_path / "out2", kind="authentic", workers=1, per_image=1)
    _one_line(exc, truncated.name)
