"""Ingest image folders, CSV/Parquet manifests and precomputed embeddings into a project.

Every input is validated row by row. A bad file or row becomes an
:class:`~adde_core.data.report.IngestIssue` naming the file, row, field and reason,
and everything else still loads; a value is stored exactly as written or the row is
reported. Valid items are written in one transaction. ``docs/bad_input.md`` lists
every kind of bad input that is checked and what the user sees.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from adde_core.data.report import IngestIssue, IngestReport, printable
from adde_core.data.tables import (
    RawTable,
    brief,
    classify,
    is_missing,
    path_state,
    read_table,
    show,
    shown_path,
    text_problem,
)
from adde_core.embedding.base import ProgressCallback
from adde_core.errors import IngestError
from adde_core.store.models import ITEM_SOURCES, ItemRecord

if TYPE_CHECKING:
    from adde_core.workspace import Workspace

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
#: Manifest columns with a fixed meaning; every other column becomes a subgroup attribute.
MANIFEST_COLUMNS = ("id", "path", "label", "role", "oracle_label", "source")
#: Roles a user's data can take. "candidate" is kept for generated items awaiting review.
USER_ROLES = ("seed", "pool", "val", "ood")
#: Roles whose items must carry a label.
LABELLED_ROLES = ("seed", "val", "ood")
#: Names ADDE's item tables use for their own columns: an attribute of that name would shadow them.
RESERVED_COLUMNS = ("uri", "iteration_added", "content_hash", "attributes", "run_id", "created_at")
#: The most characters an id or label may have (the portable limit of a database text key).
MAX_TEXT = 255
#: Limits common to Linux, macOS and Windows file systems, in bytes.
MAX_PATH_BYTES, MAX_NAME_BYTES = 4096, 255
PRECOMPUTED_PREFIX = "precomputed:"
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass
class _Candidate:
    """A row of input on its way to becoming an item."""

    file: str  # what the user will recognise: manifest name or image path
    row: int | None
    id: str
    role: str
    path: Path | None = None
    label: str | None = None
    oracle_label: str | None = None
    source: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    vector: np.ndarray | None = None
    content_hash: str | None = None
    record: int | None = None  # 0-based manifest row, which .npy rows align with
    rejected: bool = False  # already reported (e.g. a NaN embedding)


@dataclass
class ManifestRows:
    """What :func:`read_manifest` found: candidates, issues, and how many data rows the file has."""

    candidates: list[_Candidate]
    issues: list[IngestIssue]
    n_rows: int
    aligned: bool = True  # False when malformed quoting makes row boundaries uncertain


class _RowProblem(Exception):
    """One row cannot be loaded; carries the reason and the column."""

    def __init__(self, reason: str, column: str | None) -> None:
        super().__init__(reason)
        self.reason, self.column = reason, column


def _pixel_limit() -> int | None:
    from PIL import Image

    return Image.MAX_IMAGE_PIXELS


def inspect_image(path: Path) -> tuple[str | None, str | None]:
    """Check that ``path`` is a readable image of a sane size and hash its bytes.

    Parameters
    ----------
    path
        The file to check.

    Returns
    -------
    (content_hash, reason)
        The sha1 of the file's bytes and None when the file is a decodable image;
        None and a human-readable reason otherwise.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        if not path.exists():
            return None, "broken symbolic link" if path.is_symlink() else "file not found"
        if not path.is_file():
            return None, "not a regular file"
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            return None, (f"unsupported extension {path.suffix or '(none)'!r}; expected one of "
                          f"{', '.join(sorted(IMAGE_EXTENSIONS))}")
        digest, size = hashlib.sha1(), 0
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    if not size:
        return None, "zero-byte file"
    limit = _pixel_limit()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # reported below instead
            with Image.open(path) as im:
                w, h = im.size
                if limit and w * h > limit:
                    return None, (f"image is {w:,}×{h:,} pixels ({w * h / 1e6:.1f} megapixels), above the "
                                  f"{limit / 1e6:.1f}-megapixel limit that guards against decompression bombs; "
                                  "downscale it")
                im.load()  # decodes every pixel: catches truncated files that verify() lets through
    except UnidentifiedImageError:
        return None, "not an image (content is not a recognised image format)"
    except Image.DecompressionBombError as exc:
        return None, f"image is too large to decode safely ({brief(exc)})"
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
        return None, f"corrupt image: {brief(exc)}"
    return digest.hexdigest(), None


def _inside(path: Path, base: Path) -> bool:
    try:
        path.relative_to(base)
    except ValueError:
        return False
    return True


