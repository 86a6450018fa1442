"""Cluster-size entropy: reference values, noise policies, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adde_core.metrics import ClusterEntropy, cluster_entropy, cluster_entropy_from_sizes


@pytest.mark.parametrize(
    ("sizes", "h", "h_norm", "eff"),
    [((300, 300, 300), 1.098612, 1.000000, 3.000000), ((720, 90, 90), 0.639032, 0.581672, 1.894646)],
)
def test_reference_values(sizes, h, h_norm, eff):
    labels = np.repeat(np.arange(len(sizes)), sizes)
    for r in (cluster_entropy(labels), cluster_entropy_from_sizes(sizes)):
        assert isinstance(r, ClusterEntropy)
        assert r.entropy == pytest.approx(h, abs=1e-6)
        assert r.normalized == pytest.approx(h_norm, abs=1e-6)
        assert r.effective_number == pytest.approx(eff, abs=1e-6)
        assert (r.n_clusters, r.n_points) == (3, sum(sizes))


def test_noise_policies():
    labels = [0] * 5 + [1] * 5 + [-1] * 2
    ex = cluster_entropy(labels)
    assert (ex.n_clusters, ex.n_points, ex.n_noise, ex.noise_policy) == (2, 10, 2, "exclude")
    assert ex.entropy == pytest.approx(math.log(2))
    assert ex.normalized == pytest.approx(1.0)
    ac = cluster_entropy(labels, noise="as_cluster")
    assert ac.entropy == pytest.approx(cluster_entropy_from_sizes([5, 5, 2]).entropy)
    assert (ac.n_clusters, ac.n_points) == (3, 12)
    sg = cluster_entropy(labels, noise="singletons")
    assert sg.entropy == pytest.approx(cluster_entropy_from_sizes([5, 5, 1, 1]).entropy)
    assert sg.n_clusters == 4
    assert ex.entropy < ac.entropy < sg.entropy


def test_custom_or_no_noise_label():
    assert cluster_entropy(["a", "a", "noise", "b"], noise_label="noise").n_clusters == 2
    # -1 is an ordinary cluster when there is no noise label
    assert cluster_entropy([0, 0, -1, -1], noise_label=None).n_clusters == 2


def test_single_cluster_is_defined():
    r = cluster_entropy([3] * 10)
    assert (r.entropy, r.normalized, r.effective_number, r.n_clusters) == (0.0, 0.0, 1.0, 1)


def test_all_noise_excluded_gives_zeros():
    r = cluster_entropy([-1, -1, -1])
    assert (r.entropy, r.normalized, r.effective_number, r.n_clusters, r.n_noise) == (0.0, 0.0, 0.0, 0, 3)
    assert cluster_entropy([-1, -1, -1], noise="singletons").effective_number == pytest.approx(3)


def test_invariant_to_label_names_and_order():
    a = cluster_entropy([0, 0, 1, 2, 2, 2])
    b = cluster_entropy(["z", "y", "y", "z", "x", "z"])
    assert a.entropy == pytest.approx(b.entropy)


def test_sizes_ignore_zeros():
    assert cluster_entropy_from_sizes([4, 0, 4]).n_clusters == 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"labels": []}, "empty"),
        ({"labels": [[0, 1]]}, "1-D"),
        ({"labels": [0.0, np.nan]}, "NaN"),
        ({"labels": ["a", None]}, "missing"),
        ({"labels": [0, 1], "noise": "drop"}, "noise"),
    ],
)
def test_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cluster_entropy(**kwargs)


@pytest.mark.parametrize(("sizes", "match"), [([1, -2], ">= 0"), ([1, np.inf], "NaN or inf"), ([[1]], "1-D")])
def test_sizes_reject_bad_input(sizes, match):
    with pytest.raises(ValueError, match=match):
        cluster_entropy_from_sizes(sizes)
