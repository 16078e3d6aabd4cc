"""What every CLI command shares: the Rich consoles, one-line errors, progress bars, parsing."""

from __future__ import annotations

import errno
import functools
import json
import math
import os
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .errors import BiqaError

# Piped or logged output (CI, `| tee`) gets 120 columns instead of Rich's 80, so tables of
# results keep their names and figures whole.
console = Console(width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 120)


def fail(message: str, code: int = 2) -> None:
    """Print one red line on stderr and exit: the only way a command reports a user error."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


INTERRUPTED = "interrupted: what was complete is kept; run the same command again to resume"


_OS_HINTS = {
    errno.ENOTDIR: "a file stands where a folder is needed; choose another path",
    errno.EISDIR: "a folder stands where a file is needed; choose another path",
    errno.EACCES: "no permission; choose a path you can write to",
    errno.EPERM: "not permitted; choose a path you can write to",
    errno.ENOSPC: "the disk is full; free space (`biqa cache info` shows the cache) and run the same command again to resume",
    errno.EROFS: "read-only file system; choose a path you can write to",
}


def os_error_message(exc: OSError) -> str:
    """One line for a file-system error: the path, what went wrong, what to do."""
    where = exc.filename if exc.filename is not None else "file system"
    hint = _OS_HINTS.get(exc.errno, "check the path")
    return f"{where}: {exc.strerror or exc}; {hint}"


def run_command(fn: Callable) -> Callable:
    """Decorator for a command: a BiqaError becomes one line and exit code 2; Ctrl-C one line and 130;
    a file-system error (a file where a folder should be, no permission, a full disk) one line and 2
    (``BIQA_TRACEBACK=1`` shows its traceback instead).

    Typer turns KeyboardInterrupt into a silent exit 130 before ``biqa_bench.cli.main`` sees it,
    so the interrupt line is printed here, inside the command.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BiqaError as exc:
            fail(str(exc))
        except OSError as exc:
            if os.environ.get("BIQA_TRACEBACK"):
                raise
            fail(os_error_message(exc))
        except KeyboardInterrupt:
            err_console.print(INTERRUPTED, highlight=False, soft_wrap=True)
            raise typer.Exit(130) from None

    return wrapper


def warn(message: str) -> None:
    """One yellow line on stderr: something the user should look at, without failing."""
    err_console.print(f"[bold yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Callable[[str, float, float | None], None]]:
    """Yield ``report(description, completed, total)`` drawing one Rich bar per description.

    Off when stderr is not a terminal: Rich would not animate there, and its transient bar
    would leave a stray blank line before any error message.
    """
    if not enabled or not err_console.is_terminal:
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


def check_device(device: str) -> str:
    """``--device``: 'cpu', 'cuda' or 'cuda:N'; anything else is a one-line error before any work."""
    import re

    if not re.fullmatch(r"cpu|cuda(:\d+)?", str(device).strip()):
        raise BiqaError(f"--device '{device}': use cpu, cuda or cuda:N (the N-th GPU)")
    return str(device).strip()


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


def check_param_types(method: str, cls: type, params: dict[str, Any]) -> None:
    """Refuse a ``-p key=value`` whose value cannot be of the type of the parameter's default.

    Catches ``-p n_jobs=abc`` or ``-p c_grid=abc`` at once rather than as a traceback deep in
    ``fit``, minutes later. Parameters without a default (or a None default) are not checked.
    """
    import inspect

    try:
        signature = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return
    for key, value in params.items():
        parameter = signature.parameters.get(key)
        if parameter is None or parameter.default is inspect.Parameter.empty or parameter.default is None:
            continue
        default = parameter.default
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, (int, float)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if isinstance(default, int) and isinstance(value, float):
                ok = value.is_integer()
        elif isinstance(default, (list, tuple)):
            ok = isinstance(value, (list, tuple))
        elif isinstance(default, str):
            ok = isinstance(value, str)
        else:
            continue
        if not ok:
            kind = "a list such as [1, 2]" if isinstance(default, (list, tuple)) else f"a {type(default).__name__}"
            raise BiqaError(
                f"-p {key}={value!r} for method '{method}': expected {kind} (default {json.dumps(default)}), "
                f"e.g. -p {key}={json.dumps(default, separators=(',', ':'))}"
            )


def json_records(frame) -> str:
    """A DataFrame as a JSON list of flat records; NaN becomes null."""
    records = frame.to_dict(orient="records")
    clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in records]
    return json.dumps(clean, indent=1, default=str)


