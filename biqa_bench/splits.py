"""Repeated, seeded train/val/test splits: the one split rule of the tool.

Rule: items are grouped by ``content_id`` and whole groups go to train, val or test. For
authentic datasets ``content_id`` is the image itself, so this is a split by image; for
synthetic datasets it is the reference image, so no content is in both train and test.
For repeat ``r`` the contents are shuffled with ``numpy.random.default_rng([seed, r])``;
the first ``round(test_fraction * n_contents)`` go to test, then ``round(val_fraction *
n_remaining)`` of the rest to val (carved from train), the remainder to train.
``official=True`` uses a dataset's own split (column ``official_set`` = train/val/test, e.g.
KonIQ-10k's 7058/1000/2015) as a single repeat.

A split set is saved as one JSON file holding the dataset name and fingerprint, the
parameters and every repeat's item ids; its hash identifies it in run manifests, so that
analyses can verify that methods were run on the same splits.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .datasets.registry import Dataset
from .errors import SplitError
from .store import Run, atomic_write_json, safe_name

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Split:
    index: int
    train: list[str]
    val: list[str]
    test: list[str]


@dataclass(frozen=True)
class SplitSet:
    dataset: str
    fingerprint: str
    seed: int
    repeats: int
    test_fraction: float
    val_fraction: float
    rule: str  # "content" | "official"
    splits: list[Split] = field(default_factory=list)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["format_version"] = FORMAT_VERSION
        return data

    @property
    def hash(self) -> str:
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def save(self, path: Path) -> Path:
        atomic_write_json(Path(path), self.to_dict())
        return Path(path)


def whole_split_hash(dataset: Dataset) -> str:
    """What identifies the "split" of a whole-dataset run: every labelled item of this dataset.
    Whole runs of different methods on one dataset share it (the items each covers are compared
    on their intersection; see :func:`biqa_bench.evaluation.metrics.common_whole_items`)."""
    return hashlib.sha256(f"whole:{dataset.fingerprint}".encode("utf-8")).hexdigest()[:16]


def default_split_path(out: Path, dataset: str, seed: int, repeats: int, official: bool = False) -> Path:
    suffix = "official" if official else f"seed{seed}-r{repeats}"
    return Path(out) / "splits" / f"{safe_name(dataset)}-{suffix}.json"


def make_splits(
    dataset: Dataset,
    repeats: int = 10,
    seed: int = 0,
    test_fraction: float = 0.2,
    val_fraction: float = 0.1,
    official: bool = False,
) -> SplitSet:
    if official:
        return _official_split(dataset)
    if repeats < 1:
        raise SplitError("--repeats must be at least 1")
    if not 0 < test_fraction < 1 or not 0 <= val_fraction < 1:
        raise SplitError("fractions must lie in (0, 1): check --test and --val")
    items = dataset.items
    contents = np.array(sorted(items["content_id"].unique()))
    if len(contents) < 3:
        raise SplitError(f"dataset '{dataset.name}' has {len(contents)} contents; at least 3 are needed to split")
    by_content = items.groupby("content_id")["item_id"].apply(list).to_dict()
    splits = []
    for repeat in range(repeats):
        rng = np.random.default_rng([seed, repeat])
        order = contents[rng.permutation(len(contents))]
        n_test = max(1, int(round(test_fraction * len(order))))
        test_contents, rest = order[:n_test], order[n_test:]
        n_val = int(round(val_fraction * len(rest)))
        if val_fraction > 0:
            n_val = max(1, n_val)
        val_contents, train_contents = rest[:n_val], rest[n_val:]
        if len(train_contents) == 0:
            raise SplitError(f"dataset '{dataset.name}': no contents left for training; lower --test or --val")

        def ids(group) -> list[str]:
            return sorted(i for c in group for i in by_content[c])

        splits.append(Split(repeat, ids(train_contents), ids(val_contents), ids(test_contents)))
    return SplitSet(dataset.name, dataset.fingerprint, seed, repeats, test_fraction, val_fraction, "content", splits)


def full_train_split(dataset: Dataset, seed: int = 0, val_fraction: float = 0.1) -> SplitSet:
    """All of a dataset for training (val carved from it by content): for cross-dataset tests."""
    rng = np.random.default_rng([seed, 0])
    contents = np.array(sorted(dataset.items["content_id"].unique()))
    order = contents[rng.permutation(len(contents))]
    n_val = max(1, int(round(val_fraction * len(order)))) if val_fraction > 0 else 0
    val_contents = set(order[:n_val])
    in_val = dataset.items["content_id"].isin(val_contents)
    split = Split(0, sorted(dataset.items.loc[~in_val, "item_id"]), sorted(dataset.items.loc[in_val, "item_id"]), [])
    return SplitSet(dataset.name, dataset.fingerprint, seed, 1, 0.0, val_fraction, "all", [split])


def _official_split(dataset: Dataset) -> SplitSet:
    items = dataset.items
    if "official_set" not in items.columns:
        raise SplitError(
            f"dataset '{dataset.name}' has no official split; drop --official "
            "(KonIQ-10k has one when koniq10k_distributions_sets.csv is present)"
        )
    groups = {name: sorted(items.loc[items["official_set"] == name, "item_id"]) for name in ("train", "val", "test")}
    if not groups["train"] or not groups["test"]:
        raise SplitError(f"dataset '{dataset.name}': its official split lacks train or test items")
    split = Split(0, groups["train"], groups["val"], groups["test"])
    return SplitSet(dataset.name, dataset.fingerprint, 0, 1, float("nan"), float("nan"), "official", [split])


def load_splits(path: Path, dataset: Dataset | None = None) -> SplitSet:
    """Read a split file; with ``dataset``, verify that it still matches it (:func:`check_splits`)."""
    return load_checked_splits(path, dataset)[0]


def load_checked_splits(path: Path, dataset: Dataset | None = None) -> tuple[SplitSet, "SplitCheck | None"]:
    """A split file and, with ``dataset``, what :func:`check_splits` found (None without one)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        splits = [Split(int(s["index"]), list(s["train"]), list(s["val"]), list(s["test"])) for s in data["splits"]]
        split_set = SplitSet(
            dataset=data["dataset"],
            fingerprint=data["fingerprint"],
            seed=int(data["seed"]),
            repeats=int(data["repeats"]),
            test_fraction=float(data["test_fraction"]),
            val_fraction=float(data["val_fraction"]),
            rule=data["rule"],
            splits=splits,
        )
    except FileNotFoundError:
        raise SplitError(f"{path}: split file not found; make one with `biqa splits make`") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SplitError(f"{path}: not a valid split file ({type(exc).__name__}: {exc}); re-make it with `biqa splits make`") from None
    if dataset is None:
        return split_set, None
    if split_set.dataset.split(":")[0] != dataset.name.split(":")[0]:
        raise SplitError(f"{path}: split file is for dataset '{split_set.dataset}', not '{dataset.name}'")
    if split_set.fingerprint != dataset.fingerprint:
        raise SplitError(
            f"{path}: split file no longer matches dataset '{dataset.name}' (fingerprint "
            f"{split_set.fingerprint} != {dataset.fingerprint}); its labels or files changed. "
            "Re-make the splits with `biqa splits make` and re-run the methods"
        )
    return split_set, check_splits(split_set, dataset, path)