class _PathChecker:
    """Resolves manifest paths against a data root, caching each folder's real path (one lstat per row)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root_abs = os.path.abspath(root)
        self.base = os.path.realpath(root)
        self._real: dict[str, str] = {}

    def _inside(self, path: str, base: str) -> bool:
        return path == base or path.startswith(base.rstrip(os.sep) + os.sep)

    def check(self, rel: str) -> tuple[Path | None, str | None]:
        """The path, or the reason it cannot be used. Symbolic links are followed, so a link out is caught."""
        problem = text_problem(rel)
        if problem:
            return None, f"path {problem}"
        if _URL.match(rel):
            return None, "path is a URL; ADDE reads local files only: download the images and list their local paths"
        joined = rel if os.path.isabs(rel) else os.path.join(self.root_abs, rel)
        encoded = os.fsencode(joined)
        if len(encoded) >= MAX_PATH_BYTES:
            return None, (f"path is {len(rel):,} characters long; file systems allow at most {MAX_PATH_BYTES:,} "
                          "bytes")
        longest = max(len(part) for part in encoded.split(b"/"))
        if longest > MAX_NAME_BYTES:
            return None, (f"path has a file or folder name of {longest:,} bytes; file systems allow at most "
                          f"{MAX_NAME_BYTES}")
        parent, name = os.path.split(joined)
        try:
            real_parent = self._real.get(parent)
            if real_parent is None:
                real_parent = self._real[parent] = os.path.realpath(parent)
            resolved = os.path.normpath(os.path.join(real_parent, name))
            if os.path.islink(resolved):
                resolved = os.path.realpath(resolved)
                if os.path.islink(resolved):  # realpath stops at a link it cannot get past: a loop
                    return None, "path is a symbolic link loop"
        except OSError as exc:
            return None, f"path cannot be resolved ({exc.strerror or exc})"
        if not self._inside(resolved, self.base):
            linked = self._inside(os.path.normpath(joined), os.path.normpath(self.root_abs))
            via = f" through a symbolic link to {resolved}" if linked else ""
            return None, f"path {show(rel)} escapes the data root {self.root}{via}"
        if resolved == self.base:
            return None, "path is the data root itself, not a file"
        return Path(joined) if os.path.isabs(rel) else self.root / rel, None


# --------------------------------------------------------------------------- readers
def scan_image_folder(root: Path, *, role: str) -> tuple[list[_Candidate], list[IngestIssue]]:
    """Read an image folder with one sub-folder per class.

    The first-level sub-folder name is the label; ids are paths relative to ``root``
    without extension. Files directly in ``root`` have no class and are reported, and so
    are hidden images and folders, symbolic links to folders (never followed) and
    symbolic links to files outside ``root``.
    """
    root = Path(root)
    found = path_state(root)
    if found != "folder":
        raise IngestError(f"{shown_path(root)}: " + ("not a folder" if found == "file" else found))
    base = root.resolve()
    candidates: list[_Candidate] = []
    issues: list[IngestIssue] = []

    def unreadable(exc: OSError) -> None:
        issues.append(IngestIssue(str(exc.filename or root), f"folder cannot be read ({exc.strerror or exc})"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=False):
        here = Path(dirpath)
        for d in sorted(dirnames):
            sub = here / d
            if d.startswith("."):
                if d not in (".ipynb_checkpoints", ".git"):  # tool folders that never hold data
                    issues.append(IngestIssue(str(sub), "hidden folder (its name starts with '.'): its files were "
                                                        "not loaded"))
                dirnames.remove(d)
            elif sub.is_symlink():
                issues.append(IngestIssue(str(sub), "symbolic link to a folder: not followed, its files were not "
                                                    "loaded; copy or move the folder in instead"))
                dirnames.remove(d)
        dirnames.sort()
        for f in sorted(filenames):
            path = here / f
            rel = path.relative_to(root)
            if f.startswith("."):
                if path.suffix.lower() in IMAGE_EXTENSIONS:  # .DS_Store and other dot-files are not data
                    issues.append(IngestIssue(str(path), "hidden file (its name starts with '.'): not loaded"))
                continue
            problem = text_problem(str(rel))
            if problem:
                issues.append(IngestIssue(str(path), f"file name {problem}", field="path"))
                continue
            if len(rel.parts) < 2:
                issues.append(IngestIssue(str(path), "not inside a class sub-folder, so it has no label"))
                continue
            if path.is_symlink():
                try:
                    target = path.resolve()
                except (OSError, RuntimeError):
                    issues.append(IngestIssue(str(path), "symbolic link loop", field="path"))
                    continue
                if not _inside(target, base):
                    issues.append(IngestIssue(str(path), f"symbolic link to {target}, outside the folder {root}: "
                                                         "not loaded", field="path"))
                    continue
            candidates.append(
                _Candidate(file=str(path), row=None, id=rel.with_suffix("").as_posix(), role=role, path=path,
                           label=rel.parts[0])
            )
    if not candidates and not issues:
        issues.append(IngestIssue(str(root), "no files found: nothing to load", severity="warning"))
    return candidates, issues


def _plan_columns(table: RawTable, require_path: bool) -> tuple[dict[str, list[int]], list[IngestIssue]]:
    """Which columns to read (name → positions in the file) and a warning for every column left out."""
    name, issues = table.file, []
    positions: dict[str, list[int]] = {}
    for k, col in enumerate(table.columns):
        positions.setdefault(col, []).append(k)
    usable: dict[str, list[int]] = {}
    for col, ks in positions.items():
        where = ", ".join(str(k + 1) for k in ks)
        if col == "":
            if any(r is not None and not is_missing(r[k]) for r in table.rows for k in ks):
                issues.append(IngestIssue(name, f"column {where} has no name in the header: its values were not "
                                                "loaded", severity="warning"))
            continue
        problem = text_problem(col, limit=MAX_TEXT)
        if problem:
            issues.append(IngestIssue(name, f"column name {show(col)} {problem}: the column was not loaded",
                                      field=col, severity="warning"))
            continue
        if col in RESERVED_COLUMNS:
            issues.append(IngestIssue(name, f"column {col!r} has a name ADDE uses for its own data "
                                            f"({', '.join(RESERVED_COLUMNS)}): the column was not loaded; rename it",
                                      field=col, severity="warning"))
            continue
        if len(ks) > 1:
            issues.append(IngestIssue(name, f"columns {where} are all named {col!r}: a row loads only where they "
                                            "hold the same value", field=col, severity="warning"))
        folded = col.casefold()
        if col not in MANIFEST_COLUMNS and folded in MANIFEST_COLUMNS and folded not in positions:
            issues.append(IngestIssue(name, f"column {col!r} is read as a subgroup attribute, not as {folded!r}: "
                                            f"column names are case-sensitive, rename it to {folded!r}",
                                      field=col, severity="warning"))
        usable[col] = ks
    if require_path and "path" not in usable:
        raise IngestError(f"{name}: no 'path' column (columns are: {', '.join(map(str, table.columns))})")
    # An attribute must be one value per row; a column of lists or bytes cannot become a subgroup.
    for col in [c for c in usable if c not in MANIFEST_COLUMNS]:
        k = usable[col][0]
        unsupported, converted = {}, {}
        for i, cells in enumerate(table.rows, start=1):
            if cells is None or is_missing(cells[k]):
                continue
            value, conv, unsup = classify(cells[k])
            if unsup:
                unsupported.setdefault(unsup, []).append(i)
            elif conv:
                converted.setdefault(conv, (i, value))
        if unsupported:
            kind, rows = next(iter(unsupported.items()))
            issues.append(IngestIssue(
                name, f"column {col!r} holds {kind} (first in row {rows[0]}, {len(rows):,} rows in all): an attribute "
                      "must be one value per row (text, a number or true/false), so the column was not loaded",
                field=col, severity="warning"))
            del usable[col]
        for kind, (i, value) in converted.items():
            issues.append(IngestIssue(name, f"column {col!r} holds {kind}: stored as text, e.g. {value!r} (row {i})",
                                      field=col, severity="warning"))
    return usable, issues


def read_manifest(manifest: Path, *, data_root: Path | None = None, default_role: str = "seed",
                  require_path: bool = True) -> ManifestRows:
    """Read a CSV or Parquet manifest into candidates.

    Parameters
    ----------
    manifest
        ``.csv`` or ``.parquet`` file with a ``path`` column and optionally ``id``,
        ``label``, ``role``, ``oracle_label``, ``source``; all other columns become
        attributes (e.g. subgroup columns).
    data_root
        Folder that relative paths are resolved against and that no path may leave;
        defaults to the manifest's folder.
    default_role
        Role for rows without a ``role`` value.
    require_path
        Whether every row needs an image path (False when embeddings are supplied).

    Raises
    ------
    IngestError
        When the file as a whole cannot be read; row problems are returned as issues.
    """
    manifest = Path(manifest)
    table = read_table(manifest)
    name = table.file
    usable, column_issues = _plan_columns(table, require_path)
    issues = table.issues + column_issues
    root = Path(data_root) if data_root is not None else manifest.parent
    found = path_state(root)
    if found != "folder":
        raise IngestError(f"data root {shown_path(root)}: " + ("not a folder" if found == "file" else found))
    paths = _PathChecker(root)
    attr_cols = [c for c in usable if c not in MANIFEST_COLUMNS]
    candidates: list[_Candidate] = []
    for i, cells in enumerate(table.rows, start=1):
        if cells is None:
            continue  # reported by the reader
        notes: list[IngestIssue] = []
        try:
            cand = _read_row(name, i, cells, usable, attr_cols, paths, default_role, require_path, notes)
        except _RowProblem as problem:
            issues.append(IngestIssue(name, problem.reason, row=i, field=problem.column))
            continue
        except Exception as exc:  # a last resort: one row must never abort the ingest
            issues.append(IngestIssue(name, f"row cannot be read ({type(exc).__name__}: {brief(exc)})", row=i))
            continue
        issues.extend(notes)
        candidates.append(cand)
    if not table.rows:
        issues.append(IngestIssue(name, "the manifest has a header but no rows: nothing to load", severity="warning"))
    return ManifestRows(candidates, issues, len(table.rows), table.aligned)


def _read_row(name: str, i: int, cells: list[Any], usable: dict[str, list[int]], attr_cols: list[str],
              paths: _PathChecker, default_role: str, require_path: bool, notes: list[IngestIssue]) -> _Candidate:
    """One manifest row as a candidate; raises :class:`_RowProblem` when it cannot be loaded."""

    def cell(col: str) -> Any:
        ks = usable.get(col)
        if not ks:
            return None
        if len(ks) == 1:
            value = cells[ks[0]]
            return None if is_missing(value) else value
        values = [None if is_missing(cells[k]) else cells[k] for k in ks]
        if len({repr(v) for v in values}) > 1:
            shown = ", ".join(f"{show(v)} (column {k + 1})" for v, k in zip(values, usable[col]))
            raise _RowProblem(f"the {len(values)} {col!r} columns disagree: {shown}", col)
        return values[0] if values else None

    def text(col: str) -> str | None:
        value = cell(col)
        if value is None:
            return None
        value, _, unsupported = classify(value)
        if unsupported:
            raise _RowProblem(f"{col} holds {unsupported}, not text", col)
        if isinstance(value, float) and not np.isfinite(value):
            raise _RowProblem(f"{col} is {value}, not text", col)
        raw = str(value)
        stripped = raw.strip()
        if stripped and stripped != raw and col in ("id", "label", "oracle_label"):
            notes.append(IngestIssue(name, f"{col} {show(raw)} has spaces around it: stored as {show(stripped)}",
                                     row=i, field=col, severity="warning"))
        return stripped or None

    rel = text("path")
    path = None
    if rel is not None:
        path, reason = paths.check(rel)
        if reason is not None:
            raise _RowProblem(reason, "path")
    elif require_path:
        raise _RowProblem("empty path", "path")
    item_id = text("id")
    if item_id is None and rel is not None:
        item_id = Path(rel).with_suffix("").as_posix() if Path(rel).suffix else rel
    attributes = {}
    for col in attr_cols:
        value = cell(col)
        if value is None:
            continue
        value, _, unsupported = classify(value)
        if unsupported:  # a repeated column whose other copy holds lists
            raise _RowProblem(f"{col} holds {unsupported}, not one value", col)
        if isinstance(value, float) and not np.isfinite(value):
            raise _RowProblem(f"{col} is {value}, not a finite number", col)
        if isinstance(value, str):
            problem = text_problem(value, controls=False)
            if problem:
                raise _RowProblem(f"{col} {problem}", col)
        attributes[col] = value
    return _Candidate(file=name, row=i, record=i - 1, id=item_id or f"row-{i}", role=text("role") or default_role,
                      path=path, label=text("label"), oracle_label=text("oracle_label"), source=text("source"),
                      attributes=attributes)


# --------------------------------------------------------------------------- embeddings
def _vector_problem(v64: np.ndarray, v32: np.ndarray) -> str | None:
    if not np.isfinite(v64).all():
        return "contains NaN or inf"
    if not np.isfinite(v32).all():
        return "has values beyond the float32 range (±3.4e38) that embeddings are stored in"
    return None


def _read_npy(path: Path) -> tuple[np.ndarray | None, str | None]:
    try:
        matrix = np.load(path, allow_pickle=False)  # never unpickle user files
    except (ValueError, OSError, EOFError) as exc:  # object arrays, truncated or non-.npy files
        return None, f"cannot be read as a numeric matrix ({brief(exc)})"
    if not isinstance(matrix, np.ndarray):
        return None, "is not a single array"
    if np.iscomplexobj(matrix):
        return None, (f"holds complex numbers (dtype {matrix.dtype}); embeddings must be real: save the real "
                      "part or the magnitude explicitly if that is what you mean")
    if not np.issubdtype(matrix.dtype, np.number):
        return None, f"not numeric (dtype {matrix.dtype})"
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        return None, f"wrong dimensions: expected a 2-D (items × features) array, got shape {matrix.shape}"
    return matrix, None


def _read_parquet_vectors(path: Path, issues: list[IngestIssue]) -> dict[str, tuple[int, np.ndarray]] | None:
    """Vectors of an embeddings Parquet file by id, with their 0-based row; None when the file is unusable."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    name = str(path)
    table = pq.read_table(path)
    names = [str(c) for c in table.column_names]
    if "id" not in names:
        issues.append(IngestIssue(name, "no 'id' column to match rows to the manifest", field="id"))
        return None
    ids = table.column("id").to_pylist()
    rows: list[np.ndarray | None] = []
    if "embedding" in names:
        for r, value in enumerate(table.column("embedding").to_pylist(), start=1):
            try:
                vec = None if value is None else np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError):
                vec = np.empty((0, 0))
            if vec is None or vec.ndim != 1 or vec.size == 0:
                issues.append(IngestIssue(name, "no embedding" if value is None else "embedding is not a list of "
                                          "numbers", row=r, field="embedding"))
                vec = None
            rows.append(vec)
        widths = Counter(len(v) for v in rows if v is not None)
        if widths:
            dim = widths.most_common(1)[0][0]
            for r, vec in enumerate(rows):
                if vec is not None and len(vec) != dim:
                    issues.append(IngestIssue(name, f"embedding has {len(vec)} values but most rows have {dim}",
                                              row=r + 1, field="embedding"))
                    rows[r] = None
    else:
        cols = [c for c in names if c != "id"]
        bad = [c for c in cols if not (pa.types.is_integer(table.column(c).type)
                                       or pa.types.is_floating(table.column(c).type))]
        if bad:
            issues.append(IngestIssue(name, f"cannot be read as a numeric matrix: column {bad[0]!r} is not numeric",
                                      field=bad[0]))
            return None
        if not cols:
            issues.append(IngestIssue(name, "no 'embedding' column and no numeric columns"))
            return None
        matrix = np.column_stack([pc.cast(table.column(c), pa.float64()).to_numpy(zero_copy_only=False) for c in cols])
        rows = list(matrix)
    by_id: dict[str, tuple[int, np.ndarray]] = {}
    seen: set[str] = set()
    for r, (raw, vec) in enumerate(zip(ids, rows)):
        item_id = None if is_missing(raw) else str(raw).strip()
        if not item_id:
            issues.append(IngestIssue(name, "no id: this row was ignored", row=r + 1, field="id", severity="warning"))
        elif item_id in seen:
            issues.append(IngestIssue(name, f"duplicate id {item_id!r}; the first row is used", row=r + 1,
                                      field="id", severity="warning"))
        else:
            seen.add(item_id)
            if vec is not None:
                by_id[item_id] = (r, vec)
    return by_id


