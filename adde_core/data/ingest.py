"""Ingest image folders, CSV/Parquet manifests and precomputed embeddings into a project.

Every input is validated row by row. A bad file or row becomes an
:class:`~adde_core.data.report.IngestIssue` naming the file, row and reason, and
everything else still loads. Valid items are written in one transaction.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from adde_core.data.report import IngestIssue, IngestReport
from adde_core.embedding.base import ProgressCallback
from adde_core.errors import IngestError
from adde_core.store.models import ITEM_ROLES, ITEM_SOURCES, ItemRecord

if TYPE_CHECKING:
    from adde_core.project import Project

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
#: Manifest columns with a fixed meaning; every other column becomes a subgroup attribute.
MANIFEST_COLUMNS = ("id", "path", "label", "role", "oracle_label", "source")
#: Roles whose items must carry a label.
LABELLED_ROLES = ("seed", "val", "ood")
PRECOMPUTED_PREFIX = "precomputed:"


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


def inspect_image(path: Path) -> tuple[str | None, str | None]:
    """Check that ``path`` is a readable image and hash its bytes.

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

    if not path.exists():
        return None, "file not found"
    if not path.is_file():
        return None, "not a regular file"
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        return None, f"unsupported extension {path.suffix or '(none)'!r}; expected one of {', '.join(sorted(IMAGE_EXTENSIONS))}"
    blob = path.read_bytes()
    if not blob:
        return None, "zero-byte file"
    try:
        with Image.open(io.BytesIO(blob)) as im:
            im.load()  # decodes every pixel: catches truncated files that verify() lets through
    except UnidentifiedImageError:
        return None, "not an image (content is not a recognised image format)"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return None, f"corrupt image: {exc}"
    return hashlib.sha1(blob).hexdigest(), None


def _within(path: Path, root: Path) -> bool:
    # resolve() follows symlinks, so a link pointing outside the root is caught too.
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _clean(value: Any) -> Any:
    """Map pandas missing values to None and numpy scalars to Python ones."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def _text(value: Any) -> str | None:
    value = _clean(value)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


# --------------------------------------------------------------------------- readers
def scan_image_folder(root: Path, *, role: str) -> tuple[list[_Candidate], list[IngestIssue]]:
    """Read an image folder with one sub-folder per class.

    The first-level sub-folder name is the label; ids are paths relative to ``root``
    without extension. Files directly in ``root`` have no class and are reported.
    """
    root = Path(root)
    if not root.is_dir():
        raise IngestError(f"{root}: not a folder")
    candidates: list[_Candidate] = []
    issues: list[IngestIssue] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink()):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue  # hidden files (.DS_Store, .ipynb_checkpoints) are not data
        if len(rel.parts) < 2:
            issues.append(IngestIssue(str(path), "not inside a class sub-folder, so it has no label"))
            continue
        candidates.append(
            _Candidate(file=str(path), row=None, id=rel.with_suffix("").as_posix(), role=role, path=path,
                       label=rel.parts[0])
        )
    return candidates, issues


def read_manifest(manifest: Path, *, data_root: Path | None = None, default_role: str = "seed",
                  require_path: bool = True) -> tuple[list[_Candidate], list[IngestIssue]]:
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
    """
    manifest = Path(manifest)
    name = str(manifest)
    if not manifest.exists():
        raise IngestError(f"{name}: manifest not found")
    try:
        if manifest.suffix.lower() == ".parquet":
            frame = pd.read_parquet(manifest)
        elif manifest.suffix.lower() in (".csv", ".tsv", ".txt"):
            frame = pd.read_csv(manifest, sep=None, engine="python", dtype=str, keep_default_na=True)
        else:
            raise IngestError(f"{name}: manifest must be .csv or .parquet, not {manifest.suffix!r}")
    except IngestError:
        raise
    except Exception as exc:  # pandas raises many parser error types; all mean the same to the user
        raise IngestError(f"{name}: cannot be read as a table ({exc})") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    if require_path and "path" not in frame.columns:
        raise IngestError(f"{name}: no 'path' column (columns are: {', '.join(frame.columns)})")
    root = Path(data_root) if data_root is not None else manifest.parent
    attr_cols = [c for c in frame.columns if c not in MANIFEST_COLUMNS]
    candidates: list[_Candidate] = []
    issues: list[IngestIssue] = []
    for i, rec in enumerate(frame.to_dict("records"), start=1):
        rel = _text(rec.get("path"))
        path = None
        if rel is not None:
            path = (root / rel) if not Path(rel).is_absolute() else Path(rel)
            if not _within(path, root):
                issues.append(IngestIssue(name, f"path {rel!r} escapes the data root {root}", row=i, field="path"))
                continue
        elif require_path:
            issues.append(IngestIssue(name, "empty path", row=i, field="path"))
            continue
        item_id = _text(rec.get("id")) or (Path(rel).with_suffix("").as_posix() if rel else f"row-{i}")
        attributes = {c: _clean(rec[c]) for c in attr_cols if _clean(rec[c]) is not None}
        candidates.append(
            _Candidate(file=name, row=i, id=item_id, role=_text(rec.get("role")) or default_role, path=path,
                       label=_text(rec.get("label")), oracle_label=_text(rec.get("oracle_label")),
                       source=_text(rec.get("source")), attributes=attributes)
        )
    return candidates, issues


