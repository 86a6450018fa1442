"""The large-project paths (sampled UMAP and HDBSCAN fits, IVF kNN) on small arrays with the thresholds lowered."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from adde_core.analysis import ClusterConfig, MapConfig, RegionConfig, cluster_embeddings, fit_map, knn
from adde_core.analysis.clustering import CLUSTER_FIT_MAX, HDBSCAN_FIT_MAX, fit_cluster_space
from adde_core.analysis.density import ANN_MIN_PAIRS, knn_density, search_knn
from adde_core.analysis.projection import MAP_FIT_MAX, fit_sample
from adde_core.analysis.regions import coverage_gap_scores, find_sparse_regions

FAST_MAP = MapConfig(n_epochs=30)


def mixture(n: int, dim: int, k: int, *, seed: int = 0, spread: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows from ``k`` well-separated isotropic Gaussians; returns (X float32, component per row)."""
    rng = np.random.default_rng(seed)
    comp = rng.integers(0, k, n)
    means = rng.normal(scale=spread, size=(k, dim))
    return (means[comp] + rng.normal(size=(n, dim))).astype(np.float32), comp


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    return mixture(5_000, 16, 8)


# --------------------------------------------------------------------------- kNN
def test_search_below_threshold_is_the_exact_search(blobs):
    X, _ = blobs
    exact = knn(X[:500], X, 7)
    same = search_knn(X[:500], X, 7)  # 2.5M pairs, far below the default threshold
    assert np.array_equal(exact[0], same[0]) and np.array_equal(exact[1], same[1])


@pytest.mark.parametrize("exclude_self", [False, True])
def test_ivf_search_finds_most_true_neighbours_at_their_exact_distances(blobs, exclude_self):
    X, _ = blobs
    k = 10
    d_ex, i_ex = knn(X, X, k, exclude_self=exclude_self)
    d_ann, i_ann = search_knn(X, X, k, exclude_self=exclude_self, ann_min_pairs=0)
    assert d_ann.shape == (len(X), k) and i_ann.dtype == np.int64
    assert ((i_ann >= 0) & (i_ann < len(X))).all()
    assert (np.diff(d_ann, axis=1) >= -1e-5).all()  # ascending
    if exclude_self:
        assert not (i_ann == np.arange(len(X))[:, None]).any()
    # Every returned distance is the true distance to that row ...
    true = np.linalg.norm(X[i_ann] - X[:, None, :], axis=2)
    np.testing.assert_allclose(d_ann, true, rtol=1e-4, atol=1e-3)
    # ... an approximate j-th neighbour is never nearer than the exact j-th ...
    assert (d_ann >= d_ex - 0.05).all()  # the exact search's expanded-square distances carry ~0.02 error
    # ... and most exact neighbours are found.
    recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(i_ann.tolist(), i_ex.tolist())])
    assert recall > 0.9


def test_knn_density_past_threshold_is_close_to_exact(blobs):
    X, _ = blobs
    exact, _ = knn_density(X, k=10)
    approx, _ = knn_density(X, k=10, ann_min_pairs=0)
    assert (approx >= exact - 0.05).all()
    assert np.median(approx / exact - 1) < 0.01


def test_demo_sized_projects_keep_the_exact_paths():
    # The 9,716-item demo (and anything up to 50k items) fits every item and searches exactly.
    assert fit_sample(9_716, MAP_FIT_MAX, 0) is None
    assert fit_sample(9_716, CLUSTER_FIT_MAX, 0) is None and fit_sample(9_716, HDBSCAN_FIT_MAX, 0) is None
    assert 9_716 ** 2 <= ANN_MIN_PAIRS


def test_fit_sample_is_a_reproducible_sorted_subset():
    a, b = fit_sample(10_000, 1_000, 3), fit_sample(10_000, 1_000, 3)
    assert np.array_equal(a, b) and len(np.unique(a)) == 1_000 and (np.diff(a) > 0).all()
    assert not np.array_equal(a, fit_sample(10_000, 1_000, 4))
    assert np.array_equal(fit_sample(10_000, 1_000, None), fit_sample(10_000, 1_000, 0))


