"""Vendi score: published reference values, agreement with the vendi-score package, invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse

from adde_core.metrics import (
    SubsampledVendi,
    cluster_entropy,
    quality_weighted_vendi_score,
    quality_weighted_vendi_score_from_kernel,
    vendi_score,
    vendi_score_from_eigenvalues,
    vendi_score_from_kernel,
    vendi_score_subsampled,
)

vendi_ref = pytest.importorskip("vendi_score.vendi")

# vendi-score 0.0.3 touches the deprecated scipy.sparse.csr namespace on every score_K call.
pytestmark = pytest.mark.filterwarnings("ignore:Please import `csr_matrix`:DeprecationWarning")

QS = [0.1, 0.5, 1.0, 2.0, math.inf]


def laplace_kernel(samples) -> np.ndarray:
    s = np.asarray(samples, dtype=float)
    return np.exp(-np.abs(s[:, None] - s[None, :]))


# --- REFERENCE_VALUES.md, row by row -------------------------------------------------------------


def test_reference_laplace_kernel_three_pairs():
    assert vendi_score_from_kernel(laplace_kernel([0, 0, 10, 10, 20, 20]), 1) == pytest.approx(2.99999999588, abs=1e-6)


@pytest.mark.parametrize(("q", "expected"), [(1, 2.1573004834), (2, 1.9480519481), (math.inf, 1.5789473684)])
def test_reference_3x3_kernel(q, expected):
    K = np.array([[1, 0.9, 0], [0.9, 1, 0], [0, 0, 1]])
    assert vendi_score_from_kernel(K, q) == pytest.approx(expected, abs=1e-8)


@pytest.mark.parametrize(("q", "expected"), [(1, 1.99989799), (2, 1.99979600)])
def test_reference_cosine_embedding_path(q, expected):
    X = np.array([[100, 0], [99, 1], [1, 99], [0, 100]], dtype=float)
    assert vendi_score(X, q, normalize=True) == pytest.approx(expected, abs=1e-7)


def test_reference_quality_weighted():
    s = np.array([0.0, 0.0, 2.0])
    quality = np.exp(-np.abs(s - 2))
    got = quality_weighted_vendi_score_from_kernel(laplace_kernel(s), quality, 1)
    assert got == pytest.approx(0.793705659274703, abs=1e-9)


def one_hot_groups(k: int, copies: int = 3, width: int | None = None) -> np.ndarray:
    width = k if width is None else width
    return np.repeat(np.eye(k, width), copies, axis=0)


@pytest.mark.parametrize("k", [1, 2, 5, 10])
@pytest.mark.parametrize("q", QS)
def test_reference_k_equal_groups_is_exactly_k(k, q):
    X = one_hot_groups(k)  # n = 3k > d = k: the d×d route
    wide = one_hot_groups(k, width=64)  # n <= d: the n×n route
    assert vendi_score(X, q) == pytest.approx(k, abs=1e-6)
    assert vendi_score(wide, q) == pytest.approx(k, abs=1e-6)
    assert vendi_score_from_kernel(X @ X.T, q) == pytest.approx(k, abs=1e-6)


@pytest.mark.parametrize(
    ("q", "expected"), [(0.1, 1.902332), (0.5, 1.6), (1, 1.384145), (2, 1.219512), (math.inf, 1.111111)]
)
def test_reference_90_e1_10_e2(q, expected):
    X = np.zeros((100, 2))
    X[:90, 0] = 1
    X[90:, 1] = 1
    assert vendi_score(X, q) == pytest.approx(expected, abs=1e-5)
    assert vendi_score_from_kernel(X @ X.T, q) == pytest.approx(expected, abs=1e-5)


def test_repeated_point_small_q_is_one_unlike_reference():
    x = np.random.default_rng(200).standard_normal(16)
    X = np.tile(x, (200, 1))
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    K = Xn @ Xn.T
    assert vendi_score_from_kernel(K, 0.1) == pytest.approx(1.0, abs=1e-9)
    assert vendi_score(X, 0.1) == pytest.approx(1.0, abs=1e-9)
    assert vendi_score(X, 0.1, precision="float32") == pytest.approx(1.0, abs=1e-9)
    # The package keeps the noise eigenvalues (it gives about 3.4 here), which is the defect we avoid.
    assert vendi_ref.score_K(K, q=0.1) > 1.5


def test_indicator_kernel_equals_exp_cluster_entropy():
    y = np.array([0] * 720 + [1] * 90 + [2] * 90)
    K = (y[:, None] == y[None, :]).astype(float)
    H = cluster_entropy(y)
    assert vendi_score_from_kernel(K, 1) == pytest.approx(H.effective_number, abs=1e-8)
    assert vendi_score(np.eye(3)[y], 1) == pytest.approx(math.exp(H.entropy), abs=1e-8)


# --- agreement with the reference package where it is correct ------------------------------------


def random_kernels():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 10))
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    yield "cosine_rank10", Xn @ Xn.T
    A = rng.standard_normal((30, 60))
    W = A @ A.T
    d = np.sqrt(np.diag(W))
    yield "wishart_full_rank", W / np.outer(d, d)
    P = rng.standard_normal((35, 3))
    sq = ((P[:, None, :] - P[None, :, :]) ** 2).sum(-1)
    yield "rbf", np.exp(-sq / 2)


@pytest.mark.parametrize(("name", "K"), list(random_kernels()))
@pytest.mark.parametrize("q", [1, 2, 3.5, math.inf])
def test_matches_package_score_K(name, K, q):
    ref = vendi_ref.score_K(K, q="inf" if math.isinf(q) else q)
    assert vendi_score_from_kernel(K, q) == pytest.approx(ref, abs=1e-8)


def test_matches_package_score_K_small_q_on_well_conditioned_kernel():
    K = dict(random_kernels())["wishart_full_rank"]
    for q in (0.1, 0.5):
        assert vendi_score_from_kernel(K, q) == pytest.approx(vendi_ref.score_K(K, q=q), abs=1e-8)


@pytest.mark.parametrize("shape", [(300, 20), (25, 80)])
@pytest.mark.parametrize("q", [1, 2])
def test_matches_package_score_dual(shape, q):
    X = np.random.default_rng(1).standard_normal(shape)
    assert vendi_score(X, q) == pytest.approx(vendi_ref.score_dual(X, q=q), abs=1e-8)


def test_score_X_ignores_q_but_we_do_not():
    X = np.random.default_rng(2).standard_normal((50, 8))
    assert vendi_ref.score_X(X, q=2) == pytest.approx(vendi_ref.score_X(X, q=1))
    assert vendi_score(X, 2) < vendi_score(X, 1) - 1e-3


def test_sparse_kernel_uses_all_eigenvalues():
    y = np.repeat(np.arange(12), 4)
    K = (y[:, None] == y[None, :]).astype(float)
    assert vendi_score_from_kernel(scipy.sparse.csr_matrix(K), 1) == pytest.approx(12, abs=1e-9)


# --- invariants and round trips ------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(400, 16), (30, 50)])
@pytest.mark.parametrize("q", [0.1, 0.5, 1, 2, 3.5, math.inf])
def test_kernel_path_equals_embedding_path(shape, q):
    X = np.random.default_rng(3).standard_normal(shape)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    assert vendi_score(X, q) == pytest.approx(vendi_score_from_kernel(Xn @ Xn.T, q), rel=1e-9)


def test_linear_kernel_without_normalisation_is_trace_normalised():
    X = np.random.default_rng(4).standard_normal((60, 6)) * 3
    K = X @ X.T
    assert vendi_score(X, 1, normalize=False) == pytest.approx(vendi_score_from_kernel(K / np.trace(K) * 60, 1))


def test_float32_agrees_with_float64():
    X = np.random.default_rng(5).standard_normal((5000, 64)).astype(np.float32)
    for q in (0.5, 1, 2):
        assert vendi_score(X, q, precision="float32") == pytest.approx(vendi_score(X, q), rel=1e-5)


def test_bounds_and_monotone_in_q():
    X = np.random.default_rng(6).standard_normal((200, 12)) + 0.5
    scores = [vendi_score(X, q) for q in (0.1, 0.5, 1, 2, 5, math.inf)]
    assert all(1 <= s <= 12 + 1e-9 for s in scores)
    assert all(a >= b - 1e-12 for a, b in zip(scores, scores[1:]))


def test_invariant_to_row_order_and_row_scale():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((100, 10))
    ref = vendi_score(X, 1)
    assert vendi_score(X[rng.permutation(100)], 1) == pytest.approx(ref, rel=1e-12)
    assert vendi_score(X * rng.uniform(0.1, 10, (100, 1)), 1) == pytest.approx(ref, rel=1e-10)


def test_large_n_block_accumulation_matches_single_gram():
    X = np.random.default_rng(8).standard_normal((20000, 8))  # several 8192-row blocks
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    w = np.linalg.eigvalsh(Xn.T @ Xn / len(X))
    assert vendi_score(X, 1) == pytest.approx(vendi_score_from_eigenvalues(w, 1), rel=1e-12)


def test_kernel_normalize_option():
    K = np.array([[4.0, 1.8, 0.0], [1.8, 1.0, 0.0], [0.0, 0.0, 9.0]])
    assert vendi_score_from_kernel(K, 1, normalize=True) == pytest.approx(2.1573004834, abs=1e-8)


def test_q_inf_accepts_string():
    K = np.array([[1, 0.9, 0], [0.9, 1, 0], [0, 0, 1]])
    assert vendi_score_from_kernel(K, "inf") == pytest.approx(1.5789473684, abs=1e-8)


# --- subsampling protocol ------------------------------------------------------------------------


def test_subsampled_is_reproducible_and_reports_n():
    X = np.random.default_rng(9).standard_normal((3000, 16))
    a = vendi_score_subsampled(X, 1, n_samples=500, n_repeats=4, random_state=0)
    b = vendi_score_subsampled(X, 1, n_samples=500, n_repeats=4, random_state=0)
    assert isinstance(a, SubsampledVendi)
    assert a == b
    assert (a.n_samples, a.n_repeats, a.n_total, len(a.scores)) == (500, 4, 3000, 4)
    assert a.subsampled and a.std > 0
    assert a.mean == pytest.approx(np.mean(a.scores))


def test_subsampled_removes_growth_with_n():
    rng = np.random.default_rng(10)
    small, big = rng.standard_normal((300, 256)), rng.standard_normal((3000, 256))
    full_gap = vendi_score(big) - vendi_score(small)  # about 168 vs 245
    a = vendi_score_subsampled(small, n_samples=200, n_repeats=5, random_state=1)
    b = vendi_score_subsampled(big, n_samples=200, n_repeats=5, random_state=1)
    assert full_gap > 50  # Vendi grows with n on the same distribution...
    assert abs(a.mean - b.mean) < 2.0  # ...but not at a fixed subsample size (both about 135.7)


def test_subsampled_small_set_is_scored_whole():
    X = np.random.default_rng(11).standard_normal((50, 5))
    r = vendi_score_subsampled(X, 2, n_samples=100, n_repeats=7, random_state=0)
    assert (r.n_samples, r.n_repeats, r.std, r.subsampled) == (50, 1, 0.0, False)
    assert r.mean == pytest.approx(vendi_score(X, 2))


def test_quality_weighted_embedding_path():
    X = np.random.default_rng(12).standard_normal((40, 6))
    quality = np.linspace(0, 1, 40)
    assert quality_weighted_vendi_score(X, quality, 2) == pytest.approx(0.5 * vendi_score(X, 2))


# --- input validation ----------------------------------------------------------------------------


@pytest.mark.parametrize("q", [0, -1, float("nan"), "two", True, None])
def test_rejects_bad_q(q):
    with pytest.raises(ValueError, match="q"):
        vendi_score(np.eye(3), q)


@pytest.mark.parametrize(
    ("X", "match"),
    [
        (np.ones(5), "2-D"),
        (np.ones((2, 3, 4)), "2-D"),
        (np.ones((0, 3)), "at least 1 row"),
        (np.array([[1.0, np.nan], [1.0, 2.0]]), "NaN or inf .*row 0"),
        (np.array([[1.0, 2.0], [np.inf, 2.0]]), "NaN or inf .*row 1"),
        (np.array([[1.0, 2.0], [0.0, 0.0]]), "row 1 is all zeros"),
        (np.array([["a", "b"]]), "numeric"),
    ],
)
def test_embedding_path_rejects_bad_input(X, match):
    with pytest.raises(ValueError, match=match):
        vendi_score(X)


@pytest.mark.parametrize(
    ("K", "match"),
    [
        (np.ones((2, 3)), "square"),
        (np.array([[1.0, 0.5], [0.1, 1.0]]), "symmetric"),
        (np.array([[1.0, 2.0], [2.0, 1.0]]), "positive semidefinite"),
        (np.zeros((3, 3)), "no positive eigenvalue"),
        (np.array([[1.0, np.nan], [np.nan, 1.0]]), "NaN"),
    ],
)
def test_kernel_path_rejects_bad_input(K, match):
    with pytest.raises(ValueError, match=match):
        vendi_score_from_kernel(K)


def test_other_argument_errors():
    X = np.eye(4)
    with pytest.raises(ValueError, match="precision"):
        vendi_score(X, precision="float16")
    with pytest.raises(ValueError, match="quality"):
        quality_weighted_vendi_score(X, [1, 2, 3])
    with pytest.raises(ValueError, match=">= 0"):
        quality_weighted_vendi_score(X, [1, -1, 1, 1])
    with pytest.raises(ValueError, match="n_samples"):
        vendi_score_subsampled(X, n_samples=0)
    with pytest.raises(ValueError, match="random_state"):
        vendi_score_subsampled(np.eye(10), n_samples=3, random_state="seed")
    with pytest.raises(ValueError, match="diagonal"):
        vendi_score_from_kernel(np.array([[0.0, 0.0], [0.0, 1.0]]), normalize=True)


def test_float32_rounding_in_low_dimension_is_not_reported_as_non_psd():
    rng = np.random.default_rng(13)
    X = (np.tile(rng.standard_normal(16), (50_000, 1)) * rng.uniform(0.5, 2, (50_000, 1))).astype(np.float32)
    for q in (0.1, 1, math.inf):
        assert vendi_score(X, q, precision="float32") == pytest.approx(1.0, abs=1e-9)


def test_eig_tol_controls_what_counts_as_noise():
    w = np.array([0.5, 0.5, 1e-9])
    assert vendi_score_from_eigenvalues(w, 0.1) > 2.0  # 1e-9 is above the default threshold: kept
    assert vendi_score_from_eigenvalues(w, 0.1, eig_tol=1e-6) == pytest.approx(2.0)


@pytest.mark.parametrize("orders", [(1.0, 2.0), (0.5, 1.0, np.inf)])
def test_vendi_at_several_orders_equals_one_order_at_a_time(orders):
    from adde_core.metrics import vendi_score_subsampled, vendi_scores_subsampled

    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 16))
    together = vendi_scores_subsampled(X, orders, n_samples=100, n_repeats=3, random_state=0)
    for q, got in zip(orders, together):
        alone = vendi_score_subsampled(X, q, n_samples=100, n_repeats=3, random_state=0)
        assert got == alone
