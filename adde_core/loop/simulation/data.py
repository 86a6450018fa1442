"""What a simulation reads: seed, pool (with hidden oracle labels), val and optional OOD, as validated arrays."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from adde_core.errors import AddeError

if TYPE_CHECKING:
    from adde_core.loop.storage import MemoryStorage
    from adde_core.workspace import Workspace

__all__ = ["EmbedFn", "SimulationData", "embedder_fn"]

#: ``embed_images(images) -> (n, d) float32``: embeds generated images (uint8 arrays) in the data's space.
EmbedFn = Callable[[Sequence[np.ndarray]], np.ndarray]
_ROLES = ("seed", "pool", "val", "ood")


def _as_x(values: Any, what: str, dim: int | None = None) -> np.ndarray:
    X = np.ascontiguousarray(np.asarray(values, dtype=np.float32))
    if X.ndim != 2 or (dim is not None and X.shape[1] != dim):
        raise AddeError(f"SimulationData.{what} must be a 2-D array (n, {dim or 'd'}), got shape {X.shape}.")
    if not np.isfinite(X).all():
        raise AddeError(f"SimulationData.{what} has NaN or infinite values; re-embed those items.")
    return X


def _as_str(values: Any, n: int, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=object).astype(str)
    if arr.shape != (n,):
        raise AddeError(f"SimulationData.{what} must have one entry per row ({n}), got shape {arr.shape}.")
    return arr


@dataclass(frozen=True, eq=False)
class SimulationData:
    """One table of items for the headless loop: embeddings, roles, true labels, subgroups, image paths.

    Attributes
    ----------
    X : ndarray (n, d)
    roles : ndarray of str
        ``seed``, ``pool``, ``val`` or ``ood``.
    labels : ndarray of str
        The true label of every row. For pool rows this is the hidden oracle label: only the
        oracle reads it (the engine's working set carries no pool labels).
    ids : ndarray of str
    groups : ndarray of str or None
        The subgroup value per row (fairness is measured over it; over the class when None).
    subgroup : str or None
        The subgroup attribute's name.
    paths : tuple of (str or None) or None
        Image files, needed only to generate.
    embed_images : callable or None
        Embeds generated images in the same space; needed with ``paths`` to generate.
    name : str
    """

    X: np.ndarray
    roles: np.ndarray
    labels: np.ndarray
    ids: np.ndarray | None = None
    groups: np.ndarray | None = None
    subgroup: str | None = None
    paths: Sequence[str | None] | None = None
    embed_images: EmbedFn | None = None
    name: str = "data"

    def __post_init__(self) -> None:
        X = _as_x(self.X, "X")
        n = len(X)
        roles = _as_str(self.roles, n, "roles")
        bad = sorted(set(roles) - set(_ROLES))
        if bad:
            raise AddeError(f"SimulationData.roles has unknown roles {bad}; use {', '.join(_ROLES)}.")
        labels = np.asarray(self.labels, dtype=object)
        if labels.shape != (n,):
            raise AddeError(f"SimulationData.labels must have one entry per row ({n}), got shape {labels.shape}.")
        ids = _as_str(self.ids if self.ids is not None else [f"item-{i}" for i in range(n)], n, "ids")
        if len(np.unique(ids)) != n:
            raise AddeError("SimulationData.ids must be unique.")
        for r in ("seed", "pool", "val"):
            rows = np.flatnonzero(roles == r)
            if len(rows) == 0:
                raise AddeError(f"No items with role {r!r}: the simulation needs seed, pool and val items.")
            missing = [i for i in rows if labels[i] is None or labels[i] != labels[i] or str(labels[i]) == ""]
            if missing:
                what = "oracle label" if r == "pool" else "label"
                raise AddeError(f"{len(missing)} {r} items have no {what} (first: {ids[missing[0]]}); the oracle "
                                f"simulation needs every {r} item labelled.")
        if len({str(x) for x in labels[roles == "seed"]}) < 2:
            raise AddeError("The seed set needs at least two classes to train a head on.")
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "roles", roles)
        object.__setattr__(self, "labels", np.asarray([None if v is None or v != v else str(v) for v in labels],
                                                      dtype=object))
        object.__setattr__(self, "ids", ids)
        if self.groups is not None:
            object.__setattr__(self, "groups", _as_str(self.groups, n, "groups"))
        if self.paths is not None:
            paths = tuple(None if p is None or (isinstance(p, float) and math.isnan(p)) else str(p)
                          for p in self.paths)
            if len(paths) != n:
                raise AddeError(f"SimulationData.paths must have one path per row ({n}), got {len(paths)}.")
            object.__setattr__(self, "paths", paths)

    def rows(self, role: str) -> np.ndarray:
        """Rows with ``role``."""
        return np.flatnonzero(self.roles == role)

    @property
    def can_generate(self) -> bool:
        """Whether generated images can be made and embedded (seed images and an embedder are present)."""
        return (self.embed_images is not None and self.paths is not None
                and all(self.paths[i] is not None for i in self.rows("seed")))

    def truth(self) -> dict[str, str]:
        """True labels of every labelled row: what the oracle knows."""
        return {str(i): str(lab) for i, lab in zip(self.ids, self.labels) if lab is not None}

    def to_storage(self) -> "MemoryStorage":
        """A fresh in-memory loop storage: pool labels withheld, seed/val/OOD labels known."""
        from adde_core.loop.storage import MemoryStorage

        label = np.where(self.roles == "pool", None, self.labels).astype(object)
        return MemoryStorage(self.ids, self.X, self.roles, label, np.full(len(self.ids), "real", dtype=object),
                             groups=self.groups, paths=None if self.paths is None else np.asarray(self.paths, object),
                             subgroup=self.subgroup, model_key=self.name)

    def resplit(self, seed: int, *, seed_per_class: int | None = None) -> "SimulationData":
        """The same data with seed and pool redrawn (per-class seed counts kept), val/OOD fixed.

        Honest comparisons redraw the pool split per seed, not only the strategies' randomness.
        With a subgroup the counts are kept per class × subgroup value, so a gap the data was
        built with (the demo's seed holds at most 2 upright horses, against 37 % in the data)
        survives the redraw instead of being averaged away.
        """
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7_331]))
        roles = self.roles.copy()
        sp = np.flatnonzero(np.isin(roles, ("seed", "pool")))
        cell = np.asarray([str(x) for x in self.labels], dtype=object)
        if self.groups is not None and seed_per_class is None:  # a given per-class count stays per class
            cell = cell + "\0" + np.asarray([str(x) for x in self.groups], dtype=object)
        for label in sorted(set(cell[sp])):
            rows = sp[cell[sp] == label]
            n_seed = int((roles[rows] == "seed").sum()) if seed_per_class is None else min(seed_per_class, len(rows))
            rows = rng.permutation(rows)
            roles[rows[:n_seed]] = "seed"
            roles[rows[n_seed:]] = "pool"
        return SimulationData(self.X, roles, self.labels, self.ids, self.groups, self.subgroup, self.paths,
                              self.embed_images, self.name)

    @classmethod
    def from_workspace(cls, workspace: "Workspace", model_key: str, *, embed_images: EmbedFn | None = None,
                       name: str = "") -> "SimulationData":
        """Build from a project whose pool carries hidden oracle labels (synthetic items are left out)."""
        import pandas as pd

        store = workspace.store
        stored = store.load_embeddings(model_key)
        if stored is None:
            raise AddeError(f"no embeddings for {model_key!r}; embed the project first")
        items = store.items_frame(include_hidden=True)
        items = items[(items["source"] != "synthetic") & items["role"].isin(_ROLES)].set_index("id")
        ids = [i for i in map(str, stored.ids) if i in items.index]
        rows = pd.Index(stored.ids).get_indexer(ids)
        items = items.loc[ids]
        truth = items["oracle_label"].where(items["oracle_label"].notna(), items["label"])
        truth = truth.where(items["role"] != "pool", items["oracle_label"])
        pool = (items["role"] == "pool").to_numpy()
        if pool.any() and truth[pool].isna().all():
            raise AddeError("The pool has no hidden oracle labels, so an oracle cannot label it; ingest the pool "
                            "with an oracle_label column (a manifest) to simulate.")
        keep = ~(pool & truth.isna().to_numpy())  # pool items the oracle cannot label are left out
        from adde_core.loop.store_storage import SUBGROUP_KEY

        sub = store.get_meta(SUBGROUP_KEY)
        groups = None
        if sub and sub in items.columns:
            groups = items[sub].astype(object).where(items[sub].notna(), "(none)").astype(str).to_numpy()[keep]
        uris = items["uri"].to_numpy()
        paths = workspace.resolve_uris(uris)
        return cls(stored.vectors[rows][keep], items["role"].to_numpy()[keep], truth.to_numpy()[keep],
                   np.asarray(ids)[keep], groups, sub if groups is not None else None,
                   [p for p, k in zip(paths, keep) if k] if any(paths) else None, embed_images,
                   name or model_key)


def embedder_fn(embedder: Any) -> EmbedFn:
    """Wrap an embedder (``embed_images(list of PIL)``) as an :data:`EmbedFn` over uint8 arrays."""
    def embed(images: Sequence[np.ndarray]) -> np.ndarray:
        from PIL import Image

        pil = [Image.fromarray(np.asarray(im, dtype=np.uint8)) for im in images]
        return np.asarray(embedder.embed_images(pil), dtype=np.float32)

    return embed
