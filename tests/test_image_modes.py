"""Every PIL mode a dataset can hold becomes the right 8-bit RGB in the one image reader (#21).

Expected values are written from the conversion formulas, not from PIL: 16-bit as round(v/257),
float as round(v*255) from 0..1, CMYK as (255-c)(255-k)/255, palette by its entries, alpha dropped.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from biqa_bench import imagecache
from biqa_bench.cli import main
from biqa_bench.datasets.check import check_dataset
from biqa_bench.datasets.custom import add_custom_dataset
from biqa_bench.datasets.registry import load_dataset
from biqa_bench.images import is_high_bit_depth, read_image

RNG = np.random.default_rng(7)
GREY8 = RNG.integers(0, 256, (6, 5)).astype(np.uint8)
GREY16 = RNG.integers(0, 65536, (6, 5)).astype(np.uint16)
RGB8 = RNG.integers(0, 256, (6, 5, 3)).astype(np.uint8)
ALPHA = RNG.integers(0, 256, (6, 5)).astype(np.uint8)
CMYK = RNG.integers(0, 256, (6, 5, 4)).astype(np.uint8)
BITS = RNG.integers(0, 2, (6, 5)).astype(bool)
INDEX = RNG.integers(0, 4, (6, 5)).astype(np.uint8)
PALETTE = np.array([[10, 20, 30], [200, 0, 50], [0, 255, 0], [90, 90, 250]], dtype=np.uint8)
INT32 = np.concatenate([RNG.integers(0, 65536, 28), [-40, 90000]]).reshape(6, 5).astype(np.int32)
FLOAT = np.concatenate([RNG.random(27), [-0.2, 1.7, np.nan]]).reshape(6, 5).astype(np.float32)


def grey3(values) -> np.ndarray:
    return np.repeat(np.asarray(values, dtype=np.uint8)[..., None], 3, axis=2)


def _palette_image() -> Image.Image:
    image = Image.fromarray(INDEX, mode="P")
    image.putpalette(PALETTE.ravel().tolist() + [0] * (768 - PALETTE.size))
    return image


CASES = {
    # mode: (image, file format, expected HxWx3 uint8)
    "1": (lambda: Image.fromarray(BITS), "PNG", grey3(np.where(BITS, 255, 0))),
    "L": (lambda: Image.fromarray(GREY8, mode="L"), "PNG", grey3(GREY8)),
    "LA": (lambda: Image.fromarray(np.dstack([GREY8, ALPHA]), mode="LA"), "PNG", grey3(GREY8)),
    "P": (_palette_image, "PNG", PALETTE[INDEX]),
    "RGB": (lambda: Image.fromarray(RGB8, mode="RGB"), "PNG", RGB8),
    "RGBA": (lambda: Image.fromarray(np.dstack([RGB8, ALPHA]), mode="RGBA"), "PNG", RGB8),
    "CMYK": (
        lambda: Image.fromarray(CMYK, mode="CMYK"), "TIFF",
        np.rint((255 - CMYK[..., :3].astype(float)) * (255 - CMYK[..., 3:].astype(float)) / 255).astype(np.uint8),
    ),
    "I;16": (lambda: Image.fromarray(GREY16), "PNG", grey3(np.rint(GREY16 / 257.0))),
    "I": (lambda: Image.fromarray(INT32), "TIFF", grey3(np.clip(np.rint(INT32 / 257.0), 0, 255))),
    "F": (lambda: Image.fromarray(FLOAT), "TIFF", grey3(np.clip(np.rint(np.nan_to_num(FLOAT) * 255.0), 0, 255))),
}


@pytest.mark.parametrize("mode", list(CASES))
def test_every_mode_reads_as_the_expected_8bit_rgb(tmp_path, mode):
    make, fmt, expected = CASES[mode]
    image = make()
    assert image.mode == mode
    path = tmp_path / f"image.{fmt.lower()}"
    image.save(path, format=fmt)
    with Image.open(path) as reopened:
        assert reopened.mode == mode  # the file holds the mode under test
    pixels = read_image(path)
    assert pixels.dtype == np.uint8 and pixels.shape == (6, 5, 3)
    np.testing.assert_array_equal(pixels, expected)
    # the decode-once cache converts through the same function
    np.testing.assert_array_equal(imagecache.decode_resized(path, "original"), expected)


def test_a_random_16bit_grey_png_keeps_its_mean(tmp_path):
    """The reported fault: mean 254.5 of 255 (clipped) for a uniform random 16-bit image."""
    values = np.random.default_rng(0).integers(0, 65536, (64, 64)).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    pixels = read_image(tmp_path / "g16.png")
    assert abs(pixels.mean() - values.mean() / 257.0) < 0.01
    assert 120 < pixels.mean() < 135


def test_high_bit_depth_modes():
    assert [m for m in CASES if is_high_bit_depth(m)] == ["I;16", "I", "F"]
    assert is_high_bit_depth("I;16B")


def test_datasets_check_warns_about_rescaled_images(tmp_path, capsys):
    root = tmp_path / "imgs"
    root.mkdir()
    rows = []
    for k in range(6):
        name = f"g{k}.png"
        if k < 2:
            Image.fromarray((GREY16 // (k + 1)).astype(np.uint16)).save(root / name)
        else:
            Image.fromarray(RGB8).save(root / name)
        rows.append({"path": name, "score": k})
    pd.DataFrame(rows).to_csv(tmp_path / "labels.csv", index=False)
    add_custom_dataset("deep", tmp_path / "labels.csv", root, (0.0, 5.0))
    report = check_dataset(load_dataset("deep"))
    assert report.ok and report.rescaled == {"g0.png": "I;16", "g1.png": "I;16"}
    code = main(["datasets", "check", "deep"])
    captured = capsys.readouterr()
    assert code == 0
    warning = [line for line in captured.err.splitlines() if "warning" in line]
    assert len(warning) == 1 and "2 of 6 images have a high bit depth (I;16: g0.png, g1.png)" in warning[0]