@dataclass(frozen=True)
class SplitCheck:
    """What :func:`check_splits` found that is not an error: dataset items no part names."""

    path: str
    dataset: str
    n_items: int
    unassigned: dict[int, int]  # split index -> how many dataset items are in none of its parts

    def warnings(self) -> list[str]:
        if not self.unassigned:
            return []
        counts = ", ".join(f"split {k}: {n}" for k, n in sorted(self.unassigned.items()))
        return [
            f"{self.path}: items of '{self.dataset}' ({self.n_items}) in no part of a split ({counts}); "
            "they are not trained or tested on. Re-make the splits with `biqa splits make` if that is not meant"
        ]


PARTS = ("train", "val", "test")
_REMAKE = "re-make the splits with `biqa splits make`"


def check_splits(split_set: SplitSet, dataset: Dataset, path: Path | str = "split file") -> SplitCheck:
    """Validate every split against ``dataset`` (a hand-edited file is not trusted).

    Errors (:class:`SplitError`): two splits with one index; an item named twice; an item not in
    the dataset; an empty train or test part (an empty val too when the file asked for one); an
    item, or a content (the reference image of a synthetic set, the scene of CID2013, ...), in
    two parts of one split, which leaks test data into training. Not an error: dataset items in
    no part (counted per split in the returned :class:`SplitCheck`, for a warning).
    """
    items = dataset.items
    content_of = dict(zip(items["item_id"], items["content_id"]))
    contents_differ = bool((items["content_id"] != items["item_id"]).any())
    seen_indices: set[int] = set()
    unassigned: dict[int, int] = {}
    for split in split_set.splits:
        where = f"{path}: split {split.index}"
        if split.index in seen_indices:
            raise SplitError(f"{path}: two splits have index {split.index}; each split needs its own index: {_REMAKE}")
        seen_indices.add(split.index)
        parts = {name: getattr(split, name) for name in PARTS}
        named: list[str] = [i for ids in parts.values() for i in ids]
        unknown = sorted({i for i in named if i not in content_of})
        if unknown:
            raise SplitError(f"{where} names {len(unknown)} items not in '{dataset.name}' (e.g. {unknown[:3]}); {_REMAKE}")
        for name, ids in parts.items():
            if len(set(ids)) != len(ids):
                repeated = sorted(i for i, n in Counter(ids).items() if n > 1)
                raise SplitError(f"{where}: {len(repeated)} items listed twice in its {name} part (e.g. {repeated[:3]}); {_REMAKE}")
        may_be_empty = {"val"} if not split_set.val_fraction > 0 else set()  # NaN (official): as the dataset has it
        if split_set.rule == "all":
            may_be_empty.add("test")
        for name, ids in parts.items():
            if not ids and name not in may_be_empty:
                need = (f"the file asks for a val fraction of {split_set.val_fraction:g}" if name == "val"
                        else "every split needs train and test items")
                raise SplitError(f"{where}: its {name} part is empty ({need}); {_REMAKE}")
        for first, second in (("train", "test"), ("train", "val"), ("val", "test")):
            shared = sorted(set(parts[first]) & set(parts[second]))
            if shared:
                raise SplitError(
                    f"{where}: {len(shared)} items are in both {first} and {second} (e.g. {shared[:3]}), a leak; {_REMAKE}"
                )
            if contents_differ:
                shared = sorted({content_of[i] for i in parts[first]} & {content_of[i] for i in parts[second]})
                if shared:
                    raise SplitError(
                        f"{where}: {len(shared)} contents (reference images) have items in both {first} and {second} "
                        f"(e.g. {shared[:3]}), a leak; split by content: {_REMAKE}"
                    )
        missing = len(content_of) - len(set(named))
        if missing:
            unassigned[split.index] = missing
    return SplitCheck(str(path), dataset.name, len(content_of), unassigned)


