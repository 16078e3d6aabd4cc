"""Shared helpers of the public-database parsers: finding files whatever their case, and
reading the label files (.mat, .xls, .xlsx, .csv, text) with errors that name the file and
what was expected in it.

Downloads differ in letter case from their own label files (TID2013 lists ``I01_01_1.bmp``
while the archive holds ``i01_01_1.bmp``; unpackers on case-insensitive systems change names),
so every path goes through :class:`PathResolver`, which uses the exact name when it exists
and otherwise the one entry of the folder whose name matches ignoring case.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..errors import DatasetError

IMAGE_EXTENSIONS = frozenset({".bmp", ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".gif", ".webp", ".ppm", ".pgm"})

# Key in ``Dataset.items.attrs`` listing image files that exist in an image folder on purpose
# but are not items (LIVE's reference copies, ...), so that `check` does not call them unlabelled.
EXCLUDED_ATTR = "biqa_excluded_paths"


class PathResolver:
    """Resolve paths relative to ``root`` case-insensitively, listing each folder once."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._listings: dict[str, dict[str, list[str]] | None] = {}

    def _listing(self, folder: str) -> dict[str, list[str]] | None:
        if folder not in self._listings:
            try:
                names = os.listdir(self.root / folder) if folder else os.listdir(self.root)
            except (FileNotFoundError, NotADirectoryError, PermissionError):
                self._listings[folder] = None
            else:
                by_lower: dict[str, list[str]] = {}
                for name in names:
                    by_lower.setdefault(name.lower(), []).append(name)
                self._listings[folder] = by_lower
        return self._listings[folder]

    def resolve(self, relative: str) -> str | None:
        """The path as it exists on disk (posix, relative to root), or None when absent."""
        parts = [p for p in str(relative).replace("\\", "/").split("/") if p not in ("", ".")]
        actual: list[str] = []
        for part in parts:
            listing = self._listing("/".join(actual))
            if listing is None:
                return None
            candidates = listing.get(part.lower())
            if not candidates:
                return None
            actual.append(part if part in candidates else sorted(candidates)[0])
        return "/".join(actual)

    def resolve_or_keep(self, relative: str) -> str:
        """The on-disk path when found; the given one otherwise (`check` reports it missing)."""
        found = self.resolve(relative)
        return found if found is not None else str(relative).replace("\\", "/")

    def exists(self, relative: str) -> bool:
        return self.resolve(relative) is not None


def find_file(root: Path, candidates: Sequence[str], dataset: str, download: str = "") -> Path:
    """The first of ``candidates`` (relative names, any case) present under ``root``."""
    resolver = PathResolver(root)
    for name in candidates:
        found = resolver.resolve(name)
        if found is not None and (Path(root) / found).is_file():
            return Path(root) / found
    wanted = " or ".join(f"'{c}'" for c in candidates)
    hint = f" Download: {download}" if download else ""
    raise DatasetError(
        f"{dataset}: label file {wanted} not found in {root}; point --root at the unpacked "
        f"database folder.{hint}"
    )


def find_optional(root: Path, candidates: Sequence[str]) -> Path | None:
    resolver = PathResolver(root)
    for name in candidates:
        found = resolver.resolve(name)
        if found is not None and (Path(root) / found).is_file():
            return Path(root) / found
    return None


def _normalise_header(value) -> str:
    return " ".join(str(value).split()).lower()


def require_columns(frame: pd.DataFrame, required: Iterable[str], path: Path, where: str = "") -> pd.DataFrame:
    """Check the columns exist (ignoring case and repeated spaces) and rename them to ``required``."""
    by_normal = {_normalise_header(c): c for c in frame.columns}
    renames = {}
    for column in required:
        actual = by_normal.get(_normalise_header(column))
        if actual is None:
            raise DatasetError(
                f"{path}{where}: expected a column '{column}' in the header, found "
                f"{[str(c) for c in frame.columns]}; is this the official, unmodified file?"
            )
        renames[actual] = column
    return frame.rename(columns=renames)


def read_csv(path: Path, required: Sequence[str]) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DatasetError(f"{path}: cannot read CSV ({exc}); re-download it") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return require_columns(frame, required, path)


def read_mat(path: Path, variables: Sequence[str]) -> dict[str, np.ndarray]:
    """Read MATLAB variables; cell arrays of strings come back as 1-D arrays of str."""
    import scipy.io
    from scipy.io.matlab import MatReadError

    try:
        data = scipy.io.loadmat(str(path))
    except NotImplementedError:
        raise DatasetError(
            f"{path}: MATLAB v7.3 (HDF5) file; re-save it with `save -v7` or use the official file"
        ) from None
    except (OSError, ValueError, TypeError, MatReadError) as exc:
        raise DatasetError(f"{path}: cannot read MATLAB file ({exc}); re-download it") from None
    out = {}
    for name in variables:
        if name not in data:
            found = [k for k in data if not k.startswith("__")]
            raise DatasetError(f"{path}: expected a variable '{name}', found {found}; is this the official file?")
        out[name] = _flatten_mat(data[name])
    return out


def _flatten_mat(value: np.ndarray) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype == object:  # a cell array: each cell holds a char array
        return np.array([_cell_text(cell) for cell in array.ravel(order="F")], dtype=object)
    if array.dtype.kind == "U":
        return np.array([str(s).strip() for s in array.ravel()], dtype=object)
    return array.ravel(order="F")


