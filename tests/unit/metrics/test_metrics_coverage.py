"""Coverage: k-NN-ball coverage of a target set and convex-hull extent of the latent space."""

from __future__ import annotations

import numpy as np
import pytest

from adde_core.metrics import convex_hull_area, hull_volume, knn_coverage, knn_coverage_mask, pca_hull_volume


@pytest.fixture
def target():
    return np.random.default_rng(0).standard_normal((300, 8))


def test_superset_covers_everything(target):
    extra = np.random.default_rng(1).standard_normal((100, 8)) * 5
    assert knn_coverage(np.vstack([extra, target]), target, k=5) == 1.0
    assert knn_coverage(target, target, k=1) == 1.0


def test_exact_duplicates_in_target_are_covered_by_themselves():
    T = np.repeat(np.random.default_rng(2).standard_normal((20, 64)) * 100, 3, axis=0)  # radius 0 for k <= 2
    assert knn_coverage(T, T, k=2) == 1.0


def test_far_away_dataset_covers_nothing(target):
    assert knn_coverage(target + 1000.0, target, k=5) == 0.0


def test_one_of_two_blobs_gives_half():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((200, 4)), rng.standard_normal((200, 4)) + 50
    mask = knn_coverage_mask(a + 0.01, np.vstack([a, b]), k=5)
    assert mask.shape == (400,) and mask.dtype == bool
    assert mask[:200].all() and not mask[200:].any()


def test_coverage_grows_with_k(target):
    D = np.random.default_rng(4).standard_normal((30, 8))
    values = [knn_coverage(D, target, k=k) for k in (1, 5, 20)]
    assert values == sorted(values)


def test_cosine_metric(target):
    assert knn_coverage(target * 3.0, target, k=3, metric="cosine") == 1.0


@pytest.mark.parametrize(
    ("dataset", "tgt", "k", "match"),
    [
        (np.ones((5, 3)), np.ones((5, 4)), 2, "features"),
        (np.ones((5, 3)), np.ones((3, 3)), 3, "more than k=3"),
        (np.ones((5, 3)), np.ones((9, 3)), 0, "k must be"),
        (np.ones((5, 3)), np.full((9, 3), np.nan), 2, "NaN"),
    ],
)
def test_coverage_rejects_bad_input(dataset, tgt, k, match):
    with pytest.raises(ValueError, match=match):
        knn_coverage(dataset, tgt, k=k)


def test_unit_square_area_is_one():
    inside = np.random.default_rng(5).uniform(0, 1, (50, 2))
    assert convex_hull_area(np.vstack([[0, 0], [1, 0], [1, 1], [0, 1], inside])) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "points",
    [np.zeros((0, 2)), [[0, 0]], [[0, 0], [1, 1]], [[0, 0], [1, 1], [2, 2], [3, 3]], [[1, 1]] * 5],
    ids=["empty", "one", "two", "collinear", "identical"],
)
def test_degenerate_area_is_zero(points):
    assert convex_hull_area(points) == 0.0


def test_area_needs_two_columns():
    with pytest.raises(ValueError, match="2 columns"):
        convex_hull_area(np.ones((4, 3)))


def test_hull_volume_cube_and_flat_set():
    corners = np.array([[i, j, k] for i in (0, 2) for j in (0, 1) for k in (0, 1)], dtype=float)
    assert hull_volume(corners) == pytest.approx(2.0)
    flat = corners.copy()
    flat[:, 2] = 0
    assert hull_volume(flat) == 0.0
    assert hull_volume([[0.0], [3.0], [1.0]]) == pytest.approx(3.0)


def test_pca_hull_volume_recovers_cube_in_high_dim():
    rng = np.random.default_rng(6)
    cube = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=float)
    pts = np.vstack([cube, rng.uniform(0, 1, (100, 3))])
    basis, _ = np.linalg.qr(rng.standard_normal((10, 3)))  # orthonormal 10×3
    X = pts @ basis.T + 7.0
    assert pca_hull_volume(X, n_components=3) == pytest.approx(1.0)
    # in a reference basis: a half-cube subset spans half the volume
    half = X[pts[:, 0] <= 0.5]
    half = np.vstack([half, (np.array([[0.5, j, k] for j in (0, 1) for k in (0, 1)]) @ basis.T) + 7.0])
    assert pca_hull_volume(half, n_components=3, reference=X) == pytest.approx(0.5)


def test_pca_hull_volume_degenerate_inputs_are_zero():
    line = np.outer(np.arange(20.0), np.ones(6))
    assert pca_hull_volume(line, n_components=3) == 0.0
    assert pca_hull_volume(np.random.default_rng(7).standard_normal((3, 6)), n_components=3) == 0.0


def test_pca_hull_volume_rejects_bad_input():
    with pytest.raises(ValueError, match="n_components"):
        pca_hull_volume(np.ones((10, 2)), n_components=3)
    with pytest.raises(ValueError, match="features"):
        pca_hull_volume(np.ones((10, 4)), reference=np.ones((10, 5)))
