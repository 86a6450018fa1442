"""Maximum mean discrepancy (RBF kernel) between the dataset and a target set: how far apart the distributions are."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from adde_core.errors import AddeError
from adde_core.metrics._validation import RandomState, as_matrix, as_rng, check_positive_int

__all__ = ["MMDResult", "median_heuristic_bandwidth", "mmd_rbf"]

_BLOCK = 2048  # rows per kernel block: memory O(_BLOCK · n) instead of O(n²)


@dataclass(frozen=True)
class MMDResult:
    """Result of :func:`mmd_rbf`.

    Attributes
    ----------
    mmd2 : float
        Unbiased estimate of MMD² (can be slightly negative when the distributions match).
    bandwidth : float
        σ of the RBF kernel k(a, b) = exp(-||a - b||² / (2σ²)).
    n_x, n_y : int
        Number of points of each set actually used (after subsampling).
    """

    mmd2: float
    bandwidth: float
    n_x: int
    n_y: int

    @property
    def mmd(self) -> float:
        """sqrt(max(mmd2, 0)): the discrepancy in kernel-feature-space distance units."""
        return math.sqrt(max(self.mmd2, 0.0))


def _subsample(A: np.ndarray, max_samples: int | None, rng: np.random.Generator) -> np.ndarray:
    if max_samples is None or A.shape[0] <= max_samples:
        return A
    return A[np.sort(rng.choice(A.shape[0], max_samples, replace=False))]


def median_heuristic_bandwidth(
    X: ArrayLike, Y: ArrayLike | None = None, *, max_samples: int = 1000, random_state: RandomState = None
) -> float:
    """RBF bandwidth by the median heuristic: the median pairwise Euclidean distance of the pooled sample.

    What this number means: a typical distance between points, used as the kernel's length scale so
    that the MMD is neither saturated nor blind.

    Parameters
    ----------
    X : array-like of shape (n, d)
    Y : array-like of shape (m, d), optional
        Pooled with X when given.
    max_samples : int, default 1000
        At most this many pooled points (drawn at random) enter the median: O(max_samples²) distances.
    random_state : None, int or numpy Generator

    Returns
    -------
    float
        σ = median of the non-zero pairwise distances; 1.0 if all points coincide.
    """
    from scipy.spatial.distance import pdist

    max_samples = check_positive_int(max_samples, "max_samples", minimum=2)
    Z = as_matrix(X, "X").astype(np.float64, copy=False)
    if Y is not None:
        Yv = as_matrix(Y, "Y").astype(np.float64, copy=False)
        if Yv.shape[1] != Z.shape[1]:
            raise AddeError(f"X has {Z.shape[1]} features but Y has {Yv.shape[1]}")
        Z = np.vstack([Z, Yv])
    Z = _subsample(Z, max_samples, as_rng(random_state))
    dist = pdist(Z)
    dist = dist[dist > 0]
    return float(np.median(dist)) if dist.size else 1.0


def _rbf_sum(A: np.ndarray, B: np.ndarray, gamma: float, same: bool) -> float:
    """Σ_ij exp(-gamma ||a_i - b_j||²), blocked; with ``same`` the diagonal (exactly 1) is excluded."""
    b2 = np.einsum("ij,ij->i", B, B)
    total = 0.0
    for start in range(0, A.shape[0], _BLOCK):
        a = A[start : start + _BLOCK]
        sq = np.einsum("ij,ij->i", a, a)[:, None] + b2[None, :] - 2.0 * (a @ B.T)
        np.maximum(sq, 0.0, out=sq)
        if same:
            idx = np.arange(a.shape[0])
            sq[idx, idx + start] = np.inf  # exp(-inf) = 0 drops the i = j terms exactly
        total += float(np.exp(-gamma * sq).sum())
    return total


def mmd_rbf(
    X: ArrayLike,
    Y: ArrayLike,
    *,
    bandwidth: float | None = None,
    max_samples: int | None = 5000,
    random_state: RandomState = None,
) -> MMDResult:
    """Unbiased MMD² between two sets of embeddings under the RBF kernel (Gretton et al., 2012).

    What this number means: how far apart the two distributions are (0 when they are the same); useful
    to track how far the dataset is from the validation or pool distribution across iterations.

    Parameters
    ----------
    X : array-like of shape (n, d)
        The dataset, n >= 2.
    Y : array-like of shape (m, d)
        The target set (val or pool), m >= 2.
    bandwidth : float, optional
        σ in k(a, b) = exp(-||a - b||² / (2σ²)). Default: the median heuristic on the pooled (subsampled)
        sets, see :func:`median_heuristic_bandwidth`. Pass a fixed σ to compare values across iterations
        on the same scale.
    max_samples : int or None, default 5000
        Each set larger than this is subsampled at random (without replacement) to this size; cost is
        O((n + m)² d) time and O(2048 · (n + m)) memory. None uses every point.
    random_state : None, int or numpy Generator
        Seeds the subsampling and the bandwidth estimate.

    Returns
    -------
    MMDResult
        ``mmd2`` = mean_{i≠j} k(x_i, x_j) + mean_{i≠j} k(y_i, y_j) - 2 mean_{i,j} k(x_i, y_j).
    """
    if max_samples is not None:
        max_samples = check_positive_int(max_samples, "max_samples", minimum=2)
    Xa = as_matrix(X, "X", min_rows=2).astype(np.float64, copy=False)
    Ya = as_matrix(Y, "Y", min_rows=2).astype(np.float64, copy=False)
    if Xa.shape[1] != Ya.shape[1]:
        raise AddeError(f"X has {Xa.shape[1]} features but Y has {Ya.shape[1]}")
    rng = as_rng(random_state)
    Xa = _subsample(Xa, max_samples, rng)
    Ya = _subsample(Ya, max_samples, rng)
    if bandwidth is None:
        bandwidth = median_heuristic_bandwidth(Xa, Ya, random_state=rng)
    elif isinstance(bandwidth, bool) or not isinstance(bandwidth, numbers.Real) or not (
        math.isfinite(bandwidth) and bandwidth > 0
    ):
        raise AddeError(f"bandwidth must be a finite number > 0, got {bandwidth!r}")
    gamma = 1.0 / (2.0 * float(bandwidth) ** 2)
    n, m = Xa.shape[0], Ya.shape[0]
    kxx = _rbf_sum(Xa, Xa, gamma, same=True) / (n * (n - 1))
    kyy = _rbf_sum(Ya, Ya, gamma, same=True) / (m * (m - 1))
    kxy = _rbf_sum(Xa, Ya, gamma, same=False) / (n * m)
    return MMDResult(kxx + kyy - 2.0 * kxy, float(bandwidth), n, m)