def attach_embeddings(candidates: list[_Candidate], embeddings: Path, *, n_rows: int | None = None,
                      aligned: bool = True) -> list[IngestIssue]:
    """Attach precomputed vectors to candidates, in place.

    ``.npy`` arrays align with the manifest's rows in order (row k of the array belongs to
    data row k of the manifest, whether or not that row loads); ``.parquet`` files are
    matched by an ``id`` column and hold either one list column ``embedding`` or one
    numeric column per dimension. A file-level problem (unreadable, complex or non-numeric
    values, wrong number of dimensions or rows) attaches nothing and is reported once; a
    bad row (NaN/inf, beyond float32) is reported with its row number and its item is not
    loaded.

    Parameters
    ----------
    candidates
        Candidates read from the manifest, carrying their 0-based ``record``.
    embeddings
        The ``.npy`` or ``.parquet`` file.
    n_rows
        Number of data rows in the manifest (default: ``len(candidates)``).
    aligned
        False when the manifest's row boundaries are uncertain; a ``.npy`` is then refused.
    """
    embeddings = Path(embeddings)
    name = str(embeddings)
    found = path_state(embeddings)
    if found != "file":
        return [IngestIssue(shown_path(name), f"embeddings file {found}")]
    suffix = embeddings.suffix.lower()
    n_rows = len(candidates) if n_rows is None else n_rows
    issues: list[IngestIssue] = []
    try:
        if suffix == ".npy":
            matrix, problem = _read_npy(embeddings)
            if problem:
                return [IngestIssue(name, problem)]
            if len(matrix) != n_rows:
                return [IngestIssue(name, f"row count mismatch: {len(matrix)} embedding rows for {n_rows} "
                                          "manifest rows; .npy rows must match the manifest row for row")]
            if not aligned:
                return [IngestIssue(name, "the manifest has rows that could not be parsed, so its rows cannot be "
                                          "matched to .npy rows reliably; fix the manifest, or use a .parquet "
                                          "embeddings file with an 'id' column")]
            rows_of = {k: (c.record, matrix[c.record]) for k, c in enumerate(candidates) if c.record is not None}
        elif suffix == ".parquet":
            lookup = _read_parquet_vectors(embeddings, issues)
            if lookup is None:
                return issues
            rows_of = {k: lookup[c.id] for k, c in enumerate(candidates) if c.id in lookup}
            known = {c.id for c in candidates}
            for item_id, (r, _) in lookup.items():
                if item_id not in known:
                    issues.append(IngestIssue(name, f"id {item_id!r} is not in the manifest; ignored", row=r + 1,
                                              field="id", severity="warning"))
        else:
            return [IngestIssue(name, f"embeddings must be .npy or .parquet, not {suffix!r}")]
    except Exception as exc:  # a damaged file: pyarrow and numpy raise many types, all meaning "unreadable"
        return issues + [IngestIssue(name, f"cannot be read ({brief(exc)})")]
    for k, (r, v64) in rows_of.items():
        cand = candidates[k]
        with np.errstate(over="ignore", invalid="ignore"):
            v32 = np.asarray(v64, dtype=np.float32)
        problem = _vector_problem(np.asarray(v64, dtype=np.float64), v32)
        if problem:
            issues.append(IngestIssue(name, f"embedding for {cand.id!r} {problem}", row=r + 1, field="embedding"))
            cand.rejected = True
        else:
            cand.vector = v32
    return issues


