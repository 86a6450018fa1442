"""The project store: transactional access to the SQL tables, with embedding arrays kept in the database.

The same code runs on SQLite (one user, a file in the project folder) and PostgreSQL (a team
sharing one server). Arrays (embeddings, maps) are blobs in the database rather than files
next to it, so every teammate on a shared database reads the same ones and an embedding set
commits atomically with the items it belongs to.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import re
import socket
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (BigInteger, Text, create_engine, delete, event, func, insert, inspect, select, text,
                        type_coerce, update)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from adde_core.errors import AddeError
from adde_core.faults import fault_point
from adde_core.store.models import (
    ITEM_ROLES,
    SCHEMA_VERSION,
    Base,
    Blob,
    BlobChunk,
    EmbeddingSet,
    Item,
    JSONText,
    ItemRecord,
    Iteration,
    Meta,
    ReviewClaim,
    ReviewSession,
    Run,
    utcnow,
)

#: The PostgreSQL advisory-lock key that serialises schema creation and migration across processes.
_SCHEMA_LOCK_KEY = 0x41444445  # "ADDE"
#: Blobs are stored in pieces of this many bytes (PostgreSQL's bytea tops out at 1 GB a value).
BLOB_CHUNK_BYTES = 32 * 1024 * 1024
#: How long a close owned by a process on another machine (whose liveness cannot be checked) is honoured.
FOREIGN_LEASE = dt.timedelta(minutes=30)

_CORE_COLUMNS = ("id", "uri", "role", "label", "source", "iteration_added", "content_hash")


def _json_values(texts: list[Any]) -> list[Any]:
    """JSON column values read as text, decoded as :class:`~adde_core.store.models.JSONText` does, in one parse.

    Values that are not text (a schema-2 SQLite column with numeric affinity returns a bare number
    as one) or rows that are NULL keep their per-row meaning.
    """
    if all(isinstance(t, str) for t in texts):
        return json.loads("[" + ",".join(texts) + "]")
    return [JSONText().process_result_value(t, None) for t in texts]


class StoreConflict(AddeError):
    """A write refused because another writer changed what it was based on; nothing was written."""


_UNCHECKED: Any = object()


@dataclass(frozen=True)
class StoredEmbeddings:
    """Embeddings of items under one model, rows aligned with ``ids``."""

    model_key: str
    ids: np.ndarray
    vectors: np.ndarray
    fingerprint: str


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the app read while a write is in flight (a second browser tab), and a
    # busy timeout turns short lock contention into a wait instead of an error. The timeout
    # comes first: switching a fresh file to WAL needs a lock another process may hold.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
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


def shown_url(url: str) -> str:
    """``url`` with any password masked, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL has no password we could find either
        return re.sub(r"://([^:/@]*):[^@]*@", r"://\1:***@", url)


def _connect(url: str) -> Engine:
    """An engine for ``url``, or an AddeError naming what is wrong (bad URL, driver not installed)."""
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    kwargs: dict[str, Any] = {}
    if url.startswith("postgresql") and "connect_timeout" not in url:
        kwargs["connect_args"] = {"connect_timeout": 10}  # an unreachable host fails in seconds, not minutes
    try:
        return create_engine(url, **kwargs)
    except ModuleNotFoundError as exc:
        raise AddeError(f"{shown_url(url)}: the database driver is not installed ({exc}); for PostgreSQL run "
                        "`pip install 'psycopg[binary]==3.3.9'` (it is in requirements.txt)") from exc
    except (ArgumentError, NoSuchModuleError) as exc:
        raise AddeError(f"{shown_url(url)}: not a usable database URL ({exc}); use e.g. "
                        "postgresql+psycopg://user:password@host:5432/dbname") from exc


