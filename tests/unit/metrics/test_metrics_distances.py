"""Minimum inter-cluster and maximum intra-cluster distances on hand-made and random clusterings."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist, pdist

import adde_core.metrics.distances as dist_mod
from adde_core.metrics import max_intracluster_distance, min_intercluster_distance

# Three clusters plus one noise point that sits between them.
X3 = np.array([[0, 0], [1, 0], [10, 0], [10, 2], [0, 20], [0, 23], [5, 5]], dtype=float)
L3 = np.array([0, 0, 1, 1, 2, 2, -1])


def test_hand_made_three_clusters():
    # centroids (0.5, 0), (10, 1), (0, 21.5): the closest pair is A-B
    assert min_intercluster_distance(X3, L3) == pytest.approx(math.sqrt(9.5**2 + 1))
    # closest points of different clusters: (1, 0) and (10, 0)
    assert min_intercluster_distance(X3, L3, method="single") == pytest.approx(9.0)
    # diameters 1, 2, 3
    assert max_intracluster_distance(X3, L3) == pytest.approx(3.0)


def test_noise_point_counts_only_without_noise_label():
    # with -1 as a real (singleton) cluster, (5, 5) is sqrt(34) from (10, 2)
    assert min_intercluster_distance(X3, L3, method="single", noise_label=None) == pytest.approx(math.sqrt(34))
    assert max_intracluster_distance(X3, L3, noise_label=None) == pytest.approx(3.0)


def test_undefined_cases():
    assert math.isnan(min_intercluster_distance(X3[:2], [0, 0]))
    assert math.isnan(max_intracluster_distance(X3[:2], [-1, -1]))
    assert max_intracluster_distance(X3[:3], [0, 1, 2]) == 0.0


@pytest.fixture
def random_clusters():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 600)
    X = rng.standard_normal((600, 16)) + labels[:, None] * 0.7
    return X, labels


@pytest.mark.parametrize("block_elements", [1 << 22, 777])  # one block, and many odd-sized blocks
def test_blocked_matches_brute_force(random_clusters, monkeypatch, block_elements):
    monkeypatch.setattr(dist_mod, "_BLOCK_ELEMENTS", block_elements)
    X, labels = random_clusters
    D = cdist(X, X)
    brute_single = D[labels[:, None] != labels[None, :]].min()
    brute_diam = max(pdist(X[labels == c]).max() for c in range(4))
    assert min_intercluster_distance(X, labels, method="single") == pytest.approx(brute_single, rel=1e-9)
    assert max_intracluster_distance(X, labels) == pytest.approx(brute_diam, rel=1e-9)


def test_subsampled_diameter_is_a_reproducible_lower_bound(random_clusters):
    X, labels = random_clusters
    exact = max_intracluster_distance(X, labels)
    a = max_intracluster_distance(X, labels, max_points_per_cluster=50, random_state=1)
    assert a <= exact
    assert a == max_intracluster_distance(X, labels, max_points_per_cluster=50, random_state=1)


def test_string_labels():
    labels = np.array(["a", "a", "b", "b", "c", "c", "noise"])
    assert max_intracluster_distance(X3, labels, noise_label="noise") == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("X", "labels", "kwargs", "match"),
    [
        (X3, L3[:-1], {}, "entries but the data has 7 rows"),
        (X3, L3, {"method": "average"}, "method"),
        (np.full((2, 2), np.nan), [0, 1], {}, "NaN"),
    ],
)
def test_rejects_bad_input(X, labels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        min_intercluster_distance(X, labels, **kwargs)
