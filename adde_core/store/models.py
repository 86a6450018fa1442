"""SQLAlchemy table definitions for a project's items, embeddings, runs and iterations.

Only portable column types are used (no SQLite-specific ones) so that the same
schema works on SQLite for one user and on PostgreSQL for a team. Every string that
comes from the data or a person (ids, labels, roles, names, model keys) is an unbounded
``Text``: a length limit would be a database error in the middle of an ingest on
PostgreSQL and silently unenforced on SQLite. JSON is stored as text (:class:`JSONText`)
so that NaN metrics round-trip on both (PostgreSQL's ``json`` type refuses NaN).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

#: Where an item sits in the loop: the labelled dataset D_t ("seed": the initial seed plus every item
#: accepted in an earlier iteration), the unlabelled pool, validation, out-of-distribution test, and
#: "candidate" for generated items awaiting review (kept out of every distribution the analysis measures).
ITEM_ROLES: tuple[str, ...] = ("seed", "pool", "val", "ood", "candidate")
#: Where an item came from: original labelled data, retrieved from the pool, or generated.
ITEM_SOURCES: tuple[str, ...] = ("real", "pool", "synthetic")

#: Bumped whenever a table changes, so an old project can be recognised and migrated.
#: 2: the "candidate" role; decision, candidate-set and provenance tables.
#: 3: unbounded text columns, JSON as text, 64-bit seeds, arrays in the database (blobs), run owners.
#: 4: review claims and review sessions (short leases, so several reviewers are offered different items).
SCHEMA_VERSION = 4
#: Reviewer actions. ``undo`` withdraws the same item's latest standing decision.
DECISION_ACTIONS: tuple[str, ...] = ("accept", "reject", "relabel", "flag", "undo")
#: Critique flags a reviewer may attach to any decision.
REVIEW_FLAGS: tuple[str, ...] = ("biased content", "edge case", "ambiguous")


def utcnow() -> dt.datetime:
    """Timezone-aware current time; stored in UTC so that team members agree."""
    return dt.datetime.now(dt.timezone.utc)


class JSONText(TypeDecorator):
    """JSON kept as text on every database, so NaN and infinities round-trip (``json`` refuses them)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else json.dumps(value)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        # A schema-2 SQLite column declared JSON has numeric affinity: a bare number comes back as one.
        return json.loads(value) if isinstance(value, (str, bytes, bytearray)) else value


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSONText, str: Text}


