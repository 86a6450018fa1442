"""Store on SQLite and PostgreSQL: round trip, reopen, transactional failure, arrays in the database, long text."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sqlalchemy.exc import IntegrityError

from adde_core.errors import AddeError
from adde_core.project import Project
from adde_core.store import ItemRecord
from adde_core.store.database import StoreConflict, StoredEmbeddings
from adde_core.store.models import Item

RECORDS = [
    ItemRecord(id="a", role="seed", uri="data/a.png", label="cat", attributes={"pose": "upright", "size": 0.3},
               content_hash="h1"),
    ItemRecord(id="b", role="pool", uri="/abs/b.png", oracle_label="dog", source="pool", content_hash="h2"),
    ItemRecord(id="c", role="val", label="dog", attributes={"pose": "horizontal"}, iteration_added=0),
]


@pytest.fixture
def project(tmp_path, database_url):
    p = Project.create(tmp_path / "p", database_url=database_url)
    yield p
    p.close()


def test_items_round_trip_and_hidden_oracle(project):
    assert project.store.add_items(RECORDS) == 3
    frame = project.store.items_frame(include_hidden=True).set_index("id")
    assert frame.loc["a", "label"] == "cat" and frame.loc["a", "pose"] == "upright" and frame.loc["a", "size"] == 0.3
    assert frame.loc["b", "oracle_label"] == "dog" and frame.loc["b", "source"] == "pool"
    assert pd.isna(frame.loc["c", "uri"])
    # The default view never exposes the oracle label.
    assert "oracle_label" not in project.store.items_frame().columns
    counts = {(r.role, r.source): r.n for r in project.counts().itertuples()}
    assert counts == {("seed", "real"): 1, ("pool", "pool"): 1, ("val", "real"): 1}


def test_reopen_restores_everything(tmp_path, database_url):
    project = Project.create(tmp_path / "p", name="mine", database_url=database_url)
    project.store.add_items(RECORDS)
    project.store.set_meta("subgroup_attribute", "pose")
    vectors = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    project.store.save_embeddings("m@1", ["a", "b", "c"], vectors, "f" * 40)
    run = project.store.start_run("ingest", {"x": 1})
    project.store.finish_run(run, summary={"source": "s", "n_loaded": 3})
    before = project.store.items_frame(include_hidden=True)
    project.close()

    again = Project.open(tmp_path / "p")
    assert again.name == "mine"
    assert again.store.items_frame(include_hidden=True).equals(before)
    assert again.subgroup_attribute == "pose"
    assert again.current_iteration == 0
    stored = again.embeddings("m@1")
    assert list(stored.ids) == ["a", "b", "c"] and np.array_equal(stored.vectors, vectors)
    assert again.store.last_run("ingest")["summary"]["n_loaded"] == 3
    again.close()


def test_failed_batch_writes_nothing(project):
    project.store.add_items(RECORDS[:1])
    batch = [ItemRecord(id="new1", role="seed", label="x"), RECORDS[0], ItemRecord(id="new2", role="seed", label="y")]
    with pytest.raises(IntegrityError):
        project.store.add_items(batch)  # "a" already exists
    assert project.store.item_ids() == {"a"}


def test_exception_inside_transaction_rolls_back(project):
    with pytest.raises(RuntimeError):
        with project.store.transaction() as s:
            s.add(Item(id="z", role="seed", label="x"))
            s.flush()
            raise RuntimeError("crash mid-write")
    assert project.store.item_ids() == set()


def test_check_constraint_rejects_unknown_role(project):
    with pytest.raises(IntegrityError):
        with project.store.transaction() as s:
            s.add(Item(id="z", role="train", label="x"))
    with pytest.raises(ValueError, match="unknown role 'train'"):
        ItemRecord(id="z", role="train")


def test_embedding_sets_live_in_the_database_and_replace_atomically(project, tmp_path):
    store = project.store
    store.save_embeddings("m", ["a"], np.ones((1, 2)), "1" * 40)
    store.save_embeddings("m", ["a", "b"], np.zeros((2, 2)), "2" * 40)
    assert store.load_embeddings("m").fingerprint == "2" * 40
    assert list(store.load_embeddings("m").ids) == ["a", "b"]
    assert not list(tmp_path.rglob("*.npz")), "no array files next to the database any more"
    # An array that does not match its row (e.g. changed by hand) is treated as missing, not trusted.
    with store.transaction() as s:
        from sqlalchemy import update

        from adde_core.store.models import EmbeddingSet

        s.execute(update(EmbeddingSet).values(fingerprint="3" * 40))
    assert store.load_embeddings("m") is None
    with pytest.raises(ValueError, match="2 ids but array of shape"):
        store.save_embeddings("m", ["a", "b"], np.ones((3, 2)), "4" * 40)


def test_items_and_their_vectors_commit_together(project):
    store = project.store
    bad = StoredEmbeddings("precomputed:x", np.array(["a", "b"]), np.ones((3, 2), np.float32), "5" * 40)
    with pytest.raises(ValueError, match="2 ids but array of shape"):
        store.add_items(RECORDS[:2], embeddings=bad)  # the vectors fail: the items are not written either
    assert store.item_ids() == set() and store.load_embeddings("precomputed:x") is None
    good = StoredEmbeddings("precomputed:x", np.array(["a", "b"]), np.ones((2, 2), np.float32), "6" * 40)
    store.add_items(RECORDS[:2], embeddings=good, replaces=None)
    assert store.item_ids() == {"a", "b"} and store.load_embeddings("precomputed:x").fingerprint == "6" * 40
    # Built on a set another writer has since replaced: refused, nothing written.
    stale = StoredEmbeddings("precomputed:x", np.array(["a", "b", "c"]), np.ones((3, 2), np.float32), "7" * 40)
    with pytest.raises(StoreConflict, match="changed by another writer"):
        store.add_items(RECORDS[2:], embeddings=stale, replaces="0" * 40)
    assert store.item_ids() == {"a", "b"}


def test_long_and_unusual_text_and_the_candidate_role(project):
    """Data-derived strings are unbounded text (PostgreSQL used to refuse 'candidate' in VARCHAR(8))."""
    from adde_core.store.candidates import save_candidate_set, save_provenance
    from adde_core.store.decisions import DecisionRequest, decision_states, record_decision

    long_id, long_label, reviewer = "i" * 5000, "ç" * 3000 + " 🦓", "r" * 2000
    project.store.add_items([ItemRecord(id=long_id, role="seed", label=long_label),
                             ItemRecord(id="gen-1", role="candidate", source="synthetic")])
    model_key = "openclip:" + "k" * 600
    project.store.save_embeddings(model_key, [long_id, "gen-1"], np.ones((2, 3)), "8" * 40)
    assert project.store.load_embeddings(model_key).ids[0] == long_id
    save_provenance(project.store, [{"item_id": "gen-1", "generator": "g" * 500, "intended_label": long_label}])
    ranked = pd.DataFrame({"id": ["gen-1"], "rank": [1], "score": [0.5], "via": ["v" * 400],
                           "suggested_label": [long_label]})
    save_candidate_set(project.store, iteration=0, mode="generate" * 10, region={}, strategy="s" * 300, weights={},
                       params={}, ranked=ranked)
    record_decision(project.store, DecisionRequest("gen-1", "relabel", reviewer, label=long_label, expected_seq=0))
    state = decision_states(project.store).set_index("item_id").loc["gen-1"]
    assert state["label"] == long_label and state["reviewer"] == reviewer
    with pytest.raises(AddeError, match="NUL"):
        DecisionRequest("gen-1", "accept", "ann", critique="a\x00b")


def test_nan_metrics_round_trip(project):
    from adde_core.store.iterations import iteration_rows, save_iteration_metrics

    save_iteration_metrics(project.store, 0, {"ood_accuracy": float("nan"), "x": float("inf"), "n": 3},
                           phase="measured")
    metrics = iteration_rows(project.store)[0]["metrics"]
    assert math.isnan(metrics["ood_accuracy"]) and metrics["x"] == math.inf and metrics["n"] == 3


def test_blobs_in_chunks(project, monkeypatch):
    import adde_core.store.database as database

    monkeypatch.setattr(database, "BLOB_CHUNK_BYTES", 1000)
    data = np.random.default_rng(1).bytes(4321)
    project.store.save_blob("k", data)
    assert project.store.load_blob("k") == data and project.store.load_blob("missing") is None
    with project.store.transaction() as s:
        from sqlalchemy import func, select

        from adde_core.store.models import BlobChunk

        assert s.scalar(select(func.count()).select_from(BlobChunk).where(BlobChunk.key == "k")) == 5
    project.store.save_blob("k", b"")
    assert project.store.load_blob("k") == b""


def test_open_non_project_is_a_clear_error(tmp_path):
    with pytest.raises(AddeError, match="not an ADDE project"):
        Project.open(tmp_path)
    Project.create(tmp_path / "p").close()
    with pytest.raises(AddeError, match="already holds an ADDE project"):
        Project.create(tmp_path / "p")


@pytest.mark.parametrize("url, match", [
    ("postgresql+psycopg://nobody:secret@127.0.0.1:1/adde", "cannot use the database"),
    ("postgresql+psycopg2://nobody:secret@127.0.0.1:1/adde", "driver is not installed"),
    ("nosuchdb://x/y", "not a usable database URL"),
])
def test_unusable_database_is_a_clear_error_and_leaves_no_folder(tmp_path, url, match):
    with pytest.raises(AddeError, match=match) as info:
        Project.create(tmp_path / "new" / "p", database_url=url)
    assert "secret" not in str(info.value), "the password is never shown"
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")
    with pytest.raises(AddeError, match=match):
        Project.create(existing, database_url=url)
    assert [p.name for p in existing.iterdir()] == ["notes.txt"], "only what create made is removed"


def test_open_or_create_refuses_a_different_database(tmp_path):
    Project.create(tmp_path / "p").close()
    with pytest.raises(AddeError, match="already uses"):
        Project.open_or_create(tmp_path / "p", database_url="postgresql+psycopg://u@127.0.0.1:1/other")


def test_meta_set_to_none_is_removed_and_set_subgroup_none_clears_the_subgroup(tmp_path, database_url):
    p = Project.create(tmp_path / "p", database_url=database_url)
    p.store.add_items([ItemRecord(id="a", role="seed", label="x", attributes={"site": "s1"})])
    p.set_subgroup("site")
    assert p.subgroup_attribute == "site"
    p.set_subgroup(None)  # used to fail on the NOT NULL meta column
    assert p.subgroup_attribute is None
    p.store.set_meta("k", None)  # removing a key that is not there is fine too
    assert p.store.get_meta("k", "default") == "default"
    p.close()
