"""`biqa cache`: what the cache folder holds, and clearing the parts that can be rebuilt."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import typer
from rich.table import Table

from ..cli_common import console, print_json, run_command
from ..errors import BiqaError

app = typer.Typer(
    help=(
        "Show and clear the cache ($BIQA_CACHE or ~/.cache/biqa): image caches, features, pre-training "
        "stages, enhancements, embedded sets.\n\nExample: biqa cache info"
    ),
    no_args_is_help=True,
)

DELETING = ".deleting-"  # a kind folder being removed is renamed <kind>.deleting-<pid> first


def register(main: typer.Typer) -> None:
    main.add_typer(app, name="cache")


def folder_usage(folder: Path) -> tuple[int, int, int]:
    """(entries at the top level, files, bytes) under ``folder``; zeros when it does not exist."""
    if not folder.is_dir():
        return 0, 0, 0
    entries = sum(1 for _ in folder.iterdir())
    files = size = 0
    for base, _dirs, names in os.walk(folder):
        for name in names:
            try:
                size += os.lstat(os.path.join(base, name)).st_size
            except OSError:  # removed meanwhile
                continue
            files += 1
    return entries, files, size


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


@app.command("info")
@run_command
def info(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Size of each part of the cache. Example: biqa cache info --json"""
    from ..config import CACHE_KINDS, cache_dir, cache_path

    rows = []
    for kind, what in CACHE_KINDS.items():
        entries, files, size = folder_usage(cache_path(kind))
        rows.append({"kind": kind, "entries": entries, "files": files, "bytes": size, "path": str(cache_path(kind)), "holds": what})
    if as_json:
        print_json(json.dumps({"cache": str(cache_dir()), "kinds": rows}, indent=2))
        return
    table = Table(title=f"cache: {cache_dir()}", title_justify="left")
    for column, justify in (("kind", "left"), ("entries", "right"), ("files", "right"), ("size", "right"), ("holds", "left")):
        table.add_column(column, justify=justify)
    for row in rows:
        table.add_row(row["kind"], str(row["entries"]), str(row["files"]), _human(row["bytes"]), row["holds"])
    console.print(table)
    console.print(f"total {_human(sum(r['bytes'] for r in rows))}; clear a part with `biqa cache clear KIND --yes`")


@app.command("clear")
@run_command
def clear(
    kinds: list[str] = typer.Argument(..., help="Parts to clear: images, features, pretrain, enhance, embedded, or all."),
    yes: bool = typer.Option(False, "--yes", help="Delete; without it, only say what would be deleted."),
) -> None:
    """Delete cached parts; they are rebuilt when next needed (same inputs, same results).

    `synth` (generated data sets) is data, not cache, and is never cleared here. Without --yes
    nothing is deleted. Clear while no biqa job runs: one that is writing into a part fails
    (it is safe to re-run it). Example: biqa cache clear enhance features --yes
    """
    from ..config import CACHE_KINDS, cache_path

    clearable = [k for k in CACHE_KINDS if k != "synth"]
    chosen: list[str] = []
    for kind in kinds:
        if kind == "all":
            chosen += clearable
        elif kind == "synth":
            raise BiqaError("synth holds the data sets `biqa datasets synth` generated and registered: not a cache; delete a set's folder yourself")
        elif kind not in CACHE_KINDS:
            raise BiqaError(f"unknown cache part '{kind}'; one of {', '.join(clearable)} or all")
        else:
            chosen.append(kind)
    chosen = list(dict.fromkeys(chosen))
    total = 0
    for kind in chosen:
        folder = cache_path(kind)
        leftovers = sorted(folder.parent.glob(f"{kind}{DELETING}*"))
        _entries, files, size = folder_usage(folder)
        for leftover in leftovers:
            size += folder_usage(leftover)[2]
        total += size
        if not yes:
            console.print(f"would delete {kind}: {files} files, {_human(size)} ({folder})")
            continue
        if folder.is_dir():
            # Renamed first (atomic): a run starting meanwhile finds no half-deleted cache, and
            # an interrupted removal leaves a .deleting folder that the next clear removes.
            doomed = folder.with_name(f"{kind}{DELETING}{os.getpid()}")
            folder.rename(doomed)
            leftovers.append(doomed)
        for leftover in leftovers:
            shutil.rmtree(leftover, ignore_errors=True)
        console.print(f"deleted {kind}: {files} files, {_human(size)}")
    if not yes:
        console.print(f"nothing deleted ({_human(total)} in all): add --yes to delete")
