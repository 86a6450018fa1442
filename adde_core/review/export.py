"""Export the current dataset with its provenance, plus the decision audit log."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from adde_core.errors import AddeError
from adde_core.store.candidates import provenance_frame
from adde_core.store.decisions import decision_log, decision_states

if TYPE_CHECKING:
    from adde_core.workspace import Workspace

EXPORT_FORMATS = ("parquet", "csv")
# Characters no common file system accepts in a name (plus undecodable bytes); letters of every script are kept.
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|\ud800-\udfff]+')
_WINDOWS_RESERVED = frozenset({"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                               *(f"LPT{i}" for i in range(1, 10))})
#: Bytes a file or folder name may take, leaving room for a "-2" suffix and an extension under 255.
_MAX_NAME_BYTES = 150


@dataclass(frozen=True)
class ExportSummary:
    """Where an export went and what it holds."""

    folder: Path
    manifest: Path
    decisions: Path
    n_items: int
    n_images: int
    by_source: dict[str, int]
    #: "id: reason" for each item whose image could not be copied (its ``path`` is empty in the manifest).
    missing: tuple[str, ...] = ()


def dataset_frame(project: "Workspace") -> pd.DataFrame:
    """The current dataset D_t ∪ D_valid, one row per item, with provenance columns.

    Columns: ``id``, ``label``, ``source`` (real, pool or synthetic), ``iteration`` (when it
    joined: ``iteration_added`` for D_t, the decision's iteration for D_valid),
    ``decision``, ``reviewer``, ``decided_at``, ``flags``, ``critique``, ``generator``,
    ``prompt``, ``seed``, ``target_region`` and ``uri``.
    """
    items = project.store.items_frame()
    states = decision_states(project.store).set_index("item_id")
    in_dt = (items["role"] == "seed") & items["label"].notna()
    valid_ids = set(states.index[states["action"].isin(("accept", "relabel"))])
    frame = items[in_dt | items["id"].isin(valid_ids)].copy()
    st = states.reindex(frame["id"])
    accepted = frame["id"].isin(valid_ids).to_numpy()
    frame["label"] = frame["label"].where(~accepted, st["label"].to_numpy())
    frame["iteration"] = frame["iteration_added"].where(~accepted, st["iteration"].to_numpy())
    frame["decision"] = st["action"].to_numpy()
    frame["reviewer"] = st["reviewer"].to_numpy()
    frame["decided_at"] = st["created_at"].to_numpy()
    frame["flags"] = [", ".join(f) if isinstance(f, list) else "" for f in st["flags"]]
    frame["critique"] = st["critique"].to_numpy()
    prov = provenance_frame(project.store, list(frame.loc[frame["source"] == "synthetic", "id"])).set_index("item_id")
    prov = prov.reindex(frame["id"])
    frame["generator"] = prov["generator"].to_numpy()
    frame["prompt"] = prov["prompt"].to_numpy()
    frame["seed"] = prov["seed"].to_numpy()
    frame["target_region"] = [r.get("region_id") if isinstance(r, dict) else None for r in prov["target_region"]]
    cols = ["id", "label", "source", "iteration", "decision", "reviewer", "decided_at", "flags", "critique",
            "generator", "prompt", "seed", "target_region", "uri"]
    return frame[cols].reset_index(drop=True)


def export_dataset(project: "Workspace", folder: Path | str, *, fmt: str = "parquet",
                   copy_images: bool = True) -> ExportSummary:
    """Write the dataset manifest, its images and the decision log to ``folder``.

    Layout: ``dataset.<fmt>`` (a manifest ADDE can ingest back: ``path`` is relative to
    the folder), ``images/<label>/<id>.<ext>``, ``decisions.<fmt>`` (every decision,
    oldest first) and ``export.json`` (counts and the project it came from).

    Labels and ids are made safe as file names (path separators and characters that file
    systems refuse become ``_``). Where two items (or two labels) would then share a name,
    even one differing only in letter case, the later one gets a ``-2``, ``-3``… suffix,
    so every image is its own file; the manifest's ``id`` and ``label`` columns keep the
    real values. An image that cannot be copied is listed in ``missing`` and left out of
    ``n_images``.

    Parameters
    ----------
    project
    folder
        Created if missing; existing files with the same names are replaced.
    fmt
        ``"parquet"`` or ``"csv"``.
    copy_images
        Copy image files next to the manifest (else ``path`` holds the original file).
    """
    if fmt not in EXPORT_FORMATS:
        raise AddeError(f"unknown export format {fmt!r}: use one of {', '.join(EXPORT_FORMATS)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    frame = dataset_frame(project)
    files: list[str | None] = []
    missing: list[str] = []
    label_dirs: dict[str, str] = {}
    taken: set[str] = set()  # "folder/name", case-folded: two names may not differ only in case
    for item_id, label, uri in zip(frame["id"], frame["label"], frame["uri"]):
        if not isinstance(uri, str):
            files.append(None)
            continue
        src = project.resolve_uri(uri)
        if not src.is_file():
            missing.append(f"{item_id}: image file {src} not found")
            files.append(None if copy_images else str(src))
            continue
        if not copy_images:
            files.append(str(src))
            continue
        key = str(label) if isinstance(label, str) else ""
        if key not in label_dirs:
            label_dirs[key] = _claim(_safe_name(key, "unlabelled"), "", taken)
        rel = f"images/{label_dirs[key]}/" + _claim(_safe_name(str(item_id), "item"), src.suffix, taken,
                                                    folder=label_dirs[key])
        try:
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, folder / rel)
        except OSError as exc:
            missing.append(f"{item_id}: image file {src} cannot be copied ({exc.strerror or exc})")
            files.append(None)
            continue
        files.append(rel)
    n_images = sum(f is not None for f in files) if copy_images else 0
    out = frame.drop(columns=["uri"]).assign(path=files)
    out["decided_at"] = out["decided_at"].astype(str).where(out["decided_at"].notna(), None)
    log = decision_log(project.store)
    log["flags"] = [", ".join(f) if isinstance(f, list) else "" for f in log["flags"]]
    log["score"] = [json.dumps(s) for s in log["score"]]
    manifest, decisions = folder / f"dataset.{fmt}", folder / f"decisions.{fmt}"
    _write(out, manifest)
    _write(log, decisions)
    by_source = {str(k): int(v) for k, v in out["source"].value_counts().items()}
    meta: dict[str, Any] = {"project": project.name, "iteration": project.store.current_iteration(), "n_items": len(out),
                            "n_images": n_images, "by_source": by_source, "n_decisions": len(log),
                            "missing_images": missing}
    (folder / "export.json").write_text(json.dumps(meta, indent=2))
    return ExportSummary(folder, manifest, decisions, len(out), n_images, by_source, tuple(missing))


def _safe_name(text: str, fallback: str) -> str:
    """``text`` as a file or folder name that every common file system accepts."""
    name = _UNSAFE.sub("_", text).strip(" .")
    while len(name.encode("utf-8")) > _MAX_NAME_BYTES:
        name = name[:-1]
    if not name:
        return fallback
    return f"_{name}" if name.split(".")[0].upper() in _WINDOWS_RESERVED else name


def _claim(stem: str, suffix: str, taken: set[str], *, folder: str = "") -> str:
    """The first of ``stem``, ``stem-2``, ``stem-3``… (plus ``suffix``) not yet taken in ``folder``; marks it taken."""
    name, n = stem + suffix, 1
    while f"{folder}/{name}".casefold() in taken:
        n += 1
        name = f"{stem}-{n}{suffix}"
    taken.add(f"{folder}/{name}".casefold())
    return name


def _write(frame: pd.DataFrame, path: Path) -> None:
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
