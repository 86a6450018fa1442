"""SQLAlchemy table definitions for a project's items, embeddings, runs and iterations.

Only portable column types are used (no SQLite-specific ones) so that the same
schema works on SQLite for one user and on PostgreSQL for a team.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import JSON, CheckConstraint, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Where an item sits in the loop: the labelled dataset D_t ("seed": the initial seed plus every item
#: accepted in an earlier iteration), the unlabelled pool, validation, out-of-distribution test, and
#: "candidate" for generated items awaiting review (kept out of every distribution the analysis measures).
ITEM_ROLES: tuple[str, ...] = ("seed", "pool", "val", "ood", "candidate")
#: Where an item came from: original labelled data, retrieved from the pool, or generated.
ITEM_SOURCES: tuple[str, ...] = ("real", "pool", "synthetic")

#: Bumped whenever a table changes, so an old project can be recognised and migrated.
#: 2: the "candidate" role; decision, candidate-set and provenance tables.
SCHEMA_VERSION = 2
#: Reviewer actions. ``undo`` withdraws the same item's latest standing decision.
DECISION_ACTIONS: tuple[str, ...] = ("accept", "reject", "relabel", "flag", "undo")
#: Critique flags a reviewer may attach to any decision.
REVIEW_FLAGS: tuple[str, ...] = ("biased content", "edge case", "ambiguous")


def utcnow() -> dt.datetime:
    """Timezone-aware current time; stored in UTC so that team members agree."""
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON}


class Meta(Base):
    """Key/value project metadata (name, schema version, primary subgroup attribute, ...)."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)


class Run(Base):
    """One unit of logged work (an ingest, an embedding pass, ...) with its parameters and summary."""

    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="running")
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Item(Base):
    """One data item. ``oracle_label`` is hidden from models and the UI; only a simulated reviewer reads it."""

    __tablename__ = "items"
    __table_args__ = (
        CheckConstraint(f"role IN {ITEM_ROLES}", name="ck_items_role"),
        CheckConstraint(f"source IN {ITEM_SOURCES}", name="ck_items_source"),
    )
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    uri: Mapped[str | None] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(8), index=True)
    label: Mapped[str | None] = mapped_column(String(255), index=True)
    oracle_label: Mapped[str | None] = mapped_column(String(255))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source: Mapped[str] = mapped_column(String(16), default="real")
    iteration_added: Mapped[int] = mapped_column(Integer, default=0)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EmbeddingSet(Base):
    """The embeddings of the project's items under one model; vectors live in an array file."""

    __tablename__ = "embedding_sets"
    model_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    dim: Mapped[int] = mapped_column(Integer)
    n: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Iteration(Base):
    """One turn of the refinement loop; later issues fill ``config`` and ``metrics``."""

    __tablename__ = "iterations"
    index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


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
    action: Mapped[str] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(String(255))
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    critique: Mapped[str | None] = mapped_column(Text)
    reviewer: Mapped[str] = mapped_column(String(128))
    candidate_set_id: Mapped[int | None] = mapped_column(ForeignKey("candidate_sets.id"))
    score: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CandidateSet(Base):
    """One acquisition for a region (retrieval or generation) and how its candidates were ranked."""

    __tablename__ = "candidate_sets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    iteration: Mapped[int] = mapped_column(Integer, index=True)
    mode: Mapped[str] = mapped_column(String(16))
    region: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    strategy: Mapped[str] = mapped_column(String(32))
    weights: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Candidate(Base):
    """A ranked candidate within a set, with the score breakdown shown to the reviewer."""

    __tablename__ = "candidates"
    set_id: Mapped[int] = mapped_column(ForeignKey("candidate_sets.id"), primary_key=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id"), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    components: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    suggested_label: Mapped[str | None] = mapped_column(String(255))
    via: Mapped[str | None] = mapped_column(String(32))


class Provenance(Base):
    """Where a synthetic item came from: generator, parameters, prompt, seed, target region, gate verdict."""

    __tablename__ = "provenance"
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id"), primary_key=True)
    generator: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prompt: Mapped[str | None] = mapped_column(Text)
    seed: Mapped[int | None] = mapped_column(Integer)
    target_region: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    intended_label: Mapped[str | None] = mapped_column(String(255))
    gate: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
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
