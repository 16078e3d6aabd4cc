"""The group MAximum Differentiation (gMAD) competition: pair selection, simulated observers,
aggressiveness / resistance, pair figures and the export of pairs for a subjective test.

Ma, Duanmu, Wang, Wu, Liu, Yong, Li, Zhang, "Group maximum differentiation competition: model
comparison with few samples", TPAMI 2020 (CVPR 2016 for IQA on the Waterloo Exploration
Database). One model, the *defender*, is held fixed: on an unlabelled pool, pairs of images it
rates equal are found; another model, the *attacker*, picks among them the two it rates most
differently. If people see the attacker's "best" image as clearly better, the attacker wins and
the defender has been falsified; if people see no difference, the defender resisted.

Sources, and what each definition rests on
    We could not read the text of the papers (CVPR 2016, TPAMI 2020) here; what is marked
    *toolbox* was checked line by line against the authors' public MATLAB gMAD toolbox for IQA
    (linked from kedema.org/project/gMAD): ``generate_test_images.m`` (selection),
    ``data_analysis.m`` (screening, aggressiveness, resistance, weights, ranking),
    ``initialization.m`` (scores mapped to the LIVE MOS scale) and the test GUI script (sign of
    the preference). Equation numbers of the papers are therefore not cited.

Selection (:func:`select_pairs`) -- toolbox
    The defender's score range on the pool, ``[min, max]``, is split into ``levels`` (default 6,
    the toolbox's ``rank = 6``) equal-width levels of width ``w``; level ``k`` (1-based) has
    centre ``min + (k - 1/2) * w`` (toolbox ``check_points``). Its candidates are the pool images
    whose defender score lies within a half-band ``h`` of the centre; among them the attacker's
    highest- and lowest-rated images form the pair (``image_best``, ``image_worst``; toolbox
    ``max``/``min`` of the attacker's scores); ties go to the smaller item id.

    The half-band: the toolbox uses ``h = 9`` *absolute* (strict ``<``), on scores first mapped
    by a logistic fit onto the LIVE MOS scale (about 0..100), so ``h`` is about 0.5-0.7 of a
    level's width there. biqa scores are not mapped onto one common scale, so by default
    ``h = tolerance * w`` with ``tolerance = 0.25`` (a module choice: the middle half of the
    level); pass ``band=9`` to :func:`select_pairs` / :func:`select_all` for the toolbox's
    absolute band when the scores are on a 0..100 MOS scale. We test ``<=`` instead of ``<``.
    A level with fewer than two candidates gives a row with ``status='empty'`` and a
    ``reason`` (the toolbox would fail there). Scores of every method are taken as "higher is
    better" (biqa predictions are on the quality scale).

Judgments (:func:`read_judgments`, :func:`simulate_judgments`)
    A CSV with one row per (pair, subject): ``pair_id``, ``subject``, ``preference``.
    ``preference > 0`` means the *first* image of the pair (``image_best``, the attacker's
    favourite; exported as ``<pair_id>_1.<ext>``) looks better -- the toolbox's sign: its GUI
    shows the pair in random left/right order and flips the score so that a positive value
    favours the attacker's best image. Two scales:

    * ``-100..100``: a graded preference, -100 = the second is much better, 0 = same, 100 = the
      first is much better (the toolbox's scale: its resistance is ``100 - |s|``);
    * ``2afc``: a two-alternative forced choice, ``1`` = first better, ``-1`` = second better.
      It is analysed on the same scale as ``100 * (2 p - 1)``, p the share choosing the first
      (a module extension; the toolbox has only the graded scale).

Screening (:func:`screen_judgments`) -- toolbox, ITU-R BT.500 style
    Before averaging, per pair: mean, standard deviation ``sd`` (n - 1) and kurtosis
    ``beta2 = m4 / m2^2`` (central moments, n). A rating is an outlier when it lies more than
    ``2 sd`` from the pair's mean if ``2 <= beta2 <= 4``, else more than ``sqrt(20) sd``.
    With ``P``/``Q`` a subject's counts of high/low outliers, the subject is rejected when
    ``P + Q > 0.05 * n_pairs`` and ``|P - Q| / (P + Q) < 0.3``. Outlier ratings *and* all
    ratings of rejected subjects are dropped (as the toolbox does). ``n_pairs`` is the number of
    pairs the subject rated (the toolbox's design is complete, where it is all pairs).
    :func:`analyze` screens ``-100..100`` judgments by default and not ``2afc`` ones.

Analysis (:func:`analyze`) -- toolbox
    Per pair: mean preference ``s`` of the kept ratings and its t-based 95 % confidence
    interval (the interval is a module addition). With ``s^k`` the mean preference of the pair
    at level ``k`` of (defender j, attacker i) and ``w_k`` the share of pool images within the
    half-band of level k's centre by the *defender's* scores (toolbox ``weight_o``/``weight_n``:
    counts normalised over the levels):

    * aggressiveness of attacker i against defender j: ``a_ij = sum_k w_k s^k / sum_k w_k``
      (toolbox ``A``, rows attacker, columns defender; in [-100, 100]);
    * resistance of defender j against attacker i: ``r_ji = sum_k w_k (100 - |s^k|) / sum_k w_k``
      (toolbox ``R``, rows defender, columns attacker; in [0, 100]).

    Levels without a pair or without judgments drop out of both sums (the toolbox has no such
    levels; with all levels present the normalisation is the toolbox's).

Ranking -- NOT the toolbox's
    The toolbox turns the matrices into global scores by a maximum-likelihood pairwise-
    comparison scaling (``scale_ml`` applied to ``max(A, 0)`` and to ``R``, two separate
    rankings); its code was not in the toolbox copy we could read, so it is not reproduced.
    Here: each method's mean aggressiveness and mean resistance over its opponents, ranked
    separately, and an overall rank by the mean of the two ranks (ties broken by the mean of
    ``(a + 100) / 2`` and ``r``, both on 0..100). The combined rank is this module's choice.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from ..errors import AnalysisError

DEFAULT_LEVELS = 6
DEFAULT_TOLERANCE = 0.25  # fraction of a level's width on either side of its centre
TOOLBOX_BAND = 9.0  # the toolbox's absolute half-band, on scores mapped to the LIVE MOS scale (~0..100)
SCALES = ("-100..100", "2afc")
JUDGMENT_COLUMNS = ["pair_id", "subject", "preference"]

PAIR_COLUMNS = [
    "pair_id", "defender", "attacker", "level", "level_centre", "level_low", "level_high", "tolerance",
    "status", "reason", "n_candidates", "pool_size", "weight",
    "image_best", "image_worst", "defender_best", "defender_worst", "attacker_best", "attacker_worst",
]


# --------------------------------------------------------------------------- selection


def _check_scores(scores: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("item_id", "method", "score") if c not in scores.columns]
    if missing:
        raise AnalysisError(f"gMAD scores lack columns {missing}; expected item_id, method, score")
    frame = scores[["item_id", "method", "score"]].copy()
    frame["item_id"] = frame["item_id"].astype(str)
    frame["method"] = frame["method"].astype(str)
    frame["score"] = pd.to_numeric(frame["score"], errors="coerce")
    if frame.duplicated(["item_id", "method"]).any():
        dup = frame.loc[frame.duplicated(["item_id", "method"]), ["method", "item_id"]].head(3)
        raise AnalysisError(
            f"gMAD scores hold several scores for the same (method, item): {dup.values.tolist()}; "
            "give one score per method and pool image"
        )
    return frame


def common_pool(scores: pd.DataFrame, methods: Sequence[str]) -> pd.DataFrame:
    """The pool gMAD selects from: the images every one of ``methods`` scored (finite), as a
    table indexed by item id (sorted) with one score column per method, in ``methods`` order.

    ``scores`` is tidy (``item_id``, ``method``, ``score``); a method without scores raises
    :class:`AnalysisError`.
    """
    frame = _check_scores(scores)
    known = sorted(frame["method"].unique())
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise AnalysisError(f"no pool scores for method(s) {unknown}; scored methods: {known}")
    wide = frame[frame["method"].isin(methods)].pivot(index="item_id", columns="method", values="score")
    wide = wide[list(methods)].replace([np.inf, -np.inf], np.nan).dropna()
    return wide.sort_index()


def pair_id(defender: str, attacker: str, level: int) -> str:
    clean = lambda name: re.sub(r"[^A-Za-z0-9_.+=@]", "_", name)  # noqa: E731  (a file-name-safe id)
    return f"{clean(defender)}-vs-{clean(attacker)}-L{level}"


def _levels(defender_scores: np.ndarray, levels: int, tolerance: float, defender: str, band: float | None = None):
    low, high = float(np.min(defender_scores)), float(np.max(defender_scores))
    if not high > low:
        raise AnalysisError(
            f"defender '{defender}' gives all {len(defender_scores)} pool images the same score ({low:g}); "
            "gMAD needs a spread of scores: check the method or use a larger pool"
        )
    width = (high - low) / levels
    centres = low + (np.arange(levels) + 0.5) * width
    half_band = float(band) if band is not None else tolerance * width
    return centres, width, half_band, low


def _check_settings(levels: int, tolerance: float, band: float | None = None) -> None:
    if int(levels) < 1:
        raise AnalysisError(f"--levels must be at least 1, not {levels}")
    if band is not None:
        if not (np.isfinite(float(band)) and float(band) > 0):
            raise AnalysisError(f"the absolute band is a positive half-width in score units, not {band}")
        return
    if not (0 < float(tolerance) <= 0.5):
        raise AnalysisError(f"--tolerance is a fraction of a level's width in (0, 0.5], not {tolerance}")


def select_pairs(
    scores: pd.DataFrame,
    defender: str,
    attacker: str,
    levels: int = DEFAULT_LEVELS,
    tolerance: float = DEFAULT_TOLERANCE,
    band: float | None = None,
) -> pd.DataFrame:
    """The gMAD pairs of one (defender, attacker): one row per level (see the module docstring).

    ``scores`` is tidy: ``item_id``, ``method``, ``score`` (higher is better). Only images scored
    by both methods take part. ``tolerance`` is a fraction of the level width (0 < t <= 0.5 keeps
    the levels' candidate sets apart). ``band``, when given, replaces it by an absolute
    half-width in score units (the toolbox's is :data:`TOOLBOX_BAND` on a 0..100 MOS scale).
    Returns the columns of :data:`PAIR_COLUMNS`; ``tolerance`` there is the half-band used.
    """
    if defender == attacker:
        raise AnalysisError(f"gMAD needs two different methods, got '{defender}' twice")
    _check_settings(levels, tolerance, band)
    return _select_from_wide(common_pool(scores, [defender, attacker]), defender, attacker, int(levels), float(tolerance), band)


def _select_from_wide(
    wide: pd.DataFrame, defender: str, attacker: str, levels: int, tolerance: float, band: float | None = None
) -> pd.DataFrame:
    if len(wide) < 2:
        raise AnalysisError(
            f"only {len(wide)} pool image(s) scored by both '{defender}' and '{attacker}'; gMAD needs a pool"
        )
    d = wide[defender].to_numpy(float)
    a = wide[attacker].to_numpy(float)
    ids = wide.index.to_numpy()
    centres, width, half_band, _ = _levels(d, levels, float(tolerance), defender, band)
    rows = []
    for k, centre in enumerate(centres, start=1):
        inside = np.flatnonzero(np.abs(d - centre) <= half_band)
        row: dict[str, Any] = {
            "pair_id": pair_id(defender, attacker, k),
            "defender": defender,
            "attacker": attacker,
            "level": k,
            "level_centre": float(centre),
            "level_low": float(centre - width / 2),
            "level_high": float(centre + width / 2),
            "tolerance": float(half_band),
            "n_candidates": int(len(inside)),
            "pool_size": int(len(d)),
            "weight": len(inside) / len(d),
        }
        if len(inside) < 2:
            row.update(
                status="empty",
                reason=(
                    f"{len(inside)} pool image(s) with {defender} score within {half_band:.4g} of "
                    f"{centre:.4g}; a pair needs 2 (use a larger pool or a larger --tolerance)"
                ),
            )
        else:
            # ids are sorted, and argmax/argmin return the first hit: ties go to the smaller id
            best = inside[int(np.argmax(a[inside]))]
            worst = inside[int(np.argmin(a[inside]))]
            row.update(
                status="ok",
                reason="" if a[best] > a[worst] else f"{attacker} rates all {len(inside)} candidates equal",
                image_best=ids[best],
                image_worst=ids[worst],
                defender_best=d[best],
                defender_worst=d[worst],
                attacker_best=a[best],
                attacker_worst=a[worst],
            )
        rows.append(row)
    return pd.DataFrame(rows).reindex(columns=PAIR_COLUMNS)


def select_all(
    scores: pd.DataFrame,
    methods: Sequence[str] | None = None,
    levels: int = DEFAULT_LEVELS,
    tolerance: float = DEFAULT_TOLERANCE,
    band: float | None = None,
) -> pd.DataFrame:
    """:func:`select_pairs` over every ordered (defender, attacker) of ``methods``.

    The pool is the images every method scored, so all pairs come from the same set.
    """
    frame = _check_scores(scores)
    methods = list(methods) if methods is not None else sorted(frame["method"].unique())
    if len(methods) < 2 or len(set(methods)) != len(methods):
        raise AnalysisError(f"gMAD needs at least two different methods, got {methods}")
    _check_settings(levels, tolerance, band)
    wide = common_pool(frame, methods)  # once: the pool is the images every method scored
    tables = [
        _select_from_wide(wide[[defender, attacker]], defender, attacker, int(levels), float(tolerance), band)
        for defender in methods
        for attacker in methods
        if defender != attacker
    ]
    pairs = pd.concat(tables, ignore_index=True)
    if pairs["pair_id"].duplicated().any():  # two names that clean to the same id
        pairs["pair_id"] = [f"{pid}-{i}" for i, pid in enumerate(pairs["pair_id"])]
    return pairs


def ok_pairs(pairs: pd.DataFrame) -> pd.DataFrame:
    return pairs[pairs["status"] == "ok"].reset_index(drop=True)


def read_table(path: str | Path, what: str, columns: Sequence[str] = (), dtype: dict | None = None,
               hint: str = "") -> pd.DataFrame:
    """A CSV input of the gMAD steps (pairs, judgments, pool scores, ground truth): a missing or
    unreadable file, or one without ``columns``, is an AnalysisError naming it (``hint``: the fix)."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=dtype if dtype is not None else {"item_id": str, "method": str})
    except FileNotFoundError:
        raise AnalysisError(f"{path}: {what} not found; check the path{hint}") from None
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise AnalysisError(f"{path}: cannot read {what} ({exc}){hint}") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise AnalysisError(f"{path}: {what} lacks columns {missing}{hint}")
    return frame


def read_pairs(path: str | Path) -> pd.DataFrame:
    """A ``pairs.csv`` written by ``biqa gmad select``."""
    path = Path(path)
    pairs = read_table(path, "gMAD pairs", dtype={"pair_id": str, "image_best": str, "image_worst": str, "reason": str,
                                                  "defender": str, "attacker": str},
                       hint="; run `biqa gmad select` first")
    missing = [c for c in ("pair_id", "defender", "attacker", "level", "status", "image_best", "image_worst")
               if c not in pairs.columns]
    if missing:
        raise AnalysisError(f"{path}: not a gMAD pairs file (missing columns {missing}); use the pairs.csv of `biqa gmad select`")
    pairs["reason"] = pairs["reason"].fillna("") if "reason" in pairs.columns else ""
    return pairs


# --------------------------------------------------------------------------- observers


def simulate_judgments(
    pairs: pd.DataFrame,
    truth: pd.Series,
    n_subjects: int = 20,
    noise: float = 5.0,
    seed: int = 0,
    scale: str = "-100..100",
    sensitivity: float = 10.0,
) -> pd.DataFrame:
    """Judgments of simulated observers who see the true quality through Gaussian noise.

    ``truth`` maps item id -> quality (higher is better, e.g. 0-100). For each (pair, subject)
    the perceived difference is ``truth[first] - truth[second] + N(0, noise^2)``; on the
    ``-100..100`` scale the preference is ``100 * tanh(difference / sensitivity)`` rounded to an
    integer (a difference of ``sensitivity`` quality points reads as about 76), on ``2afc`` it is
    the sign (Thurstone case V). Only pairs with ``status == 'ok'`` are judged.
    """
    if scale not in SCALES:
        raise AnalysisError(f"unknown judgment scale '{scale}'; use one of {list(SCALES)}")
    if n_subjects < 1:
        raise AnalysisError(f"the number of simulated subjects must be at least 1, not {n_subjects}")
    judged = ok_pairs(pairs)
    truth = pd.Series(truth)
    truth.index = truth.index.astype(str)
    needed = pd.unique(judged[["image_best", "image_worst"]].to_numpy().ravel().astype(str))
    missing = [i for i in needed if i not in truth.index or not np.isfinite(truth.get(i, np.nan))]
    if missing:
        raise AnalysisError(
            f"no ground-truth quality for {len(missing)} pair image(s), e.g. {missing[:3]}; "
            "simulate with a labelled pool (a dataset with quality scores)"
        )
    rng = np.random.default_rng(seed)
    difference = (truth.loc[judged["image_best"].astype(str)].to_numpy(float)
                  - truth.loc[judged["image_worst"].astype(str)].to_numpy(float))
    perceived = difference[:, None] + rng.normal(0.0, float(noise), size=(len(judged), n_subjects))
    if scale == "2afc":
        preference = np.where(perceived > 0, 1, np.where(perceived < 0, -1, rng.choice([-1, 1], size=perceived.shape)))
    else:
        preference = np.rint(100.0 * np.tanh(perceived / float(sensitivity))).astype(int)
    width = len(str(n_subjects))
    subjects = [f"sim{j + 1:0{width}d}" for j in range(n_subjects)]
    return pd.DataFrame(
        {
            "pair_id": np.repeat(judged["pair_id"].to_numpy(), n_subjects),
            "subject": np.tile(subjects, len(judged)),
            "preference": preference.ravel(),
        }
    )


# --------------------------------------------------------------------------- analysis


def read_judgments(path: str | Path) -> pd.DataFrame:
    """A judgments CSV (``pair_id, subject, preference``; see the module docstring)."""
    path = Path(path)
    frame = read_table(path, "judgments", dtype={"pair_id": str, "subject": str},
                       hint=f"; expected a CSV with columns {JUDGMENT_COLUMNS}")
    frame.attrs["source"] = str(path)
    return frame


def _validate_judgments(judgments: pd.DataFrame, pairs: pd.DataFrame, scale: str | None, source: str):
    missing = [c for c in JUDGMENT_COLUMNS if c not in judgments.columns]
    if missing:
        raise AnalysisError(f"{source}: missing columns {missing}; a judgments file has columns {JUDGMENT_COLUMNS}")
    frame = judgments[JUDGMENT_COLUMNS].copy()
    frame["pair_id"] = frame["pair_id"].astype(str)
    frame["subject"] = frame["subject"].astype(str)
    frame["preference"] = pd.to_numeric(frame["preference"], errors="coerce")
    if frame["preference"].isna().any() or not np.isfinite(frame["preference"]).all():
        bad = frame.index[~np.isfinite(frame["preference"].fillna(np.inf))][:3] + 2
        raise AnalysisError(f"{source}: non-numeric or missing preference on line(s) {list(bad)}; give a number per row")
    known = set(pairs["pair_id"].astype(str))
    unknown = sorted(set(frame["pair_id"]) - known)
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise AnalysisError(
            f"{source}: {len(unknown)} unknown pair id(s): {shown}; use the pair ids of the pairs.csv the test was built from"
        )
    empty = sorted(set(frame["pair_id"]) & set(pairs.loc[pairs["status"] != "ok", "pair_id"].astype(str)))
    if empty:
        raise AnalysisError(f"{source}: judgments for pair(s) that have no images (empty levels): {', '.join(empty[:5])}")
    values = frame["preference"].to_numpy(float)
    is_binary = bool(np.isin(values, [-1.0, 1.0]).all())
    if scale is None or scale == "auto":
        scale = "2afc" if is_binary else "-100..100"
    if scale not in SCALES:
        raise AnalysisError(f"unknown judgment scale '{scale}'; use one of {list(SCALES)} or auto")
    if scale == "2afc" and not is_binary:
        raise AnalysisError(f"{source}: 2afc preferences must be 1 (first better) or -1 (second better)")
    if scale == "-100..100" and (np.abs(values) > 100).any():
        raise AnalysisError(f"{source}: preferences outside -100..100 (max |value| {np.abs(values).max():g}); check the scale")
    frame["preference_100"] = values * (100.0 if scale == "2afc" else 1.0)
    return frame, scale


@dataclass
class Screening:
    """What :func:`screen_judgments` removed."""

    n_ratings: int
    outlier_ratings: int  # single ratings beyond the 2 sd / sqrt(20) sd limit
    rejected_subjects: list[str]
    removed_ratings: int  # outlier ratings plus every rating of a rejected subject


def screen_judgments(judged: pd.DataFrame, value: str = "preference") -> tuple[pd.DataFrame, Screening]:
    """Outlier ratings and subjects removed as in the gMAD toolbox (ITU-R BT.500 style).

    ``judged`` holds ``pair_id``, ``subject`` and the rating column ``value``. Per pair: mean,
    ``sd`` (n - 1) and kurtosis ``m4 / m2**2`` (central moments over n); a rating further than
    ``2 sd`` from the mean when ``2 <= kurtosis <= 4``, else further than ``sqrt(20) sd``, is an
    outlier (high: ``P``, low: ``Q``). A subject with ``P + Q > 0.05 * (pairs rated)`` and
    ``|P - Q| / (P + Q) < 0.3`` is rejected. Returns the kept rows and a :class:`Screening`.
    """
    frame = judged.reset_index(drop=True)
    x = frame[value].to_numpy(float)
    groups = frame.groupby("pair_id")[value]
    mean = groups.transform("mean").to_numpy(float)
    sd = groups.transform(lambda v: v.std(ddof=1) if len(v) > 1 else np.nan).to_numpy(float)
    deviation = x - mean
    m2 = pd.Series(deviation**2).groupby(frame["pair_id"]).transform("mean").to_numpy(float)
    m4 = pd.Series(deviation**4).groupby(frame["pair_id"]).transform("mean").to_numpy(float)
    kurtosis = m4 / (m2**2 + np.finfo(float).eps)
    factor = np.where((kurtosis >= 2) & (kurtosis <= 4), 2.0, math.sqrt(20.0))
    with np.errstate(invalid="ignore"):
        high = deviation > factor * sd  # NaN sd (one rating) compares False
        low = deviation < -factor * sd
    per_subject = pd.DataFrame({"subject": frame["subject"], "P": high, "Q": low}).groupby("subject").agg(
        P=("P", "sum"), Q=("Q", "sum"), n=("P", "size")
    )
    both = per_subject["P"] + per_subject["Q"]
    with np.errstate(invalid="ignore", divide="ignore"):
        balance = (per_subject["P"] - per_subject["Q"]).abs() / both
    rejected = sorted(per_subject.index[(both > 0.05 * per_subject["n"]) & (balance < 0.3)].astype(str))
    keep = ~(high | low) & ~frame["subject"].isin(rejected).to_numpy()
    report = Screening(
        n_ratings=len(frame),
        outlier_ratings=int((high | low).sum()),
        rejected_subjects=rejected,
        removed_ratings=int((~keep).sum()),
    )
    return frame[keep].reset_index(drop=True), report


def _mean_ci(values: np.ndarray, confidence: float) -> tuple[float, float, float, float]:
    n = len(values)
    if n == 0:
        return (math.nan,) * 4
    mean = float(np.mean(values))
    if n < 2:
        return mean, math.nan, math.nan, math.nan
    from scipy import stats  # here, not at the top: `biqa --help` imports this module

    sd = float(np.std(values, ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return mean, sd, mean - half, mean + half


def level_weights(pairs: pd.DataFrame, pool_scores: pd.DataFrame | None) -> pd.Series:
    """Per pair id: the share of pool images within the tolerance of its level's centre.

    Recomputed from the defender's pool scores (``item_id, method, score``) when given, else
    taken from the ``weight`` column written at selection.
    """
    if pool_scores is None:
        return pd.Series(pairs["weight"].to_numpy(float), index=pairs["pair_id"].astype(str))
    frame = _check_scores(pool_scores)
    weights = {}
    for defender, group in pairs.groupby("defender"):
        scores = frame.loc[frame["method"] == defender, "score"].to_numpy(float)
        scores = scores[np.isfinite(scores)]
        if len(scores) == 0:
            raise AnalysisError(f"pool scores hold no scores of defender '{defender}'; pass the pool_scores.csv of the selection")
        for pid, centre, tol in zip(group["pair_id"], group["level_centre"], group["tolerance"]):
            weights[str(pid)] = float(np.mean(np.abs(scores - centre) <= tol + 1e-12 * max(1.0, abs(centre))))
    return pd.Series(weights)


@dataclass
class GmadResult:
    """Everything ``biqa gmad analyze`` reports. Matrices hold NaN on the diagonal."""

    per_pair: pd.DataFrame  # pair_id, defender, attacker, level, weight, n, mean, sd, ci_low, ci_high
    aggressiveness: pd.DataFrame  # index attacker, columns defender
    resistance: pd.DataFrame  # index defender, columns attacker
    ranking: pd.DataFrame  # method, aggressiveness, resistance, their ranks, rank
    scale: str
    confidence: float = 0.95
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        def matrix(frame: pd.DataFrame) -> dict[str, dict[str, float | None]]:
            return {
                str(r): {str(c): (None if pd.isna(v) else float(v)) for c, v in row.items()}
                for r, row in frame.iterrows()
            }

        def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
            return [
                {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
                for row in frame.to_dict(orient="records")
            ]

        return {
            "scale": self.scale,
            "confidence": self.confidence,
            "aggressiveness": matrix(self.aggressiveness),
            "resistance": matrix(self.resistance),
            "ranking": records(self.ranking),
            "per_pair": records(self.per_pair),
            "notes": list(self.notes),
        }


def analyze(
    pairs: pd.DataFrame,
    judgments: pd.DataFrame,
    pool_defender_scores: pd.DataFrame | None = None,
    scale: str | None = None,
    confidence: float = 0.95,
    source: str | None = None,
    screen: bool | None = None,
) -> GmadResult:
    """Per-pair means with t confidence intervals, aggressiveness and resistance matrices, ranking.

    ``pool_defender_scores`` (``item_id, method, score``) gives the level weights; without it the
    weights stored in ``pairs`` are used. ``scale`` is ``-100..100``, ``2afc`` or None (inferred:
    only +-1 values mean 2afc). ``source`` names the judgments in errors (default: the file
    :func:`read_judgments` read, else "judgments"). ``screen`` removes outlier ratings and
    subjects first (:func:`screen_judgments`); None (default) screens ``-100..100`` judgments, as
    the toolbox does, and leaves ``2afc`` ones alone.
    """
    source = source or judgments.attrs.get("source", "judgments")
    judged, scale = _validate_judgments(judgments, pairs, scale, source)
    pairs = pairs.copy()
    pairs["pair_id"] = pairs["pair_id"].astype(str)
    weights = level_weights(pairs, pool_defender_scores)
    notes = []
    if screen is None:
        screen = scale == "-100..100"
    if screen:
        judged, screening = screen_judgments(judged, "preference_100")
        if screening.removed_ratings:
            rejected = screening.rejected_subjects
            notes.append(
                f"screening removed {screening.removed_ratings} of {screening.n_ratings} rating(s): "
                f"{screening.outlier_ratings} outlier rating(s)"
                + (f", all ratings of {len(rejected)} subject(s): {', '.join(rejected[:5])}" if rejected else "")
            )

    grouped = {pid: g["preference_100"].to_numpy(float) for pid, g in judged.groupby("pair_id")}
    rows = []
    for pair in pairs.itertuples(index=False):
        values = grouped.get(pair.pair_id, np.zeros(0))
        mean, sd, low, high = _mean_ci(values, confidence)
        rows.append(
            {
                "pair_id": pair.pair_id,
                "defender": pair.defender,
                "attacker": pair.attacker,
                "level": int(pair.level),
                "status": pair.status,
                "weight": float(weights.get(pair.pair_id, math.nan)),
                "n": int(len(values)),
                "mean": mean,
                "sd": sd,
                "ci_low": low,
                "ci_high": high,
            }
        )
    per_pair = pd.DataFrame(rows)
    unjudged = per_pair[(per_pair["status"] == "ok") & (per_pair["n"] == 0)]
    if len(unjudged):
        notes.append(f"{len(unjudged)} pair(s) without judgments left out: {', '.join(unjudged['pair_id'][:5])}")

    methods = sorted(set(pairs["defender"]) | set(pairs["attacker"]))
    aggressiveness = pd.DataFrame(np.nan, index=pd.Index(methods, name="attacker"), columns=pd.Index(methods, name="defender"))
    resistance = pd.DataFrame(np.nan, index=pd.Index(methods, name="defender"), columns=pd.Index(methods, name="attacker"))
    usable = per_pair[(per_pair["n"] > 0) & np.isfinite(per_pair["weight"]) & (per_pair["weight"] > 0)]
    for (defender, attacker), group in usable.groupby(["defender", "attacker"]):
        w = group["weight"].to_numpy(float)
        s = group["mean"].to_numpy(float)
        aggressiveness.loc[attacker, defender] = float(np.sum(w * s) / np.sum(w))
        resistance.loc[defender, attacker] = float(np.sum(w * (100.0 - np.abs(s))) / np.sum(w))

    ranking = pd.DataFrame(
        {
            "method": methods,
            "aggressiveness": [float(np.nanmean(aggressiveness.loc[m].to_numpy())) if aggressiveness.loc[m].notna().any() else math.nan for m in methods],
            "resistance": [float(np.nanmean(resistance.loc[m].to_numpy())) if resistance.loc[m].notna().any() else math.nan for m in methods],
        }
    )
    ranking["rank_aggressiveness"] = ranking["aggressiveness"].rank(ascending=False, method="min")
    ranking["rank_resistance"] = ranking["resistance"].rank(ascending=False, method="min")
    ranking["mean_rank"] = (ranking["rank_aggressiveness"] + ranking["rank_resistance"]) / 2
    # ties in mean rank: the mean of aggressiveness mapped to 0..100 and resistance decides
    ranking["balance"] = ((ranking["aggressiveness"] + 100.0) / 2 + ranking["resistance"]) / 2
    ranking = ranking.sort_values(["mean_rank", "balance"], ascending=[True, False],
                                  na_position="last").reset_index(drop=True)
    ranking["rank"] = np.arange(1, len(ranking) + 1)
    return GmadResult(per_pair, aggressiveness, resistance, ranking, scale, confidence, notes)


def pairs_for_methods(pairs: pd.DataFrame, methods: Iterable[str]) -> pd.DataFrame:
    methods = set(methods)
    return pairs[pairs["defender"].isin(methods) & pairs["attacker"].isin(methods)].reset_index(drop=True)