class Meta(Base):
    """Key/value project metadata (name, schema version, primary subgroup attribute, ...)."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[Any] = mapped_column(JSONText)


class Run(Base):
    """One unit of logged work (an ingest, an embedding pass, ...) with its parameters and summary."""

    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(Text, index=True)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(Text, default="running")
    #: ``host:pid:start`` of the process doing the run, so a run left "running" by a dead process is
    #: recognised (and shown as interrupted) the next time the project is opened.
    owner: Mapped[str | None] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    summary: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)


class Item(Base):
    """One data item. ``oracle_label`` is hidden from models and the UI; only a simulated reviewer reads it."""

    __tablename__ = "items"
    __table_args__ = (
        CheckConstraint(f"role IN {ITEM_ROLES}", name="ck_items_role"),
        CheckConstraint(f"source IN {ITEM_SOURCES}", name="ck_items_source"),
    )
    id: Mapped[str] = mapped_column(Text, primary_key=True)
    uri: Mapped[str | None] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text, index=True)
    label: Mapped[str | None] = mapped_column(Text, index=True)
    oracle_label: Mapped[str | None] = mapped_column(Text)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    source: Mapped[str] = mapped_column(Text, default="real")
    iteration_added: Mapped[int] = mapped_column(Integer, default=0)
    content_hash: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EmbeddingSet(Base):
    """The embeddings of the project's items under one model.

    The vectors are a blob in the database (``blobs`` key ``embeddings/<model_key>``), so every
    teammate on a shared database reads the same set and it is written atomically with its row.
    ``path`` names an array file only for sets written before schema 3 and not yet moved.
    """

    __tablename__ = "embedding_sets"
    model_key: Mapped[str] = mapped_column(Text, primary_key=True)
    dim: Mapped[int] = mapped_column(Integer)
    n: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(Text)
    path: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Blob(Base):
    """A named binary value kept in the database (an embedding array, a latent map), stored in chunks."""

    __tablename__ = "blobs"
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    digest: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class BlobChunk(Base):
    """One piece of a :class:`Blob` (pieces keep each value far below PostgreSQL's 1 GB ``bytea`` limit)."""

    __tablename__ = "blob_chunks"
    key: Mapped[str] = mapped_column(ForeignKey("blobs.key", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Iteration(Base):
    """One turn of the refinement loop; later issues fill ``config`` and ``metrics``."""

    __tablename__ = "iterations"
    index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    config: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)


class Decision(Base):
    """One reviewer action on one item: an append-only audit log.

    ``seq`` numbers an item's decisions 1, 2, 3, ...; the unique (item_id, seq) pair is what
    turns two reviewers deciding on the same state into a conflict instead of a silent
    overwrite: both try to write the same ``seq`` and the database refuses the second.
    """

    __tablename__ = "decisions"
    __table_args__ = (
        UniqueConstraint("item_id", "seq", name="uq_decisions_item_seq"),
        CheckConstraint(f"action IN {DECISION_ACTIONS}", name="ck_decisions_action"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    iteration: Mapped[int] = mapped_column(Integer, index=True)
    action: Mapped[str] = mapped_column(Text)
    label: Mapped[str | None] = mapped_column(Text)
    flags: Mapped[list[str]] = mapped_column(JSONText, default=list)
    critique: Mapped[str | None] = mapped_column(Text)
    reviewer: Mapped[str] = mapped_column(Text)
    candidate_set_id: Mapped[int | None] = mapped_column(ForeignKey("candidate_sets.id"))
    score: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CandidateSet(Base):
    """One acquisition for a region (retrieval or generation) and how its candidates were ranked."""

    __tablename__ = "candidate_sets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    iteration: Mapped[int] = mapped_column(Integer, index=True)
    mode: Mapped[str] = mapped_column(Text)
    region: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    strategy: Mapped[str] = mapped_column(Text)
    weights: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    params: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    summary: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Candidate(Base):
    """A ranked candidate within a set, with the score breakdown shown to the reviewer."""

    __tablename__ = "candidates"
    set_id: Mapped[int] = mapped_column(ForeignKey("candidate_sets.id"), primary_key=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id"), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    components: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    suggested_label: Mapped[str | None] = mapped_column(Text)
    via: Mapped[str | None] = mapped_column(Text)


class ReviewClaim(Base):
    """A short lease of one undecided candidate to one reviewer's page, so others are offered other items.

    A claim is advisory: it decides what a page *offers*, while the decision's ``expected_seq``
    stays what guarantees a click acts on what the person saw. It is released when anyone
    decides the item, when its holder moves to another set, and by expiry (``expires_at``)
    when the holder's page stops renewing it (closed tab, lost connection).
    """

    __tablename__ = "review_claims"
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id"), primary_key=True)
    set_id: Mapped[int] = mapped_column(ForeignKey("candidate_sets.id"), index=True)
    #: The browser session (page) holding it; one person may have several.
    holder: Mapped[str] = mapped_column(Text, index=True)
    reviewer: Mapped[str] = mapped_column(Text)
    claimed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)


class ReviewSession(Base):
    """A page reviewing a candidate set now (a heartbeat renewed with its claims), to share the set fairly."""

    __tablename__ = "review_sessions"
    holder: Mapped[str] = mapped_column(Text, primary_key=True)
    set_id: Mapped[int] = mapped_column(ForeignKey("candidate_sets.id"), index=True)
    reviewer: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)


class Provenance(Base):
    """Where a synthetic item came from: generator, parameters, prompt, seed, target region, gate verdict."""

    __tablename__ = "provenance"
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id"), primary_key=True)
    generator: Mapped[str] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    prompt: Mapped[str | None] = mapped_column(Text)
    seed: Mapped[int | None] = mapped_column(BigInteger)  # generator seeds reach 2**32 (int4 overflows)
    target_region: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    intended_label: Mapped[str | None] = mapped_column(Text)
    gate: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


@dataclass(frozen=True)
class ItemRecord:
    """A validated item ready to be written; the plain-data twin of :class:`Item`."""

    id: str
    role: str
    uri: str | None = None
    label: str | None = None
    oracle_label: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    source: str = "real"
    iteration_added: int = 0
    content_hash: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ITEM_ROLES:
            raise ValueError(f"item {self.id!r}: unknown role {self.role!r} (expected one of {', '.join(ITEM_ROLES)})")
        if self.source not in ITEM_SOURCES:
            raise ValueError(f"item {self.id!r}: unknown source {self.source!r} (expected one of {', '.join(ITEM_SOURCES)})")
