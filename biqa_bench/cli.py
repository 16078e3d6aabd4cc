"""The `biqa` command line: thin Typer commands that parse, call the library and render with Rich.

Errors users can cause (:class:`biqa_bench.errors.BiqaError`) are shown as one line on stderr
with exit code 2; Ctrl-C keeps every completed split (exit code 130).
"""

from __future__ import annotations

import importlib
import re
import sys

import typer

from . import __version__
from .cli_common import err_console
from .errors import BiqaError

try:  # recent Typer vendors Click; older Typer uses Click itself
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - depends on the installed Typer
    from click.exceptions import ClickException, UsageError

    try:
        from click.exceptions import NoArgsIsHelpError
    except ImportError:  # Click < 8.2 prints the help itself

        class NoArgsIsHelpError(UsageError):  # type: ignore[no-redef]
            pass


def _wrap_once(owner, attribute: str, wrap) -> None:
    """Replace ``owner.attribute`` by ``wrap(original)`` once (a second import leaves it), and not
    at all where the installed Typer lacks it: the two `--help` fixes below hook Typer's
    internals, which have no setting for them."""
    original = getattr(owner, attribute, None)
    if original is None or getattr(original, "_biqa_wrapped", False):
        return
    wrapped = wrap(original)
    wrapped._biqa_wrapped = True
    setattr(owner, attribute, wrapped)


def _hide_flag_types() -> None:
    """`--help` shows no type beside a plain flag (Typer 0.2x prints ``<bool>`` there, as if
    ``--ranges`` took a value): the option's type label is wrapped."""
    try:
        from typer.core import TyperOption
    except ImportError:  # pragma: no cover - depends on the installed Typer
        return

    def wrap(label):
        def display_type_rich(self, ctx):
            return None if getattr(self, "is_flag", False) else label(self, ctx)
        return display_type_rich

    _wrap_once(TyperOption, "display_type_rich", wrap)


_LINE_STARTS = re.compile(r"(Example|[-*] |\d+\. )")


def reflow_paragraph(text: str) -> str:
    """One paragraph of a command's docstring as the terminal should wrap it: its source line breaks
    become spaces, except before a line that starts an example or a list item ("- ", "* ", "2. ")."""
    lines = text.split("\n")
    joined = lines[0]
    for line in lines[1:]:
        stripped = line.lstrip()
        joined += ("\n" if _LINE_STARTS.match(stripped) else " ") + stripped
    return joined


def _reflow_help() -> None:
    """Typer 0.2x keeps the source line breaks of every paragraph after a docstring's first, so
    `--help` wraps each 95-column source line at the terminal's 80 into a ragged long/short pattern:
    its paragraph joiner is wrapped (a ``\\b`` paragraph stays verbatim, as Click's rule)."""
    try:
        from typer import rich_utils
    except ImportError:  # pragma: no cover - depends on the installed Typer
        return

    def wrap(joiner):
        def fix_linebreaks(paragraphs, markup_mode):
            return joiner([p if p.startswith("\b") else reflow_paragraph(p) for p in paragraphs], markup_mode)
        return fix_linebreaks

    _wrap_once(rich_utils, "_fix_linebreaks", wrap)


_hide_flag_types()
_reflow_help()

app = typer.Typer(
    name="biqa",
    help=(
        "Benchmark blind / no-reference image quality assessment methods fairly, reproducibly and fast.\n\n"
        "Flow: datasets -> splits -> train (or import) -> eval / significance / cross / gmad -> report.\n\n"
        "Example: biqa demo   (a complete small benchmark on the embedded data, offline)"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

COMMAND_MODULES = ["datasets", "core", "sweep", "significance", "gmad", "report", "demo", "cache"]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"biqa-bench {__version__}")
        raise typer.Exit()


def _verbose(value: bool) -> None:
    """Send the library's INFO records (one line per training epoch with its loss, images/s,
    seconds, validation SROCC and peak GPU memory; stage reuse; enhancement counts) to stderr."""
    if value:
        import logging

        logger = logging.getLogger("biqa")
        if not any(getattr(h, "_biqa_verbose", False) for h in logger.handlers):
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
            handler._biqa_verbose = True  # type: ignore[attr-defined]
            logger.addHandler(handler)
        logger.setLevel(logging.INFO)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", callback=_verbose,
        help="Log one line per training epoch (loss, images/s, validation SROCC, GPU memory) to stderr: for runs logged to a file.",
    ),
) -> None:
    """biqa: benchmark BIQA methods."""


for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"{__package__}.commands.{_name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.commands.{_name}":
            raise
        continue
    _module.register(app)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    try:
        result = app(args=argv, prog_name="biqa", standalone_mode=False)
    except NoArgsIsHelpError as exc:
        exc.show()
        return 0
    except UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "biqa"
        err_console.print(f"[bold red]error:[/] {exc.format_message()} (see `{where} --help`)", highlight=False, soft_wrap=True)
        return 2
    except ClickException as exc:
        err_console.print(f"[bold red]error:[/] {exc.format_message()}", highlight=False, soft_wrap=True)
        return 2
    except typer.Abort:
        err_console.print("interrupted: completed splits are kept; run the same command again to resume")
        return 130
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) or exc.code is None else 1
    except BiqaError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted: completed splits are kept; run the same command again to resume")
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())


def console_main() -> None:
    sys.exit(main())
