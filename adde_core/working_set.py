"""The loop's working set: every embedded item of one embedding space as aligned arrays, whatever stores it."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from adde_core.errors import AddeError

__all__ = ["WorkingSet"]


@dataclass(frozen=True, eq=False)
class WorkingSet:
    """Everything one ADDE step reads, rows aligned with ``ids``; the same for a project and a simulation.

    Attributes
    ----------
    ids : ndarray of str (n,)
    X : ndarray (n, d) float32
        Embeddings in one space (``model_key``).
    role : ndarray of str (n,)
        ``seed`` (the dataset D_t), ``pool``, ``val``, ``ood`` or ``candidate`` (generated, awaiting review).
    label : ndarray of object (n,)
        Known labels: D_t's, val's and OOD's; ``None`` for the pool (hidden) and candidates.
    source : ndarray of str (n,)
        ``real``, ``pool`` or ``synthetic``.
    groups : ndarray of str (n,) or None
        The subgroup attribute's value per row (``"(none)"`` when missing), or None without a subgroup.
    paths : ndarray of object (n,) or None
        Image files (None where an item has no image), or None when no item has one.
    pending : mapping of str to str
        D_valid: items accepted or relabelled in the current iteration, with the label to use.
    decided : frozenset of str
        Items with a standing decision in any iteration (never offered for review again).
    iteration : int
    model_key : str
    fingerprint : str
        Of the embedding set; changes whenever an item or its vector does.
    labels_spent : int
        Reviews made in earlier iterations (one review costs one label; pseudo-labels and
        label-preserving augmentations cost none).
    ambiguous : frozenset of str
        Items whose standing decision carries the ``ambiguous`` flag.
    """

    ids: np.ndarray
    X: np.ndarray
    role: np.ndarray
    label: np.ndarray
    source: np.ndarray
    groups: np.ndarray | None = None
    paths: np.ndarray | None = None
    pending: Mapping[str, str] = field(default_factory=dict)
    decided: frozenset[str] = frozenset()
    iteration: int = 0
    model_key: str = ""
    fingerprint: str = ""
    labels_spent: int = 0
    ambiguous: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        n = len(self.ids)
        if self.X.ndim != 2 or len(self.X) != n:
            raise AddeError(f"working set: {n} ids but embeddings of shape {self.X.shape}")
        for name in ("role", "label", "source", "groups", "paths"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise AddeError(f"working set: {name} has {len(value)} entries for {n} items")

    # ------------------------------------------------------------------ masks
    @cached_property
    def index(self) -> dict[str, int]:
        """Row of each id."""
        return {str(i): k for k, i in enumerate(self.ids)}

    def rows(self, ids: Any) -> np.ndarray:
        """Rows of ``ids`` (ids without an embedding are dropped)."""
        index = self.index
        return np.asarray([index[i] for i in map(str, ids) if i in index], dtype=np.int64)

    @cached_property
    def labelled(self) -> np.ndarray:
        """Rows with a known label."""
        return np.array([lab is not None and lab == lab and str(lab) != "" for lab in self.label], dtype=bool)

    @cached_property
    def in_dataset(self) -> np.ndarray:
        """D_t: the labelled seed-role items (the head is trained on these)."""
        return (self.role == "seed") & self.labelled

    @cached_property
    def pending_rows(self) -> np.ndarray:
        """Rows of D_valid (accepted this iteration, not yet folded in), in item-id order.

        Sorted so that the order does not depend on when decisions were made or how a storage
        returns them: strategies that cluster the labelled set (TypiClust) see the same input.
        """
        return self.rows(sorted(self.pending))

    @cached_property
    def dataset_and_pending(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows and labels of D_t ∪ D_valid: what diversity is measured against within an iteration."""
        rows = np.concatenate([np.flatnonzero(self.in_dataset), self.pending_rows])
        labels = np.concatenate([self.label[self.in_dataset].astype(str),
                                 np.asarray([self.pending[str(self.ids[r])] for r in self.pending_rows], dtype=str)])
        return rows, labels

    @cached_property
    def available(self) -> np.ndarray:
        """Pool rows that may still be offered: real pool items no one has decided on."""
        decided = np.fromiter((str(i) in self.decided for i in self.ids), dtype=bool, count=len(self.ids))
        return (self.role == "pool") & (self.source != "synthetic") & ~decided

    @cached_property
    def dataset_key(self) -> str:
        """Fingerprint of D_t (ids and labels) in this embedding set: heads are cached by it."""
        h = hashlib.sha1(self.fingerprint.encode())
        for i, lab in zip(self.ids[self.in_dataset], self.label[self.in_dataset]):
            h.update(f"{i}\t{lab}\n".encode())
        return h.hexdigest()

    @cached_property
    def pool_key(self) -> str:
        """Fingerprint of the retrievable pool: a search index is valid exactly while it holds."""
        h = hashlib.sha1(self.fingerprint.encode())
        h.update("\n".join(map(str, self.ids[(self.role == "pool") & (self.source != "synthetic")])).encode())
        return h.hexdigest()

    def group_values(self, rows: np.ndarray) -> np.ndarray | None:
        """Subgroup values of ``rows`` (None without a subgroup)."""
        return None if self.groups is None else self.groups[rows]
