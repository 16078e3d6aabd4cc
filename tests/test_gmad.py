"""gMAD: selection by brute force, simulated observers, matrices by hand, errors, figures, export."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import stats

from biqa_bench.errors import AnalysisError, BiqaError
from biqa_bench.evaluation import gmad
from biqa_bench.report import gmad as gmad_report


def _pool(n=300, seed=0, noise=25.0):
    rng = np.random.default_rng(seed)
    quality = rng.uniform(0, 100, n)
    ids = [f"img{j:04d}" for j in range(n)]
    scores = pd.concat(
        [
            pd.DataFrame({"item_id": ids, "method": "oracle", "score": quality}),
            pd.DataFrame({"item_id": ids, "method": "noisy", "score": quality + rng.normal(0, noise, n)}),
        ],
        ignore_index=True,
    )
    return scores, pd.Series(quality, index=ids)


@pytest.mark.parametrize("levels,tolerance", [(6, 0.25), (4, 0.5), (8, 0.1)])
def test_selected_pair_is_within_tolerance_and_has_largest_attacker_gap(levels, tolerance):
    scores, _ = _pool(seed=levels)
    pairs = gmad.select_pairs(scores, "noisy", "oracle", levels=levels, tolerance=tolerance)
    wide = scores.pivot(index="item_id", columns="method", values="score")
    d, a = wide["noisy"], wide["oracle"]
    width = (d.max() - d.min()) / levels
    assert len(pairs) == levels
    for pair in pairs.itertuples():
        centre = d.min() + (pair.level - 0.5) * width
        assert pair.level_centre == pytest.approx(centre)
        candidates = wide.index[(d - centre).abs() <= tolerance * width]
        assert pair.n_candidates == len(candidates)
        if len(candidates) < 2:
            assert pair.status == "empty"
            continue
        assert pair.status == "ok"
        # both images are candidates: the defender rates them within the tolerance of the centre
        for item in (pair.image_best, pair.image_worst):
            assert abs(d[item] - centre) <= tolerance * width + 1e-9
        assert abs(pair.defender_best - pair.defender_worst) <= 2 * tolerance * width + 1e-9
        # brute force: no two candidates have a larger attacker gap
        gap = a[pair.image_best] - a[pair.image_worst]
        all_gaps = a[candidates].to_numpy()[:, None] - a[candidates].to_numpy()[None, :]
        assert gap == pytest.approx(all_gaps.max())
        assert pair.attacker_best == pytest.approx(a[candidates].max())
        assert pair.attacker_worst == pytest.approx(a[candidates].min())


def test_select_all_covers_every_ordered_pair_and_ids_are_unique():
    scores, _ = _pool()
    third = scores[scores["method"] == "oracle"].assign(method="third", score=lambda f: -f["score"] ** 2)
    pairs = gmad.select_all(pd.concat([scores, third]), ["oracle", "noisy", "third"], levels=5)
    assert len(pairs) == 3 * 2 * 5
    assert set(map(tuple, pairs[["defender", "attacker"]].drop_duplicates().to_numpy())) == {
        (d, a) for d in ["oracle", "noisy", "third"] for a in ["oracle", "noisy", "third"] if d != a
    }
    assert pairs["pair_id"].is_unique


def test_empty_levels_are_reported_not_crashed_on():
    # a gap in the defender's scores: the middle levels have no images
    ids = [f"i{j}" for j in range(8)]
    defender = [0, 1, 2, 3, 97, 98, 99, 100]
    scores = pd.concat(
        [
            pd.DataFrame({"item_id": ids, "method": "D", "score": defender}),
            pd.DataFrame({"item_id": ids, "method": "A", "score": np.arange(8.0)}),
        ]
    )
    pairs = gmad.select_pairs(scores, "D", "A", levels=6, tolerance=0.5)
    assert list(pairs["status"]) == ["ok", "empty", "empty", "empty", "empty", "ok"]
    empty = pairs[pairs["status"] == "empty"]
    assert (empty["n_candidates"] == 0).all()
    assert empty["reason"].str.contains("a pair needs 2").all()
    assert empty["image_best"].isna().all()
    # the analysis skips empty levels too
    judgments = gmad.simulate_judgments(pairs, pd.Series(np.arange(8.0), index=ids), n_subjects=3, seed=0)
    assert set(judgments["pair_id"]) == set(pairs.loc[pairs["status"] == "ok", "pair_id"])
    result = gmad.analyze(pairs, judgments, scores)
    assert np.isfinite(result.aggressiveness.loc["A", "D"])


def test_one_candidate_level_is_empty_with_reason():
    ids = ["a", "b", "c"]
    scores = pd.concat(
        [
            pd.DataFrame({"item_id": ids, "method": "D", "score": [0.0, 50.0, 100.0]}),
            pd.DataFrame({"item_id": ids, "method": "A", "score": [1.0, 2.0, 3.0]}),
        ]
    )
    pairs = gmad.select_pairs(scores, "D", "A", levels=3, tolerance=0.5)
    assert (pairs["status"] == "empty").all()
    assert (pairs["n_candidates"] == 1).all()


def test_constant_defender_is_a_one_line_error():
    ids = ["a", "b", "c"]
    scores = pd.concat(
        [
            pd.DataFrame({"item_id": ids, "method": "D", "score": 5.0}),
            pd.DataFrame({"item_id": ids, "method": "A", "score": [1.0, 2.0, 3.0]}),
        ]
    )
    with pytest.raises(AnalysisError) as info:
        gmad.select_pairs(scores, "D", "A")
    assert "same score" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("scale", ["-100..100", "2afc"])
def test_oracle_beats_noisy_method_in_aggressiveness_and_resistance(scale):
    scores, truth = _pool(n=500, seed=3)
    pairs = gmad.select_all(scores, ["oracle", "noisy"])
    judgments = gmad.simulate_judgments(pairs, truth, n_subjects=20, noise=5.0, seed=11, scale=scale)
    result = gmad.analyze(pairs, judgments, scores)
    assert result.scale == scale
    agg, res = result.aggressiveness, result.resistance
    assert agg.loc["oracle", "noisy"] > agg.loc["noisy", "oracle"] + 30
    assert res.loc["oracle", "noisy"] > res.loc["noisy", "oracle"] + 30
    assert list(result.ranking["method"]) == ["oracle", "noisy"]
    assert list(result.ranking["rank"]) == [1, 2]


def test_simulation_is_seeded_and_respects_the_scale():
    scores, truth = _pool()
    pairs = gmad.select_all(scores)
    a = gmad.simulate_judgments(pairs, truth, n_subjects=4, seed=5)
    b = gmad.simulate_judgments(pairs, truth, n_subjects=4, seed=5)
    c = gmad.simulate_judgments(pairs, truth, n_subjects=4, seed=6)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    assert a["preference"].between(-100, 100).all()
    two = gmad.simulate_judgments(pairs, truth, n_subjects=4, seed=5, scale="2afc")
    assert set(two["preference"]) <= {-1, 1}
    assert len(two) == 4 * (pairs["status"] == "ok").sum()


def test_per_pair_ci_and_matrices_match_hand_computation():
    # two methods, 2 levels each way; hand-made judgments on the -100..100 scale
    ids = [f"i{j}" for j in range(8)]
    scores = pd.concat(
        [
            pd.DataFrame({"item_id": ids, "method": "P", "score": [0, 1, 2, 10, 11, 12, 13, 14]}),
            pd.DataFrame({"item_id": ids, "method": "Q", "score": [5, 0, 3, 9, 1, 4, 2, 8]}),
        ]
    )
    pairs = gmad.select_all(scores, ["P", "Q"], levels=2, tolerance=0.5)
    assert (pairs["status"] == "ok").all()
    values = {
        "P-vs-Q-L1": [10, 30, 50],
        "P-vs-Q-L2": [-20, 0],
        "Q-vs-P-L1": [90, 70],
        "Q-vs-P-L2": [100, 80, 60, 40],
    }
    judgments = pd.DataFrame(
        [(pid, f"s{k}", v) for pid, vs in values.items() for k, v in enumerate(vs)],
        columns=["pair_id", "subject", "preference"],
    )
    result = gmad.analyze(pairs, judgments, scores)
    per_pair = result.per_pair.set_index("pair_id")
    for pid, vs in values.items():
        vs = np.asarray(vs, float)
        low, high = stats.t.interval(0.95, len(vs) - 1, loc=vs.mean(), scale=stats.sem(vs))
        assert per_pair.loc[pid, "mean"] == pytest.approx(vs.mean())
        assert per_pair.loc[pid, "ci_low"] == pytest.approx(low)
        assert per_pair.loc[pid, "ci_high"] == pytest.approx(high)
    # weights: share of the pool within the tolerance of each level centre (defender P: range
    # 0..14, width 7, centres 3.5 and 10.5, half-band 3.5 -> 3 and 5 of 8 images)
    assert per_pair.loc["P-vs-Q-L1", "weight"] == pytest.approx(3 / 8)
    assert per_pair.loc["P-vs-Q-L2", "weight"] == pytest.approx(5 / 8)
    wq = per_pair.loc[["Q-vs-P-L1", "Q-vs-P-L2"], "weight"].to_numpy()
    # Q: range 0..9, centres 2.25, 6.75, half-band 2.25 -> {0,3,1,4,2}=5 and {5,9,8}=3
    assert wq == pytest.approx([5 / 8, 3 / 8])
    s_pq = np.array([30.0, -10.0])  # defender P, attacker Q
    w_p = np.array([3, 5]) / 8
    s_qp = np.array([80.0, 70.0])
    assert result.aggressiveness.loc["Q", "P"] == pytest.approx((w_p * s_pq).sum() / w_p.sum())
    assert result.resistance.loc["P", "Q"] == pytest.approx((w_p * (100 - np.abs(s_pq))).sum() / w_p.sum())
    assert result.aggressiveness.loc["P", "Q"] == pytest.approx((wq * s_qp).sum() / wq.sum())
    assert result.resistance.loc["Q", "P"] == pytest.approx((wq * (100 - np.abs(s_qp))).sum() / wq.sum())
    assert math.isnan(result.aggressiveness.loc["P", "P"])
    # without pool scores the stored weights give the same matrices
    again = gmad.analyze(pairs, judgments)
    pd.testing.assert_frame_equal(again.aggressiveness, result.aggressiveness)


def test_2afc_is_analysed_as_100_times_2p_minus_1():
    scores, truth = _pool(n=100)
    pairs = gmad.select_pairs(scores, "oracle", "noisy", levels=2, tolerance=0.5)
    pid = pairs.loc[0, "pair_id"]
    judgments = pd.DataFrame({"pair_id": pid, "subject": list("abcd"), "preference": [1, 1, 1, -1]})
    result = gmad.analyze(pairs, judgments)
    assert result.scale == "2afc"
    assert result.per_pair.set_index("pair_id").loc[pid, "mean"] == pytest.approx(100 * (2 * 0.75 - 1))
    assert any("without judgments" in note for note in result.notes)


def test_unknown_pairs_in_judgments_file_is_one_line_error_naming_file_and_ids(tmp_path):
    scores, _ = _pool(n=100)
    pairs = gmad.select_all(scores)
    path = tmp_path / "judgments.csv"
    pd.DataFrame(
        {"pair_id": [pairs.loc[0, "pair_id"], "ghost-1", "ghost-2"], "subject": ["a", "a", "b"], "preference": [10, 20, 30]}
    ).to_csv(path, index=False)
    judgments = gmad.read_judgments(path)
    with pytest.raises(AnalysisError) as info:
        gmad.analyze(pairs, judgments)
    message = str(info.value)
    assert isinstance(info.value, BiqaError)
    assert "\n" not in message
    assert str(path) in message and "ghost-1" in message and "ghost-2" in message


def test_bad_judgment_values_are_errors(tmp_path):
    scores, _ = _pool(n=100)
    pairs = gmad.select_all(scores)
    pid = pairs.loc[0, "pair_id"]
    with pytest.raises(AnalysisError, match="outside -100..100"):
        gmad.analyze(pairs, pd.DataFrame({"pair_id": [pid], "subject": ["a"], "preference": [150]}))
    with pytest.raises(AnalysisError, match="2afc"):
        gmad.analyze(pairs, pd.DataFrame({"pair_id": [pid], "subject": ["a"], "preference": [0.5]}), scale="2afc")
    with pytest.raises(AnalysisError, match="missing columns"):
        gmad.analyze(pairs, pd.DataFrame({"pair": [pid], "preference": [1]}))


def _images(tmp_path, truth: pd.Series) -> dict[str, str]:
    """Small images whose blur grows as quality falls, so the figure can be judged by eye."""
    from PIL import ImageDraw, ImageFilter

    folder = tmp_path / "pool"
    folder.mkdir()
    paths = {}
    for item, quality in truth.items():
        image = Image.new("RGB", (96, 72), (200, 220, 240))
        draw = ImageDraw.Draw(image)
        for k in range(0, 96, 12):
            draw.rectangle([k, 20, k + 5, 60], fill=(30, 60, 120))
        draw.ellipse([30, 5, 60, 35], fill=(220, 80, 40))
        image = image.filter(ImageFilter.GaussianBlur(radius=(100 - quality) / 25))
        path = folder / f"{item}.png"
        image.save(path)
        paths[item] = str(path)
    return paths


def test_pair_figure_and_export(tmp_path):
    scores, truth = _pool(n=60, seed=2)
    pairs = gmad.select_all(scores, levels=6, tolerance=0.25)
    paths = _images(tmp_path, truth)
    judgments = gmad.simulate_judgments(pairs, truth, n_subjects=5, seed=0)
    result = gmad.analyze(pairs, judgments, scores)
    preferences = result.per_pair.set_index("pair_id")["mean"].to_dict()
    figures = gmad_report.pair_figures(pairs, paths, tmp_path / "figures", preferences)
    assert sorted(p.name for p in figures) == ["noisy-vs-oracle.png", "oracle-vs-noisy.png"]
    for figure in figures:
        with Image.open(figure) as image:
            assert image.size[0] > 600 and image.size[1] > 300
    key = gmad_report.export_pairs(pairs, paths, tmp_path / "test")
    ok = pairs[pairs["status"] == "ok"]
    assert len(key) == 2 * len(ok)
    for row in key.itertuples():
        target = tmp_path / "test" / row.file
        assert target.is_file() and not target.is_symlink()
        assert row.file.startswith(row.pair_id + f"_{row.position}")
        expected = ok.set_index("pair_id").loc[row.pair_id, "image_best" if row.position == 1 else "image_worst"]
        assert row.item_id == expected
        assert target.read_bytes() == (tmp_path / "pool" / f"{expected}.png").read_bytes()
    assert (tmp_path / "test" / "key.csv").is_file()


# ------------------------------------------------------------ toolbox definitions: band, screening


def test_absolute_band_as_in_the_toolbox():
    # the toolbox takes the images within +-9 (on its 0..100 MOS scale) of each level's centre
    scores, _ = _pool(n=400, seed=4)
    pairs = gmad.select_pairs(scores, "oracle", "noisy", levels=6, band=gmad.TOOLBOX_BAND)
    d = scores[scores["method"] == "oracle"].set_index("item_id")["score"]
    width = (d.max() - d.min()) / 6
    for pair in pairs.itertuples():
        centre = d.min() + (pair.level - 0.5) * width
        inside = d[(d - centre).abs() <= 9.0]
        assert pair.tolerance == 9.0
        assert pair.n_candidates == len(inside)
        assert pair.weight == pytest.approx(len(inside) / len(d))
        assert {pair.image_best, pair.image_worst} <= set(inside.index)
    with pytest.raises(AnalysisError, match="positive half-width"):
        gmad.select_pairs(scores, "oracle", "noisy", band=0)


def _reference_screening(frame: pd.DataFrame) -> tuple[set[int], set[str]]:
    """Row positions of outlier ratings and rejected subjects, by plain loops and scipy."""
    outliers, counts = set(), {}
    for _, group in frame.groupby("pair_id"):
        v = group["preference"].to_numpy(float)
        beta2 = stats.kurtosis(v, fisher=True, bias=True) + 3.0 if np.var(v) > 0 else 0.0
        limit = (2.0 if 2 <= beta2 <= 4 else math.sqrt(20)) * np.std(v, ddof=1)
        for position, subject, value in zip(group.index, group["subject"], v):
            p, q, n = counts.get(subject, (0, 0, 0))
            high, low = value - v.mean() > limit, value - v.mean() < -limit
            counts[subject] = (p + high, q + low, n + 1)
            if high or low:
                outliers.add(position)
    rejected = {s for s, (p, q, n) in counts.items() if p + q > 0.05 * n and abs(p - q) / (p + q) < 0.3}
    return outliers, rejected


def test_screening_matches_a_loop_reference_and_rejects_an_erratic_subject():
    rng = np.random.default_rng(7)
    n_pairs, n_subjects = 20, 15
    ratings = np.rint(rng.uniform(0, 40, size=(n_pairs, n_subjects)))  # platykurtic crowd
    # subject 'erratic' answers far above the crowd on some pairs and far below on others
    ratings[:8, 0] = np.where(np.arange(8) % 2 == 0, 50, -10)
    # subject 'keen' is far above the crowd on a few pairs, always in the same direction
    ratings[8:12, 1] = 50
    subjects = ["erratic", "keen"] + [f"s{j:02d}" for j in range(2, n_subjects)]
    frame = pd.DataFrame(
        [(f"p{i:02d}", subjects[j], ratings[i, j]) for i in range(n_pairs) for j in range(n_subjects)],
        columns=["pair_id", "subject", "preference"],
    )
    outliers, rejected = _reference_screening(frame)
    kept, report = gmad.screen_judgments(frame)
    assert rejected == {"erratic"}  # the construction works as intended
    assert set(report.rejected_subjects) == rejected
    assert report.outlier_ratings == len(outliers) and len(outliers) > 0
    removed = outliers | set(frame.index[frame["subject"].isin(rejected)])
    assert report.removed_ratings == len(removed)
    expected = frame.drop(index=sorted(removed)).reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, expected)
    # 'keen' keeps its other ratings: one-sided outliers do not reject a subject
    assert (kept["subject"] == "keen").sum() > 0


def test_analyze_screens_graded_judgments_by_default_and_not_2afc():
    scores, truth = _pool(n=300, seed=5)
    pairs = gmad.select_all(scores)
    judgments = gmad.simulate_judgments(pairs, truth, n_subjects=12, noise=5.0, seed=2)
    ok = pairs.loc[pairs["status"] == "ok", "pair_id"].tolist()
    # one subject answers at random, far from everyone
    wild = judgments["subject"] == "sim01"
    judgments.loc[wild, "preference"] = np.where(np.arange(wild.sum()) % 2 == 0, 100, -100)
    screened = gmad.analyze(pairs, judgments, scores)
    kept, report = gmad.screen_judgments(judgments)
    manual = gmad.analyze(pairs, kept, scores, screen=False)
    pd.testing.assert_frame_equal(screened.aggressiveness, manual.aggressiveness)
    pd.testing.assert_frame_equal(screened.resistance, manual.resistance)
    assert report.removed_ratings > 0 and any("screening removed" in note for note in screened.notes)
    unscreened = gmad.analyze(pairs, judgments, scores, screen=False)
    assert unscreened.per_pair.set_index("pair_id").loc[ok, "n"].sum() == len(judgments)
    two = gmad.simulate_judgments(pairs, truth, n_subjects=6, seed=2, scale="2afc")
    assert gmad.analyze(pairs, two, scores).per_pair["n"].sum() == len(two)


def test_common_pool_is_what_every_method_scored_finitely():
    scores = pd.DataFrame({
        "item_id": ["a", "b", "c", "d", "a", "b", "c", "e", "a", "b", "d"],
        "method": ["P", "P", "P", "P", "Q", "Q", "Q", "Q", "R", "R", "R"],
        "score": [1.0, 2.0, 3.0, 4.0, 5.0, np.inf, 7.0, 8.0, 9.0, 10.0, 11.0],
    })
    pool = gmad.common_pool(scores, ["Q", "P"])
    assert list(pool.index) == ["a", "c"] and list(pool.columns) == ["Q", "P"]  # b: Q's score is not finite
    assert pool.loc["c"].tolist() == [7.0, 3.0]
    assert list(gmad.common_pool(scores, ["P", "Q", "R"]).index) == ["a"]
    pairs = gmad.select_all(scores, ["P", "R"], levels=1, tolerance=0.5)
    assert (pairs["pool_size"] == len(gmad.common_pool(scores, ["P", "R"]))).all() and pairs["pool_size"].iloc[0] == 3
    with pytest.raises(AnalysisError, match=r"no pool scores for method\(s\) \['S'\]"):
        gmad.common_pool(scores, ["P", "S"])


def test_write_selection_keeps_the_scores_of_the_common_pool(tmp_path):

    scores, _ = _pool(n=60)
    extra = pd.DataFrame({"item_id": ["only_oracle"], "method": ["oracle"], "score": [50.0]})
    scores = pd.concat([scores, extra], ignore_index=True)
    gmad_report.write_selection(scores, ["oracle", "noisy"], tmp_path, levels=3)
    kept = pd.read_csv(tmp_path / gmad_report.POOL_SCORES, dtype={"item_id": str})
    assert len(kept) == 120 and "only_oracle" not in set(kept["item_id"])
    assert set(kept["item_id"]) == set(gmad.common_pool(scores, ["oracle", "noisy"]).index)
