"""kill -9 at every phase boundary of next_iteration, ingest and embed (SQLite and PostgreSQL).

A subprocess runs the operation with a fault hook armed (``ADDE_FAULT_AT`` from
:mod:`adde_core.faults`, or the embedding cache's ``ADDE_FAULT_AFTER_BATCHES``) and is SIGKILLed
there. Afterwards the project opens consistent, the dead run is shown as interrupted, and running
the same operation again finishes the SAME iteration / ingest / embed (embed recomputing only what
was not cached).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adde_core.faults import FAULT_ENV, POINTS
from adde_core.project import Project
from adde_core.review import DecisionRequest, record_decision
from adde_core.store.iterations import iteration_phase
from tests.backends import make_synthetic_project

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(900)


def _killed_at(env: dict[str, str], code: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a subprocess with a fault armed; it must die by SIGKILL."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1", **env})
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stdout[-2000:], done.stderr[-3000:])
    return done


def _dataset(project) -> dict[str, str]:
    items = project.items()
    dt = items[(items["role"] == "seed") & items["label"].notna()]
    return dict(zip(dt["id"], dt["label"]))


@pytest.mark.parametrize("point", ["close:baseline", "close:folded", "close:measured", "close:adapted"])
def test_next_iteration_killed_at_each_phase_is_finished_by_the_retry(tmp_path, database_url, point):
    assert point in POINTS
    if database_url and point in ("close:baseline", "close:adapted"):
        pytest.skip("the boundaries next to the fold-in and the metrics cover PostgreSQL; these two are SQLite-only "
                    "to keep the suite short (nothing backend-specific happens at them)")
    project = make_synthetic_project(tmp_path / "p", database_url=database_url, n_per=15, n_seed=3, n_val=4)
    a, b, c = list(project.items(roles=["pool"])["id"][:3])
    record_decision(project.store, DecisionRequest(a, "accept", "ann", label="ant", expected_seq=0))
    record_decision(project.store, DecisionRequest(b, "relabel", "ann", label="bee", expected_seq=0))
    record_decision(project.store, DecisionRequest(c, "reject", "ann", expected_seq=0))
    before = _dataset(project)
    project.close()

    _killed_at({FAULT_ENV: point}, """
        import sys
        from adde_core.project import Project
        Project.open(sys.argv[1]).next_iteration(reviewer="ann")
        print("not killed")
    """, str(tmp_path / "p"))

    project = Project.open(tmp_path / "p")
    folded = point != "close:baseline"
    assert project.current_iteration == (1 if folded else 0)
    assert _dataset(project) == ({**before, a: "ant", b: "bee"} if folded else before), "all of D_valid or none"
    if point == "close:adapted":  # the close was complete: nothing to finish, the next close opens iteration 2
        assert iteration_phase(project.store, 1) == "adapted"
    else:
        summary = project.next_iteration(reviewer="ann")
        assert summary.index == 1 == project.current_iteration, "the retry finished the same iteration"
        assert summary.added == {"pool": 2}
    assert iteration_phase(project.store, 1) == "adapted"
    history = project.metrics_history().set_index("iteration")
    assert list(history.index) == [0, 1], "no gap, no extra iteration"
    for key in ("val_accuracy", "val_gain", "alpha", "vendi_q1"):
        assert np.isfinite(history.loc[1, key]), key
    assert history.loc[1, "n_dataset"] == history.loc[0, "n_dataset"] + 2
    assert _dataset(project) == {**before, a: "ant", b: "bee"}
    project.close()


_INGEST = """
    import sys
    from adde_core.project import Project
    p = Project.open(sys.argv[1])
    report = p.ingest_manifest(sys.argv[2], embeddings=sys.argv[3])
    print("loaded", report.n_loaded, "rejected", report.n_rejected)
"""


@pytest.mark.parametrize("point", ["ingest:items", "ingest:written"])
def test_ingest_killed_between_items_and_vectors_leaves_both_or_neither(tmp_path, database_url, point):
    project = make_synthetic_project(tmp_path / "p", database_url=database_url, n_per=6, n_seed=2, n_val=2)
    src = tmp_path / "p-source"  # the builder's manifest and vectors: ingest them again under new ids
    import pandas as pd

    rows = pd.read_csv(src / "manifest.csv", keep_default_na=False)
    rows["id"] = "new-" + rows["id"]
    rows.to_csv(tmp_path / "more.csv", index=False)
    more = tmp_path / "more" / "vectors.npy"  # same stem: the same precomputed embedding set, extended
    more.parent.mkdir()
    np.save(more, np.load(src / "vectors.npy") + 0.5)
    n_before = len(project.items())
    project.close()

    _killed_at({FAULT_ENV: point}, _INGEST, str(tmp_path / "p"), str(tmp_path / "more.csv"), str(more))

    project = Project.open(tmp_path / "p")
    key = project.default_model_key()
    stored = project.embeddings(key)
    ids = set(project.items()["id"])
    assert ids == set(map(str, stored.ids)), "every item has its vector and every vector its item"
    assert len(ids) == n_before + (0 if point == "ingest:items" else len(rows))
    assert [r["kind"] for r in project.interrupted_runs()] == ["ingest"]
    report = project.ingest_manifest(tmp_path / "more.csv", embeddings=more)
    if point == "ingest:items":  # nothing was committed: the retry loads everything
        assert report.n_loaded == len(rows) and report.n_rejected == 0, report.to_frame()
    else:  # everything was committed: the retry finds each row already there and changes nothing
        assert report.n_loaded == 0
    stored = project.embeddings(key)
    assert set(project.items()["id"]) == set(map(str, stored.ids)) and len(stored.ids) == n_before + len(rows)
    vectors = dict(zip(map(str, stored.ids), stored.vectors))
    np.testing.assert_allclose(vectors["new-ant-000"], np.load(more)[0], rtol=1e-6)
    project.close()


def test_embed_killed_after_two_batches_resumes_from_its_cache(tmp_path, database_url):
    from adde_core.embedding.cache import FAULT_AFTER_BATCHES_ENV

    folder = tmp_path / "images"
    with np.load(REPO / "assets" / "animal_mnist" / "animal_mnist.npz", allow_pickle=False) as data:
        images, labels = data["images"][:40], data["labels"][:40]
    for k, (array, label) in enumerate(zip(images, labels)):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(folder / str(label) / f"a{k:02d}.png")
    project = Project.create(tmp_path / "p", database_url=database_url)
    assert project.ingest_folder(folder).n_loaded == 40
    project.close()

    _killed_at({FAULT_AFTER_BATCHES_ENV: "2"}, """
        import sys
        from adde_core.project import Project
        Project.open(sys.argv[1]).embed("efficientnet-lite0", params={"image_size": 32, "device": "cpu"},
                                        batch_size=8)
        print("not killed")
    """, str(tmp_path / "p"))

    project = Project.open(tmp_path / "p")
    assert project.embedding_sets().empty, "nothing half-saved"
    assert [r["kind"] for r in project.interrupted_runs()] == ["embed"]
    summary = project.embed("efficientnet-lite0", params={"image_size": 32, "device": "cpu"}, batch_size=8)
    assert (summary.n_cached, summary.n_computed, summary.n) == (16, 24, 40), summary
    assert project.store.last_run("embed")["status"] == "ok"
    again = project.embed("efficientnet-lite0", params={"image_size": 32, "device": "cpu"}, batch_size=8)
    assert again.n_computed == 0
    project.close()
