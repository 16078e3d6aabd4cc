"""Distortions, class tables, pseudo-MOS, the embedded sets and synthesize_folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from biqa_bench.datasets import distortions as D
from biqa_bench.datasets import pseudo_mos as P
from biqa_bench.datasets import synthetic as S
from biqa_bench.errors import BiqaError


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A 128x128 natural photo (the astronaut's face), cheap enough for every distortion."""
    return S.EMBEDDED_CONTENTS[0].image(size=128)


@pytest.fixture(scope="module")
def photo176() -> np.ndarray:
    """Large enough for MS-SSIM (> 160 pixels a side)."""
    return S.EMBEDDED_CONTENTS[2].image(size=176)


def _gradient_energy(image: np.ndarray) -> float:
    grey = image.astype(float).mean(axis=2)
    return float((np.diff(grey, axis=0) ** 2).mean() + (np.diff(grey, axis=1) ** 2).mean())


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a.astype(float) - b.astype(float)) ** 2).mean())


def _ladder(name: str, kind: str, image: np.ndarray, seed: int = 0) -> list[np.ndarray]:
    dist = D.get_distortion(name, kind)
    return [dist(image, level, np.random.default_rng(seed)) for level in range(1, dist.n_levels + 1)]


def _strictly_increasing(values) -> bool:
    return all(b > a for a, b in zip(values, values[1:]))


# ---------------------------------------------------------------------------- class tables


def test_class_tables_match_the_paper_counts():
    assert len(D.SYNTHETIC_CLASSES) == 39
    assert len(set(D.SYNTHETIC_CLASSES)) == 39
    levels = {name: d.n_levels for name, d in D.SYNTHETIC_DISTORTIONS.items()}
    assert len(levels) == 9
    assert sorted(levels.values()) == [2, 2, 5, 5, 5, 5, 5, 5, 5]
    assert levels["over_exposure"] == levels["under_exposure"] == 2
    assert len(D.AUTHENTIC_DISTORTIONS) == 7
    assert len(D.AUTHENTIC_CLASSES) == 26 and len(set(D.AUTHENTIC_CLASSES)) == 26
    auth_levels = {name: d.n_levels for name, d in D.AUTHENTIC_DISTORTIONS.items()}
    assert auth_levels == {"over_exposure": 2, "under_exposure": 2, "motion_blur": 3, "defocus": 3,
                           "vignetting": 3, "contrast_loss": 3, "jpeg": 3}
    for index, (name, level) in enumerate(D.SYNTHETIC_CLASSES):
        assert D.synthetic_class_index(name, level) == index
    with pytest.raises(BiqaError):
        D.synthetic_class_index("over_exposure", 3)
    with pytest.raises(BiqaError, match="Did you mean 'gaussian_blur'"):
        D.get_distortion("gausian_blur")


def test_blend_target_has_exactly_its_components_set():
    components = [("defocus", 2), ("jpeg", 3)]
    labels = D.authentic_labels(components)
    expected = {D.AUTHENTIC_CLASSES.index(("defocus", 2)), D.AUTHENTIC_CLASSES.index(("jpeg", 3)),
                D.AUTHENTIC_CLASSES.index(("defocus", 0)), D.AUTHENTIC_CLASSES.index(("jpeg", 0))}
    assert set(labels) == expected
    target = D.multi_hot(labels)
    assert target.shape == (26,) and target.sum() == 4
    assert D.parse_labels(D.format_labels(labels)) == sorted(expected)
    rng = np.random.default_rng(3)
    for _ in range(200):
        blend = D.sample_blend(rng)
        names = [n for n, _ in blend]
        assert 2 <= len(blend) <= 3 and len(set(names)) == len(names)
        assert not {"over_exposure", "under_exposure"} <= set(names)
        assert names == [n for n in D.BLEND_ORDER if n in names]
        hot = D.multi_hot(D.authentic_labels(blend))
        on = {D.AUTHENTIC_CLASSES[i] for i in np.flatnonzero(hot)}
        assert on == set(blend) | {(n, 0) for n in names}


