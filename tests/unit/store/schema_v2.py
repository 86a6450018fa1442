"""The schema-2 tables exactly as ADDE 0.1 wrote them (bounded VARCHARs, JSON, array files): migration fixtures."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

ROLES = ("seed", "pool", "val", "ood", "candidate")
SOURCES = ("real", "pool", "synthetic")
ACTIONS = ("accept", "reject", "relabel", "flag", "undo")


def v2_metadata() -> MetaData:
    """A fresh MetaData holding the schema-2 tables."""
    md = MetaData()
    Table("meta", md, Column("key", String(128), primary_key=True), Column("value", JSON))
    Table("runs", md, Column("id", Integer, primary_key=True, autoincrement=True), Column("kind", String(32), index=True),
          Column("started_at", DateTime(timezone=True)), Column("finished_at", DateTime(timezone=True)),
          Column("status", String(16)), Column("params", JSON), Column("summary", JSON))
    Table("items", md, Column("id", String(255), primary_key=True), Column("uri", Text),
          Column("role", String(8), index=True), Column("label", String(255), index=True),
          Column("oracle_label", String(255)), Column("attributes", JSON), Column("source", String(16)),
          Column("iteration_added", Integer), Column("content_hash", String(64)),
          Column("run_id", ForeignKey("runs.id")), Column("created_at", DateTime(timezone=True)),
          CheckConstraint(f"role IN {ROLES}", name="ck_items_role"),
          CheckConstraint(f"source IN {SOURCES}", name="ck_items_source"))
    Table("embedding_sets", md, Column("model_key", String(255), primary_key=True), Column("dim", Integer),
          Column("n", Integer), Column("fingerprint", String(64)), Column("path", Text, nullable=False),
          Column("run_id", ForeignKey("runs.id")), Column("created_at", DateTime(timezone=True)))
    Table("iterations", md, Column("index", Integer, primary_key=True, autoincrement=False),
          Column("started_at", DateTime(timezone=True)), Column("finished_at", DateTime(timezone=True)),
          Column("config", JSON), Column("metrics", JSON))
    Table("candidate_sets", md, Column("id", Integer, primary_key=True, autoincrement=True),
          Column("iteration", Integer, index=True), Column("mode", String(16)), Column("region", JSON),
          Column("strategy", String(32)), Column("weights", JSON), Column("params", JSON), Column("summary", JSON),
          Column("created_at", DateTime(timezone=True)))
    Table("decisions", md, Column("id", Integer, primary_key=True, autoincrement=True),
          Column("item_id", ForeignKey("items.id"), index=True), Column("seq", Integer),
          Column("iteration", Integer, index=True), Column("action", String(16)), Column("label", String(255)),
          Column("flags", JSON), Column("critique", Text), Column("reviewer", String(128)),
          Column("candidate_set_id", ForeignKey("candidate_sets.id")), Column("score", JSON),
          Column("created_at", DateTime(timezone=True)),
          UniqueConstraint("item_id", "seq", name="uq_decisions_item_seq"),
          CheckConstraint(f"action IN {ACTIONS}", name="ck_decisions_action"))
    Table("candidates", md, Column("set_id", ForeignKey("candidate_sets.id"), primary_key=True),
          Column("item_id", ForeignKey("items.id"), primary_key=True), Column("rank", Integer), Column("score", Float),
          Column("components", JSON), Column("suggested_label", String(255)), Column("via", String(32)))
    Table("provenance", md, Column("item_id", ForeignKey("items.id"), primary_key=True),
          Column("generator", String(64)), Column("params", JSON), Column("prompt", Text), Column("seed", Integer),
          Column("target_region", JSON), Column("intended_label", String(255)), Column("gate", JSON),
          Column("created_at", DateTime(timezone=True)))
    return md
