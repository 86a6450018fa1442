"""Sparse-region detection in embedding space: coverage gaps, small clusters, low-density areas and outliers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from adde_core.errors import AddeError
from adde_core.analysis.clustering import NOISE, ClusterResult, _labelled, _mix, infer_subgroup_columns
from adde_core.analysis.density import (
    fit_sample,
    ANN_MIN_PAIRS,
    array_fingerprint,
    as_matrix,
    reduce_for_search,
    robust_z,
    search_knn,
)

KINDS = ("coverage_gap", "small_cluster", "low_density", "outlier")
GAP_GROUPINGS = ("both", "cluster", "neighbourhood")
#: Past this many density items, kNN densities are measured against a uniform sample of this many
#: (see ``_density_knn``). The self-search over every item is n^2: at 10^6 items in PCA-50 even the
#: IVF index spent over 9 minutes on 2 shared cores (0.64 recall@10 at 24 of 4,000 lists on a
#: 50-d mixture), while 10^6 queries against a 10^5 sample cost a tenth of it. Up to this size
#: (the demo included) densities are computed exactly as before.
DENSITY_REFERENCE_MAX = 100_000
#: Most targets the coverage-gap radius r_T is measured against (k_T scaled down to match). At
#: 10^6 items with 2,000 seed items the reference was 200k targets searched for 201 neighbours each,
#: over 3 minutes of the analysis on 2 shared cores; 50k targets and k_T = 50 hold the same share
#: (a noisier radius, but r_D with its 2 neighbours is noisier still). Demo-sized sets are unaffected.
GAP_REFERENCE_MAX = 50_000


@dataclass(frozen=True)
class RegionConfig:
    """What counts as sparse, and how regions are ranked.

    Every score is a ratio >= 1 saying how many times thinner than expected the region is
    (its meaning per kind is in :class:`SparseRegion`); regions are ranked by
    ``config.weight(kind) * score``.

    Attributes
    ----------
    dataset_roles
        Labelled items with these roles are the dataset D_t (accepted items belong here
        once they carry the dataset's role).
    target_roles
        The sets D_t should cover (val and pool by default).
    density_roles
        Items considered for low-density areas and outliers. OOD items are left out by
        default: they are off-distribution by design and would fill the outlier list.
    pca_components
        kNN search runs on PCA of the unit-normalised embeddings to this dimension
        (None: the full embeddings). 50 keeps ~77% of the variance of EfficientNet-Lite0
        features and makes 10k x 1280 detection take about a second.
    k
        Neighbours for the kNN density (mean distance to the k nearest items).
    gap_dataset_k
        Dataset neighbours defining the dataset's density radius at a target point; the
        target radius uses ``gap_dataset_k * n_target / n_dataset`` neighbours, so both
        radii hold the same share of their set when the two distributions agree.
    gap_max_target_k
        Upper bound on that target k; above it the target reference set is subsampled.
    gap_min_ratio
        A coverage gap must have targets at least this many times over-represented
        relative to the dataset (target share / dataset share).
    gap_point_z
        A target point is a gap point when its log radius ratio has robust z above this.
    gap_grouping
        Group gap evidence by ``"cluster"``, by connected ``"neighbourhood"``, or ``"both"``
        (neighbourhood groups mostly inside a reported cluster gap are dropped).
    min_region_size
        Smallest group reported (outliers excepted).
    small_cluster_fraction
        A cluster is small when its size is at most this fraction of the median cluster size.
    low_density_z, outlier_z
        Robust z of log mean-kNN-distance above which a point is in a low-density area,
        or an outlier.
    max_outliers
        At most this many outliers are reported, the most isolated first.
    max_regions
        Length of the ranked list.
    n_nearest
        Nearest dataset items listed per region.
    kind_weights
        Multipliers on each kind's score for the joint ranking (a dict or pairs; kinds
        not listed weigh 1; stored as sorted pairs). Coverage gaps lead by
        default because they are measured against the target distribution (the dataset
        misses something val/pool has); a small cluster or an outlier may be harmless.
    random_state
        Seed for subsampling the target reference set.
    """

    dataset_roles: tuple[str, ...] = ("seed",)
    target_roles: tuple[str, ...] = ("val", "pool")
    density_roles: tuple[str, ...] = ("seed", "pool", "val")
    pca_components: int | None = 50
    k: int = 10
    gap_dataset_k: int = 2
    gap_max_target_k: int = 200
    gap_min_ratio: float = 2.0
    gap_point_z: float = 2.0
    gap_grouping: str = "both"
    min_region_size: int = 5
    small_cluster_fraction: float = 0.5
    low_density_z: float = 2.0
    outlier_z: float = 3.5
    max_outliers: int = 10
    max_regions: int = 20
    n_nearest: int = 5
    kind_weights: Mapping[str, float] | tuple[tuple[str, float], ...] = (
        ("coverage_gap", 1.0), ("low_density", 1.0), ("outlier", 0.5), ("small_cluster", 0.5))
    random_state: int = 0

    def __post_init__(self) -> None:
        for name in ("dataset_roles", "target_roles", "density_roles"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(r, str) for r in value):
                raise AddeError(f"{name} must be a tuple of role names, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        for name in ("k", "gap_dataset_k", "gap_max_target_k", "min_region_size", "max_regions", "n_nearest"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise AddeError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.max_outliers, int) or self.max_outliers < 0:
            raise AddeError(f"max_outliers must be a non-negative integer, got {self.max_outliers!r}")
        if self.pca_components is not None and (not isinstance(self.pca_components, int) or self.pca_components < 2):
            raise AddeError(f"pca_components must be None or an integer >= 2, got {self.pca_components!r}")
        if self.gap_grouping not in GAP_GROUPINGS:
            raise AddeError(f"gap_grouping must be one of {GAP_GROUPINGS}, got {self.gap_grouping!r}")
        if self.gap_min_ratio < 1:
            raise AddeError(f"gap_min_ratio must be >= 1, got {self.gap_min_ratio}")
        if not 0 < self.small_cluster_fraction <= 1:
            raise AddeError(f"small_cluster_fraction must be in (0, 1], got {self.small_cluster_fraction}")
        weights = dict(self.kind_weights)
        if set(weights) - set(KINDS) or any(not isinstance(w, (int, float)) or w < 0 for w in weights.values()):
            raise AddeError(f"kind_weights takes non-negative weights for {KINDS}, got {weights!r}")
        # Stored as sorted pairs so the config stays hashable (usable as a cache key).
        object.__setattr__(self, "kind_weights", tuple(sorted((k, float(w)) for k, w in weights.items())))

    def weight(self, kind: str) -> float:
        """The ranking weight of a region kind (1 for kinds not listed in ``kind_weights``)."""
        return dict(self.kind_weights).get(kind, 1.0)


@dataclass(frozen=True, eq=False)
class SparseRegion:
    """A place in embedding space where the data is thin, with the evidence for it.

    Attributes
    ----------
    region_id
        Stable within one analysis, e.g. ``"coverage_gap/cluster-3"``, ``"outlier/am-00042"``.
    kind
        ``coverage_gap``: val/pool are ``score`` times more concentrated here than the
        dataset (share of targets over share of dataset items, dataset count smoothed by
        +0.5). ``small_cluster``: ``score`` = median cluster size / this cluster's size.
        ``low_density`` and ``outlier``: ``score`` = the members' mean kNN distance over
        the median of all items.
    score
        The ratio above; ranking uses ``config.weight(kind) * score``.
    member_ids
        Items in the region (all roles).
    centroid
        Mean of the members' embeddings (input space).
    centroid_2d
        Map position of the member nearest the centroid (always on a real point), or None
        without a map.
    role_counts, label_counts, subgroup_counts
        Mixes among the members. Labels come only from labelled members; pool items'
        labels are unknown (``n_unlabelled``).
    n_unlabelled
        Members without a label.
    nearest_dataset_ids
        The dataset items nearest the centroid: what the dataset already has close by.
    reason
        One sentence saying why the region was flagged.
    centre_id
        The member nearest the centroid (where ``centroid_2d`` is taken from), so a stored
        region can be placed on a refitted map without detecting it again.
    """

    region_id: str
    kind: str
    score: float
    member_ids: np.ndarray
    centroid: np.ndarray
    centroid_2d: tuple[float, float] | None
    role_counts: dict[str, int]
    label_counts: dict[str, int]
    subgroup_counts: dict[str, dict[str, int]]
    n_unlabelled: int
    nearest_dataset_ids: tuple[str, ...]
    reason: str
    centre_id: str | None = None

    @property
    def size(self) -> int:
        return len(self.member_ids)

    @property
    def dominant_labels(self) -> list[tuple[str, float]]:
        """Up to three (label, share among labelled members)."""
        total = sum(self.label_counts.values())
        return [(k, v / total) for k, v in list(self.label_counts.items())[:3]] if total else []

    @property
    def description(self) -> str:
        """A short human-readable summary: reason, labels, subgroups, nearest examples."""
        parts = [self.reason]
        if self.label_counts:
            labels = ", ".join(f"{k} {s:.0%}" for k, s in self.dominant_labels)
            parts.append(f"Labels ({sum(self.label_counts.values())} labelled): {labels}.")
        else:
            parts.append("No labelled members.")
        if self.n_unlabelled:
            parts.append(f"{self.n_unlabelled} members are unlabelled (pool): their labels are unknown.")
        for col, mix in self.subgroup_counts.items():
            total = sum(mix.values())
            if total:
                top = ", ".join(f"{k} {v / total:.0%}" for k, v in list(mix.items())[:2])
                parts.append(f"{col}: {top}.")
        if self.nearest_dataset_ids:
            parts.append(f"Nearest dataset items: {', '.join(self.nearest_dataset_ids[:3])}.")
        return " ".join(parts)


@dataclass(frozen=True, eq=False)
class SparseRegions:
    """The ranked regions plus the per-item evidence they were built from.

    Attributes
    ----------
    regions : list of SparseRegion
        Best first.
    ids : ndarray of str
    knn_distance : ndarray (n,)
        Mean distance to the k nearest density items (NaN for items outside ``density_roles``).
    gap_score : ndarray (n,)
        log(dataset radius / target radius) at target items (NaN elsewhere); > 0 means
        the dataset is thinner there than the targets.
    config : RegionConfig
    fingerprint : str
    """

    regions: list[SparseRegion]
    ids: np.ndarray
    knn_distance: np.ndarray
    gap_score: np.ndarray
    config: RegionConfig
    fingerprint: str

    def __len__(self) -> int:
        return len(self.regions)

    def __iter__(self):
        return iter(self.regions)

    def get(self, region_id: str) -> SparseRegion:
        """The region with this id (``KeyError`` if absent)."""
        for region in self.regions:
            if region.region_id == region_id:
                return region
        raise KeyError(region_id)

    def of_kind(self, kind: str) -> list[SparseRegion]:
        """Regions of one kind, in rank order."""
        return [r for r in self.regions if r.kind == kind]

    def to_frame(self) -> pd.DataFrame:
        """One row per region (rank order) for listing beside the map."""
        rows = []
        for rank, r in enumerate(self.regions, start=1):
            top = r.dominant_labels[0] if r.dominant_labels else (None, np.nan)
            rows.append({"rank": rank, "region_id": r.region_id, "kind": r.kind, "score": r.score, "size": r.size,
                         "dominant_label": top[0], "dominant_label_share": top[1], "n_unlabelled": r.n_unlabelled,
                         "x": r.centroid_2d[0] if r.centroid_2d else np.nan,
                         "y": r.centroid_2d[1] if r.centroid_2d else np.nan, "reason": r.reason,
                         "description": r.description})
        return pd.DataFrame(rows, columns=["rank", "region_id", "kind", "score", "size", "dominant_label",
                                           "dominant_label_share", "n_unlabelled", "x", "y", "reason", "description"])


# --------------------------------------------------------------------------- detection
def coverage_gap_scores(Z: np.ndarray, dataset: np.ndarray, target: np.ndarray, *, dataset_k: int = 2,
                        max_target_k: int = 200, random_state: int = 0,
                        ann_min_pairs: int | None = ANN_MIN_PAIRS,
                        max_reference: int | None = GAP_REFERENCE_MAX) -> tuple[np.ndarray, np.ndarray]:
    """Per-target-point evidence that the dataset is thinner there than the targets.

    At each target point take r_D, the distance to its ``dataset_k``-th nearest dataset
    item, and r_T, the distance to its k_T-th nearest other target item with
    ``k_T = dataset_k * n_T / n_D``. Both balls then hold the same expected share of their
    set where the two distributions agree, so ``log(r_D / r_T)`` is about 0 there and
    positive where the dataset is under-represented. Unlike a ratio of kNN densities it
    needs no estimate of the intrinsic dimension.

    Parameters
    ----------
    Z
        Items in the analysis space (n, c).
    dataset, target
        Boolean masks (n,).
    dataset_k, max_target_k
        See :class:`RegionConfig`; when ``k_T`` would exceed ``max_target_k``, a random
        subset of targets serves as the reference so the shares still match.
    random_state
        Seed for that subset.
    ann_min_pairs
        Searches past this many pairs are approximate
        (:func:`adde_core.analysis.density.search_knn`).
    max_reference
        At most this many targets serve as the reference (:data:`GAP_REFERENCE_MAX`), with
        ``k_T`` scaled down to keep the shares equal; None: no limit beyond ``max_target_k``.

    Returns
    -------
    score : ndarray (n_targets,)
        ``log(r_D / r_T)`` for the targets, in item order.
    target_radius : ndarray (n_targets,)
        r_T, the radius used to link neighbouring gap points.
    """
    t_idx, d_idx = np.flatnonzero(target), np.flatnonzero(dataset)
    n_t, n_d = len(t_idx), len(d_idx)
    k_d = min(dataset_k, n_d)
    ref = t_idx
    k_t = int(round(k_d * n_t / n_d))
    keep = n_t
    if k_t > max_target_k:
        keep = int(round(max_target_k * n_d / k_d))
        k_t = max_target_k
    if max_reference is not None and keep > max_reference:
        # Fewer reference targets with k_t scaled down keeps the two balls' shares equal.
        keep = int(max_reference)
        k_t = max(1, int(round(keep * k_d / n_d)))
    if keep < n_t:
        ref = t_idx[fit_sample(n_t, keep, random_state)]
    k_t = int(np.clip(k_t, 1, len(ref) - 1))
    if len(ref) == n_t:
        r_t = search_knn(Z[t_idx], Z[t_idx], k_t, exclude_self=True, ann_min_pairs=ann_min_pairs)[0][:, -1]
    else:
        # A target that is in the reference subset would find itself at distance 0: ask for
        # one more neighbour and drop self-matches.
        dist, idx = search_knn(Z[t_idx], Z[ref], k_t + 1, ann_min_pairs=ann_min_pairs)
        is_self = ref[idx] == t_idx[:, None]
        r_t = np.where(is_self.any(axis=1), dist[:, -1], dist[:, -2])
    r_d = search_knn(Z[t_idx], Z[d_idx], k_d, ann_min_pairs=ann_min_pairs)[0][:, -1]
    eps = 1e-12
    return np.log((r_d + eps) / (r_t + eps)), r_t


def _groups(Z: np.ndarray, points: np.ndarray, radius: np.ndarray, k: int,
            ann_min_pairs: int | None = ANN_MIN_PAIRS) -> list[np.ndarray]:
    """Connected groups of ``points``: link two when one is among the other's k nearest within its radius."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    m = len(points)
    if m == 0:
        return []
    if m == 1:
        return [points]
    dist, idx = search_knn(Z[points], Z[points], min(k, m - 1), exclude_self=True, ann_min_pairs=ann_min_pairs)
    rows = np.repeat(np.arange(m), dist.shape[1])
    ok = (dist <= radius[:, None]).ravel()
    graph = coo_matrix((np.ones(int(ok.sum())), (rows[ok], idx.ravel()[ok])), shape=(m, m))
    n_comp, comp = connected_components(graph, directed=True, connection="weak")
    return [points[comp == c] for c in range(n_comp)]