def attach_embeddings(candidates: list[_Candidate], embeddings: Path) -> list[IngestIssue]:
    """Attach precomputed vectors to candidates, in place.

    ``.npy`` arrays align with the manifest's rows in order; ``.parquet`` files are
    matched by an ``id`` column and hold either one list column ``embedding`` or one
    numeric column per dimension. A file-level problem (unreadable, wrong number of
    dimensions or rows) attaches nothing and is reported once; a NaN/inf row is
    reported with its row number.
    """
    embeddings = Path(embeddings)
    name = str(embeddings)
    if not embeddings.exists():
        return [IngestIssue(name, "embeddings file not found")]
    suffix = embeddings.suffix.lower()
    try:
        if suffix == ".npy":
            matrix = np.load(embeddings, allow_pickle=False)  # never unpickle user files
            ids = None
        elif suffix == ".parquet":
            table = pd.read_parquet(embeddings)
            if "id" not in table.columns:
                return [IngestIssue(name, "no 'id' column to match rows to the manifest", field="id")]
            ids = table["id"].astype(str).tolist()
            if "embedding" in table.columns:
                matrix = np.stack([np.asarray(v, dtype=np.float64) for v in table["embedding"]])
            else:
                matrix = table.drop(columns=["id"]).to_numpy(dtype=np.float64)
        else:
            return [IngestIssue(name, f"embeddings must be .npy or .parquet, not {suffix!r}")]
    except ValueError as exc:  # ragged lists, non-numeric columns, object arrays refused by allow_pickle=False
        return [IngestIssue(name, f"cannot be read as a numeric matrix ({exc})")]
    except Exception as exc:
        return [IngestIssue(name, f"cannot be read ({exc})")]
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        return [IngestIssue(name, f"wrong dimensions: expected a 2-D (items × features) array, got shape {matrix.shape}")]
    if not np.issubdtype(matrix.dtype, np.number):
        return [IngestIssue(name, f"not numeric (dtype {matrix.dtype})")]
    issues: list[IngestIssue] = []
    if ids is None:
        if len(matrix) != len(candidates):
            return [IngestIssue(name, f"row count mismatch: {len(matrix)} embedding rows for {len(candidates)} "
                                      "manifest rows; .npy rows must match the manifest row for row")]
        rows = dict(zip((c.id for c in candidates), range(len(matrix))))
    else:
        rows = {}
        known = {c.id for c in candidates}
        for r, item_id in enumerate(ids):
            if item_id in rows:
                issues.append(IngestIssue(name, f"duplicate id {item_id!r}; the first row is used", row=r + 1,
                                          field="id", severity="warning"))
            elif item_id not in known:
                issues.append(IngestIssue(name, f"id {item_id!r} is not in the manifest; ignored", row=r + 1,
                                          field="id", severity="warning"))
            else:
                rows[item_id] = r
    finite = np.isfinite(matrix).all(axis=1)
    for cand in candidates:
        r = rows.get(cand.id)
        if r is None:
            continue
        if not finite[r]:
            issues.append(IngestIssue(name, f"embedding for {cand.id!r} contains NaN or inf", row=r + 1))
            cand.vector = np.full(matrix.shape[1], np.nan)  # marks the candidate as rejected below
        else:
            cand.vector = matrix[r].astype(np.float32)
    return issues


