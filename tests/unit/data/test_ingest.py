"""Ingest: real images load, every kind of bad input is reported by file/row with a reason, the rest loads."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from adde_core.data.demo import load_animal_mnist
from adde_core.errors import IngestError
from adde_core.project import Project


def _write_good(folder: Path, n: int, *, classes=("cat", "dog")) -> list[tuple[str, str]]:
    """Write n real Animal-MNIST images into class sub-folders; return (relative path, label)."""
    images, labels, names = load_animal_mnist()
    out = []
    for k in range(n):
        label = classes[k % len(classes)]
        idx = np.flatnonzero(labels == names.index(label))[k]
        (folder / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[idx]).save(folder / label / f"{label}_{k:03d}.png")
        out.append((f"{label}/{label}_{k:03d}.png", label))
    return out


def _write_broken(folder: Path) -> dict[str, str]:
    """Ten broken files, two of each kind; returns relative path → expected reason fragment."""
    (folder / "cat").mkdir(parents=True, exist_ok=True)
    good = (folder / "cat" / "cat_000.png").read_bytes()
    broken = {}
    for k in range(2):
        p = f"cat/corrupt_{k}.png"
        (folder / p).write_bytes(good[: len(good) // 2])  # truncated PNG
        broken[p] = "corrupt image"
        p = f"cat/empty_{k}.png"
        (folder / p).write_bytes(b"")
        broken[p] = "zero-byte"
        p = f"cat/text_{k}.png"
        (folder / p).write_text("this is a text file, renamed .png\n")
        broken[p] = "not an image"
        p = f"cat/notes_{k}.txt"
        (folder / p).write_text("a caption")
        broken[p] = "unsupported extension '.txt'"
    (folder.parent / "outside.png").write_bytes(good)
    broken["../outside.png"] = "escapes the data root"
    broken[str((folder.parent / "outside.png").resolve())] = "escapes the data root"
    return broken


def _manifest(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=sorted({k for r in rows for k in r}))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_manifest_with_100_good_and_10_broken_files(tmp_path):
    data = tmp_path / "data"
    good = _write_good(data, 100)
    broken = _write_broken(data)
    rows = [{"path": p, "label": lab, "role": "seed", "pose": "upright"} for p, lab in good]
    rows += [{"path": p, "label": "cat", "role": "seed"} for p in broken]
    manifest = _manifest(data / "manifest.csv", rows)

    project = Project.create(tmp_path / "proj")
    report = project.ingest_manifest(manifest)

    assert report.n_loaded == 100
    assert report.loaded_by_role == {"seed": 100}
    assert report.n_rejected == 10
    # Animal-MNIST itself holds byte-identical images; those load, with a warning naming the first copy.
    assert all(i.reason.startswith("same image bytes as") for i in report.issues if i.severity == "warning")
    frame = report.to_frame()
    for rel, reason in broken.items():
        row = rows.index(next(r for r in rows if r["path"] == rel)) + 1
        hit = frame[frame["row"] == row]
        assert len(hit) == 1, rel
        assert reason in hit["reason"].iloc[0], (rel, hit["reason"].iloc[0])
        assert str(manifest) in hit["file"].iloc[0]
    # Image-level problems name the image file itself, not only the manifest.
    assert frame["file"].str.contains("empty_0.png").any()
    # The good items are all in the store, with their attributes and a content hash.
    items = project.items()
    assert len(items) == 100 and items["content_hash"].notna().all() and (items["pose"] == "upright").all()
    # The report survives a restart: it is stored with the ingest run.
    project.close()
    again = Project.open(tmp_path / "proj").last_ingest_report()
    assert again.n_loaded == 100 and again.to_frame().equals(frame)


def test_image_folder_labels_from_subfolders(tmp_path):
    data = tmp_path / "data"
    _write_good(data, 20)
    _write_broken(data)
    (data / "loose.png").write_bytes((data / "cat" / "cat_000.png").read_bytes())
    (data / ".DS_Store").write_bytes(b"\0")
    project = Project.create(tmp_path / "proj")
    report = project.ingest_folder(data, role="val")
    # Val labels absent from the (empty) seed are rejected, each with its reason...
    assert report.n_loaded == 0
    assert sum("does not occur in the seed set" in i.reason for i in report.issues) == 20
    # ...so ingest a seed first.
    project2 = Project.create(tmp_path / "proj2")
    seed = project2.ingest_folder(data, role="seed")
    assert seed.n_loaded == 20
    reasons = seed.to_frame().set_index("file")["reason"]
    assert reasons[str(data / "loose.png")].startswith("not inside a class sub-folder")
    assert "zero-byte" in reasons[str(data / "cat" / "empty_0.png")]
    assert len(reasons) == 1 + 8  # loose file + 8 broken files (the two outside-root rows are manifest-only)
    labels = project2.items().set_index("id")["label"]
    assert labels["cat/cat_000"] == "cat" and labels["dog/dog_001"] == "dog"


def test_row_level_problems_are_reported_and_the_rest_loads(tmp_path):
    data = tmp_path / "data"
    good = _write_good(data, 6, classes=("cat", "dog", "cow"))
    rows = [
        {"id": "s1", "path": good[0][0], "label": "cat", "role": "seed"},
        {"id": "s2", "path": good[1][0], "label": "dog", "role": "seed"},
        {"id": "s1", "path": good[2][0], "label": "cow", "role": "seed"},  # duplicate id
        {"id": "v1", "path": good[3][0], "label": "cat", "role": "val"},
        {"id": "v2", "path": good[4][0], "label": "giraffe", "role": "val"},  # label absent from seed
        {"id": "x1", "path": good[5][0], "label": "cow", "role": "trian"},  # unknown role
        {"id": "m1", "path": "cat/missing.png", "label": "cat", "role": "seed"},  # missing file
        {"id": "p1", "path": good[5][0], "label": "", "role": "pool"},
        {"id": "n1", "path": good[5][0], "label": "", "role": "seed"},  # seed without label
    ]
    project = Project.create(tmp_path / "proj")
    report = project.ingest_manifest(_manifest(data / "m.csv", rows))
    issues = report.to_frame().set_index("row")
    assert report.n_loaded == 4 and report.loaded_by_role == {"seed": 2, "val": 1, "pool": 1}
    assert "duplicate id 's1'" in issues.loc[3, "reason"] and "row 1" in issues.loc[3, "reason"]
    assert "'giraffe'" in issues.loc[5, "reason"] and "seed" in issues.loc[5, "reason"]
    assert "unknown role 'trian'" in issues.loc[6, "reason"] and issues.loc[6, "field"] == "role"
    assert issues.loc[7, "reason"] == "file not found"
    assert "no label" in issues.loc[9, "reason"]
    # A second ingest of the same ids is reported, not silently merged.
    again = project.ingest_manifest(_manifest(data / "m2.csv", rows[:1]))
    assert again.n_loaded == 0 and "already in the project" in again.issues[0].reason


def test_pool_labels_are_hidden_as_oracle_labels(tmp_path):
    data = tmp_path / "data"
    good = _write_good(data, 2)
    rows = [{"id": "s", "path": good[0][0], "label": "cat", "role": "seed"},
            {"id": "p", "path": good[1][0], "label": "dog", "role": "pool"}]
    project = Project.create(tmp_path / "proj")
    project.ingest_manifest(_manifest(data / "m.csv", rows))
    hidden = project.store.items_frame(include_hidden=True).set_index("id")
    assert pd.isna(hidden.loc["p", "label"]) and hidden.loc["p", "oracle_label"] == "dog"
    assert hidden.loc["p", "source"] == "pool"


def _embedding_rows(n: int) -> list[dict]:
    return [{"id": f"e{i}", "label": "ab"[i % 2], "role": "seed"} for i in range(n)]


def test_npy_embeddings_without_images(tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(8, 16))
    vectors[3, 2] = np.nan
    vectors[5, 0] = np.inf
    np.save(tmp_path / "emb.npy", vectors)
    manifest = _manifest(tmp_path / "m.csv", _embedding_rows(8))
    project = Project.create(tmp_path / "proj")
    report = project.ingest_manifest(manifest, embeddings=tmp_path / "emb.npy")
    assert report.n_loaded == 6
    bad = report.to_frame()
    assert sorted(bad["row"]) == [4, 6] and bad["reason"].str.contains("NaN or inf").all()
    stored = project.embeddings("precomputed:emb")
    assert list(stored.ids) == ["e0", "e1", "e2", "e4", "e6", "e7"]
    assert np.allclose(stored.vectors, vectors[[0, 1, 2, 4, 6, 7]].astype(np.float32))
    summary = project.embed("precomputed")
    assert (summary.model_key, summary.n, summary.dim, summary.n_computed) == ("precomputed:emb", 6, 16, 0)


def test_embedding_file_level_problems(tmp_path):
    manifest = _manifest(tmp_path / "m.csv", _embedding_rows(4))
    project = Project.create(tmp_path / "proj")
    np.save(tmp_path / "short.npy", np.zeros((3, 4)))
    report = project.ingest_manifest(manifest, embeddings=tmp_path / "short.npy")
    assert "row count mismatch: 3 embedding rows for 4 manifest rows" in report.issues[0].reason
    assert report.n_loaded == 0  # no images and no usable vectors: nothing to load
    np.save(tmp_path / "flat.npy", np.zeros(4))
    report = project.ingest_manifest(manifest, embeddings=tmp_path / "flat.npy")
    assert "wrong dimensions" in report.issues[0].reason and "(4,)" in report.issues[0].reason
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}] * 4, dtype=object), allow_pickle=True)
    report = project.ingest_manifest(manifest, embeddings=tmp_path / "obj.npy")
    assert "cannot be read" in report.issues[0].reason  # object arrays are never unpickled


def test_parquet_embeddings_matched_by_id_and_dimension_check(tmp_path):
    rng = np.random.default_rng(1)
    manifest = _manifest(tmp_path / "m.csv", _embedding_rows(4))
    table = pd.DataFrame({"id": ["e3", "e2", "e1", "e0", "zz"], "embedding": list(rng.normal(size=(5, 6)))})
    table.to_parquet(tmp_path / "vec.parquet")
    project = Project.create(tmp_path / "proj")
    report = project.ingest_manifest(manifest, embeddings=tmp_path / "vec.parquet")
    assert report.n_loaded == 4
    assert [i.severity for i in report.issues] == ["warning"] and "'zz' is not in the manifest" in report.issues[0].reason
    stored = project.embeddings("precomputed:vec")
    by_id = dict(zip(stored.ids, stored.vectors))
    assert np.allclose(by_id["e0"], table["embedding"][3])
    # More vectors for the same set but with another width are refused as a whole.
    more = _manifest(tmp_path / "m2.csv", [{"id": "f0", "label": "a", "role": "seed"}])
    pd.DataFrame({"id": ["f0"], "embedding": [np.zeros(9)]}).to_parquet(tmp_path / "vec2.parquet")
    report = project.ingest_manifest(more, embeddings=tmp_path / "vec2.parquet", embedding_name="vec")
    assert "wrong dimensions: these embeddings have 9 features" in report.issues[-1].reason
    assert report.n_loaded == 0


def test_unreadable_manifest_is_one_clear_error(tmp_path):
    project = Project.create(tmp_path / "proj")
    with pytest.raises(IngestError, match="manifest not found"):
        project.ingest_manifest(tmp_path / "nope.csv")
    (tmp_path / "bad.csv").write_text("label,role\ncat,seed\n")
    with pytest.raises(IngestError, match=r"no 'path' column \(columns are: label, role\)"):
        project.ingest_manifest(tmp_path / "bad.csv")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(IngestError, match="junk.parquet: cannot be read as a table"):
        project.ingest_manifest(tmp_path / "junk.parquet")


def test_byte_identical_images_are_warned_and_leakage_named(tmp_path):
    data = tmp_path / "data"
    good = _write_good(data, 3)
    rows = [{"id": "s0", "path": good[0][0], "label": "cat", "role": "seed"},
            {"id": "s1", "path": good[1][0], "label": "dog", "role": "seed"},
            {"id": "p0", "path": good[1][0], "label": "", "role": "pool"},  # same file as s1: plain duplicate
            {"id": "v0", "path": good[0][0], "label": "cat", "role": "val"}]  # same file as seed s0: leakage
    project = Project.create(tmp_path / "proj")
    report = project.ingest_manifest(_manifest(data / "m.csv", rows))
    assert report.n_loaded == 4 and report.n_rejected == 0  # duplicates still load
    warnings = report.to_frame().set_index("row")
    assert list(warnings["severity"]) == ["warning", "warning"]
    assert warnings.loc[3, "reason"] == "same image bytes as item 's1' (seed)"
    assert warnings.loc[4, "reason"].startswith("same image bytes as item 's0' (seed): the same image in a training")
    # Against items already in the project too.
    more = project.ingest_manifest(_manifest(data / "m2.csv", [{"id": "o0", "path": good[0][0], "label": "cat",
                                                                "role": "ood"}]))
    assert "item 's0' (seed)" in more.issues[0].reason and "leaks" in more.issues[0].reason
