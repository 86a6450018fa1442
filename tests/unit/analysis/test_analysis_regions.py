"""Sparse regions on constructed data with known answers: a coverage gap, a small cluster, an outlier."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from adde_core.analysis import ClusterConfig, RegionConfig, cluster_embeddings, coverage_gap_scores, find_sparse_regions


@pytest.fixture(scope="module")
def world():
    """Blobs a, b, c are covered by the dataset (seed); blob d only by val and pool; e is tiny; one far outlier."""
    rng = np.random.default_rng(0)
    dim = 32
    mus = {k: rng.normal(size=dim) * 12 for k in "abcde"}
    rows, items = [], []

    def add(blob: str, role: str, n: int, labelled: bool) -> None:
        for _ in range(n):
            rows.append(mus[blob] + rng.normal(size=dim))
            items.append({"role": role, "label": blob if labelled else None, "truth": blob,
                          "pose": rng.choice(["upright", "horizontal"])})

    for blob in "abc":
        add(blob, "seed", 30, True)
    for blob in "abcd":
        add(blob, "pool", 150, False)
        add(blob, "val", 20, True)
    add("e", "seed", 2, True)
    add("e", "pool", 10, False)
    rows.append(rng.normal(size=dim) * 60)
    items.append({"role": "pool", "label": None, "truth": "outlier", "pose": "upright"})
    X = np.asarray(rows, dtype=np.float32)
    frame = pd.DataFrame(items)
    frame.insert(0, "id", [f"p{i:04d}" for i in range(len(frame))])
    truth = frame.pop("truth").to_numpy()
    perm = rng.permutation(len(frame))
    frame = frame.iloc[perm].reset_index(drop=True)
    return X[perm], frame, truth[perm]


@pytest.fixture(scope="module")
def clusters(world):
    X, items, _ = world
    return cluster_embeddings(X, items["id"], config=ClusterConfig(space="pca", min_cluster_size=8))


def test_constructed_coverage_gap_is_ranked_first(world, clusters):
    X, items, truth = world
    coords = np.random.default_rng(1).normal(size=(len(X), 2))
    res = find_sparse_regions(X, items, clusters=clusters, coords=coords)
    top = res.regions[0]
    assert top.kind == "coverage_gap"
    members = pd.Index(items["id"]).get_indexer(top.member_ids)
    assert (truth[members] == "d").mean() == 1.0
    assert (truth == "d").sum() == top.size  # the whole uncovered blob, nothing else
    assert top.label_counts == {"d": 20}  # labels come only from labelled (val) members
    assert top.n_unlabelled == 150 and "unknown" in top.description
    assert top.role_counts == {"pool": 150, "val": 20}
    assert top.score > 10
    # Nearest dataset examples are real dataset items; the 2-D anchor is a member's position.
    seed_ids = set(items.loc[items["role"] == "seed", "id"])
    assert len(top.nearest_dataset_ids) == 5 and set(top.nearest_dataset_ids) <= seed_ids
    anchor = pd.Index(items["id"]).get_indexer(top.member_ids)
    assert any(np.allclose(top.centroid_2d, coords[i]) for i in anchor)
    assert top.centroid.shape == (X.shape[1],)
    # Covered blobs are never flagged as gaps.
    for region in res.of_kind("coverage_gap"):
        idx = pd.Index(items["id"]).get_indexer(region.member_ids)
        assert not np.isin(truth[idx], ["a", "b", "c"]).any()


def test_small_cluster_and_outlier_are_found(world, clusters):
    X, items, truth = world
    res = find_sparse_regions(X, items, clusters=clusters)
    small = res.of_kind("small_cluster")
    assert small, res.to_frame()
    idx = pd.Index(items["id"]).get_indexer(small[0].member_ids)
    assert (truth[idx] == "e").all()
    outliers = res.of_kind("outlier")
    assert outliers and outliers[0].member_ids.tolist() == [items["id"][truth == "outlier"].item()]


def test_neighbourhood_gaps_without_clusters(world):
    X, items, truth = world
    res = find_sparse_regions(X, items, config=RegionConfig(gap_grouping="neighbourhood"))
    gaps = res.of_kind("coverage_gap")
    assert gaps
    idx = pd.Index(items["id"]).get_indexer(gaps[0].member_ids)
    assert (truth[idx] == "d").mean() > 0.95 and len(idx) > 100
    target = items["role"].isin(["val", "pool"]).to_numpy()
    assert np.isnan(res.gap_score[~target]).all()
    assert np.nanmean(res.gap_score[truth == "d"]) > np.nanmean(res.gap_score[truth == "a"]) + 0.5


def test_gap_scores_are_near_zero_when_distributions_agree():
    rng = np.random.default_rng(2)
    Z = rng.normal(size=(2000, 5)).astype(np.float32)
    dataset = np.zeros(2000, bool)
    dataset[rng.choice(2000, 200, replace=False)] = True
    s, _ = coverage_gap_scores(Z, dataset, ~dataset, dataset_k=2)
    assert abs(np.median(s)) < 0.15


def test_hidden_labels_are_never_read(world, clusters):
    X, items, _ = world
    base = find_sparse_regions(X, items, clusters=clusters)
    leaked = items.assign(oracle_label=np.random.default_rng(3).choice(list("xyz"), size=len(items)))
    again = find_sparse_regions(X, leaked, clusters=clusters)
    assert [r.region_id for r in again] == [r.region_id for r in base]
    assert [r.label_counts for r in again] == [r.label_counts for r in base]


def test_regions_are_deterministic_and_listable(world, clusters):
    X, items, _ = world
    a = find_sparse_regions(X, items, clusters=clusters)
    b = find_sparse_regions(X, items, clusters=clusters)
    assert [(r.region_id, r.score) for r in a] == [(r.region_id, r.score) for r in b]
    frame = a.to_frame()
    assert list(frame["rank"]) == list(range(1, len(a) + 1))
    weighted = [a.config.weight(r.kind) * r.score for r in a]
    assert hash(a.config) == hash(RegionConfig())  # hashable: usable as a cache key
    assert weighted == sorted(weighted, reverse=True)
    assert a.get(a.regions[0].region_id) is a.regions[0]


def test_kind_weights_change_the_ranking(world, clusters):
    X, items, _ = world
    res = find_sparse_regions(X, items, clusters=clusters,
                              config=RegionConfig(kind_weights={"coverage_gap": 0.0, "outlier": 1.0}))
    assert res.regions[0].kind != "coverage_gap"


def test_without_a_dataset_there_are_no_gaps(world):
    X, items, _ = world
    unlabeled = items.assign(label=None)
    res = find_sparse_regions(X, unlabeled)
    assert not res.of_kind("coverage_gap") and np.isnan(res.gap_score).all()


def test_region_config_validates():
    with pytest.raises(ValueError, match="dataset_roles"):
        RegionConfig(dataset_roles="seed")
    with pytest.raises(ValueError, match="gap_grouping"):
        RegionConfig(gap_grouping="tiles")
    with pytest.raises(ValueError, match="kind_weights"):
        RegionConfig(kind_weights={"novelty": 1.0})
