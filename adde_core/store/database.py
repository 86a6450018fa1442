"""The project store: transactional access to the SQL tables and the embedding array files."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, event, func, insert, inspect, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from adde_core.errors import AddeError
from adde_core.store.models import (
    ITEM_ROLES,
    SCHEMA_VERSION,
    Base,
    EmbeddingSet,
    Item,
    ItemRecord,
    Iteration,
    Meta,
    Run,
    utcnow,
)

_CORE_COLUMNS = ("id", "uri", "role", "label", "source", "iteration_added", "content_hash")


@dataclass(frozen=True)
class StoredEmbeddings:
    """Embeddings of items under one model, rows aligned with ``ids``."""

    model_key: str
    ids: np.ndarray
    vectors: np.ndarray
    fingerprint: str


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the app read while a write is in flight (a second browser tab), and a
    # busy timeout turns short lock contention into a wait instead of an error.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
    # Let SQLAlchemy, not the driver, emit BEGIN: pysqlite's implicit BEGIN is deferred, so a
    # read-then-write transaction could read a state another writer is about to change.
    dbapi_connection.isolation_level = None


def _sqlite_begin(conn: Any) -> None:
    # BEGIN IMMEDIATE takes the write lock up front: a locked transaction reads and writes
    # with no other writer in between (see Store.locked_transaction).
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("adde_lock") else "BEGIN")


def slugify(text: str) -> str:
    """A file-name-safe version of ``text`` (model keys contain ':' and '/')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:80] or "model"


