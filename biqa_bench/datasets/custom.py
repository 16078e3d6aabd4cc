"""User-registered datasets: a labels CSV plus an image folder, remembered in the config file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..config import load_config, save_config
from ..errors import DatasetError
from .registry import DatasetEntry, DatasetInfo, builtin_entries, make_dataset, register_entry_source


# Columns of a `biqa datasets synth` labels file that pre-training needs (QAMT's class index or
# 26-way labels, HCL's reference images) and the ranges' distortion type and level; kept when present.
GENERATOR_COLUMNS: dict[str, type] = {"distortion": str, "level": str, "class_index": int, "labels": str, "reference_path": str}


def _loader_for(name: str, spec: dict[str, Any]):
    def load(root: Path | None = None) -> Any:
        csv_path = Path(spec["csv"])
        root_path = Path(root) if root is not None else Path(spec["root"])
        try:
            table = pd.read_csv(csv_path, dtype={"labels": str, "level": str})
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{csv_path}: cannot read labels CSV ({exc}); fix the file or re-add the dataset") from None
        columns = {"path": spec["path_column"], "score": spec["score_column"]}
        for optional in ("std", "content"):
            if spec.get(f"{optional}_column"):
                columns[optional] = spec[f"{optional}_column"]
        for role, column in columns.items():
            if column not in table.columns:
                raise DatasetError(
                    f"{csv_path}: no column '{column}' (the {role} column); columns are {list(table.columns)}. "
                    f"Re-add with --{role}-column NAME"
                )
        items = pd.DataFrame(
            {
                "item_id": table[columns["path"]].astype(str),
                "path": table[columns["path"]].astype(str),
                "score": table[columns["score"]],
            }
        )
        if "std" in columns:
            items["std"] = table[columns["std"]]
        items["content_id"] = table[columns["content"]].astype(str) if "content" in columns else items["item_id"]
        for column, dtype in GENERATOR_COLUMNS.items():  # the labels `biqa datasets synth` writes
            if column in table.columns and column not in columns.values():
                values = table[column]
                items[column] = values.fillna("").astype(str) if dtype is str else values
        return make_dataset(_info(name, spec), items, root_path, labels_file=csv_path, first_row=2)

    return load


def _info(name: str, spec: dict[str, Any]) -> DatasetInfo:
    return DatasetInfo(
        name=name,
        kind=spec.get("kind", "authentic"),
        score_type="DMOS" if spec.get("lower_better") else "MOS",
        higher_is_better=not spec.get("lower_better", False),
        score_range=(float(spec["score_range"][0]), float(spec["score_range"][1])),
        description=f"user dataset from {spec['csv']}",
        download="registered with `biqa datasets add`",
        needs_root=False,
    )


def _check_inside_root(paths, csv: Path, root: Path, path_column: str) -> None:
    """Every image path must lie below ``root`` (``../x`` or an absolute path would only fail
    later, or read files that are not part of the dataset)."""
    import os

    base = os.path.normpath(str(root))
    outside = []
    for path in paths:
        text = str(path).replace("\\", "/")
        joined = os.path.normpath(os.path.join(base, text))
        if os.path.isabs(text) or not (joined == base or joined.startswith(base.rstrip(os.sep) + os.sep)):
            outside.append(text)
    if outside:
        raise DatasetError(
            f"{csv}: {len(outside)} image paths in the '{path_column}' column lie outside --root {root} "
            f"(e.g. {outside[:3]}); give paths relative to --root, or pass --root a folder that holds them all"
        )


def custom_entries() -> dict[str, DatasetEntry]:
    """The datasets registered with ``biqa datasets add`` (read from the config each time)."""
    entries = {}
    for name, spec in load_config().get("datasets", {}).items():
        entries[name] = DatasetEntry(_info(name, spec), _loader_for(name, spec))
    return entries


register_entry_source(custom_entries)


def add_custom_dataset(
    name: str,
    csv: Path,
    root: Path,
    score_range: tuple[float, float],
    lower_better: bool = False,
    path_column: str = "path",
    score_column: str = "score",
    std_column: str | None = None,
    content_column: str | None = None,
    kind: str = "authentic",
) -> DatasetInfo:
    """Register a user dataset; validates the CSV now so mistakes show at once."""
    if name in builtin_entries():
        raise DatasetError(f"'{name}' is a built-in dataset; choose another name")
    if ":" in name or "/" in name:
        raise DatasetError(f"dataset name '{name}' may not contain ':' or '/'")
    csv = Path(csv).resolve()
    root = Path(root).resolve()
    if not csv.is_file():
        raise DatasetError(f"{csv}: labels CSV not found; check the path")
    if not root.is_dir():
        raise DatasetError(f"{root}: image folder not found; check the path")
    spec = {
        "csv": str(csv),
        "root": str(root),
        "score_range": [float(score_range[0]), float(score_range[1])],
        "lower_better": bool(lower_better),
        "path_column": path_column,
        "score_column": score_column,
        "std_column": std_column,
        "content_column": content_column,
        "kind": kind,
    }
    try:
        info = _info(name, spec)
    except ValueError as exc:
        raise DatasetError(f"dataset '{name}': {exc}") from None
    dataset = _loader_for(name, spec)(root)  # raises a clear error on a bad CSV
    _check_inside_root(dataset.items["path"], csv, root, path_column)
    config = load_config()
    config.setdefault("datasets", {})[name] = spec
    save_config(config)
    return info


def remove_custom_dataset(name: str) -> dict[str, Any]:
    """Unregister a user dataset (its files are left alone); returns its spec."""
    config = load_config()
    datasets = config.get("datasets", {})
    if name not in datasets:
        raise DatasetError(f"'{name}' is not a dataset you registered; see `biqa datasets list`")
    spec = datasets.pop(name)
    save_config(config)
    return spec