def print_json(text: str) -> None:
    sys.stdout.write(text + "\n")


def comma_list(text: str) -> list[str]:
    """The comma-separated names of an option, in order, blanks dropped: ``"a, b,,c"`` -> a, b, c."""
    return [part.strip() for part in text.split(",") if part.strip()]


def resolve_splits(dataset, splits_file, out, repeats: int, seed: int, official: bool = False):
    """:func:`biqa_bench.splits.resolve_splits` with the split check's warnings shown on stderr."""
    from .splits import resolve_splits as resolve

    return resolve(dataset, splits_file, out, repeats, seed, official, warn=warn)


def render_summary(summary, title: str, ci: bool = False) -> None:
    """The summary as a Rich table; figures not defined, and means over fewer splits than were
    run (marked †, with the count per metric), get a numbered note under it. ``ci``: each figure
    with its 95 % interval (the summary's ``<metric>_ci_low/high``) instead of ± std."""
    from rich.table import Table

    from .evaluation.intervals import format_interval

    table = Table(title=title)
    if "whole" in summary.columns and summary["whole"].any():
        table.caption = "splits 'whole': a whole-dataset run (every labelled item, no split)"
    for column in ("method", "dataset", "subset", "splits", "n", "SROCC", "KROCC", "PLCC", "RMSE"):
        text = column in ("method", "dataset", "subset")
        table.add_column(column, justify="left" if text else "right", no_wrap=True)
    metrics = {"srocc": "SROCC", "krocc": "KROCC", "plcc": "PLCC", "rmse": "RMSE"}

    def cell(row, metric):
        mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
        if mean != mean:
            return "–"
        if ci:
            low, high = row.get(f"{metric}_ci_low", float("nan")), row.get(f"{metric}_ci_high", float("nan"))
            text = f"{mean:.3f} {format_interval(mean, low, high)}".rstrip()
        else:
            text = f"{mean:.3f}" + (f" ± {std:.3f}" if std == std else "")
        return text + ("†" if metric in fewer(row) else "")

    def fewer(row) -> dict:
        # metric -> splits that entered its mean, where fewer than the splits run
        total = row.get("n_splits_total", row["n_splits"])
        counts = {m: row.get(f"{m}_splits", row["n_splits"]) for m in metrics}
        return {m: int(c) for m, c in counts.items() if c == c and 0 < c < total}

    notes = []
    for _, row in summary.iterrows():
        subset = row["subset"]
        marks = []
        if row.get("status", "ok") != "ok" or row["srocc_mean"] != row["srocc_mean"]:
            reason = row.get("reason", "") if row.get("status", "ok") != "ok" else "constant predictions or truth"
            notes.append(f"not defined: {reason}")
            marks.append(len(notes))
        partial = fewer(row)
        if partial:
            total = int(row.get("n_splits_total", row["n_splits"]))
            counts = ", ".join(f"{metrics[m]} over {c} of {total} splits" for m, c in partial.items())
            mapping = row.get("mapping", "")
            notes.append(f"† mean of {counts}" + (f" ({mapping})" if isinstance(mapping, str) and mapping else ""))
            marks.append(len(notes))
        if marks:
            where = f"{row['method']} on {row['dataset']}, {subset}"
            for k in marks:
                notes[k - 1] = f"[{k}] {where}: {notes[k - 1]}"
            subset = f"{subset} [{','.join(map(str, marks))}]"
        splits = f"{row['n_splits']}/{row['n_splits_total']}" if "n_splits_total" in row else str(row["n_splits"])
        if row.get("whole", False):
            splits = "whole"  # one run on every labelled item: no split
        table.add_row(row["method"], row["dataset"], subset, splits, f"{row['n_mean']:.0f}",
                      *(cell(row, m) for m in metrics))
    console.print(table)
    for note in notes:
        console.print(note, highlight=False)