# --------------------------------------------------------------------------- validation
def _validate(candidates: list[_Candidate], *, existing_ids: set[str], seed_labels: set[str],
              progress: ProgressCallback | None) -> tuple[list[_Candidate], list[IngestIssue]]:
    issues: list[IngestIssue] = []
    kept: list[_Candidate] = []
    first_row: dict[str, int | None] = {}
    total = len(candidates)
    for n, cand in enumerate(candidates, start=1):
        if progress is not None and (n % 256 == 0 or n == total):
            progress(n, total)

        def reject(reason: str, fld: str | None = None, *, file: str | None = None) -> None:
            issues.append(IngestIssue(file or cand.file, reason, row=cand.row, field=fld))

        if cand.role not in ITEM_ROLES:
            reject(f"unknown role {cand.role!r} (expected one of {', '.join(ITEM_ROLES)})", "role")
            continue
        if cand.source is not None and cand.source not in ITEM_SOURCES:
            reject(f"unknown source {cand.source!r} (expected one of {', '.join(ITEM_SOURCES)})", "source")
            continue
        if cand.id in existing_ids:
            reject(f"duplicate id {cand.id!r}: already in the project", "id")
            continue
        if cand.id in first_row:
            where = f"row {first_row[cand.id]}" if first_row[cand.id] else "an earlier file"
            reject(f"duplicate id {cand.id!r}: same as {where}", "id")
            continue
        if cand.role == "pool" and cand.label is not None:
            # The pool is unlabelled by definition: a label given for it is kept hidden, for simulated review.
            cand.oracle_label = cand.oracle_label or cand.label
            cand.label = None
        if cand.role in LABELLED_ROLES and cand.label is None:
            reject(f"{cand.role} item has no label", "label")
            continue
        if cand.vector is not None and not np.isfinite(cand.vector).all():
            continue  # already reported by attach_embeddings
        if cand.path is not None:
            content_hash, reason = inspect_image(cand.path)
            if reason is not None:
                # For a manifest row, name the image file too: the user needs both to fix it.
                where = str(cand.path) if cand.row is None else f"{cand.path} (listed in {cand.file})"
                reject(reason, "path", file=where if cand.row is not None else str(cand.path))
                continue
            cand.content_hash = content_hash
        elif cand.vector is None:
            reject("no image path and no embedding: nothing to load", "path")
            continue
        first_row[cand.id] = cand.row
        kept.append(cand)
    # Val/OOD labels must be learnable: a classifier trained on the seed never predicts a label it never saw.
    seed_labels = seed_labels | {c.label for c in kept if c.role == "seed"}
    final: list[_Candidate] = []
    for cand in kept:
        if cand.role in ("val", "ood") and cand.label not in seed_labels:
            issues.append(IngestIssue(cand.file, f"label {cand.label!r} in {cand.role} does not occur in the seed set, "
                                                 "so no model trained on it can predict it", row=cand.row, field="label"))
            continue
        final.append(cand)
    return final, issues


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


def _record(cand: _Candidate, project: "Project") -> ItemRecord:
    source = cand.source or ("pool" if cand.role == "pool" else "real")
    return ItemRecord(
        id=cand.id, role=cand.role, uri=project.to_uri(cand.path) if cand.path is not None else None,
        label=cand.label, oracle_label=cand.oracle_label, attributes=cand.attributes, source=source,
        iteration_added=project.store.current_iteration(), content_hash=cand.content_hash,
    )


def ingest_candidates(project: "Project", candidates: list[_Candidate], issues: list[IngestIssue], *,
                      source: str, embedding_name: str | None = None,
                      progress: ProgressCallback | None = None) -> IngestReport:
    """Validate candidates and write the valid ones (and their vectors) to the project.

    Returns
    -------
    IngestReport
        What loaded and every issue, also stored with the ingest run.
    """
    store = project.store
    run_id = store.start_run("ingest", {"source": source})
    report = IngestReport(source=source, issues=list(issues))
    try:
        kept, more = _validate(candidates, existing_ids=store.item_ids(), seed_labels=store.labels("seed"),
                               progress=progress)
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
        store.add_items([_record(c, project) for c in kept], run_id=run_id)
        if with_vec:
            ids = [c.id for c in with_vec]
            vectors = np.stack([c.vector for c in with_vec])
            if previous is not None:
                ids = list(previous.ids) + ids
                vectors = np.concatenate([previous.vectors, vectors])
            from adde_core.store.database import data_fingerprint

            hashes = {i: hashlib.sha1(v.tobytes()).hexdigest() for i, v in zip(ids, vectors)}
            store.save_embeddings(model_key, ids, vectors, data_fingerprint(model_key, hashes.items()), run_id=run_id)
            report.embeddings = {"model_key": model_key, "n": len(with_vec), "dim": int(vectors.shape[1])}
        report.n_loaded = len(kept)
        report.loaded_by_role = pd.Series([c.role for c in kept], dtype=object).value_counts().to_dict()
    except Exception as exc:
        store.finish_run(run_id, status="failed", summary={"error": str(exc), **report.to_dict()})
        raise
    store.finish_run(run_id, summary=report.to_dict())
    return report


def ingest_folder(project: "Project", root: Path, *, role: str = "seed",
                  progress: ProgressCallback | None = None) -> IngestReport:
    """Ingest an image folder with one sub-folder per class, all items taking ``role``."""
    candidates, issues = scan_image_folder(Path(root), role=role)
    return ingest_candidates(project, candidates, issues, source=str(root), progress=progress)


def ingest_manifest(project: "Project", manifest: Path, *, data_root: Path | None = None,
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
    candidates, issues = read_manifest(Path(manifest), data_root=data_root, default_role=default_role,
                                       require_path=embeddings is None)
    if embeddings is not None:
        issues += attach_embeddings(candidates, Path(embeddings))
        embedding_name = embedding_name or Path(embeddings).stem
    return ingest_candidates(project, candidates, issues, source=str(manifest), embedding_name=embedding_name,
                             progress=progress)

