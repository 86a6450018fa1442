"""Read CSV and Parquet manifests cell by cell, so that one malformed row or column never hides the others.

pandas' readers fail a whole file on one ragged row, rename a second ``label`` column
to ``label.1``, turn the text ``NA`` into a missing value and guess a CSV's delimiter
from any character (a one-column file gets split on "t"). These readers keep every
cell as it was written and report what they cannot read, row by row.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adde_core.data.report import IngestIssue, printable
from adde_core.errors import IngestError

#: Delimiters a CSV header is checked for, in order of preference on a tie.
DELIMITERS = (",", "\t", ";", "|")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# pandas writes its index into Parquet files under this name; it is bookkeeping, not data.
_PANDAS_INDEX = re.compile(r"__index_level_\d+__")


@dataclass
class RawTable:
    """A manifest as written: column names in file order (they may repeat) and one list of cells per row.

    ``rows[k]`` is data row ``k + 1`` (the first row under the header); it is None when the
    row could not be parsed at all (already in ``issues``). ``aligned`` is False when
    malformed quoting makes it uncertain where rows start, so that nothing can be matched
    to the manifest row for row.
    """

    file: str
    columns: list[str]
    rows: list[list[Any] | None]
    issues: list[IngestIssue] = field(default_factory=list)
    aligned: bool = True
    lines: list[tuple[int, int]] = field(default_factory=list)  # CSV only: first and last line of each row


def show(value: Any, limit: int = 60) -> str:
    """A short ``repr`` of a value for a message: long text is cut and its length given."""
    text = repr(value)
    if len(text) <= limit:
        return text
    cut = repr(value[: limit - 10]) if isinstance(value, str) else text[: limit - 10]
    length = f"{len(value):,} characters" if isinstance(value, str) else "cut"
    return f"{cut}… ({length})"


def brief(exc: BaseException, limit: int = 160) -> str:
    """An exception's message on one line, cut to ``limit`` characters, for a report."""
    text = " ".join(str(exc).split())
    return printable(text if len(text) <= limit else text[: limit - 1] + "…")


def shown_path(path: str | Path) -> str:
    """A path as a message shows it: as is, with NUL escaped and very long ones cut."""
    text = str(path)
    return printable(text if len(text) <= 200 else show(text, 200))


def text_problem(value: str, *, limit: int | None = None, controls: bool = True) -> str | None:
    """Why ``value`` cannot be stored as given (NUL, undecodable bytes, control characters, too long), or None."""
    if "\x00" in value:
        return "contains a NUL character"
    bad = _SURROGATE.search(value)
    if bad:
        return (f"is not valid UTF-8 text (byte 0x{ord(bad.group()) & 0xFF:02X}); "
                "save the file as UTF-8 or rename the file")
    if controls:
        ctrl = _CONTROL.search(value)
        if ctrl:
            return f"contains the control character U+{ord(ctrl.group()):04X}"
    if limit is not None and len(value) > limit:
        return f"is {len(value):,} characters long; at most {limit} are allowed"
    return None


def path_state(path: Path) -> str:
    """``"file"``, ``"folder"``, or why ``path`` (a name the user typed) cannot be used."""
    problem = text_problem(str(path))
    if problem:
        return f"path {problem}"
    try:
        if path.is_file():
            return "file"
        if path.is_dir():
            return "folder"
        return "not found"
    except OSError as exc:  # e.g. a name longer than the file system allows
        return f"cannot be opened ({exc.strerror or exc})"


# --------------------------------------------------------------------------- cells
def is_missing(value: Any) -> bool:
    """True for None, NaN, NaT, pd.NA and empty text."""
    if value is None:
        return True
    if isinstance(value, str):
        return value == ""
    if isinstance(value, (float, np.floating)):
        return math.isnan(value)
    if isinstance(value, (list, tuple, dict, set, np.ndarray, bytes, bytearray)):
        return False
    try:
        import pandas as pd

        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def classify(value: Any) -> tuple[Any, str | None, str | None]:
    """Turn one non-missing cell into a JSON-storable scalar.

    Returns
    -------
    (value, converted, unsupported)
        ``converted`` names what was written as text (e.g. "dates/times") and
        ``unsupported`` what cannot be stored as one value (e.g. "lists"); both are None
        for plain text, numbers and booleans, which are returned unchanged.
    """
    if isinstance(value, np.generic) and not isinstance(value, np.datetime64):
        value = value.item()
    if isinstance(value, (bool, int, str)):
        return value, None, None
    if isinstance(value, float):
        return value, None, None  # NaN is missing; ±inf is reported by the caller
    if isinstance(value, (list, tuple, set, np.ndarray)):
        return None, None, "lists"
    if isinstance(value, dict):
        return None, None, "maps (structs)"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return None, None, "binary data"
    if isinstance(value, np.datetime64):
        import pandas as pd

        return pd.Timestamp(value).isoformat(), "dates/times", None
    if isinstance(value, (dt.datetime, dt.date, dt.time)):  # pd.Timestamp is a datetime
        return value.isoformat(), "dates/times", None
    if isinstance(value, decimal.Decimal):
        return str(value), "decimal numbers", None
    if isinstance(value, dt.timedelta):
        return str(value), "durations", None
    return None, None, f"values of type {type(value).__name__}"


# --------------------------------------------------------------------------- readers
def read_table(path: Path) -> RawTable:
    """Read a ``.csv``/``.tsv``/``.txt`` or ``.parquet`` manifest.

    Raises
    ------
    IngestError
        When the file as a whole cannot be read (missing, not a table, no header).
    """
    name = str(path)
    found = path_state(path)
    if found != "file":
        raise IngestError(f"{shown_path(name)}: manifest " + ("is a folder, not a file" if found == "folder"
                                                                         else found))
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return _read_parquet(path)
    if suffix in (".csv", ".tsv", ".txt"):
        return _read_csv(path)
    raise IngestError(f"{name}: manifest must be .csv or .parquet, not {suffix!r}")


