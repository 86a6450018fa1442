"""Headless simulation of the ADDE loop against baselines, with an oracle reviewer, on arrays in and a table out.

Every strategy starts from the same labelled seed set and, round after round, acquires items for
``batch = budget // rounds`` oracle labels (``mads-naive`` spends none: it pseudo-labels). After each
round the head is refitted on the labelled set and the metrics below are recorded, so the returned
table has one row per seed × strategy × round (round 0 is before any acquisition).

**Who sees what.** Strategies get a :class:`StrategyView` (embeddings, ids, image paths, the seed
labels) and a :class:`RoundContext` (the current labelled set, head and pool probabilities). Neither
carries the pool's oracle labels, which live only in the :class:`PoolOracle`: a pool item's label
becomes known when a strategy pays one label for it.

**The oracle.** A pool item gets its true label (1 label). A generated item is judged by a reference
:class:`~adde_core.model.LinearHead` fitted on every real labelled item (seed, val and the pool's
oracle labels): it is accepted iff the reference's top class is the intended label with
probability >= 0.5 (the accept rule of :class:`adde_core.review.oracle.OracleReviewer`); it costs
1 label whether accepted or not.

**Metrics per round** (on val unless said otherwise): accuracy and macro-F1
(:func:`adde_core.metrics.quality.classification_quality`), worst-group accuracy over
``SimulationData.groups_val`` groups with at least ``MIN_GROUP_SIZE`` (10) val items
(:func:`adde_core.metrics.fairness.group_fairness`), bias
amplification = max over classes of |predicted rate − true rate|
(:func:`adde_core.metrics.fairness.bias_amplification`), Vendi (q = 1, cosine) of the labelled set
at a fixed subsample size of 300 (mean of 5 subsamples; the whole set when smaller), cluster
entropy of the labelled set over a *fixed* k-means partition (k = 20, fitted once on the PCA of
seed + pool embeddings) normalised by log k, so it rises exactly when the labelled set spreads over
more of the partition, and OOD accuracy when an OOD set is given.

The strategies (registry :data:`SIM_STRATEGIES`) are documented on their classes.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from adde_core.errors import AddeError
from adde_core.ranking.components import margin_uncertainty

if TYPE_CHECKING:
    import pandas as pd

    from adde_core.model import LinearHead
    from adde_core.project import Project

__all__ = [
    "SIM_STRATEGIES",
    "Acquisition",
    "PoolOracle",
    "RoundContext",
    "SimStrategy",
    "SimulationData",
    "StrategyView",
    "full_data_accuracy",
    "simulate",
]

#: ``progress(done, total, message)``: called after every simulated round.
SimProgress = Callable[[int, int, str], None]
#: ``embed_images(images) -> (n, d) float32``: embeds generated images (uint8 arrays) in the data's space.
EmbedFn = Callable[[Sequence[np.ndarray]], np.ndarray]

VENDI_SUBSAMPLE = 300
VENDI_REPEATS = 5
ENTROPY_CLUSTERS = 20
PCA_COMPONENTS = 50
HEAD_MAX_ITER = 100
#: Val groups smaller than this are left out of worst-group accuracy: with 2 items a group's accuracy
#: is 0, 0.5 or 1 by chance (the demo's ``giraffe|horizontal`` cell has 2 val items).
MIN_GROUP_SIZE = 10


# ------------------------------------------------------------------------------------------------ data
def _as_str(values: Any, n: int, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=object).astype(str)
    if arr.shape != (n,):
        raise AddeError(f"SimulationData.{what} must have one entry per row ({n}), got shape {arr.shape}.")
    return arr


def _as_x(values: Any, what: str, dim: int | None = None) -> np.ndarray:
    X = np.ascontiguousarray(np.asarray(values, dtype=np.float32))
    if X.ndim != 2 or (dim is not None and X.shape[1] != dim):
        raise AddeError(f"SimulationData.{what} must be a 2-D array (n, {dim or 'd'}), got shape {X.shape}.")
    if not np.isfinite(X).all():
        raise AddeError(f"SimulationData.{what} has NaN or infinite values; re-embed those items.")
    return X


@dataclass(frozen=True, eq=False)
class SimulationData:
    """Everything one simulation reads: seed, pool (with hidden oracle labels), val and optional OOD.

    Attributes
    ----------
    X_seed, y_seed, ids_seed : arrays
        The labelled seed set D_0: embeddings (n, d), labels, ids.
    X_pool, y_pool, ids_pool : arrays
        The unlabelled pool. ``y_pool`` holds the oracle labels; only :class:`PoolOracle` and
        :func:`full_data_accuracy` read them (strategies get a :class:`StrategyView` without them).
    X_val, y_val, groups_val : arrays
        Validation embeddings, labels and the group of each item (for worst-group accuracy).
    X_ood, y_ood : arrays or None
        An optional shifted test set.
    groups_seed, groups_pool : arrays or None
        Groups of seed and pool items (reporting only; pool groups are never shown to strategies).
    seed_paths, pool_paths : sequence of str or None
        Image files, needed only by strategies that generate (``static-aug``, ``adde`` with generation).
    embed_images : callable or None
        Embeds generated images in the same space as ``X_*``; needed with the paths for generation.
    name : str
        Shown in the report.
    """

    X_seed: np.ndarray
    y_seed: np.ndarray
    X_pool: np.ndarray
    y_pool: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    groups_val: np.ndarray | None = None
    ids_seed: np.ndarray | None = None
    ids_pool: np.ndarray | None = None
    X_ood: np.ndarray | None = None
    y_ood: np.ndarray | None = None
    groups_seed: np.ndarray | None = None
    groups_pool: np.ndarray | None = None
    seed_paths: Sequence[str] | None = None
    pool_paths: Sequence[str] | None = None
    embed_images: EmbedFn | None = None
    name: str = "data"

    def __post_init__(self) -> None:
        Xs = _as_x(self.X_seed, "X_seed")
        d = Xs.shape[1]
        Xp, Xv = _as_x(self.X_pool, "X_pool", d), _as_x(self.X_val, "X_val", d)
        if len(Xs) < 2 or len(Xp) < 1 or len(Xv) < 1:
            raise AddeError("SimulationData needs at least 2 seed items, 1 pool item and 1 val item.")
        sets = {"X_seed": Xs, "X_pool": Xp, "X_val": Xv,
                "y_seed": _as_str(self.y_seed, len(Xs), "y_seed"), "y_pool": _as_str(self.y_pool, len(Xp), "y_pool"),
                "y_val": _as_str(self.y_val, len(Xv), "y_val"),
                "ids_seed": _as_str(self.ids_seed if self.ids_seed is not None else
                                    [f"seed-{i}" for i in range(len(Xs))], len(Xs), "ids_seed"),
                "ids_pool": _as_str(self.ids_pool if self.ids_pool is not None else
                                    [f"pool-{i}" for i in range(len(Xp))], len(Xp), "ids_pool"),
                "groups_val": _as_str(self.groups_val if self.groups_val is not None else self.y_val,
                                      len(Xv), "groups_val")}
        if len(np.unique(sets["y_seed"])) < 2:
            raise AddeError("The seed set needs at least two classes to train a head on.")
        if (self.X_ood is None) != (self.y_ood is None):
            raise AddeError("Give both X_ood and y_ood, or neither.")
        if self.X_ood is not None:
            sets["X_ood"] = _as_x(self.X_ood, "X_ood", d)
            sets["y_ood"] = _as_str(self.y_ood, len(sets["X_ood"]), "y_ood")
        for name, n in (("groups_seed", len(Xs)), ("groups_pool", len(Xp))):
            if getattr(self, name) is not None:
                sets[name] = _as_str(getattr(self, name), n, name)
        for name, n in (("seed_paths", len(Xs)), ("pool_paths", len(Xp))):
            paths = getattr(self, name)
            if paths is not None:
                if len(paths) != n:
                    raise AddeError(f"SimulationData.{name} must have one path per row ({n}), got {len(paths)}.")
                sets[name] = tuple(None if p is None or (isinstance(p, float) and math.isnan(p)) else str(p) for p in paths)
        all_ids = np.concatenate([sets["ids_seed"], sets["ids_pool"]])
        if len(np.unique(all_ids)) != len(all_ids):
            raise AddeError("Seed and pool ids must be unique across both sets.")
        for k, v in sets.items():
            object.__setattr__(self, k, v)

    @property
    def dim(self) -> int:
        return int(self.X_seed.shape[1])

    @property
    def classes(self) -> np.ndarray:
        """Every class known from seed, val and pool labels (sorted)."""
        return np.unique(np.concatenate([self.y_seed, self.y_val, self.y_pool]))

    @property
    def can_generate(self) -> bool:
        """Whether generated images can be made and embedded (seed images and an embedder are present)."""
        return (self.embed_images is not None and self.seed_paths is not None
                and all(p is not None for p in self.seed_paths))

    def view(self) -> StrategyView:
        """What strategies may read: everything except the pool's oracle labels and groups."""
        return StrategyView(X_seed=self.X_seed, y_seed=self.y_seed, ids_seed=self.ids_seed, X_pool=self.X_pool,
                            ids_pool=self.ids_pool, X_val=self.X_val, seed_paths=self.seed_paths,
                            pool_paths=self.pool_paths, embed_images=self.embed_images)

    @classmethod
    def from_arrays(cls, X: np.ndarray, roles: Sequence[str], labels: Sequence[Any], *,
                    groups: Sequence[Any] | None = None, ids: Sequence[str] | None = None,
                    paths: Sequence[str | None] | None = None, embed_images: EmbedFn | None = None,
                    name: str = "data") -> SimulationData:
        """Build from one table of items: ``roles`` seed/pool/val/ood, ``labels`` (pool: the oracle label).

        Parameters
        ----------
        X : ndarray (n, d)
        roles : sequence of str
            ``"seed"``, ``"pool"``, ``"val"`` or ``"ood"`` per row (other roles are ignored).
        labels : sequence
            The true label of every row (for pool rows, the hidden oracle label).
        groups : sequence, optional
            Group per row for worst-group accuracy (default: the label).
        ids, paths : sequences, optional
        embed_images : callable, optional
        name : str

        Returns
        -------
        SimulationData
        """
        X = np.asarray(X)
        n = len(X)
        roles = np.asarray(roles, dtype=str)
        labels = np.asarray(labels, dtype=object)
        if roles.shape != (n,) or labels.shape != (n,):
            raise AddeError(f"roles and labels need one entry per row of X ({n}).")
        ids_a = np.asarray(ids if ids is not None else [f"item-{i}" for i in range(n)], dtype=str)
        groups_a = np.asarray(groups, dtype=object).astype(str) if groups is not None else labels.astype(str)
        m = {r: np.flatnonzero(roles == r) for r in ("seed", "pool", "val", "ood")}
        for r in ("seed", "pool", "val"):
            if len(m[r]) == 0:
                raise AddeError(f"No items with role {r!r}: the simulation needs seed, pool and val items.")
            missing = [i for i in m[r] if labels[i] is None or labels[i] != labels[i] or str(labels[i]) == ""]
            if missing:
                what = "oracle label" if r == "pool" else "label"
                raise AddeError(f"{len(missing)} {r} items have no {what} (first: {ids_a[missing[0]]}); the oracle "
                                f"simulation needs every {r} item labelled.")
        ood = m["ood"] if len(m["ood"]) and all(labels[i] == labels[i] and labels[i] is not None for i in m["ood"]) \
            else None
        p = None if paths is None else list(paths)
        return cls(X_seed=X[m["seed"]], y_seed=labels[m["seed"]], ids_seed=ids_a[m["seed"]],
                   X_pool=X[m["pool"]], y_pool=labels[m["pool"]], ids_pool=ids_a[m["pool"]],
                   X_val=X[m["val"]], y_val=labels[m["val"]], groups_val=groups_a[m["val"]],
                   groups_seed=groups_a[m["seed"]], groups_pool=groups_a[m["pool"]],
                   X_ood=None if ood is None else X[ood], y_ood=None if ood is None else labels[ood],
                   seed_paths=None if p is None else [p[i] for i in m["seed"]],
                   pool_paths=None if p is None else [p[i] for i in m["pool"]],
                   embed_images=embed_images, name=name)

    @classmethod
    def from_project(cls, project: Project, model_key: str | None = None, *,
                     group_by: str = "class_subgroup") -> SimulationData:
        """Build from an ADDE project whose pool carries hidden oracle labels.

        Parameters
        ----------
        project : Project
        model_key : str, optional
            Embedding set (default: the project's default).
        group_by : {"class_subgroup", "subgroup", "class"}, default "class_subgroup"
            Groups for worst-group accuracy: ``label|subgroup`` cells (e.g. ``horse|upright``, the
            cells a biased seed under-serves), the subgroup attribute alone, or the class. Without
            a subgroup attribute the class is used.

        Returns
        -------
        SimulationData
            With image paths and an embedder when the embeddings came from an image embedder and
            every seed item has an image; otherwise without (strategies that generate are then skipped).
        """
        import pandas as pd

        if group_by not in ("class_subgroup", "subgroup", "class"):
            raise AddeError(f"group_by must be 'class_subgroup', 'subgroup' or 'class', got {group_by!r}.")
        key = model_key or project.default_model_key()
        stored = project.embeddings(key)
        items = project.store.items_frame(include_hidden=True)
        items = items[items["source"] != "synthetic"].set_index("id")
        ids = [i for i in stored.ids if i in items.index]
        rows = pd.Index(stored.ids).get_indexer(ids)
        items = items.loc[ids]
        truth = items["oracle_label"].where(items["oracle_label"].notna(), items["label"])
        truth = truth.where(items["role"] != "pool", items["oracle_label"])
        pool = (items["role"] == "pool").to_numpy()
        if pool.any() and truth[pool].isna().all():
            raise AddeError("The pool has no hidden oracle labels, so an oracle cannot label it; ingest the pool "
                            "with an oracle_label column (a manifest) to simulate.")
        keep = ~(pool & truth.isna().to_numpy())  # pool items the oracle cannot label are left out
        sub = project.subgroup_attribute
        if sub is None and "pose" in items.columns:
            sub = "pose"
        if group_by == "class" or sub is None or sub not in items.columns:
            groups = truth.astype(str)
        elif group_by == "subgroup":
            groups = items[sub].astype(str)
        else:
            groups = truth.astype(str) + "|" + items[sub].astype(str)
        paths = project.items().set_index("id")["path"].reindex(ids)
        embed = None
        try:
            embedder = project.embedder_for(key)
            embed = embedder_fn(embedder)
        except AddeError:
            embed = None  # precomputed vectors: generated images cannot be placed in this space
        return cls.from_arrays(stored.vectors[rows][keep], items["role"].to_numpy()[keep], truth.to_numpy()[keep],
                               groups=groups.to_numpy()[keep], ids=np.asarray(ids)[keep],
                               paths=paths.to_numpy()[keep] if paths.notna().any() else None,
                               embed_images=embed, name=f"{project.name} ({key})")