def _cell_text(cell) -> str:
    cell = np.asarray(cell)
    if cell.dtype.kind == "U":
        return "".join(str(s) for s in cell.ravel()).strip()
    if cell.dtype == object and cell.size == 1:
        return _cell_text(cell.ravel()[0])
    return str(cell.ravel()[0]) if cell.size else ""


def read_sheet(
    path: Path,
    sheet: str | None,
    required: Sequence[str],
    header_search_rows: int = 12,
) -> pd.DataFrame:
    """Read a worksheet of an .xls or .xlsx file whose header row holds ``required``.

    The header row is the first of the top ``header_search_rows`` rows that contains every
    required name (CSIQ's header is in row 4, starting at column D). Columns are renamed to
    the required spelling; fully empty rows and columns without a header are dropped.
    """
    rows = _sheet_rows(path, sheet)
    wanted = {_normalise_header(c) for c in required}
    header_at = None
    best_row: list = rows[0] if rows else []
    best_score = -1
    for index, row in enumerate(rows[:header_search_rows]):
        names = {_normalise_header(v) for v in row if v is not None and str(v).strip()}
        if wanted <= names:
            header_at = index
            break
        if len(names & wanted) > best_score:
            best_row, best_score = list(row), len(names & wanted)
    where = f" (sheet '{sheet}')" if sheet else ""
    if header_at is None:
        shown = [str(v).strip() for v in best_row if v is not None and str(v).strip()]
        present = {_normalise_header(v) for v in shown}
        missing = [c for c in required if _normalise_header(c) not in present]
        raise DatasetError(
            f"{path}{where}: expected a column '{missing[0]}' in the header, found {shown}; "
            "is this the official, unmodified file?"
        )
    header = rows[header_at]
    keep = [i for i, v in enumerate(header) if v is not None and str(v).strip()]
    names = [str(header[i]).strip() for i in keep]
    body = [[row[i] if i < len(row) else None for i in keep] for row in rows[header_at + 1 :]]
    frame = pd.DataFrame(body, columns=names)
    frame = frame.dropna(how="all").reset_index(drop=True)
    return require_columns(frame, required, path, where)


def _sheet_rows(path: Path, sheet: str | None) -> list[list]:
    suffix = Path(path).suffix.lower()
    if suffix == ".xls":
        return _xls_rows(path, sheet)
    if suffix in (".xlsx", ".xlsm"):
        return _xlsx_rows(path, sheet)
    raise DatasetError(f"{path}: expected an .xls or .xlsx workbook")


def _xls_rows(path: Path, sheet: str | None) -> list[list]:
    import xlrd

    try:
        book = xlrd.open_workbook(str(path), on_demand=True)
    except (OSError, xlrd.XLRDError, ValueError, AssertionError) as exc:
        raise DatasetError(f"{path}: cannot read .xls workbook ({exc}); re-download it") from None
    try:
        names = book.sheet_names()
        if sheet is None:
            sheet = names[0]
        if sheet not in names:
            raise DatasetError(f"{path}: expected a sheet '{sheet}', found {names}; is this the official file?")
        book_sheet = book.sheet_by_name(sheet)
        rows = []
        for r in range(book_sheet.nrows):
            row = []
            for cell in book_sheet.row(r):
                if cell.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
                    row.append(None)
                else:
                    row.append(cell.value)
            rows.append(row)
        return rows
    finally:
        book.release_resources()


def _xlsx_rows(path: Path, sheet: str | None) -> list[list]:
    import zipfile

    import openpyxl

    try:
        book = openpyxl.load_workbook(str(path), read_only=True, data_only=True)
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read .xlsx workbook ({exc}); re-download it") from None
    try:
        names = book.sheetnames
        if sheet is None:
            sheet = names[0]
        if sheet not in names:
            raise DatasetError(f"{path}: expected a sheet '{sheet}', found {names}; is this the official file?")
        return [list(row) for row in book[sheet].iter_rows(values_only=True)]
    finally:
        book.close()


def read_text_lines(path: Path) -> list[str]:
    """Non-empty lines of a text file, any line ending (TID2013's files are CRLF)."""
    try:
        text = Path(path).read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc}); re-download it") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def resolve_paths(root: Path, relatives: Iterable[str]) -> list[str]:
    resolver = PathResolver(root)
    return [resolver.resolve_or_keep(r) for r in relatives]


def set_excluded(items: pd.DataFrame, paths: Iterable[str]) -> None:
    """Record files that are deliberately not items (see :data:`EXCLUDED_ATTR`)."""
    items.attrs[EXCLUDED_ATTR] = sorted(set(paths))


def excluded_paths(items: pd.DataFrame) -> list[str]:
    return list(items.attrs.get(EXCLUDED_ATTR, []))


def roman_to_int(text: str) -> int:
    values = {"I": 1, "V": 5, "X": 10}
    total = 0
    text = text.upper()
    for i, char in enumerate(text):
        if char not in values:
            raise ValueError(f"not a roman numeral: {text!r}")
        value = values[char]
        total += -value if i + 1 < len(text) and values.get(text[i + 1], 0) > value else value
    return total
