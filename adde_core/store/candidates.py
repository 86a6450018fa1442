"""Candidate sets: each acquisition's ranked candidates, stored so a refresh or a second tab sees the same list."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import func, insert, select

from adde_core.errors import AddeError
from adde_core.store.database import Store
from adde_core.store.models import Candidate, CandidateSet, Provenance, utcnow

_SET_COLUMNS = ["id", "iteration", "mode", "region", "strategy", "weights", "params", "summary", "created_at"]


def save_candidate_set(store: Store, *, iteration: int, mode: str, region: dict[str, Any], strategy: str,
                       weights: dict[str, Any], params: dict[str, Any], ranked: pd.DataFrame,
                       summary: dict[str, Any] | None = None) -> int:
    """Store a ranked candidate list in one transaction and return its id.

    ``ranked`` needs ``id``, ``rank``, ``score`` and may have ``suggested_label``, ``via``
    and component columns (``U``, ``Div``, ``Q``, ``alpha_U``, ``beta_Div``, ``gamma_Q``),
    which are kept as the breakdown shown to reviewers.
    """
    component_cols = [c for c in ("U", "Div", "Q", "alpha_U", "beta_Div", "gamma_Q") if c in ranked]
    with store.transaction() as s:
        row = CandidateSet(iteration=iteration, mode=mode, region=region, strategy=strategy, weights=weights,
                           params=params, summary=summary or {}, created_at=utcnow())
        s.add(row)
        s.flush()
        if len(ranked):
            s.execute(insert(Candidate), [
                {"set_id": row.id, "item_id": str(r["id"]), "rank": int(r["rank"]), "score": float(r["score"]),
                 "components": {c: float(r[c]) for c in component_cols},
                 "suggested_label": None if pd.isna(r.get("suggested_label")) else str(r.get("suggested_label")),
                 "via": None if pd.isna(r.get("via")) else str(r.get("via"))}
                for r in ranked.to_dict("records")
            ])
        return row.id


def candidate_sets(store: Store) -> pd.DataFrame:
    """All candidate sets, newest first, with their candidate counts."""
    with store.transaction() as s:
        sets = list(s.scalars(select(CandidateSet).order_by(CandidateSet.id.desc())))
        counts = dict(s.execute(select(Candidate.set_id, func.count()).group_by(Candidate.set_id)).all())
    frame = pd.DataFrame([{c: getattr(r, c) for c in _SET_COLUMNS} for r in sets], columns=_SET_COLUMNS)
    frame["n_candidates"] = [counts.get(i, 0) for i in frame["id"]]
    return frame


def candidate_set(store: Store, set_id: int) -> dict[str, Any]:
    """One candidate set's fields; raises AddeError when it does not exist."""
    with store.transaction() as s:
        row = s.get(CandidateSet, set_id)
        if row is None:
            raise AddeError(f"candidate set {set_id} does not exist in this project")
        return {c: getattr(row, c) for c in _SET_COLUMNS}


def candidates_frame(store: Store, set_id: int) -> pd.DataFrame:
    """The candidates of one set in rank order, with the breakdown spread into columns."""
    with store.transaction() as s:
        rows = list(s.scalars(select(Candidate).where(Candidate.set_id == set_id).order_by(Candidate.rank)))
    frame = pd.DataFrame([{"item_id": r.item_id, "rank": r.rank, "score": r.score, "suggested_label": r.suggested_label,
                           "via": r.via, **r.components} for r in rows])
    if frame.empty:
        frame = pd.DataFrame(columns=["item_id", "rank", "score", "suggested_label", "via"])
    return frame


def save_provenance(store: Store, rows: list[dict[str, Any]]) -> None:
    """Store provenance rows for synthetic items (``item_id``, ``generator``, ``params``, ``prompt``, ``seed``,
    ``target_region``, ``intended_label``, ``gate``)."""
    if rows:
        with store.transaction() as s:
            s.execute(insert(Provenance), [{**r, "created_at": utcnow()} for r in rows])


def provenance_frame(store: Store, item_ids: list[str] | None = None) -> pd.DataFrame:
    """Provenance of synthetic items (all, or ``item_ids``)."""
    cols = ["item_id", "generator", "params", "prompt", "seed", "target_region", "intended_label", "gate", "created_at"]
    stmt = select(Provenance)
    if item_ids is not None:
        stmt = stmt.where(Provenance.item_id.in_(list(item_ids)))
    with store.transaction() as s:
        rows = list(s.scalars(stmt))
    return pd.DataFrame([{c: getattr(r, c) for c in cols} for r in rows], columns=cols)