def embedder_fn(embedder: Any) -> EmbedFn:
    def embed(images: Sequence[np.ndarray]) -> np.ndarray:
        from PIL import Image

        pil = [Image.fromarray(np.asarray(im, dtype=np.uint8)) for im in images]
        return np.asarray(embedder.embed_images(pil), dtype=np.float32)

    return embed


@dataclass(frozen=True, eq=False)
class StrategyView:
    """The part of :class:`SimulationData` a strategy may read; there is no field for pool labels."""

    X_seed: np.ndarray
    y_seed: np.ndarray
    ids_seed: np.ndarray
    X_pool: np.ndarray
    ids_pool: np.ndarray
    X_val: np.ndarray
    seed_paths: Sequence[str] | None
    pool_paths: Sequence[str] | None
    embed_images: EmbedFn | None

    @cached_property
    def _index(self) -> pd.Index:
        import pandas as pd

        return pd.Index(np.concatenate([self.ids_seed, self.ids_pool]))

    def member_rows(self, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Seed rows and pool rows of ``ids``, in the order given (other ids, e.g. val items, are dropped)."""
        pos = self._index.get_indexer(np.asarray(ids, dtype=str))
        pos = pos[pos >= 0]
        n_s = len(self.ids_seed)
        return pos[pos < n_s], pos[pos >= n_s] - n_s


# ---------------------------------------------------------------------------------------------- oracle
class PoolOracle:
    """The simulated reviewer; the only holder of the pool's labels. Counts every label it gives.

    Parameters
    ----------
    y_pool : ndarray of str
    reference : LinearHead
        Fitted on every real labelled item; judges generated items.
    accept_confidence : float, default 0.5
    """

    def __init__(self, y_pool: np.ndarray, reference: LinearHead, *, accept_confidence: float = 0.5) -> None:
        self._y_pool = np.asarray(y_pool, dtype=str)
        self._reference = reference
        self.accept_confidence = accept_confidence
        self.spent = 0

    def label_pool(self, idx: np.ndarray) -> np.ndarray:
        """True labels of pool rows ``idx`` (1 label each)."""
        idx = np.asarray(idx, dtype=np.int64)
        self.spent += len(idx)
        return self._y_pool[idx].copy()

    def judge_generated(self, vectors: np.ndarray, intended: Sequence[str]) -> np.ndarray:
        """Accept (True) iff the reference head's top class is the intended label with p >= accept_confidence."""
        intended = np.asarray(intended, dtype=str)
        self.spent += len(intended)
        if len(intended) == 0:
            return np.zeros(0, dtype=bool)
        p = self._reference.predict_proba(vectors)
        classes = list(self._reference.classes_)
        top = p.argmax(axis=1)
        col = np.array([classes.index(c) if c in classes else -1 for c in intended])
        p_want = np.where(col >= 0, p[np.arange(len(p)), np.maximum(col, 0)], 0.0)
        return (top == col) & (p_want >= self.accept_confidence)


# ------------------------------------------------------------------------------------- per-data caches
@dataclass(eq=False)
class _Shared:
    """Per-data precomputations shared by every strategy and seed (none of them reads pool labels).

    The oracle's reference head is deliberately not here: strategies can reach this object.
    """

    pca_mean: np.ndarray
    pca_components: np.ndarray
    Z_all: np.ndarray          # PCA of unit rows: seed, pool, val (in that order)
    kmeans: Any                # fixed partition for the entropy metric and cluster-level gaps
    cluster_labels: np.ndarray  # of Z_all rows
    generators: dict[int, Any] = field(default_factory=dict)

    def project(self, X: np.ndarray) -> np.ndarray:
        from adde_core.analysis.density import pca_transform, unit_rows

        return pca_transform(unit_rows(np.asarray(X, dtype=np.float32)), self.pca_mean, self.pca_components)


def _fit_head(X: np.ndarray, y: np.ndarray, seed: int) -> LinearHead:
    from adde_core.model import LinearHead

    return LinearHead(device="cpu", max_iter=HEAD_MAX_ITER, random_state=seed).fit(X, y)


def _shared(data: SimulationData) -> _Shared:
    from sklearn.cluster import KMeans

    from adde_core.analysis.density import fit_pca, pca_transform, unit_rows

    X_all = np.concatenate([data.X_seed, data.X_pool, data.X_val])
    n_sp = len(data.X_seed) + len(data.X_pool)
    U = unit_rows(X_all)
    mean, comps, _ = fit_pca(U[:n_sp], min(PCA_COMPONENTS, data.dim))
    Z = pca_transform(U, mean, comps)
    k = min(ENTROPY_CLUSTERS, n_sp)
    km = KMeans(n_clusters=k, n_init=3, random_state=0).fit(Z[:n_sp])
    labels = km.predict(Z)
    return _Shared(pca_mean=mean, pca_components=comps, Z_all=Z, kmeans=km, cluster_labels=labels)


def _reference_head(data: SimulationData) -> LinearHead:
    """The oracle's judge of generated items: a head on every real labelled item (kept away from strategies)."""
    ref_X = np.concatenate([data.X_seed, data.X_val, data.X_pool])
    ref_y = np.concatenate([data.y_seed, data.y_val, data.y_pool])
    return _fit_head(ref_X, ref_y, 0)


# ------------------------------------------------------------------------------------ the round context
@dataclass(eq=False)
class RoundContext:
    """What a strategy sees when it acquires for one round (no pool labels anywhere)."""

    view: StrategyView
    seed: int
    round: int
    batch: int
    rng: np.random.Generator
    head: LinearHead
    pool_probs: np.ndarray       # (n_pool, k), columns head.classes_
    available: np.ndarray        # bool (n_pool,): not yet taken
    X_labelled: np.ndarray
    y_labelled: np.ndarray
    taken_pool: np.ndarray       # pool rows already in the labelled set, in order added
    metrics: Mapping[str, float]  # the last recorded metrics row
    shared: _Shared


@dataclass(eq=False)
class Acquisition:
    """What a strategy asks for in one round.

    Attributes
    ----------
    pool_idx : ndarray of int
        Pool rows to label: by the oracle (1 label each) or, with ``pseudo_labels``, by the head.
    pseudo_labels : ndarray of str or None
        Labels the strategy assigns itself (no oracle, no labels spent).
    gen_vectors, gen_labels : arrays
        Generated items to be judged by the oracle (1 label each), with the label they were made for.
    free_vectors, free_labels : arrays
        Items added without review (label-preserving augmentations of labelled images; 0 labels).
    regions : list of str
        Regions acquired for (reporting and adaptation).
    gen_made : int
        Images generated before the quality gate.
    """

    pool_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    pseudo_labels: np.ndarray | None = None
    gen_vectors: np.ndarray | None = None
    gen_labels: np.ndarray | None = None
    free_vectors: np.ndarray | None = None
    free_labels: np.ndarray | None = None
    regions: list[str] = field(default_factory=list)
    gen_made: int = 0


class SimStrategy:
    """Base class: a strategy is ``start`` (round 0), ``acquire`` (each round) and ``learn`` (feedback).

    Class attributes ``uses_oracle`` (spends ``batch`` labels a round) and ``needs_images``
    (skipped, with a message, when the data cannot generate).
    """

    name = "base"
    uses_oracle = True
    needs_images = False

    def start(self, ctx: RoundContext) -> Acquisition | None:
        """Optional one-off acquisition before round 0's metrics (free items only)."""
        return None

    def acquire(self, ctx: RoundContext) -> Acquisition:
        raise NotImplementedError

    def learn(self, ctx: RoundContext, acquisition: Acquisition, accepted_gen: int,
              before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, Any]:
        """Update internal state from the round's outcome; return extra columns for the row."""
        return {}

    def columns(self) -> dict[str, Any]:
        """The strategy's current settings, recorded with each row (e.g. adapted weights)."""
        return {}



class SeedOnly(SimStrategy):
    """No acquisition at all: the flat reference line of the seed set's head."""

    name = "seed-only"
    uses_oracle = False

    def acquire(self, ctx: RoundContext) -> Acquisition:
        return Acquisition()


class RandomAcquisition(SimStrategy):
    """``batch`` pool items drawn uniformly from those not yet taken, labelled by the oracle."""

    name = "random"

    def acquire(self, ctx: RoundContext) -> Acquisition:
        avail = np.flatnonzero(ctx.available)
        return Acquisition(pool_idx=ctx.rng.choice(avail, size=min(ctx.batch, len(avail)), replace=False))


class MarginUncertainty(SimStrategy):
    """The ``batch`` pool items with the smallest margin p1 − p2 under the current head (ties by row)."""

    name = "uncertainty"

    def acquire(self, ctx: RoundContext) -> Acquisition:
        avail = np.flatnonzero(ctx.available)
        u = margin_uncertainty(ctx.pool_probs[avail])
        order = np.lexsort((avail, -u))
        return Acquisition(pool_idx=avail[order[: ctx.batch]])


class NaivePseudoLabel(SimStrategy):
    """MADS-style naive loop without a reviewer: pseudo-label confident pool items and add them.

    Each round the pool items whose head confidence is at least ``tau`` (default 0.9) are taken,
    most confident first, up to ``batch``, with the head's predicted label. No labels are spent;
    wrong pseudo-labels stay in the dataset, which is what bias amplification measures.
    """

    name = "mads-naive"
    uses_oracle = False

    def __init__(self, *, tau: float = 0.9) -> None:
        self.tau = tau

    def acquire(self, ctx: RoundContext) -> Acquisition:
        avail = np.flatnonzero(ctx.available)
        conf = ctx.pool_probs[avail].max(axis=1)
        ok = conf >= self.tau
        cand, c = avail[ok], conf[ok]
        pick = cand[np.lexsort((cand, -c))[: ctx.batch]]
        labels = ctx.head.classes_[ctx.pool_probs[pick].argmax(axis=1)] if len(pick) else np.zeros(0, dtype=str)
        return Acquisition(pool_idx=pick, pseudo_labels=np.asarray(labels, dtype=str))


def _load_images(paths: Sequence[str]) -> list[np.ndarray]:
    from adde_core.acquisition.generation.base import load_image_array

    return [load_image_array(p) for p in paths]


class StaticAugmentation(RandomAcquisition):
    """One-shot diversity-enhancing augmentation at round 0, then random acquisition.

    Before round 0 every seed class below the median class count is augmented up to the median
    with :class:`~adde_core.acquisition.generation.AugmentationGenerator` (flips, small affine
    transforms, crops, brightness, same-label mixup of that class's seed images). The augmented
    images keep their source label, so they are added without review and cost 0 labels. After
    that the oracle budget is spent exactly like ``random``.
    """

    name = "static-aug"
    needs_images = True

    def start(self, ctx: RoundContext) -> Acquisition | None:
        from adde_core.acquisition.generation import AugmentationGenerator, RegionTarget

        view = ctx.view
        classes, counts = np.unique(view.y_seed, return_counts=True)
        median = int(np.median(counts))
        images, labels = [], []
        gen = AugmentationGenerator()
        for c, n in zip(classes, counts):
            if n >= median:
                continue
            rows = np.flatnonzero(view.y_seed == c)
            target = RegionTarget(region_id=f"class/{c}", centroid=view.X_seed[rows].mean(axis=0),
                                  member_ids=tuple(view.ids_seed[rows]),
                                  member_images=tuple(_load_images([view.seed_paths[r] for r in rows])),
                                  member_labels=(str(c),) * len(rows))
            batch = gen.generate(target, median - int(n), label=str(c), seed=ctx.seed)
            images += batch.images
            labels += batch.labels
        if not images:
            return None
        vectors = view.embed_images(images)
        return Acquisition(free_vectors=vectors, free_labels=np.asarray(labels, dtype=str), gen_made=len(images))


class AddeStrategy(SimStrategy):
    """The ADDE loop: sparse regions → retrieval (+ optional generation) → α·U + β·Div + γ·Q → oracle → adapt.

    Each round:

    1. **Analyse**: :func:`~adde_core.analysis.regions.find_sparse_regions` on the PCA-50 of the unit
       embeddings (computed once), with the current labelled real items as the dataset and the
       untaken pool plus val as targets; a fixed k-means partition (k = 20) adds cluster-level gaps.
       Generated items are not part of this analysis (they have no place in the precomputed PCA
       table); they do count in the labelled set the ranking's diversity term compares against.
    2. **Choose regions**: up to ``n_regions`` by UCB over their running reward
       (:meth:`adde_core.loop.adaptive.AdaptiveState.select_regions`, ties in sparsity order), or
       simply the sparsest with ``adapt=False``. The batch is split evenly across them.
    3. **Acquire per region**: a share ``generation_share`` of the region's slots goes to generation
       (when enabled): the CVAE, trained once per seed on the seed images conditioned on their
       embeddings, makes 2× as many images as slots aimed at the region, they are embedded, passed
       through :func:`~adde_core.acquisition.quality_gate.gate_candidates` against the current head,
       and the best-gated ones go to the oracle. The remaining slots (and any generation shortfall)
       go to retrieval: :func:`~adde_core.acquisition.retrieval.retrieve_for_region` returns
       ``3 × slots`` candidates, ranked with ``rank_candidates(strategy="adde", weights)``; the top
       ones go to the oracle. Slots no region can fill go to the most uncertain pool items.
    4. **Adapt** (``adapt=True``): :func:`adde_core.loop.adaptive.update_state` with val accuracy
       gain, relative Vendi gain, and shown/accepted counts per source; every acquired region is
       credited with the round's gains (the gains are not attributed per region, which would need a
       refit per region).

    Parameters
    ----------
    generate : bool, default True
    use_diversity : bool, default True
        False pins β = 0 (the ``adde-no-div`` ablation).
    adapt : bool, default True
    n_regions : int, default 3
    generation_share : float, default 0.2
        Initial share of the batch sent to generation (adapted within [0.1, 0.9]).
    """

    name = "adde"

    def __init__(self, *, generate: bool = True, use_diversity: bool = True, adapt: bool = True,
                 n_regions: int = 3, generation_share: float = 0.2) -> None:
        self.generate = generate
        self.use_diversity = use_diversity
        self.adapt = adapt
        self.n_regions = n_regions
        self.generation_share = generation_share

    @property
    def needs_images(self) -> bool:  # type: ignore[override]
        return self.generate

    def start(self, ctx: RoundContext) -> Acquisition | None:
        from adde_core.loop.adaptive import AdaptiveState
        from adde_core.ranking import RankingWeights

        weights = RankingWeights() if self.use_diversity else RankingWeights(alpha=0.4, beta=0.0, gamma=0.2)
        self.state_ = AdaptiveState(weights=weights, generation_share=self.generation_share)
        self.last_regions_: list[str] = []
        self.last_shown_: dict[str, int] = {}
        return None

    # -- analysis
    def _regions(self, ctx: RoundContext) -> list[Any]:
        import pandas as pd

        from adde_core.analysis.clustering import ClusterConfig, ClusterResult
        from adde_core.analysis.regions import RegionConfig, find_sparse_regions

        view, sh = ctx.view, ctx.shared
        n_s, n_p = len(view.X_seed), len(view.X_pool)
        n = len(sh.Z_all)
        ids = np.concatenate([view.ids_seed, view.ids_pool, [f"val-{i}" for i in range(n - n_s - n_p)]])
        role = np.array(["seed"] * n_s + ["pool"] * n_p + ["val"] * (n - n_s - n_p), dtype=object)
        in_dataset = np.zeros(n, dtype=bool)
        in_dataset[:n_s] = True
        in_dataset[n_s + ctx.taken_pool] = True
        label = np.full(n, None, dtype=object)
        label[:n_s] = view.y_seed
        label[n_s + ctx.taken_pool] = ctx.y_labelled[n_s:n_s + len(ctx.taken_pool)]
        items = pd.DataFrame({"id": ids, "role": role, "label": label})
        cfg = ClusterConfig(method="kmeans", space="pca", n_clusters=int(sh.kmeans.n_clusters))
        clusters = ClusterResult(ids=ids, labels=sh.cluster_labels, raw_labels=sh.cluster_labels, space=sh.Z_all,
                                 config=cfg, fingerprint="simulation")
        config = RegionConfig(pca_components=None, max_outliers=0, random_state=ctx.seed)
        found = find_sparse_regions(sh.Z_all, items, clusters=clusters, config=config, in_dataset=in_dataset,
                                    subgroup_columns=[], fingerprint="simulation")
        return list(found.regions)

    def acquire(self, ctx: RoundContext) -> Acquisition:
        from adde_core.ranking import RankingInput, rank_candidates

        view = ctx.view
        regions = [r for r in self._regions(ctx) if any(not str(i).startswith("val-") for i in r.member_ids)]
        by_id = {r.region_id: r for r in regions}
        if self.adapt:
            chosen = self.state_.select_regions([r.region_id for r in regions], self.n_regions)
        else:
            chosen = [r.region_id for r in regions[: self.n_regions]]
        slots = _split(ctx.batch, len(chosen))
        available = ctx.available.copy()
        picked: list[np.ndarray] = []
        gen_v: list[np.ndarray] = []
        gen_l: list[str] = []
        gen_made = 0
        can_gen = self.generate and view.embed_images is not None
        for rid, n_slots in zip(chosen, slots):
            if n_slots == 0:
                continue
            region = by_id[rid]
            members = view.member_rows(region.member_ids)
            centroid = _full_centroid(view, members)
            n_gen = round(n_slots * self.state_.generation_share) if can_gen else 0
            if n_gen:
                vecs, labs, made = self._generate(ctx, region, members, centroid, n_gen)
                gen_made += made
                gen_v.append(vecs)
                gen_l += labs
                n_gen = len(labs)
            n_ret = n_slots - n_gen
            if n_ret <= 0 or not available.any():
                continue
            from adde_core.acquisition.retrieval import retrieve_for_region

            avail_ids = view.ids_pool[available]
            taken_ids = set(view.ids_pool[~available].tolist())
            member_pool = members[1][available[members[1]]] if len(members[1]) else members[1]
            member_vecs = np.concatenate([view.X_seed[members[0]], view.X_pool[member_pool]])
            got = retrieve_for_region(view.X_pool, view.ids_pool, centroid=centroid,
                                      member_vectors=member_vecs if len(member_vecs) else None,
                                      k=min(3 * n_ret, len(avail_ids)), probs=ctx.pool_probs,
                                      exclude_ids=taken_ids, random_state=ctx.seed)
            if got.empty:
                continue
            rows = view.member_rows(got["id"].to_numpy())[1]
            inputs = RankingInput(ids=got["id"].to_numpy(), vectors=view.X_pool[rows], probs=ctx.pool_probs[rows],
                                  labelled_vectors=ctx.X_labelled, region_centroid=centroid)
            ranked = rank_candidates(inputs, strategy="adde", k=min(n_ret, len(rows)), weights=self.state_.weights,
                                     random_state=ctx.seed)
            take = rows[ranked.frame["position"].to_numpy()]
            available[take] = False
            picked.append(take)
        pool_idx = np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)
        short = ctx.batch - len(pool_idx) - len(gen_l)
        if short > 0 and available.any():
            # Slots no region could fill: the most uncertain remaining pool items.
            avail = np.flatnonzero(available)
            u = margin_uncertainty(ctx.pool_probs[avail])
            pool_idx = np.concatenate([pool_idx, avail[np.lexsort((avail, -u))[:short]]])
        self.last_regions_ = list(chosen)
        self.last_shown_ = {"retrieve": len(pool_idx), "generate": len(gen_l)}
        return Acquisition(pool_idx=pool_idx.astype(np.int64),
                           gen_vectors=np.concatenate(gen_v) if gen_v else None,
                           gen_labels=np.asarray(gen_l, dtype=str) if gen_l else None,
                           regions=list(chosen), gen_made=gen_made)

    def _generator(self, ctx: RoundContext) -> Any:
        from adde_core.acquisition.generation import ConditionalVAE

        if ctx.seed not in ctx.shared.generators:
            view = ctx.view
            cvae = ConditionalVAE(random_state=ctx.seed)
            cvae.fit(_load_images(view.seed_paths), list(view.y_seed), conditions=view.X_seed)
            ctx.shared.generators = {ctx.seed: cvae}  # one seed at a time: keep memory flat
        return ctx.shared.generators[ctx.seed]

    def _generate(self, ctx: RoundContext, region: Any, members: tuple[np.ndarray, np.ndarray],
                  centroid: np.ndarray, n_gen: int) -> tuple[np.ndarray, list[str], int]:
        from adde_core.acquisition.generation import RegionTarget
        from adde_core.acquisition.quality_gate import gate_candidates, region_radius

        view = ctx.view
        n_s = len(view.X_seed)
        seed_rows, pool_rows = members
        # Labelled members lend their images: seed items and pool items the oracle has labelled.
        taken_pos = {int(r): j for j, r in enumerate(ctx.taken_pool)}
        lab_pool = [r for r in pool_rows if int(r) in taken_pos and view.pool_paths is not None
                    and view.pool_paths[r] is not None]
        paths = [view.seed_paths[r] for r in seed_rows] + [view.pool_paths[r] for r in lab_pool]
        labels = list(view.y_seed[seed_rows]) + [str(ctx.y_labelled[n_s + taken_pos[int(r)]]) for r in lab_pool]
        vecs = np.concatenate([view.X_seed[seed_rows], view.X_pool[lab_pool]]) if paths else None
        if len(paths) > 32:
            keep = np.sort(ctx.rng.choice(len(paths), 32, replace=False))
            paths, labels, vecs = [paths[i] for i in keep], [labels[i] for i in keep], vecs[keep]
        target = RegionTarget(region_id=region.region_id, centroid=centroid, member_images=tuple(_load_images(paths)),
                              member_labels=tuple(labels), member_vectors=vecs)
        gen = self._generator(ctx)
        batch = gen.generate(target, 2 * n_gen, seed=ctx.seed * 1000 + ctx.round)
        vectors = view.embed_images(batch.images)
        all_members = _full_member_vectors(view, members)
        report = gate_candidates(vectors, batch.labels, centroid=centroid,
                                 radius=region_radius(all_members, centroid), reference_vectors=ctx.X_labelled,
                                 probs=ctx.head.predict_proba(vectors), classes=ctx.head.classes_)
        kept = np.flatnonzero(report.kept)
        kept = kept[np.lexsort((kept, -np.asarray(report.gate_score)[kept]))][:n_gen]
        return vectors[kept], [batch.labels[i] for i in kept], len(batch.images)

    def learn(self, ctx: RoundContext, acquisition: Acquisition, accepted_gen: int,
              before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, Any]:
        from adde_core.loop.adaptive import IterationOutcome, update_state
        from adde_core.ranking import RankingWeights

        if self.adapt:
            val_gain = float(after["val_accuracy"] - before["val_accuracy"])
            v0 = before["vendi"]
            div_gain = float((after["vendi"] - v0) / v0) if v0 > 0 else 0.0
            shown = self.last_shown_
            outcome = IterationOutcome(
                shown=shown, accepted={"retrieve": shown["retrieve"], "generate": int(accepted_gen)},
                val_gain=val_gain, diversity_gain=div_gain,
                region_val_gain={r: val_gain for r in acquisition.regions},
                region_diversity_gain={r: div_gain for r in acquisition.regions})
            state, _ = update_state(self.state_, outcome)
            if not self.use_diversity:
                w = state.weights
                state = _replace_weights(state, RankingWeights(alpha=w.alpha, beta=0.0, gamma=w.gamma))
            self.state_ = state
        return {"regions": ";".join(acquisition.regions)}

    def columns(self) -> dict[str, Any]:
        w = self.state_.weights.normalized()
        share = self.state_.generation_share if self.generate else math.nan
        return {"alpha": w[0], "beta": w[1], "gamma": w[2], "generation_share": share}


