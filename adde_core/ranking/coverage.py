"""Coverage selection for low label budgets: ProbCover's δ-ball cover and (U)Herding's kernel cover, on unit rows.

Both objectives need all pairwise similarities of the embeddings. On unit rows Euclidean
distance and cosine similarity are tied by ``||a - b||² = 2 - 2 cos(a, b)``, so one matrix
product ``Z @ Z.T`` gives every distance. It is kept in memory as float32 when it fits in
``DENSE_BYTES`` (10,000 rows: 400 MB) and recomputed in row blocks otherwise, so each
strategy costs one product plus work linear in the number of neighbour pairs.
"""

from __future__ import annotations

import heapq
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from adde_core.linalg import KeptByRows, row_digests

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

__all__ = [
    "DENSE_BYTES",
    "PROBCOVER_DELTAS",
    "PROBCOVER_PURITY",
    "ball_graph",
    "gram_if_fits",
    "herding_order",
    "herding_sigma",
    "probcover_delta",
    "probcover_order",
    "purity_radius",
]

# δ grid for ProbCover (Euclidean radius between unit rows; cosine distance δ²/2). Finer than
# scikit-activeml's default 0.2 steps because the purity test is cheap once every point's
# purity radius is known, and the chosen δ matters a lot at small budgets.
PROBCOVER_DELTAS = np.round(np.arange(0.05, 2.0 + 1e-9, 0.05), 2)
PROBCOVER_PURITY = 0.95  # the paper's alpha: share of balls that must be pure
# k-means for the purity test runs on a PCA of the unit rows (as TypiClust's does): on 10k x 1280
# it takes ~8 s in full dimension and ~0.2 s in 50, and only the cluster labels are used.
PROBCOVER_PCA_COMPONENTS = 50
DENSE_BYTES = 512 * 2**20  # largest all-pairs float32 matrix kept in memory
_BLOCK_ELEMENTS = 16_000_000  # rows per block so that a block of similarities is ~64 MB
_SIGMA_SAMPLE = 2000  # candidates sampled for the median pairwise distance (2M pairs)
_DUPLICATE_DISTANCE = 1e-6  # distances below this are the same point seen twice


def gram_if_fits(Z: np.ndarray) -> np.ndarray | None:
    """``Z @ Z.T`` (float32) when it fits in ``DENSE_BYTES``, else None (callers then use row blocks)."""
    n = Z.shape[0]
    return Z @ Z.T if n * n * 4 <= DENSE_BYTES else None


#: The last pool's ``min(Z @ Z.T - 1, 0)`` (see :func:`_similarity_minus_one`).
_KEPT = KeptByRows()


def _similarity_minus_one(Z: np.ndarray) -> np.ndarray | None:
    """``min(Z @ Z.T - 1, 0)`` (float32, a new array the caller may overwrite), or None when it does not fit.

    Herding ranks a pool that loses only the items just labelled from one round to the next, and
    the product is most of its cost (1.0-1.9 s of a 7,786-item demo round on 2 cores). The
    last matrix is kept with a digest of each of its rows, and a call whose rows are all among
    them (in any order, duplicates allowed) gathers its entries instead: every entry is the
    product of the same two rows, so only float rounding of the product can differ (< 1e-6).
    One matrix (at most ``DENSE_BYTES``) is kept per process; any other pool replaces it.
    """
    n = Z.shape[0]
    if n * n * 4 > DENSE_BYTES:
        return None
    keys = row_digests(Z)
    hit = _KEPT.find(b"", keys)
    if hit is not None:
        rows, kept = hit
        return kept[np.ix_(rows, rows)]
    S = Z @ Z.T
    S -= 1.0
    np.minimum(S, 0.0, out=S)
    _KEPT.keep(b"", keys, S.copy())
    return S


