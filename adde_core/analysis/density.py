"""Exact kNN search, PCA reduction and kNN density estimates in embedding space (numpy only)."""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adde_core.errors import AddeError
from adde_core.linalg import unit_rows


# Distances per query block (float32): ~64 MB per worker bounds memory (partition copies the
# block once more) while keeping each BLAS call large enough to be efficient.
_BLOCK_ELEMENTS = 16_000_000
_WORKERS = max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 8))


def array_fingerprint(ids: Sequence[str] | np.ndarray, X: np.ndarray) -> str:
    """Fingerprint of an (ids, vectors) pair: BLAKE2b over the ids and the array bytes.

    Parameters
    ----------
    ids
        Item ids, one per row of ``X``.
    X
        The vectors.

    Returns
    -------
    str
        40 hex characters; any change of an id, of the row order or of a value changes it.
    """
    h = hashlib.blake2b(digest_size=20)
    h.update("\0".join(map(str, ids)).encode())
    arr = np.ascontiguousarray(X)
    h.update(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


def as_matrix(X: np.ndarray, *, name: str = "X") -> np.ndarray:
    """Return ``X`` as a C-contiguous float32 2-D array, or raise a clear ``ValueError``."""
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise AddeError(f"{name} must be a 2-D array (n_items, dim), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise AddeError(f"{name} has no rows")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise AddeError(f"{name} has non-finite values (first in row {bad})")
    return arr


def fit_pca(X: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Principal axes of ``X`` by an eigendecomposition of its covariance.

    The covariance route (d x d) is exact, deterministic and faster than a randomized
    SVD for n >> d (measured at 10,000 x 1280 on 2 cores: 0.3 s vs 0.73 s), and needs no
    scikit-learn import.

    Parameters
    ----------
    X
        Data, shape (n, d).
    n_components
        Number of axes to keep; capped at ``min(n, d)``.

    Returns
    -------
    mean : ndarray (d,)
    components : ndarray (k, d)
        Orthonormal rows, largest variance first, sign fixed so each row's largest
        absolute entry is positive (so refits on the same data give the same axes).
    explained_variance_ratio : ndarray (k,)
    """
    X = as_matrix(X)
    k = int(min(n_components, X.shape[0], X.shape[1]))
    mean = X.mean(axis=0, dtype=np.float64).astype(np.float32)
    Xc = X - mean
    cov = (Xc.T @ Xc).astype(np.float64) / max(X.shape[0] - 1, 1)
    d = cov.shape[0]
    from scipy.linalg import eigh

    # Only the top k eigenpairs are computed, on one BLAS thread: multi-threaded LAPACK
    # eigh slowed down 5-15x here whenever another process competed for the 2 cores.
    with single_threaded_blas():
        evals, evecs = eigh(cov, subset_by_index=[d - k, d - 1])
    order = np.argsort(evals)[::-1]
    comps = evecs[:, order].T
    signs = np.sign(comps[np.arange(k), np.abs(comps).argmax(axis=1)])
    comps *= np.where(signs == 0, 1.0, signs)[:, None]
    total = float(np.trace(cov))
    ratio = np.clip(evals[order], 0, None) / total if total > 0 else np.zeros(k)
    return mean, comps.astype(np.float32), ratio


def single_threaded_blas() -> Any:
    """Context manager limiting BLAS to one thread (a no-op without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def pca_transform(X: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Project ``X`` onto fitted principal axes (float32)."""
    return ((as_matrix(X) - mean) @ components.T).astype(np.float32, copy=False)


#: Past this many rows :func:`reduce_for_search` fits its PCA axes on a seeded uniform sample of this
#: many rows (and projects every row onto them). The covariance of 10^6 x 512 rows took 32 CPU s of
#: the regions step at 10^6 items on the 2 shared cores; 10^5 rows estimate 50 axes of a 512-d
#: covariance closely. Up to this size (the demo included) the axes are fitted on every row as before.
PCA_FIT_MAX = 100_000


def reduce_for_search(X: np.ndarray, n_components: int | None, *, max_fit: int | None = PCA_FIT_MAX,
                      random_state: int = 0) -> np.ndarray:
    """PCA-reduce unit-normalised rows for kNN search, or return them unchanged.

    On unit vectors the squared Euclidean distance is ``2 - 2 cos``, so Euclidean kNN
    in a PCA of normalised rows approximates cosine kNN while costing d/k times less.
    Past ``max_fit`` rows the axes are fitted on a seeded sample of ``max_fit`` rows
    (:data:`PCA_FIT_MAX`).
    """
    Xn = unit_rows(as_matrix(X))
    if n_components is None or n_components >= Xn.shape[1]:
        return Xn
    sample = fit_sample(len(Xn), max_fit, random_state)
    mean, comps, _ = fit_pca(Xn if sample is None else Xn[sample], n_components)
    return pca_transform(Xn, mean, comps)


def fit_sample(n: int, max_fit: int | None, random_state: int | None) -> np.ndarray | None:
    """Sorted row indices of a seeded uniform sample of ``max_fit`` of ``n`` items, or None when all are kept.

    Used wherever a step that grows faster than linearly runs on a sample of a large set: the
    map and clustering fits, the density and coverage-gap references, FAISS training, the
    pool a set-based ranking sees and the points the map draws.

    Parameters
    ----------
    n
        Number of items.
    max_fit
        Largest fit on every item (None: no limit); above it, a uniform sample of ``max_fit``
        rows (a uniform sample keeps every region's share of the items, so dense and sparse
        parts of the data keep their proportions in the fit).
    random_state
        Seed of the sample (None counts as 0, so the sample is reproducible either way).
    """
    if max_fit is None or n <= max_fit:
        return None
    rng = np.random.default_rng(0 if random_state is None else random_state)
    return np.sort(rng.choice(n, size=int(max_fit), replace=False))


def knn(query: np.ndarray, reference: np.ndarray, k: int, *, exclude_self: bool = False,
        chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours by Euclidean distance, computed in row chunks.

    Brute force is exact, deterministic and, after PCA to ~50 dimensions, faster than
    building a tree or an NN-descent index at the sizes ADDE analyses (≤ 100k).

    Parameters
    ----------
    query
        Shape (m, d).
    reference
        Shape (n, d).
    k
        Neighbours per query; capped at the number of available reference rows.
    exclude_self
        ``query`` is ``reference`` (same rows, same order): skip each row's own match.
    chunk
        Query rows per block (bounds memory at ``chunk * n`` floats); by default sized so a
        block holds about 16M distances, and blocks run on all cores.

    Returns
    -------
    distances : ndarray (m, k) float32, ascending
    indices : ndarray (m, k) int64, into ``reference``
    """
    Q, R = as_matrix(query, name="query"), as_matrix(reference, name="reference")
    k = _checked_k(Q, R, k, exclude_self)
    if chunk is None:
        chunk = int(np.clip(_BLOCK_ELEMENTS // len(R), 32, 4096))
        # Give every core at least one block when there is enough work to share.
        if len(Q) * len(R) > 4_000_000 and _WORKERS > 1:
            chunk = max(32, min(chunk, -(-len(Q) // _WORKERS)))
    r_sq = np.einsum("ij,ij->i", R, R)
    dist = np.empty((len(Q), k), dtype=np.float32)
    idx = np.empty((len(Q), k), dtype=np.int64)

    def block(start: int) -> None:
        q = Q[start:start + chunk]
        # |q|^2 is constant along a row, so it is added only to the k distances kept.
        d2 = q @ R.T
        d2 *= -2.0
        d2 += r_sq
        if exclude_self:
            rows = np.arange(len(q))
            d2[rows, start + rows] = np.inf
        top_d, top_i = _smallest_k(d2, k)
        idx[start:start + chunk] = top_i
        q_sq = np.einsum("ij,ij->i", q, q)[:, None]
        dist[start:start + chunk] = np.sqrt(np.maximum(top_d + q_sq, 0.0))

    starts = range(0, len(Q), chunk)
    if len(starts) > 1 and _WORKERS > 1:
        # argpartition is single-threaded but releases the GIL: threads over row blocks use
        # every core (measured 2.4 s -> 1.3 s for the partitions at 10k x 10k on 2 cores).
        from concurrent.futures import ThreadPoolExecutor

        # One BLAS thread per worker, so the workers do not oversubscribe the cores.
        with single_threaded_blas(), ThreadPoolExecutor(max_workers=_WORKERS) as pool:
            list(pool.map(block, starts))
    else:
        for start in starts:
            block(start)
    return dist, idx


#: Searches with more query x reference pairs than this use a FAISS IVF index instead of exact
#: brute force. Exact search costs ~pairs x dim: a 10^5-item self-search (10^10 pairs, PCA-50)
#: took 99 CPU s exact against 13 CPU s with an IVF index scanning the same share of rows as the
#: one below (it found 0.85 of the exact 10-NN on an overlapping 20-component 50-d mixture), and a
#: 10^6 self-search would take ~3 h
#: exact. Searches up to ~63k x 63k items (the 9,716-item demo included) stay exact, bitwise as before.
ANN_MIN_PAIRS = 4_000_000_000
#: IVF lists per sqrt(reference rows) and probes per query: with ~2 sqrt(n) lists a probe scans
#: ~sqrt(n)/2 rows, so a query scans ~6 sqrt(n) rows instead of n. Training k-means costs ~lists^2;
#: at 10^6 rows 4,000 lists took 100 CPU s to train, 2,000 lists a quarter of that for the same
#: share of rows scanned (12 of 2,000 lists = 24 of 4,000).
_IVF_LISTS_PER_SQRT = 2
_IVF_PROBES = 12
_IVF_TRAIN_PER_LIST = 40  # faiss warns below 39 training points per list
_ANN_QUERY_BLOCK = 65_536  # bounds faiss's per-block heaps (query rows x k)


def search_knn(query: np.ndarray, reference: np.ndarray, k: int, *, exclude_self: bool = False,
               ann_min_pairs: int | None = ANN_MIN_PAIRS, random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours: exact (:func:`knn`) for small searches, an IVF index past ``ann_min_pairs``.

    Parameters
    ----------
    query, reference, k, exclude_self
        As in :func:`knn`.
    ann_min_pairs
        Above ``len(query) * len(reference)`` pairs the search is approximate (FAISS
        ``IndexIVFFlat``: the neighbours found are real rows at their exact distances, but
        a few true neighbours may be missed). None: always exact.
    random_state
        Seed of the IVF training sample (and of faiss's k-means).

    Returns
    -------
    distances : ndarray (m, k) float32, ascending
    indices : ndarray (m, k) int64, into ``reference``
    """
    exact = ann_min_pairs is None or len(query) * len(reference) <= ann_min_pairs
    Q, R = as_matrix(query, name="query"), as_matrix(reference, name="reference")
    shared = _SHARED.get()
    if shared is None or len(Q) * len(R) < _SHARE_MIN_PAIRS:
        return _search(Q, R, k, exact, exclude_self, random_state)
    key = (array_fingerprint((), Q), array_fingerprint((), R), int(k), bool(exclude_self), exact, int(random_state))
    if key not in shared.searches:
        shared.searches[key] = _search(Q, R, k, exact, exclude_self, random_state)
    dist, idx = shared.searches[key]
    return dist.copy(), idx.copy()


def _search(Q: np.ndarray, R: np.ndarray, k: int, exact: bool, exclude_self: bool, random_state: int
            ) -> tuple[np.ndarray, np.ndarray]:
    if exact:
        return knn(Q, R, k, exclude_self=exclude_self)
    return _ivf_knn(Q, R, k, exclude_self=exclude_self, random_state=random_state)


#: Searches smaller than this are not remembered by :func:`shared_searches` (hashing would cost
#: about as much as searching again).
_SHARE_MIN_PAIRS = 10_000_000


def self_knn(Z: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest other rows of every row of ``Z`` (:func:`knn` with ``exclude_self``), shared in a block.

    Inside :func:`shared_searches` the search runs with at least its ``self_k`` neighbours and is
    remembered, and a later call on the same rows takes the first k columns: the k nearest by
    (distance, column) are the first k of the k' nearest, so the answer is bitwise that of
    ``knn(Z, Z, k, exclude_self=True)``.
    """
    shared = _SHARED.get()
    if shared is None:
        return knn(Z, Z, k, exclude_self=True)
    Z = as_matrix(Z)
    key = array_fingerprint((), Z)
    have = shared.graphs.get(key)
    if have is None or have[0].shape[1] < min(k, len(Z) - 1):
        have = shared.graphs[key] = knn(Z, Z, max(k, shared.self_k), exclude_self=True)
    return have[0][:, :k].copy(), have[1][:, :k].copy()


@dataclass
class _Shared:
    self_k: int
    searches: dict = field(default_factory=dict)
    graphs: dict = field(default_factory=dict)


#: What :func:`shared_searches` remembers (None outside it).
_SHARED: contextvars.ContextVar[_Shared | None] = contextvars.ContextVar("adde_shared_searches", default=None)


@contextlib.contextmanager
def shared_searches(*, self_k: int = 0) -> Iterator[None]:
    """Inside this block a search asked for again on the same arrays is answered from memory.

    Past the fit thresholds the map and the clustering space are fitted on the same seeded sample
    with the same PCA, so placing every other item runs the very same IVF search twice (at 10^6
    items 950k x 50k pairs, 56 s on the 2 shared cores each time), and their UMAP fits each build
    an exact kNN graph of the same sample (15 and 30 neighbours). Searches (:func:`search_knn`,
    past ``_SHARE_MIN_PAIRS`` pairs) and self-searches (:func:`self_knn`, run with at least
    ``self_k`` neighbours so one search serves both graphs) are remembered; the answers are the
    arrays the searches give without the block (they are deterministic), and the memory is
    freed when the block ends.
    """
    if _SHARED.get() is not None:  # nested: the outer block keeps the memory
        yield
        return
    token = _SHARED.set(_Shared(self_k=int(self_k)))
    try:
        yield
    finally:
        _SHARED.reset(token)


def _ivf_knn(Q: np.ndarray, R: np.ndarray, k: int, *, exclude_self: bool, random_state: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """Approximate kNN with a FAISS inverted-file index over ``R`` (rows missed by it fall back to exact)."""
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is in requirements
        raise AddeError("kNN search over this many items needs FAISS: pip install faiss-cpu") from exc
    k = _checked_k(Q, R, k, exclude_self)
    n, d = R.shape
    nlist = int(np.clip(round(_IVF_LISTS_PER_SQRT * np.sqrt(n)), 1, max(1, n // _IVF_TRAIN_PER_LIST)))
    quantizer = faiss.IndexFlatL2(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_L2)
    index.cp.seed = int(random_state)
    sample = fit_sample(n, min(n, nlist * _IVF_TRAIN_PER_LIST), random_state)
    train = R if sample is None else R[sample]
    index.train(np.ascontiguousarray(train))
    index.add(R)
    index.nprobe = min(nlist, _IVF_PROBES)
    want = k + 1 if exclude_self else k
    dist = np.empty((len(Q), k), dtype=np.float32)
    idx = np.empty((len(Q), k), dtype=np.int64)
    for start in range(0, len(Q), _ANN_QUERY_BLOCK):
        q = Q[start:start + _ANN_QUERY_BLOCK]
        d2, found = index.search(q, want)
        if exclude_self:
            own = found == np.arange(start, start + len(q))[:, None]
            # Drop the row's own match; a row whose own match was not returned drops its farthest.
            own[~own.any(axis=1), -1] = True
            d2 = d2[~own].reshape(len(q), k)
            found = found[~own].reshape(len(q), k)
        missing = (found < 0).any(axis=1)
        if missing.any():  # the probed lists held fewer than k rows: search those queries exactly
            rows = np.flatnonzero(missing)
            ex_d, ex_i = knn(q[rows], R, k + (1 if exclude_self else 0))
            if exclude_self:
                keep = ex_i != (start + rows)[:, None]
                keep[~(~keep).any(axis=1), -1] = False
                ex_d, ex_i = ex_d[keep].reshape(len(rows), k), ex_i[keep].reshape(len(rows), k)
            d2[rows], found[rows] = ex_d ** 2, ex_i
        dist[start:start + len(q)] = np.sqrt(np.maximum(d2, 0.0))
        idx[start:start + len(q)] = found
    return dist, idx


def _checked_k(Q: np.ndarray, R: np.ndarray, k: int, exclude_self: bool) -> int:
    """``k`` capped at the reference rows available, after checking the two arrays fit together."""
    if Q.shape[1] != R.shape[1]:
        raise AddeError(f"query has {Q.shape[1]} dims but reference has {R.shape[1]}")
    if exclude_self and len(Q) != len(R):
        raise AddeError("exclude_self needs query and reference to be the same rows")
    k = int(min(k, len(R) - (1 if exclude_self else 0)))
    if k < 1:
        raise AddeError("not enough reference rows for a nearest-neighbour search")
    return k


def _smallest_k(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k smallest values (ascending, ties by column) and their columns.

    A value partition to find each row's k-th value, then a mask, is about twice as fast
    as ``argpartition`` (which moves indices along with values).
    """
    n_rows, n_cols = values.shape
    if k >= n_cols:
        order = np.argsort(values, axis=1, kind="stable")
        return np.take_along_axis(values, order, axis=1), order
    kth = np.partition(values, k - 1, axis=1)[:, k - 1]
    rows, cols = np.nonzero(values <= kth[:, None])
    vals = values[rows, cols]
    order = np.lexsort((cols, vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    # Ties at the k-th value can give a row more than k candidates: keep its first k.
    first = np.searchsorted(rows, np.arange(n_rows))
    rank = np.arange(len(rows)) - first[rows]
    keep = rank < k
    return vals[keep].reshape(n_rows, k), cols[keep].reshape(n_rows, k).astype(np.int64)


def kth_neighbor_distance(query: np.ndarray, reference: np.ndarray, k: int, *,
                          exclude_self: bool = False) -> np.ndarray:
    """Distance from each query row to its k-th nearest reference row (a kNN density radius)."""
    dist, _ = knn(query, reference, k, exclude_self=exclude_self)
    return dist[:, -1]


def knn_density(X: np.ndarray, *, k: int = 10, ann_min_pairs: int | None = ANN_MIN_PAIRS
                ) -> tuple[np.ndarray, np.ndarray]:
    """Mean distance to the k nearest other rows, and the neighbour indices.

    A larger mean kNN distance means a sparser neighbourhood; it is the density
    measure used for per-cluster stats, low-density regions and outliers.

    Parameters
    ----------
    X
        Shape (n, d), already in the analysis space.
    k
        Neighbours (capped at n - 1).
    ann_min_pairs
        When n^2 exceeds this, the search is approximate (:func:`search_knn`).

    Returns
    -------
    mean_distance : ndarray (n,)
    indices : ndarray (n, k)
    """
    dist, idx = search_knn(X, X, k, exclude_self=True, ann_min_pairs=ann_min_pairs)
    return dist.mean(axis=1), idx


def robust_z(values: np.ndarray) -> np.ndarray:
    """(x - median) / (1.4826 * MAD): a z-score that a few extreme values cannot inflate."""
    med = np.median(values)
    mad = 1.4826 * np.median(np.abs(values - med))
    if mad <= 0:
        mad = float(np.std(values)) or 1.0
    return (values - med) / mad