def find_sparse_regions(X: np.ndarray, items: pd.DataFrame, *, clusters: ClusterResult | None = None,
                        coords: np.ndarray | None = None, config: RegionConfig = RegionConfig(),
                        in_dataset: np.ndarray | None = None, subgroup_columns: Sequence[str] | None = None,
                        fingerprint: str | None = None, ann_min_pairs: int | None = ANN_MIN_PAIRS,
                        density_reference_max: int | None = DENSITY_REFERENCE_MAX) -> SparseRegions:
    """Find and rank sparse regions in the full embedding space.

    Parameters
    ----------
    X
        Embeddings (n, d), rows aligned with ``items``.
    items
        Item metadata aligned with ``X`` (see :func:`adde_core.analysis.align_items`):
        ``id``, ``role``, ``label`` (missing when unlabelled) and attribute columns.
        Hidden (oracle) labels must not be passed and are never read.
    clusters
        A clustering of the same items: enables small-cluster regions and
        cluster-level coverage gaps.
    coords
        2-D map coordinates (n, 2) aligned with ``X``, for drawing region positions.
    config
        Thresholds and ranking.
    in_dataset
        Boolean mask overriding the dataset definition (default: labelled items whose
        role is in ``config.dataset_roles``).
    subgroup_columns
        Attribute columns to summarise (default: inferred).
    fingerprint
        Data fingerprint to record (computed when omitted).
    ann_min_pairs
        kNN searches past this many (query x reference) pairs use an IVF index
        (:func:`adde_core.analysis.density.search_knn`); smaller ones stay exact, so every
        project up to ~63k items gets the same regions as an exact search. None: always exact.
    density_reference_max
        Past this many density items, each item's kNN density is measured against a uniform
        sample of this many (:data:`DENSITY_REFERENCE_MAX`); None: against all of them.

    Returns
    -------
    SparseRegions
        Regions ranked by weighted score, at most ``config.max_regions``.
    """
    X = as_matrix(X)
    n = len(X)
    if len(items) != n:
        raise AddeError(f"items has {len(items)} rows but X has {n}")
    items = items.reset_index(drop=True)
    ids = items["id"].astype(str).to_numpy() if "id" in items else np.asarray([str(i) for i in range(n)])
    if clusters is not None and not np.array_equal(clusters.ids, ids):
        raise AddeError("clusters were computed for other items or another order than items")
    if coords is not None and np.shape(coords) != (n, 2):
        raise AddeError(f"coords must have shape ({n}, 2), got {np.shape(coords)}")
    role = items["role"].astype(str).to_numpy() if "role" in items else np.full(n, "pool")
    labelled = _labelled(items).to_numpy()
    if in_dataset is not None and np.shape(in_dataset) != (n,):
        raise AddeError(f"in_dataset must be a boolean mask of length {n}, got shape {np.shape(in_dataset)}")
    dataset = (np.isin(role, config.dataset_roles) & labelled) if in_dataset is None else np.asarray(in_dataset, bool)
    target = np.isin(role, config.target_roles) & ~dataset
    dense_set = np.isin(role, config.density_roles) | dataset
    cols = infer_subgroup_columns(items) if subgroup_columns is None else list(subgroup_columns)

    Z = reduce_for_search(X, config.pca_components)
    describe = _Describer(X, Z, items, ids, role, labelled, dataset, coords, cols, config.n_nearest)
    knn_distance, density_regions = _density_regions(Z, dense_set, ids, config, describe, ann_min_pairs,
                                                     density_reference_max)
    gap_score, gap_regions = _gap_regions(Z, dataset, target, clusters, config, describe, ann_min_pairs)
    candidates = density_regions + gap_regions + _small_cluster_regions(clusters, config, describe)
    ranked = sorted(candidates, key=lambda r: (-config.weight(r.kind) * r.score, r.region_id))
    return SparseRegions(regions=ranked[: config.max_regions], ids=ids, knn_distance=knn_distance,
                         gap_score=gap_score, config=config, fingerprint=fingerprint or array_fingerprint(ids, X))


