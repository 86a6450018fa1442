"""Cluster separation and spread: minimum inter-cluster distance and maximum intra-cluster distance (Euclidean).

Definitions (noise points, label -1 by default, belong to no cluster and are ignored):

* **Minimum inter-cluster distance**, default ``method="centroid"``: the smallest Euclidean distance
  between the centroids (means) of two different clusters. Centroids were chosen over the closest pair of
  points because the point-pair minimum is set by a single border or bridge point, and it can only shrink
  as data are added, so it trends downward across iterations whatever happens to the cluster structure;
  centroids are robust to that and cost O(k²·d). ``method="single"`` gives the closest-pair distance
  (single linkage, as in the Dunn index) for those who want it; it is computed in blocks.
* **Maximum intra-cluster distance**: the largest cluster diameter, i.e. the largest distance between two
  points of the same cluster. Computed exactly in blocks (O(n_c²·d) time, O(block·n_c) memory), with an
  optional cap on the points per cluster for very large clusters.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from adde_core.errors import AddeError
from adde_core.metrics._validation import RandomState, as_labels, as_matrix, as_rng, check_positive_int, noise_mask

__all__ = ["max_intracluster_distance", "min_intercluster_distance"]

_BLOCK_ELEMENTS = 1 << 22  # ≈32 MB of float64 distances per block


def _clusters(X: ArrayLike, labels: ArrayLike, noise_label: object) -> tuple[np.ndarray, list[np.ndarray]]:
    Xa = as_matrix(X, "X").astype(np.float64, copy=False)
    lab = as_labels(labels, n=Xa.shape[0])
    keep = ~noise_mask(lab, noise_label)
    _, inverse = np.unique(lab[keep], return_inverse=True)
    idx = np.flatnonzero(keep)
    groups = [idx[inverse == c] for c in range(int(inverse.max()) + 1)] if idx.size else []
    return Xa, groups


def _sqnorms(A: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", A, A)


def _block_rows(n_cols: int) -> int:
    return max(1, _BLOCK_ELEMENTS // max(n_cols, 1))


def min_intercluster_distance(
    X: ArrayLike,
    labels: ArrayLike,
    *,
    method: Literal["centroid", "single"] = "centroid",
    noise_label: object = -1,
) -> float:
    """Smallest Euclidean distance between two different clusters.

    What this number means: how close the two nearest clusters are; small values mean some clusters
    nearly merge (see the module docstring for why centroids are the default).

    Parameters
    ----------
    X : array-like of shape (n, d)
    labels : array-like of shape (n,)
        Cluster label per row; rows labelled ``noise_label`` are ignored.
    method : {"centroid", "single"}, default "centroid"
        "centroid": min distance between cluster means. "single": min distance between two points in
        different clusters, computed in blocks without an n×n matrix.
    noise_label : object, default -1
        Label of noise points (HDBSCAN). ``None`` if there is none.

    Returns
    -------
    float
        The distance, or NaN when fewer than two clusters are present (the quantity is undefined).
    """
    if method not in ("centroid", "single"):
        raise AddeError(f"method must be 'centroid' or 'single', got {method!r}")
    Xa, groups = _clusters(X, labels, noise_label)
    if len(groups) < 2:
        return math.nan
    if method == "centroid":
        C = np.stack([Xa[g].mean(axis=0) for g in groups])
        sq = _sqnorms(C)[:, None] + _sqnorms(C)[None, :] - 2.0 * (C @ C.T)
        np.fill_diagonal(sq, np.inf)
        # recompute the winning pair directly: the Gram trick loses precision for near-equal centroids
        i, j = np.unravel_index(int(np.argmin(sq)), sq.shape)
        return float(np.linalg.norm(C[i] - C[j]))
    idx = np.concatenate(groups)
    cid = np.concatenate([np.full(g.size, c) for c, g in enumerate(groups)])
    P = Xa[idx]
    p2 = _sqnorms(P)
    best, best_pair = math.inf, (0, 0)
    step = _block_rows(P.shape[0])
    for start in range(0, P.shape[0], step):
        a = P[start : start + step]
        sq = _sqnorms(a)[:, None] + p2[None, :] - 2.0 * (a @ P.T)
        sq[cid[start : start + step, None] == cid[None, :]] = np.inf
        flat = int(np.argmin(sq))
        r, c = divmod(flat, sq.shape[1])
        if sq[r, c] < best:
            best, best_pair = float(sq[r, c]), (start + r, c)
    return float(np.linalg.norm(P[best_pair[0]] - P[best_pair[1]]))


def _diameter(A: np.ndarray) -> float:
    if A.shape[0] < 2:
        return 0.0
    a2 = _sqnorms(A)
    best, pair = -1.0, (0, 0)
    step = _block_rows(A.shape[0])
    for start in range(0, A.shape[0], step):
        # only columns >= start: the pairs with both rows in earlier blocks were already seen
        a = A[start : start + step]
        sq = a2[start : start + step, None] + a2[None, start:] - 2.0 * (a @ A[start:].T)
        flat = int(np.argmax(sq))
        r, c = divmod(flat, sq.shape[1])
        if sq[r, c] > best:
            best, pair = float(sq[r, c]), (start + r, start + c)
    return float(np.linalg.norm(A[pair[0]] - A[pair[1]]))


def max_intracluster_distance(
    X: ArrayLike,
    labels: ArrayLike,
    *,
    noise_label: object = -1,
    max_points_per_cluster: int | None = None,
    random_state: RandomState = None,
) -> float:
    """Largest cluster diameter: the greatest Euclidean distance between two points of the same cluster.

    What this number means: how spread out the widest cluster is; large values flag a cluster that is
    really several groups, or one stretched by outliers.

    Parameters
    ----------
    X : array-like of shape (n, d)
    labels : array-like of shape (n,)
        Cluster label per row; rows labelled ``noise_label`` are ignored.
    noise_label : object, default -1
    max_points_per_cluster : int, optional
        If given, clusters larger than this are subsampled at random to this size first, which makes the
        result a lower bound. Default: exact (fine up to ~10^4 points per cluster).
    random_state : None, int or numpy Generator
        Seeds that subsampling.

    Returns
    -------
    float
        The largest diameter (0.0 if every cluster has a single point), or NaN if there is no cluster.
    """
    if max_points_per_cluster is not None:
        max_points_per_cluster = check_positive_int(max_points_per_cluster, "max_points_per_cluster", minimum=2)
    Xa, groups = _clusters(X, labels, noise_label)
    if not groups:
        return math.nan
    rng = as_rng(random_state)
    best = 0.0
    for g in groups:
        if max_points_per_cluster is not None and g.size > max_points_per_cluster:
            g = np.sort(rng.choice(g, max_points_per_cluster, replace=False))
        best = max(best, _diameter(Xa[g]))
    return best
