"""Pool retrieval for a region: exact and approximate nearest-neighbour search plus region-level candidate picking.

Three layers:

* :func:`exact_knn` — chunked brute-force top-k in torch (same code on CPU and GPU). Memory stays bounded
  by ``chunk_size × n_query_block`` scores; cosine norms are computed once instead of normalising a copy of
  the database, so a 10^6 × 512 float32 pool (2 GB) is never duplicated.
* :class:`VectorIndex` — an estimator-like index: exact torch search below ``ann_threshold`` rows, a FAISS
  approximate index (IVF-Flat by default, HNSW as an option) at or above it. FAISS is imported only when
  the approximate path is needed.
* :func:`retrieve_for_region` — the pool candidates for one region of the embedding map: nearest items to
  the region's centroid, nearest items to its members, and uncertain items from its neighbourhood.

Conventions: ``metric="cosine"`` scores are cosine similarities (larger is nearer, sorted descending);
``metric="l2"`` scores are *squared* Euclidean distances (smaller is nearer, sorted ascending). Scores are
float32, indices int64 row positions into the indexed vectors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from adde_core.errors import AddeError
from adde_core.linalg import unit_rows

if TYPE_CHECKING:
    import pandas as pd
    import torch

__all__ = [
    "ANN_KINDS",
    "METRICS",
    "VectorIndex",
    "exact_knn",
    "recall_at_k",
    "retrieve_for_region",
]

Metric = Literal["cosine", "l2"]
METRICS: tuple[str, ...] = ("cosine", "l2")
ANN_KINDS: tuple[str, ...] = ("ivf", "hnsw")

# 65,536 rows × 512 float32 is 128 MB of database per chunk on the device; the score block is
# chunk × query_block floats. Both bounds keep peak memory flat whatever the pool size.
DEFAULT_CHUNK_SIZE = 65_536
_MAX_SCORE_ELEMENTS = 1 << 25  # 128 MB of float32 scores per (chunk, query block)

# IVF defaults, chosen by measurement on 10^6 × 512 clustered data (see benchmarks/retrieval_speed.py):
# nlist = sqrt(n) keeps k-means training and assignment (the build cost, O(n · nlist · d)) to tens of seconds on
# two cores, while nprobe = nlist / 10 scans ~10 % of the lists: tens of milliseconds per query at 10^6 rows, and
# recall@100 ≥ 0.95 even when clusters overlap heavily (at nlist / 16 single-item queries dropped to ~0.9 at 2·10^5).
_IVF_TRAIN_PER_LIST = 64  # training points per list; faiss warns below 39
_IVF_NITER = 10
_HNSW_M = 32
_HNSW_EF_CONSTRUCTION = 80
_HNSW_EF_SEARCH = 128
_ADD_BATCH = 65_536


# ---------------------------------------------------------------------------------------------------------
# validation helpers


def _check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise AddeError(f"Unknown metric {metric!r}: use one of {', '.join(map(repr, METRICS))}.")
    return metric


def _check_k(k: Any, n: int, what: str = "indexed vectors") -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise AddeError(f"k must be a positive integer, got {k!r}.")
    if n == 0:
        raise AddeError(f"There are no {what} to search: add vectors before searching.")
    if k > n:
        raise AddeError(f"k={k} is larger than the {n} {what}; ask for at most k={n}.")
    return int(k)


def _as_2d_float32(x: Any, name: str) -> np.ndarray:
    """Float32 C-contiguous 2-D numpy view of ``x`` (no copy when it already is one)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch tensor
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise AddeError(f"{name} must be a 2-D array of shape (n, dim); got shape {arr.shape}.")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise AddeError(f"{name} must hold real numbers; got dtype {arr.dtype}.")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _check_finite(arr: np.ndarray, name: str) -> None:
    # One pass over the data in blocks: np.isfinite on 10^6 × 512 at once would allocate a 512 MB mask.
    for start in range(0, arr.shape[0], DEFAULT_CHUNK_SIZE):
        block = arr[start : start + DEFAULT_CHUNK_SIZE]
        if not np.isfinite(block).all():
            bad = start + int(np.flatnonzero(~np.isfinite(block).all(axis=1))[0])
            raise AddeError(f"{name} has NaN or infinite values (first in row {bad}); drop or re-embed those rows.")


def _check_chunk_size(chunk_size: Any) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise AddeError(f"chunk_size must be a positive integer, got {chunk_size!r}.")
    return int(chunk_size)


def _device_for(database: Any, device: str | None) -> torch.device:
    from adde_core.device import resolve_device

    if device is None:
        # A tensor already on a device stays there; numpy data follows the house default ("auto").
        if hasattr(database, "device") and hasattr(database, "detach"):
            return database.device
        return resolve_device("auto")
    return resolve_device(device)