# --------------------------------------------------------------------------- validation
def _role_reason(role: str) -> str:
    hint = ""
    if role.strip().casefold() in USER_ROLES:
        hint = f"; did you mean {role.strip().casefold()!r}? roles are lower-case"
    elif role == "candidate":
        hint = "; 'candidate' is for generated items awaiting review, which ADDE creates itself"
    return f"unknown role {show(role)} (expected one of {', '.join(USER_ROLES)}){hint}"


def _code_points(text: str) -> str:
    return " ".join(f"U+{ord(c):04X}" for c in text[:12]) + (" …" if len(text) > 12 else "")


def _label_key(label: str) -> str:
    return unicodedata.normalize("NFKC", label).casefold()


def _validate(candidates: list[_Candidate], *, existing_ids: set[str], seed_labels: set[str],
              progress: ProgressCallback | None, known_labels: set[str] = frozenset()
              ) -> tuple[list[_Candidate], list[IngestIssue]]:
    issues: list[IngestIssue] = []
    kept: list[_Candidate] = []
    first_seen: dict[str, _Candidate] = {}
    pool_labels: Counter[str] = Counter()
    total = len(candidates)
    for n, cand in enumerate(candidates, start=1):
        if progress is not None and (n % 256 == 0 or n == total):
            progress(n, total)
        if cand.rejected:
            continue  # already reported
        try:
            problem = _check_candidate(cand, existing_ids, first_seen)
        except Exception as exc:  # a last resort: one item must never abort the ingest
            problem = (f"cannot be checked ({type(exc).__name__}: {brief(exc)})", None, None)
        if problem is not None:
            reason, fld, file = problem
            issues.append(IngestIssue(file or cand.file, reason, row=cand.row, field=fld))
            continue
        if cand.role == "pool" and cand.label is not None:
            # The pool is unlabelled by definition: a label given for it is kept hidden, for simulated review.
            if cand.oracle_label is not None and cand.oracle_label != cand.label:
                issues.append(IngestIssue(cand.file, f"pool item has label {show(cand.label)} and oracle_label "
                                                     f"{show(cand.oracle_label)}: the pool is unlabelled, so the label "
                                                     "was dropped and the oracle_label kept", row=cand.row,
                                          field="label", severity="warning"))
            else:
                pool_labels[cand.file] += 1
            cand.oracle_label = cand.oracle_label or cand.label
            cand.label = None
        first_seen[cand.id] = cand
        kept.append(cand)
    for file, n in pool_labels.items():
        issues.append(IngestIssue(file, f"{n:,} pool rows have a label: the pool is unlabelled, so it is kept hidden "
                                        "as oracle_label (only simulated review reads it)", field="label",
                                  severity="warning"))
    # Val/OOD labels must be learnable: a classifier trained on the seed never predicts a label it never saw.
    seed_labels = seed_labels | {c.label for c in kept if c.role == "seed"}
    final: list[_Candidate] = []
    spelling = {_label_key(lab): (lab, "in the project") for lab in sorted(known_labels)}
    for cand in kept:
        if cand.role in ("val", "ood") and cand.label not in seed_labels:
            issues.append(IngestIssue(cand.file, f"label {cand.label!r} in {cand.role} does not occur in the seed "
                                                 "set, so no model trained on it can predict it", row=cand.row,
                                      field="label"))
            continue
        if cand.label is not None:
            where = f"row {cand.row}" if cand.row is not None else cand.file
            first, first_where = spelling.setdefault(_label_key(cand.label), (cand.label, where))
            if first != cand.label:
                how = ("letter case" if first.casefold() == cand.label.casefold() else
                       f"Unicode form (code points {_code_points(cand.label)} vs {_code_points(first)})")
                issues.append(IngestIssue(cand.file, f"label {show(cand.label)} differs from label {show(first)} "
                                                     f"({first_where}) only in {how}: they are two different "
                                                     "classes", row=cand.row, field="label", severity="warning"))
        final.append(cand)
    return final, issues