def _density_knn(Zd: np.ndarray, k: int, max_reference: int | None, ann_min_pairs: int | None,
                 random_state: int) -> np.ndarray:
    """Distances from every row to its k nearest other rows, or to its k nearest rows of a uniform sample.

    Past ``max_reference`` rows the neighbours come from a seeded uniform sample of that many
    rows (a row of the sample skips itself): the density is then measured at a coarser scale
    (the k-th of m sampled rows lies about as far as the (k n / m)-th of all n), which keeps
    outliers and thin areas apart from the rest while the search costs n x m, not n^2.
    """
    sample = fit_sample(len(Zd), max_reference, random_state)
    if sample is None:
        return search_knn(Zd, Zd, k, exclude_self=True, ann_min_pairs=ann_min_pairs)[0]
    dist, idx = search_knn(Zd, Zd[sample], k + 1, ann_min_pairs=ann_min_pairs, random_state=random_state)
    own = sample[idx] == np.arange(len(Zd))[:, None]
    own[~own.any(axis=1), -1] = True  # a row outside the sample drops its farthest neighbour instead
    return dist[~own].reshape(len(Zd), k)


def _density_regions(Z: np.ndarray, dense_set: np.ndarray, ids: np.ndarray, config: RegionConfig,
                     describe: "_Describer", ann_min_pairs: int | None,
                     max_reference: int | None) -> tuple[np.ndarray, list[SparseRegion]]:
    """Outliers and low-density groups among the density items, plus every item's mean kNN distance."""
    n = len(Z)
    knn_distance = np.full(n, np.nan)
    regions: list[SparseRegion] = []
    d_idx = np.flatnonzero(dense_set)
    if len(d_idx) <= config.k + 1:
        return knn_distance, regions
    dist = _density_knn(Z[d_idx], config.k, max_reference, ann_min_pairs, config.random_state)
    mean_d = dist.mean(axis=1).astype(np.float64)
    knn_distance[d_idx] = mean_d
    median = max(float(np.median(mean_d)), 1e-12)  # guards a set made mostly of duplicates
    # Log distances: kNN distances are right-skewed, and ratios are what "sparser" means.
    z = robust_z(np.log(np.maximum(mean_d, 1e-12)))
    outliers = np.flatnonzero(z > config.outlier_z)
    for j in outliers[np.argsort(-z[outliers], kind="stable")][: config.max_outliers]:
        i = d_idx[j]
        regions.append(describe(
            f"outlier/{ids[i]}", "outlier", mean_d[j] / median, np.array([i]),
            f"Outlier: its {config.k} nearest neighbours are {mean_d[j] / median:.1f}x farther than usual "
            f"(robust z {z[j]:.1f})."))
    low = np.flatnonzero((z > config.low_density_z) & (z <= config.outlier_z))
    groups = _groups(Z[d_idx], low, dist[low, -1], config.k, ann_min_pairs)
    for g, members in enumerate(sorted(groups, key=len, reverse=True)):
        if len(members) < config.min_region_size:
            continue
        ratio = float(np.mean(mean_d[members]) / median)
        regions.append(describe(
            f"low_density/group-{g}", "low_density", ratio, d_idx[members],
            f"Low density: {len(members)} items whose neighbours are on average {ratio:.1f}x farther than usual."))
    return knn_distance, regions