class Store:
    """Transactional access to one project's database and array files.

    Parameters
    ----------
    url
        An SQLAlchemy URL: ``sqlite:////abs/path/adde.db`` for a single user, or a
        ``postgresql://`` URL for a team; the schema is portable.
    array_root
        Folder where embedding arrays are written (inside the project folder).
    """

    def __init__(self, url: str, *, array_root: Path) -> None:
        self.url = url
        self.array_root = Path(array_root)
        self.engine: Engine = create_engine(url)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        self._migrate()
        Base.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        with self.transaction() as s:
            version = s.get(Meta, "schema_version")
            if version is None:
                s.add(Meta(key="schema_version", value=SCHEMA_VERSION))
            else:
                version.value = SCHEMA_VERSION
            if s.scalar(select(func.count()).select_from(Iteration)) == 0:
                s.add(Iteration(index=0))

    def _migrate(self) -> None:
        """Bring a project written by an older ADDE to :data:`SCHEMA_VERSION` in one transaction."""
        names = inspect(self.engine).get_table_names()
        if "meta" not in names:
            return
        with self.engine.begin() as conn:
            row = conn.execute(select(Meta.value).where(Meta.key == "schema_version")).first()
            version = int(row[0]) if row else SCHEMA_VERSION
            if version > SCHEMA_VERSION:
                raise AddeError(f"{self.url}: written by a newer ADDE (schema {version}, this one reads up to "
                                f"{SCHEMA_VERSION}); upgrade ADDE")
            if version < 2:
                # v2 widened the items.role CHECK to admit "candidate". SQLite cannot alter a
                # constraint, so the table is rebuilt; other databases swap the constraint.
                if conn.dialect.name == "sqlite":
                    for index in inspect(conn).get_indexes("items"):
                        conn.exec_driver_sql(f'DROP INDEX IF EXISTS "{index["name"]}"')
                    conn.exec_driver_sql("ALTER TABLE items RENAME TO items_v1")
                    Item.__table__.create(conn)
                    conn.exec_driver_sql("INSERT INTO items SELECT * FROM items_v1")
                    conn.exec_driver_sql("DROP TABLE items_v1")
                else:
                    conn.exec_driver_sql("ALTER TABLE items DROP CONSTRAINT ck_items_role")
                    conn.exec_driver_sql(f"ALTER TABLE items ADD CONSTRAINT ck_items_role CHECK (role IN {ITEM_ROLES})")

    def close(self) -> None:
        """Release pooled connections (the files stay as they are)."""
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work is committed on exit, or rolled back entirely on any exception."""
        with self._sessions.begin() as session:
            yield session

    @contextmanager
    def locked_transaction(self) -> Iterator[Session]:
        """A transaction that holds the project's write lock from its first statement.

        Whatever reads the store and writes from what it read (closing an iteration,
        recording a decision against the current iteration) runs here, so no other writer
        can change what was read before the write commits: ``BEGIN IMMEDIATE`` on SQLite,
        ``SELECT ... FOR UPDATE`` on the latest iteration row elsewhere (PostgreSQL).
        """
        with self.engine.connect() as conn:
            conn = conn.execution_options(adde_lock=True)
            with Session(bind=conn, expire_on_commit=False) as session, session.begin():
                if self.engine.dialect.name != "sqlite":
                    session.execute(select(Iteration).order_by(Iteration.index.desc()).limit(1).with_for_update())
                yield session

    def revision(self) -> tuple[Any, ...]:
        """A cheap token that changes whenever items, decisions, candidate sets, iterations or embeddings change.

        The project's working-set cache is keyed by it, so nothing cached outlives the data
        it was built from, even when another process (a second reviewer) wrote.
        """
        from adde_core.store.models import Candidate, CandidateSet, Decision

        with self.transaction() as s:
            return (
                s.scalar(select(func.count()).select_from(Item)),
                s.scalar(select(func.max(Item.created_at))),
                s.scalar(select(func.max(Decision.id))),
                s.scalar(select(func.max(CandidateSet.id))),
                s.scalar(select(func.count()).select_from(Candidate)),
                s.scalar(select(func.max(Iteration.index))),
                tuple(s.execute(select(EmbeddingSet.model_key, EmbeddingSet.fingerprint)
                                .order_by(EmbeddingSet.model_key)).all()),
                tuple(s.execute(select(Item.role, func.count()).group_by(Item.role).order_by(Item.role)).all()),
            )

    # ----------------------------------------------------------------- meta
    def get_meta(self, key: str, default: Any = None) -> Any:
        """Return a metadata value, or ``default`` when it was never set."""
        with self.transaction() as s:
            row = s.get(Meta, key)
            return default if row is None else row.value

    def set_meta(self, key: str, value: Any) -> None:
        """Set a JSON-serialisable metadata value."""
        with self.transaction() as s:
            s.merge(Meta(key=key, value=value))

    # ----------------------------------------------------------------- runs
    def start_run(self, kind: str, params: dict[str, Any] | None = None) -> int:
        """Log the start of a unit of work and return its id."""
        with self.transaction() as s:
            run = Run(kind=kind, params=params or {})
            s.add(run)
            s.flush()
            return run.id

    def finish_run(self, run_id: int, *, status: str = "ok", summary: dict[str, Any] | None = None) -> None:
        """Mark a run finished with a status and a JSON summary."""
        with self.transaction() as s:
            run = s.get(Run, run_id)
            run.status = status
            run.summary = summary or {}
            run.finished_at = utcnow()

    def embed_params(self, model_key: str) -> tuple[str, dict[str, Any]]:
        """The embedder name and parameters that produced embedding set ``model_key``, from its embed run."""
        if model_key.startswith("precomputed:"):
            raise AddeError(f"{model_key!r} holds precomputed vectors, so new (generated) images cannot be embedded "
                            "in the same space; embed the project with an image embedder on the Data page first")
        for run in self.runs("embed"):
            if run["params"].get("model_key") == model_key:
                return run["params"]["embedder"], dict(run["params"].get("params", {}))
        raise AddeError(f"no embed run recorded for {model_key!r}; embed the project again on the Data page")

    def last_run(self, kind: str) -> dict[str, Any] | None:
        """The most recent run of ``kind`` as a dict, or None."""
        runs = self.runs(kind)
        return runs[0] if runs else None

    def runs(self, kind: str) -> list[dict[str, Any]]:
        """All runs of ``kind``, newest first, as dicts."""
        with self.transaction() as s:
            rows = list(s.scalars(select(Run).where(Run.kind == kind).order_by(Run.id.desc())))
            return [{c: getattr(r, c) for c in ("id", "kind", "started_at", "finished_at", "status", "params", "summary")}
                    for r in rows]

    # ---------------------------------------------------------------- items
    def add_items(self, records: Sequence[ItemRecord], *, run_id: int | None = None) -> int:
        """Insert items in one transaction: either all are written or none.

        Raises
        ------
        sqlalchemy.exc.IntegrityError
            If an id already exists; nothing from this call is written then.
        """
        if not records:
            return 0
        rows = [{**asdict(r), "run_id": run_id, "created_at": utcnow()} for r in records]
        with self.transaction() as s:
            s.execute(insert(Item), rows)
        return len(rows)

    def item_count(self) -> int:
        """How many items the project holds (a bare COUNT: cheap enough to run on every page rerun)."""
        with self.transaction() as s:
            return int(s.scalar(select(func.count()).select_from(Item)) or 0)

    def item_ids(self) -> set[str]:
        """All item ids in the project."""
        with self.transaction() as s:
            return set(s.scalars(select(Item.id)))

    def labels(self, role: str) -> set[str]:
        """The distinct non-empty labels of items with ``role``."""
        with self.transaction() as s:
            return {x for x in s.scalars(select(Item.label).where(Item.role == role).distinct()) if x is not None}

    def items_frame(self, *, roles: Iterable[str] | None = None, include_hidden: bool = False) -> pd.DataFrame:
        """Items as a DataFrame, one column per core field and per attribute.

        Parameters
        ----------
        roles
            Restrict to these roles; all roles when None.
        include_hidden
            Include ``oracle_label``. Only simulated reviewers should ask for it.
        """
        cols = [getattr(Item, c) for c in _CORE_COLUMNS] + [Item.attributes]
        if include_hidden:
            cols.append(Item.oracle_label)
        stmt = select(*cols).order_by(Item.id)
        if roles is not None:
            stmt = stmt.where(Item.role.in_(list(roles)))
        with self.transaction() as s:
            rows = s.execute(stmt).all()
        frame = pd.DataFrame(rows, columns=[c.key for c in cols])
        attrs = pd.DataFrame(list(frame.pop("attributes")), index=frame.index) if len(frame) else pd.DataFrame()
        return pd.concat([frame, attrs], axis=1)

    def counts(self) -> pd.DataFrame:
        """Number of items by role and source."""
        with self.transaction() as s:
            rows = s.execute(select(Item.role, Item.source, func.count()).group_by(Item.role, Item.source)).all()
        return pd.DataFrame(rows, columns=["role", "source", "n"])

    def attribute_names(self) -> list[str]:
        """Names of the attribute columns present on any item."""
        with self.transaction() as s:
            names: set[str] = set()
            for attrs in s.scalars(select(Item.attributes)):
                names.update(attrs or {})
        return sorted(names)

    # ----------------------------------------------------------- iterations
    def current_iteration(self) -> int:
        """Index of the latest iteration (0 for a new project)."""
        with self.transaction() as s:
            return int(s.scalar(select(func.max(Iteration.index))) or 0)

    # ----------------------------------------------------------- embeddings
    def save_embeddings(
        self, model_key: str, ids: Sequence[str], vectors: np.ndarray, fingerprint: str, *, run_id: int | None = None
    ) -> None:
        """Write an embedding set: array file first, then the row that points at it.

        The file name carries the fingerprint, so a crash between the two steps leaves
        the previous set intact and consistent; the old file is removed only after the
        new row is committed.
        """
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ids_arr = np.asarray(list(ids), dtype=str)
        if vectors.ndim != 2 or len(ids_arr) != len(vectors):
            raise AddeError(f"embeddings for {model_key!r}: {len(ids_arr)} ids but array of shape {vectors.shape}")
        folder = self.array_root / "embeddings"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{slugify(model_key)}-{fingerprint[:16]}.npz"
        tmp = folder / f".{name}.tmp"
        with open(tmp, "wb") as fh:
            np.savez(fh, ids=ids_arr, vectors=vectors, fingerprint=np.array(fingerprint))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, folder / name)
        with self.transaction() as s:
            old = s.get(EmbeddingSet, model_key)
            old_path = old.path if old is not None else None
            s.merge(
                EmbeddingSet(
                    model_key=model_key, dim=int(vectors.shape[1]), n=len(ids_arr), fingerprint=fingerprint,
                    path=f"embeddings/{name}", run_id=run_id, created_at=utcnow(),
                )
            )
        if old_path and old_path != f"embeddings/{name}":
            (self.array_root / old_path).unlink(missing_ok=True)

    def load_embeddings(self, model_key: str) -> StoredEmbeddings | None:
        """Load an embedding set, or None if absent or its file does not match the database row."""
        with self.transaction() as s:
            row = s.get(EmbeddingSet, model_key)
            if row is None:
                return None
            path, fingerprint = self.array_root / row.path, row.fingerprint
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as z:
            if str(z["fingerprint"]) != fingerprint:
                return None
            return StoredEmbeddings(model_key, z["ids"], z["vectors"], fingerprint)

    def embedding_sets(self) -> pd.DataFrame:
        """One row per stored embedding set: model, dimension, count, fingerprint, date."""
        with self.transaction() as s:
            rows = s.execute(
                select(EmbeddingSet.model_key, EmbeddingSet.dim, EmbeddingSet.n, EmbeddingSet.fingerprint,
                       EmbeddingSet.created_at)
            ).all()
        return pd.DataFrame(rows, columns=["model", "dim", "n", "fingerprint", "created_at"])


def is_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` is the database refusing a write that clashes with another (a duplicate key)."""
    from sqlalchemy.exc import IntegrityError

    return isinstance(exc, IntegrityError)


def data_fingerprint(model_key: str, pairs: Iterable[tuple[str, str | None]]) -> str:
    """Fingerprint of (model, items): sha1 over the model key and sorted (id, content hash) pairs.

    Any change of model, of the item set, or of an item's bytes changes it, so a
    cached result computed from other data is never mistaken for current.
    """
    h = hashlib.sha1(model_key.encode())
    for item_id, content in sorted(pairs, key=lambda p: p[0]):
        h.update(b"\0" + item_id.encode() + b"\1" + (content or "").encode())
    return h.hexdigest()
