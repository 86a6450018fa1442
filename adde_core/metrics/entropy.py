"""Cluster-size entropy: how evenly a dataset spreads over its clusters.

Noise policy for HDBSCAN's noise label (-1 by default), chosen with ``noise=``:

* ``"exclude"`` (default): noise points are left out; proportions are over clustered points only. This
  measures balance among the structures HDBSCAN found, and does not reward noise.
* ``"as_cluster"``: all noise points form one extra cluster.
* ``"singletons"``: every noise point is its own cluster of size 1. This treats outliers as maximally
  distinct items and raises the entropy; it is the upper-bound reading.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from adde_core.errors import AddeError
from adde_core.metrics._validation import as_labels, noise_mask

__all__ = ["ClusterEntropy", "NoisePolicy", "cluster_entropy", "cluster_entropy_from_sizes"]

NoisePolicy = Literal["exclude", "as_cluster", "singletons"]
_POLICIES = ("exclude", "as_cluster", "singletons")


@dataclass(frozen=True)
class ClusterEntropy:
    """Entropy of the cluster-size distribution.

    Attributes
    ----------
    entropy : float
        H = -Σ p_i log p_i in nats over the cluster proportions p_i.
    normalized : float
        H / log(k), in [0, 1]: 1 means perfectly balanced clusters. Defined as 0.0 when k <= 1, where
        there is no spread to measure (a single cluster is not reported as "perfectly balanced").
    effective_number : float
        exp(H): the number of equally sized clusters with the same entropy. 0.0 when k = 0.
    n_clusters : int
        k, the number of non-empty clusters after applying the noise policy.
    n_points : int
        Points counted in the proportions.
    n_noise : int
        Noise points in the input (whatever the policy).
    noise_policy : str
        The policy that was applied.
    """

    entropy: float
    normalized: float
    effective_number: float
    n_clusters: int
    n_points: int
    n_noise: int
    noise_policy: str


def _from_counts(counts: np.ndarray, n_noise: int, policy: str) -> ClusterEntropy:
    counts = counts[counts > 0].astype(np.float64)
    k = int(counts.size)
    total = float(counts.sum())
    if k == 0:
        return ClusterEntropy(0.0, 0.0, 0.0, 0, 0, n_noise, policy)
    p = counts / total
    h = max(0.0, -float(np.sum(p * np.log(p))))
    normalized = h / math.log(k) if k > 1 else 0.0
    return ClusterEntropy(h, normalized, math.exp(h), k, int(total), n_noise, policy)


def cluster_entropy_from_sizes(sizes: ArrayLike) -> ClusterEntropy:
    """Cluster-size entropy from a list of cluster sizes.

    What this number means: how evenly items are spread over clusters; ``effective_number`` reads as
    "this many equally sized clusters".

    Parameters
    ----------
    sizes : array-like of shape (k,)
        Non-negative cluster sizes (counts or weights). Zero sizes are ignored.

    Returns
    -------
    ClusterEntropy
        With ``n_noise=0`` and ``noise_policy="exclude"``.
    """
    s = np.asarray(sizes, dtype=np.float64)
    if s.ndim != 1:
        raise AddeError(f"sizes must be 1-D, got shape {s.shape}")
    if not np.isfinite(s).all():
        raise AddeError("sizes contain NaN or inf")
    if (s < 0).any():
        raise AddeError("sizes must be >= 0")
    return _from_counts(s, 0, "exclude")


def cluster_entropy(
    labels: ArrayLike, *, noise: NoisePolicy = "exclude", noise_label: object = -1
) -> ClusterEntropy:
    """Cluster-size entropy of a clustering given as one label per item.

    What this number means: how evenly the data spread over their clusters; ``normalized`` is 1 for
    equal-sized clusters and near 0 when one cluster holds almost everything.

    Parameters
    ----------
    labels : array-like of shape (n,)
        Cluster label per item (ints or strings).
    noise : {"exclude", "as_cluster", "singletons"}, default "exclude"
        How noise points are counted; see the module docstring.
    noise_label : object, default -1
        The label that marks noise (HDBSCAN's -1). ``None`` means there is no noise label.

    Returns
    -------
    ClusterEntropy
        With all noise excluded and no clusters left, every number is 0.0 and ``n_clusters`` is 0.
    """
    if noise not in _POLICIES:
        raise AddeError(f"noise must be one of {_POLICIES}, got {noise!r}")
    lab = as_labels(labels)
    is_noise = noise_mask(lab, noise_label)
    n_noise = int(is_noise.sum())
    _, counts = np.unique(lab[~is_noise], return_counts=True)
    if n_noise:
        if noise == "as_cluster":
            counts = np.append(counts, n_noise)
        elif noise == "singletons":
            counts = np.concatenate([counts, np.ones(n_noise, dtype=counts.dtype)])
    return _from_counts(counts, n_noise, noise)