# ---------------------------------------------------------------------------------------------------------
# exact search


class _FlatSearcher:
    """Database tensor on one device plus the per-row norms each metric needs; searched in chunks."""

    def __init__(self, database: Any, metric: str, device: torch.device, chunk_size: int) -> None:
        import torch

        self.metric = metric
        self.chunk_size = chunk_size
        self.device = device
        if isinstance(database, torch.Tensor):
            data = database.detach()
            if data.ndim == 1:
                data = data[None, :]
            if data.ndim != 2:
                raise AddeError(f"database must be 2-D of shape (n, dim); got shape {tuple(data.shape)}.")
            data = data.to(device=device, dtype=torch.float32)
        else:
            # from_numpy shares memory with a float32 C-contiguous array: no 2 GB copy on the CPU.
            data = torch.from_numpy(_as_2d_float32(database, "database")).to(device)
        self.data = data.contiguous()
        self.n, self.dim = (int(s) for s in self.data.shape)
        # Per-row factors computed chunk by chunk so no n × d temporary is ever allocated.
        factors = torch.empty(self.n, dtype=torch.float32, device=device)
        finite = torch.ones(self.n, dtype=torch.bool, device=device)
        for start in range(0, self.n, chunk_size):
            block = self.data[start : start + chunk_size]
            sq = (block * block).sum(dim=1) if metric == "l2" else torch.linalg.vector_norm(block, dim=1)
            # A row norm is finite exactly when every entry is (short of float32 overflow), so this doubles as
            # the NaN/inf check without another pass over the data.
            finite[start : start + chunk_size] = torch.isfinite(sq)
            if metric == "cosine":
                # Zero rows get factor 0, so their similarity to anything is 0 instead of NaN.
                sq = torch.where(sq > 0, 1.0 / sq, torch.zeros_like(sq))
            factors[start : start + chunk_size] = sq
        if not bool(finite.all()):
            bad = int(torch.nonzero(~finite)[0, 0])
            raise AddeError(f"database has NaN or infinite values (first in row {bad}); drop or re-embed those rows.")
        self.factors = factors

    def _prepare_queries(self, queries: Any) -> torch.Tensor:
        import torch

        if isinstance(queries, torch.Tensor):
            q = queries.detach().to(device=self.device, dtype=torch.float32)
            q = q[None, :] if q.ndim == 1 else q
        else:
            q = torch.from_numpy(_as_2d_float32(queries, "queries")).to(self.device)
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise AddeError(
                f"queries must have shape (q, {self.dim}) to match the database; got {tuple(q.shape)}."
            )
        if q.shape[0] == 0:
            raise AddeError("queries is empty: pass at least one query vector.")
        if not bool(torch.isfinite(q).all()):
            raise AddeError("queries has NaN or infinite values; fix or drop those query vectors.")
        if self.metric == "cosine":
            norm = torch.linalg.vector_norm(q, dim=1, keepdim=True)
            q = torch.where(norm > 0, q / norm.clamp_min(1e-30), torch.zeros_like(q))
        return q

    def search(self, queries: Any, k: int, exclude: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of every query; ``exclude`` (bool, length n) removes rows from the candidates."""
        import torch

        q = self._prepare_queries(queries)
        n_avail = self.n - (int(exclude.sum()) if exclude is not None else 0)
        k = _check_k(k, n_avail)
        largest = self.metric == "cosine"
        worst = -math.inf if largest else math.inf
        q_block = max(1, _MAX_SCORE_ELEMENTS // min(self.chunk_size, self.n))
        out_s = np.empty((q.shape[0], k), dtype=np.float32)
        out_i = np.empty((q.shape[0], k), dtype=np.int64)
        with torch.inference_mode():
            for q0 in range(0, q.shape[0], q_block):
                qb = q[q0 : q0 + q_block]
                q_sq = (qb * qb).sum(dim=1)[:, None] if not largest else None
                best_s = best_i = None
                for start in range(0, self.n, self.chunk_size):
                    block = self.data[start : start + self.chunk_size]
                    scores = qb @ block.T  # (q_block, chunk)
                    fac = self.factors[start : start + self.chunk_size]
                    if largest:
                        scores.mul_(fac)
                    else:
                        # ||x||² − 2 x·q + ||q||², clamped: cancellation can make exact matches slightly negative.
                        scores.mul_(-2.0).add_(fac).add_(q_sq).clamp_(min=0.0)
                    if exclude is not None:
                        scores.masked_fill_(exclude[start : start + self.chunk_size], worst)
                    kk = min(k, scores.shape[1])
                    s, i = torch.topk(scores, kk, dim=1, largest=largest, sorted=False)
                    i = i + start
                    if best_s is None:
                        best_s, best_i = s, i
                    else:
                        # Merge this chunk's top-k with the running top-k: at most 2k columns per query.
                        cat_s, cat_i = torch.cat([best_s, s], dim=1), torch.cat([best_i, i], dim=1)
                        best_s, pos = torch.topk(cat_s, min(k, cat_s.shape[1]), dim=1, largest=largest, sorted=False)
                        best_i = torch.gather(cat_i, 1, pos)
                # Final sort; ties broken by row index so results are deterministic.
                s_np = best_s.float().cpu().numpy()
                i_np = best_i.cpu().numpy()
                order = np.lexsort((i_np, -s_np if largest else s_np), axis=1)
                out_s[q0 : q0 + qb.shape[0]] = np.take_along_axis(s_np, order, axis=1)
                out_i[q0 : q0 + qb.shape[0]] = np.take_along_axis(i_np, order, axis=1)
        return out_s, out_i


def exact_knn(
    database: np.ndarray | torch.Tensor,
    queries: np.ndarray | torch.Tensor,
    k: int,
    *,
    metric: Metric = "cosine",
    device: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours by chunked brute force in torch.

    The database is moved to the device once, then scored ``chunk_size`` rows at a time; each chunk's top-k
    is merged into a running top-k, so memory is bounded by the chunk and not by the database size.

    Parameters
    ----------
    database : array-like or torch.Tensor of shape (n, dim)
        The vectors searched. A float32 C-contiguous numpy array is used without copying on the CPU.
    queries : array-like or torch.Tensor of shape (q, dim) or (dim,)
        Query vectors; a 1-D query is treated as one row.
    k : int
        Neighbours per query, ``1 <= k <= n``.
    metric : {"cosine", "l2"}, default "cosine"
        ``"cosine"``: rows and queries are L2-normalised (zero vectors score 0) and scores are cosine
        similarities in descending order. ``"l2"``: scores are squared Euclidean distances, ascending.
    device : str or None, default None
        ``"auto"``, ``"cpu"``, ``"cuda"``…; ``None`` keeps a tensor database on its device and otherwise
        means ``"auto"`` (see :func:`adde_core.device.resolve_device`).
    chunk_size : int, default 65536
        Database rows scored at once.

    Returns
    -------
    scores : np.ndarray of shape (q, k), float32
    indices : np.ndarray of shape (q, k), int64
        Row positions into ``database``; ties are broken by the smaller row index.

    Raises
    ------
    AddeError
        On an unknown metric, an empty database, ``k`` outside ``[1, n]``, mismatched dimensions or
        non-finite queries.
    """
    _check_metric(metric)
    chunk_size = _check_chunk_size(chunk_size)
    searcher = _FlatSearcher(database, metric, _device_for(database, device), chunk_size)
    return searcher.search(queries, k)


# ---------------------------------------------------------------------------------------------------------
# index


def _import_faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is in requirements
        raise AddeError(
            "Approximate search on a large pool needs FAISS: pip install faiss-cpu "
            "(or raise ann_threshold / set it to None to use exact search)."
        ) from exc
    return faiss


def default_nlist(n: int) -> int:
    """IVF list count used when ``nlist`` is not given: ``round(sqrt(n))``, at least 1 and at most n // 39."""
    return int(max(1, min(round(math.sqrt(n)), n // 39)))


def default_nprobe(nlist: int) -> int:
    """IVF lists probed per query when ``nprobe`` is not given: ``max(32, nlist // 10)``, capped at nlist."""
    return int(min(nlist, max(32, nlist // 10)))


class VectorIndex:
    """Nearest-neighbour index over a fixed set of vectors: exact torch search or a FAISS approximate index.

    Below ``ann_threshold`` rows the index keeps the vectors as a torch tensor on ``device`` and searches
    them exactly (:func:`exact_knn`). At or above it, it builds a FAISS index on the CPU:

    * ``ann="ivf"`` (default): ``IndexIVFFlat``. k-means on a deterministic subsample
      (``64 × nlist`` rows, 10 iterations, seed ``random_state``) gives ``nlist`` lists; a query scans the
      ``nprobe`` nearest lists exactly. Chosen by measurement on 10^6 × 512 (benchmarks/retrieval_speed.py):
      it builds in well under a minute on two cores and reaches recall@100 ≥ 0.95 at a few milliseconds
      per query, whereas HNSW needs several minutes to build at that size.
    * ``ann="hnsw"``: ``IndexHNSWFlat`` (M = 32, efConstruction = 80, efSearch = max(128, k)); no training,
      fast and accurate queries, but slow to build and heavier in memory.

    FAISS uses its own OpenMP thread pool, left at its default (all usable cores, the same as
    ``torch.get_num_threads()`` unless a caller changed torch's setting). On a GPU, exact torch search of a
    million vectors takes milliseconds, so ``ann_threshold=None`` (never approximate) is the better choice
    there.

    Parameters
    ----------
    metric : {"cosine", "l2"}, default "cosine"
        See :func:`exact_knn` for the score conventions, which both paths share.
    ann_threshold : int or None, default 200_000
        Row count at which the FAISS index is used; ``None`` means always exact.
    ann : {"ivf", "hnsw"}, default "ivf"
    nlist : int or None, default None
        IVF lists; ``None`` means :func:`default_nlist` (``sqrt(n)``).
    nprobe : int or None, default None
        IVF lists scanned per query; ``None`` means :func:`default_nprobe` (``max(32, nlist // 10)``).
    device : str or None, default None
        Device of the exact path (``None`` means ``"auto"``). The FAISS path always runs on the CPU.
    chunk_size : int, default 65536
        Rows per chunk for the exact path and for adding vectors to FAISS.
    random_state : int, default 0
        Seeds the IVF training subsample and k-means.

    Attributes
    ----------
    kind_ : str
        ``"exact"``, ``"faiss-ivf"`` or ``"faiss-hnsw"``.
    n_ : int
        Number of indexed vectors.
    dim_ : int
        Their dimension.
    ids_ : np.ndarray of shape (n_,)
        The ids passed to :meth:`fit` (row positions when none were given).
    nlist_, nprobe_ : int
        IVF settings actually used (only on ``"faiss-ivf"``).
    build_seconds_ : float
        Wall time of :meth:`fit` (training and adding for FAISS).
    """

    def __init__(
        self,
        *,
        metric: Metric = "cosine",
        ann_threshold: int | None = 200_000,
        ann: Literal["ivf", "hnsw"] = "ivf",
        nlist: int | None = None,
        nprobe: int | None = None,
        device: str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        random_state: int = 0,
    ) -> None:
        self.metric = metric
        self.ann_threshold = ann_threshold
        self.ann = ann
        self.nlist = nlist
        self.nprobe = nprobe
        self.device = device
        self.chunk_size = chunk_size
        self.random_state = random_state

    # -- fitting ------------------------------------------------------------------------------------------

    def fit(self, vectors: np.ndarray | torch.Tensor, ids: Sequence[Any] | np.ndarray | None = None) -> VectorIndex:
        """Index ``vectors`` (exactly or with FAISS, depending on their number).

        Parameters
        ----------
        vectors : array-like or torch.Tensor of shape (n, dim)
        ids : sequence of length n, optional
            An id per row, returned by :meth:`search_ids`; defaults to the row positions.

        Returns
        -------
        VectorIndex
            ``self``.

        Raises
        ------
        AddeError
            On bad hyperparameters, an empty or non-2-D input, non-finite values, or ``ids`` of the wrong
            length; or when FAISS is needed and not installed.
        """
        import time

        _check_metric(self.metric)
        chunk_size = _check_chunk_size(self.chunk_size)
        if self.ann not in ANN_KINDS:
            raise AddeError(f"Unknown ann {self.ann!r}: use one of {', '.join(map(repr, ANN_KINDS))}.")
        if self.ann_threshold is not None and (
            isinstance(self.ann_threshold, bool) or not isinstance(self.ann_threshold, (int, np.integer))
            or self.ann_threshold < 1
        ):
            raise AddeError(f"ann_threshold must be a positive integer or None, got {self.ann_threshold!r}.")
        for name in ("nlist", "nprobe"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
                raise AddeError(f"{name} must be a positive integer or None, got {value!r}.")

        t0 = time.perf_counter()
        if not (hasattr(vectors, "detach") and hasattr(vectors, "shape")):  # keep tensors as they are
            vectors = np.asarray(vectors)
        if len(vectors.shape) != 2:
            raise AddeError(f"vectors must be 2-D of shape (n, dim); got shape {tuple(vectors.shape)}.")
        n = int(vectors.shape[0])
        if n == 0:
            raise AddeError("Cannot build an index over zero vectors: the pool is empty.")
        if ids is None:
            ids_arr = np.arange(n)
        else:
            ids_arr = np.asarray(ids)
            if ids_arr.ndim != 1 or ids_arr.shape[0] != n:
                raise AddeError(f"ids must be 1-D with one id per vector ({n}); got shape {ids_arr.shape}.")

        use_ann = self.ann_threshold is not None and n >= self.ann_threshold
        if not use_ann:
            searcher = _FlatSearcher(vectors, self.metric, _device_for(vectors, self.device), chunk_size)
            self._searcher, self._faiss = searcher, None
            self.kind_ = "exact"
            self.dim_ = searcher.dim
        else:
            arr = _as_2d_float32(vectors, "vectors")
            _check_finite(arr, "vectors")
            self._searcher = None
            self._faiss = self._build_faiss(arr, chunk_size)
            self.kind_ = f"faiss-{self.ann}"
            self.dim_ = int(arr.shape[1])
        self.n_ = n
        self.ids_ = ids_arr
        self.build_seconds_ = time.perf_counter() - t0
        return self

    def _build_faiss(self, arr: np.ndarray, chunk_size: int) -> Any:
        faiss = _import_faiss()
        n, d = arr.shape
        fmetric = faiss.METRIC_INNER_PRODUCT if self.metric == "cosine" else faiss.METRIC_L2
        if self.ann == "ivf":
            nlist = int(self.nlist) if self.nlist is not None else default_nlist(n)
            if nlist > n:
                raise AddeError(f"nlist={nlist} exceeds the {n} vectors; use nlist <= n (about sqrt(n) works well).")
            quantizer = faiss.IndexFlatIP(d) if self.metric == "cosine" else faiss.IndexFlatL2(d)
            index = faiss.IndexIVFFlat(quantizer, d, nlist, fmetric)
            index.cp.niter = _IVF_NITER
            index.cp.seed = int(self.random_state)
            # Deterministic subsample: training on every row costs O(n · nlist · d · niter) for little gain.
            n_train = min(n, _IVF_TRAIN_PER_LIST * nlist)
            rng = np.random.default_rng(self.random_state)
            rows = np.sort(rng.choice(n, size=n_train, replace=False)) if n_train < n else np.arange(n)
            train = self._for_faiss(arr[rows])
            # faiss warns (on stderr) when there are fewer than 39 points per list; small n is legitimate here.
            index.cp.min_points_per_centroid = 1
            index.train(train)
            del train
            self.nlist_ = nlist
            self.nprobe_ = int(min(nlist, self.nprobe)) if self.nprobe is not None else default_nprobe(nlist)
            index.nprobe = self.nprobe_
        else:
            index = faiss.IndexHNSWFlat(d, _HNSW_M, fmetric)
            index.hnsw.efConstruction = _HNSW_EF_CONSTRUCTION
            index.hnsw.efSearch = _HNSW_EF_SEARCH
        # Add in batches so the normalised copy is one chunk, not the whole pool.
        for start in range(0, n, chunk_size):
            index.add(self._for_faiss(arr[start : start + chunk_size]))
        return index

    def _for_faiss(self, block: np.ndarray) -> np.ndarray:
        out = np.array(block, dtype=np.float32, order="C", copy=True)
        if self.metric == "cosine":
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            np.divide(out, norms, out=out, where=norms > 0)
        return out

    # -- searching ----------------------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "kind_"):
            raise AddeError("This VectorIndex is not fitted yet: call .fit(vectors) first.")

    def search(self, queries: np.ndarray | torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest indexed vectors of each query.

        Parameters
        ----------
        queries : array-like of shape (q, dim) or (dim,)
        k : int
            ``1 <= k <= n_``.

        Returns
        -------
        scores : np.ndarray of shape (q, k), float32
            Cosine similarities (descending) or squared L2 distances (ascending).
        indices : np.ndarray of shape (q, k), int64
            Row positions into the fitted vectors (map through ``ids_`` for ids).
        """
        return self._search(queries, k, exclude=None)

    def search_ids(self, queries: np.ndarray | torch.Tensor, k: int) -> list[list[Any]]:
        """Like :meth:`search` but returns, per query, the list of the k nearest ids."""
        _, idx = self.search(queries, k)
        return [self.ids_[row].tolist() for row in idx]

    def _search(self, queries: Any, k: int, exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Search with optional excluded rows (bool mask of length ``n_``)."""
        self._check_fitted()
        if self._searcher is not None:
            import torch

            mask = None if exclude is None else torch.from_numpy(np.asarray(exclude, dtype=bool)).to(self._searcher.device)
            return self._searcher.search(queries, k, exclude=mask)
        return self._search_faiss(queries, k, exclude)

    def _search_faiss(self, queries: Any, k: int, exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        faiss = _import_faiss()
        q = _as_2d_float32(queries, "queries")
        if q.shape[1] != self.dim_:
            raise AddeError(f"queries must have shape (q, {self.dim_}) to match the index; got {q.shape}.")
        if q.shape[0] == 0:
            raise AddeError("queries is empty: pass at least one query vector.")
        if not np.isfinite(q).all():
            raise AddeError("queries has NaN or infinite values; fix or drop those query vectors.")
        q = self._for_faiss(q)
        n_avail = self.n_ - (int(np.count_nonzero(exclude)) if exclude is not None else 0)
        k = _check_k(k, n_avail)
        selector = None
        if exclude is not None and np.any(exclude):
            # The bitmap selector skips excluded rows inside faiss, so they never take a top-k slot.
            keep = np.packbits(~np.asarray(exclude, dtype=bool), bitorder="little")
            selector = faiss.IDSelectorBitmap(self.n_, faiss.swig_ptr(keep))
        if self.kind_ == "faiss-ivf":
            nprobe = self.nprobe_
            params = faiss.SearchParametersIVF(nprobe=nprobe, sel=selector) if selector is not None else None
            scores, idx = self._faiss_call(q, k, params, nprobe)
            # Sparse lists can hold fewer than k vectors in total: widen the probe for those queries only.
            while (idx < 0).any() and nprobe < self.nlist_:
                nprobe = min(self.nlist_, nprobe * 4)
                rows = np.flatnonzero((idx < 0).any(axis=1))
                params = faiss.SearchParametersIVF(nprobe=nprobe, sel=selector)
                scores[rows], idx[rows] = self._faiss_call(q[rows], k, params, nprobe)
        else:
            params = faiss.SearchParametersHNSW(efSearch=max(_HNSW_EF_SEARCH, k), sel=selector)
            scores, idx = self._faiss.search(q, k, params=params)
            missing = np.flatnonzero((idx < 0).any(axis=1))
            if missing.size:
                params = faiss.SearchParametersHNSW(efSearch=max(4 * k, self.n_ // 4, 1), sel=selector)
                scores[missing], idx[missing] = self._faiss.search(q[missing], k, params=params)
        if (idx < 0).any():  # pragma: no cover - defensive; nprobe = nlist scans everything
            raise AddeError("The approximate index returned fewer than k neighbours; rebuild with ann_threshold=None.")
        return scores.astype(np.float32, copy=False), idx.astype(np.int64, copy=False)

    def _faiss_call(self, q: np.ndarray, k: int, params: Any, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
        if params is None:
            self._faiss.nprobe = nprobe
            return self._faiss.search(q, k)
        return self._faiss.search(q, k, params=params)

    def __repr__(self) -> str:
        fitted = f", kind_={self.kind_!r}, n_={self.n_}" if hasattr(self, "kind_") else ""
        return (
            f"VectorIndex(metric={self.metric!r}, ann_threshold={self.ann_threshold!r}, ann={self.ann!r}, "
            f"nlist={self.nlist!r}, nprobe={self.nprobe!r}{fitted})"
        )


# ---------------------------------------------------------------------------------------------------------
# evaluation


def recall_at_k(approx_indices: np.ndarray, exact_indices: np.ndarray) -> float:
    """Mean fraction of each query's exact top-k that the approximate top-k also found.

    Parameters
    ----------
    approx_indices : array-like of shape (q, k_a)
        Indices returned by the approximate search (``-1`` padding is never counted as a hit).
    exact_indices : array-like of shape (q, k)
        The exact top-k indices, the reference.

    Returns
    -------
    float
        ``mean_q |approx_q ∩ exact_q| / k`` in ``[0, 1]``.
    """
    a = np.asarray(approx_indices)
    e = np.asarray(exact_indices)
    a = a[None, :] if a.ndim == 1 else a
    e = e[None, :] if e.ndim == 1 else e
    if a.ndim != 2 or e.ndim != 2 or a.shape[0] != e.shape[0]:
        raise AddeError(f"recall_at_k needs two (q, k) arrays with the same q; got {a.shape} and {e.shape}.")
    if e.shape[1] == 0 or e.shape[0] == 0:
        raise AddeError("recall_at_k needs at least one query and k >= 1.")
    hits = [np.intersect1d(ai[ai >= 0], ei).size for ai, ei in zip(a, e)]
    return float(np.mean(hits) / e.shape[1])


# ---------------------------------------------------------------------------------------------------------
# region retrieval


def _entropy(probs: Any, n: int) -> np.ndarray:
    """Uncertainty (entropy / log k) per row of class probabilities; a 1-D input is P(positive) of a binary model."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 1:
        p = np.stack([p, 1.0 - p], axis=1)
    if p.ndim != 2 or p.shape[0] != n:
        raise AddeError(
            f"probs must have one row per pool vector ({n}), shape (n,) or (n, n_classes); got {np.shape(probs)}."
        )
    if not np.isfinite(p).all() or (p < -1e-6).any():
        raise AddeError("probs must be finite, non-negative class probabilities (apply softmax to logits first).")
    from adde_core.ranking.components import entropy_uncertainty

    p = np.clip(p, 0.0, None)
    total = p.sum(axis=1, keepdims=True)
    # Normalised entropy (divided by log k) orders rows exactly like entropy in nats.
    return entropy_uncertainty(np.divide(p, total, out=np.zeros_like(p), where=total > 0))




def retrieve_for_region(
    pool_vectors: np.ndarray,
    pool_ids: Sequence[Any] | np.ndarray,
    *,
    centroid: np.ndarray,
    member_vectors: np.ndarray | None = None,
    k: int = 50,
    probs: np.ndarray | None = None,
    uncertain_share: float = 0.2,
    exclude_ids: set[Any] | None = None,
    index: VectorIndex | None = None,
    neighbourhood: int = 5_000,
    max_members: int = 256,
    member_top: int = 3,
    random_state: int = 0,
) -> pd.DataFrame:
    """Pool candidates for one region: its nearest neighbours plus uncertain items near it.

    How the ``k`` rows are chosen (cosine similarity throughout, always recomputed exactly on the
    candidates, so an approximate ``index`` only decides which items are considered):

    1. **Similar items** (``k - k_uncertain`` slots, ``k_uncertain = round(uncertain_share · k)`` when
       ``probs`` is given, else 0). Candidates are the nearest pool items to the centroid and, when
       ``member_vectors`` is given, the union of each member's nearest items. An item's *member score* is
       the mean of its ``r = min(member_top, m)`` highest similarities to the members: with r = 1 this is
       the max similarity to any member; with r = 3 an item must be close to several members to score
       high, so items inside the region outrank items that merely sit next to one stray member. Each item
       keeps its better score of centroid similarity and member score (``via`` says which); the top ones
       are taken in descending order.
    2. **Uncertain items** (``k_uncertain`` slots): among the ``neighbourhood`` nearest pool items to the
       centroid (not yet chosen, not excluded), the highest-entropy items under ``probs``, in descending
       entropy; their ``similarity`` is the cosine to the centroid.
    3. If one part has too few items (small pool, many exclusions), the other fills the gap, so the result
       has exactly ``min(k, available)`` rows, where available counts the pool items not excluded.

    Ties are broken by pool row order, so the result is deterministic.

    Parameters
    ----------
    pool_vectors : np.ndarray of shape (n, dim)
        Pool embeddings.
    pool_ids : sequence of length n
        Unique id per pool row.
    centroid : np.ndarray of shape (dim,)
        Centre of the region (e.g. the mean of its members' embeddings).
    member_vectors : np.ndarray of shape (m, dim), optional
        Embeddings of the region's members. Past ``max_members`` a deterministic random subsample (seed
        ``random_state``) is used, which bounds the cost at ``max_members`` queries.
    k : int, default 50
        Rows wanted.
    probs : np.ndarray of shape (n,) or (n, n_classes), optional
        Current model's class probabilities for the pool rows (1-D: P(positive) of a binary model).
        Without it no uncertain items are picked.
    uncertain_share : float in [0, 1], default 0.2
        Share of ``k`` given to uncertain items.
    exclude_ids : set, optional
        Ids never returned (e.g. items already reviewed).
    index : VectorIndex, optional
        A cosine :class:`VectorIndex` fitted on ``pool_vectors`` (same rows, same order). Pass one when
        calling repeatedly on a large pool; without it an exact search is run for this call.
    neighbourhood : int, default 5000
        How many nearest items to the centroid the uncertain items are drawn from.
    max_members : int, default 256
    member_top : int, default 3
        ``r`` in the member score (see above); 1 gives the plain max.
    random_state : int, default 0
        Seeds the member subsample.

    Returns
    -------
    pandas.DataFrame
        Columns ``id`` (from ``pool_ids``), ``similarity`` (float, cosine), ``via`` (``"centroid"``,
        ``"members"`` or ``"uncertain"``) and ``rank`` (0-based position), one row per distinct id.

    Raises
    ------
    AddeError
        On an empty pool, mismatched shapes or lengths, duplicate pool ids, bad ``k``, ``uncertain_share``
        or ``probs``, or an index that does not match the pool.
    """
    import pandas as pd

    X = np.asarray(pool_vectors)
    if X.ndim != 2:
        raise AddeError(f"pool_vectors must be 2-D of shape (n, dim); got shape {X.shape}.")
    n, dim = X.shape
    if n == 0:
        raise AddeError("The pool is empty: add unlabelled pool items before retrieving for a region.")
    ids = np.asarray(pool_ids)
    if ids.ndim != 1 or ids.shape[0] != n:
        raise AddeError(f"pool_ids must have one id per pool vector ({n}); got shape {ids.shape}.")
    id_index = pd.Index(ids)
    if not id_index.is_unique:
        dup = id_index[id_index.duplicated()][0]
        raise AddeError(f"pool_ids must be unique; {dup!r} appears more than once.")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise AddeError(f"k must be a positive integer, got {k!r}.")
    if not (isinstance(uncertain_share, (int, float)) and 0.0 <= float(uncertain_share) <= 1.0):
        raise AddeError(f"uncertain_share must be a number in [0, 1], got {uncertain_share!r}.")
    for name, value in (("neighbourhood", neighbourhood), ("max_members", max_members), ("member_top", member_top)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise AddeError(f"{name} must be a positive integer, got {value!r}.")
    c = np.asarray(centroid, dtype=np.float32).reshape(-1)
    if c.shape[0] != dim:
        raise AddeError(f"centroid must have {dim} values to match pool_vectors; got {c.shape[0]}.")
    if not np.isfinite(c).all():
        raise AddeError("centroid has NaN or infinite values.")
    members = None
    if member_vectors is not None:
        members = np.asarray(member_vectors, dtype=np.float32)
        members = members[None, :] if members.ndim == 1 else members
        if members.ndim != 2 or members.shape[1] != dim:
            raise AddeError(f"member_vectors must have shape (m, {dim}); got {np.shape(member_vectors)}.")
        if not np.isfinite(members).all():
            raise AddeError("member_vectors has NaN or infinite values.")
        if members.shape[0] == 0:
            members = None
        elif members.shape[0] > max_members:
            rng = np.random.default_rng(random_state)
            members = members[np.sort(rng.choice(members.shape[0], size=max_members, replace=False))]
    entropy = _entropy(probs, n) if probs is not None else None

    excluded = np.zeros(n, dtype=bool)
    if exclude_ids:
        excluded = np.asarray(id_index.isin(list(exclude_ids)), dtype=bool)
    n_avail = int(n - excluded.sum())
    k_total = min(int(k), n_avail)
    if k_total == 0:
        return pd.DataFrame({"id": ids[:0], "similarity": np.zeros(0), "via": np.array([], dtype=object),
                             "rank": np.zeros(0, dtype=np.int64)})
    k_unc = int(round(float(uncertain_share) * k_total)) if entropy is not None else 0
    k_sim = k_total - k_unc

    if index is not None:
        if not isinstance(index, VectorIndex) or not hasattr(index, "kind_"):
            raise AddeError("index must be a fitted VectorIndex (call VectorIndex(...).fit(pool_vectors)).")
        if index.n_ != n or index.dim_ != dim:
            raise AddeError(
                f"index was fitted on {index.n_} × {index.dim_} vectors but the pool is {n} × {dim}; refit it."
            )
        if index.metric != "cosine":
            raise AddeError("retrieve_for_region ranks by cosine similarity: fit the index with metric='cosine'.")
        def search(queries: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
            return index._search(queries, kk, exclude=excluded if excluded.any() else None)
    else:
        import torch

        searcher = _FlatSearcher(X, "cosine", _device_for(X, None), DEFAULT_CHUNK_SIZE)
        mask = torch.from_numpy(excluded).to(searcher.device) if excluded.any() else None

        def search(queries: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
            return searcher.search(queries, kk, exclude=mask)

    # One centroid search serves both the similar items and the uncertain neighbourhood.
    k_centroid = min(n_avail, max(k_total, neighbourhood if k_unc else k_total))
    c_scores, c_idx = search(c, k_centroid)
    c_scores, c_idx = c_scores[0], c_idx[0]
    cu = unit_rows(c)

    candidates = [c_idx[: min(k_total, c_idx.size)]]
    if members is not None:
        _, m_idx = search(members, min(k_total, n_avail))
        candidates.append(m_idx.reshape(-1))
    cand = np.unique(np.concatenate(candidates))
    # Exact scores on the (small) candidate set, whatever index produced it.
    Xc = unit_rows(X[cand])
    cent_sim = Xc @ cu
    if members is not None:
        msim = Xc @ unit_rows(members).T  # (candidates, m)
        r = min(int(member_top), msim.shape[1])
        top_r = -np.partition(-msim, r - 1, axis=1)[:, :r]
        mem_score = top_r.mean(axis=1)
    else:
        mem_score = np.full(cand.shape, -np.inf, dtype=np.float32)
    best = np.maximum(cent_sim, mem_score)
    via_members = mem_score > cent_sim
    order = np.lexsort((cand, -best))  # descending score, ties by row
    cand, best, via_members = cand[order], best[order], via_members[order]

    # Both parts always fill their quota: the centroid list holds at least k_total available rows, so the
    # candidates number at least k_sim and the neighbourhood minus the similar picks at least k_unc.
    rows_sim = cand[:k_sim]
    sims = [best[:k_sim]]
    vias = [np.where(via_members[:k_sim], "members", "centroid").astype(object)]
    rows = rows_sim
    if k_unc:
        taken = np.zeros(n, dtype=bool)
        taken[rows_sim] = True
        free = ~taken[c_idx]
        hood, hood_sim = c_idx[free], c_scores[free]
        pick = np.lexsort((np.arange(hood.size), -entropy[hood]))[:k_unc]  # descending entropy, ties by nearness
        rows = np.concatenate([rows_sim, hood[pick]])
        sims.append(hood_sim[pick])
        vias.append(np.full(pick.size, "uncertain", dtype=object))
    return pd.DataFrame(
        {
            "id": ids[rows],
            "similarity": np.concatenate(sims).astype(np.float64),
            "via": np.concatenate(vias).astype(object),
            "rank": np.arange(rows.size, dtype=np.int64),
        }
    )
