"""Export: every image is its own file, names are safe, and the summary counts what was written."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
from PIL import Image

from adde_core.project import Project
from adde_core.review import export_dataset

# Ids and labels that a naive slug maps onto one file or folder name.
ROWS = [
    ("cat/a b", "cat"), ("cat/a_b", "cat"), ("cat/A_B", "cat"), ("cat/a:b", "cat"),
    ("x1", "a b"), ("x2", "a_b"), ("x3", "A b"),
    ("猫/一", "猫"), ("n1", "cats/dogs"), ("con", "CON"), ("..", "."),
]


def _project(tmp_path: Path) -> tuple[Project, dict[str, bytes]]:
    data = tmp_path / "data"
    data.mkdir()
    rows, blobs = [], {}
    for k, (item_id, label) in enumerate(ROWS):
        path = data / f"img{k}.png"
        Image.new("L", (3, 3), color=10 * k).save(path)
        blobs[item_id] = path.read_bytes()
        rows.append({"id": item_id, "path": path.name, "label": label, "role": "seed"})
    with open(data / "m.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "path", "label", "role"])
        writer.writeheader()
        writer.writerows(rows)
    project = Project.create(tmp_path / "proj")
    report = project.ingest_manifest(data / "m.csv")
    assert report.n_loaded == len(ROWS), report.to_frame()
    return project, blobs


def test_colliding_names_get_their_own_files(tmp_path):
    project, blobs = _project(tmp_path)
    summary = export_dataset(project, tmp_path / "out", fmt="csv")
    manifest = pd.read_csv(summary.manifest, dtype=str, keep_default_na=False).set_index("id")
    paths = manifest["path"]
    assert summary.n_images == summary.n_items == len(ROWS) and summary.missing == ()
    # One file per image, no two names equal even ignoring case, each holding its own item's bytes.
    assert len({p.casefold() for p in paths}) == len(ROWS)
    on_disk = [p for p in (tmp_path / "out" / "images").rglob("*") if p.is_file()]
    assert len(on_disk) == len(ROWS)
    for item_id, rel in paths.items():
        assert (tmp_path / "out" / rel).read_bytes() == blobs[item_id], item_id
        assert (tmp_path / "out" / rel).resolve().is_relative_to((tmp_path / "out" / "images").resolve())
    # Labels that slug alike go to separate folders; letters of any script are kept.
    folders = {label: Path(paths[i]).parent.name for i, label in ROWS}
    assert len({f.casefold() for f in folders.values()}) == len(folders)
    assert folders["猫"] == "猫" and folders["a b"] == "a b" and folders["cats/dogs"] == "cats_dogs"
    assert folders["CON"] == "_CON"  # a reserved device name on Windows
    assert json.loads((tmp_path / "out" / "export.json").read_text())["n_images"] == len(ROWS)
    # The export ingests back with the same ids and labels.
    fresh = Project.create(tmp_path / "fresh")
    report = fresh.ingest_manifest(summary.manifest)
    assert report.n_loaded == len(ROWS), report.to_frame()
    assert fresh.items().set_index("id")["label"].to_dict() == dict(ROWS)


def test_missing_image_is_reported_not_counted(tmp_path):
    project, _ = _project(tmp_path)
    (tmp_path / "data" / "img1.png").unlink()
    summary = export_dataset(project, tmp_path / "out", fmt="parquet")
    assert summary.n_items == len(ROWS) and summary.n_images == len(ROWS) - 1
    assert len(summary.missing) == 1 and summary.missing[0].startswith("cat/a_b: image file")
    manifest = pd.read_parquet(summary.manifest).set_index("id")
    assert pd.isna(manifest.loc["cat/a_b", "path"])
    assert manifest["path"].notna().sum() == len(ROWS) - 1