def _gap_regions(Z: np.ndarray, dataset: np.ndarray, target: np.ndarray, clusters: ClusterResult | None,
                 config: RegionConfig, describe: "_Describer", ann_min_pairs: int | None
                 ) -> tuple[np.ndarray, list[SparseRegion]]:
    """Coverage gaps by cluster and by connected neighbourhood of gap points, plus per-item gap scores."""
    gap_score = np.full(len(Z), np.nan)
    regions: list[SparseRegion] = []
    n_d, n_t = int(dataset.sum()), int(target.sum())
    if n_d < 1 or n_t <= max(config.gap_dataset_k, 2):
        return gap_score, regions
    t_idx = np.flatnonzero(target)
    s, r_t = coverage_gap_scores(Z, dataset, target, dataset_k=config.gap_dataset_k,
                                 max_target_k=config.gap_max_target_k, random_state=config.random_state,
                                 ann_min_pairs=ann_min_pairs)
    gap_score[t_idx] = s
    target_names = "/".join(config.target_roles)
    reported: list[np.ndarray] = []

    def ratio_of(n_target: int, n_dataset: int) -> float:
        # Share of targets over share of the dataset; +0.5 keeps a tiny group with no dataset
        # item from looking infinitely under-represented.
        return (n_target / n_t) / ((n_dataset + 0.5) / n_d)

    if clusters is not None and config.gap_grouping in ("both", "cluster"):
        for c in np.unique(clusters.labels[clusters.labels != NOISE]):
            members = np.flatnonzero(clusters.labels == c)
            c_t, c_d = int(target[members].sum()), int(dataset[members].sum())
            ratio = ratio_of(c_t, c_d)
            if c_t < config.min_region_size or ratio < config.gap_min_ratio:
                continue
            reported.append(members[target[members]])
            regions.append(describe(
                f"coverage_gap/cluster-{c}", "coverage_gap", ratio, members,
                f"Coverage gap: cluster {c} holds {c_t / n_t:.1%} of {target_names} items but {c_d / n_d:.1%} "
                f"of the dataset ({c_d} items): {ratio:.1f}x under-represented."))
    if config.gap_grouping in ("both", "neighbourhood"):
        flagged = np.flatnonzero((robust_z(s) > config.gap_point_z) & (s > 0))
        # Each dataset item counts toward the group of its nearest target item.
        nearest_t = search_knn(Z[dataset], Z[t_idx], 1, ann_min_pairs=ann_min_pairs)[1][:, 0]
        d_count = np.bincount(nearest_t, minlength=len(t_idx))
        groups = sorted(_groups(Z[t_idx], flagged, r_t[flagged], config.k, ann_min_pairs), key=len, reverse=True)
        for g, members in enumerate(groups):
            items_idx = t_idx[members]
            if len(members) < config.min_region_size or any(np.isin(items_idx, p).mean() >= 0.5 for p in reported):
                continue  # too small, or mostly inside a cluster gap already reported
            g_d = int(d_count[members].sum())
            ratio = ratio_of(len(members), g_d)
            if ratio < config.gap_min_ratio:
                continue
            reported.append(items_idx)
            regions.append(describe(
                f"coverage_gap/group-{g}", "coverage_gap", ratio, items_idx,
                f"Coverage gap: {len(members)} {target_names} items in a neighbourhood where the dataset has "
                f"{g_d} items: {ratio:.1f}x under-represented."))
    return gap_score, regions


