"""LaTeX helpers: escaping, the standalone ``report.tex`` and compiling it with ``pdflatex``.

The standalone document uses only packages of a basic TeX Live (``texlive-latex-base`` and
``texlive-latex-recommended`` on Debian): geometry, booktabs, graphicx, float (placement ``H``
keeps figures in their section) and hyperref-free cross references.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BiqaError

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    # typographic characters the tables use, as OT1-safe commands
    "\u2013": "--",
    "\u2014": "---",
    "\u2192": r"$\rightarrow$",
    "\u2020": r"$^{\dagger}$",
    "\u00b1": r"$\pm$",
    "\u2264": r"$\leq$",
    "\u2265": r"$\geq$",
    "\u03b1": r"$\alpha$",
}
_PATTERN = re.compile("|".join(re.escape(k) for k in _LATEX_SPECIALS))


def latex_escape(text: str) -> str:
    """Text safe to typeset in LaTeX: & _ % # $ { } ~ ^ \\ < > | and a few symbols escaped."""
    return _PATTERN.sub(lambda m: _LATEX_SPECIALS[m.group(0)], str(text))


def file_stem(name: str) -> str:
    """A name usable as a file name and in ``\\input``/``\\includegraphics`` (no spaces, no TeX specials)."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", str(name)).strip("-")
    return stem or "unnamed"


@dataclass
class Section:
    """One section of the report: a heading, some text, tables (.tex stems) and figures."""

    title: str
    text: str = ""  # plain text, escaped when rendered
    tables: list[str] = field(default_factory=list)  # stems of <stem>.tex files in tables/
    figures: list[tuple[str, str]] = field(default_factory=list)  # (path relative to report.tex, caption)


PREAMBLE = r"""\documentclass[10pt]{article}
\usepackage[margin=2cm]{geometry}
\usepackage{booktabs}
\usepackage{graphicx}
\usepackage{float}
\usepackage[font=small,labelfont=bf,skip=6pt]{caption}
\captionsetup[table]{position=top}
\setlength{\tabcolsep}{4pt}
\renewcommand{\arraystretch}{1.1}
"""


def report_document(title: str, sections: list[Section], intro: str = "", table_dir: str = "tables") -> str:
    """The standalone LaTeX source of the report."""
    lines = [PREAMBLE, f"\\title{{{latex_escape(title)}}}", "\\date{\\today}", "\\author{biqa-bench}",
             "\\begin{document}", "\\maketitle"]
    if intro:
        lines.append(latex_escape(intro))
        lines.append("")
    for section in sections:
        lines.append(f"\\section{{{latex_escape(section.title)}}}")
        if section.text:
            lines.append(latex_escape(section.text))
            lines.append("")
        for stem in section.tables:
            lines.append(f"\\input{{{table_dir}/{stem}}}")
        for path, caption in section.figures:
            lines += [
                "\\begin{figure}[H]",
                "\\centering",
                # natural (print) size, shrunk only when wider than the text
                f"\\resizebox{{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}}{{!}}{{\\includegraphics{{{path}}}}}",
                f"\\caption{{{latex_escape(caption)}}}",
                "\\end{figure}",
            ]
        lines.append("\\clearpage")
    lines += ["\\end{document}", ""]
    return "\n".join(lines)


def first_latex_error(log: str) -> str:
    """The first error line of a LaTeX log ('! ...'), with the line number that follows it."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("!"):
            detail = next((l.strip() for l in lines[i + 1 : i + 6] if l.startswith("l.")), "")
            return (line[1:].strip() + (f" ({detail})" if detail else "")).strip()
    return "no '!' error line in the log"


def compile_pdf(tex_path: Path, runs: int = 2, timeout: float = 120.0) -> Path:
    """Compile ``tex_path`` with pdflatex (twice, for references) in its own folder.

    Raises :class:`BiqaError` when pdflatex is absent or fails, naming the log and its first error.
    """
    tex_path = Path(tex_path)
    exe = shutil.which("pdflatex")
    if exe is None:
        raise BiqaError(
            "pdflatex not found on PATH; install it (Debian/Ubuntu: apt-get install texlive-latex-base "
            f"texlive-latex-recommended) or compile {tex_path} elsewhere"
        )
    log_path = tex_path.with_suffix(".log")
    for _ in range(runs):
        try:
            proc = subprocess.run(
                [exe, "-interaction=nonstopmode", "-halt-on-error", tex_path.name],
                cwd=tex_path.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise BiqaError(f"pdflatex on {tex_path} took longer than {timeout:.0f} s; see {log_path}") from None
        if proc.returncode != 0:
            log = log_path.read_text(errors="replace") if log_path.is_file() else proc.stdout.decode(errors="replace")
            raise BiqaError(f"pdflatex failed on {tex_path}: {first_latex_error(log)}; see {log_path}")
    pdf = tex_path.with_suffix(".pdf")
    if not pdf.is_file():
        raise BiqaError(f"pdflatex ran but wrote no {pdf}; see {log_path}")
    return pdf