def _check_candidate(cand: _Candidate, existing_ids: set[str],
                     first_seen: dict[str, _Candidate]) -> tuple[str, str | None, str | None] | None:
    """Why a candidate cannot be loaded, as (reason, field, file), or None; hashes its image."""
    for fld in ("id", "label", "oracle_label"):
        value = getattr(cand, fld)
        problem = None if value is None else text_problem(value, limit=MAX_TEXT)
        if problem:
            return f"{fld} {show(value)} {problem}", fld, None
    if cand.role not in USER_ROLES:
        return _role_reason(cand.role), "role", None
    if cand.source is not None and cand.source not in ITEM_SOURCES:
        return f"unknown source {show(cand.source)} (expected one of {', '.join(ITEM_SOURCES)})", "source", None
    if cand.id in existing_ids:
        return f"duplicate id {cand.id!r}: already in the project", "id", None
    if cand.id in first_seen:
        first = first_seen[cand.id]
        where = f"row {first.row}" if first.row is not None else first.file
        return f"duplicate id {cand.id!r}: same as {where}", "id", None
    label = cand.label if cand.role != "pool" else None
    if cand.role in LABELLED_ROLES and label is None:
        return f"{cand.role} item has no label", "label", None
    if cand.path is not None:
        content_hash, reason = inspect_image(cand.path)
        if reason is not None:
            if reason == "file not found" and "\\" in str(cand.path):
                reason += " (the path contains '\\'; separate folders with '/')"
            # For a manifest row, name the image file too: the user needs both to fix it.
            where = str(cand.path) if cand.row is None else f"{cand.path} (listed in {cand.file})"
            return reason, "path", where
        cand.content_hash = content_hash
    elif cand.vector is None:
        return "no image path and no embedding: nothing to load", "path", None
    return None


