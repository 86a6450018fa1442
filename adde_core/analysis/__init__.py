"""Diversity analysis engine: the stable latent map, clustering, kNN density and sparse-region detection.

Importing this package is cheap (numpy and pandas only): umap, hdbscan, scikit-learn and
scipy are imported inside the functions that need them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from adde_core.analysis.clustering import (
    ClusterConfig,
    ClusterResult,
    align_items,
    assign_noise,
    cluster_embeddings,
    cluster_stats,
    clustering_space,
    infer_subgroup_columns,
)
from adde_core.analysis.density import (
    array_fingerprint,
    fit_pca,
    knn,
    knn_density,
    reduce_for_search,
    shared_searches,
)
from adde_core.analysis.projection import (
    Alignment,
    LatentMap,
    MapConfig,
    PCAProjector,
    UMAPProjector,
    align_procrustes,
    fit_map,
)
from adde_core.analysis.regions import (
    KINDS,
    RegionConfig,
    SparseRegion,
    SparseRegions,
    coverage_gap_scores,
    find_sparse_regions,
)

__all__ = [
    "KINDS", "Alignment", "AnalysisResult", "ClusterConfig", "ClusterResult", "LatentMap", "MapConfig",
    "PCAProjector", "RegionConfig", "SparseRegion", "SparseRegions", "UMAPProjector", "align_items",
    "align_procrustes", "analyze_embeddings", "array_fingerprint", "assign_noise", "cluster_embeddings",
    "cluster_stats", "clustering_space", "coverage_gap_scores", "find_sparse_regions", "fit_map", "fit_pca",
    "infer_subgroup_columns", "knn", "knn_density", "reduce_for_search",
]


@dataclass(frozen=True, eq=False)
class AnalysisResult:
    """Everything the Explore and Diversity pages draw, for one embedding set.

    Attributes
    ----------
    map : LatentMap
        May hold more items than ``items`` (it keeps items it placed earlier).
    coords : ndarray (n, 2)
        Map positions of ``items``' rows.
    items : DataFrame
        Item metadata aligned with the embeddings, with a ``cluster`` column added.
    clusters : ClusterResult
    cluster_table : DataFrame
        :func:`cluster_stats`.
    regions : SparseRegions
    fingerprint : str
    timings : dict
        Seconds per step (``map``, ``clusters``, ``regions``, ``stats``).
    reused : tuple of str
        Steps taken from the project's stored analysis rather than computed
        (see :mod:`adde_core.analysis.persist`).
    store_dir : str or None
        The folder the analysis is stored in (None when it was not stored), where results
        derived from it (the Diversity cards) are kept too.
    """

    map: LatentMap
    coords: np.ndarray
    items: pd.DataFrame
    clusters: ClusterResult
    cluster_table: pd.DataFrame
    regions: SparseRegions
    fingerprint: str
    timings: dict[str, float] = field(default_factory=dict)
    reused: tuple[str, ...] = ()
    store_dir: str | None = None


def analyze_embeddings(X: np.ndarray, ids: Sequence[str], items: pd.DataFrame, *, model_key: str = "",
                       fingerprint: str | None = None, map_config: MapConfig = MapConfig(),
                       cluster_config: ClusterConfig = ClusterConfig(), region_config: RegionConfig = RegionConfig(),
                       previous_map: LatentMap | None = None, refit: bool = False,
                       progress: Callable[[int, int], None] | None = None) -> AnalysisResult:
    """Run the whole analysis step: map, clusters, per-cluster stats and sparse regions.

    Parameters
    ----------
    X
        Embeddings (n, d), rows aligned with ``ids``.
    ids
        Item ids.
    items
        Item metadata with an ``id`` column (any order; it is aligned to ``ids``). Do not
        pass hidden oracle labels.
    model_key, fingerprint
        Recorded on the results (the store's embedding-set fingerprint is ideal).
    map_config, cluster_config, region_config
        Settings of each step.
    previous_map
        The map shown so far. When it came from the same model and config, new items are
        added with :meth:`LatentMap.extend` (nobody moves); otherwise, or with
        ``refit=True``, a new map is fitted and aligned to it.
    refit
        Fit a new map even when ``previous_map`` could be extended.
    progress
        Called as ``progress(done_steps, 4)``.

    Returns
    -------
    AnalysisResult
    """
    timings: dict[str, float] = {}
    ids = np.asarray(list(ids), dtype=str)
    items = align_items(items, ids)
    fingerprint = fingerprint or array_fingerprint(ids, np.ascontiguousarray(X, dtype=np.float32))

    def step(name: str, start: float, done: int) -> None:
        timings[name] = time.perf_counter() - start
        if progress is not None:
            progress(done, 4)

    # The map and the clustering space build the same kNN graph and place the same items: search once.
    with shared_searches(self_k=max(map_config.n_neighbors, cluster_config.n_neighbors)):
        t = time.perf_counter()
        if previous_map is None:
            latent = fit_map(X, ids, config=map_config, model_key=model_key, fingerprint=fingerprint)
        elif refit or previous_map.model_key != model_key or previous_map.config != map_config:
            latent = previous_map.refit(X, ids, config=map_config, fingerprint=fingerprint)
            latent = _with_model_key(latent, model_key)
        else:
            latent = previous_map.extend(X, ids)
        coords = latent.coords_for(ids)
        step("map", t, 1)

        t = time.perf_counter()
        clusters = cluster_embeddings(X, ids, config=cluster_config, fingerprint=fingerprint)
        step("clusters", t, 2)

    t = time.perf_counter()
    regions = find_sparse_regions(X, items, clusters=clusters, coords=coords, config=region_config,
                                  fingerprint=fingerprint)
    step("regions", t, 3)

    t = time.perf_counter()
    # Reuse the regions' kNN distances (density items only) rather than searching again.
    table = cluster_stats(clusters, items, knn_distance=regions.knn_distance)
    step("stats", t, 4)
    return AnalysisResult(map=latent, coords=coords, items=items.assign(cluster=clusters.labels), clusters=clusters,
                          cluster_table=table, regions=regions, fingerprint=fingerprint, timings=timings)


def _with_model_key(latent: LatentMap, model_key: str) -> LatentMap:
    from dataclasses import replace

    return latent if latent.model_key == model_key else replace(latent, model_key=model_key)