@dataclass(frozen=True)
class SplitCoverage:
    """How many splits of its split file one (method, train dataset) has runs for."""

    method: str
    train_dataset: str
    present: tuple[int, ...]
    expected: tuple[int, ...] | None  # the split file's indices; None when no manifest or file tells

    @property
    def missing(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.expected or ()) - set(self.present)))

    @property
    def text(self) -> str:
        """``5 of 6 splits; split 2 missing`` (or ``5 splits`` when the split file is unknown)."""
        if self.expected is None:
            return f"{len(self.present)} splits (split file unknown)"
        total = len(set(self.expected) | set(self.present))
        text = f"{len(self.present)} of {total} splits"
        if self.missing:
            names = ", ".join(str(k) for k in self.missing)
            text += f"; split{'s' if len(self.missing) > 1 else ''} {names} missing"
        return text


def split_coverage(runs: list[Run]) -> list[SplitCoverage]:
    """Per (method, train dataset): the splits with a complete run against those of the split file
    (``split_indices`` in the manifests; for runs made before it was recorded, the split file the
    manifest names, when it is still there with the same hash). Whole-dataset runs have no splits
    and are left out (the report and eval say what they cover)."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        if run.is_whole:
            continue
        groups.setdefault((run.method, run.train_dataset), []).append(run)
    coverage = []
    for (method, dataset), members in sorted(groups.items()):
        expected: set[int] | None = None
        for run in members:
            indices = run.manifest.get("split_indices")
            if indices is None:
                indices = _split_file_indices(run.manifest)
            if indices is not None:
                expected = (expected or set()) | {int(k) for k in indices}
        present = tuple(sorted({run.split for run in members}))
        coverage.append(SplitCoverage(method, dataset, present, tuple(sorted(expected)) if expected is not None else None))
    return coverage


def _split_file_indices(manifest: dict) -> list[int] | None:
    path = manifest.get("split_file")
    if not path or not Path(path).is_file():
        return None
    try:
        split_set = load_splits(Path(path))
    except SplitError:
        return None
    if split_set.hash != manifest.get("split_hash"):  # changed since: it no longer tells
        return None
    return [split.index for split in split_set.splits]


def resolve_splits(
    dataset: Dataset, splits_file: Path | None, out: Path, repeats: int, seed: int, official: bool = False, warn=None,
) -> tuple[SplitSet, Path]:
    """The split set for a run and its file: the given file (validated against ``dataset``), else
    the default file under ``out/splits``, made once. ``warn(message)`` gets the check's warnings."""
    if splits_file is None:
        path = default_split_path(out, dataset.name, seed, repeats, official)
        if not path.exists():
            split_set = make_splits(dataset, repeats=repeats, seed=seed, official=official)
            split_set.save(path)
            return split_set, path
    else:
        path = Path(splits_file)
    split_set, check = load_checked_splits(path, dataset)
    if warn is not None and check is not None:
        for message in check.warnings():
            warn(message)
    return split_set, path