def _read_parquet(path: Path) -> RawTable:
    import pyarrow.parquet as pq

    name = str(path)
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several error types for a damaged file; all mean the same here
        raise IngestError(f"{name}: cannot be read as a table ({brief(exc)})") from exc
    columns, cells, issues = [], [], []
    for k, col in enumerate(table.column_names):
        col = str(col)
        if _PANDAS_INDEX.fullmatch(col):
            continue
        try:
            values = table.column(k).to_pylist()
        except Exception as exc:  # an extension type pyarrow cannot turn into Python values
            issues.append(IngestIssue(name, f"column {col!r} cannot be read ({brief(exc)}); it was not loaded",
                                      field=col, severity="warning"))
            continue
        columns.append(col)
        cells.append(values)
    rows: list[list[Any] | None] = [list(r) for r in zip(*cells)] if cells else [[] for _ in range(table.num_rows)]
    return RawTable(name, columns, rows, issues)


def _decode(blob: bytes, name: str) -> str:
    if blob.startswith((b"\xff\xfe", b"\xfe\xff")):  # Excel's "Unicode text" is UTF-16 with a byte-order mark
        try:
            return blob.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise IngestError(f"{name}: starts like UTF-16 text but cannot be decoded ({brief(exc)})") from exc
    if blob.startswith(b"PK\x03\x04"):
        raise IngestError(f"{name}: is a ZIP archive (an Excel .xlsx workbook?), not CSV text; "
                          "save it as 'CSV UTF-8' and ingest that")
    if blob.startswith(b"PAR1"):
        raise IngestError(f"{name}: is a Parquet file; give it the .parquet extension")
    head = blob[:4096]
    controls = sum(head.count(b) for b in (*range(9), 11, 12, *range(14, 32), 127))
    if controls > max(2, len(head) // 20):  # text has next to none; one stray NUL is a row problem, not this
        raise IngestError(f"{name}: is a binary file, not CSV text")
    # utf-8-sig drops a byte-order mark, which would otherwise glue itself to the first column's name.
    # Undecodable bytes survive as lone surrogates, so that only the rows holding them are rejected.
    return blob.decode("utf-8-sig", errors="surrogateescape")


def sniff_delimiter(header: str, suffix: str) -> str:
    """The delimiter of a CSV file, judged from its header line only.

    ``csv.Sniffer`` picks any character that occurs equally often on every line, so a
    one-column file of paths gets split on a letter. Only the usual delimiters are
    considered here, and a header with none of them is one column.
    """
    if suffix == ".tsv":
        return "\t"
    unquoted = re.sub(r'"[^"]*"', "", header)
    counts = {d: unquoted.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _records(lines: list[str], delimiter: str):
    """Yield (first line, last line, fields or None, error) for each CSV record; blank lines are skipped.

    A malformed record (a stray or unclosed quote) is reported and parsing restarts on the
    line after its first line, so one bad quote costs one row, not the rest of the file.
    """
    pos = 0
    while pos < len(lines):
        reader = csv.reader(itertools.islice(lines, pos, None), delimiter=delimiter, skipinitialspace=True,
                            strict=True)
        done = 0
        try:
            for fields in reader:
                first, done = pos + done + 1, reader.line_num
                if fields and any(f.strip() for f in fields):
                    yield first, pos + done, fields, None
            return
        except csv.Error as exc:
            first = pos + done + 1
            yield first, pos + reader.line_num, None, str(exc)
            pos = first


def _read_csv(path: Path) -> RawTable:
    name = str(path)
    try:
        text = _decode(path.read_bytes(), name)
    except OSError as exc:
        raise IngestError(f"{name}: cannot be read ({exc.strerror or exc})") from exc
    lines = list(io.StringIO(text, newline=""))
    first_line = next((ln for ln in lines if ln.strip()), None)
    if first_line is None:
        raise IngestError(f"{name}: is empty; a manifest needs a header line (e.g. 'path,label,role') and rows")
    records = _records(lines, sniff_delimiter(first_line, path.suffix.lower()))
    _, _, header, error = next(records, (0, 0, None, "no cells"))
    if header is None:
        raise IngestError(f"{name}: the header line cannot be read ({error})")
    columns = [c.replace("\ufeff", "").strip() for c in header]
    table = RawTable(name, columns, [])
    width = len(columns)
    for first, last, fields, error in records:
        row = len(table.rows) + 1
        table.lines.append((first, last))
        span = f"line {first}" if first == last or fields is None else f"lines {first}–{last}"
        if fields is None:
            table.issues.append(IngestIssue(name, f"malformed CSV on {span} ({error}): this row was not read; "
                                                  "check its quotes", row=row))
            table.aligned = False
            table.rows.append(None)
            continue
        while len(fields) > width and not fields[-1].strip():
            fields.pop()  # trailing empty cells ("a.png,cat,") are how spreadsheets end rows
        if len(fields) > width:
            table.issues.append(IngestIssue(
                name, f"{span} has {len(fields)} values but the header has {width} columns; quote values that "
                      "contain the delimiter", row=row))
            table.rows.append(None)
            continue
        if len(fields) < width:
            table.issues.append(IngestIssue(
                name, f"{span} has {len(fields)} values but the header has {width} columns; the missing ones "
                      f"({', '.join(map(repr, columns[len(fields):]))}) are read as empty", row=row,
                severity="warning"))
            fields = fields + [""] * (width - len(fields))
        table.rows.append(fields)
    return table