# --------------------------------------------------------------------------- the map
@pytest.fixture(scope="module")
def sampled_map(blobs):
    X, _ = blobs
    X, ids = X[:3_000], np.char.add("i", np.arange(3_000).astype(str))
    return X, ids, fit_map(X, ids, config=FAST_MAP, max_fit=1_000)


def test_sampled_map_places_the_sample_as_a_fit_on_the_sample(sampled_map):
    X, ids, latent = sampled_map
    sample = fit_sample(len(X), 1_000, FAST_MAP.random_state)
    alone = fit_map(X[sample], ids[sample], config=FAST_MAP)
    assert latent.n_fit == 1_000
    assert np.array_equal(latent.ids[:1_000], ids[sample])
    assert np.array_equal(latent.coords_for(ids[sample]), alone.coords)  # bitwise
    assert np.array_equal(latent.reference, alone.reference)


def test_sampled_map_places_the_rest_by_knn_placement(sampled_map):
    X, ids, latent = sampled_map
    sample = fit_sample(len(X), 1_000, FAST_MAP.random_state)
    rest = np.setdiff1d(np.arange(len(X)), sample)
    assert len(latent) == len(X) and set(latent.ids.tolist()) == set(ids.tolist())
    placement = pd.Series(latent.placement).value_counts().to_dict()
    assert placement == {"knn": 2_000, "fit": 1_000}
    np.testing.assert_array_equal(latent.coords_for(ids[rest]), latent.place_knn(X[rest]))
    # The fingerprint is that of all the data; the fit's is that of the sample.
    assert latent.fingerprint != latent.fit_fingerprint


def test_sampled_map_keeps_the_mixture_components_apart(sampled_map, blobs):
    X, ids, latent = sampled_map
    comp = blobs[1][:3_000]
    xy = latent.coords_for(ids)
    # Nearest map neighbour of a placed item comes from its own component.
    _, nn = knn(xy, xy, 1, exclude_self=True)
    assert np.mean(comp[nn[:, 0]] == comp) > 0.95


# --------------------------------------------------------------------------- clustering
def test_sampled_cluster_space_fits_the_sample_and_places_the_rest(blobs):
    X, _ = blobs
    X, ids = X[:2_000], np.char.add("i", np.arange(2_000).astype(str))
    config = ClusterConfig(n_epochs=30)
    space = fit_cluster_space(X, ids, config, max_fit=800)
    alone = fit_cluster_space(X[fit_sample(2_000, 800, 0)], ids[fit_sample(2_000, 800, 0)], config)
    assert space.n_fit == 800 and len(space.ids) == 2_000
    assert np.array_equal(space.coords[:800], alone.coords)
    assert set(space.ids.tolist()) == set(ids.tolist())


def test_sampled_hdbscan_recovers_the_mixture(blobs):
    X, comp = blobs
    Z = X[:, :10]  # a given clustering space: only HDBSCAN and the assignment run
    config = ClusterConfig(space="pca", min_cluster_size=100)
    full = cluster_embeddings(X, space=Z, config=config, max_fit=None)
    sampled = cluster_embeddings(X, space=Z, config=config, max_fit=1_000, ann_min_pairs=0)
    assert adjusted_rand_score(comp, sampled.raw_labels) > 0.9
    assert adjusted_rand_score(full.raw_labels, sampled.raw_labels) > 0.9
    # The sampled items carry exactly the labels HDBSCAN gave the sample (up to renumbering).
    sample = fit_sample(len(X), 1_000, config.random_state)
    on_sample = cluster_embeddings(X[sample], space=Z[sample], config=ClusterConfig(space="pca", min_cluster_size=20))
    assert adjusted_rand_score(on_sample.raw_labels, sampled.raw_labels[sample]) == 1.0


def test_sampled_hdbscan_scales_the_cluster_sizes(blobs):
    X, _ = blobs
    Z = X[:, :10]
    # min_cluster_size 4,000 of 5,000 items: no cluster in full, none on a 10% sample either.
    result = cluster_embeddings(X, space=Z, config=ClusterConfig(space="pca", min_cluster_size=4_000),
                                max_fit=500, ann_min_pairs=0)
    assert result.n_clusters <= 1


