"""Iteration rows in the store: the atomic fold-in of D_valid, phases, metrics, history and what was reviewed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from sqlalchemy import func, select, update

from adde_core.errors import AddeError, IterationClosed
from adde_core.store.database import FOREIGN_LEASE, Store, as_utc, describe_owner, owner_alive, thread_owner
from adde_core.store.decisions import VALID_ACTIONS, standing_decisions
from adde_core.store.models import CandidateSet, Item, Iteration, Provenance, utcnow

__all__ = ["REVIEWED_COLUMNS", "fold_in", "iteration_phase", "iteration_rows", "reviewed_frame", "save_iteration_metrics"]

#: Columns of :func:`reviewed_frame` (and of every loop storage's ``reviewed``).
REVIEWED_COLUMNS = ["item_id", "action", "label", "flags", "reviewer", "set_id", "mode", "region_id", "alpha", "beta",
             "gamma", "strategy", "generator"]


def fold_in(store: Store, iteration: int, config: Mapping[str, Any], *, by: str = "") -> dict[str, int]:
    """Close ``iteration``: D_{t+1} = D_t ∪ D_valid, and open t + 1 with phase ``folded``; one locked transaction.

    D_valid is read inside the same transaction that writes it, under the store's write lock,
    so a decision made concurrently either lands before the fold-in (and is folded in) or
    after it (and belongs to t + 1): it is never lost, and a rejected item never joins.
    Accepted and relabelled items get role ``seed``, the reviewer's label and
    ``iteration_added = t + 1``; their source (pool, synthetic) is kept for provenance.

    The new row records this thread as the close's owner (``closing_owner``): until the close
    reaches ``adapted``, only the owner (or, once it died, whoever retries) may write its phases.

    Raises
    ------
    IterationClosed
        When ``iteration`` is not the current one (someone else closed it first).
    """
    from sqlalchemy.exc import IntegrityError

    try:
        return _fold_in(store, iteration, config, by=by)
    except IntegrityError as exc:  # cannot happen under the lock; never let a raw database error through
        raise IterationClosed(f"iteration {iteration} was closed by someone else at the same moment; nothing was "
                              "changed: reload to see its results") from exc


def _fold_in(store: Store, iteration: int, config: Mapping[str, Any], *, by: str) -> dict[str, int]:
    with store.locked_transaction() as s:
        current = int(s.scalar(select(func.max(Iteration.index))) or 0)
        if current != iteration:
            row = s.get(Iteration, current)
            who = (row.config or {}).get("closed_by") if row is not None else None
            raise IterationClosed(
                f"iteration {iteration} was already closed{f' by {who}' if who else ''}; the current iteration is "
                f"{current}. Nothing was changed: reload to see its results.")
        states = standing_decisions(s)
        valid = states[states["action"].isin(VALID_ACTIONS) & (states["iteration"] == iteration)]
        sources = dict(s.execute(select(Item.id, Item.source).where(Item.id.in_(list(valid["item_id"])))).all())
        added: dict[str, int] = {}
        for item_id, label in zip(valid["item_id"], valid["label"]):
            s.execute(update(Item).where(Item.id == item_id).values(role="seed", label=label,
                                                                    iteration_added=iteration + 1))
            added[sources[item_id]] = added.get(sources[item_id], 0) + 1
        s.get(Iteration, iteration).finished_at = utcnow()
        s.add(Iteration(index=iteration + 1, started_at=utcnow(), config={**dict(config), "phase": "folded",
                                                                          "closed_by": by,
                                                                          "closing_owner": thread_owner()},
                        metrics={"added": added}))
    return added


def iteration_phase(store: Store, iteration: int) -> str | None:
    """The phase recorded on an iteration row (``folded``, ``measured``, ``adapted``), or None."""
    with store.transaction() as s:
        row = s.get(Iteration, iteration)
        return None if row is None else (row.config or {}).get("phase")


def save_iteration_metrics(store: Store, iteration: int, metrics: Mapping[str, Any], *, phase: str) -> None:
    """Merge ``metrics`` into the iteration's row and record its phase, in one locked transaction.

    While a close is in progress (phase ``folded`` or ``measured``) only its owner writes: a
    second close that found the same half-closed iteration gets :class:`IterationClosed` naming
    who is closing it, unless that owner has died (then this caller takes the close over). A
    finished close (``adapted``) is never moved back to an earlier phase.
    """
    with store.locked_transaction() as s:
        row = s.get(Iteration, iteration)
        if row is None:
            raise AddeError(f"iteration {iteration} does not exist in this project")
        config = dict(row.config or {})
        current = config.get("phase")
        who = config.get("closed_by") or "another session"
        if current in ("folded", "measured"):
            owner, me = config.get("closing_owner"), thread_owner()
            alive = owner_alive(owner) if owner and owner != me else False
            if alive is None:  # on another machine: honour it for a while, then assume it died
                alive = utcnow() - as_utc(row.started_at) < FOREIGN_LEASE
            if alive:
                raise IterationClosed(
                    f"iteration {iteration - 1} is being closed by {who} ({describe_owner(owner)}, since "
                    f"{as_utc(row.started_at):%H:%M:%S} UTC); nothing was changed: wait for it to finish, then reload")
            config["closing_owner"] = me
        elif current == "adapted" and phase != "adapted":
            raise IterationClosed(f"iteration {iteration - 1} was already closed by {who}; nothing was changed: "
                                  "reload to see its results")
        row.metrics = {**(row.metrics or {}), **dict(metrics)}
        row.config = {**config, "phase": phase}


def iteration_rows(store: Store) -> list[dict[str, Any]]:
    """Every iteration row as a dict (``index``, ``started_at``, ``finished_at``, ``config``, ``metrics``)."""
    with store.transaction() as s:
        return [{"index": r.index, "started_at": r.started_at, "finished_at": r.finished_at,
                 "config": r.config or {}, "metrics": r.metrics or {}}
                for r in s.scalars(select(Iteration).order_by(Iteration.index))]


def reviewed_frame(store: Store, iteration: int) -> pd.DataFrame:
    """Standing decisions of ``iteration`` with the candidate set each came from and the weights that ranked it."""
    with store.transaction() as s:
        states = standing_decisions(s)
        states = states[states["action"].notna() & (states["iteration"] == iteration)]
        set_ids = [int(x) for x in states["candidate_set_id"].dropna().unique()]
        sets = {r.id: r for r in s.scalars(select(CandidateSet).where(CandidateSet.id.in_(set_ids)))}
        generators = dict(s.execute(select(Provenance.item_id, Provenance.generator)
                                    .where(Provenance.item_id.in_(list(states["item_id"])))).all())
        rows = []
        for r in states.itertuples():
            cs = sets.get(int(r.candidate_set_id)) if pd.notna(r.candidate_set_id) else None
            w = (cs.weights or {}) if cs is not None else {}
            gen = generators.get(r.item_id)
            rows.append({"item_id": r.item_id, "action": r.action, "label": r.label, "flags": list(r.flags or []),
                         "reviewer": r.reviewer, "set_id": None if cs is None else cs.id,
                         "mode": None if cs is None else cs.mode,
                         "region_id": None if cs is None else (cs.region or {}).get("region_id"),
                         "alpha": w.get("alpha"), "beta": w.get("beta"), "gamma": w.get("gamma"),
                         "strategy": None if cs is None else cs.strategy,
                         "generator": None if gen is None else str(gen).split("@")[0]})
    return pd.DataFrame(rows, columns=REVIEWED_COLUMNS)
