"""User configuration and folders: the config file, the cache folder, the results root.

The config file (JSON) remembers dataset roots and user-registered datasets. Its location is
``$BIQA_CONFIG`` or ``~/.config/biqa/config.json``; the cache is ``$BIQA_CACHE`` or
``~/.cache/biqa``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import BiqaError

DEFAULT_RESULTS = Path("results")


def config_path() -> Path:
    env = os.environ.get("BIQA_CONFIG")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "biqa" / "config.json"


def cache_dir() -> Path:
    env = os.environ.get("BIQA_CACHE")
    if env:
        path = Path(env)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        path = Path(base) / "biqa"
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_config() -> dict[str, Any]:
    path = config_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BiqaError(f"{path}: config file is not valid JSON ({exc}); fix or delete it") from None
    if not isinstance(data, dict):
        raise BiqaError(f"{path}: config file must hold a JSON object; fix or delete it")
    return data


def save_config(data: dict[str, Any]) -> Path:
    from .store import atomic_write_text  # here, not at import: keeps `biqa --help` free of pandas

    path = config_path()
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def dataset_root(name: str) -> Path | None:
    root = load_config().get("roots", {}).get(name)
    return Path(root) if root else None


def set_dataset_root(name: str, root: Path) -> Path:
    data = load_config()
    data.setdefault("roots", {})[name] = str(Path(root).resolve())
    return save_config(data)
