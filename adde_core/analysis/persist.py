"""Analyses stored with the project (npz + JSON, never pickles), so a restart, a second tab or the CLI pays nothing.

Layout, next to the evolving map (``maps/<model>.npz``)::

    analysis/<model>/clusters-<config hash>.npz   clustering space, labels, fingerprint
    analysis/<model>/regions-<config hash>.npz    sparse regions, per-item evidence, cluster table

One file per (model, configs): it records the fingerprints it was computed from, so a stale
file is recognised and replaced, never silently reused. When items were added since, the map
and the clustering space are extended (old items keep their coordinates bitwise) and only
HDBSCAN, the regions and the table are recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adde_core.analysis.clustering import (
    ClusterConfig,
    ClusterResult,
    ClusterSpace,
    align_items,
    cluster_embeddings,
    cluster_stats,
    fit_cluster_space,
)
from adde_core.analysis.density import shared_searches
from adde_core.analysis.projection import LatentMap, MapConfig, fit_map
from adde_core.analysis.regions import RegionConfig, SparseRegion, SparseRegions, find_sparse_regions

STORE_FORMAT = 1
#: The clustering space is refitted (not extended) once more than this share of items was added since its fit.
EXTEND_MAX_SHARE = 0.25
#: Columns of the items frame that do not change what an analysis says (``path`` depends on where the folder is).
_NOT_ANALYSED = ("path",)

Progress = Callable[[int, int], None]


def config_hash(*configs: Any) -> str:
    """A short stable hash of dataclass configs (their fields as sorted JSON)."""
    text = json.dumps([asdict(c) for c in configs], sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def items_fingerprint(items: pd.DataFrame) -> str:
    """Fingerprint of the item metadata an analysis reads (roles, labels, attributes), in row order.

    Labels and roles change when an iteration folds decisions in while the embeddings stay the
    same, so regions and cluster tables are keyed by this as well as by the embedding fingerprint.
    """
    frame = items.drop(columns=[c for c in _NOT_ANALYSED if c in items]).reset_index(drop=True)
    frame = frame.reindex(sorted(frame.columns), axis=1).astype(str)
    h = hashlib.blake2b(digest_size=20)
    h.update("\0".join(frame.columns).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()


def _labels_fingerprint(ids: np.ndarray, labels: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=20)
    h.update("\0".join(ids.tolist()).encode())
    h.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- files
def write_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write ``arrays`` to ``path`` atomically (a temporary file renamed over it), so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_npz(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of ``path`` with its ``meta`` JSON parsed, or None when missing, unreadable or of another format.

    A None means "recompute": a stored file is a cache, never the only copy of anything.
    """
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
        meta = json.loads(str(out["meta"]))
    except (OSError, KeyError, ValueError, json.JSONDecodeError):
        return None
    if meta.get("format") != STORE_FORMAT:
        return None
    out["meta"] = meta  # type: ignore[assignment]
    return out


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` for numpy scalars and arrays and tuples (as lists)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _opt(arr: np.ndarray | None) -> np.ndarray:
    return np.zeros((0, 0), np.float32) if arr is None else arr


def _unopt(arr: np.ndarray) -> np.ndarray | None:
    return None if arr.size == 0 else arr


def regions_to_arrays(regions: Sequence[SparseRegion]) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
    """Regions as JSON-able rows plus two arrays (all members concatenated, one centroid per row).

    The map position is not stored: it is the ``centre_id`` member's position on whichever map
    the regions are drawn on (see :func:`regions_from_arrays`).
    """
    rows = [{"region_id": r.region_id, "kind": r.kind, "score": r.score, "centre_id": r.centre_id,
             "role_counts": r.role_counts, "label_counts": r.label_counts, "subgroup_counts": r.subgroup_counts,
             "n_unlabelled": r.n_unlabelled, "nearest_dataset_ids": list(r.nearest_dataset_ids),
             "reason": r.reason, "n_members": int(r.size)} for r in regions]
    members = (np.concatenate([np.asarray(r.member_ids).astype(str) for r in regions])
               if regions else np.zeros(0, dtype=str))
    dim = np.asarray(regions[0].centroid).shape[0] if regions else 0
    centroids = (np.stack([np.asarray(r.centroid) for r in regions]) if regions
                 else np.zeros((0, dim), np.float32))
    return rows, members, centroids


def regions_from_arrays(rows: Sequence[Mapping[str, Any]], members: np.ndarray, centroids: np.ndarray,
                        position: Callable[[str], tuple[float, float] | None]) -> list[SparseRegion]:
    """The regions :func:`regions_to_arrays` stored, each placed at ``position(centre_id)`` (None without a centre)."""
    out, start = [], 0
    for row, centroid in zip(rows, centroids):
        n = int(row["n_members"])
        centre = row["centre_id"]
        out.append(SparseRegion(
            region_id=row["region_id"], kind=row["kind"], score=float(row["score"]),
            member_ids=members[start:start + n], centroid=centroid,
            centroid_2d=position(centre) if centre is not None else None,
            role_counts=dict(row["role_counts"]), label_counts=dict(row["label_counts"]),
            subgroup_counts={k: dict(v) for k, v in row["subgroup_counts"].items()},
            n_unlabelled=int(row["n_unlabelled"]), nearest_dataset_ids=tuple(row["nearest_dataset_ids"]),
            reason=row["reason"], centre_id=centre))
        start += n
    return out


class AnalysisStore:
    """The stored clusterings and region sets of one project (see the module docstring).

    Parameters
    ----------
    root
        The folder to keep them in (``<project>/analysis``).
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def _folder(self, model_key: str) -> Path:
        from adde_core.store.database import slugify

        return self.root / slugify(model_key)

    def cluster_path(self, model_key: str, config: ClusterConfig) -> Path:
        return self._folder(model_key) / f"clusters-{config_hash(config)}.npz"

    def region_path(self, model_key: str, cluster_config: ClusterConfig, region_config: RegionConfig) -> Path:
        return self._folder(model_key) / f"regions-{config_hash(cluster_config, region_config)}.npz"

    # ------------------------------------------------------------- clusters
    def save_clusters(self, path: Path, clusters: ClusterResult, space: ClusterSpace) -> None:
        meta = {"format": STORE_FORMAT, "fingerprint": clusters.fingerprint, "config": asdict(clusters.config),
                "n_fit": space.n_fit, "placement_k": space.placement_k}
        write_npz(path, meta=np.array(json.dumps(meta, default=json_default)), ids=clusters.ids.astype(str),
                   labels=clusters.labels, raw_labels=clusters.raw_labels, space_ids=space.ids.astype(str),
                   space=space.coords, space_rows=pd.Index(space.ids).get_indexer(clusters.ids),
                   reference=_opt(space.reference), pca_mean=_opt(space.pca_mean),
                   pca_components=_opt(space.pca_components))

    def load_clusters(self, path: Path, config: ClusterConfig) -> tuple[ClusterResult, ClusterSpace] | None:
        z = read_npz(path)
        if z is None:
            return None
        meta = z["meta"]
        space = ClusterSpace(ids=z["space_ids"], coords=z["space"], n_fit=int(meta["n_fit"]),
                             reference=_unopt(z["reference"]), pca_mean=_unopt(z["pca_mean"]),
                             pca_components=_unopt(z["pca_components"]), placement_k=int(meta["placement_k"]))
        ids = z["ids"]
        # The rows of ``ids`` in the space were stored with it (an id lookup costs seconds at 10^6).
        rows = z.get("space_rows")
        ok = rows is not None and len(rows) == len(ids) and bool((rows >= 0).all())
        coords = space.coords[rows] if ok else space.coords_for(ids)
        result = ClusterResult(ids=ids, labels=z["labels"], raw_labels=z["raw_labels"], space=coords,
                               config=config, fingerprint=str(meta["fingerprint"]))
        return result, space

    # ------------------------------------------------------------- regions
    def save_regions(self, path: Path, regions: SparseRegions, table: pd.DataFrame, key: dict[str, str]) -> None:
        rows, members, centroids = regions_to_arrays(regions.regions)
        meta = {"format": STORE_FORMAT, "key": key, "fingerprint": regions.fingerprint, "regions": rows,
                "table_columns": [str(c) for c in table.columns],
                "table": table.to_dict(orient="records")}
        write_npz(path, meta=np.array(json.dumps(meta, default=json_default)), ids=regions.ids.astype(str),
                   knn_distance=regions.knn_distance, gap_score=regions.gap_score, members=members,
                   centroids=centroids)

    def load_regions(self, path: Path, key: dict[str, str], config: RegionConfig,
                     position: Callable[[str], tuple[float, float] | None]
                     ) -> tuple[SparseRegions, pd.DataFrame] | None:
        """The stored regions and table when they were computed from ``key``; ``position(item_id)`` places them."""
        z = read_npz(path)
        if z is None or z["meta"].get("key") != key:
            return None
        meta = z["meta"]
        out = regions_from_arrays(meta["regions"], z["members"], z["centroids"], position)
        regions = SparseRegions(regions=out, ids=z["ids"], knn_distance=z["knn_distance"], gap_score=z["gap_score"],
                                config=config, fingerprint=str(meta["fingerprint"]))
        table = pd.DataFrame(meta["table"], columns=meta["table_columns"])
        return regions, table


# --------------------------------------------------------------------------- the analysis
def analyze_stored(store: AnalysisStore, map_path: Path, *, model_key: str, fingerprint: str,
                   load_vectors: Callable[[], tuple[np.ndarray, np.ndarray]], items: pd.DataFrame,
                   map_config: MapConfig = MapConfig(), cluster_config: ClusterConfig = ClusterConfig(),
                   region_config: RegionConfig = RegionConfig(), refit: bool = False,
                   progress: Progress | None = None) -> Any:
    """The analysis of one embedding set, from the store when it is there, computing only what is missing.

    Parameters
    ----------
    store, map_path
        Where the clusterings/regions and the evolving map are kept.
    model_key, fingerprint
        The embedding set and its fingerprint (from the store's row: no vectors are read on a hit).
    load_vectors
        Returns ``(ids, vectors)`` of the embedding set; called only when something is computed.
    items
        Item metadata with an ``id`` column (hidden oracle labels excluded).
    map_config, cluster_config, region_config
        Settings of each step; each is part of the key.
    refit
        Fit a new map and align it to the stored one (one-shot: the refitted map is stored and
        later analyses extend it). Clusters and regions do not depend on the map's layout
        and are kept.
    progress
        ``progress(done, 4)``: called with 0 first, only when something must be computed.

    Returns
    -------
    AnalysisResult
        ``timings`` holds seconds per step, and ``reused`` the steps taken from the store.
    """
    from adde_core.analysis import AnalysisResult

    timings: dict[str, float] = {}
    reused: list[str] = []
    cache: dict[str, Any] = {}
    started = [False]

    def vectors() -> tuple[np.ndarray, np.ndarray]:
        if "X" not in cache:
            ids, X = load_vectors()
            cache["ids"], cache["X"] = np.asarray(ids, dtype=str), X
        return cache["ids"], cache["X"]

    def begin() -> None:
        # The first computation announces itself, so a caller shows progress only when there is work.
        if progress is not None and not started[0]:
            started[0] = True
            progress(0, 4)

    def tick(done: int) -> None:
        if progress is not None and started[0]:
            progress(done, 4)

    # The map and the clustering space build the same kNN graph and place the same items: search once.
    with shared_searches(self_k=max(map_config.n_neighbors, cluster_config.n_neighbors)):
        # --- clusters file first: when it is current it also gives the ids without reading the vectors.
        t = time.perf_counter()
        cpath = store.cluster_path(model_key, cluster_config)
        loaded = store.load_clusters(cpath, cluster_config)
        current = loaded is not None and loaded[0].fingerprint == fingerprint
        ids = loaded[0].ids if current else vectors()[0]

        # --- map
        latent = LatentMap.load(map_path) if map_path.exists() else None
        # One lookup of the ids on the map serves the check and the coordinates: at 10^6 items
        # pandas' isin on string ids alone took 9 of the 36 s of reading a stored analysis.
        rows = None if latent is None else pd.Index(latent.ids).get_indexer(ids)
        on_map = rows is not None and bool((rows >= 0).all())
        if latent is None or refit or latent.model_key != model_key or latent.config != map_config or not on_map:
            begin()
            ids, X = vectors()
            if latent is None:
                latent = fit_map(X, ids, config=map_config, model_key=model_key, fingerprint=fingerprint)
            elif refit or latent.model_key != model_key or latent.config != map_config:
                latent = latent.refit(X, ids, config=map_config, fingerprint=fingerprint)
                if latent.model_key != model_key:
                    latent = replace(latent, model_key=model_key)
            else:
                latent = latent.extend(X, ids, fingerprint=fingerprint)
            latent.save(map_path)
        else:
            reused.append("map")
        coords = latent.coords[rows] if "map" in reused else latent.coords_for(ids)
        timings["map"] = time.perf_counter() - t
        tick(1)

        # --- clusters
        t = time.perf_counter()
        if current:
            clusters = loaded[0]
            reused.append("clusters")
        else:
            begin()
            ids, X = vectors()
            space = None
            if loaded is not None and loaded[1].can_extend:
                old = loaded[1]
                known = pd.Index(ids).isin(pd.Index(old.ids))
                if pd.Index(old.ids[: old.n_fit]).isin(pd.Index(ids)).all() and \
                        len(old.ids) + (~known).sum() - old.n_fit <= EXTEND_MAX_SHARE * old.n_fit:
                    space = old.extend(X, ids)
                    reused.append("cluster space (extended)")
            if space is None:
                space = fit_cluster_space(X, ids, cluster_config)
            clusters = cluster_embeddings(X, ids, config=cluster_config, space=space.coords_for(ids),
                                          fingerprint=fingerprint)
            store.save_clusters(cpath, clusters, space)
        timings["clusters"] = time.perf_counter() - t
        tick(2)

    # --- regions and the per-cluster table
    t = time.perf_counter()
    aligned = align_items(items, ids)
    key = {"fingerprint": fingerprint, "items": items_fingerprint(aligned),
           "clusters": _labels_fingerprint(clusters.ids, clusters.labels)}
    rpath = store.region_path(model_key, cluster_config, region_config)
    pos = pd.Index(latent.ids)

    def position(item_id: str) -> tuple[float, float] | None:
        p = pos.get_indexer([item_id])[0]
        return None if p < 0 else (float(latent.coords[p, 0]), float(latent.coords[p, 1]))

    stored = store.load_regions(rpath, key, region_config, position)
    if stored is not None:
        regions, table = stored
        reused += ["regions", "stats"]
        timings["regions"] = time.perf_counter() - t
        tick(3)
        timings["stats"] = 0.0
    else:
        begin()
        ids, X = vectors()
        regions = find_sparse_regions(X, aligned, clusters=clusters, coords=coords, config=region_config,
                                      fingerprint=fingerprint)
        timings["regions"] = time.perf_counter() - t
        tick(3)
        t = time.perf_counter()
        table = cluster_stats(clusters, aligned, knn_distance=regions.knn_distance)
        store.save_regions(rpath, regions, table, key)
        timings["stats"] = time.perf_counter() - t
    tick(4)
    result = AnalysisResult(map=latent, coords=coords, items=aligned.assign(cluster=clusters.labels),
                            clusters=clusters, cluster_table=table, regions=regions, fingerprint=fingerprint,
                            timings=timings, reused=tuple(reused), store_dir=str(rpath.parent))
    return result