def test_planned_blends_are_distinct_and_labelled():
    plans = S.plan_items("somecontent", "authentic", seed=5, per_content=20)
    assert len(plans) == 20
    assert len({tuple(p["components"]) for p in plans}) == 20
    for plan in plans:
        assert D.parse_labels(plan["labels"]) == D.authentic_labels(plan["components"])
    synthetic = S.plan_items("somecontent", "synthetic", seed=5)
    assert [p["class_index"] for p in synthetic] == list(range(39))
    subset = S.plan_items("somecontent", "synthetic", seed=5, per_content=7)
    assert len(subset) == 7 and subset == S.plan_items("somecontent", "synthetic", seed=5, per_content=7)


# ---------------------------------------------------------------------------- distortions


def test_every_distortion_keeps_shape_and_type_and_changes_the_image(photo):
    for kind, table in (("synthetic", D.SYNTHETIC_DISTORTIONS), ("authentic", D.AUTHENTIC_DISTORTIONS)):
        for name in table:
            for out in _ladder(name, kind, photo):
                assert out.dtype == np.uint8 and out.shape == photo.shape, (kind, name)
                assert _mse(out, photo) > 0.5, (kind, name)
    with pytest.raises(ValueError):
        D.SYNTHETIC_DISTORTIONS["jpeg"](photo, 6, np.random.default_rng(0))


@pytest.mark.parametrize("name,kind", [("gaussian_blur", "synthetic"), ("defocus", "authentic"),
                                       ("motion_blur", "authentic")])
def test_blur_removes_more_gradient_energy_at_higher_levels(photo, name, kind):
    energies = [_gradient_energy(photo)] + [_gradient_energy(im) for im in _ladder(name, kind, photo)]
    assert _strictly_increasing(energies[::-1])


@pytest.mark.parametrize("name", ["white_noise", "pink_noise"])
def test_noise_strength_grows_with_level(photo, name):
    errors = [np.std(im.astype(float) - photo) for im in _ladder(name, "synthetic", photo)]
    assert _strictly_increasing(errors)


@pytest.mark.parametrize("name,kind", [("jpeg", "synthetic"), ("jpeg2000", "synthetic"),
                                       ("color_dithering", "synthetic"), ("jpeg", "authentic"),
                                       ("vignetting", "authentic")])
def test_error_grows_with_level(photo, name, kind):
    assert _strictly_increasing([_mse(im, photo) for im in _ladder(name, kind, photo)])


@pytest.mark.parametrize("name,kind", [("contrast_change", "synthetic"), ("contrast_loss", "authentic")])
def test_contrast_falls_with_level(photo, name, kind):
    stds = [photo.std()] + [im.astype(float).std() for im in _ladder(name, kind, photo)]
    assert _strictly_increasing(stds[::-1])


def test_exposure_moves_brightness_the_right_way(photo):
    for kind in ("synthetic", "authentic"):
        over = [photo.mean()] + [im.mean() for im in _ladder("over_exposure", kind, photo)]
        under = [photo.mean()] + [im.mean() for im in _ladder("under_exposure", kind, photo)]
        assert _strictly_increasing(over)
        assert _strictly_increasing(under[::-1])


def test_vignetting_darkens_corners_more_than_centre(photo):
    flat = np.full((96, 96, 3), 160, dtype=np.uint8)
    ratios = []
    for out in _ladder("vignetting", "authentic", flat):
        ratios.append(out[:4, :4].mean() / out[44:52, 44:52].mean())
    assert all(r < 1 for r in ratios) and _strictly_increasing(ratios[::-1])


