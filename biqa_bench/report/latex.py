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
    # the order tables and figures were added in, ("table" | "figure", index); see blocks()
    order: list[tuple[str, int]] = field(default_factory=list)

    def add_table(self, stem: str) -> None:
        self.tables.append(stem)
        self.order.append(("table", len(self.tables) - 1))

    def add_figure(self, path: str, caption: str) -> None:
        self.figures.append((path, caption))
        self.order.append(("figure", len(self.figures) - 1))

    def blocks(self) -> list[tuple[str, list]]:
        """Runs of tables and of figures in the order they were added (each table, and each
        run of figures, in its place); tables then figures where they were appended directly."""
        order = self.order
        if sorted(order) != sorted([("table", i) for i in range(len(self.tables))]
                                   + [("figure", i) for i in range(len(self.figures))]):
            order = [("table", i) for i in range(len(self.tables))] + [("figure", i) for i in range(len(self.figures))]
        runs: list[tuple[str, list]] = []
        for kind, index in order:
            item = self.tables[index] if kind == "table" else self.figures[index]
            if runs and runs[-1][0] == kind:
                runs[-1][1].append(item)
            else:
                runs.append((kind, [item]))
        return runs


PREAMBLE = r"""\documentclass[10pt]{article}
\usepackage[margin=2cm]{geometry}
\usepackage{booktabs}
\usepackage{graphicx}
\usepackage{float}
\usepackage[font=small,labelfont=bf,skip=6pt]{caption}
\captionsetup[table]{position=top}
\setlength{\tabcolsep}{4pt}
\renewcommand{\arraystretch}{1.1}
% a figure at its natural (print) size, shrunk only when wider than #2 or taller than #3
\newsavebox{\biqafigure}
\newcommand{\fitgraphics}[3]{%
  \sbox{\biqafigure}{\includegraphics{#1}}%
  \ifdim\wd\biqafigure>#2\relax\sbox{\biqafigure}{\includegraphics[width=#2]{#1}}\fi
  \ifdim\ht\biqafigure>#3\relax\sbox{\biqafigure}{\includegraphics[height=#3]{#1}}\fi
  \usebox{\biqafigure}}
"""

#: A figure at most this wide (inches at print size) shares a row with the next such figure.
HALF_WIDTH_IN = 3.9
#: The tallest a figure is printed: two figures and their captions fit on one page.
MAX_FIGURE_HEIGHT = r"0.4\textheight"


def natural_width(path: Path) -> float | None:
    """A figure's print width in inches, from the PNG of the same name (pixels / dpi); None when unknown."""
    png = Path(path).with_suffix(".png")
    try:
        from PIL import Image

        with Image.open(png) as image:
            dpi = image.info.get("dpi", (None,))[0]
            return image.width / float(dpi) if dpi else None
    except (OSError, ValueError):
        return None


def figure_rows(figures: list[tuple[str, str]], base: Path | None = None) -> list[list[tuple[str, str]]]:
    """Figures in rows: two consecutive narrow ones (at most :data:`HALF_WIDTH_IN` wide, known
    from their PNGs under ``base``) side by side, every other figure alone."""
    rows: list[list[tuple[str, str]]] = []
    pending: tuple[str, str] | None = None  # a narrow figure waiting for a partner
    for figure in figures:
        width = natural_width(Path(base) / figure[0]) if base is not None else None
        if width is not None and width <= HALF_WIDTH_IN:
            if pending is None:
                pending = figure
            else:
                rows.append([pending, figure])
                pending = None
            continue
        if pending is not None:
            rows.append([pending])
            pending = None
        rows.append([figure])
    if pending is not None:
        rows.append([pending])
    return rows


def _figure_lines(row: list[tuple[str, str]]) -> list[str]:
    """One ``figure`` environment (placed here, [H]) holding one figure or two side by side."""
    lines = ["\\begin{figure}[H]", "\\centering"]
    if len(row) == 1:
        path, caption = row[0]
        lines += [f"\\fitgraphics{{{path}}}{{\\linewidth}}{{{MAX_FIGURE_HEIGHT}}}",
                  f"\\caption{{{latex_escape(caption)}}}"]
    else:
        for k, (path, caption) in enumerate(row):
            lines += ["\\begin{minipage}[t]{0.485\\linewidth}", "\\centering",
                      f"\\fitgraphics{{{path}}}{{\\linewidth}}{{{MAX_FIGURE_HEIGHT}}}",
                      f"\\caption{{{latex_escape(caption)}}}", "\\end{minipage}"]
            if k == 0:
                lines.append("\\hfill")
    lines.append("\\end{figure}")
    return lines


def report_document(title: str, sections: list[Section], intro: str = "", table_dir: str = "tables",
                    base: Path | None = None) -> str:
    """The standalone LaTeX source of the report. ``base`` is the folder of report.tex: where
    the figures' PNGs tell their print sizes, so that two narrow figures share a row. Sections
    follow one another without page breaks; figures stay where they are in the text ([H])."""
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
        for kind, items in section.blocks():
            if kind == "table":
                lines += [f"\\input{{{table_dir}/{stem}}}" for stem in items]
            else:
                for row in figure_rows(items, base):
                    lines += _figure_lines(row)
        lines.append("")
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
