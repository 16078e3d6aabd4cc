"""Imports every built-in dataset module so that its loader registers itself, and the source of
the user's datasets (``custom``), which registers itself as an entry source."""

from __future__ import annotations

import importlib

BUILTIN_MODULES = [
    "synthetic",
    "koniq",
    "clive",
    "bid",
    "spaq",
    "cid2013",
    "live",
    "csiq",
    "tid2013",
    "custom",
]

for _module in BUILTIN_MODULES:
    try:
        importlib.import_module(f"{__package__}.{_module}")
    except ModuleNotFoundError as exc:  # a parser not written yet must not break the others
        if exc.name != f"{__package__}.{_module}":
            raise