def _replace_weights(state: Any, weights: Any) -> Any:
    from dataclasses import replace

    return replace(state, weights=weights)


def _split(n: int, parts: int) -> list[int]:
    """``n`` slots over ``parts`` regions, the remainder to the first ones."""
    if parts == 0:
        return []
    base, extra = divmod(n, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _full_member_vectors(view: StrategyView, members: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return np.concatenate([view.X_seed[members[0]], view.X_pool[members[1]]])


def _full_centroid(view: StrategyView, members: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return _full_member_vectors(view, members).mean(axis=0)


#: Strategy factories by name; adding one is a :class:`SimStrategy` subclass plus one line here.
SIM_STRATEGIES: dict[str, Callable[[], SimStrategy]] = {
    "seed-only": SeedOnly,
    "random": RandomAcquisition,
    "uncertainty": MarginUncertainty,
    "mads-naive": NaivePseudoLabel,
    "static-aug": StaticAugmentation,
    "adde": AddeStrategy,
    "adde-no-gen": lambda: AddeStrategy(generate=False),
    "adde-no-div": lambda: AddeStrategy(use_diversity=False),
    "adde-no-adapt": lambda: AddeStrategy(adapt=False),
}


# ------------------------------------------------------------------------------------------- metrics
def _evaluate(head: LinearHead, data: SimulationData, X_lab: np.ndarray, shared: _Shared, seed: int,
              min_group_size: int = MIN_GROUP_SIZE) -> dict[str, Any]:
    from adde_core.metrics.entropy import cluster_entropy_from_sizes
    from adde_core.metrics.fairness import bias_amplification, group_fairness
    from adde_core.metrics.quality import classification_quality
    from adde_core.metrics.vendi import vendi_score_subsampled

    pred = head.predict(data.X_val)
    q = classification_quality(data.y_val, pred)
    names, counts = np.unique(data.groups_val, return_counts=True)
    big = np.isin(data.groups_val, names[counts >= min_group_size])
    if not big.any():
        big[:] = True  # every group is small: use them all rather than report nothing
    fair = group_fairness(data.y_val[big], pred[big], data.groups_val[big])
    bias = bias_amplification(data.y_val, pred)
    vendi = vendi_score_subsampled(X_lab, 1.0, n_samples=VENDI_SUBSAMPLE, n_repeats=VENDI_REPEATS,
                                   random_state=seed).mean
    k = int(shared.kmeans.n_clusters)
    sizes = np.bincount(shared.kmeans.predict(shared.project(X_lab)), minlength=k)
    ent = cluster_entropy_from_sizes(sizes).entropy / math.log(k) if k > 1 else 0.0
    row = {"val_accuracy": q["accuracy"], "val_macro_f1": q["macro_f1"],
           "worst_group_accuracy": fair.worst_group_accuracy, "worst_group": str(fair.worst_group),
           "bias_amplification": bias.max_abs_gap, "vendi": float(vendi), "cluster_entropy": float(ent),
           "ood_accuracy": math.nan}
    if data.X_ood is not None:
        row["ood_accuracy"] = float((head.predict(data.X_ood) == data.y_ood).mean())
    return row


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """Limit torch and BLAS threads: tiny fits are fastest single-threaded, and far slower when cores are shared."""
    if n is None:
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(n):
            yield
    finally:
        torch.set_num_threads(before)


def full_data_accuracy(data: SimulationData, *, seed: int = 0) -> float:
    """Val accuracy of the head trained on the seed set plus the whole pool with its oracle labels.

    Parameters
    ----------
    data : SimulationData
    seed : int, default 0

    Returns
    -------
    float
    """
    with _threads(1):
        head = _fit_head(np.concatenate([data.X_seed, data.X_pool]), np.concatenate([data.y_seed, data.y_pool]), seed)
        return float((head.predict(data.X_val) == data.y_val).mean())


def _strategy_seed(seed: int) -> np.random.Generator:
    # The same stream for every strategy of one seed, so random draws differ only by what was taken.
    return np.random.default_rng(np.random.SeedSequence([int(seed), 20_240_601]))


def _run(data: SimulationData, name: str, strategy: SimStrategy, *, budget: int, rounds: int, seed: int,
         shared: _Shared, reference: LinearHead, tick: Callable[[str], None]) -> list[dict[str, Any]]:
    view = data.view()
    batch = budget // rounds
    rng = _strategy_seed(seed)
    oracle = PoolOracle(data.y_pool, reference)
    X_lab, y_lab = data.X_seed.copy(), data.y_seed.copy()
    n_pool = len(data.X_pool)
    available = np.ones(n_pool, dtype=bool)
    taken: list[int] = []
    added = {"pool": 0, "pseudo": 0, "generated": 0, "augmented": 0}
    gen_shown_total = gen_acc_total = 0

    def context(r: int, head: LinearHead, metrics: Mapping[str, float]) -> RoundContext:
        return RoundContext(view=view, seed=seed, round=r, batch=batch, rng=rng, head=head,
                            pool_probs=head.predict_proba(data.X_pool), available=available.copy(),
                            X_labelled=X_lab, y_labelled=y_lab, taken_pool=np.asarray(taken, dtype=np.int64),
                            metrics=metrics, shared=shared)

    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    head = _fit_head(X_lab, y_lab, seed)
    first = strategy.start(context(0, head, {}))
    if first is not None and first.free_vectors is not None and len(first.free_vectors):
        X_lab = np.concatenate([X_lab, first.free_vectors])
        y_lab = np.concatenate([y_lab, first.free_labels])
        added["augmented"] += len(first.free_vectors)
        head = _fit_head(X_lab, y_lab, seed)
    metrics = _evaluate(head, data, X_lab, shared, seed)
    extra = strategy.columns()
    rows.append(_row(seed, name, 0, oracle.spent, added, X_lab, metrics, 0, 0, time.perf_counter() - t0, extra))
    tick(f"{name} seed {seed} round 0")
    for r in range(1, rounds + 1):
        t0 = time.perf_counter()
        ctx = context(r, head, metrics)
        acq = strategy.acquire(ctx)
        idx = np.asarray(acq.pool_idx, dtype=np.int64)
        if len(idx) and (not available[idx].all() or len(np.unique(idx)) != len(idx)):
            raise AddeError(f"strategy {name!r} asked for pool items that are already taken or repeated.")
        if acq.pseudo_labels is not None:
            labels = np.asarray(acq.pseudo_labels, dtype=str)
            added["pseudo"] += len(idx)
        else:
            labels = oracle.label_pool(idx)
            added["pool"] += len(idx)
        available[idx] = False
        taken += idx.tolist()
        X_lab = np.concatenate([X_lab, data.X_pool[idx]])
        y_lab = np.concatenate([y_lab, labels])
        n_shown = n_acc = 0
        if acq.gen_vectors is not None and len(acq.gen_vectors):
            ok = oracle.judge_generated(acq.gen_vectors, acq.gen_labels)
            n_shown, n_acc = len(ok), int(ok.sum())
            # Generated items go after the real pool items so y_lab rows n_seed.. stay aligned with `taken`.
            X_gen, y_gen = acq.gen_vectors[ok], np.asarray(acq.gen_labels, dtype=str)[ok]
            added["generated"] += n_acc
        else:
            X_gen, y_gen = np.zeros((0, data.dim), np.float32), np.zeros(0, dtype=str)
        gen_shown_total += n_shown
        gen_acc_total += n_acc
        # Keep real items first (seed, then pool in the order taken) and synthetic/augmented ones after.
        X_lab, y_lab = _reorder(X_lab, y_lab, len(data.X_seed), len(taken), len(idx), X_gen, y_gen)
        head = _fit_head(X_lab, y_lab, seed)
        before = metrics
        metrics = _evaluate(head, data, X_lab, shared, seed)
        extra = {**strategy.learn(ctx, acq, n_acc, before, metrics), **strategy.columns()}
        rows.append(_row(seed, name, r, oracle.spent, added, X_lab, metrics, gen_shown_total, gen_acc_total,
                         time.perf_counter() - t0, extra))
        tick(f"{name} seed {seed} round {r}")
    return rows


def _reorder(X: np.ndarray, y: np.ndarray, n_seed: int, n_taken: int, n_new: int, X_gen: np.ndarray,
             y_gen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows: seed, pool items in the order taken, then generated/augmented items (old, then new)."""
    n_old_real = n_seed + n_taken - n_new
    n_old_synth = len(X) - n_new - n_old_real
    real_old = slice(0, n_old_real)
    synth_old = slice(n_old_real, n_old_real + n_old_synth)
    new = slice(n_old_real + n_old_synth, len(X))
    X2 = np.concatenate([X[real_old], X[new], X[synth_old], X_gen])
    y2 = np.concatenate([y[real_old], y[new], y[synth_old], y_gen])
    return X2, y2


def _row(seed: int, name: str, r: int, spent: int, added: Mapping[str, int], X_lab: np.ndarray,
         metrics: Mapping[str, Any], gen_shown: int, gen_acc: int, seconds: float,
         extra: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"seed": seed, "strategy": name, "round": r, "labels_spent": spent,
                           "items_added": int(sum(added.values())), **{f"added_{k}": v for k, v in added.items()},
                           "n_labelled": len(X_lab), **metrics, "gen_shown": gen_shown, "gen_accepted": gen_acc,
                           "seconds": round(seconds, 3)}
    for key in ("alpha", "beta", "gamma", "generation_share"):
        row[key] = extra.get(key, math.nan)
    row["regions"] = extra.get("regions", "")
    return row


def simulate(data: SimulationData, strategies: Sequence[str], *, budget: int, rounds: int,
             seeds: int | Sequence[int], progress: SimProgress | None = None,
             num_threads: int | None = 1) -> pd.DataFrame:
    """Run every strategy for every seed and return one metrics row per seed × strategy × round.

    Parameters
    ----------
    data : SimulationData
    strategies : sequence of str
        Keys of :data:`SIM_STRATEGIES`. Strategies that need images are skipped (with a message
        through ``progress`` and in ``simulate.skipped``) when ``data.can_generate`` is False.
    budget : int
        Oracle labels per run; each round spends ``budget // rounds``.
    rounds : int
    seeds : int or sequence of int
        A count (seeds 0..n-1) or explicit seeds.
    progress : callable, optional
        ``progress(done, total, message)`` after every round.
    num_threads : int or None, default 1
        torch/BLAS threads while simulating (None: leave as is). The head's L-BFGS on a few
        hundred items runs in ~0.3 s on one thread but took 10-25 s with two threads on a busy
        2-core machine.

    Returns
    -------
    pandas.DataFrame
        Columns: seed, strategy, round, labels_spent, items_added, added_pool, added_pseudo,
        added_generated, added_augmented, n_labelled, val_accuracy, val_macro_f1,
        worst_group_accuracy, worst_group, bias_amplification, vendi, cluster_entropy,
        ood_accuracy, gen_shown, gen_accepted, seconds, alpha, beta, gamma, generation_share, regions.
        ``attrs["skipped"]`` maps skipped strategies to the reason.
    """
    import pandas as pd

    unknown = [s for s in strategies if s not in SIM_STRATEGIES]
    if unknown:
        raise AddeError(f"Unknown simulation strategies {unknown}; choose from {', '.join(SIM_STRATEGIES)}.")
    for name, value in (("budget", budget), ("rounds", rounds)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise AddeError(f"{name} must be a positive integer, got {value!r}.")
    if budget < rounds:
        raise AddeError(f"budget ({budget}) must be at least rounds ({rounds}) so each round spends >= 1 label.")
    if budget // rounds * rounds > len(data.X_pool):
        raise AddeError(f"The pool has {len(data.X_pool)} items, fewer than the {budget // rounds * rounds} "
                        "labels to spend; lower the budget.")
    seed_list = list(range(seeds)) if isinstance(seeds, (int, np.integer)) else [int(s) for s in seeds]
    skipped: dict[str, str] = {}
    runnable = []
    for name in strategies:
        if SIM_STRATEGIES[name]().needs_images and not data.can_generate:
            skipped[name] = ("needs seed images and an image embedder to generate, and this data has "
                             "none (embeddings only, or precomputed vectors); skipped")
            if progress is not None:
                progress(0, 0, f"skipping {name}: {skipped[name]}")
        else:
            runnable.append(name)
    total = len(runnable) * len(seed_list) * (rounds + 1)
    done = 0

    def tick(message: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, message)

    rows: list[dict[str, Any]] = []
    with _threads(num_threads):
        shared = _shared(data)
        reference = _reference_head(data)
        for seed in seed_list:
            for name in runnable:
                rows += _run(data, name, SIM_STRATEGIES[name](), budget=budget, rounds=rounds, seed=seed,
                             shared=shared, reference=reference, tick=tick)
    frame = pd.DataFrame(rows)
    frame.attrs["skipped"] = skipped
    frame.attrs["batch"] = budget // rounds
    frame.attrs["budget"] = budget
    frame.attrs["rounds"] = rounds
    return frame
