"""Vendi score of any order q: the effective number of distinct items in a set (Friedman & Dieng, 2022).

Definition. For a positive semidefinite kernel K with unit diagonal on n items, let λ be the eigenvalues of
K/n (they sum to 1). Then VS_q = exp(H_q(λ)) with H_q the Rényi entropy of order q (Shannon entropy at
q = 1, and VS_∞ = 1 / max λ). VS ranges from 1 (all items identical) to n (all items orthogonal).

Differences from the reference package ``vendi-score`` 0.0.3, on purpose:

* every order q is honoured on every path (its ``score_X`` silently uses q = 1);
* all eigenvalues are used for sparse kernels (its sparse path keeps only 6);
* eigenvalues below a relative threshold (numerical noise) are dropped and the rest renormalised to sum 1.
  Without this, tiny noise eigenvalues dominate Σ λ^q for q < 1: one point repeated 200 times scores ≈ 3.4
  at q = 0.1 in the package, and exactly 1 here;
* a kernel without a unit diagonal (or an unnormalised linear kernel) is handled by renormalising the
  spectrum, i.e. it is scored as K / trace(K). With a unit diagonal this is the textbook definition.

Vendi grows with n, so scores of different-sized sets (iterations of a growing dataset) are only comparable
at a fixed subsample size: use :func:`vendi_score_subsampled` for that.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse
from numpy.typing import ArrayLike

from adde_core.errors import AddeError
from adde_core.metrics._validation import (
    RandomState,
    as_matrix,
    as_rng,
    check_all_finite,
    check_positive_int,
    check_q,
    eigh_small,
)

__all__ = [
    "SubsampledVendi",
    "quality_weighted_vendi_score",
    "quality_weighted_vendi_score_from_kernel",
    "vendi_score",
    "vendi_score_from_eigenvalues",
    "vendi_score_from_kernel",
    "vendi_score_subsampled",
    "vendi_scores_subsampled",
]

Precision = Literal["float64", "float32"]

# Rows per block when accumulating XᵀX: big enough for BLAS to run at full speed, small enough that the
# normalised float copy of a block stays a few tens of MB whatever n is.
_BLOCK_ROWS = 8192
# Eigenvalues more negative than this (relative to the largest) mean the kernel is not PSD.
_NEG_TOL = 1e-6


def _default_eig_tol(matrix_size: int, dtype: np.dtype) -> float:
    # Eigen-solver and Gram-accumulation noise measured here stays below ~0.1·m·eps (kernel path) and
    # ~20·eps (blocked XᵀX); max(m, 100)·eps sits safely above both yet far below any eigenvalue that
    # changes a q >= 1 score at the 1e-8 level.
    return max(matrix_size, 100) * float(np.finfo(dtype).eps)


def vendi_score_from_eigenvalues(eigenvalues: ArrayLike, q: float = 1.0, *, eig_tol: float | None = None) -> float:
    """Vendi score of order ``q`` from the eigenvalues of a kernel matrix.

    What this number means: the effective number of distinct items, read off the kernel's spectrum.

    Parameters
    ----------
    eigenvalues : array-like of shape (m,)
        Eigenvalues of K/n (or of any positive multiple of K: they are renormalised to sum to 1).
    q : float, default 1.0
        Order, 0 < q <= inf. ``q=1`` is Shannon, ``q=np.inf`` gives 1 / max(λ).
    eig_tol : float, optional
        Eigenvalues ``<= eig_tol * max(λ)`` are treated as numerical noise and dropped before
        renormalising. Defaults to ``max(m, 100) * float64 eps``.

    Returns
    -------
    float
        exp(H_q(λ)), between 1 and the number of kept eigenvalues.

    Raises
    ------
    ValueError
        If q is not in (0, inf], the eigenvalues are not finite, none is positive, or a clearly negative
        one shows that the kernel is not positive semidefinite.
    """
    return _score_spectrum(eigenvalues, check_q(q), eig_tol, check_psd=True)


def _score_spectrum(eigenvalues: ArrayLike, q: float, eig_tol: float | None, *, check_psd: bool) -> float:
    w = np.asarray(eigenvalues, dtype=np.float64).ravel()
    if w.size == 0:
        raise AddeError("eigenvalues is empty")
    if not np.isfinite(w).all():
        raise AddeError("eigenvalues contain NaN or inf")
    if eig_tol is None:
        eig_tol = _default_eig_tol(w.size, np.dtype(np.float64))
    if not (np.isfinite(eig_tol) and eig_tol >= 0):
        raise AddeError(f"eig_tol must be a finite number >= 0, got {eig_tol!r}")
    top = float(w.max())
    if top <= 0:
        raise AddeError("the kernel has no positive eigenvalue (is it all zeros?)")
    if check_psd and float(w.min()) < -_NEG_TOL * top:
        raise AddeError(
            f"the kernel is not positive semidefinite: smallest eigenvalue {w.min():.3g} vs largest {top:.3g}"
        )
    p = w[w > eig_tol * top]
    p = p / p.sum()
    if q == 1.0:
        h = -float(np.sum(p * np.log(p)))
    elif math.isinf(q):
        h = -math.log(float(p.max()))
    else:
        # log Σ p^q via log-sum-exp so that large q does not underflow
        lp = q * np.log(p)
        m = float(lp.max())
        h = (m + math.log(float(np.exp(lp - m).sum()))) / (1.0 - q)
    return math.exp(h)


def _as_kernel(K: ArrayLike) -> np.ndarray:
    if scipy.sparse.issparse(K):
        # All eigenvalues are needed (a truncated eigsh gives a wrong entropy), so densify.
        K = K.toarray()
    K = as_matrix(K, "K").astype(np.float64, copy=False)
    n, m = K.shape
    if n != m:
        raise AddeError(f"K must be square (n, n), got shape {K.shape}")
    if n > 1:
        scale = float(np.abs(K).max())
        if not np.allclose(K, K.T, rtol=0.0, atol=1e-6 * max(scale, 1e-300)):
            raise AddeError("K must be symmetric")
        # float32-built kernels are asymmetric in the last digits; the eigensolver would read one triangle only
        K = 0.5 * (K + K.T)
    return K


def _normalize_kernel(K: np.ndarray) -> np.ndarray:
    d = np.diagonal(K).copy()
    bad = np.flatnonzero(d <= 0)
    if bad.size:
        raise AddeError(f"cannot normalise K: diagonal entry {int(bad[0])} is {d[bad[0]]:.3g} (must be > 0)")
    s = 1.0 / np.sqrt(d)
    return K * np.outer(s, s)


def vendi_score_from_kernel(
    K: ArrayLike, q: float = 1.0, *, normalize: bool = False, eig_tol: float | None = None
) -> float:
    """Vendi score of order ``q`` of a precomputed similarity (kernel) matrix.

    What this number means: the effective number of distinct items under the similarity K; 1 if all
    items are identical, n if all are completely dissimilar.

    Parameters
    ----------
    K : array-like or scipy.sparse matrix of shape (n, n)
        Symmetric positive semidefinite similarity matrix, ideally with K[i, i] = 1. Sparse matrices are
        densified, since every eigenvalue is needed.
    q : float, default 1.0
        Order, 0 < q <= inf (``np.inf`` or ``"inf"``).
    normalize : bool, default False
        Rescale K to unit diagonal first (K_ij / sqrt(K_ii K_jj)).
    eig_tol : float, optional
        Relative eigenvalue threshold; see :func:`vendi_score_from_eigenvalues`.

    Returns
    -------
    float
        VS_q in [1, n].

    Notes
    -----
    Cost is O(n^3) time and O(n^2) memory; for embeddings use :func:`vendi_score`, which never forms K.
    """
    q = check_q(q)
    K = _as_kernel(K)
    if normalize:
        K = _normalize_kernel(K)
    n = K.shape[0]
    w = eigh_small(K / n)
    if eig_tol is None:
        eig_tol = _default_eig_tol(n, np.dtype(np.float64))
    return vendi_score_from_eigenvalues(w, q, eig_tol=eig_tol)


def _embedding_eigenvalues(X: np.ndarray, normalize: bool, precision: Precision) -> tuple[np.ndarray, int]:
    """Eigenvalues of the smaller of XᵀX/n (d×d) and XXᵀ/n (n×n); rows unit-normalised if asked."""
    if precision not in ("float64", "float32"):
        raise AddeError(f"precision must be 'float64' or 'float32', got {precision!r}")
    dtype = np.dtype(precision)
    n, d = X.shape

    def prepare(block: np.ndarray, offset: int) -> np.ndarray:
        check_all_finite(block, "X", row_offset=offset)
        block = block.astype(dtype, copy=True)
        if normalize:
            norms = np.sqrt(np.einsum("ij,ij->i", block, block))
            zero = np.flatnonzero(norms == 0)
            if zero.size:
                raise AddeError(
                    f"X row {int(zero[0]) + offset} is all zeros: the cosine kernel is undefined for it "
                    "(drop the row or pass normalize=False)"
                )
            block /= norms[:, None]
        return block

    if n <= d:
        Xb = prepare(X, 0)
        G = (Xb @ Xb.T).astype(np.float64)
    else:
        # Accumulate XᵀX block by block in float64: memory stays O(d^2 + block·d) and the rounding error
        # does not grow with n even when the products run in float32.
        G = np.zeros((d, d), dtype=np.float64)
        for start in range(0, n, _BLOCK_ROWS):
            Xb = prepare(X[start : start + _BLOCK_ROWS], start)
            G += Xb.T @ Xb
    G /= n
    return eigh_small(G), G.shape[0]


def vendi_score(
    X: ArrayLike,
    q: float = 1.0,
    *,
    normalize: bool = True,
    precision: Precision = "float64",
    eig_tol: float | None = None,
) -> float:
    """Vendi score of order ``q`` of a set of embeddings under the cosine (or linear) kernel.

    What this number means: the effective number of distinct items in X; 1 if all rows point the same
    way, up to min(n, d) if they are mutually orthogonal.

    Parameters
    ----------
    X : array-like of shape (n, d)
        One embedding per row.
    q : float, default 1.0
        Order, 0 < q <= inf. Small q weighs rare directions more, q = inf only the dominant one.
    normalize : bool, default True
        L2-normalise rows, giving the cosine kernel K = X̂X̂ᵀ (unit diagonal). With False the linear kernel
        XXᵀ is scored as K / trace(K).
    precision : {"float64", "float32"}, default "float64"
        Arithmetic of the Gram product (blocks are always summed in float64). float32 is about twice as
        fast and agrees to ~1e-7 relative (measured); its noise threshold is coarser: eigenvalues below
        max(m, 100)·1.2e-7 of the largest are dropped, which matters only for q < 1.
    eig_tol : float, optional
        Relative eigenvalue threshold; defaults to ``max(m, 100) * eps(precision)`` with m = min(n, d).

    Returns
    -------
    float
        VS_q in [1, min(n, d)].

    Notes
    -----
    The non-zero eigenvalues of K/n = X̂X̂ᵀ/n equal those of X̂ᵀX̂/n, so the d×d matrix is used when d < n
    and the n×n one otherwise: the n×n kernel is never formed for n > d. X̂ᵀX̂ is accumulated in row
    blocks, so memory is O(d^2 + 8192·d) and time O(n·m^2).
    """
    q = check_q(q)
    X = as_matrix(X, "X", check_finite=False)  # finiteness is checked block by block
    return _scores_of_rows(X, (q,), normalize, precision, eig_tol)[0]


def _scores_of_rows(X: np.ndarray, orders: Sequence[float], normalize: bool, precision: Precision,
                    eig_tol: float | None = None) -> list[float]:
    """Vendi scores of ``X`` at each order, from one eigendecomposition (the orders are already checked)."""
    w, m = _embedding_eigenvalues(X, normalize, precision)
    if eig_tol is None:
        eig_tol = _default_eig_tol(m, np.dtype(precision))
    # XᵀX is PSD by construction: negative eigenvalues here are rounding (float32 blocks reach ~1e-6 of the
    # largest), so they are dropped rather than reported as a non-PSD kernel.
    return [_score_spectrum(w, q, eig_tol, check_psd=False) for q in orders]


@dataclass(frozen=True)
class SubsampledVendi:
    """Vendi score at a fixed subsample size, averaged over random subsamples.

    Attributes
    ----------
    mean, std : float
        Mean and sample standard deviation (ddof=1; 0.0 for a single evaluation) of the scores.
    n_samples : int
        Subsample size actually used. Only results with equal ``n_samples`` (and q) are comparable.
    n_repeats : int
        Number of subsamples evaluated (1 when the whole set was smaller than the requested size).
    n_total : int
        Number of rows in the input.
    q : float
        Order used.
    scores : tuple of float
        The individual scores.
    """

    mean: float
    std: float
    n_samples: int
    n_repeats: int
    n_total: int
    q: float
    scores: tuple[float, ...]

    @property
    def subsampled(self) -> bool:
        """Whether random subsamples were drawn (False when the whole set was scored once)."""
        return self.n_samples < self.n_total


def vendi_score_subsampled(
    X: ArrayLike,
    q: float = 1.0,
    *,
    n_samples: int = 1000,
    n_repeats: int = 10,
    random_state: RandomState = None,
    normalize: bool = True,
    precision: Precision = "float64",
) -> SubsampledVendi:
    """Vendi score at a fixed subsample size, the protocol for comparing sets of different sizes.

    What this number means: the effective number of distinct items among ``n_samples`` items drawn from X;
    because it does not grow with the size of X, it can be compared across iterations.

    Protocol: draw ``n_repeats`` subsets of ``n_samples`` rows without replacement (each from a
    generator seeded by ``random_state``), score each with :func:`vendi_score`, report mean and std.
    If X has at most ``n_samples`` rows it is scored once, whole, and ``n_samples`` in the result is the
    number of rows: such a result is comparable only with others at that same size.

    Parameters
    ----------
    X : array-like of shape (n, d)
    q : float, default 1.0
    n_samples : int, default 1000
        Subsample size; keep it fixed across the iterations you compare.
    n_repeats : int, default 10
    random_state : None, int or numpy Generator
    normalize, precision
        As in :func:`vendi_score`.

    Returns
    -------
    SubsampledVendi
    """
    return vendi_scores_subsampled(X, (q,), n_samples=n_samples, n_repeats=n_repeats, random_state=random_state,
                                   normalize=normalize, precision=precision)[0]


def vendi_scores_subsampled(
    X: ArrayLike,
    orders: Sequence[float],
    *,
    n_samples: int = 1000,
    n_repeats: int = 10,
    random_state: RandomState = None,
    normalize: bool = True,
    precision: Precision = "float64",
) -> tuple[SubsampledVendi, ...]:
    """:func:`vendi_score_subsampled` at several orders over the same subsamples, one per order.

    Each subsample's spectrum is computed once and scored at every order, so asking for q = 1
    and the user's q costs one set of eigendecompositions, and both orders see the same subsets
    (each result equals :func:`vendi_score_subsampled` at that order with the same ``random_state``).
    """
    qs = tuple(check_q(q) for q in orders)
    n_samples = check_positive_int(n_samples, "n_samples")
    n_repeats = check_positive_int(n_repeats, "n_repeats")
    X = as_matrix(X, "X")
    n = X.shape[0]
    if n <= n_samples:
        whole = _scores_of_rows(X, qs, normalize, precision)
        return tuple(SubsampledVendi(s, 0.0, n, 1, n, q, (s,)) for q, s in zip(qs, whole))
    rng = as_rng(random_state)
    per_subset = [_scores_of_rows(X[np.sort(rng.choice(n, n_samples, replace=False))], qs, normalize, precision)
                  for _ in range(n_repeats)]
    out = []
    for j, q in enumerate(qs):
        scores = tuple(row[j] for row in per_subset)
        arr = np.asarray(scores)
        std = float(arr.std(ddof=1)) if n_repeats > 1 else 0.0
        out.append(SubsampledVendi(float(arr.mean()), std, n_samples, n_repeats, n, q, scores))
    return tuple(out)


def _mean_quality(quality: ArrayLike, n: int) -> float:
    qa = np.asarray(quality, dtype=np.float64)
    if qa.ndim != 1 or qa.shape[0] != n:
        raise AddeError(f"quality must be 1-D with one score per item ({n}), got shape {qa.shape}")
    if not np.isfinite(qa).all():
        raise AddeError("quality contains NaN or inf")
    if (qa < 0).any():
        raise AddeError("quality scores must be >= 0 (rescale them, e.g. to [0, 1])")
    return float(qa.mean())


def quality_weighted_vendi_score(
    X: ArrayLike,
    quality: ArrayLike,
    q: float = 1.0,
    *,
    normalize: bool = True,
    precision: Precision = "float64",
) -> float:
    """Quality-weighted Vendi score qVS = mean(quality) × VS_q(X) (Nguyen & Dieng, 2024).

    What this number means: effective number of distinct items, discounted by their average quality; it
    rewards sets that are both diverse and good.

    Parameters
    ----------
    X : array-like of shape (n, d)
    quality : array-like of shape (n,)
        Non-negative per-item quality scores (typically in [0, 1]).
    q, normalize, precision
        As in :func:`vendi_score`.
    """
    X = as_matrix(X, "X", check_finite=False)
    return _mean_quality(quality, X.shape[0]) * vendi_score(X, q, normalize=normalize, precision=precision)


def quality_weighted_vendi_score_from_kernel(
    K: ArrayLike, quality: ArrayLike, q: float = 1.0, *, normalize: bool = False
) -> float:
    """Quality-weighted Vendi score qVS = mean(quality) × VS_q(K) from a kernel matrix.

    What this number means: effective number of distinct items under K, discounted by their average
    quality.

    Parameters
    ----------
    K : array-like of shape (n, n)
    quality : array-like of shape (n,)
        Non-negative per-item quality scores.
    q, normalize
        As in :func:`vendi_score_from_kernel`.
    """
    K = _as_kernel(K)
    return _mean_quality(quality, K.shape[0]) * vendi_score_from_kernel(K, q, normalize=normalize)
