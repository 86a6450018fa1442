"""Coverage of a target distribution (val or pool) by the dataset, and the extent of the latent space it spans."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from adde_core.errors import AddeError
from adde_core.metrics._validation import as_matrix, check_positive_int, eigh_small

__all__ = ["convex_hull_area", "hull_volume", "knn_coverage", "knn_coverage_mask", "pca_hull_volume"]


def knn_coverage_mask(
    dataset: ArrayLike, target: ArrayLike, *, k: int = 5, metric: str = "euclidean"
) -> np.ndarray:
    """Which target points are covered by the dataset, in the k-NN-ball sense of Naeem et al. (2020).

    What this number means: True where the dataset has at least one point inside the target point's
    neighbourhood (its k-NN ball among the target points); False marks a coverage gap.

    Parameters
    ----------
    dataset : array-like of shape (n, d)
        The dataset D_t (embeddings).
    target : array-like of shape (m, d)
        The reference set to cover (D_val or D_pool), with m > k.
    k : int, default 5
        Neighbourhood size. The ball of target point t has radius r_t = distance from t to its k-th
        nearest *other* target point.
    metric : str, default "euclidean"
        Any metric accepted by ``sklearn.neighbors.NearestNeighbors`` (e.g. "cosine").

    Returns
    -------
    numpy.ndarray of bool, shape (m,)
        ``mask[j]`` is True when min_i dist(dataset_i, target_j) <= r_j.
    """
    from sklearn.neighbors import NearestNeighbors  # sklearn import is slow; keep it off module import

    k = check_positive_int(k, "k")
    D = as_matrix(dataset, "dataset")
    T = as_matrix(target, "target")
    if D.shape[1] != T.shape[1]:
        raise AddeError(f"dataset has {D.shape[1]} features but target has {T.shape[1]}")
    if T.shape[0] <= k:
        raise AddeError(f"target needs more than k={k} points to define k-NN balls, got {T.shape[0]}")
    # n_neighbors=k+1 because each target point is its own nearest neighbour at distance 0.
    radius = NearestNeighbors(n_neighbors=k + 1, metric=metric).fit(T).kneighbors(T)[0][:, k]
    nearest = NearestNeighbors(n_neighbors=1, metric=metric).fit(D).kneighbors(T)[0][:, 0]
    # Brute-force distances use ||a||²+||b||²-2ab, which leaves ~1e-8·||x|| for identical points; the slack
    # keeps an exact copy of a target point counted as covering it even when its radius is 0.
    scale = float(np.sqrt(np.einsum("ij,ij->i", T, T).max())) if metric == "euclidean" else 1.0
    return nearest <= radius + 1e-6 * max(scale, 1e-12)


def knn_coverage(dataset: ArrayLike, target: ArrayLike, *, k: int = 5, metric: str = "euclidean") -> float:
    """Fraction of the target set covered by the dataset (k-NN-ball coverage, Naeem et al. 2020).

    What this number means: the share of target points (val or pool) that have a dataset point within
    their k-NN neighbourhood; 1.0 means the dataset reaches every region the target occupies.

    Parameters
    ----------
    dataset, target, k, metric
        See :func:`knn_coverage_mask`.

    Returns
    -------
    float
        In [0, 1].
    """
    return float(knn_coverage_mask(dataset, target, k=k, metric=metric).mean())


def hull_volume(points: ArrayLike) -> float:
    """Volume of the convex hull of points in 1 to ~8 dimensions (length, area, volume, ...).

    What this number means: how much of the space the points span, in the units of their coordinates.

    Degenerate inputs (fewer than dim + 1 points, or points lying in a lower-dimensional subspace, such as
    collinear points in 2-D) have volume 0.0; no exception is raised for them.

    Parameters
    ----------
    points : array-like of shape (n, dim)

    Returns
    -------
    float
    """
    from scipy.spatial import ConvexHull, QhullError

    P = as_matrix(points, "points", min_rows=0).astype(np.float64, copy=False)
    n, dim = P.shape
    if n < dim + 1:
        return 0.0
    if dim == 1:
        return float(P.max() - P.min())
    centred = P - P.mean(axis=0)
    scale = float(np.abs(centred).max())
    if scale == 0.0:
        return 0.0
    # Rank test before Qhull: Qhull on flat input raises (or warns) instead of returning 0.
    sv = np.linalg.svd(centred / scale, compute_uv=False)
    if sv[-1] <= sv[0] * max(n, dim) * np.finfo(np.float64).eps * 16:
        return 0.0
    try:
        return float(ConvexHull(P).volume)
    except QhullError:
        return 0.0


def convex_hull_area(points: ArrayLike) -> float:
    """Area of the convex hull of a 2-D map (e.g. the UMAP projection): the "latent space coverage".

    What this number means: how much of the 2-D map the points span; compare it with the target set's
    area on the same map (a UMAP fitted once), since the map's units are arbitrary.

    Parameters
    ----------
    points : array-like of shape (n, 2)

    Returns
    -------
    float
        Area, 0.0 for fewer than 3 points or collinear points.
    """
    P = as_matrix(points, "points", min_rows=0)
    if P.shape[1] != 2:
        raise AddeError(f"points must have 2 columns (a 2-D map), got shape {P.shape}")
    return hull_volume(P)


def pca_hull_volume(X: ArrayLike, *, n_components: int = 3, reference: ArrayLike | None = None) -> float:
    """Convex-hull volume of embeddings projected onto their top principal components.

    What this number means: how much of the main directions of variation the set spans. With
    ``reference`` it is measured in the reference's PCA basis, so values for different sets (or
    iterations) are comparable, and ``pca_hull_volume(X, reference=R) / pca_hull_volume(R, reference=R)``
    reads as the share of the reference's extent that X spans.

    Parameters
    ----------
    X : array-like of shape (n, d)
    n_components : int, default 3
        Number of principal components (3 by default; up to 5 stays fast). The volume has units of
        embedding distance to the power ``n_components``. Qhull's cost grows steeply with the dimension:
        keep it <= 5 for tens of thousands of points.
    reference : array-like of shape (m, d), optional
        Set that defines the PCA basis (centre and axes), e.g. the union of val and pool. Defaults to X.

    Returns
    -------
    float
        Hull volume; 0.0 for fewer than ``n_components + 1`` points or a flat set.

    Notes
    -----
    PCA here is exact and deterministic (eigendecomposition of the d×d covariance), so there is no
    random_state.
    """
    n_components = check_positive_int(n_components, "n_components")
    X = as_matrix(X, "X").astype(np.float64, copy=False)
    R = X if reference is None else as_matrix(reference, "reference").astype(np.float64, copy=False)
    if R.shape[1] != X.shape[1]:
        raise AddeError(f"X has {X.shape[1]} features but reference has {R.shape[1]}")
    if n_components > X.shape[1]:
        raise AddeError(f"n_components={n_components} exceeds the number of features ({X.shape[1]})")
    if X.shape[0] < n_components + 1 or R.shape[0] < 2:
        return 0.0
    mean = R.mean(axis=0)
    cov = np.zeros((R.shape[1], R.shape[1]))
    for start in range(0, R.shape[0], 8192):  # blocks keep the centred copy small
        block = R[start : start + 8192] - mean
        cov += block.T @ block
    _, evecs = eigh_small(cov, eigvals_only=False)
    axes = evecs[:, ::-1][:, :n_components]
    return hull_volume((X - mean) @ axes)
