"""The dataset registry: metadata, the items table, fingerprints and name look-up.

Contract (see DESIGN.md). A dataset is :class:`DatasetInfo` metadata plus an items table with
the columns ``item_id``, ``path`` (relative to the dataset root), ``score`` (as distributed),
``quality`` (0-100, higher is better, the linear map of the nominal score range, DMOS
inverted), ``content_id`` (the reference image for synthetic sets, the image itself otherwise)
and optional ``std``, ``n_ratings``, ``distortion``, ``level`` and dataset-specific columns.

A loader is registered with :func:`register_dataset` and called as ``loader(root, **options)``;
it returns a :class:`Dataset` built with :func:`make_dataset`. Options come from the name
spec ``name:key=value,key=value`` (for example ``koniq:scale=mos``).
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..errors import DatasetError, did_you_mean  # noqa: F401 (did_you_mean re-exported)

REQUIRED_COLUMNS = ["item_id", "path", "score", "quality", "content_id"]
KINDS = ("authentic", "synthetic")


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    kind: str  # "authentic" | "synthetic"
    score_type: str  # "MOS" | "DMOS"
    higher_is_better: bool
    score_range: tuple[float, float]  # nominal range of ``score``
    n_contents: int | None = None
    n_items: int | None = None
    description: str = ""
    download: str = ""  # where to get it and what to unpack
    needs_root: bool = True  # False for the embedded sets, which build themselves
    options: dict[str, str] = field(default_factory=dict)  # option -> help text

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {self.kind!r}")
        lo, hi = self.score_range
        if not hi > lo:
            raise ValueError(f"score_range must be increasing, got {self.score_range}")


def info_to_dict(info: DatasetInfo) -> dict[str, Any]:
    """Metadata as JSON-able dict (stored in run manifests so analyses need no dataset files)."""
    from dataclasses import asdict

    data = asdict(info)
    data["score_range"] = list(info.score_range)
    return data


def info_from_dict(data: dict[str, Any]) -> DatasetInfo:
    data = dict(data)
    data["score_range"] = tuple(data["score_range"])
    return DatasetInfo(**data)


@dataclass
class Dataset:
    info: DatasetInfo
    items: pd.DataFrame
    root: Path
    spec: str  # the name with options, e.g. "koniq:scale=mos"; used in results

    @property
    def name(self) -> str:
        return self.spec

    @property
    def fingerprint(self) -> str:
        return fingerprint_items(self.items)

    def abspath(self, relative: str) -> Path:
        return self.root / relative

    def with_abspaths(self, items: pd.DataFrame | None = None) -> pd.DataFrame:
        """The items table (or a subset of it) with ``path`` made absolute."""
        frame = (self.items if items is None else items).copy()
        frame["path"] = [str(self.root / p) for p in frame["path"]]
        return frame

    def subset(self, item_ids) -> pd.DataFrame:
        index = self.items.set_index("item_id", drop=False)
        return index.loc[list(item_ids)].reset_index(drop=True)


def fingerprint_items(items: pd.DataFrame) -> str:
    """SHA-256 (first 16 hex digits) of item ids, paths, scores and contents, in id order."""
    frame = items[["item_id", "path", "score", "content_id"]].sort_values("item_id")
    text = "\n".join(
        f"{i}\t{p}\t{float(s):.6g}\t{c}"
        for i, p, s, c in zip(frame["item_id"], frame["path"], frame["score"], frame["content_id"])
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def quality_from_score(score, info: DatasetInfo) -> np.ndarray:
    """Map scores linearly from the nominal range to 0-100, higher is better."""
    lo, hi = info.score_range
    score = np.asarray(score, dtype=float)
    quality = (score - lo) / (hi - lo) * 100.0
    return quality if info.higher_is_better else 100.0 - quality


def make_dataset(
    info: DatasetInfo, items: pd.DataFrame, root: Path, spec: str | None = None,
    labels_file: Path | str | None = None, first_row: int | None = None,
) -> Dataset:
    """Validate an items table, add ``quality`` (and ``content_id`` if absent), build a Dataset.

    Scores (and ``std`` when present) must be finite numbers. ``labels_file`` names the file
    the items came from in errors; ``first_row`` is the file's line of the first item (2 for a
    CSV with a header), so that errors give the rows to fix.
    """
    frame = items.copy()
    for column in ("item_id", "path", "score"):
        if column not in frame.columns:
            raise DatasetError(f"{info.name}: loader produced no '{column}' column")
    frame["item_id"] = frame["item_id"].astype(str)
    frame["path"] = frame["path"].astype(str)
    where = f"{labels_file} (dataset '{info.name}')" if labels_file is not None else info.name
    for column in ("score", "std"):
        if column in frame.columns:
            frame[column] = _finite_column(frame, column, where, first_row)
    if frame["item_id"].duplicated().any():
        dup = frame.loc[frame["item_id"].duplicated(), "item_id"].head(3).tolist()
        raise DatasetError(f"{where}: duplicate item ids {dup}; check the label file")
    if "content_id" not in frame.columns:
        frame["content_id"] = frame["item_id"]
    frame["content_id"] = frame["content_id"].astype(str)
    frame["quality"] = quality_from_score(frame["score"], info)
    ordered = REQUIRED_COLUMNS + [c for c in frame.columns if c not in REQUIRED_COLUMNS]
    frame = frame[ordered].reset_index(drop=True)
    return Dataset(info=info, items=frame, root=Path(root), spec=spec or info.name)


def _finite_column(frame: pd.DataFrame, column: str, where: str, first_row: int | None) -> pd.Series:
    """``frame[column]`` as floats; a missing, non-numeric, NaN or infinite value is a DatasetError
    naming the items (and rows), since a single one makes training fail far from its cause."""
    values = pd.to_numeric(frame[column], errors="coerce").astype(float)
    bad = ~np.isfinite(values.to_numpy())
    if bad.any():
        positions = np.flatnonzero(bad)
        ids = frame["item_id"].iloc[positions[:3]].tolist()
        rows = f" in rows {[int(p) + first_row for p in positions[:3]]}" if first_row is not None else ""
        more = f" (and {len(positions) - 3} more)" if len(positions) > 3 else ""
        kind = "infinite" if np.isinf(values.to_numpy()[bad]).all() else "missing, non-numeric, NaN or infinite"
        raise DatasetError(
            f"{where}: {len(positions)} {kind} {column} value(s){rows} for items {ids}{more}; "
            f"every {column} must be a finite number: fix or remove those rows in the label file"
        )
    return values


Loader = Callable[..., Dataset]


@dataclass(frozen=True)
class DatasetEntry:
    info: DatasetInfo
    loader: Loader


_REGISTRY: dict[str, DatasetEntry] = {}
#: Functions giving more entries each time the registry is read (the user's datasets, from the
#: config: see :mod:`.custom`), so that the registry itself imports none of its sources.
_ENTRY_SOURCES: list[Callable[[], dict[str, DatasetEntry]]] = []


def register_dataset(info: DatasetInfo) -> Callable[[Loader], Loader]:
    """Decorator: register ``loader(root: Path, **options) -> Dataset`` under ``info.name``."""

    def decorate(loader: Loader) -> Loader:
        _REGISTRY[info.name] = DatasetEntry(info, loader)
        return loader

    return decorate


def register_entry_source(source: Callable[[], dict[str, DatasetEntry]]) -> None:
    """Add ``source() -> {name: entry}``, asked each time the registry is read."""
    _ENTRY_SOURCES.append(source)


def _ensure_builtin() -> None:
    # Importing _builtin imports the built-in loaders, which register themselves, and the
    # user-dataset source (custom.py), which registers its entry source.
    importlib.import_module(f"{__package__}._builtin")


def builtin_entries() -> dict[str, DatasetEntry]:
    """The datasets this package ships (public databases and the embedded sets), not the user's."""
    _ensure_builtin()
    return dict(_REGISTRY)


