"""Several processes on one database (SQLite and PostgreSQL): a fresh schema created once, dead runs shown as
interrupted, and teammates in different folders seeing the same items, embeddings, candidates and maps."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from adde_core.project import Project
from adde_core.store.models import SCHEMA_VERSION
from tests.backends import make_synthetic_project

REPO = Path(__file__).resolve().parents[3]


def _python(code: str, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("round_", range(2))
def test_processes_first_opening_a_fresh_database_at_once(tmp_path, database_url, round_):
    url = database_url or f"sqlite:///{tmp_path / 'fresh.db'}"
    start = time.time() + 4.0  # every process has imported ADDE by then
    code = """
        import sys, time
        from pathlib import Path
        from adde_core.store import Store
        url, start, root = sys.argv[1], float(sys.argv[2]), Path(sys.argv[3])
        while time.time() < start:
            time.sleep(0.0005)
        Store(url, array_root=root).close()
        print("ok")
    """
    procs = [_python(code, url, str(start), str(tmp_path)) for _ in range(4)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err[-2000:] for _, err in results]
    from adde_core.store import Store
    from adde_core.store.iterations import iteration_rows

    store = Store(url, array_root=tmp_path)
    assert [r["index"] for r in iteration_rows(store)] == [0]
    assert store.get_meta("schema_version") == SCHEMA_VERSION
    store.close()


def test_a_run_left_running_by_a_killed_process_is_shown_as_interrupted(tmp_path, database_url, capsys):
    from adde_core.cli import main

    Project.create(tmp_path / "p", database_url=database_url).close()
    killed = _python("""
        import os, signal, sys
        from adde_core.project import Project
        p = Project.open(sys.argv[1])
        p.store.start_run("ingest", {"source": "big.csv"})
        os.kill(os.getpid(), signal.SIGKILL)
    """, str(tmp_path / "p"))
    killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL
    project = Project.open(tmp_path / "p")
    live = project.store.start_run("embed", {})  # this process is alive: its run stays running
    assert [r["kind"] for r in project.interrupted_runs()] == ["ingest"]
    assert project.store.last_run("embed")["status"] == "running"
    project.close()
    assert main(["info", "--project", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out
    assert "interrupted: ingest run" in out and "stopped before this ingest finished" in out
    again = Project.open(tmp_path / "p")
    assert again.store.last_run("embed")["status"] == "running" and live
    again.close()


def _team_source(folder: Path) -> tuple[Path, Path]:
    """A manifest of 30 tiny images under ``folder/imgs`` with precomputed vectors."""
    (folder / "imgs").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows, vectors = [], []
    for k, label in enumerate(("ant", "bee", "cow")):
        for i in range(10):
            Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(folder / "imgs" / f"{label}{i}.png")
            role = "seed" if i < 3 else "val" if i < 5 else "pool"
            rows.append({"id": f"{label}{i}", "path": f"imgs/{label}{i}.png", "role": role,
                         "label": "" if role == "pool" else label, "oracle_label": label if role == "pool" else ""})
            vectors.append(rng.normal(k * 3, 1, 6))
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    np.save(folder / "vectors.npy", np.asarray(vectors, np.float32))
    return folder / "manifest.csv", folder / "vectors.npy"


def test_teammates_share_items_embeddings_candidates_and_maps(tmp_path, database_url):
    url = database_url or f"sqlite:///{tmp_path / 'team.db'}"  # SQLite works as a shared file too
    shared = tmp_path / "shared"
    manifest, vectors = _team_source(shared)
    alice = Project.create(tmp_path / "alice", database_url=url, data_root=shared)
    report = alice.ingest_manifest(manifest, data_root=shared, embeddings=vectors)
    assert report.n_loaded == 30
    assert alice.store.items_frame().set_index("id").loc["ant0", "uri"] == "imgs/ant0.png"  # relative to the root
    got = alice.acquire(list(alice.items(roles=["pool"])["id"][:4]), mode="retrieve", k=5)

    # Bob's folder is elsewhere; the shared data is mounted at another path on his machine.
    mount = tmp_path / "mnt" / "team-data"
    shutil.copytree(shared, mount)
    bob = Project.create(tmp_path / "bob", database_url=url, data_root=mount)
    key = bob.default_model_key()
    assert bob.embeddings(key).fingerprint == alice.embeddings(key).fingerprint
    np.testing.assert_array_equal(bob.embeddings(key).vectors, alice.embeddings(key).vectors)
    assert list(bob.candidates(got.set_id)["item_id"]) == list(got.candidates["id"])
    paths = bob.items().set_index("id")["path"]
    assert paths["ant0"] == str(mount / "imgs" / "ant0.png") and Path(paths["ant0"]).exists()
    # Carol sets no data root: she gets the one the database recorded (Alice's).
    carol = Project.create(tmp_path / "carol", database_url=url)
    assert Path(carol.items().set_index("id")["path"]["ant0"]).resolve() == (shared / "imgs" / "ant0.png").resolve()

    # A map Alice computed reaches Bob's folder, and a newer one replaces his copy.
    alice_map = alice.map_path(key)
    alice_map.parent.mkdir(parents=True, exist_ok=True)
    alice_map.write_bytes(b"map v1")
    alice.store.share_file(f"maps/{key}", alice_map)
    assert bob.map_path(key).read_bytes() == b"map v1"
    alice_map.write_bytes(b"map v2, longer")
    alice.store.share_file(f"maps/{key}", alice_map)
    assert bob.map_path(key).read_bytes() == b"map v2, longer"
    for p in (alice, bob, carol):
        p.close()


def test_analysis_map_reaches_a_teammate(tmp_path, database_url):
    """The real path: Alice's Explore analysis stores its map; Bob's folder gets the same coordinates."""
    if database_url is None:
        pytest.skip("one real UMAP run is enough: the PostgreSQL variant covers it (the plumbing is tested above)")
    alice = make_synthetic_project(tmp_path / "alice", database_url=database_url, n_per=20)
    result = alice.analyze()
    bob = Project.create(tmp_path / "bob", database_url=database_url)
    coords = bob.map_coordinates()
    assert coords is not None
    mine = alice.map_coordinates().set_index("id").loc[coords["id"]]
    np.testing.assert_array_equal(coords[["x", "y"]].to_numpy(), mine[["x", "y"]].to_numpy())
    assert len(coords) == len(result.map.ids)
    alice.close()
    bob.close()