# --------------------------------------------------------------------------- regions
def test_ivf_regions_find_the_same_missing_component():
    rng = np.random.default_rng(1)
    X, comp = mixture(4_000, 24, 6, seed=1)
    role = np.where(rng.random(len(X)) < 0.1, "val", "pool").astype(object)
    seed_rows = rng.choice(np.flatnonzero(comp != 5), size=300, replace=False)
    role[seed_rows] = "seed"
    items = pd.DataFrame({"id": np.char.add("i", np.arange(len(X)).astype(str)), "role": role,
                          "label": np.where(role == "seed", np.char.add("c", comp.astype(str)), None)})
    found = {}
    for name, threshold in (("exact", None), ("ivf", 0)):
        regions = find_sparse_regions(X, items, config=RegionConfig(pca_components=None), ann_min_pairs=threshold)
        gaps = regions.of_kind("coverage_gap")
        assert gaps, name
        members = pd.Index(items["id"]).get_indexer(gaps[0].member_ids)
        found[name] = set(members.tolist())
        assert np.mean(comp[members] == 5) > 0.9, name  # the gap is the component the seed misses
        assert len(members) > 0.5 * np.sum((comp == 5) & (role != "seed")), name
    overlap = len(found["exact"] & found["ivf"]) / len(found["exact"] | found["ivf"])
    assert overlap > 0.8


def test_sampled_density_reference_keeps_outliers_and_ranks_like_the_exact_density():
    from scipy.stats import spearmanr

    X, comp = mixture(4_000, 16, 5, seed=2)
    X = np.vstack([X, np.full((1, 16), 40.0, np.float32)])  # one far outlier
    items = pd.DataFrame({"id": np.char.add("i", np.arange(len(X)).astype(str)), "role": "pool", "label": None})
    config = RegionConfig(pca_components=None)
    exact = find_sparse_regions(X, items, config=config)
    sampled = find_sparse_regions(X, items, config=config, density_reference_max=800)
    assert np.isfinite(sampled.knn_distance).all()
    assert spearmanr(exact.knn_distance, sampled.knn_distance)[0] > 0.8
    assert "outlier/i4000" in {r.region_id for r in sampled.of_kind("outlier")}
    assert "outlier/i4000" in {r.region_id for r in exact.of_kind("outlier")}


def test_capped_gap_reference_scores_like_the_full_reference():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(3)
    X, comp = mixture(4_000, 12, 4, seed=3)
    dataset = (rng.random(len(X)) < 0.1) & (comp != 3)
    target = ~dataset
    full, _ = coverage_gap_scores(X, dataset, target, max_reference=None)
    capped, _ = coverage_gap_scores(X, dataset, target, max_reference=1_000)
    assert spearmanr(full, capped)[0] > 0.8
    # The component missing from the dataset scores high either way.
    t_comp = comp[target]
    assert np.median(capped[t_comp == 3]) > np.percentile(capped[t_comp != 3], 90)


# --------------------------------------------------------------------------- shared searches, sampled fits
def test_shared_searches_answer_repeats_bitwise_and_forget_after_the_block(blobs, monkeypatch):
    from adde_core.analysis import density
    from adde_core.analysis.density import self_knn, shared_searches

    X, _ = blobs
    calls = []
    real = density._search
    monkeypatch.setattr(density, "_search", lambda *a: calls.append(1) or real(*a))
    alone = search_knn(X, X[:3_000], 5, ann_min_pairs=0)
    with shared_searches():
        first = search_knn(X, X[:3_000], 5, ann_min_pairs=0)
        again = search_knn(X.copy(), X[:3_000].copy(), 5, ann_min_pairs=0)  # same values, other arrays
        again[0][:] = -1  # a caller's copy: the memory is not changed through it
        third = search_knn(X, X[:3_000], 5, ann_min_pairs=0)
    assert len(calls) == 2  # once outside, once inside the block
    for got in (first, third):
        assert np.array_equal(got[0], alone[0]) and np.array_equal(got[1], alone[1])
    search_knn(X, X[:3_000], 5, ann_min_pairs=0)
    assert len(calls) == 3  # forgotten after the block
    # A self-search asked for with fewer neighbours is the prefix of the remembered one, bitwise.
    exact14 = knn(X, X, 14, exclude_self=True)
    with shared_searches(self_k=29):
        d14, i14 = self_knn(X, 14)
        d29, i29 = self_knn(X, 29)
    assert np.array_equal(d14, exact14[0]) and np.array_equal(i14, exact14[1])
    assert np.array_equal(d29[:, :14], d14) and np.array_equal(i29[:, :14], i14)


