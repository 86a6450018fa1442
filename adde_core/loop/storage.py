"""Where the loop keeps its state: the protocol the engine writes through, and the in-memory storage of simulations.

The engine (:mod:`adde_core.loop.engine`) reads a :class:`~adde_core.working_set.WorkingSet`
and writes proposals, decisions, fold-ins and metrics through a :class:`LoopStorage`. A project
uses :class:`adde_core.loop.store_storage.StoreStorage` (its database and folder); a simulation uses
:class:`MemoryStorage`, which holds the same things in arrays so thousands of rounds stay fast.
Only the storage and the reviewer differ between the app and a simulation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from adde_core.errors import IterationClosed
from adde_core.store.decisions import VALID_ACTIONS
from adde_core.store.iterations import REVIEWED_COLUMNS
from adde_core.working_set import WorkingSet

if TYPE_CHECKING:
    from adde_core.acquisition.acquire import Proposal
    from adde_core.acquisition.generation.base import GeneratedBatch
    from adde_core.loop.fitted import FittedStore
    from adde_core.store.decisions import DecisionRequest

__all__ = ["FREE_REVIEWERS", "PHASES", "REVIEWED_COLUMNS", "LoopStorage", "MemoryStorage", "IterationClosed"]

#: Reviewers whose decisions cost no label: the head pseudo-labelling itself, label-preserving augmentation.
PSEUDO_REVIEWER = "pseudo-label (no review)"
AUGMENT_REVIEWER = "augmentation (no review)"
FREE_REVIEWERS = frozenset({PSEUDO_REVIEWER, AUGMENT_REVIEWER})
#: The states an iteration row moves through while it is being closed; "adapted" is complete.
PHASES = ("folded", "measured", "adapted")


class LoopStorage(Protocol):
    """What the engine reads and writes. Implemented by :class:`MemoryStorage` and ``StoreStorage``."""

    subgroup: str | None
    #: Where fitted heads and reference spaces are kept between processes (None: nowhere, refit per process).
    fitted: "FittedStore | None"

    def working_set(self) -> WorkingSet:
        """The current items, embeddings, D_valid and decided items."""

    def save_proposal(self, proposal: "Proposal", iteration: int) -> int:
        """Store a ranked candidate set (with the whole ranking result) and return its id."""

    def register_generated(self, batch: "GeneratedBatch", kept: np.ndarray, vectors: np.ndarray,
                           provenance: list[dict[str, Any]]) -> list[str]:
        """Add generated images ``batch.images[kept]`` with their vectors as ``candidate`` items; return the ids."""

    def record(self, decisions: Sequence["DecisionRequest"]) -> None:
        """Store decisions (each lands in the iteration that is current when it is written)."""

    def reviewed(self, iteration: int) -> pd.DataFrame:
        """Standing decisions of ``iteration`` joined with the candidate set each came from (``REVIEWED_COLUMNS``)."""

    def fold_in(self, iteration: int, config: Mapping[str, Any]) -> dict[str, int]:
        """D_{t+1} = D_t ∪ D_valid atomically, open iteration t + 1; raise :class:`IterationClosed` if t is not current."""

    def phase(self, iteration: int) -> str | None:
        """Where closing ``iteration`` got to (None: it was opened but not closed into)."""

    def save_metrics(self, iteration: int, metrics: Mapping[str, Any], *, phase: str) -> None:
        """Merge ``metrics`` into the iteration's row and record its phase."""

    def history(self) -> pd.DataFrame:
        """One row per iteration with every recorded metric."""

    def iteration_rows(self) -> list[dict[str, Any]]:
        """Every iteration row as a dict (``index``, ``config``, ``metrics``, times)."""

    def get_meta(self, key: str, default: Any = None) -> Any:
        """A JSON value kept with the loop (adaptive state, stopping rules)."""

    def set_meta(self, key: str, value: Any) -> None:
        """Set a JSON value kept with the loop."""


