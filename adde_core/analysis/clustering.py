"""Clustering in a reduced embedding space (HDBSCAN or k-means), noise policies, and per-cluster stats."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from adde_core.errors import AddeError
from adde_core.analysis.density import (
    fit_sample,
    ANN_MIN_PAIRS,
    array_fingerprint,
    as_matrix,
    knn_density,
    reduce_for_search,
    search_knn,
)

METHODS = ("hdbscan", "kmeans")
SPACES = ("umap", "pca", "raw")
NOISE_POLICIES = ("keep", "nearest")
ROLES = ("seed", "pool", "val", "ood")
NOISE = -1
#: Largest clustering space UMAP is fitted on in full; past it UMAP is fitted on a uniform sample
#: of this many items and the rest are placed by kNN (:meth:`ClusterSpace.extend`), for the same
#: reason as :data:`adde_core.analysis.projection.MAP_FIT_MAX` (a seeded UMAP fit is single-threaded
#: and grows with n: the 10-d space plus HDBSCAN took 382 s at 10^5 on 2 cores before this limit).
#: The demo and anything up to 50k items is clustered exactly as before.
CLUSTER_FIT_MAX = 50_000
#: Largest set HDBSCAN runs on in full; past it HDBSCAN runs on a uniform sample of this many items
#: (with ``min_cluster_size`` and ``min_samples`` scaled by the sample share, so clusters keep the
#: same share of the data) and every other item takes the label of its nearest sampled item in
#: the clustering space. HDBSCAN's core distances need ``min_samples`` (= n/200 by default)
#: neighbours per item: at 10^6 that is 5,000 neighbours each, ~40 GB of distances.
HDBSCAN_FIT_MAX = 50_000
# Columns of the items frame that describe the item rather than a subgroup of it.
_NON_SUBGROUP = {"id", "uri", "role", "label", "source", "iteration_added", "content_hash", "path", "oracle_label",
                 "cluster"}


@dataclass(frozen=True)
class ClusterConfig:
    """How items are clustered.

    Attributes
    ----------
    method
        ``"hdbscan"`` (default: finds the number of clusters, marks noise) or ``"kmeans"``.
    space
        Where to cluster: ``"umap"`` (UMAP to ``n_components`` dims after PCA; HDBSCAN
        works best there), ``"pca"`` (PCA to ``n_components``) or ``"raw"`` (the
        unit-normalised embeddings). Never the 2-D map.
    n_components
        Dimension of the clustering space; None means 10 for ``"umap"``, 50 for ``"pca"``.
    n_neighbors, pca_components, n_epochs
        UMAP settings for the ``"umap"`` space (``min_dist`` is 0 there, which packs clusters).
    min_cluster_size
        HDBSCAN's smallest cluster; None means ``max(10, n // 200)``.
    min_samples
        HDBSCAN's density smoothing; None uses ``min_cluster_size``.
    n_clusters
        k for k-means.

    Notes
    -----
    The defaults were chosen by measurement (``benchmarks/cluster_defaults.py``: ARI/NMI against
    hidden labels on the 9,716-item demo and on scikit-learn digits). ``min_cluster_size = n/200``
    with ``min_samples = min_cluster_size`` was the best HDBSCAN rule on both (ARI 0.55 / 0.83;
    14% noise and a largest cluster of 10% on the demo). Larger sizes merge classes, and a small
    ``min_samples`` (5 or 15) made one cluster of half the demo (ARI 0.31). k-means with k = 10
    (the number of classes) scores ARI 0.59 / 0.82 without noise, so it is the option to pick when
    the number of kinds is known.
    noise
        What happens to HDBSCAN noise (label -1): ``"keep"`` leaves it as its own
        ``-1`` group (never counted as a cluster), ``"nearest"`` gives each noise point
        the cluster of its nearest clustered neighbour in the clustering space.
    random_state
        Seed for UMAP and k-means (HDBSCAN is deterministic).
    """

    method: str = "hdbscan"
    space: str = "umap"
    n_components: int | None = None
    n_neighbors: int = 30
    pca_components: int | None = 50
    n_epochs: int | None = 200
    min_cluster_size: int | None = None
    min_samples: int | None = None
    n_clusters: int = 10
    noise: str = "keep"
    random_state: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise AddeError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.space not in SPACES:
            raise AddeError(f"space must be one of {SPACES}, got {self.space!r}")
        if self.noise not in NOISE_POLICIES:
            raise AddeError(f"noise must be one of {NOISE_POLICIES}, got {self.noise!r}")
        for name in ("n_components", "min_cluster_size", "min_samples", "pca_components", "n_epochs"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise AddeError(f"{name} must be None or a positive integer, got {value!r}")
        if self.min_cluster_size is not None and self.min_cluster_size < 2:
            raise AddeError(f"min_cluster_size must be >= 2, got {self.min_cluster_size}")
        if not isinstance(self.n_clusters, int) or self.n_clusters < 1:
            raise AddeError(f"n_clusters must be a positive integer, got {self.n_clusters!r}")
        if not isinstance(self.n_neighbors, int) or self.n_neighbors < 2:
            raise AddeError(f"n_neighbors must be an integer >= 2, got {self.n_neighbors!r}")

    @property
    def space_dim(self) -> int | None:
        """The clustering-space dimension actually used (None for ``"raw"``)."""
        if self.space == "raw":
            return None
        return self.n_components or (10 if self.space == "umap" else 50)


@dataclass(frozen=True, eq=False)
class ClusterResult:
    """Cluster assignments of items.

    Attributes
    ----------
    ids : ndarray of str
    labels : ndarray of int
        Cluster per item after the noise policy (``-1`` = noise, only with ``noise="keep"``).
    raw_labels : ndarray of int
        The clusterer's own output, before the noise policy.
    space : ndarray (n, c)
        The items in the clustering space.
    config : ClusterConfig
    fingerprint : str
        Fingerprint of the (ids, vectors) clustered.
    """

    ids: np.ndarray
    labels: np.ndarray
    raw_labels: np.ndarray
    space: np.ndarray
    config: ClusterConfig
    fingerprint: str

    @property
    def n_clusters(self) -> int:
        """Number of clusters (noise is not a cluster)."""
        return int(len(np.unique(self.labels[self.labels != NOISE])))

    @property
    def noise_fraction(self) -> float:
        """Share of items labelled noise after the policy (0 with ``noise="nearest"``)."""
        return float(np.mean(self.labels == NOISE))

    @property
    def raw_noise_fraction(self) -> float:
        """Share of items the clusterer itself called noise."""
        return float(np.mean(self.raw_labels == NOISE))

    def sizes(self) -> pd.Series:
        """Items per cluster label (including -1 if present), largest first."""
        return pd.Series(self.labels).value_counts()

    def to_frame(self) -> pd.DataFrame:
        """Columns ``id, cluster, raw_cluster``."""
        return pd.DataFrame({"id": self.ids, "cluster": self.labels, "raw_cluster": self.raw_labels})


def clustering_space(X: np.ndarray, config: ClusterConfig = ClusterConfig()) -> np.ndarray:
    """Project embeddings into the space ``config`` clusters in.

    Parameters
    ----------
    X
        Embeddings (n, d).
    config
        Uses ``space``, ``n_components``, ``n_neighbors``, ``pca_components``, ``random_state``.

    Returns
    -------
    ndarray (n, c) float32
    """
    X = as_matrix(X)
    if config.space == "raw":
        return reduce_for_search(X, None)
    if config.space == "pca":
        return reduce_for_search(X, config.space_dim)
    from adde_core.analysis.projection import UMAPProjector

    if len(X) <= config.space_dim + 2:
        # UMAP cannot embed fewer points than dimensions; PCA is the honest fallback here.
        return reduce_for_search(X, config.space_dim)
    if len(X) > CLUSTER_FIT_MAX:
        ids = np.arange(len(X)).astype(str)
        return fit_cluster_space(X, ids, config).coords_for(ids)
    projector = UMAPProjector(n_components=config.space_dim, n_neighbors=config.n_neighbors, min_dist=0.0,
                              pca_components=config.pca_components, n_epochs=config.n_epochs,
                              random_state=config.random_state)
    return projector.fit_transform(X)


@dataclass(frozen=True, eq=False)
class ClusterSpace:
    """A fitted clustering space that can take new items without moving the old ones.

    Rows ``[:n_fit]`` were fitted (UMAP after PCA); later rows were placed by kNN: the
    inverse-distance-weighted mean of the clustering-space positions of their
    ``placement_k`` nearest fitted items, searched in the PCA space. That is what lets a
    stored analysis take a few generated items in milliseconds instead of refitting UMAP.

    Attributes
    ----------
    ids : ndarray of str (n,)
    coords : ndarray float32 (n, c)
    n_fit : int
    reference : ndarray float32 (n_fit, k) or None
        The fitted items in UMAP's input space; None for the ``"pca"`` and ``"raw"`` spaces
        (cheap to recompute, so they are never extended).
    pca_mean, pca_components : ndarray or None
    placement_k : int
    """

    ids: np.ndarray
    coords: np.ndarray
    n_fit: int
    reference: np.ndarray | None
    pca_mean: np.ndarray | None
    pca_components: np.ndarray | None
    placement_k: int = 10
    #: Placements with more (new x fitted) pairs than this search an IVF index; not saved.
    ann_min_pairs: int | None = ANN_MIN_PAIRS

    @property
    def can_extend(self) -> bool:
        return self.reference is not None

    def coords_for(self, ids: Sequence[str]) -> np.ndarray:
        """Positions of ``ids`` in the given order; unknown ids raise ``KeyError``."""
        pos = pd.Index(self.ids).get_indexer(list(ids))
        if (pos < 0).any():
            raise KeyError(f"{int((pos < 0).sum())} ids are not in the clustering space")
        return self.coords[pos]

    def extend(self, X: np.ndarray, ids: Sequence[str]) -> "ClusterSpace":
        """Place the rows of ``X`` whose ids are new; existing rows keep their coordinates bitwise."""
        from adde_core.analysis.density import pca_transform, unit_rows

        if self.reference is None:
            raise AddeError("this clustering space cannot be extended (only the 'umap' space can)")
        X = as_matrix(X)
        ids = np.asarray(list(ids), dtype=str)
        new = ~pd.Index(ids).isin(pd.Index(self.ids))
        if not new.any():
            return self
        base = unit_rows(X[new])
        Z = base if self.pca_mean is None else pca_transform(base, self.pca_mean, self.pca_components)
        dist, idx = search_knn(Z, self.reference, min(self.placement_k, len(self.reference)),
                               ann_min_pairs=self.ann_min_pairs)
        w = 1.0 / np.maximum(dist.astype(np.float64), 1e-9)
        w /= w.sum(axis=1, keepdims=True)
        placed = np.einsum("nk,nkd->nd", w, self.coords[: self.n_fit][idx].astype(np.float64)).astype(np.float32)
        return ClusterSpace(ids=np.concatenate([self.ids, ids[new]]), coords=np.concatenate([self.coords, placed]),
                            n_fit=self.n_fit, reference=self.reference, pca_mean=self.pca_mean,
                            pca_components=self.pca_components, placement_k=self.placement_k,
                            ann_min_pairs=self.ann_min_pairs)


def fit_cluster_space(X: np.ndarray, ids: Sequence[str], config: ClusterConfig = ClusterConfig(), *,
                      max_fit: int | None = CLUSTER_FIT_MAX, ann_min_pairs: int | None = ANN_MIN_PAIRS
                      ) -> ClusterSpace:
    """Fit the clustering space of ``config`` on ``X`` and keep what extending it needs.

    Same coordinates as :func:`clustering_space`; for the ``"umap"`` space it also keeps
    the PCA axes and the fitted rows in UMAP's input space (see :class:`ClusterSpace`).

    Parameters
    ----------
    X, ids, config
        The embeddings, their ids and the clustering settings.
    max_fit
        Past this many items the ``"umap"`` space is fitted on a uniform sample of ``max_fit``
        items and the rest are placed by kNN (:data:`CLUSTER_FIT_MAX`); None fits every item.
    ann_min_pairs
        Threshold of the placement search (see :func:`adde_core.analysis.density.search_knn`).
    """
    from adde_core.analysis.projection import UMAPProjector, sampled_fit_settings

    X = as_matrix(X)
    ids = np.asarray(list(ids), dtype=str)
    if config.space != "umap" or len(X) <= config.space_dim + 2:
        return ClusterSpace(ids=ids, coords=clustering_space(X, config), n_fit=len(ids), reference=None,
                            pca_mean=None, pca_components=None, ann_min_pairs=ann_min_pairs)
    sample = fit_sample(len(X), max_fit, config.random_state)
    fit_rows = slice(None) if sample is None else sample
    knn_method, n_epochs = sampled_fit_settings("auto", config.n_epochs, sample is not None)
    projector = UMAPProjector(n_components=config.space_dim, n_neighbors=config.n_neighbors, min_dist=0.0,
                              pca_components=config.pca_components, n_epochs=n_epochs, knn_method=knn_method,
                              random_state=config.random_state).fit(X[fit_rows])
    space = ClusterSpace(ids=ids[fit_rows], coords=np.asarray(projector.embedding_, np.float32),
                         n_fit=len(projector.embedding_), reference=np.asarray(projector.reference_, np.float32),
                         pca_mean=projector.pca_mean_, pca_components=projector.pca_components_,
                         ann_min_pairs=ann_min_pairs)
    # The unsampled items join as later items do: placed, never moving the fitted ones.
    return space if sample is None else space.extend(X, ids)


def cluster_embeddings(X: np.ndarray, ids: Sequence[str] | None = None, *, config: ClusterConfig = ClusterConfig(),
                       space: np.ndarray | None = None, fingerprint: str | None = None,
                       max_fit: int | None = HDBSCAN_FIT_MAX, ann_min_pairs: int | None = ANN_MIN_PAIRS
                       ) -> ClusterResult:
    """Cluster items in a reduced embedding space.

    Parameters
    ----------
    X
        Embeddings (n, d), rows aligned with ``ids``.
    ids
        Item ids (default ``"0" .. "n-1"``).
    config
        Method, space, sizes and noise policy.
    space
        A precomputed clustering space (n, c) to reuse instead of projecting ``X`` again.
    fingerprint
        Data fingerprint to record; computed from ``ids`` and ``X`` when omitted.
    max_fit
        Past this many items HDBSCAN runs on a uniform sample and the rest take their nearest
        sampled item's label (:data:`HDBSCAN_FIT_MAX`); None runs it on every item.
    ann_min_pairs
        Threshold of the assignment searches (see :func:`adde_core.analysis.density.search_knn`).

    Returns
    -------
    ClusterResult
        Cluster labels are renumbered 0..k-1 by decreasing size, so they are stable
        under a permutation of the clusterer's arbitrary numbering.
    """
    X = as_matrix(X)
    ids = np.asarray([str(i) for i in range(len(X))] if ids is None else list(ids), dtype=str)
    if len(ids) != len(X):
        raise AddeError(f"{len(ids)} ids but {len(X)} rows in X")
    Z = clustering_space(X, config) if space is None else as_matrix(space, name="space")
    if len(Z) != len(X):
        raise AddeError(f"space has {len(Z)} rows but X has {len(X)}")
    raw = _run_clusterer(Z, config, max_fit=max_fit, ann_min_pairs=ann_min_pairs)
    raw = _renumber_by_size(raw)
    labels = assign_noise(Z, raw, config.noise, ann_min_pairs=ann_min_pairs)
    return ClusterResult(ids=ids, labels=labels, raw_labels=raw, space=Z, config=config,
                         fingerprint=fingerprint or array_fingerprint(ids, X))


def _run_clusterer(Z: np.ndarray, config: ClusterConfig, *, max_fit: int | None = HDBSCAN_FIT_MAX,
                   ann_min_pairs: int | None = ANN_MIN_PAIRS) -> np.ndarray:
    n = len(Z)
    if config.method == "kmeans":
        from sklearn.cluster import KMeans

        k = min(config.n_clusters, n)
        return KMeans(n_clusters=k, n_init=4, random_state=config.random_state).fit_predict(Z).astype(np.int64)
    mcs = config.min_cluster_size or max(10, n // 200)
    ms = config.min_samples
    sample = fit_sample(n, max_fit, config.random_state)
    if sample is not None:
        # Sizes scale with the sample share, so a cluster is the same share of the data either way.
        share = len(sample) / n
        sampled = _hdbscan(Z[sample], max(2, round(mcs * share)), None if ms is None else max(1, round(ms * share)))
        _, nearest = search_knn(Z, Z[sample], 1, ann_min_pairs=ann_min_pairs, random_state=config.random_state)
        labels = sampled[nearest[:, 0]]
        labels[sample] = sampled  # a sampled item keeps its own label even when it has a duplicate
        return labels
    return _hdbscan(Z, mcs, ms)


def _hdbscan(Z: np.ndarray, mcs: int, ms: int | None) -> np.ndarray:
    """HDBSCAN labels of ``Z``; ``ms`` None means ``min_samples = min_cluster_size`` (after capping it)."""
    n = len(Z)
    mcs = int(min(mcs, max(2, n // 2)))
    ms = int(min(mcs if ms is None else ms, n - 1))
    try:
        import hdbscan

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return hdbscan.HDBSCAN(min_cluster_size=mcs, min_samples=ms).fit_predict(Z).astype(np.int64)
    except ImportError:  # the scikit-learn implementation gives the same clusters, a little slower
        from sklearn.cluster import HDBSCAN

        return HDBSCAN(min_cluster_size=mcs, min_samples=ms).fit_predict(Z).astype(np.int64)


def _renumber_by_size(labels: np.ndarray) -> np.ndarray:
    out = np.full(len(labels), NOISE, dtype=np.int64)
    ids, counts = np.unique(labels[labels != NOISE], return_counts=True)
    # Ties broken by the clusterer's own label, so the numbering is deterministic.
    order = ids[np.lexsort((ids, -counts))]
    for new, old in enumerate(order):
        out[labels == old] = new
    return out


def assign_noise(Z: np.ndarray, labels: np.ndarray, policy: str = "keep", *,
                 ann_min_pairs: int | None = ANN_MIN_PAIRS) -> np.ndarray:
    """Apply a noise policy to cluster labels.

    Parameters
    ----------
    Z
        The clustering space (n, c).
    labels
        Labels with ``-1`` for noise.
    policy
        ``"keep"``: noise stays ``-1``. ``"nearest"``: each noise point takes the label
        of its nearest non-noise point (nearest neighbour rather than nearest centroid,
        because HDBSCAN clusters need not be convex).
    ann_min_pairs
        Past this many (noise x clustered) pairs the nearest point is searched approximately
        (see :func:`adde_core.analysis.density.search_knn`).

    Returns
    -------
    ndarray of int
    """
    if policy not in NOISE_POLICIES:
        raise AddeError(f"noise policy must be one of {NOISE_POLICIES}, got {policy!r}")
    labels = np.asarray(labels, dtype=np.int64).copy()
    noise = labels == NOISE
    if policy == "keep" or not noise.any() or noise.all():
        return labels
    _, idx = search_knn(Z[noise], Z[~noise], 1, ann_min_pairs=ann_min_pairs)
    labels[noise] = labels[~noise][idx[:, 0]]
    return labels


def infer_subgroup_columns(items: pd.DataFrame, *, max_values: int = 20) -> list[str]:
    """Attribute columns usable as subgroups: not a core field, 2..``max_values`` distinct values."""
    cols = []
    for col in items.columns:
        if col in _NON_SUBGROUP:
            continue
        nunique = items[col].nunique(dropna=True)
        if 2 <= nunique <= max_values:
            cols.append(str(col))
    return cols


def _labelled(items: pd.DataFrame) -> pd.Series:
    label = items["label"] if "label" in items else pd.Series(np.nan, index=items.index)
    return label.notna() & (label.astype(str).str.len() > 0)


def _mix(values: pd.Series) -> dict[str, int]:
    counts = values.dropna().astype(str).value_counts()
    return {str(k): int(v) for k, v in counts.items()}


def cluster_stats(result: ClusterResult, items: pd.DataFrame, *, knn_distance: np.ndarray | None = None,
                  X: np.ndarray | None = None, subgroup_columns: Sequence[str] | None = None,
                  k: int = 10) -> pd.DataFrame:
    """One row per cluster (and one for noise, ``cluster == -1``, if any).

    Parameters
    ----------
    result
        A clustering.
    items
        Item metadata with rows aligned to ``result.ids`` (see :func:`align_items`):
        ``role``, ``label`` (missing for unlabelled items) and attribute columns.
    knn_distance
        Per-item mean distance to its k nearest neighbours in the embedding space (NaN for
        items left out, e.g. :attr:`SparseRegions.knn_distance`); computed from ``X``
        (PCA-50 of the unit rows) when omitted and ``X`` is given.
    X
        Embeddings, only used to compute ``knn_distance``.
    subgroup_columns
        Attribute columns to summarise (default: :func:`infer_subgroup_columns`).
    k
        Neighbours for the density.

    Returns
    -------
    DataFrame
        Columns ``cluster, size, share, n_seed, n_pool, n_val, n_ood`` (plus ``n_<role>`` for
        any other role), ``n_labelled, dominant_label, dominant_label_share, label_mix``,
        for each subgroup column ``<col>_mix, dominant_<col>, dominant_<col>_share``, and
        ``mean_knn_distance, relative_density`` (global mean kNN distance over the
        cluster's; > 1 is denser than average). Sizes and role counts sum to the totals.
    """
    if len(items) != len(result.ids):
        raise AddeError(f"items has {len(items)} rows but the clustering has {len(result.ids)}")
    if "id" in items and not np.array_equal(items["id"].astype(str).to_numpy(), result.ids):
        raise AddeError("items rows are not aligned with the clustering's ids; use align_items(items, ids)")
    if knn_distance is None and X is not None:
        knn_distance, _ = knn_density(reduce_for_search(X, 50), k=k)
    cols = infer_subgroup_columns(items) if subgroup_columns is None else list(subgroup_columns)
    frame = items.reset_index(drop=True).copy()
    frame["cluster"] = result.labels
    frame["_labelled"] = _labelled(frame).to_numpy()
    roles = list(ROLES) + sorted(set(frame.get("role", pd.Series(dtype=str)).dropna().astype(str)) - set(ROLES))
    global_density = float(np.nanmean(knn_distance)) if knn_distance is not None else np.nan
    rows = []
    for cluster, g in frame.groupby("cluster", sort=True):
        row: dict[str, object] = {"cluster": int(cluster), "size": len(g), "share": len(g) / len(frame)}
        role_counts = g["role"].astype(str).value_counts() if "role" in g else pd.Series(dtype=int)
        for role in roles:
            row[f"n_{role}"] = int(role_counts.get(role, 0))
        labelled = g.loc[g["_labelled"], "label"] if "label" in g else pd.Series(dtype=str)
        label_mix = _mix(labelled)
        row["n_labelled"] = int(len(labelled))
        row["dominant_label"] = next(iter(label_mix), None)
        row["dominant_label_share"] = (label_mix[row["dominant_label"]] / len(labelled)) if label_mix else np.nan
        row["label_mix"] = label_mix
        for col in cols:
            mix = _mix(g[col]) if col in g else {}
            row[f"{col}_mix"] = mix
            row[f"dominant_{col}"] = next(iter(mix), None)
            row[f"dominant_{col}_share"] = (next(iter(mix.values())) / sum(mix.values())) if mix else np.nan
        if knn_distance is not None:
            values = np.asarray(knn_distance, dtype=np.float64)[g.index.to_numpy()]
            mean = float(np.nanmean(values)) if np.isfinite(values).any() else np.nan
            row["mean_knn_distance"] = mean
            row["relative_density"] = global_density / mean if mean > 0 else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def align_items(items: pd.DataFrame, ids: Sequence[str]) -> pd.DataFrame:
    """Return ``items`` reordered so row i describes ``ids[i]`` (index reset).

    Raises
    ------
    KeyError
        If some ids have no row in ``items`` (the message names a few).
    """
    if "id" not in items:
        raise KeyError("items has no 'id' column")
    index = pd.Index(items["id"].astype(str))
    if index.has_duplicates:
        raise AddeError(f"items has duplicate ids, e.g. {index[index.duplicated()][:3].tolist()}")
    ids = np.asarray(ids).astype(str)  # an array, not a list of 10^6 strings: half the lookup's time
    pos = index.get_indexer(ids)
    if (pos < 0).any():
        missing = [str(i) for i, p in zip(ids, pos) if p < 0][:5]
        raise KeyError(f"{int((pos < 0).sum())} embedded ids have no item row, e.g. {missing}")
    return items.iloc[pos].reset_index(drop=True)
