"""What every CLI command shares: the Rich consoles, one-line errors, progress bars, parsing."""

from __future__ import annotations

import functools
import json
import math
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .errors import BiqaError

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    """Print one red line on stderr and exit: the only way a command reports a user error."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def run_command(fn: Callable) -> Callable:
    """Decorator for a command: a BiqaError becomes one line and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BiqaError as exc:
            fail(str(exc))

    return wrapper


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Callable[[str, float, float | None], None]]:
    """Yield ``report(description, completed, total)`` drawing one Rich bar per description."""
    if not enabled:
        yield lambda *args: None
        return
    columns = [
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=err_console, transient=True) as progress:
        tasks: dict[str, Any] = {}

        def report(description: str, completed: float, total: float | None = None) -> None:
            if description not in tasks:
                tasks[description] = progress.add_task(description, total=total)
            progress.update(tasks[description], completed=completed, total=total)

        yield report


def parse_params(pairs: list[str] | None) -> dict[str, Any]:
    """``["epochs=3", "lr=1e-3", "name=x"]`` -> typed dict (JSON literals where they parse)."""
    params: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BiqaError(f"parameter '{pair}' must read key=value (e.g. -p epochs=5)")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def json_records(frame) -> str:
    """A DataFrame as a JSON list of flat records; NaN becomes null."""
    records = frame.to_dict(orient="records")
    clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in records]
    return json.dumps(clean, indent=1, default=str)


def print_json(text: str) -> None:
    sys.stdout.write(text + "\n")