def _row_blocks(Z: np.ndarray, G: np.ndarray | None) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(start, stop, Z[start:stop] @ Z.T)`` in blocks of rows, read from ``G`` when given (do not write to it)."""
    n = Z.shape[0]
    step = max(1, _BLOCK_ELEMENTS // max(n, 1))
    for start in range(0, n, step):
        stop = min(n, start + step)
        yield start, stop, (G[start:stop] if G is not None else Z[start:stop] @ Z.T)


# ---------------------------------------------------------------- ProbCover


def purity_radius(Z: np.ndarray, clusters: np.ndarray, G: np.ndarray | None = None) -> np.ndarray:
    """Distance from each unit row to the nearest row of another cluster (inf when there is none).

    A δ-ball around row i is pure (every point in it shares i's cluster) exactly when
    ``δ < radius[i]``, so the purity of every δ follows from this one vector.

    Parameters
    ----------
    Z : ndarray (N, d), unit rows
    clusters : ndarray (N,) of int
    G : ndarray (N, N) or None
        ``Z @ Z.T`` if already computed.

    Returns
    -------
    ndarray (N,) float64
    """
    radius = np.empty(Z.shape[0])
    for start, stop, S in _row_blocks(Z, G):
        other = clusters[start:stop, None] != clusters[None, :]
        best = np.where(other, S, -np.inf).max(axis=1).astype(np.float64)
        with np.errstate(invalid="ignore"):
            radius[start:stop] = np.sqrt(np.maximum(2.0 - 2.0 * best, 0.0))  # -inf -> inf
    return radius


def probcover_delta(Z: np.ndarray, n_clusters: int, *, deltas: np.ndarray = PROBCOVER_DELTAS,
                    alpha: float = PROBCOVER_PURITY, random_state: int | None = None,
                    G: np.ndarray | None = None) -> tuple[float, float, bool]:
    """ProbCover's ball radius: the largest δ in ``deltas`` for which at least ``alpha`` of the balls are pure.

    The points are clustered by k-means into ``n_clusters`` clusters (Yehuda et al. 2022 use
    the number of classes); a ball is pure when every point within δ of its centre is in the
    centre's cluster. As in scikit-activeml's ``ProbCover``, when no δ reaches ``alpha`` the
    smallest one is returned, and a single δ is returned without clustering.

    Parameters
    ----------
    Z : ndarray (N, d), unit rows
        Every point whose ball counts: candidates and labelled items.
    n_clusters : int
    deltas : array-like of float
        Radii to try (Euclidean on unit rows).
    alpha : float in (0, 1)
    random_state : int or None
        Seed of the k-means.
    G : ndarray (N, N) or None
        ``Z @ Z.T`` if already computed.

    Returns
    -------
    delta : float
    purity : float
        Share of pure balls at ``delta``.
    reached : bool
        Whether ``purity >= alpha``.
    """
    from sklearn.cluster import KMeans

    deltas = np.sort(np.asarray(deltas, dtype=np.float64))
    N = Z.shape[0]
    n_clusters = min(int(n_clusters), N)
    if len(deltas) == 1 or n_clusters < 2:
        return float(deltas[0] if len(deltas) == 1 else deltas[-1]), 1.0, True
    Zc = Z
    if Z.shape[1] > PROBCOVER_PCA_COMPONENTS and N > PROBCOVER_PCA_COMPONENTS:
        from adde_core.analysis.density import reduce_for_search

        Zc = reduce_for_search(Z, PROBCOVER_PCA_COMPONENTS)
    with warnings.catch_warnings():
        # duplicate points can leave fewer distinct clusters than asked for; purity is still defined
        warnings.simplefilter("ignore")
        clusters = KMeans(n_clusters=n_clusters, n_init=1, random_state=random_state).fit_predict(Zc)
    radius = purity_radius(Z, clusters, G)
    purity = (radius[None, :] > deltas[:, None]).mean(axis=1)  # non-increasing in δ
    ok = np.flatnonzero(purity >= alpha)
    best = int(ok[-1]) if ok.size else 0
    return float(deltas[best]), float(purity[best]), bool(ok.size)


def ball_graph(Z: np.ndarray, delta: float, G: np.ndarray | None = None) -> csr_matrix:
    """Directed graph with an edge i -> j when ``||z_i - z_j|| <= delta`` (every point covers itself).

    Parameters
    ----------
    Z : ndarray (N, d), unit rows
    delta : float
    G : ndarray (N, N) or None
        ``Z @ Z.T`` if already computed.

    Returns
    -------
    scipy.sparse.csr_matrix (N, N) of int8 ones
    """
    from scipy.sparse import csr_matrix

    N = Z.shape[0]
    threshold = np.float32(1.0 - delta * delta / 2.0)  # ||a - b|| <= δ  <=>  cos >= 1 - δ²/2
    counts, cols = [], []
    for start, stop, S in _row_blocks(Z, G):
        inside = S >= threshold
        rows = np.arange(stop - start)
        inside[rows, start + rows] = True  # rounding must not take a point out of its own ball
        r, c = np.nonzero(inside)
        counts.append(np.bincount(r, minlength=stop - start))
        cols.append(c.astype(np.int32))
    indptr = np.concatenate([[0], np.cumsum(np.concatenate(counts))]) if counts else np.zeros(1, np.int64)
    indices = np.concatenate(cols) if cols else np.zeros(0, np.int32)
    return csr_matrix((np.ones(len(indices), dtype=np.int8), indices, indptr), shape=(N, N))


def probcover_order(graph: csr_matrix, n_labelled: int, k: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Greedy max coverage (ProbCover): repeatedly pick the candidate whose ball covers most uncovered points.

    Rows ``0..n_labelled-1`` of ``graph`` are the labelled items, whose balls are covered
    from the start; the rest are the candidates. Instead of recounting every ball after a
    pick, each newly covered point takes one off the gain of every ball that contains it,
    so the whole run costs one pass over the edges. Ties go to the earlier candidate. Once
    every point is covered the remaining candidates follow in random order (gain 0), as in
    scikit-activeml, where all of them tie.

    Parameters
    ----------
    graph : csr_matrix (N, N)
        From :func:`ball_graph`.
    n_labelled : int
    k : int
        Number of candidates to order (at most ``N - n_labelled``).
    rng : numpy Generator

    Returns
    -------
    order : ndarray (k,) of int
        Candidate positions (0-based among the candidates), best first.
    gains : ndarray (k,) of int
        Points each pick newly covered.
    """
    m, N = n_labelled, graph.shape[0]
    n = N - m
    into = graph.T.tocsr()  # row j: every ball that contains point j
    covered = np.zeros(N, dtype=bool)
    covered[graph.indices[:graph.indptr[m]]] = True
    gains = np.asarray(graph[m:] @ (~covered).astype(np.int64)).ravel()
    order: list[int] = []
    picked_gains: list[int] = []
    while len(order) < k:
        i = int(np.argmax(gains))
        if gains[i] <= 0:
            break
        ball = graph.indices[graph.indptr[m + i]:graph.indptr[m + i + 1]]
        newly = ball[~covered[ball]]
        covered[newly] = True
        gains -= np.bincount(into[newly].indices, minlength=N)[m:]
        order.append(i)
        picked_gains.append(len(newly))
        gains[i] = -1  # picked; its gain is 0 now and can only fall
    if len(order) < k:
        rest = np.setdiff1d(np.arange(n), np.asarray(order, dtype=np.int64))
        order.extend(rng.permutation(rest)[:k - len(order)].tolist())
        picked_gains.extend([0] * (k - len(picked_gains)))
    return np.asarray(order, dtype=np.int64), np.asarray(picked_gains, dtype=np.int64)


# ---------------------------------------------------------------- MaxHerding / UHerding


def _min_nonzero_distance(A: np.ndarray) -> float | None:
    """Smallest Euclidean distance between two distinct unit rows of ``A`` (float64), or None."""
    A = np.asarray(A, dtype=np.float64)
    n = A.shape[0]
    best = np.inf
    step = max(1, _BLOCK_ELEMENTS // max(n, 1))
    for start in range(0, n, step):
        stop = min(n, start + step)
        d = np.sqrt(np.maximum(2.0 - 2.0 * (A[start:stop] @ A.T), 0.0))
        upper = np.arange(n)[None, :] > np.arange(start, stop)[:, None]
        d = d[upper & (d > _DUPLICATE_DISTANCE)]
        if d.size:
            best = min(best, float(d.min()))
    return best if np.isfinite(best) else None


def herding_sigma(Xn: np.ndarray, Ln: np.ndarray, rng: np.random.Generator) -> float:
    """Gaussian kernel radius by UHerding's adaptive rule (Bae et al. 2025, as scikit-activeml implements it).

    With at least two distinct labelled items: the smallest distance between two of them, so
    the kernel shrinks as the labelled set fills the space and herding turns into uncertainty
    sampling at large budgets. Otherwise the median distance between candidates (over a random
    sample of ``2000`` candidates when there are more). 1 when neither exists.

    Parameters
    ----------
    Xn, Ln : ndarray, unit rows of the candidates and the labelled items
    rng : numpy Generator
        Draws the candidate sample.

    Returns
    -------
    float
    """
    if Ln.shape[0] >= 2:
        sigma = _min_nonzero_distance(Ln)
        if sigma is not None:
            return sigma
    X = Xn if Xn.shape[0] <= _SIGMA_SAMPLE else Xn[np.sort(rng.choice(Xn.shape[0], _SIGMA_SAMPLE, replace=False))]
    if X.shape[0] >= 2:
        X = X.astype(np.float64)
        d = np.sqrt(np.maximum(2.0 - 2.0 * (X @ X.T), 0.0))[np.triu_indices(X.shape[0], 1)]
        d = d[d > _DUPLICATE_DISTANCE]
        if d.size:
            return float(np.median(d))
    return 1.0


def herding_order(Xn: np.ndarray, Ln: np.ndarray, weights: np.ndarray, sigma: float,
                  k: int, *, d_labelled: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Greedy (uncertainty-weighted) kernel coverage: MaxHerding with unit weights, UHerding with uncertainties.

    With ``K(a, b) = exp(-||a - b||² / sigma²)`` and ``c_j`` the best kernel value from point
    j to the labelled items and the picks so far (0 with nothing labelled), each step picks
    the candidate i maximising ``mean_j w_j * max(K(i, j) - c_j, 0)`` over the candidates j,
    which is scikit-activeml's ``MaxHerding`` (w = 1) and ``UHerding`` objective. The gain
    only falls as c grows (the objective is submodular for ``w >= 0``), so lazy evaluation
    (Minoux 1978) gives the same picks as recomputing every gain after each pick while
    touching only a few kernel rows per pick. Ties go to the earlier candidate.

    Parameters
    ----------
    Xn : ndarray (n, d), unit rows of the candidates
    Ln : ndarray (m, d), unit rows of the labelled items (m may be 0)
    weights : ndarray (n,), non-negative
    sigma : float > 0
    k : int
    d_labelled : ndarray (n,), optional
        Each candidate's cosine distance to its nearest labelled item, when the caller has it
        (:class:`~adde_core.ranking.strategies.RankingContext` does); computed otherwise.

    Returns
    -------
    order : ndarray (k,) of int
    gains : ndarray (k,) float64, the objective gain of each pick when it was picked
    """
    from adde_core.ranking.components import cosine_distance_to_set

    n = Xn.shape[0]
    two_gamma = np.float32(2.0 / (sigma * sigma))
    w = np.asarray(weights, dtype=np.float32)

    def to_kernel(S: np.ndarray) -> np.ndarray:
        # exp(-(2 - 2 s) / sigma²), in place; the clip keeps rounding (s slightly above 1) from exceeding 1
        S *= two_gamma
        S -= two_gamma
        np.minimum(S, 0.0, out=S)
        return np.exp(S, out=S)

    K = _similarity_minus_one(Xn)
    if K is not None:  # min(s - 1, 0): two passes make it the kernel exp(2 (s - 1) / sigma²)
        K *= two_gamma
        np.exp(K, out=K)
    if Ln.shape[0]:
        d = cosine_distance_to_set(Xn, Ln) if d_labelled is None else d_labelled
        c = np.exp(-two_gamma * d).astype(np.float32)
    else:
        c = np.zeros(n, dtype=np.float32)

    def row(i: int) -> np.ndarray:
        return K[i] if K is not None else to_kernel(Xn @ Xn[i])

    gains = np.empty(n, dtype=np.float64)
    for start, stop, S in _row_blocks(Xn, K):
        # S is a view of K (kept) or a fresh block (reused in place): this pass is memory-bound
        if K is not None:
            block = S - c
        else:
            block = to_kernel(S)
            block -= c
        np.maximum(block, 0.0, out=block)
        gains[start:stop] = block @ w
    heap = list(zip((-gains).tolist(), range(n)))
    heapq.heapify(heap)
    stamp = np.zeros(n, dtype=np.int64)  # number of picks each heap value accounts for
    order = np.empty(k, dtype=np.int64)
    picked_gain = np.empty(k)
    t = 0
    while t < k:
        neg, i = heapq.heappop(heap)
        if stamp[i] < t:
            stamp[i] = t
            heapq.heappush(heap, (-float(np.maximum(row(i) - c, 0.0) @ w), i))
            continue
        order[t], picked_gain[t] = i, -neg / n
        np.maximum(c, row(i), out=c)
        t += 1
    return order, picked_gain