def _proc_start(pid: int) -> str:
    """The start time of process ``pid`` in clock ticks (Linux), so a reused pid is not mistaken for it."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return ""


_PROCESS: tuple[int, str] | None = None


def process_owner() -> str:
    """``host:pid:start`` of this process: recorded with runs and closes so a dead owner is recognised."""
    global _PROCESS
    if _PROCESS is None or _PROCESS[0] != os.getpid():  # recomputed after a fork
        _PROCESS = (os.getpid(), f"{socket.gethostname()}:{os.getpid()}:{_proc_start(os.getpid())}")
    return _PROCESS[1]


def thread_owner() -> str:
    """:func:`process_owner` plus this thread, for work a second thread of the same server may also start."""
    return f"{process_owner()}:{threading.get_ident()}"


def owner_alive(owner: str | None) -> bool | None:
    """Whether the process (and thread) an owner token names still runs; None when it is on another machine."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    if host != socket.gethostname():
        return None
    pid_s, _, rest = rest.partition(":")
    start, _, tid = rest.partition(":")
    try:
        pid = int(pid_s)
    except ValueError:
        return False
    if pid == os.getpid() and start == _proc_start(pid):
        return not tid or any(t.ident == int(tid) and t.is_alive() for t in threading.enumerate())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by another user
    return start == _proc_start(pid) if start else True


def describe_owner(owner: str | None) -> str:
    """An owner token as words: 'process 123 on host'."""
    if not owner:
        return "an unknown process"
    host, pid = owner.split(":")[:2]
    return f"process {pid} on {host}"


