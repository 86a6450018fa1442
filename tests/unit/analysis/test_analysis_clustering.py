"""Clustering: known blobs, k-means, noise policies, per-cluster stats that add up."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from adde_core.analysis import ClusterConfig, align_items, assign_noise, cluster_embeddings, cluster_stats


def three_blobs(n_per: int = 120, dim: int = 32, seed: int = 0, n_noise: int = 0):
    rng = np.random.default_rng(seed)
    mus = rng.normal(size=(3, dim)) * 10
    truth = np.repeat(np.arange(3), [n_per, n_per + 40, n_per + 80])  # unequal sizes: 120, 160, 200
    X = mus[truth] + rng.normal(size=(len(truth), dim))
    if n_noise:
        X = np.vstack([X, rng.uniform(-25, 25, size=(n_noise, dim))])
        truth = np.concatenate([truth, np.full(n_noise, -1)])
    return X.astype(np.float32), truth


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to renaming the clusters."""
    return len(set(zip(a, b))) == len(set(a)) == len(set(b))


def items_for(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    role = rng.choice(["seed", "pool", "val", "ood"], size=n, p=[0.2, 0.5, 0.2, 0.1])
    label = np.where(role == "pool", None, rng.choice(["a", "b", "c"], size=n))
    return pd.DataFrame({"id": [f"x{i}" for i in range(n)], "role": role, "label": label, "source": "test",
                         "pose": rng.choice(["upright", "horizontal"], size=n)})


@pytest.mark.parametrize("space", ["umap", "pca", "raw"])
def test_hdbscan_finds_three_blobs(space):
    X, truth = three_blobs()
    res = cluster_embeddings(X, config=ClusterConfig(space=space, min_cluster_size=20))
    assert res.n_clusters == 3
    assert same_partition(res.labels[res.labels >= 0], truth[res.labels >= 0])
    assert res.raw_noise_fraction < 0.05
    # Renumbered by size: cluster 0 is the largest blob (200 items).
    assert (res.labels == 0).sum() >= (res.labels == 1).sum() >= (res.labels == 2).sum()
    assert res.space.shape[0] == len(X) and res.config.space == space


def test_kmeans_option_finds_three_blobs():
    X, truth = three_blobs()
    res = cluster_embeddings(X, config=ClusterConfig(method="kmeans", n_clusters=3, space="pca"))
    assert res.n_clusters == 3 and res.noise_fraction == 0.0
    assert same_partition(res.labels, truth)


def test_noise_policies():
    X, truth = three_blobs(n_noise=25, seed=2)
    keep = cluster_embeddings(X, config=ClusterConfig(space="pca", min_cluster_size=20, noise="keep"))
    near = cluster_embeddings(X, config=ClusterConfig(space="pca", min_cluster_size=20, noise="nearest"))
    assert (keep.labels == -1).sum() >= 20  # the scattered points are noise
    assert np.array_equal(keep.raw_labels, near.raw_labels)
    assert near.noise_fraction == 0.0 and keep.noise_fraction > 0
    clustered = keep.labels >= 0
    assert np.array_equal(near.labels[clustered], keep.labels[clustered])  # only noise moves
    assert same_partition(near.labels[truth >= 0], truth[truth >= 0])


def test_assign_noise_takes_the_nearest_clustered_neighbour():
    Z = np.array([[0.0, 0], [0.1, 0], [10, 0], [10.1, 0], [0.4, 0], [9.5, 0], [5.1, 0]], dtype=np.float32)
    labels = np.array([0, 0, 1, 1, -1, -1, -1])
    np.testing.assert_array_equal(assign_noise(Z, labels, "nearest"), [0, 0, 1, 1, 0, 1, 1])
    np.testing.assert_array_equal(assign_noise(Z, labels, "keep"), labels)
    with pytest.raises(ValueError, match="noise policy"):
        assign_noise(Z, labels, "drop")


def test_cluster_stats_sum_to_totals():
    X, _ = three_blobs(n_noise=25, seed=2)
    items = items_for(len(X))
    res = cluster_embeddings(X, items["id"], config=ClusterConfig(space="pca", min_cluster_size=20))
    table = cluster_stats(res, items, X=X)
    assert table["size"].sum() == len(X)
    assert -1 in set(table["cluster"])  # the noise row is listed, not hidden
    role_cols = ["n_seed", "n_pool", "n_val", "n_ood"]
    assert (table[role_cols].sum(axis=1) == table["size"]).all()
    for role in ("seed", "pool", "val", "ood"):
        assert table[f"n_{role}"].sum() == (items["role"] == role).sum()
    assert table["n_labelled"].sum() == items["label"].notna().sum()
    for _, row in table.iterrows():
        assert sum(row["label_mix"].values()) == row["n_labelled"]
        assert sum(row["pose_mix"].values()) == row["size"]
        if row["n_labelled"]:
            assert row["dominant_label_share"] == max(row["label_mix"].values()) / row["n_labelled"]
    assert table["share"].sum() == pytest.approx(1.0)
    assert (table["mean_knn_distance"] > 0).all() and table["relative_density"].notna().all()


def test_cluster_stats_requires_aligned_items():
    X, _ = three_blobs()
    items = items_for(len(X))
    res = cluster_embeddings(X, items["id"], config=ClusterConfig(space="pca", min_cluster_size=20))
    shuffled = items.sample(frac=1.0, random_state=0)
    with pytest.raises(ValueError, match="align_items"):
        cluster_stats(res, shuffled)
    assert len(cluster_stats(res, align_items(shuffled, res.ids))) == 3
    with pytest.raises(KeyError, match="no item row"):
        align_items(items.iloc[5:], res.ids)


def test_clustering_is_deterministic():
    X, _ = three_blobs(seed=5)
    a = cluster_embeddings(X, config=ClusterConfig(random_state=7))
    b = cluster_embeddings(X, config=ClusterConfig(random_state=7))
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.space, b.space)
    assert a.fingerprint == b.fingerprint


def test_cluster_config_validates():
    with pytest.raises(ValueError, match="method"):
        ClusterConfig(method="dbscan")
    with pytest.raises(ValueError, match="noise"):
        ClusterConfig(noise="drop")
    with pytest.raises(ValueError, match="min_cluster_size"):
        ClusterConfig(min_cluster_size=1)
    assert ClusterConfig(space="pca").space_dim == 50 and ClusterConfig().space_dim == 10
