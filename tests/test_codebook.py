"""CORNIA and HOSA: the codebook features against hand computations and scipy.stats, and the
adapters end to end: the codebook never sees a validation or test image (asserted on every image
read while it is learned), it is cached by the training images, and seeds decide everything."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from biqa_bench.evaluation.metrics import srocc
from biqa_bench.features import codebook as CB
from biqa_bench.methods import Context
from _image_helpers import blur_items
from methods.cornia import Cornia
from methods.hosa import Hosa


def test_local_patches_are_contrast_normalised_grid_patches():
    grey = np.random.default_rng(0).integers(0, 256, (15, 22)).astype(float)
    patches = CB.local_patches(grey, 7)
    assert patches.shape == (2 * 3, 49)
    block = grey[7:14, 14:21].ravel()  # row 1, column 2 of the grid
    np.testing.assert_allclose(patches[5], (block - block.mean()) / np.sqrt(block.var() + 10.0))


def test_whitening_decorrelates():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5000, 4)) @ rng.normal(size=(4, 4)) * 10
    white = CB.Whitening.fit(x, epsilon=1e-9)(x)
    np.testing.assert_allclose(np.cov(white, rowvar=False), np.eye(4), atol=1e-6)


def test_cornia_encoding_by_hand():
    codewords = np.array([[1.0, 0.0], [0.0, 1.0]])
    x = np.array([[2.0, -1.0], [-3.0, 0.5], [0.5, 0.25]])
    # responses D x: [[2, -1], [-3, 0.5], [0.5, 0.25]] -> max of positive parts, max of negative parts
    np.testing.assert_allclose(CB.cornia_encode(x, codewords), [2.0, 0.5, 3.0, 1.0])
    np.testing.assert_allclose(np.linalg.norm(CB.cornia_codewords(np.array([[3.0, 4.0]])), axis=1), 1.0)


def test_weighted_moments_match_scipy_on_hard_assignments():
    rng = np.random.default_rng(2)
    x = rng.gamma(2.0, size=(300, 3))
    labels = rng.integers(0, 4, 300)
    labels[labels == 3] = 0  # codeword 3 gets no patch
    mean, variance, skew = CB.weighted_moments(x, np.eye(4)[labels])
    for j in range(3):
        part = x[labels == j]
        np.testing.assert_allclose(mean[j], part.mean(0))
        np.testing.assert_allclose(variance[j], part.var(0))
        np.testing.assert_allclose(skew[j], stats.skew(part, axis=0, bias=True))
    np.testing.assert_array_equal(np.stack([mean[3], variance[3], skew[3]]), 0.0)


def test_hosa_encoding_by_hand_with_one_nearest_codeword():
    x = np.array([[0.0, 1.0], [2.0, 1.0], [10.0, 10.0], [12.0, 9.0], [11.0, 14.0]])
    book = CB.HosaCodebook(centres=np.array([[1.0, 1.0], [11.0, 11.0]]), variances=np.array([[0.5, 0.5], [1.0, 1.0]]),
                           skewness=np.array([[0.0, 0.0], [0.1, -0.1]]), beta=1.0)
    vector = CB.hosa_encode(x, book, nearest=1)
    first, second = x[:2], x[2:]
    raw = np.concatenate([
        first.mean(0) - [1, 1], second.mean(0) - [11, 11],
        first.var(0) - [0.5, 0.5], second.var(0) - [1, 1],
        np.zeros(2) - [0, 0],  # two symmetric points, and a constant column: zero skewness
        stats.skew(second, axis=0, bias=True) - [0.1, -0.1],
    ])
    # layout: codeword-major (mean, variance, skewness residuals of codeword 0, then codeword 1)
    raw = raw.reshape(3, 2, 2).transpose(1, 0, 2).ravel()
    expected = np.sign(raw) * np.sqrt(np.abs(raw))
    np.testing.assert_allclose(vector, expected / np.linalg.norm(expected), atol=1e-12)


def test_hosa_soft_weights_follow_distance():
    x = np.array([[0.0], [0.4]])
    book = CB.HosaCodebook(np.array([[0.0], [1.0]]), np.ones((2, 1)), np.zeros((2, 1)), beta=1.0)
    vector = CB.hosa_encode(x, book, nearest=2)
    assert vector.shape == (2 * 3 * 1,) and np.isclose(np.linalg.norm(vector), 1.0)


@pytest.fixture()
def split(tmp_path):
    items = blur_items(tmp_path / "img", contents=8, levels=5)
    return items[items.content_id < 5], items[items.content_id == 5], items[items.content_id >= 6]


@pytest.mark.parametrize("cls", [Cornia, Hosa])
def test_codebook_sees_training_images_only_and_is_cached_by_them(cls, split, tmp_path, monkeypatch):
    train, val, test = split
    read = []
    ctx = Context(seed=3, cache_dir=tmp_path / "cache")
    real = ctx.read_image
    monkeypatch.setattr(ctx, "read_image", lambda path: read.append(str(path)) or real(path))
    import methods._support.codebook as support

    learned = []
    original = support.CodebookSVR._sample

    def spy(self, items, context):
        before = len(read)
        result = original(self, items, context)
        learned.extend(read[before:])
        return result

    monkeypatch.setattr(support.CodebookSVR, "_sample", spy)
    method = cls(codebook_size=20).fit(train, val, ctx)
    assert learned and set(learned) == set(train["path"])  # every training image, nothing else
    assert not set(learned) & (set(val["path"]) | set(test["path"]))
    prediction = method.predict(test, ctx)
    assert srocc(test["quality"], prediction) > 0.6

    # same training images (in another order): the cached codebook, nothing learned again
    learned.clear()
    again = cls(codebook_size=20).fit(train.iloc[::-1], val, ctx)
    assert learned == [] and again.codebook_key_ == method.codebook_key_
    for key in method.codebook_:
        np.testing.assert_array_equal(again.codebook_[key], method.codebook_[key])
    # other training images: another codebook
    other = cls(codebook_size=20).fit(train.iloc[:-5], val, ctx)
    assert learned and other.codebook_key_ != method.codebook_key_
    method.save(tmp_path / "run")
    np.testing.assert_array_equal(cls().load(tmp_path / "run").predict(test, ctx), prediction)


@pytest.mark.parametrize("cls", [Cornia, Hosa])
def test_seed_decides_the_codebook(cls, split, tmp_path):
    train, val, test = split
    first = cls(codebook_size=20).fit(train, val, Context(seed=1, cache_dir=tmp_path / "a"))
    second = cls(codebook_size=20).fit(train, val, Context(seed=1, cache_dir=tmp_path / "b"))
    third = cls(codebook_size=20).fit(train, val, Context(seed=2, cache_dir=tmp_path / "b"))
    for key in first.codebook_:
        np.testing.assert_array_equal(first.codebook_[key], second.codebook_[key])
    ctx = Context(seed=1, cache_dir=tmp_path / "b")
    np.testing.assert_array_equal(first.predict(test, ctx), second.predict(test, ctx))
    assert any(not np.array_equal(first.codebook_[k], third.codebook_[k]) for k in first.codebook_)
