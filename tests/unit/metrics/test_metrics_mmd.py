"""MMD with an RBF kernel: a hand-computed value, zero for equal distributions, growth with shift, symmetry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adde_core.metrics import MMDResult, median_heuristic_bandwidth, mmd_rbf


def test_hand_computed_value():
    X, Y = np.array([[0.0], [1.0]]), np.array([[0.0], [2.0]])
    kxx, kyy = math.exp(-0.5), math.exp(-2.0)
    kxy = (1 + math.exp(-2.0) + 2 * math.exp(-0.5)) / 4
    r = mmd_rbf(X, Y, bandwidth=1.0)
    assert isinstance(r, MMDResult)
    assert r.mmd2 == pytest.approx(kxx + kyy - 2 * kxy, abs=1e-12)
    assert (r.n_x, r.n_y, r.bandwidth) == (2, 2, 1.0)


def test_median_heuristic_known_answer():
    # pooled pairwise distances 1, 3, 2 -> median 2
    assert median_heuristic_bandwidth([[0.0], [1.0]], [[3.0]]) == pytest.approx(2.0)
    assert median_heuristic_bandwidth(np.ones((4, 2))) == 1.0  # all points equal: fallback


def test_identical_and_same_distribution_near_zero():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 5))
    same = mmd_rbf(X, X)
    assert abs(same.mmd2) <= 2.0 / 300  # unbiased estimate at X = Y is exactly 2(mean offdiag k - 1)/n
    assert abs(mmd_rbf(X, rng.standard_normal((300, 5)), random_state=0).mmd2) < 0.01


def test_grows_with_shift_and_is_symmetric():
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((200, 5)), rng.standard_normal((250, 5))
    values = [mmd_rbf(X, Y + s, bandwidth=2.0).mmd2 for s in (0.0, 0.5, 1.0, 3.0)]
    assert values == sorted(values) and values[-1] > 0.3
    a, b = mmd_rbf(X, Y + 1.0), mmd_rbf(Y + 1.0, X)
    assert a.mmd2 == pytest.approx(b.mmd2, rel=1e-10) and a.bandwidth == pytest.approx(b.bandwidth)
    assert a.mmd == pytest.approx(math.sqrt(a.mmd2))


def test_blocked_sum_matches_direct_formula():
    rng = np.random.default_rng(2)
    X, Y = rng.standard_normal((2500, 3)), rng.standard_normal((40, 3)) + 0.3  # X spans two blocks
    sig = 1.3
    k = lambda A, B: np.exp(-((A[:, None] - B[None]) ** 2).sum(-1) / (2 * sig**2))  # noqa: E731
    Kxx, Kyy, Kxy = k(X, X), k(Y, Y), k(X, Y)
    n, m = len(X), len(Y)
    direct = (Kxx.sum() - n) / (n * (n - 1)) + (Kyy.sum() - m) / (m * (m - 1)) - 2 * Kxy.mean()
    assert mmd_rbf(X, Y, bandwidth=sig, max_samples=None).mmd2 == pytest.approx(direct, rel=1e-9)


def test_subsampling_is_reproducible():
    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((900, 4)), rng.standard_normal((700, 4))
    a = mmd_rbf(X, Y, max_samples=200, random_state=5)
    assert (a.n_x, a.n_y) == (200, 200)
    assert a == mmd_rbf(X, Y, max_samples=200, random_state=5)


@pytest.mark.parametrize(
    ("X", "Y", "kwargs", "match"),
    [
        (np.ones((1, 2)), np.ones((3, 2)), {}, "at least 2"),
        (np.ones((3, 2)), np.ones((3, 4)), {}, "features"),
        (np.ones((3, 2)), np.ones((3, 2)), {"bandwidth": 0.0}, "bandwidth"),
        (np.ones((3, 2)), np.ones((3, 2)), {"max_samples": 1}, "max_samples"),
        (np.ones((3, 2)), np.full((3, 2), np.inf), {}, "NaN or inf"),
    ],
)
def test_rejects_bad_input(X, Y, kwargs, match):
    with pytest.raises(ValueError, match=match):
        mmd_rbf(X, Y, **kwargs)
