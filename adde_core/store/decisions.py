"""Reviewer decisions: written the moment they are made, append-only, with conflicts detected not overwritten."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from adde_core.errors import AddeError
from adde_core.store.database import Store
from adde_core.store.models import DECISION_ACTIONS, REVIEW_FLAGS, Decision, Item, Iteration, ReviewClaim

#: Actions that put an item into D_valid (the items added at the next iteration).
VALID_ACTIONS = ("accept", "relabel")
_STATE_COLUMNS = ["item_id", "seq", "action", "label", "flags", "critique", "reviewer", "created_at",
                  "candidate_set_id", "iteration"]


class DecisionConflict(AddeError):
    """Someone decided on the item after the state this reviewer was looking at.

    Attributes
    ----------
    item_id : str
    current : dict or None
        The standing decision now in the store (action, label, reviewer, created_at, seq).
    """

    def __init__(self, item_id: str, current: dict[str, Any] | None, expected_seq: int) -> None:
        self.item_id = item_id
        self.current = current
        who = (f"{current['reviewer']} chose {current['action']!r}" + (f" ({current['label']})" if current.get("label")
               else "") + f" at {current['created_at']:%H:%M:%S}") if current else "a decision was withdrawn"
        super().__init__(f"{item_id}: changed since you looked at it: {who}. Your decision was not saved; "
                         "look at the current state and decide again if you still disagree.")
        self.expected_seq = expected_seq


@dataclass(frozen=True)
class DecisionRequest:
    """What a reviewer decided about one item, before it is stored."""

    item_id: str
    action: str
    reviewer: str
    label: str | None = None
    flags: tuple[str, ...] = ()
    critique: str | None = None
    expected_seq: int | None = None
    candidate_set_id: int | None = None
    score: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.action not in DECISION_ACTIONS:
            raise AddeError(f"{self.item_id}: unknown action {self.action!r} (use one of {', '.join(DECISION_ACTIONS)})")
        bad = [f for f in self.flags if f not in REVIEW_FLAGS]
        if bad:
            raise AddeError(f"{self.item_id}: unknown flag(s) {bad} (use {', '.join(REVIEW_FLAGS)})")
        if self.action == "relabel" and not self.label:
            raise AddeError(f"{self.item_id}: relabel needs the new label")
        if not self.reviewer.strip():
            raise AddeError(f"{self.item_id}: a decision needs a reviewer name")
        for name in ("label", "critique", "reviewer"):
            if "\x00" in (getattr(self, name) or ""):
                # PostgreSQL cannot store a NUL in text, and no real label or name contains one.
                raise AddeError(f"{self.item_id}: the {name} contains a NUL character; remove it and decide again")


def _as_dict(row: Decision) -> dict[str, Any]:
    return {c: getattr(row, c) for c in _STATE_COLUMNS}


def _standing(rows: Sequence[Decision]) -> Decision | None:
    """Replay one item's decisions in ``seq`` order; ``undo`` withdraws the latest standing one."""
    stack: list[Decision] = []
    for row in rows:
        if row.action == "undo":
            if stack:
                stack.pop()
        else:
            stack.append(row)
    return stack[-1] if stack else None


def record_decision(store: Store, request: DecisionRequest, *, iteration: int | None = None) -> dict[str, Any]:
    """Store one decision now, in its own transaction, or raise :class:`DecisionConflict`.

    Parameters
    ----------
    store
        The project store.
    request
        The decision. ``expected_seq`` is the item's decision count the reviewer saw
        (0: undecided). When it is given and the store has moved on, nothing is written
        and :class:`DecisionConflict` says who decided what. ``None`` means "append after
        whatever is there" (batch tools that own the items, e.g. the oracle).
    iteration
        The loop iteration the decision belongs to (default: the current one).

    Returns
    -------
    dict
        The stored decision (``seq``, ``created_at``, ...). A request that repeats the decision
        stored right after its ``expected_seq`` (same reviewer, action, label, flags, critique:
        a double-click) writes nothing and returns that decision with ``repeat=True``.
    """
    # The current iteration is read under the write lock, so a decision can never be tagged with an
    # iteration that a concurrent fold-in has just closed (it would then be counted by no iteration).
    with store.locked_transaction() as s:
        it = int(s.scalar(select(func.max(Iteration.index))) or 0) if iteration is None else iteration
        if s.get(Item, request.item_id) is None:
            raise AddeError(f"{request.item_id}: no such item in this project")
        rows = list(s.scalars(select(Decision).where(Decision.item_id == request.item_id).order_by(Decision.seq)))
        latest = rows[-1].seq if rows else 0
        if request.expected_seq is not None and request.expected_seq != latest:
            repeat = _repeat_of(rows, request)
            if repeat is not None:
                # The same person sent the same decision from the same state again (a double-click, a
                # click resent while the page re-ran): it is stored once, and this call confirms it.
                return {**_as_dict(repeat), "repeat": True}
            standing = _standing(rows)
            raise DecisionConflict(request.item_id, _as_dict(standing) if standing else None, request.expected_seq)
        if request.action == "undo" and _standing(rows) is None:
            raise AddeError(f"{request.item_id}: nothing to undo")
        row = Decision(item_id=request.item_id, seq=latest + 1, iteration=it, action=request.action,
                       label=request.label, flags=list(request.flags), critique=request.critique or None,
                       reviewer=request.reviewer.strip(), candidate_set_id=request.candidate_set_id,
                       score=request.score)
        try:
            s.add(row)
            s.flush()
        except IntegrityError as exc:
            # Another writer stored the same (item, seq) between our read and our write.
            raise DecisionConflict(request.item_id, None, latest) from exc
        # Decided: nobody needs to hold the item any more (an undo makes it free for whoever claims next).
        s.execute(delete(ReviewClaim).where(ReviewClaim.item_id == request.item_id))
        return _as_dict(row)