def _small_cluster_regions(clusters: ClusterResult | None, config: RegionConfig,
                           describe: "_Describer") -> list[SparseRegion]:
    """Clusters at most ``small_cluster_fraction`` of the median cluster size (needs >= 3 clusters)."""
    if clusters is None:
        return []
    labels = clusters.labels[clusters.labels != NOISE]
    if len(np.unique(labels)) < 3:
        return []
    sizes = pd.Series(labels).value_counts()
    median_size = float(sizes.median())
    regions = []
    for c, size in sizes.sort_values(kind="stable").items():
        if size > config.small_cluster_fraction * median_size:
            break
        regions.append(describe(
            f"small_cluster/cluster-{c}", "small_cluster", median_size / size, np.flatnonzero(clusters.labels == c),
            f"Small cluster: cluster {c} has {size} items, {median_size / size:.1f}x fewer than the median cluster "
            f"({median_size:.0f})."))
    return regions


class _Describer:
    """Builds a :class:`SparseRegion` from member indices (shared lookups computed once)."""

    def __init__(self, X: np.ndarray, Z: np.ndarray, items: pd.DataFrame, ids: np.ndarray, role: np.ndarray,
                 labelled: np.ndarray, dataset: np.ndarray, coords: np.ndarray | None, cols: list[str],
                 n_nearest: int) -> None:
        self.X, self.Z, self.items, self.ids, self.role = X, Z, items, ids, role
        self.labelled, self.dataset_idx, self.coords, self.cols = labelled, np.flatnonzero(dataset), coords, cols
        self.n_nearest = n_nearest

    def __call__(self, region_id: str, kind: str, score: float, members: np.ndarray, reason: str) -> SparseRegion:
        members = np.sort(np.asarray(members, dtype=np.int64))
        centroid = self.X[members].mean(axis=0)
        z_centroid = self.Z[members].mean(axis=0, keepdims=True)
        centre = members[int(np.argmin(((self.Z[members] - z_centroid) ** 2).sum(axis=1)))]
        nearest: tuple[str, ...] = ()
        if len(self.dataset_idx):
            _, idx = search_knn(z_centroid, self.Z[self.dataset_idx], self.n_nearest)
            nearest = tuple(self.ids[self.dataset_idx[idx[0]]].tolist())
        sub = self.items.iloc[members]
        lab = self.labelled[members]
        return SparseRegion(
            region_id=region_id, kind=kind, score=float(score), member_ids=self.ids[members], centroid=centroid,
            centroid_2d=None if self.coords is None else (float(self.coords[centre, 0]), float(self.coords[centre, 1])),
            role_counts=_mix(pd.Series(self.role[members])),
            label_counts=_mix(sub.loc[lab, "label"]) if "label" in sub else {},
            subgroup_counts={c: _mix(sub[c]) for c in self.cols if c in sub},
            n_unlabelled=int((~lab).sum()), nearest_dataset_ids=nearest, reason=reason,
            centre_id=str(self.ids[centre]),
        )