def registered() -> dict[str, DatasetEntry]:
    """Every dataset: the built-in ones and those the entry sources give (the user's)."""
    entries = builtin_entries()
    for source in _ENTRY_SOURCES:
        entries.update(source())
    return entries


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``'koniq:scale=mos,foo=1'`` -> ``('koniq', {'scale': 'mos', 'foo': '1'})``."""
    name, _, rest = spec.partition(":")
    options: dict[str, str] = {}
    if rest:
        for part in rest.split(","):
            key, sep, value = part.partition("=")
            if not sep or not key:
                raise DatasetError(f"dataset '{spec}': options must read name:key=value[,key=value]")
            options[key.strip()] = value.strip()
    return name.strip(), options


def get_entry(name: str) -> DatasetEntry:
    entries = registered()
    if name not in entries:
        raise DatasetError(
            f"unknown dataset '{name}'.{did_you_mean(name, entries)} "
            "See `biqa datasets list`, or register yours with `biqa datasets add`."
        )
    return entries[name]


def load_dataset(spec: str, root: Path | str | None = None) -> Dataset:
    """Load a registered dataset by name spec; the root comes from the argument or the config."""
    from ..config import dataset_root

    name, options = parse_spec(spec)
    entry = get_entry(name)
    unknown = sorted(set(options) - set(entry.info.options))
    if unknown:
        known = ", ".join(sorted(entry.info.options)) or "none"
        raise DatasetError(f"dataset '{name}': unknown option(s) {unknown}; its options are: {known}")
    if root is None:
        root = dataset_root(name)
    if root is None and entry.info.needs_root:
        raise DatasetError(
            f"dataset '{name}': no root folder known; pass --root DIR or run "
            f"`biqa datasets root {name} DIR` (download: {entry.info.download or 'see biqa datasets info'})"
        )
    root_path = Path(root) if root is not None else None
    if root_path is not None and not root_path.is_dir():
        raise DatasetError(f"dataset '{name}': root folder {root_path} does not exist; check the path")
    dataset = entry.loader(root_path, **options)
    if len(dataset.items) == 0:
        raise DatasetError(
            f"dataset '{name}'{f' in {root_path}' if root_path is not None else ''}: its label files list no images; "
            f"is this the official, unmodified download? ({entry.info.download or 'see biqa datasets info ' + name})"
        )
    canonical = name if not options else name + ":" + ",".join(f"{k}={v}" for k, v in sorted(options.items()))
    if dataset.spec != canonical:
        dataset = replace(dataset, spec=canonical)
    return dataset
