"""Hover thumbnails: files written once per item, nothing redone on rerun, and names the browser can compute."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from adde_core.ui import thumbnails as T

TRICKY_IDS = ["am-00001", "cat/img 001", "cat/img_001", "__x__", "", "///", "a:b/c.d-e_f", "é/ü", "猫/1",
              "😀 face", "x" * 120, "_" * 90 + "y", "dir\\file", "a\u0000b", "tab\there"]


def _pairs(root):
    from adde_core.project import Project

    project = Project.open(root)
    try:
        items = project.items()
    finally:
        project.close()
    return list(zip(items["id"], items["path"]))


def test_writes_one_small_png_per_item_and_nothing_on_the_second_call(small_demo_dir, tmp_path, monkeypatch):
    pairs = _pairs(small_demo_dir)
    folder = tmp_path / "thumbs"
    t0 = time.perf_counter()
    assert T.write_thumbnails(pairs, folder, size=16, fingerprint="f1") == len(pairs)
    first = time.perf_counter() - t0
    names = {p.name for p in folder.glob("*.png")}
    assert names == {T.thumb_name(i) for i, _ in pairs}
    for name in list(names)[:50]:
        with Image.open(folder / name) as im:
            assert max(im.size) <= 16 and im.format == "PNG"
    mtimes = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}

    # Same fingerprint: answered from the manifest, without even listing the folder.
    def no_listing(*_a, **_k):
        raise AssertionError("listed the folder although the manifest matched")

    monkeypatch.setattr(T.os, "scandir", no_listing)
    t0 = time.perf_counter()
    assert T.write_thumbnails(pairs, folder, size=16, fingerprint="f1") == 0
    second = time.perf_counter() - t0
    monkeypatch.undo()
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == mtimes
    print(f"{len(pairs)} thumbnails: first call {first:.2f} s, second {second * 1e3:.2f} ms")

    # New fingerprint: only what is missing is made.
    (folder / T.thumb_name(pairs[3][0])).unlink()
    assert T.write_thumbnails(pairs, folder, size=16, fingerprint="f2") == 1
    assert (folder / T.thumb_name(pairs[3][0])).exists()
    # A new size makes them all again.
    assert T.write_thumbnails(pairs[:10], folder, size=8, fingerprint="f2") == 10


def test_keeps_aspect_ratio_and_mode_and_skips_unreadable_images(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(rng.integers(0, 255, (40, 100, 3), dtype=np.uint8)).save(src / "wide.jpg")
    Image.fromarray(rng.integers(0, 255, (90, 30), dtype=np.uint8)).convert("P").save(src / "tall.png")
    Image.fromarray(rng.integers(0, 255, (20, 10, 4), dtype=np.uint8)).save(src / "tiny.png")
    (src / "broken.png").write_bytes(b"not an image")
    pairs = [("wide", src / "wide.jpg"), ("tall", src / "tall.png"), ("tiny", src / "tiny.png"),
             ("broken", src / "broken.png"), ("missing", src / "nope.png"), ("no-image", None)]
    out = tmp_path / "out"
    assert T.write_thumbnails(pairs, out, size=64) == 3
    sizes = {i: Image.open(out / T.thumb_name(i)).size for i in ("wide", "tall", "tiny")}
    assert sizes == {"wide": (64, 26), "tall": (21, 64), "tiny": (10, 20)}  # never enlarged
    assert Image.open(out / T.thumb_name("tiny")).mode == "RGBA"
    assert not (out / T.thumb_name("broken")).exists() and not list(out.glob("*.tmp"))


def test_thumbnail_names_are_unique_safe_and_short():
    names = [T.thumb_name(i) for i in TRICKY_IDS]
    assert len(set(names)) == len(names)  # "cat/img 001" and "cat/img_001" share a slug, not a name
    assert all(re.fullmatch(r"[A-Za-z0-9._-]{1,60}-[0-9a-f]{8}\.png", n) for n in names)
    assert T.thumb_name("am-00001") == "am-00001-2f6abd91.png"  # FNV-1a 32 of b"am-00001"


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the browser-side mirror")
def test_javascript_mirror_names_thumbnails_like_python():
    body = re.search(r"function thumbName\(id\) \{.*?\n  \}\n", T.HOVER_JS, re.DOTALL).group(0)
    script = f"{body}\nprocess.stdout.write(JSON.stringify({json.dumps(TRICKY_IDS)}.map(thumbName)));"
    out = subprocess.run(["node", "-e", script], capture_output=True, text=True, check=True, timeout=30)
    assert json.loads(out.stdout) == [T.thumb_name(i) for i in TRICKY_IDS]


def test_ensure_thumbnails_serves_the_project_folder_and_prunes_orphans(small_demo_dir, tmp_path):
    from adde_core.project import Project

    static = tmp_path / "static"
    orphan = static / T.THUMBS / "gone-0000000000"
    orphan.mkdir(parents=True)
    (orphan / "project_root.txt").write_text(str(tmp_path / "deleted-project"))  # as older versions wrote it
    project = Project.open(small_demo_dir)
    try:
        prefix = T.ensure_thumbnails(project, size=32, static_dir=static)
        name = T.project_thumb_dir(str(project.root))
        assert prefix == f"/app/static/thumbs/{name}/"
        folder = static / T.THUMBS / name
        assert len(list(folder.glob("*.png"))) == len(project.items()) and not orphan.exists()
        t0 = time.perf_counter()
        assert T.ensure_thumbnails(project, size=32, static_dir=static) == prefix
        print(f"cached ensure_thumbnails: {(time.perf_counter() - t0) * 1e3:.2f} ms")
        owner = tmp_path / T.STATE / f"{name}.owner"
        assert owner.read_text() == str(project.root)  # the owner is kept, outside static/: not an orphan
    finally:
        project.close()
        T._ensure.clear()


def test_the_static_folder_holds_thumbnails_only(small_demo_dir, tmp_path):
    # Streamlit serves everything under static/ to anyone who reaches the app: no project path,
    # no bookkeeping, and files an older version left there are moved out.
    from adde_core.project import Project

    static = tmp_path / "static"
    legacy = static / T.THUMBS / T.project_thumb_dir(str(Path(small_demo_dir).resolve()))
    legacy.mkdir(parents=True)
    (legacy / "project_root.txt").write_text(str(small_demo_dir))
    (legacy / "manifest.json").write_text("{}")
    project = Project.open(small_demo_dir)
    try:
        prefix = T.ensure_thumbnails(project, size=16, static_dir=static)
        served = [p for p in static.rglob("*") if p.is_file()]
        assert served and all(p.suffix == ".png" and p.parent.parent == static / T.THUMBS for p in served)
        assert len(served) == len(project.items())
        assert not any(str(project.root) in p.read_bytes().decode("latin-1") for p in served[:20])
        assert prefix.endswith(f"/{legacy.name}/")
        private = [p.name for p in (tmp_path / T.STATE).iterdir()]
        assert sorted(private) == [f"{legacy.name}.json", f"{legacy.name}.owner"]
    finally:
        project.close()
        T._ensure.clear()


def test_thumbnails_are_upright_and_16_bit_images_keep_their_greys(tmp_path):
    # As load_rgb (what the embedder and the review cards see): EXIF orientation applied,
    # 16-bit greyscale rescaled to 8 bits rather than clipped to white.
    from adde_core.embedding.images import load_rgb

    src = tmp_path / "src"
    src.mkdir()
    ramp = (np.arange(40 * 20, dtype=np.uint32).reshape(40, 20) * 80).astype(np.uint16)  # 0 .. 63,920
    Image.fromarray(ramp).save(src / "deep.png")
    with Image.open(src / "deep.png") as im:
        assert im.mode.startswith("I")  # really stored as 16-bit
    wide = np.zeros((30, 60, 3), dtype=np.uint8)
    wide[:, :30] = (255, 0, 0)  # red left half
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    Image.fromarray(wide).save(src / "rotated.jpg", exif=exif, quality=95)
    out = tmp_path / "out"
    assert T.write_thumbnails([("deep", src / "deep.png"), ("rotated", src / "rotated.jpg")], out, size=64) == 2

    deep = np.asarray(Image.open(out / T.thumb_name("deep")).convert("L"), dtype=float)
    reference = np.asarray(load_rgb(src / "deep.png").convert("L"), dtype=float)
    assert deep.shape == reference.shape == (40, 20)
    assert np.abs(deep - reference).max() <= 1 and deep.min() == 0 and 240 <= deep.max() < 255
    assert len(np.unique(deep)) > 100  # a ramp, not a white (or two-tone) square

    rotated = Image.open(out / T.thumb_name("rotated")).convert("RGB")
    assert rotated.size == load_rgb(src / "rotated.jpg").size == (30, 60)  # portrait, as displayed
    top, bottom = np.asarray(rotated)[:20].mean(axis=(0, 1)), np.asarray(rotated)[-20:].mean(axis=(0, 1))
    assert top[0] > 200 > bottom[0]  # the red half, on top after the 90° turn


def test_map_points_carry_id_then_label_in_customdata():
    from adde_core.ui.figures import latent_map_figure

    frame = pd.DataFrame({"id": ["a", "b", "c"], "x": [0.0, 1, 2], "y": [0.0, 1, 0], "cluster": ["C0", "C1", "C0"],
                          "label": ["cat", "dog", "(unlabelled)"], "role": ["seed", "pool", "pool"]})
    for color in ("cluster", "label", "role"):
        fig = latent_map_figure(frame, color_by=color)
        got = {tuple(row[:2]) for trace in fig.data for row in trace.customdata}
        assert got == {("a", "cat"), ("b", "dog"), ("c", "(unlabelled)")}, color