def test_sampled_fit_uses_the_exact_graph_and_capped_epochs():
    from adde_core.analysis.projection import SAMPLED_FIT_EPOCHS, SAMPLED_FIT_KNN, sampled_fit_settings

    assert sampled_fit_settings("auto", 200, False) == ("auto", 200)  # fits on every item: as configured
    assert sampled_fit_settings("auto", 200, True) == (SAMPLED_FIT_KNN, SAMPLED_FIT_EPOCHS)
    assert sampled_fit_settings("nndescent", 30, True) == ("nndescent", min(30, SAMPLED_FIT_EPOCHS))
    assert sampled_fit_settings("auto", None, True)[1] == SAMPLED_FIT_EPOCHS
    # The demo's map and clustering space take the configured path.
    assert fit_sample(9_716, MAP_FIT_MAX, 0) is None and fit_sample(9_716, CLUSTER_FIT_MAX, 0) is None


def test_sampled_map_past_the_epoch_cap_is_the_capped_fit_on_the_sample_and_restores(blobs, tmp_path):
    from adde_core.analysis import LatentMap
    from adde_core.analysis.projection import SAMPLED_FIT_EPOCHS

    X, _ = blobs
    X, ids = X[:1_500], np.char.add("i", np.arange(1_500).astype(str))
    config = MapConfig(n_epochs=SAMPLED_FIT_EPOCHS + 50)
    latent = fit_map(X, ids, config=config, max_fit=600)
    sample = fit_sample(len(X), 600, config.random_state)
    capped = fit_map(X[sample], ids[sample], config=MapConfig(n_epochs=SAMPLED_FIT_EPOCHS, knn_method="exact"))
    assert latent.sampled_fit and not capped.sampled_fit
    assert np.array_equal(latent.coords[:600], capped.coords)  # bitwise
    assert len(latent) == len(X) and set(latent.ids.tolist()) == set(ids.tolist())
    loaded = LatentMap.load(latent.save(tmp_path / "map.npz"))
    assert loaded.sampled_fit
    restored = loaded.restore_projector(X, ids)
    assert np.array_equal(restored.alignment.to_array(), loaded.alignment.to_array())  # refit reproduced bitwise


def test_analysis_with_shared_searches_matches_the_separate_steps(blobs):
    from adde_core.analysis import analyze_embeddings, cluster_embeddings, find_sparse_regions

    X, comp = blobs
    X, comp = X[:1_200], comp[:1_200]
    ids = np.char.add("i", np.arange(len(X)).astype(str))
    items = pd.DataFrame({"id": ids, "role": "pool", "label": None})
    map_config, cluster_config = MapConfig(n_epochs=30), ClusterConfig(n_epochs=30)
    together = analyze_embeddings(X, ids, items, map_config=map_config, cluster_config=cluster_config)
    alone_map = fit_map(X, ids, config=map_config)
    alone_clusters = cluster_embeddings(X, ids, config=cluster_config)
    assert np.array_equal(together.map.coords, alone_map.coords)
    assert np.array_equal(together.clusters.labels, alone_clusters.labels)
    assert np.array_equal(together.clusters.space, alone_clusters.space)


def test_pca_axes_past_the_fit_limit_come_from_a_sample(blobs):
    from adde_core.analysis.density import fit_pca, pca_transform, reduce_for_search, unit_rows

    X, _ = blobs
    assert np.array_equal(reduce_for_search(X, 7), reduce_for_search(X, 7, max_fit=None))  # below the limit
    sampled = reduce_for_search(X, 7, max_fit=1_000)
    Xn = unit_rows(X)
    mean, comps, _ = fit_pca(Xn[fit_sample(len(X), 1_000, 0)], 7)
    assert sampled.shape == (len(X), 7)
    assert np.array_equal(sampled, pca_transform(Xn, mean, comps))
    # The sampled axes span nearly the subspace of the full ones (8 blobs: 7 axes between them).
    _, full, _ = fit_pca(Xn, 7)
    assert np.linalg.svd(full @ comps.T, compute_uv=False).min() > 0.9
