"""Database backends for tests: every store, review, concurrency and iteration test runs on SQLite and PostgreSQL.

A folder's ``conftest.py`` imports the fixture (tests/unit/store, tests/integration).
``database_url`` is parametrised over ``sqlite`` (None: the project's own SQLite file) and
``postgres`` (a fresh, empty database on the server named by ``ADDE_TEST_POSTGRES_URL``,
dropped afterwards). The PostgreSQL variant skips, saying why, only when that variable is
unset; ``.ci/run`` starts a throw-away PostgreSQL 15 on loopback and always sets it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

POSTGRES_ENV = "ADDE_TEST_POSTGRES_URL"
BACKENDS = ("sqlite", "postgres")


def postgres_base_url() -> str:
    """The server URL from ``ADDE_TEST_POSTGRES_URL``, or a skip that says how to set it."""
    url = os.environ.get(POSTGRES_ENV, "").strip()
    if not url:
        pytest.skip(f"PostgreSQL variant: set {POSTGRES_ENV}=postgresql+psycopg://postgres@127.0.0.1:PORT/postgres "
                    "(.ci/run starts a throw-away PostgreSQL 15 on loopback and sets it)")
    return url


def _admin(base_url: str, sql: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE) on the server of ``base_url``."""
    from sqlalchemy import create_engine, text

    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(sql))
    finally:
        admin.dispose()


def create_database(base_url: str) -> str:
    """A new empty database on the server of ``base_url``; returns its URL."""
    from sqlalchemy.engine import make_url

    name = f"adde_test_{uuid.uuid4().hex[:12]}"
    _admin(base_url, f'CREATE DATABASE "{name}"')
    return make_url(base_url).set(database=name).render_as_string(hide_password=False)


def drop_database(base_url: str, url: str) -> None:
    """Drop the database of ``url`` (closing any connection a killed process left)."""
    from sqlalchemy.engine import make_url

    _admin(base_url, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


def run_together(*calls) -> list[object]:
    """Run the zero-argument ``calls`` in threads released at the same instant; their results or exceptions."""
    import threading

    barrier = threading.Barrier(len(calls))
    out: list[object] = [None] * len(calls)

    def run(k, call):
        barrier.wait()
        try:
            out[k] = call()
        except Exception as exc:  # noqa: BLE001 - the caller inspects exactly what came out
            out[k] = exc

    threads = [threading.Thread(target=run, args=(k, call)) for k, call in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    return out


@pytest.fixture(params=BACKENDS)
def database_url(request) -> Iterator[str | None]:
    """None on SQLite (each project its own file), else the URL of a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    base = postgres_base_url()
    url = create_database(base)
    try:
        yield url
    finally:
        drop_database(base, url)


def make_synthetic_project(root, *, database_url: str | None = None, n_per: int = 40, classes=("ant", "bee", "cow"),
                           dim: int = 12, n_seed: int = 4, n_val: int = 8, seed: int = 0):
    """A small project from a manifest plus a ``.npy`` of embeddings (no image embedder runs).

    Per class: ``n_seed`` labelled seed items, ``n_val`` val items, the rest pool items whose
    true label is hidden as the oracle label. Returns the open :class:`~adde_core.project.Project`.
    """
    from pathlib import Path

    import numpy as np
    import pandas as pd

    from adde_core.project import Project

    root = Path(root)
    src = root.parent / f"{root.name}-source"
    src.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2.0, (len(classes), dim))
    rows, vectors = [], []
    for k, name in enumerate(classes):
        for i in range(n_per):
            role = "seed" if i < n_seed else "val" if i < n_seed + n_val else "pool"
            rows.append({"id": f"{name}-{i:03d}", "role": role, "label": "" if role == "pool" else name,
                         "oracle_label": name if role == "pool" else ""})
            vectors.append(centres[k] + rng.normal(0, 1.0, dim))
    pd.DataFrame(rows).to_csv(src / "manifest.csv", index=False)
    np.save(src / "vectors.npy", np.asarray(vectors, dtype=np.float32))
    project = Project.create(root, database_url=database_url)
    report = project.ingest_manifest(src / "manifest.csv", embeddings=src / "vectors.npy")
    assert report.n_loaded == len(rows), report.to_frame()
    return project