def test_primitives_against_hand_computed_values():
    image = np.array([[[0, 100, 200], [50, 150, 250]]], dtype=np.uint8)
    # mean 125: 125 + 0.6 * (x - 125)
    np.testing.assert_array_equal(D.reduce_contrast(image, 0.6), [[[50, 110, 170], [80, 140, 200]]])
    np.testing.assert_array_equal(D.change_exposure(image, 0.0), image)
    kernel = D.motion_kernel(7, 0.0)
    assert kernel.sum() == pytest.approx(1.0, abs=1e-6)
    rows = np.flatnonzero(kernel.sum(axis=1) > 1e-6)
    assert len(rows) == 1  # a horizontal line
    vertical = D.motion_kernel(7, 90.0)
    assert len(np.flatnonzero(vertical.sum(axis=0) > 1e-6)) == 1


def test_pink_noise_has_a_one_over_f_spectrum():
    rng = np.random.default_rng(0)
    size = 256
    power = np.zeros(size // 2)
    counts = np.zeros(size // 2)
    fy, fx = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij")
    radius = np.sqrt(fx**2 + fy**2)
    bins = np.minimum((radius * size).astype(int), size // 2 - 1)
    for _ in range(4):
        spectrum = np.abs(np.fft.fft2(D.pink_noise_field((size, size), rng))) ** 2
        np.add.at(power, bins.ravel(), spectrum.ravel())
        np.add.at(counts, bins.ravel(), 1)
    f = np.arange(4, 100)
    slope = np.polyfit(np.log(f), np.log(power[f] / counts[f]), 1)[0]
    assert slope == pytest.approx(-1.0, abs=0.1)


def test_distortions_are_deterministic_for_a_seed(photo):
    plans = S.plan_items("c", "synthetic", seed=0)
    noisy = next(p for p in plans if p["distortion"] == "white_noise")
    a = S.render(photo, noisy, seed=0, content_id="c")
    b = S.render(photo, noisy, seed=0, content_id="c")
    c = S.render(photo, noisy, seed=1, content_id="c")
    np.testing.assert_array_equal(a, b)
    assert _mse(a, c) > 0
    blend = S.plan_items("c", "authentic", seed=0, per_content=3)
    assert blend == S.plan_items("c", "authentic", seed=0, per_content=3)
    assert blend != S.plan_items("c", "authentic", seed=1, per_content=3)


# ---------------------------------------------------------------------------- pseudo-MOS


def test_metric_maps_are_monotonic_and_anchored():
    for metric, mapping in P.METRIC_MAPS.items():
        assert mapping.quality(mapping.best) == pytest.approx(100.0)
        assert mapping.quality(mapping.worst) == pytest.approx(0.0)
        values = np.linspace(mapping.best, mapping.worst, 11)
        assert _strictly_increasing(list(mapping.quality(values))[::-1]), metric


def test_pseudo_mos_is_top_on_identity_and_falls_with_blur(photo176):
    blurred = _ladder("gaussian_blur", "synthetic", photo176)[::2]  # levels 1, 3, 5
    result = P.pseudo_mos(np.stack([photo176, *blurred]), photo176)
    assert result.score[0] == pytest.approx(100.0, abs=1e-3)
    assert _strictly_increasing(list(result.score)[::-1])
    assert list(result.raw.columns) == list(P.METRICS)
    for metric in P.METRICS:  # every metric is at the top of its scale on identity
        assert result.qualities[metric].iloc[0] == pytest.approx(100.0, abs=1e-3), metric
        np.testing.assert_allclose(result.qualities[metric], P.METRIC_MAPS[metric].quality(result.raw[metric]))
    np.testing.assert_allclose(result.score, result.qualities.mean(axis=1))
    with pytest.raises(BiqaError, match="too small"):
        P.pseudo_mos(photo176[:100, :100], photo176[:100, :100])


@pytest.mark.parametrize("height,width,n", [(170, 180, 2), (384, 400, 1)])  # 384x400: piq pools by 2 first
def test_shared_reference_fsim_and_vsi_equal_piq(height, width, n):
    import piq

    torch.manual_seed(0)
    reference = torch.rand(1, 3, height, width)
    distorted = (reference + 0.08 * torch.randn(n, 3, height, width)).clamp(0, 1)
    expanded = reference.expand_as(distorted)
    with P.torch_threads(1), torch.inference_mode():
        expected = piq.fsim(distorted, expanded, data_range=1.0, reduction="none")
        torch.testing.assert_close(P.fsim_shared_reference(distorted, reference), expected, rtol=1e-5, atol=1e-6)
        expected = piq.vsi(distorted, expanded, data_range=1.0, reduction="none")
        torch.testing.assert_close(P.vsi_shared_reference(distorted, reference), expected, rtol=1e-5, atol=1e-6)


def test_pseudo_mos_with_matched_references_equals_shared(photo176):
    distorted = np.stack(_ladder("white_noise", "synthetic", photo176)[:3])
    shared = P.pseudo_mos(distorted, photo176)
    matched = P.pseudo_mos(distorted, np.stack([photo176] * 3))
    np.testing.assert_allclose(shared.score, matched.score, rtol=1e-5)
    pd.testing.assert_frame_equal(shared.raw, matched.raw, rtol=1e-5)


# ---------------------------------------------------------------------------- embedded sets


def test_embedded_sets_build_once_with_counts_and_columns(tmp_path, monkeypatch):
    from biqa_bench.datasets import load_dataset

    monkeypatch.setenv("BIQA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("BIQA_CONFIG", str(tmp_path / "config.json"))
    calls = []
    S.set_progress(lambda done, total: calls.append((done, total)))
    try:
        synthetic = load_dataset("synthetic:contents=1,size=176")
        mixed = load_dataset("mixed:contents=1,size=176,blends=6")
    finally:
        S.set_progress(None)
    assert calls[0] == (0, 39) and calls[-1] == (6, 6)
    assert synthetic.info.kind == "synthetic" and mixed.info.kind == "authentic"
    items = synthetic.items
    assert len(items) == 39 and items["content_id"].nunique() == 1
    for column in ("item_id", "path", "score", "quality", "content_id", "distortion", "level", "class_index",
                   "labels", "reference_path"):
        assert column in items.columns
    assert sorted(items["class_index"]) == list(range(39))
    assert [D.SYNTHETIC_CLASSES[i] for i in items["class_index"]] == list(zip(items["distortion"], items["level"]))
    assert items["score"].between(0, 100).all() and items["score"].max() < 100
    assert all((synthetic.root / p).is_file() for p in items["path"])
    assert (synthetic.root / items["reference_path"].iloc[0]).is_file()
    with Image.open(synthetic.root / items["path"].iloc[0]) as image:
        assert image.size == (176, 176)
    # per distortion type, the pseudo-MOS falls with the level
    for name, group in items.groupby("distortion"):
        assert _strictly_increasing(list(group.sort_values("level")["score"])[::-1]), name
    blends = mixed.items
    assert len(blends) == 6 and "class_index" not in blends.columns
    for _, row in blends.iterrows():
        components = list(zip(row["distortion"].split("+"), map(int, row["level"].split("+"))))
        assert D.parse_labels(row["labels"]) == D.authentic_labels(components)
    manifest = json.loads((synthetic.root / S.MANIFEST_FILE).read_text())
    assert manifest["seed"] == 0 and manifest["n_items"] == 39
    assert synthetic.root.name.endswith("-seed0-c1-s176") and synthetic.root.parent.name == "embedded"
    again = load_dataset("synthetic:contents=1,size=176")  # cached: same folder, same labels
    assert again.root == synthetic.root and again.fingerprint == synthetic.fingerprint
    assert not [p for p in synthetic.root.parent.iterdir() if p.name.endswith(".tmp")]


def test_embedded_options_are_validated(tmp_path, monkeypatch):
    from biqa_bench.datasets import load_dataset

    monkeypatch.setenv("BIQA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("BIQA_CONFIG", str(tmp_path / "config.json"))
    with pytest.raises(BiqaError, match="seed"):
        load_dataset("synthetic:seed=abc")
    with pytest.raises(BiqaError, match="contents"):
        load_dataset("mixed:contents=0")
    with pytest.raises(BiqaError, match="size"):
        load_dataset("mixed:size=100")
    with pytest.raises(BiqaError, match="blends"):
        load_dataset("synthetic:blends=3")  # only the mixed set has blends


# ---------------------------------------------------------------------------- synthesize_folder


def _write_sources(folder, count: int = 2, size=(200, 180)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image = S.EMBEDDED_CONTENTS[i + 2].image(size=220)[: size[1], : size[0]]
        Image.fromarray(image).save(folder / f"photo{i}.png")


def test_synthesize_folder_writes_labels_and_resumes(tmp_path):
    from biqa_bench.datasets.synth import LABEL_COLUMNS, synthesize_folder

    sources = tmp_path / "pristine"
    _write_sources(sources)
    out = tmp_path / "out"
    seen = []
    folder = synthesize_folder(sources, out, kind="authentic", seed=3, workers=2, per_image=2,  # process pool
                               progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (2, 2)
    labels = pd.read_csv(folder / "labels.csv", dtype={"labels": str, "level": str})
    assert list(labels.columns[: len(LABEL_COLUMNS)]) == LABEL_COLUMNS
    assert len(labels) == 4 and labels["content"].nunique() == 2
    assert labels["score"].between(0, 100).all()
    assert all((folder / p).is_file() for p in labels["path"])
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["n_items"] == 4 and manifest["parameters"]["seed"] == 3

    # crash simulation: one source's part is lost; the re-run regenerates only that source
    first = labels["content"].iloc[0]
    (folder / "parts" / f"{first}.csv").unlink()
    (folder / "labels.csv").unlink()
    synthesize_folder(sources, out, kind="authentic", seed=3, workers=1, per_image=2)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["generated_this_run"] == 2
    again = pd.read_csv(folder / "labels.csv", dtype={"labels": str, "level": str})
    pd.testing.assert_frame_equal(again, labels)

    with pytest.raises(BiqaError, match="other parameters"):
        synthesize_folder(sources, out, kind="authentic", seed=4, workers=1, per_image=2)


def test_synthesize_folder_is_loadable_as_a_user_dataset(tmp_path, monkeypatch):
    from biqa_bench.datasets import load_dataset
    from biqa_bench.datasets.custom import add_custom_dataset
    from biqa_bench.datasets.synth import synthesize_folder

    monkeypatch.setenv("BIQA_CONFIG", str(tmp_path / "config.json"))
    monkeypatch.setenv("BIQA_CACHE", str(tmp_path / "cache"))
    sources = tmp_path / "pristine"
    _write_sources(sources, count=1, size=(240, 200))
    folder = synthesize_folder(sources, tmp_path / "gen", kind="synthetic", seed=0, workers=1, per_image=3,
                               size=176)
    labels = pd.read_csv(folder / "labels.csv")
    assert len(labels) == 3 and set(labels["class_index"]) <= set(range(39))
    with Image.open(folder / labels["path"].iloc[0]) as image:
        assert image.size == (176, 176)
    add_custom_dataset("mygen", folder / "labels.csv", folder, (0.0, 100.0), content_column="content",
                       kind="synthetic")
    dataset = load_dataset("mygen")
    assert len(dataset.items) == 3 and dataset.items["content_id"].nunique() == 1


def test_synthesize_folder_names_the_bad_input(tmp_path):
    from biqa_bench.datasets.synth import synthesize_folder

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BiqaError, match="no images found"):
        synthesize_folder(empty, tmp_path / "o1", workers=1)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bad.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(BiqaError, match="bad.jpg"):
        synthesize_folder(broken, tmp_path / "o2", workers=1)
    small = tmp_path / "small"
    _write_sources(small, count=1, size=(120, 100))
    with pytest.raises(BiqaError, match=r"photo0.png.*--size"):
        synthesize_folder(small, tmp_path / "o3", workers=1)
    with pytest.raises(BiqaError, match="kind"):
        synthesize_folder(small, tmp_path / "o4", kind="natural", workers=1)


def test_embedded_build_does_not_depend_on_workers(tmp_path, monkeypatch):
    monkeypatch.setenv("BIQA_CONFIG", str(tmp_path / "config.json"))
    built = []
    for workers in (1, 2):
        monkeypatch.setenv("BIQA_CACHE", str(tmp_path / f"cache{workers}"))
        folder = S.build_embedded("mixed", seed=2, contents=1, size=176, blends=20, workers=workers)  # 2 parts
        built.append(pd.read_csv(folder / S.ITEMS_FILE))
        images = sorted((folder / "images").rglob("*.png"))
        built.append([np.asarray(Image.open(p)) for p in images])
    pd.testing.assert_frame_equal(built[0], built[2])
    for a, b in zip(built[1], built[3]):
        np.testing.assert_array_equal(a, b)


def test_synthesize_files_uses_only_the_listed_sources(tmp_path):
    from biqa_bench.datasets.synth import synthesize_files

    sources = tmp_path / "pristine"
    _write_sources(sources, count=2)
    train = [sources / "photo1.png"]  # e.g. the training images of a split
    folder = synthesize_files(train, sources, tmp_path / "gen", kind="authentic", seed=0, workers=1, per_image=1)
    labels = pd.read_csv(folder / "labels.csv")
    assert set(labels["content"]) == {"photo1_png"} and len(labels) == 1
    assert not (folder / "images" / "photo0_png").exists()
    elsewhere = tmp_path / "other"
    _write_sources(elsewhere, count=1)
    with pytest.raises(BiqaError, match="not inside"):
        synthesize_files([elsewhere / "photo0.png"], sources, tmp_path / "gen2", workers=1)


def test_registered_synth_sets_keep_their_labels_for_pretraining(tmp_path, monkeypatch):
    """`biqa datasets synth` registers its output; QAMT and HCL must find its class index or
    26-way labels and the reference images when they load it as pre-training data."""
    from typer.testing import CliRunner

    from methods._support import pretrain as PT
    from biqa_bench.cli import app
    from biqa_bench.datasets.distortions import AUTHENTIC_CLASSES

    monkeypatch.setenv("BIQA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("BIQA_CONFIG", str(tmp_path / "config.json"))
    sources = tmp_path / "pristine"
    _write_sources(sources)
    runner = CliRunner()
    for kind, per_image in (("authentic", "2"), ("synthetic", "2")):
        result = runner.invoke(app, ["datasets", "synth", "--images", str(sources), "--name", f"gen{kind}", "--kind", kind,
                                     "--per-image", per_image, "--workers", "1", "--out", str(tmp_path / kind)])
        assert result.exit_code == 0, result.output
        written = pd.read_csv(tmp_path / kind / "labels.csv", dtype={"labels": str})
        pset = PT.load_named_set(f"gen{kind}")
        assert pset.kind == kind and len(pset.items) == 4
        assert all(Path(r).is_file() for r in pset.items["reference"])
        if kind == "authentic":
            assert list(pset.items["labels"]) == list(written["labels"])
            targets = PT.classification_targets(pset.items, kind)
            assert targets.shape == (4, len(AUTHENTIC_CLASSES))
            assert targets.sum(axis=1).tolist() == [len(x.split(";")) for x in written["labels"]]
        else:
            assert pset.items["class_index"].tolist() == written["class_index"].tolist()
