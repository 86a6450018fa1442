"""What a round reuses from the last one: herding's similarity matrix and the pool's val neighbours, read back only for rows seen before."""

from __future__ import annotations

import numpy as np
import pytest

import adde_core.acquisition.targeting as targeting
import adde_core.ranking.coverage as coverage
from adde_core.linalg import KeptByRows, row_digests, unit_rows
from adde_core.ranking.coverage import herding_order


def _pool(n: int = 300, d: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((5, d)) * 3
    return unit_rows(centres[rng.integers(0, 5, n)] + rng.standard_normal((n, d)))


def test_row_digests_are_equal_exactly_for_equal_rows():
    X = _pool(20)
    Y = X.copy()
    Y[3, 0] = np.nextafter(Y[3, 0], np.float32(2))  # one ulp
    a, b = row_digests(X), row_digests(Y)
    assert [i for i in range(20) if a[i] != b[i]] == [3]
    assert len(set(row_digests(np.vstack([X, X[:5]])))) == 20


def test_similarity_of_a_shrunk_pool_is_read_back_from_the_last_one(monkeypatch):
    X = _pool()
    monkeypatch.setattr(coverage, "_KEPT", KeptByRows())
    full = coverage._similarity_minus_one(X)
    assert full.max() <= 0.0 and np.allclose(np.diag(full), 0.0, atol=1e-6)
    kept = coverage._KEPT.last
    keep = np.setdiff1d(np.arange(len(X)), [5, 17, 200])[::-1]  # the picks left the pool, order changed
    reused = coverage._similarity_minus_one(X[keep])
    assert coverage._KEPT.last is kept  # a subset does not replace the kept matrix
    np.testing.assert_array_equal(reused, full[np.ix_(keep, keep)])
    np.testing.assert_allclose(reused, np.minimum(X[keep] @ X[keep].T - 1, 0), atol=1e-6)
    reused[:] = 7.0  # the caller may overwrite what it got
    assert coverage._KEPT.last[2].max() <= 0.0
    other = _pool(seed=1)[:50]  # a row never seen: a new product, which replaces the kept one
    np.testing.assert_allclose(coverage._similarity_minus_one(other), np.minimum(other @ other.T - 1, 0), atol=1e-6)
    assert coverage._KEPT.last is not kept


def test_herding_order_is_the_same_with_and_without_the_kept_matrix(monkeypatch):
    X, L = _pool(), _pool(12, seed=2)
    w = np.random.default_rng(3).uniform(0.1, 1.0, len(X))
    sub = np.setdiff1d(np.arange(len(X)), np.arange(0, 300, 7))
    monkeypatch.setattr(coverage, "_KEPT", KeptByRows())
    fresh, fresh_gains = herding_order(X[sub], L, w[sub], 0.6, 25)
    monkeypatch.setattr(coverage, "_KEPT", KeptByRows())
    herding_order(X, L, w, 0.6, 25)  # the whole pool first: the subset is then read back
    reused, reused_gains = herding_order(X[sub], L, w[sub], 0.6, 25)
    np.testing.assert_array_equal(reused, fresh)
    np.testing.assert_allclose(reused_gains, fresh_gains, rtol=1e-5)


def test_val_neighbours_of_a_shrunk_pool_match_a_fresh_search(monkeypatch):
    X_pool, X_val = _pool(), _pool(60, seed=4)
    monkeypatch.setattr(targeting, "_KEPT", KeptByRows())
    first = targeting.val_neighbours(X_pool, X_val, 5)
    sims = X_pool @ X_val.T
    expected = np.sort(np.argsort(-sims, axis=1, kind="stable")[:, :5], axis=1)
    np.testing.assert_array_equal(np.sort(first, axis=1), expected)
    keep = np.arange(3, 300, 2)
    np.testing.assert_array_equal(targeting.val_neighbours(X_pool[keep], X_val, 5), first[keep])
    # another val set or k is a new search, never the kept answer
    other = targeting.val_neighbours(X_pool[keep], X_val[:30], 5)
    assert other.max() < 30
    assert targeting.val_neighbours(X_pool[keep], X_val, 3).shape == (len(keep), 3)