TRAINING_ROLES = ("seed", "pool")
EVALUATION_ROLES = ("val", "ood")


def duplicate_content_warnings(kept: list[_Candidate], existing: pd.DataFrame) -> list[IngestIssue]:
    """Warn about items whose image bytes equal an earlier item's (they still load).

    A byte-identical image in a training role (seed/pool) and an evaluation role
    (val/ood) leaks the evaluation set into training and inflates val scores, so that
    case says so explicitly.

    Parameters
    ----------
    kept
        Validated candidates about to be written.
    existing
        Items already in the project, with ``id``, ``role`` and ``content_hash`` columns.
    """
    seen: dict[str, tuple[str, str]] = {}
    for item_id, role, content in existing[["id", "role", "content_hash"]].itertuples(index=False):
        if isinstance(content, str):
            seen.setdefault(content, (item_id, role))  # the first copy is the one to name
    issues = []
    for cand in kept:
        if cand.content_hash is None:
            continue
        first = seen.setdefault(cand.content_hash, (cand.id, cand.role))
        if first[0] == cand.id:
            continue
        roles = {first[1], cand.role}
        leak = bool(roles & set(TRAINING_ROLES)) and bool(roles & set(EVALUATION_ROLES))
        reason = f"same image bytes as item {first[0]!r} ({first[1]})" + (
            ": the same image in a training and an evaluation role leaks val/ood into training" if leak else "")
        issues.append(IngestIssue(cand.file, reason, row=cand.row, field="path", severity="warning"))
    return issues


