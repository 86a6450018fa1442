"""A project written by schema 1 opens under schema 2 with its items intact and the new role allowed."""

from __future__ import annotations

import sqlite3

import pytest

from adde_core.errors import AddeError
from adde_core.store import Store
from adde_core.store.models import SCHEMA_VERSION, ItemRecord


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
