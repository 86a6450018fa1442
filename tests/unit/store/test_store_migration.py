"""Older projects open under the current schema: schema 1 (no "candidate" role) and schema 2 (bounded text,
JSON, array files) on SQLite and PostgreSQL, with everything they held intact."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from adde_core.errors import AddeError
from adde_core.store import Store
from adde_core.store.models import SCHEMA_VERSION, ItemRecord
from tests.unit.store.schema_v2 import v2_metadata


def _make_v1(path) -> None:
    """Write the schema-1 items table (role CHECK without "candidate") with two items."""
    store = Store(f"sqlite:///{path}", array_root=path.parent)
    store.add_items([ItemRecord(id="a", role="seed", label="cat"), ItemRecord(id="b", role="pool")])
    store.close()
    con = sqlite3.connect(path)
    sql = con.execute("SELECT sql FROM sqlite_master WHERE name='items'").fetchone()[0]
    old = sql.replace(", 'candidate')", ")")
    assert old != sql
    con.executescript(f"""
        PRAGMA foreign_keys=OFF;
        DROP INDEX IF EXISTS ix_items_role; DROP INDEX IF EXISTS ix_items_label;
        ALTER TABLE items RENAME TO items_old;
        {old};
        INSERT INTO items SELECT * FROM items_old; DROP TABLE items_old;
        CREATE INDEX ix_items_role ON items (role); CREATE INDEX ix_items_label ON items (label);
        UPDATE meta SET value='1' WHERE key='schema_version';
    """)
    con.commit()
    with pytest.raises(sqlite3.IntegrityError):
        con.execute("INSERT INTO items (id, role, source, iteration_added, attributes, created_at) "
                    "VALUES ('c', 'candidate', 'synthetic', 0, '{}', '2026-01-01')")
    con.close()


def test_v1_project_is_migrated(tmp_path):
    path = tmp_path / "adde.db"
    _make_v1(path)
    store = Store(f"sqlite:///{path}", array_root=tmp_path)
    assert store.get_meta("schema_version") == SCHEMA_VERSION
    frame = store.items_frame().set_index("id")
    assert frame.loc["a", "label"] == "cat" and frame.loc["b", "role"] == "pool"
    store.add_items([ItemRecord(id="c", role="candidate", source="synthetic")])
    assert store.items_frame().set_index("id").loc["c", "role"] == "candidate"
    store.close()


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "adde.db"
    Store(f"sqlite:///{path}", array_root=tmp_path).set_meta("schema_version", SCHEMA_VERSION + 1)
    with pytest.raises(AddeError, match="newer ADDE"):
        Store(f"sqlite:///{path}", array_root=tmp_path)


def _make_v2(url: str, root) -> tuple[np.ndarray, str]:
    """A schema-2 database at ``url`` (VARCHAR columns, JSON, an array file under ``root``) with items,
    a decision, a run left running, iteration metrics and one embedding set; returns its vectors and file name."""
    import datetime as dt

    from sqlalchemy import create_engine, insert

    md = v2_metadata()
    engine = create_engine(url)
    md.create_all(engine)
    now = dt.datetime.now(dt.timezone.utc)
    vectors = np.arange(6, dtype=np.float32).reshape(3, 2)
    (root / "embeddings").mkdir(parents=True, exist_ok=True)
    name = "embeddings/m-1111.npz"
    np.savez(root / name, ids=np.array(["a", "b", "c"]), vectors=vectors, fingerprint=np.array("f" * 40))
    t = md.tables
    with engine.begin() as conn:
        conn.execute(insert(t["meta"]), [{"key": "schema_version", "value": 2}, {"key": "name", "value": "old"}])
        conn.execute(insert(t["runs"]), [{"id": 1, "kind": "ingest", "started_at": now, "status": "running",
                                         "params": {}, "summary": {}}])
        conn.execute(insert(t["items"]), [
            {"id": i, "role": r, "label": lab, "attributes": {"site": "x"}, "source": "real", "iteration_added": 0,
             "created_at": now, "run_id": 1} for i, r, lab in (("a", "seed", "cat"), ("b", "pool", None),
                                                                ("c", "ood", "dog"))])
        conn.execute(insert(t["decisions"]), [{"item_id": "b", "seq": 1, "iteration": 0, "action": "accept",
                                              "label": "dog", "flags": [], "reviewer": "ann", "score": {},
                                              "created_at": now}])
        conn.execute(insert(t["iterations"]), [{"index": 0, "started_at": now, "config": {},
                                               "metrics": {"val_accuracy": 0.5}}])
        conn.execute(insert(t["embedding_sets"]), [{"model_key": "m", "dim": 2, "n": 3, "fingerprint": "f" * 40,
                                                   "path": name, "created_at": now}])
    engine.dispose()
    return vectors, name


def test_v2_project_is_migrated_on_both_backends(tmp_path, database_url):
    from adde_core.review import DecisionRequest, decision_states, record_decision
    from adde_core.store.iterations import iteration_rows, save_iteration_metrics

    url = database_url or f"sqlite:///{tmp_path / 'adde.db'}"
    vectors, name = _make_v2(url, tmp_path)
    store = Store(url, array_root=tmp_path)
    assert store.get_meta("schema_version") == SCHEMA_VERSION and store.get_meta("name") == "old"
    frame = store.items_frame().set_index("id")
    assert frame.loc["a", "label"] == "cat" and frame.loc["c", "role"] == "ood" and frame.loc["a", "site"] == "x"
    stored = store.load_embeddings("m")
    assert list(stored.ids) == ["a", "b", "c"] and np.array_equal(stored.vectors, vectors)
    assert not (tmp_path / name).exists(), "the array moved into the database"
    assert decision_states(store).set_index("item_id").loc["b", "label"] == "dog"
    # The run a schema-2 process left "running" has no owner: it is shown as interrupted.
    assert [r["id"] for r in store.interrupted_runs()] == [1]
    # What schema 2 could not hold on PostgreSQL now fits: the "candidate" role (VARCHAR(8)), long text, NaN.
    long = "L" * 1000
    store.add_items([ItemRecord(id="x" * 600, role="candidate", label=long, source="synthetic")])
    record_decision(store, DecisionRequest("x" * 600, "relabel", "r" * 300, label=long, expected_seq=0))
    from adde_core.store.candidates import provenance_frame, save_provenance

    save_provenance(store, [{"item_id": "x" * 600, "generator": "g" * 200, "seed": 3_503_041_500}])  # > int4
    assert int(provenance_frame(store)["seed"].iloc[0]) == 3_503_041_500
    save_iteration_metrics(store, 0, {"ood_accuracy": float("nan")}, phase="measured")
    metrics = iteration_rows(store)[0]["metrics"]
    assert metrics["val_accuracy"] == 0.5 and np.isnan(metrics["ood_accuracy"])
    store.close()
    again = Store(url, array_root=tmp_path)  # a second open finds nothing to do
    assert again.load_embeddings("m") is not None and again.item_count() == 4
    again.close()
