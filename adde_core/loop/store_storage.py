"""Loop storage on a project's store and folder: what the app's loop (a person, or oracle stepping) writes through."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from adde_core.errors import AddeError
from adde_core.loop.fitted import FittedStore
from adde_core.loop.storage import FREE_REVIEWERS, VALID_ACTIONS, history_frame
from adde_core.working_set import WorkingSet
from adde_core.memo import Memo
from adde_core.store import candidates as candidate_store
from adde_core.store import iterations as iteration_store
from adde_core.store.database import data_fingerprint, slugify
from adde_core.store.decisions import decision_states, record_decisions

if TYPE_CHECKING:
    from adde_core.acquisition.acquire import Proposal
    from adde_core.acquisition.generation.base import GeneratedBatch
    from adde_core.store.database import StoredEmbeddings
    from adde_core.store.decisions import DecisionRequest
    from adde_core.workspace import Workspace

__all__ = ["SUBGROUP_KEY", "ItemArrays", "StoreStorage", "build_working_set", "item_arrays"]

#: Store meta key naming the item attribute used as the subgroup (fairness, colour-by).
SUBGROUP_KEY = "subgroup_attribute"


@dataclass(frozen=True, eq=False)
class ItemArrays:
    """The part of a working set that only changes with the items and the embedding set (not with decisions).

    Reading it costs seconds on a project of a few thousand items (the embedding matrix, every
    item row with its JSON attributes, a path per image), so the storage keeps it by
    :func:`adde_core.store.revision.items_revision` and rebuilds only the decision-dependent rest
    after a review click.
    """

    ids: np.ndarray
    X: np.ndarray
    role: np.ndarray
    label: np.ndarray
    source: np.ndarray
    groups: np.ndarray | None
    paths: np.ndarray | None
    fingerprint: str


def item_arrays(workspace: "Workspace", model_key: str, stored: "StoredEmbeddings | None" = None) -> ItemArrays:
    """Read the items and embeddings of ``model_key`` aligned row by row (oracle labels are never read).

    ``stored`` is the embedding set when the caller already holds it (it is read from the store otherwise).
    """
    store = workspace.store
    stored = stored or store.load_embeddings(model_key)
    if stored is None:
        have = ", ".join(store.embedding_sets()["model"]) or "none"
        raise AddeError(f"no embeddings for {model_key!r} in this project (have: {have}); run embed first")
    items = store.items_frame().set_index("id").reindex(stored.ids)
    role = items["role"].fillna("unknown").astype(str).to_numpy()
    label = items["label"].astype(object).where(items["label"].notna(), None).to_numpy()
    subgroup = store.get_meta(SUBGROUP_KEY)
    groups = None
    if subgroup and subgroup in items.columns:
        groups = items[subgroup].astype(object).where(items[subgroup].notna(), "(none)").astype(str).to_numpy()
    uris = items["uri"].to_numpy()
    paths = None
    if any(isinstance(u, str) for u in uris):
        paths = np.asarray(workspace.resolve_uris(uris), dtype=object)
    return ItemArrays(ids=np.asarray(stored.ids, dtype=str), X=stored.vectors, role=role, label=label,
                      source=items["source"].fillna("real").astype(str).to_numpy(), groups=groups, paths=paths,
                      fingerprint=stored.fingerprint)


def build_working_set(workspace: "Workspace", model_key: str, items: ItemArrays | None = None) -> WorkingSet:
    """Read the working set of ``model_key`` from a project's store (oracle labels are never read).

    ``items`` (from :func:`item_arrays`, still current) saves re-reading the items and embeddings.
    """
    store = workspace.store
    items = items or item_arrays(workspace, model_key)
    t = store.current_iteration()
    states = decision_states(store)
    standing = states[states["action"].notna()]
    pending = standing[standing["action"].isin(VALID_ACTIONS) & (standing["iteration"] == t)]
    spent = standing[(standing["iteration"] < t) & ~standing["reviewer"].isin(FREE_REVIEWERS)]
    ambiguous = frozenset(standing["item_id"][[isinstance(f, list) and "ambiguous" in f for f in standing["flags"]]])
    # The arrays are shared by every working set of this item revision: a WorkingSet is read-only.
    return WorkingSet(ids=items.ids, X=items.X, role=items.role, label=items.label, source=items.source,
                      groups=items.groups, paths=items.paths, pending=dict(zip(pending["item_id"], pending["label"])),
                      decided=frozenset(standing["item_id"]), iteration=t, model_key=model_key,
                      fingerprint=items.fingerprint, labels_spent=int(len(spent)), ambiguous=ambiguous)


class StoreStorage:
    """The :class:`~adde_core.loop.storage.LoopStorage` of a project: its database plus its folder.

    Parameters
    ----------
    workspace : Workspace
    model_key : str
        The embedding space the loop runs in.
    memo : Memo
        The project's memo; working sets are kept by store revision.
    reviewer : str
        Recorded as who closed an iteration.
    """

    def __init__(self, workspace: "Workspace", model_key: str, memo: Memo, *, reviewer: str = "") -> None:
        self.workspace = workspace
        self.store = workspace.store
        self.model_key = model_key
        self.memo = memo
        self.reviewer = reviewer
        self._dropped: dict[int, str] = {}
        # Fitted heads and reference spaces, next to the stored analysis of this embedding space.
        self.fitted = FittedStore(workspace.root / "analysis" / slugify(model_key))

    @property
    def subgroup(self) -> str | None:
        return self.store.get_meta(SUBGROUP_KEY)

    def working_set(self) -> WorkingSet:
        # The subgroup attribute is a meta value, outside the store's revision: choosing another one
        # must give a working set with the other groups, not the cached one.
        key = (str(self.workspace.root), self.model_key, self.store.revision(), self.store.get_meta(SUBGROUP_KEY))
        return self.memo.get("working_set", key, lambda: build_working_set(self.workspace, self.model_key,
                                                                           self.item_arrays()))

    def item_arrays(self) -> ItemArrays:
        """The items and embeddings, memoised by the items' revision (a decision does not re-read them)."""
        from adde_core.store.revision import items_revision

        revision = items_revision(self.store, self.model_key)
        key = (str(self.workspace.root), self.model_key, self.store.get_meta(SUBGROUP_KEY), revision)
        return self.memo.get("item_arrays", key, lambda: item_arrays(self.workspace, self.model_key,
                                                                     self.embeddings(revision[3])))

    def embeddings(self, fingerprint: str | None) -> "StoredEmbeddings | None":
        """The embedding set with this fingerprint, read once (a fold-in changes roles, not vectors)."""
        if fingerprint is None:
            return None
        key = (str(self.workspace.root), self.model_key, fingerprint)
        stored = self.memo.get("embeddings", key, lambda: self.store.load_embeddings(self.model_key))
        return stored if stored is not None and stored.fingerprint == fingerprint else None

    def save_proposal(self, proposal: "Proposal", iteration: int) -> int:
        summary = dict(proposal.summary)
        if proposal.mode == "generate" and self._dropped:
            summary["dropped"] = [{**d, "uri": self._dropped.get(int(d.get("index", -1)))}
                                  for d in summary.get("dropped", [])]
            self._dropped = {}
        return candidate_store.save_candidate_set(
            self.store, iteration=iteration, mode=proposal.mode, region=dict(proposal.region),
            strategy=proposal.strategy, weights=proposal.weights,
            params={**dict(proposal.params), "ranking": dict(proposal.ranking)}, ranked=proposal.frame,
            summary=summary)

    def register_generated(self, batch: "GeneratedBatch", kept: np.ndarray, vectors: np.ndarray,
                           provenance: list[dict[str, Any]]) -> list[str]:
        """Save the images as PNGs (dropped ones under ``dropped/``), add the kept ones as items, extend the embeddings.

        Only the new vectors are added to the embedding set (nothing else is re-embedded), and
        the set's fingerprint is the one a full re-embed would compute, so it stays "up to date".
        """
        from adde_core.embedding import file_sha1
        from adde_core.store.models import ItemRecord

        ws = self.working_set()
        token = f"{ws.iteration}-{time.time_ns() // 1_000_000:x}"
        folder = self.workspace.data_dir / "synthetic" / token
        paths = batch.save_pngs(folder, prefix="syn")
        kept_set = {int(k) for k in kept}
        self._dropped = {}
        for i, path in enumerate(paths):
            if i not in kept_set:
                moved = folder / "dropped" / path.name
                moved.parent.mkdir(exist_ok=True)
                path.rename(moved)
                self._dropped[i] = self.workspace.to_uri(moved)
        ids = [f"syn-{token}-{int(k):03d}" for k in kept]
        hashes = [file_sha1(paths[int(k)]) for k in kept]
        if not ids:
            return []
        records = [ItemRecord(id=i, role="candidate", uri=self.workspace.to_uri(paths[int(k)]), source="synthetic",
                              iteration_added=ws.iteration, content_hash=h) for i, k, h in zip(ids, kept, hashes)]
        run_id = self.store.start_run("generate", {"generator": provenance[0].get("generator") if provenance else "",
                                                   "n": len(paths)})
        self.store.add_items(records, run_id=run_id)
        candidate_store.save_provenance(self.store, [{"item_id": i, **p} for i, p in zip(ids, provenance)])
        stored = self.store.load_embeddings(self.model_key)
        items = self.store.items_frame()
        hash_of = dict(zip(items["id"], items["content_hash"]))
        all_ids = list(map(str, stored.ids)) + ids
        fingerprint = data_fingerprint(self.model_key, [(i, hash_of.get(i)) for i in all_ids])
        self.store.save_embeddings(self.model_key, all_ids, np.concatenate([stored.vectors, vectors]), fingerprint,
                                   run_id=run_id)
        self.store.finish_run(run_id, summary={"n_generated": len(paths), "n_kept": len(ids)})
        return ids

    def record(self, decisions: Sequence["DecisionRequest"]) -> None:
        record_decisions(self.store, decisions)

    def reviewed(self, iteration: int) -> pd.DataFrame:
        return iteration_store.reviewed_frame(self.store, iteration)

    def fold_in(self, iteration: int, config: Mapping[str, Any]) -> dict[str, int]:
        return iteration_store.fold_in(self.store, iteration, config, by=self.reviewer)

    def phase(self, iteration: int) -> str | None:
        return iteration_store.iteration_phase(self.store, iteration)

    def save_metrics(self, iteration: int, metrics: Mapping[str, Any], *, phase: str) -> None:
        iteration_store.save_iteration_metrics(self.store, iteration, metrics, phase=phase)

    def history(self) -> pd.DataFrame:
        return history_frame(self.iteration_rows())

    def iteration_rows(self) -> list[dict[str, Any]]:
        return iteration_store.iteration_rows(self.store)

    def get_meta(self, key: str, default: Any = None) -> Any:
        return self.store.get_meta(key, default)

    def set_meta(self, key: str, value: Any) -> None:
        self.store.set_meta(key, value)