def history_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The history table from iteration rows (``index``, ``metrics``, ``config``, times)."""
    data = [{"iteration": r["index"], "started_at": r.get("started_at"), "finished_at": r.get("finished_at"),
             **{k: v for k, v in (r.get("metrics") or {}).items() if not isinstance(v, (dict, list))},
             **{f"added_{k}": v for k, v in (r.get("metrics") or {}).get("added", {}).items()},
             "effects": (r.get("metrics") or {}).get("effects", []), "config": r.get("config") or {}} for r in rows]
    return pd.DataFrame(data)


class MemoryStorage:
    """Loop storage in arrays: the simulation's stand-in for a project's database.

    Parameters
    ----------
    ids, X, role, label, source : arrays
        As in :class:`WorkingSet` (pool rows carry no label here: the oracle holds them).
    groups, paths : arrays, optional
    subgroup : str, optional
        Name of the subgroup attribute ``groups`` holds.
    model_key : str
    """

    def __init__(self, ids: np.ndarray, X: np.ndarray, role: np.ndarray, label: np.ndarray, source: np.ndarray, *,
                 groups: np.ndarray | None = None, paths: np.ndarray | None = None, subgroup: str | None = None,
                 model_key: str = "memory") -> None:
        self.ids = np.asarray(ids, dtype=str).astype(object)
        self.X = np.ascontiguousarray(X, dtype=np.float32)
        self.role = np.asarray(role, dtype=object)
        self.label = np.asarray(label, dtype=object).copy()
        self.source = np.asarray(source, dtype=object)
        self.groups = None if groups is None else np.asarray(groups, dtype=object)
        self.paths = None if paths is None else np.asarray(paths, dtype=object)
        self.subgroup = subgroup
        self.model_key = model_key
        self.fitted: "FittedStore | None" = None  # a simulation lives in one process: the memo is enough
        self.sets: list[dict[str, Any]] = []
        self.decisions: dict[str, dict[str, Any]] = {}   # standing decision per item
        self.spent_by_iteration: dict[int, int] = {}
        self.generator_of: dict[str, str] = {}
        self.images: dict[str, np.ndarray] = {}
        self.iterations: list[dict[str, Any]] = [{"index": 0, "metrics": {}, "config": {}, "phase": None}]
        self.meta: dict[str, Any] = {}
        self._revision = 0
        self._ws: tuple[int, WorkingSet] | None = None

    @property
    def current(self) -> int:
        return int(self.iterations[-1]["index"])

    def working_set(self) -> WorkingSet:
        if self._ws is not None and self._ws[0] == self._revision:
            return self._ws[1]
        t = self.current
        pending = {i: d["label"] for i, d in self.decisions.items() if d["iteration"] == t and d["action"] in
                   VALID_ACTIONS}
        ambiguous = frozenset(i for i, d in self.decisions.items() if "ambiguous" in d["flags"])
        spent = sum(n for it, n in self.spent_by_iteration.items() if it < t)
        ws = WorkingSet(ids=self.ids.astype(str), X=self.X, role=self.role.astype(str), label=self.label,
                        source=self.source.astype(str),
                        groups=None if self.groups is None else self.groups.astype(str), paths=self.paths,
                        pending=pending, decided=frozenset(self.decisions), iteration=t, model_key=self.model_key,
                        fingerprint=f"memory-{len(self.ids)}", labels_spent=spent, ambiguous=ambiguous)
        self._ws = (self._revision, ws)
        return ws

    def _changed(self) -> None:
        self._revision += 1

    def save_proposal(self, proposal: "Proposal", iteration: int) -> int:
        self.sets.append({"id": len(self.sets) + 1, "iteration": iteration, "mode": proposal.mode,
                          "region_id": proposal.region.get("region_id"), "weights": proposal.weights,
                          "strategy": proposal.strategy, "ids": list(map(str, proposal.frame["id"]))})
        return len(self.sets)

    def register_generated(self, batch: "GeneratedBatch", kept: np.ndarray, vectors: np.ndarray,
                           provenance: list[dict[str, Any]]) -> list[str]:
        start = len(self.ids)
        new = [f"gen-{start + j}" for j in range(len(kept))]
        self.ids = np.concatenate([self.ids, np.asarray(new, dtype=object)])
        self.X = np.concatenate([self.X, np.asarray(vectors, dtype=np.float32)])
        self.role = np.concatenate([self.role, np.full(len(new), "candidate", dtype=object)])
        self.label = np.concatenate([self.label, np.full(len(new), None, dtype=object)])
        self.source = np.concatenate([self.source, np.full(len(new), "synthetic", dtype=object)])
        if self.groups is not None:
            self.groups = np.concatenate([self.groups, np.full(len(new), "(none)", dtype=object)])
        if self.paths is not None:
            self.paths = np.concatenate([self.paths, np.full(len(new), None, dtype=object)])
        for item_id, prov, k in zip(new, provenance, kept):
            self.generator_of[item_id] = str(prov.get("generator", "")).split("@")[0]
            self.images[item_id] = batch.images[int(k)]
        self._changed()
        return new

    def record(self, decisions: Sequence["DecisionRequest"]) -> None:
        t = self.current
        for d in decisions:
            self.decisions[d.item_id] = {"action": d.action, "label": d.label, "flags": tuple(d.flags),
                                         "reviewer": d.reviewer, "set_id": d.candidate_set_id, "iteration": t}
            if d.reviewer not in FREE_REVIEWERS:
                self.spent_by_iteration[t] = self.spent_by_iteration.get(t, 0) + 1
        self._changed()

    def reviewed(self, iteration: int) -> pd.DataFrame:
        sets = {s["id"]: s for s in self.sets}
        rows = []
        for item_id, d in self.decisions.items():
            if d["iteration"] != iteration:
                continue
            s = sets.get(d["set_id"], {})
            w = s.get("weights", {})
            rows.append({"item_id": item_id, "action": d["action"], "label": d["label"], "flags": list(d["flags"]),
                         "reviewer": d["reviewer"], "set_id": d["set_id"], "mode": s.get("mode"),
                         "region_id": s.get("region_id"), "alpha": w.get("alpha"), "beta": w.get("beta"),
                         "gamma": w.get("gamma"), "strategy": s.get("strategy"),
                         "generator": self.generator_of.get(item_id)})
        # In item-id order, as the database returns them, so anything computed from the order
        # (ties in counts, the order of random draws) is the same on both storages.
        return pd.DataFrame(rows, columns=REVIEWED_COLUMNS).sort_values("item_id", kind="stable").reset_index(drop=True)

    def fold_in(self, iteration: int, config: Mapping[str, Any]) -> dict[str, int]:
        if iteration != self.current:
            raise IterationClosed(f"iteration {iteration} was already closed (the current one is {self.current})")
        ws = self.working_set()
        added: dict[str, int] = {}
        for item_id, label in ws.pending.items():
            r = ws.index[item_id]
            self.role[r], self.label[r] = "seed", label
            added[str(self.source[r])] = added.get(str(self.source[r]), 0) + 1
        self.iterations[-1]["finished"] = True
        self.iterations.append({"index": iteration + 1, "metrics": {"added": added}, "config": dict(config),
                                "phase": "folded"})
        self._changed()
        return added

    def phase(self, iteration: int) -> str | None:
        return self.iterations[iteration]["phase"] if iteration < len(self.iterations) else None

    def save_metrics(self, iteration: int, metrics: Mapping[str, Any], *, phase: str) -> None:
        row = self.iterations[iteration]
        row["metrics"] = {**row["metrics"], **metrics}
        row["phase"] = phase

    def history(self) -> pd.DataFrame:
        return history_frame(self.iterations)

    def iteration_rows(self) -> list[dict[str, Any]]:
        return self.iterations

    def get_meta(self, key: str, default: Any = None) -> Any:
        return self.meta.get(key, default)

    def set_meta(self, key: str, value: Any) -> None:
        self.meta[key] = value