def as_utc(moment: dt.datetime | None) -> dt.datetime | None:
    """A stored time as an aware UTC datetime (SQLite hands them back naive)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=dt.timezone.utc)


def _unreachable(url: str, exc: BaseException) -> AddeError:
    first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return AddeError(f"{shown_url(url)}: cannot use the database ({first}); check that the server is running and "
                     "that the URL's host, port, user, password and database name are right")


class Store:
    """Transactional access to one project's database and array files.

    Parameters
    ----------
    url
        An SQLAlchemy URL: ``sqlite:////abs/path/adde.db`` for a single user, or a
        ``postgresql+psycopg://user:password@host/db`` URL for a team (``postgresql://``
        also means psycopg 3 with SQLAlchemy 2); the schema is portable.
    array_root
        The project folder: array files of schema-2 projects are read from it once, while
        they are moved into the database.

    Raises
    ------
    AddeError
        When the URL is unusable, its driver is not installed, or the server cannot be reached.
    """

    def __init__(self, url: str, *, array_root: Path) -> None:
        self.url = url
        self.array_root = Path(array_root)
        self.engine: Engine = _connect(url)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._file_digests: dict[str, tuple[int, int, str]] = {}
        # The last embedding array read per model key, by (fingerprint, blob digest): a working set is
        # rebuilt after every decision, and re-reading tens of MB from the database each time is not free.
        self._arrays: dict[str, tuple[str, str, np.ndarray, np.ndarray]] = {}
        try:
            self._prepare_schema()
            self.interrupted = self.mark_interrupted_runs()
        except SQLAlchemyError as exc:
            self.engine.dispose()
            raise _unreachable(url, exc) from exc
        except BaseException:
            self.engine.dispose()
            raise

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql`` (or another SQLAlchemy dialect name)."""
        return self.engine.dialect.name

    # --------------------------------------------------------------- schema
    def _schema_current(self, conn: Connection) -> bool:
        """Whether every table exists at this schema version with iteration 0 (the cheap path of every open)."""
        names = set(inspect(conn).get_table_names())
        if "meta" not in names:
            return False
        row = conn.execute(select(Meta.value).where(Meta.key == "schema_version")).first()
        version = int(row[0]) if row else None
        if version is not None and version > SCHEMA_VERSION:
            raise AddeError(f"{shown_url(self.url)}: written by a newer ADDE (schema {version}, this one reads up to "
                            f"{SCHEMA_VERSION}); upgrade ADDE")
        return (version == SCHEMA_VERSION and set(Base.metadata.tables) <= names
                and conn.execute(select(Iteration.index).limit(1)).first() is not None)

    @contextmanager
    def _schema_lock(self) -> Iterator[Connection]:
        """One transaction that no other process creating or migrating the schema runs alongside.

        PostgreSQL: a transaction-scoped advisory lock (DDL is transactional there, so a
        second process waits, then finds the tables made). SQLite: ``BEGIN IMMEDIATE``.
        """
        with self.engine.connect() as conn:
            conn = conn.execution_options(adde_lock=True)
            with conn.begin():
                if self.dialect == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
                yield conn

    def _prepare_schema(self) -> None:
        """Create or migrate the tables once, safely when several processes first open the database at once."""
        with self.engine.connect() as conn:
            if self._schema_current(conn):
                return
        moved: list[Path] = []
        with self._schema_lock() as conn:
            if not self._schema_current(conn):  # another process may have done it while we waited
                moved = self._migrate(conn)
                Base.metadata.create_all(conn)
                if conn.execute(select(Meta.key).where(Meta.key == "schema_version")).first() is None:
                    conn.execute(insert(Meta).values(key="schema_version", value=SCHEMA_VERSION))
                else:
                    conn.execute(update(Meta).where(Meta.key == "schema_version").values(value=SCHEMA_VERSION))
                if conn.execute(select(Iteration.index).limit(1)).first() is None:
                    conn.execute(insert(Iteration).values(index=0, started_at=utcnow(), config={}, metrics={}))
        for path in moved:  # array files now copied into the database (committed above)
            path.unlink(missing_ok=True)

    def _migrate(self, conn: Connection) -> list[Path]:
        """Bring a project written by an older ADDE to :data:`SCHEMA_VERSION` (inside the schema lock).

        Returns the array files whose contents moved into the database, to delete after the commit.
        """
        if not inspect(conn).has_table("meta"):
            return []
        row = conn.execute(select(Meta.value).where(Meta.key == "schema_version")).first()
        version = int(row[0]) if row else SCHEMA_VERSION
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
        moved = self._migrate_v3(conn) if version < 3 else []
        if version < 4:
            self._migrate_v4(conn)
        return moved

    def _migrate_v4(self, conn: Connection) -> None:
        """Schema 4: the review claim and review session tables (new tables only, nothing to convert)."""
        ReviewSession.__table__.create(conn, checkfirst=True)
        ReviewClaim.__table__.create(conn, checkfirst=True)

    def _migrate_v3(self, conn: Connection) -> list[Path]:
        """Schema 3: text columns, JSON as text, a run owner, and embedding arrays moved into the database."""
        inspector = inspect(conn)
        if inspector.has_table("runs") and "owner" not in {c["name"] for c in inspector.get_columns("runs")}:
            conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN owner TEXT")
        if not inspector.has_table("embedding_sets"):
            return []
        if conn.dialect.name == "postgresql":
            # Widen every bounded string (and the json columns) to text; a varchar key and the text
            # columns referring to it stay compatible during the change.
            for table in Base.metadata.sorted_tables:
                if not inspector.has_table(table.name):
                    continue
                existing = {c["name"]: str(c["type"]).upper() for c in inspector.get_columns(table.name)}
                for column in table.columns:
                    if _is_text(column.type) and existing.get(column.name, "TEXT") != "TEXT":
                        conn.exec_driver_sql(f'ALTER TABLE "{table.name}" ALTER COLUMN "{column.name}" TYPE TEXT '
                                             f'USING "{column.name}"::text')
                    elif isinstance(column.type, BigInteger) and existing.get(column.name) == "INTEGER":
                        conn.exec_driver_sql(f'ALTER TABLE "{table.name}" ALTER COLUMN "{column.name}" TYPE BIGINT')
            conn.exec_driver_sql("ALTER TABLE embedding_sets ALTER COLUMN path DROP NOT NULL")
        else:
            # SQLite never enforced a VARCHAR length or JSON, so only the NOT NULL on the (now legacy)
            # file path needs the table rebuilt; nothing refers to embedding_sets, so a rename is safe.
            conn.exec_driver_sql("ALTER TABLE embedding_sets RENAME TO embedding_sets_v2")
            EmbeddingSet.__table__.create(conn)
            cols = ", ".join(f'"{c}"' for c in ("model_key", "dim", "n", "fingerprint", "path", "run_id", "created_at"))
            conn.exec_driver_sql(f"INSERT INTO embedding_sets ({cols}) SELECT {cols} FROM embedding_sets_v2")
            conn.exec_driver_sql("DROP TABLE embedding_sets_v2")
        Blob.__table__.create(conn, checkfirst=True)
        BlobChunk.__table__.create(conn, checkfirst=True)
        moved = []
        for key, path, fingerprint in conn.execute(select(EmbeddingSet.model_key, EmbeddingSet.path,
                                                          EmbeddingSet.fingerprint)).all():
            file = self.array_root / path if path else None
            if file is None or not file.exists() or _npz_fingerprint(file.read_bytes()) != fingerprint:
                continue  # a missing or mismatched file stays "absent" exactly as before: embed again
            _write_blob(conn, _embedding_blob(key), file.read_bytes())
            conn.execute(update(EmbeddingSet).where(EmbeddingSet.model_key == key).values(path=None))
            moved.append(file)
        return moved

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
        """Set a JSON-serialisable metadata value (None removes the key: the column holds no SQL NULL)."""
        with self.transaction() as s:
            if value is None:
                s.execute(delete(Meta).where(Meta.key == key))
            else:
                s.merge(Meta(key=key, value=value))

    # ----------------------------------------------------------------- runs
    def start_run(self, kind: str, params: dict[str, Any] | None = None) -> int:
        """Log the start of a unit of work and return its id (this process is recorded as its owner)."""
        with self.transaction() as s:
            run = Run(kind=kind, params=params or {}, owner=process_owner())
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

    def mark_interrupted_runs(self) -> list[dict[str, Any]]:
        """Mark runs left "running" by a process that no longer exists as ``interrupted``; returns them.

        Called on every open, so a killed ingest, embed or close shows as interrupted the next
        time anyone opens the project instead of "running" forever. A run owned by a process on
        another machine (a teammate) is left alone: its liveness cannot be checked from here.
        """
        with self.transaction() as s:
            running = list(s.scalars(select(Run).where(Run.status == "running")))
        dead = [r.id for r in running if owner_alive(r.owner) is False]
        if not dead:
            return []
        with self.transaction() as s:
            out = []
            for run in s.scalars(select(Run).where(Run.id.in_(dead), Run.status == "running")):
                run.status = "interrupted"
                run.finished_at = utcnow()
                run.summary = {**(run.summary or {}), "interrupted": (
                    f"{describe_owner(run.owner)} stopped before this {run.kind} finished (killed or crashed); "
                    f"what it committed is kept, and running the {run.kind} again finishes the work")}
                out.append(_run_dict(run))
        return out

    def interrupted_runs(self) -> list[dict[str, Any]]:
        """Every run whose process died before it finished, newest first."""
        with self.transaction() as s:
            return [_run_dict(r) for r in s.scalars(select(Run).where(Run.status == "interrupted")
                                                    .order_by(Run.id.desc()))]

    def last_run(self, kind: str) -> dict[str, Any] | None:
        """The most recent run of ``kind`` as a dict, or None."""
        runs = self.runs(kind)
        return runs[0] if runs else None

    def runs(self, kind: str) -> list[dict[str, Any]]:
        """All runs of ``kind``, newest first, as dicts."""
        with self.transaction() as s:
            return [_run_dict(r) for r in s.scalars(select(Run).where(Run.kind == kind).order_by(Run.id.desc()))]

    # ---------------------------------------------------------------- items
    def add_items(self, records: Sequence[ItemRecord], *, run_id: int | None = None,
                  embeddings: StoredEmbeddings | None = None, replaces: Any = _UNCHECKED) -> int:
        """Insert items in one transaction: either all are written or none.

        Parameters
        ----------
        embeddings
            An embedding set to write in the same transaction (the items' precomputed vectors,
            merged with the set's earlier rows): items never exist without the vectors that
            came with them, whatever point a crash stops the write at.
        replaces
            With ``embeddings``: the fingerprint of the stored set it was built on (None: there
            was none). If another writer changed the set since, nothing is written and
            :class:`StoreConflict` is raised, so two concurrent ingests never drop each other's vectors.

        Raises
        ------
        sqlalchemy.exc.IntegrityError
            If an id already exists; nothing from this call is written then.
        StoreConflict
            See ``replaces``.
        """
        if not records:
            return 0
        rows = [{**asdict(r), "run_id": run_id, "created_at": utcnow()} for r in records]
        with (self.transaction() if embeddings is None else self.locked_transaction()) as s:
            if embeddings is not None and replaces is not _UNCHECKED:
                now = s.scalar(select(EmbeddingSet.fingerprint).where(EmbeddingSet.model_key == embeddings.model_key))
                if now != replaces:
                    raise StoreConflict(f"embedding set {embeddings.model_key!r} was changed by another writer while "
                                        "these items were prepared; nothing was written: run it again")
            s.execute(insert(Item), rows)
            if embeddings is not None:
                fault_point("ingest:items")  # test hook: items inserted, vectors not, nothing committed
                self._write_embeddings(s.connection(), embeddings.model_key, embeddings.ids, embeddings.vectors,
                                       embeddings.fingerprint, run_id)
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
        # The attributes come back as their stored JSON text and are decoded in one call below: the
        # column type's per-row json.loads was 0.25 s of each read of the demo's 9,716 items.
        cols = [getattr(Item, c) for c in _CORE_COLUMNS] + [type_coerce(Item.attributes, Text).label("attributes")]
        if include_hidden:
            cols.append(Item.oracle_label)
        stmt = select(*cols).order_by(Item.id)
        if roles is not None:
            stmt = stmt.where(Item.role.in_(list(roles)))
        with self.transaction() as s:
            rows = s.execute(stmt).all()
        frame = pd.DataFrame(rows, columns=[c.key for c in cols])
        attrs = (pd.DataFrame(_json_values(frame.pop("attributes").tolist()), index=frame.index)
                 if len(frame) else pd.DataFrame())
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
        """Write (or replace) an embedding set: the array and its row in one transaction.

        The array is a blob in the database, so teammates on a shared database all read it and
        a crash leaves either the previous set or the new one, never a row without its array.
        """
        with self.transaction() as s:
            legacy = self._write_embeddings(s.connection(), model_key, ids, vectors, fingerprint, run_id)
        if legacy:
            (self.array_root / legacy).unlink(missing_ok=True)

    def _write_embeddings(self, conn: Connection, model_key: str, ids: Sequence[str], vectors: np.ndarray,
                          fingerprint: str, run_id: int | None) -> str | None:
        """Write an embedding set inside an open transaction; returns a replaced schema-2 file to delete after it."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ids_arr = np.asarray(list(ids), dtype=str)
        if vectors.ndim != 2 or len(ids_arr) != len(vectors):
            raise AddeError(f"embeddings for {model_key!r}: {len(ids_arr)} ids but array of shape {vectors.shape}")
        buffer = io.BytesIO()
        np.savez(buffer, ids=ids_arr, vectors=vectors, fingerprint=np.array(fingerprint))
        _write_blob(conn, _embedding_blob(model_key), buffer.getvalue())
        legacy = conn.execute(select(EmbeddingSet.path).where(EmbeddingSet.model_key == model_key)).scalar()
        values = {"dim": int(vectors.shape[1]), "n": len(ids_arr), "fingerprint": fingerprint, "path": None,
                  "run_id": run_id, "created_at": utcnow()}
        if conn.execute(select(EmbeddingSet.model_key).where(EmbeddingSet.model_key == model_key)).first() is None:
            conn.execute(insert(EmbeddingSet).values(model_key=model_key, **values))
        else:
            conn.execute(update(EmbeddingSet).where(EmbeddingSet.model_key == model_key).values(**values))
        return legacy

    def load_embeddings(self, model_key: str) -> StoredEmbeddings | None:
        """Load an embedding set, or None if absent or its array does not match the database row.

        The arrays are copies: a caller may change them without touching the store or its cache.
        """
        with self.transaction() as s:
            found = s.execute(select(EmbeddingSet.fingerprint, EmbeddingSet.path, Blob.digest)
                              .outerjoin(Blob, Blob.key == _embedding_blob(model_key))
                              .where(EmbeddingSet.model_key == model_key)).first()
            if found is None:
                return None
            fingerprint, path, digest = found
            cached = self._arrays.get(model_key)
            if not path and cached is not None and cached[:2] == (fingerprint, digest):
                return StoredEmbeddings(model_key, cached[2].copy(), cached[3].copy(), fingerprint)
            data = None if path else _read_blob(s.connection(), _embedding_blob(model_key))
        if path:  # a schema-2 file that could not be moved into the database
            file = self.array_root / path
            data = file.read_bytes() if file.exists() else None
        if data is None:
            return None
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            if str(z["fingerprint"]) != fingerprint:
                return None
            ids, vectors = z["ids"], z["vectors"]
        if not path:
            self._arrays[model_key] = (fingerprint, digest, ids, vectors)
        return StoredEmbeddings(model_key, ids.copy(), vectors.copy(), fingerprint)

    # ---------------------------------------------------------------- blobs
    def save_blob(self, key: str, data: bytes) -> None:
        """Store (or replace) a named binary value in the database, atomically."""
        with self.transaction() as s:
            _write_blob(s.connection(), key, data)

    def load_blob(self, key: str) -> bytes | None:
        """A value stored by :meth:`save_blob`, or None."""
        with self.transaction() as s:
            return _read_blob(s.connection(), key)

    def blob_digest(self, key: str) -> str | None:
        """The SHA-1 of a stored value (a cheap way to tell whether a local copy is current), or None."""
        with self.transaction() as s:
            return s.scalar(select(Blob.digest).where(Blob.key == key))

    def share_file(self, key: str, path: Path) -> None:
        """Store the file at ``path`` as blob ``key`` (unless it is already), so teammates can fetch it."""
        path = Path(path)
        if self.blob_digest(key) != self._file_digest(path):
            self.save_blob(key, path.read_bytes())

    def fetch_file(self, key: str, path: Path) -> bool:
        """Write blob ``key`` to ``path`` when the file is missing or differs; returns whether it wrote.

        A teammate's newer copy (a latent map extended on their machine) thus replaces this
        folder's copy; with no blob stored the file is left as it is.
        """
        path = Path(path)
        digest = self.blob_digest(key)
        if digest is None or (path.exists() and self._file_digest(path) == digest):
            return False
        data = self.load_blob(key)
        if data is None:
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        self._remember_digest(path, hashlib.sha1(data).hexdigest())
        return True

    def _file_digest(self, path: Path) -> str:
        stat = path.stat()
        known = self._file_digests.get(str(path))
        if known and known[:2] == (stat.st_mtime_ns, stat.st_size):
            return known[2]
        return self._remember_digest(path, hashlib.sha1(path.read_bytes()).hexdigest())

    def _remember_digest(self, path: Path, digest: str) -> str:
        stat = path.stat()
        self._file_digests[str(path)] = (stat.st_mtime_ns, stat.st_size, digest)
        return digest

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

    return isinstance(exc, (IntegrityError, StoreConflict))


def _run_dict(run: Run) -> dict[str, Any]:
    return {c: getattr(run, c) for c in ("id", "kind", "started_at", "finished_at", "status", "params", "summary",
                                         "owner")}


def _is_text(kind: Any) -> bool:
    """Whether a column type is stored as unbounded text (``Text`` itself, or a decorator over it)."""
    from sqlalchemy import Text
    from sqlalchemy.types import TypeDecorator

    return isinstance(kind.impl_instance if isinstance(kind, TypeDecorator) else kind, Text)


def _embedding_blob(model_key: str) -> str:
    return f"embeddings/{model_key}"


def _npz_fingerprint(data: bytes) -> str | None:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return str(z["fingerprint"])
    except (OSError, KeyError, ValueError):
        return None


def _write_blob(conn: Connection, key: str, data: bytes) -> None:
    """Replace blob ``key`` inside an open transaction, in chunks of :data:`BLOB_CHUNK_BYTES`."""
    conn.execute(delete(BlobChunk).where(BlobChunk.key == key))
    conn.execute(delete(Blob).where(Blob.key == key))
    conn.execute(insert(Blob).values(key=key, digest=hashlib.sha1(data).hexdigest(), size=len(data),
                                     created_at=utcnow()))
    view = memoryview(data)
    for seq, start in enumerate(range(0, max(len(data), 1), BLOB_CHUNK_BYTES)):
        conn.execute(insert(BlobChunk).values(key=key, seq=seq, data=bytes(view[start:start + BLOB_CHUNK_BYTES])))


def _read_blob(conn: Connection, key: str) -> bytes | None:
    if conn.execute(select(Blob.key).where(Blob.key == key)).first() is None:
        return None
    return b"".join(conn.execute(select(BlobChunk.data).where(BlobChunk.key == key).order_by(BlobChunk.seq))
                    .scalars())


def data_fingerprint(model_key: str, pairs: Iterable[tuple[str, str | None]]) -> str:
    """Fingerprint of (model, items): sha1 over the model key and sorted (id, content hash) pairs.

    Any change of model, of the item set, or of an item's bytes changes it, so a
    cached result computed from other data is never mistaken for current.
    """
    h = hashlib.sha1(model_key.encode())
    for item_id, content in sorted(pairs, key=lambda p: p[0]):
        h.update(b"\0" + item_id.encode() + b"\1" + (content or "").encode())
    return h.hexdigest()