def _record(cand: _Candidate, project: "Workspace", iteration: int) -> ItemRecord:
    source = cand.source or ("pool" if cand.role == "pool" else "real")
    return ItemRecord(
        id=cand.id, role=cand.role, uri=project.to_uri(cand.path) if cand.path is not None else None,
        label=cand.label, oracle_label=cand.oracle_label, attributes=cand.attributes, source=source,
        iteration_added=iteration, content_hash=cand.content_hash,
    )


def ingest_candidates(project: "Workspace", candidates: list[_Candidate], issues: list[IngestIssue], *,
                      source: str, embedding_name: str | None = None,
                      progress: ProgressCallback | None = None) -> IngestReport:
    """Validate candidates and write the valid ones (and their vectors) to the project.

    Returns
    -------
    IngestReport
        What loaded and every issue, also stored with the ingest run.

    Raises
    ------
    IngestError
        When the valid items cannot be written (nothing is written then).
    """
    store = project.store
    source = printable(source)
    run_id = store.start_run("ingest", {"source": source})
    report = IngestReport(source=source, issues=list(issues))
    try:
        labels = {r: store.labels(r) for r in LABELLED_ROLES}
        kept, more = _validate(candidates, existing_ids=store.item_ids(), seed_labels=labels["seed"],
                               progress=progress, known_labels=set().union(*labels.values()))
        report.issues.extend(more)
        report.issues.extend(duplicate_content_warnings(kept, store.items_frame()))
        with_vec = [c for c in kept if c.vector is not None]
        model_key = f"{PRECOMPUTED_PREFIX}{embedding_name}" if embedding_name else None
        previous = store.load_embeddings(model_key) if model_key and with_vec else None
        if previous is not None and previous.vectors.shape[1] != len(with_vec[0].vector):
            report.issues.append(IngestIssue(
                source, f"wrong dimensions: these embeddings have {len(with_vec[0].vector)} features but the project's "
                        f"{model_key!r} set has {previous.vectors.shape[1]}; nothing from this file was loaded"))
            kept = [c for c in kept if c.path is not None]
            for c in kept:
                c.vector = None
            with_vec = []
        new_set = None
        if with_vec:
            ids = [c.id for c in with_vec]
            vectors = np.stack([c.vector for c in with_vec])
            if previous is not None:
                ids = list(previous.ids) + ids
                vectors = np.concatenate([previous.vectors, vectors])
            from adde_core.store.database import StoredEmbeddings, data_fingerprint

            hashes = {i: hashlib.sha1(v.tobytes()).hexdigest() for i, v in zip(ids, vectors)}
            new_set = StoredEmbeddings(model_key, np.asarray(ids), vectors, data_fingerprint(model_key, hashes.items()))
            report.embeddings = {"model_key": model_key, "n": len(with_vec), "dim": int(vectors.shape[1])}
        # One query for the iteration, not one per item (a database round trip each: minutes at 10^6).
        iteration = store.current_iteration()
        # Items and their vectors commit together: a crash can never leave items without the vectors
        # they came with (which a re-ingest would then refuse as duplicates).
        store.add_items([_record(c, project, iteration) for c in kept], run_id=run_id, embeddings=new_set,
                        replaces=None if previous is None else previous.fingerprint)
        from adde_core.faults import fault_point

        fault_point("ingest:written")  # test hook: everything committed, the run not yet marked finished
        report.n_loaded = len(kept)
        report.loaded_by_role = pd.Series([c.role for c in kept], dtype=object).value_counts().to_dict()
    except Exception as exc:
        store.finish_run(run_id, status="failed", summary={"error": printable(str(exc)), **report.to_dict()})
        if isinstance(exc, IngestError):
            raise
        from adde_core.store.database import is_conflict

        if is_conflict(exc):
            raise IngestError(f"{source}: another ingest added some of these ids at the same time, so nothing was "
                              "written; run the ingest again (ids already present will be reported)") from exc
        raise IngestError(f"{source}: the valid items could not be written, so nothing was loaded "
                          f"({type(exc).__name__}: {exc})") from exc
    store.finish_run(run_id, summary=report.to_dict())
    return report


