"""The three score components U (uncertainty), Div (diversity contribution) and Q (quality), each in [0, 1].

Definitions
-----------
U, margin (default)
    ``1 - (p1 - p2)`` with p1 >= p2 the two largest class probabilities: 1 when the head
    cannot separate its top two classes, 0 when it is certain. Margin is the default because
    it ignores how the remaining mass spreads over unlikely classes, which makes it the
    stronger and more robust choice with many classes.
U, entropy
    Shannon entropy of the probabilities divided by ``log k`` (k classes), so a uniform row
    scores 1 and a one-hot row 0.
Div
    Built from the cosine distance ``d = 1 - cos`` (in [0, 2]) of a candidate to its nearest
    item in the labelled set *and the candidates ranked above it*, divided by ``D0``, the
    largest distance of any candidate to the labelled set alone. So 0 means "a duplicate of
    something already there" and 1 "as novel as the most novel candidate". With an empty
    labelled set each candidate starts at the largest possible distance, 2.
    With a region centroid, ``Div = (1 - w) * d / D0 + w * proximity`` where
    ``proximity = 1 - c / C0``, ``c`` is the cosine distance to the centroid and ``C0`` the
    largest such distance among the candidates (``w`` is ``region_weight``, 0.5 by default):
    being far from what is labelled only helps when the item is also on target, which keeps
    off-target generations (also "novel") from rising to the top.
Q
    The quality-gate score, 1 when not given.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from adde_core.linalg import unit_rows  # noqa: F401 - re-exported: strategies use it from here

__all__ = [
    "UNCERTAINTIES",
    "cosine_distance_to_set",
    "entropy_uncertainty",
    "margin_uncertainty",
    "novelty_in_order",
    "unit_rows",
]

# Query rows per block when comparing against a set: bounds the temporary similarity
# matrix at about 64 MB of float32.
_BLOCK_ELEMENTS = 16_000_000
EMPTY_SET_DISTANCE = 2.0  # the largest cosine distance: nothing labelled means everything is new


def margin_uncertainty(probs: np.ndarray) -> np.ndarray:
    """``1 - (p1 - p2)`` per row, in [0, 1].

    Parameters
    ----------
    probs : ndarray (n, k), k >= 2
        Class probabilities; rows sum to 1.

    Returns
    -------
    ndarray (n,) float64
    """
    p = np.asarray(probs, dtype=np.float64)
    top2 = -np.partition(-p, 1, axis=1)[:, :2]
    return np.clip(1.0 - (top2[:, 0] - top2[:, 1]), 0.0, 1.0)


def entropy_uncertainty(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy divided by ``log k`` per row, in [0, 1] (``0 log 0 = 0``).

    Parameters
    ----------
    probs : ndarray (n, k), k >= 2
        Class probabilities; rows sum to 1.

    Returns
    -------
    ndarray (n,) float64
    """
    p = np.asarray(probs, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return np.clip(-terms.sum(axis=1) / np.log(p.shape[1]), 0.0, 1.0)


UNCERTAINTIES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "margin": margin_uncertainty,
    "entropy": entropy_uncertainty,
}




def cosine_distance_to_set(Xn: np.ndarray, Sn: np.ndarray) -> np.ndarray:
    """Cosine distance of each unit row of ``Xn`` to its nearest unit row of ``Sn``.

    Parameters
    ----------
    Xn : ndarray (n, d), unit rows
    Sn : ndarray (m, d), unit rows; m may be 0

    Returns
    -------
    ndarray (n,) float64 in [0, 2]; ``EMPTY_SET_DISTANCE`` (2) everywhere when m is 0.
    """
    n, m = Xn.shape[0], Sn.shape[0]
    if m == 0:
        return np.full(n, EMPTY_SET_DISTANCE)
    best = np.empty(n, dtype=np.float32)
    step = max(1, _BLOCK_ELEMENTS // m)
    for start in range(0, n, step):
        best[start:start + step] = (Xn[start:start + step] @ Sn.T).max(axis=1)
    return np.clip(1.0 - best.astype(np.float64), 0.0, 2.0)


def novelty_in_order(Xn: np.ndarray, order: np.ndarray, d_labelled: np.ndarray) -> np.ndarray:
    """Cosine distance of each ranked candidate to the labelled set and every candidate ranked above it.

    Parameters
    ----------
    Xn : ndarray (n, d), unit rows of all candidates
    order : ndarray (k,) of int
        Positions into ``Xn``, best first.
    d_labelled : ndarray (n,)
        Distance of every candidate to the labelled set (``cosine_distance_to_set``).

    Returns
    -------
    ndarray (k,) float64: entry r is ``min(d_labelled[order[r]], min_{s<r} dist(order[r], order[s]))``.
    """
    order = np.asarray(order, dtype=np.int64)
    k = order.shape[0]
    d = d_labelled[order].astype(np.float64)
    if k < 2:
        return d
    S = Xn[order]
    best = np.full(k, -np.inf, dtype=np.float32)
    step = max(1, min(k, _BLOCK_ELEMENTS // k))
    for start in range(0, k, step):
        stop = min(k, start + step)
        # rows start..stop against all earlier rows (0..stop); the upper triangle is masked out
        sims = S[start:stop] @ S[:stop].T
        rows = np.arange(stop - start)
        mask = np.arange(stop)[None, :] >= (start + rows)[:, None]
        sims[mask] = -np.inf
        best[start:stop] = sims.max(axis=1)
    with np.errstate(invalid="ignore"):
        above = np.clip(1.0 - best.astype(np.float64), 0.0, 2.0)  # row 0: 1 - (-inf) clips to 2
    return np.minimum(d, above)