def _repeat_of(rows: Sequence[Decision], request: DecisionRequest) -> Decision | None:
    """The stored decision ``request`` repeats: made right after ``expected_seq``, by the same reviewer, with the same content."""
    if request.expected_seq is None or request.expected_seq >= len(rows) or request.expected_seq < 0:
        return None
    after = next((r for r in rows if r.seq == request.expected_seq + 1), None)
    if after is None:
        return None
    same = (after.action == request.action and after.reviewer == request.reviewer.strip()
            and (after.label or None) == (request.label or None) and list(after.flags or []) == list(request.flags)
            and (after.critique or None) == (request.critique or None))
    return after if same else None


def record_decisions(store: Store, requests: Iterable[DecisionRequest], *,
                     iteration: int | None = None) -> tuple[list[dict[str, Any]], list[DecisionConflict]]:
    """Store several decisions, each in its own transaction so one conflict does not undo the rest.

    Returns the stored decisions and the conflicts, in input order.
    """
    done, conflicts = [], []
    for request in requests:
        try:
            done.append(record_decision(store, request, iteration=iteration))
        except DecisionConflict as exc:
            conflicts.append(exc)
    return done, conflicts


def decision_states(store: Store, item_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """The standing decision per item (after undos), plus ``n_decisions`` = the latest ``seq``.

    Items never decided are absent. ``n_decisions`` is what a reviewer passes back as
    ``expected_seq``; items whose only decisions were undone appear with ``action`` None.
    """
    with store.transaction() as s:
        return standing_decisions(s, item_ids)


def standing_decisions(session: Session, item_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """:func:`decision_states` inside an open session (so a caller can read and write in one transaction)."""
    stmt = select(Decision).order_by(Decision.item_id, Decision.seq)
    ids = None if item_ids is None else list(item_ids)
    if ids is not None:
        stmt = stmt.where(Decision.item_id.in_(ids))
    out = []
    rows = list(session.scalars(stmt))
    by_item: dict[str, list[Decision]] = {}
    for row in rows:
        by_item.setdefault(row.item_id, []).append(row)
    for item_id, item_rows in by_item.items():
        standing = _standing(item_rows)
        state = _as_dict(standing) if standing else {c: None for c in _STATE_COLUMNS} | {"item_id": item_id}
        state["n_decisions"] = item_rows[-1].seq
        out.append(state)
    return pd.DataFrame(out, columns=_STATE_COLUMNS + ["n_decisions"])


def valid_items(store: Store, *, iteration: int | None = None) -> pd.DataFrame:
    """D_valid: items whose standing decision in ``iteration`` is accept or relabel, with the label to use."""
    it = store.current_iteration() if iteration is None else iteration
    states = decision_states(store)
    states = states[states["action"].isin(VALID_ACTIONS) & (states["iteration"] == it)]
    return states[["item_id", "action", "label", "reviewer", "flags", "critique", "created_at"]].reset_index(drop=True)


def decision_log(store: Store) -> pd.DataFrame:
    """Every decision ever made, oldest first: the audit log."""
    with store.transaction() as s:
        rows = list(s.scalars(select(Decision).order_by(Decision.id)))
    frame = pd.DataFrame([{"id": r.id, **_as_dict(r), "score": r.score} for r in rows],
                         columns=["id", *_STATE_COLUMNS, "score"])
    return frame


def decision_count(store: Store, *, iteration: int | None = None) -> int:
    """How many decisions were stored (in ``iteration`` when given)."""
    stmt = select(func.count()).select_from(Decision)
    if iteration is not None:
        stmt = stmt.where(Decision.iteration == iteration)
    with store.transaction() as s:
        return int(s.scalar(stmt) or 0)

