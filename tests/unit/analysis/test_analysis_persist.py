"""The stored-analysis helpers: extendable clustering space, config and metadata fingerprints."""

from __future__ import annotations

import numpy as np
import pandas as pd

from adde_core.analysis import ClusterConfig, RegionConfig
from adde_core.analysis.clustering import ClusterSpace, fit_cluster_space
from adde_core.analysis.persist import config_hash, items_fingerprint


def _blobs(n=240, d=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, d)) * 6
    X = centres[np.arange(n) % 4] + rng.normal(size=(n, d))
    return X.astype(np.float32), np.arange(n) % 4


def test_cluster_space_extend_keeps_old_rows_bitwise_and_places_new_ones_near_their_kind():
    X, y = _blobs()
    ids = [f"i{k}" for k in range(len(X))]
    space = fit_cluster_space(X[:200], ids[:200], ClusterConfig(n_components=3, n_neighbors=10))
    assert isinstance(space, ClusterSpace) and space.can_extend
    grown = space.extend(X, ids)
    assert np.array_equal(grown.coords[:200], space.coords)
    assert grown.n_fit == 200 and len(grown.ids) == 240
    # Each new point lands nearest the centroid of its own blob.
    centroids = np.stack([space.coords[y[:200] == c].mean(axis=0) for c in range(4)])
    new = grown.coords_for(ids[200:])
    nearest = np.argmin(((new[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (nearest == y[200:]).mean() > 0.9
    assert grown.extend(X, ids) is grown  # nothing new: unchanged


def test_pca_space_is_not_extendable():
    X, _ = _blobs()
    space = fit_cluster_space(X, [str(i) for i in range(len(X))], ClusterConfig(space="pca", n_components=5))
    assert not space.can_extend


def test_config_hash_is_stable_and_distinguishes_configs():
    assert config_hash(ClusterConfig(), RegionConfig()) == config_hash(ClusterConfig(), RegionConfig())
    assert config_hash(ClusterConfig()) != config_hash(ClusterConfig(min_cluster_size=50))
    assert config_hash(RegionConfig(kind_weights={"outlier": 0.5})) != config_hash(RegionConfig())


def test_items_fingerprint_ignores_paths_but_not_labels():
    items = pd.DataFrame({"id": ["a", "b"], "role": ["seed", "pool"], "label": ["cat", None], "path": ["/x", "/y"]})
    fp = items_fingerprint(items)
    assert items_fingerprint(items.assign(path=["/moved/x", "/moved/y"])) == fp
    assert items_fingerprint(items.assign(label=["cat", "dog"])) != fp
    assert items_fingerprint(items.assign(role=["seed", "seed"])) != fp


def test_stored_clusters_round_trip_bitwise_with_and_without_the_stored_rows(tmp_path):
    from adde_core.analysis import cluster_embeddings
    from adde_core.analysis.persist import AnalysisStore, read_npz, write_npz

    X, _ = _blobs()
    ids = np.asarray([f"i{k}" for k in range(len(X))])
    config = ClusterConfig(n_components=3, n_neighbors=10)
    # The space in another order than the clustering (as a sampled fit stores it: sample first).
    order = np.random.default_rng(0).permutation(len(X))
    space = fit_cluster_space(X[order], ids[order], config)
    clusters = cluster_embeddings(X, ids, config=config, space=space.coords_for(ids), fingerprint="fp")
    store = AnalysisStore(tmp_path)
    path = store.cluster_path("m", config)
    store.save_clusters(path, clusters, space)
    loaded, loaded_space = store.load_clusters(path, config)
    assert np.array_equal(loaded.ids, clusters.ids) and np.array_equal(loaded.labels, clusters.labels)
    assert np.array_equal(loaded.space, clusters.space) and np.array_equal(loaded_space.coords, space.coords)
    # A file written before the rows were stored gives the same result by looking the ids up.
    z = read_npz(path)
    import json
    older = {k: v for k, v in z.items() if k not in ("space_rows", "meta")}
    write_npz(path, meta=np.array(json.dumps(z["meta"])), **older)
    again, _ = store.load_clusters(path, config)
    assert np.array_equal(again.space, clusters.space)
