"""Store: round trip, reopen, transactional failure, embedding files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy.exc import IntegrityError

from adde_core.project import Project
from adde_core.store import ItemRecord
from adde_core.store.models import Item

RECORDS = [
    ItemRecord(id="a", role="seed", uri="data/a.png", label="cat", attributes={"pose": "upright", "size": 0.3},
               content_hash="h1"),
    ItemRecord(id="b", role="pool", uri="/abs/b.png", oracle_label="dog", source="pool", content_hash="h2"),
    ItemRecord(id="c", role="val", label="dog", attributes={"pose": "horizontal"}, iteration_added=0),
]


def test_items_round_trip_and_hidden_oracle(tmp_path):
    project = Project.create(tmp_path / "p")
    assert project.store.add_items(RECORDS) == 3
    frame = project.store.items_frame(include_hidden=True).set_index("id")
    assert frame.loc["a", "label"] == "cat" and frame.loc["a", "pose"] == "upright" and frame.loc["a", "size"] == 0.3
    assert frame.loc["b", "oracle_label"] == "dog" and frame.loc["b", "source"] == "pool"
    assert pd.isna(frame.loc["c", "uri"])
    # The default view never exposes the oracle label.
    assert "oracle_label" not in project.store.items_frame().columns
    counts = {(r.role, r.source): r.n for r in project.counts().itertuples()}
    assert counts == {("seed", "real"): 1, ("pool", "pool"): 1, ("val", "real"): 1}


def test_reopen_restores_everything(tmp_path):
    project = Project.create(tmp_path / "p", name="mine")
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


def test_failed_batch_writes_nothing(tmp_path):
    project = Project.create(tmp_path / "p")
    project.store.add_items(RECORDS[:1])
    batch = [ItemRecord(id="new1", role="seed", label="x"), RECORDS[0], ItemRecord(id="new2", role="seed", label="y")]
    with pytest.raises(IntegrityError):
        project.store.add_items(batch)  # "a" already exists
    assert project.store.item_ids() == {"a"}


def test_exception_inside_transaction_rolls_back(tmp_path):
    project = Project.create(tmp_path / "p")
    with pytest.raises(RuntimeError):
        with project.store.transaction() as s:
            s.add(Item(id="z", role="seed", label="x"))
            s.flush()
            raise RuntimeError("crash mid-write")
    assert project.store.item_ids() == set()


def test_check_constraint_rejects_unknown_role(tmp_path):
    project = Project.create(tmp_path / "p")
    with pytest.raises(IntegrityError):
        with project.store.transaction() as s:
            s.add(Item(id="z", role="train", label="x"))
    with pytest.raises(ValueError, match="unknown role 'train'"):
        ItemRecord(id="z", role="train")


def test_embedding_set_replacement_is_atomic(tmp_path):
    project = Project.create(tmp_path / "p")
    store = project.store
    store.save_embeddings("m", ["a"], np.ones((1, 2)), "1" * 40)
    first = sorted((tmp_path / "p" / "embeddings").glob("*.npz"))
    store.save_embeddings("m", ["a", "b"], np.zeros((2, 2)), "2" * 40)
    files = sorted((tmp_path / "p" / "embeddings").glob("*.npz"))
    assert len(files) == 1 and files != first  # old file removed only after the new row was committed
    assert store.load_embeddings("m").fingerprint == "2" * 40
    # A file that does not match its row (e.g. swapped by hand) is treated as missing, not trusted.
    np.savez(files[0], ids=np.array(["a"]), vectors=np.ones((1, 2), np.float32), fingerprint=np.array("3" * 40))
    assert store.load_embeddings("m") is None
    with pytest.raises(ValueError, match="2 ids but array of shape"):
        store.save_embeddings("m", ["a", "b"], np.ones((3, 2)), "4" * 40)


def test_open_non_project_is_a_clear_error(tmp_path):
    from adde_core.errors import AddeError

    with pytest.raises(AddeError, match="not an ADDE project"):
        Project.open(tmp_path)
    Project.create(tmp_path / "p")
    with pytest.raises(AddeError, match="already holds an ADDE project"):
        Project.create(tmp_path / "p")