def _check_role(role: str) -> None:
    if role not in USER_ROLES:
        raise IngestError(_role_reason(role))


def ingest_folder(project: "Workspace", root: Path, *, role: str = "seed",
                  progress: ProgressCallback | None = None) -> IngestReport:
    """Ingest an image folder with one sub-folder per class, all items taking ``role``."""
    _check_role(role)
    candidates, issues = scan_image_folder(Path(root), role=role)
    return ingest_candidates(project, candidates, issues, source=str(root), progress=progress)


def ingest_manifest(project: "Workspace", manifest: Path, *, data_root: Path | None = None,
                    embeddings: Path | None = None, embedding_name: str | None = None,
                    default_role: str = "seed", progress: ProgressCallback | None = None) -> IngestReport:
    """Ingest a CSV/Parquet manifest, optionally with precomputed embeddings.

    Parameters
    ----------
    embeddings
        ``.npy`` (rows in manifest order) or ``.parquet`` (matched by ``id``) vectors.
        They are stored as the embedding set ``precomputed:<embedding_name>``
        (default: the file's stem).
    """
    _check_role(default_role)
    rows = read_manifest(Path(manifest), data_root=data_root, default_role=default_role,
                         require_path=embeddings is None)
    issues = list(rows.issues)
    if embeddings is not None:
        issues += attach_embeddings(rows.candidates, Path(embeddings), n_rows=rows.n_rows, aligned=rows.aligned)
        embedding_name = embedding_name or Path(embeddings).stem
    return ingest_candidates(project, rows.candidates, issues, source=str(manifest), embedding_name=embedding_name,
                             progress=progress)
