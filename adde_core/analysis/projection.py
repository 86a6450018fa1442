"""Projections of embeddings (PCA, UMAP) and the stable 2-D latent map that grows across iterations."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adde_core.errors import AddeError
from adde_core.analysis.density import (
    fit_sample,
    ANN_MIN_PAIRS,
    array_fingerprint,
    as_matrix,
    fit_pca,
    knn,
    pca_transform,
    search_knn,
    self_knn,
    unit_rows,
)

MAP_FORMAT = 1
_METRICS = ("cosine", "euclidean")
PLACEMENTS = ("fit", "umap", "knn")
#: Largest map UMAP is fitted on in full. Past it, UMAP is fitted on a uniform random sample of
#: this many items and every other item is placed by kNN placement (:meth:`LatentMap.place_knn`,
#: the way items added later are placed). A seeded UMAP layout runs on one thread and its kNN graph
#: grows with n: the full fit took 184 s at 10^5 items on 2 cores (benchmarks/scale.py, before
#: this limit), far past the analysis budget at 10^6. Projects up to this size (the 9,716-item
#: demo included) are fitted exactly as before.
MAP_FIT_MAX = 50_000
#: The kNN graph of a fit on a sample (past :data:`MAP_FIT_MAX` or the clustering's limit) is exact
#: brute force under ``knn_method="auto"``, whatever the sample's size: pynndescent's numba
#: compilation, paid once in every new process, took 134 s wall on the 2 shared cores at load 3
#: (measured with a warm ``NUMBA_CACHE_DIR``), while the exact graph of a 50k sample in PCA-50
#: takes 17 s wall / 30 CPU s (its NN-descent graph recalled 0.987 of it). Fits on every item keep
#: the ``exact_knn_max`` rule, so projects up to 50k items are fitted exactly as before.
SAMPLED_FIT_KNN = "exact"
#: Most optimisation epochs of a UMAP fit on a sample (map and clustering space). The seeded layout
#: runs on one thread and costs about linearly in epochs: on a 50k sample of the 10^6 benchmark 200
#: epochs took 38 s (2-d, 15 neighbours) and 103 s (10-d, 30 neighbours), 100 epochs 18 s and 50 s,
#: on the 2 shared cores. Fits on every item keep their configured epochs.
SAMPLED_FIT_EPOCHS = 100


class _ParamsMixin:
    """``get_params`` / ``set_params`` / ``repr`` from the keyword-only ``__init__`` signature (sklearn style)."""

    @classmethod
    def _param_names(cls) -> list[str]:
        return [p.name for p in inspect.signature(cls.__init__).parameters.values() if p.kind is p.KEYWORD_ONLY]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Hyperparameters as a dict (``deep`` is accepted for scikit-learn compatibility)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> "_ParamsMixin":
        """Set hyperparameters; unknown names raise ``ValueError``."""
        valid = set(self._param_names())
        for name, value in params.items():
            if name not in valid:
                raise AddeError(f"{type(self).__name__} has no parameter {name!r}; valid: {sorted(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


class PCAProjector(_ParamsMixin):
    """Linear projection onto the top principal axes of unit-normalised rows.

    Parameters
    ----------
    n_components
        Output dimension.
    normalize
        L2-normalise rows first, so that Euclidean geometry matches cosine geometry.
    random_state
        Unused (the eigendecomposition is deterministic); kept so every projector
        takes the same arguments.

    Attributes
    ----------
    mean_, components_, explained_variance_ratio_, n_features_in_
    """

    def __init__(self, *, n_components: int = 50, normalize: bool = True, random_state: int | None = 0) -> None:
        self.n_components = n_components
        self.normalize = normalize
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: Any = None) -> "PCAProjector":
        """Fit the axes on ``X`` (n, d) and return ``self``."""
        X = as_matrix(X)
        if self.normalize:
            X = unit_rows(X)
        self.mean_, self.components_, self.explained_variance_ratio_ = fit_pca(X, self.n_components)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Project rows of ``X`` onto the fitted axes."""
        X = as_matrix(X)
        _check_dim(X, self.n_features_in_)
        return pca_transform(unit_rows(X) if self.normalize else X, self.mean_, self.components_)

    def fit_transform(self, X: np.ndarray, y: Any = None) -> np.ndarray:
        """``fit(X).transform(X)``."""
        return self.fit(X).transform(X)


class UMAPProjector(_ParamsMixin):
    """UMAP on an exact (or NN-descent) kNN graph after an optional PCA: the map and clustering-space projector.

    With ``pca_components`` set, rows are L2-normalised, reduced by PCA, and UMAP runs
    with the Euclidean metric on the PCA coordinates: on unit vectors
    ``||a - b||^2 = 2 - 2 cos(a, b)``, so this approximates the cosine geometry, and PCA
    preserves Euclidean distances. Measured on 9,000 real EfficientNet-Lite0 embeddings
    of Animal-MNIST: 10-NN preservation of transformed points 0.22 (PCA-50 + Euclidean)
    vs 0.19 (raw 1280-d cosine), and the nearest-neighbour stage is ~25x cheaper.

    The kNN graph is computed here and handed to umap-learn as a precomputed sparse
    distance matrix. Up to ``exact_knn_max`` items it is exact brute force (about 1 s at
    10k), which avoids pynndescent's ~25-30 s numba compilation in every new process;
    above that pynndescent's NN-descent is faster. New points are always placed with an
    exact kNN search against the fitted rows, so ``transform`` never needs a search index.

    Parameters
    ----------
    n_components
        Output dimension (2 for the map, ~10 for clustering).
    n_neighbors, min_dist
        UMAP's locality and packing parameters.
    metric
        ``"cosine"`` or ``"euclidean"``: the geometry of the input embeddings.
    pca_components
        PCA dimension before UMAP, or None to run UMAP on the raw embeddings.
    n_epochs
        Optimisation epochs; None lets umap-learn choose (500 up to 10,000 items, else 200).
    knn_method
        ``"auto"`` (exact up to ``exact_knn_max`` items, else NN-descent), ``"exact"`` or
        ``"nndescent"``.
    exact_knn_max
        Largest fit done with the exact kNN graph under ``"auto"``.
    random_state
        Seed. A fixed seed makes UMAP deterministic (and single-threaded).

    Attributes
    ----------
    umap_ : umap.UMAP
        The fitted reducer (in memory only; it is not persisted).
    pca_mean_, pca_components_ : ndarray or None
    reference_ : ndarray
        The fitted rows in UMAP's input space (after PCA): the kNN search reference.
    embedding_ : ndarray (n, n_components)
    knn_method_ : str
        The kNN method actually used.
    n_features_in_ : int
    """

    def __init__(self, *, n_components: int = 2, n_neighbors: int = 15, min_dist: float = 0.1,
                 metric: str = "cosine", pca_components: int | None = 50, n_epochs: int | None = 200,
                 knn_method: str = "auto", exact_knn_max: int = 20_000, random_state: int | None = 0) -> None:
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.metric = metric
        self.pca_components = pca_components
        self.n_epochs = n_epochs
        self.knn_method = knn_method
        self.exact_knn_max = exact_knn_max
        self.random_state = random_state

    def _input_space(self, X: np.ndarray) -> np.ndarray:
        # Cosine geometry is Euclidean geometry on unit rows, with or without the PCA.
        base = unit_rows(X) if self.metric == "cosine" else X
        return base if self.pca_mean_ is None else pca_transform(base, self.pca_mean_, self.pca_components_)

    def fit(self, X: np.ndarray, y: Any = None) -> "UMAPProjector":
        """Fit PCA (if asked) and UMAP on ``X`` (n, d); return ``self``.

        Raises
        ------
        ValueError
            If ``X`` has fewer than 4 rows, or a parameter is out of range.
        """
        import umap  # lazy: umap pulls numba and pynndescent (seconds to import)

        X = as_matrix(X)
        if self.metric not in _METRICS:
            raise AddeError(f"metric must be one of {_METRICS}, got {self.metric!r}")
        if self.knn_method not in _KNN_METHODS:
            raise AddeError(f"knn_method must be one of {_KNN_METHODS}, got {self.knn_method!r}")
        if len(X) < 4:
            raise AddeError(f"UMAP needs at least 4 items, got {len(X)}")
        self.n_features_in_ = X.shape[1]
        self.pca_mean_ = self.pca_components_ = None
        if self.pca_components is not None and self.pca_components < X.shape[1]:
            base = unit_rows(X) if self.metric == "cosine" else X
            self.pca_mean_, self.pca_components_, _ = fit_pca(base, self.pca_components)
        self.reference_ = self._input_space(X)
        k = int(min(self.n_neighbors, len(X) - 1))
        method = self.knn_method
        if method == "auto":
            method = "exact" if len(X) <= self.exact_knn_max else "nndescent"
        self.knn_method_ = method
        knn_idx, knn_dist = _knn_graph(self.reference_, k, method, self.random_state)
        self.umap_ = umap.UMAP(
            n_components=self.n_components, n_neighbors=k, min_dist=self.min_dist, metric="precomputed",
            n_epochs=self.n_epochs, random_state=self.random_state, precomputed_knn=(knn_idx, knn_dist),
        )
        with warnings.catch_warnings():
            # umap warns that a fixed random_state disables parallelism (the point: determinism)
            # and that a precomputed kNN has no search index (transform uses exact kNN instead).
            warnings.filterwarnings("ignore", category=UserWarning)
            self.umap_.fit(_sparse_knn_matrix(knn_idx, knn_dist, len(X)))
        self.embedding_ = np.asarray(self.umap_.embedding_, dtype=np.float32)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Place new rows into the fitted embedding (fitted rows are not moved).

        Their exact nearest fitted rows (in the PCA space) are handed to UMAP's transform,
        which initialises each point at its neighbours' weighted mean and refines it.
        """
        from scipy.sparse import csr_matrix

        X = as_matrix(X)
        _check_dim(X, self.n_features_in_)
        k = self.umap_._n_neighbors
        dist, idx = knn(self._input_space(X), self.reference_, k)
        graph = csr_matrix((dist.ravel(), idx.ravel(), np.arange(0, len(X) * k + 1, k)),
                           shape=(len(X), len(self.reference_)))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning)
            return np.asarray(self.umap_.transform(graph), dtype=np.float32)

    def fit_transform(self, X: np.ndarray, y: Any = None) -> np.ndarray:
        """``fit(X).embedding_``."""
        return self.fit(X).embedding_


_KNN_METHODS = ("auto", "exact", "nndescent")


def _knn_graph(Z: np.ndarray, k: int, method: str, random_state: int | None) -> tuple[np.ndarray, np.ndarray]:
    """kNN of every row among all rows, self included (as umap-learn expects)."""
    if method == "exact":
        dist, idx = self_knn(Z, k - 1)
        own = np.arange(len(Z))[:, None]
        return (np.hstack([own, idx]).astype(np.int32), np.hstack([np.zeros((len(Z), 1), np.float32), dist]))
    from pynndescent import NNDescent

    index = NNDescent(Z, n_neighbors=k, metric="euclidean", random_state=random_state, low_memory=True,
                      n_jobs=1 if random_state is not None else -1)
    idx, dist = index.neighbor_graph
    return idx.astype(np.int32), dist.astype(np.float32)


def _sparse_knn_matrix(idx: np.ndarray, dist: np.ndarray, n: int) -> Any:
    """Symmetric sparse distance matrix holding the kNN edges (umap-learn's precomputed input)."""
    from scipy.sparse import coo_matrix

    rows = np.repeat(np.arange(n), idx.shape[1])
    cols, vals = idx.ravel(), dist.ravel().astype(np.float64)
    keep = (cols >= 0) & (cols != rows)
    rows, cols, vals = rows[keep], cols[keep], vals[keep]
    half = coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsr()
    # Mutual neighbours appear twice after symmetrising; max() keeps the (equal) distance.
    return half.maximum(half.T).tocsr()


def _check_dim(X: np.ndarray, expected: int) -> None:
    if X.shape[1] != expected:
        raise AddeError(f"X has {X.shape[1]} features but the projector was fitted on {expected}")


# --------------------------------------------------------------------------- alignment
@dataclass(frozen=True)
class Alignment:
    """A similarity transform of the plane: ``y = scale * x @ rotation + translation``.

    ``rotation`` is orthogonal and may include a reflection, which is what removes a
    mirror-image flip between two UMAP fits.
    """

    rotation: np.ndarray = field(default_factory=lambda: np.eye(2))
    scale: float = 1.0
    translation: np.ndarray = field(default_factory=lambda: np.zeros(2))

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Transform rows of ``points`` (n, 2); returns float32."""
        pts = np.asarray(points, dtype=np.float64)
        return (self.scale * pts @ self.rotation + self.translation).astype(np.float32)

    def then(self, other: "Alignment") -> "Alignment":
        """The composition: first ``self``, then ``other``."""
        return Alignment(rotation=self.rotation @ other.rotation, scale=self.scale * other.scale,
                         translation=other.scale * self.translation @ other.rotation + other.translation)

    def to_array(self) -> np.ndarray:
        """Pack as 7 floats (rotation row-major, scale, translation) for saving."""
        return np.concatenate([np.ravel(self.rotation), [self.scale], np.ravel(self.translation)]).astype(np.float64)

    @classmethod
    def from_array(cls, arr: np.ndarray) -> "Alignment":
        """Inverse of :meth:`to_array`."""
        arr = np.asarray(arr, dtype=np.float64)
        return cls(rotation=arr[:4].reshape(2, 2), scale=float(arr[4]), translation=arr[5:7].copy())


def align_procrustes(source: np.ndarray, target: np.ndarray, *, allow_reflection: bool = True) -> Alignment:
    """Least-squares similarity transform taking ``source`` onto ``target`` (orthogonal Procrustes with scaling).

    Parameters
    ----------
    source, target
        Matching rows (n, 2), e.g. the same items in a new and an old map.
    allow_reflection
        Allow a mirror image (det = -1); UMAP refits often come out mirrored.

    Returns
    -------
    Alignment
        Minimises ``||scale * source @ R + t - target||_F`` over orthogonal ``R``, ``scale > 0``, ``t``.
    """
    src, tgt = np.asarray(source, np.float64), np.asarray(target, np.float64)
    if src.shape != tgt.shape or src.ndim != 2 or len(src) < 2:
        raise AddeError(f"need matching (n >= 2, dim) arrays, got {src.shape} and {tgt.shape}")
    mu_s, mu_t = src.mean(axis=0), tgt.mean(axis=0)
    a, b = src - mu_s, tgt - mu_t
    u, sig, vt = np.linalg.svd(a.T @ b)
    if not allow_reflection and np.linalg.det(u @ vt) < 0:
        u[:, -1] *= -1
        sig[-1] *= -1
    rotation = u @ vt
    denom = float((a * a).sum())
    scale = float(sig.sum() / denom) if denom > 0 else 1.0
    return Alignment(rotation=rotation, scale=scale, translation=mu_t - scale * mu_s @ rotation)


# --------------------------------------------------------------------------- the map
@dataclass(frozen=True)
class MapConfig:
    """How the 2-D map is fitted and how new items are placed into it.

    Attributes
    ----------
    n_neighbors, min_dist, metric, pca_components, n_epochs, knn_method
        See :class:`UMAPProjector`.
    placement_k
        Neighbours used by kNN placement (the restart-safe way to add items).
    random_state
        Seed for UMAP. A fixed seed makes fits reproducible (bitwise, measured), which
        :meth:`LatentMap.restore_projector` relies on, at the price of a single-threaded
        layout; None runs the layout in parallel (faster on many cores, not reproducible).
    """

    n_neighbors: int = 15
    min_dist: float = 0.1
    metric: str = "cosine"
    pca_components: int | None = 50
    n_epochs: int | None = 200
    placement_k: int = 10
    knn_method: str = "auto"
    random_state: int | None = 0

    def __post_init__(self) -> None:
        if not isinstance(self.n_neighbors, int) or self.n_neighbors < 2:
            raise AddeError(f"n_neighbors must be an integer >= 2, got {self.n_neighbors!r}")
        if not 0.0 <= float(self.min_dist) <= 1.0:
            raise AddeError(f"min_dist must be in [0, 1], got {self.min_dist!r}")
        if self.metric not in _METRICS:
            raise AddeError(f"metric must be one of {_METRICS}, got {self.metric!r}")
        if self.pca_components is not None and (not isinstance(self.pca_components, int) or self.pca_components < 2):
            raise AddeError(f"pca_components must be None or an integer >= 2, got {self.pca_components!r}")
        if self.n_epochs is not None and (not isinstance(self.n_epochs, int) or self.n_epochs < 1):
            raise AddeError(f"n_epochs must be None or a positive integer, got {self.n_epochs!r}")
        if not isinstance(self.placement_k, int) or self.placement_k < 1:
            raise AddeError(f"placement_k must be a positive integer, got {self.placement_k!r}")
        if self.knn_method not in _KNN_METHODS:
            raise AddeError(f"knn_method must be one of {_KNN_METHODS}, got {self.knn_method!r}")
        if self.random_state is not None and (isinstance(self.random_state, bool)
                                              or not isinstance(self.random_state, int)):
            raise AddeError(f"random_state must be an integer or None, got {self.random_state!r}")

    def projector(self, *, sampled: bool = False) -> UMAPProjector:
        """A fresh, unfitted 2-D projector with these settings (``sampled``: for a fit on a sample, see
        :func:`sampled_fit_settings`)."""
        knn_method, n_epochs = sampled_fit_settings(self.knn_method, self.n_epochs, sampled)
        return UMAPProjector(n_components=2, n_neighbors=self.n_neighbors, min_dist=self.min_dist, metric=self.metric,
                             pca_components=self.pca_components, n_epochs=n_epochs, knn_method=knn_method,
                             random_state=self.random_state)


def sampled_fit_settings(knn_method: str, n_epochs: int | None, sampled: bool) -> tuple[str, int | None]:
    """The kNN method and epochs of a UMAP fit: as configured, or on a sample (``sampled``) an ``"auto"``
    method means :data:`SAMPLED_FIT_KNN` and the epochs are at most :data:`SAMPLED_FIT_EPOCHS`."""
    if not sampled:
        return knn_method, n_epochs
    return (SAMPLED_FIT_KNN if knn_method == "auto" else knn_method,
            SAMPLED_FIT_EPOCHS if n_epochs is None else min(n_epochs, SAMPLED_FIT_EPOCHS))


@dataclass(frozen=True, eq=False)
class LatentMap:
    """A 2-D map of items that stays put as items are added.

    Rows ``[:n_fit]`` are the items the projector was fitted on; later rows were added
    by :meth:`extend`. Methods return new maps and never change this one.

    Attributes
    ----------
    ids : ndarray of str (n,)
    coords : ndarray float32 (n, 2)
    placement : ndarray of str (n,)
        How each item got its position: ``"fit"``, ``"umap"`` (UMAP transform) or ``"knn"``.
    model_key : str
        The embedding model the vectors came from.
    fingerprint : str
        Fingerprint of all (ids, vectors) on the map now.
    fit_fingerprint : str
        Fingerprint of the data the projector was fitted on.
    config : MapConfig
    n_fit : int
    reference : ndarray float32 (n_fit, k)
        The fitted items in the projector's input space (after PCA): enough to place new
        items by kNN without the UMAP model, e.g. after a restart.
    pca_mean, pca_components : ndarray or None
    alignment : Alignment
        Maps the projector's output frame to this map's frame (identity unless refitted).
    projector : UMAPProjector or None
        The fitted UMAP model, when it is in memory (never saved).

    Notes
    -----
    Persistence without pickle: umap-learn models hold numba-compiled functions and
    cannot be saved safely except by pickling, so :meth:`save` writes only arrays and
    JSON to an ``.npz``. Keep the map with its model in memory (``st.cache_resource``
    keyed by ``fingerprint``); after a restart, :meth:`load` gives a map that draws at
    once and adds items by kNN placement (no model needed; on real EfficientNet-Lite0
    embeddings its 10-NN preservation is 0.19 vs 0.22 for UMAP's transform), and
    :meth:`restore_projector` refits the model deterministically (seconds at 10k) to
    resume UMAP transforms. Every item records how it was placed in ``placement``.
    """

    ids: np.ndarray
    coords: np.ndarray
    placement: np.ndarray
    model_key: str
    fingerprint: str
    fit_fingerprint: str
    config: MapConfig
    n_fit: int
    reference: np.ndarray
    pca_mean: np.ndarray | None
    pca_components: np.ndarray | None
    alignment: Alignment = field(default_factory=Alignment)
    projector: UMAPProjector | None = field(default=None, repr=False)
    #: Whether the projector was fitted on a sample of the items (its kNN graph and epochs then
    #: follow :func:`sampled_fit_settings`, which :meth:`restore_projector` must repeat).
    sampled_fit: bool = False
    #: Placements with more (new item x fitted item) pairs than this search an IVF index (see
    #: :data:`adde_core.analysis.density.ANN_MIN_PAIRS`); not saved with the map.
    ann_min_pairs: int | None = field(default=ANN_MIN_PAIRS, repr=False, compare=False)

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return len(self.ids)

    @property
    def can_transform(self) -> bool:
        """Whether the UMAP model is in memory (else :meth:`extend` places items by kNN)."""
        return self.projector is not None

    def to_frame(self) -> pd.DataFrame:
        """Columns ``id, x, y, placement`` (for plotting; identify points by ``id``)."""
        return pd.DataFrame({"id": self.ids, "x": self.coords[:, 0], "y": self.coords[:, 1],
                             "placement": self.placement})

    def coords_for(self, ids: Sequence[str]) -> np.ndarray:
        """Coordinates of ``ids`` in the given order; unknown ids raise ``KeyError``."""
        pos = pd.Index(self.ids).get_indexer(list(ids))
        if (pos < 0).any():
            missing = [i for i, p in zip(ids, pos) if p < 0][:5]
            raise KeyError(f"{int((pos < 0).sum())} ids are not on the map, e.g. {missing}")
        return self.coords[pos]

    # ------------------------------------------------------------------ growth
    def extend(self, X: np.ndarray, ids: Sequence[str], *, method: str = "auto",
               fingerprint: str | None = None) -> "LatentMap":
        """Add new items to the map without moving any existing one.

        Every earlier item's coordinates are copied unchanged (bitwise), so the picture
        the user has learned stays the same.

        Parameters
        ----------
        X
            Embeddings of the items, rows aligned with ``ids``. Items already on the map are
            skipped, so passing the whole current embedding set adds only what is new.
        ids
            Item ids.
        method
            ``"umap"`` (UMAP ``transform``; needs the model in memory), ``"knn"``
            (inverse-distance-weighted mean of the positions of the ``placement_k``
            nearest fitted items, in the PCA space; works after a restart) or ``"auto"``
            (``"umap"`` when possible, else ``"knn"``).
        fingerprint
            Fingerprint of the map's data after the extension (e.g. from the store);
            derived from the previous fingerprint and the new rows when omitted.

        Returns
        -------
        LatentMap
            A new map with the new items appended.
        """
        X = as_matrix(X)
        ids = np.asarray(list(ids), dtype=str)
        if len(ids) != len(X):
            raise AddeError(f"{len(ids)} ids but {len(X)} rows in X")
        if method not in ("auto", "umap", "knn"):
            raise AddeError(f"method must be 'auto', 'umap' or 'knn', got {method!r}")
        known = set(self.ids.tolist())
        new = np.fromiter((i not in known for i in ids.tolist()), dtype=bool, count=len(ids))
        if len(set(ids[new].tolist())) < int(new.sum()):
            dup = pd.Index(ids[new])
            raise AddeError(f"duplicate ids in the new items, e.g. {dup[dup.duplicated()][:3].tolist()}")
        if not new.any():
            return self
        if method == "auto":
            method = "umap" if self.projector is not None else "knn"
        if method == "umap" and self.projector is None:
            raise AddeError("the UMAP model is not in memory (map loaded from disk); use method='knn' or "
                             "restore_projector() first")
        X_new, ids_new = X[new], ids[new]
        placed = self.alignment.apply(self.projector.transform(X_new)) if method == "umap" else self.place_knn(X_new)
        fp = fingerprint or _chain_fingerprint(self.fingerprint, array_fingerprint(ids_new, X_new))
        return replace(
            self, ids=np.concatenate([self.ids, ids_new]), coords=np.concatenate([self.coords, placed]),
            placement=np.concatenate([self.placement, np.full(len(ids_new), method)]), fingerprint=fp,
        )

    def place_knn(self, X: np.ndarray) -> np.ndarray:
        """Positions for new rows: inverse-distance-weighted mean of their nearest fitted items' positions."""
        Z = self._input_space(as_matrix(X))
        dist, idx = search_knn(Z, self.reference, self.config.placement_k, ann_min_pairs=self.ann_min_pairs)
        # An exact duplicate of a fitted item should land on it, not near it.
        w = 1.0 / np.maximum(dist.astype(np.float64), 1e-9)
        w /= w.sum(axis=1, keepdims=True)
        return np.einsum("nk,nkd->nd", w, self.coords[: self.n_fit][idx].astype(np.float64)).astype(np.float32)

    def refit(self, X: np.ndarray, ids: Sequence[str], *, config: MapConfig | None = None,
              fingerprint: str | None = None) -> "LatentMap":
        """Fit a new map on ``X`` and align it to this one so the picture does not flip or rotate.

        The similarity transform (rotation or reflection, uniform scale, shift) is fitted by
        orthogonal Procrustes on the ids present in both maps. Items absent from ``ids``
        leave the map. Use this when the data changed a lot; :meth:`extend` otherwise.
        """
        fresh = fit_map(X, ids, config=config or self.config, model_key=self.model_key, fingerprint=fingerprint)
        shared = pd.Index(fresh.ids).intersection(pd.Index(self.ids))
        if len(shared) < 3:
            return fresh
        align = align_procrustes(fresh.coords_for(shared), self.coords_for(shared))
        return replace(fresh, coords=align.apply(fresh.coords), alignment=fresh.alignment.then(align))

    def restore_projector(self, X: np.ndarray, ids: Sequence[str]) -> "LatentMap":
        """Re-create the UMAP model after a restart by refitting it on the originally fitted items.

        UMAP with a fixed ``random_state`` is deterministic, so on the same machine and
        library versions the refit reproduces the saved coordinates bitwise (measured); where
        it does not (another BLAS, another version), the refit is aligned to the saved
        positions by Procrustes, so later ``"umap"`` placements land in this map's frame.
        Either way no coordinate on the map changes.

        Parameters
        ----------
        X
            Embeddings including every fitted item (``ids[:n_fit]`` of this map); other rows
            are ignored.
        ids
            Item ids of the rows of ``X``.

        Raises
        ------
        KeyError
            If some fitted items are missing from ``ids``.
        """
        X = as_matrix(X)
        pos = pd.Index(np.asarray(list(ids), dtype=str)).get_indexer(self.ids[: self.n_fit])
        if (pos < 0).any():
            raise KeyError(f"{int((pos < 0).sum())} fitted items are missing, e.g. "
                           f"{self.ids[: self.n_fit][pos < 0][:3].tolist()}; the model cannot be restored")
        projector = self.config.projector(sampled=self.sampled_fit).fit(X[pos])
        target = self.coords[: self.n_fit]
        align = self.alignment
        if not np.array_equal(align.apply(projector.embedding_), target):
            align = align_procrustes(projector.embedding_, target)
        return replace(self, projector=projector, alignment=align)

    def _input_space(self, X: np.ndarray) -> np.ndarray:
        base = unit_rows(X) if self.config.metric == "cosine" else X
        return base if self.pca_mean is None else pca_transform(base, self.pca_mean, self.pca_components)

    # ------------------------------------------------------------------ persistence
    def save(self, path: Path | str) -> Path:
        """Write the map to an ``.npz`` file (no pickle) atomically; the UMAP model is not saved.

        Saved: ids, coordinates, placements, config, model key, fingerprints, the PCA axes and
        the fitted items' reduced vectors. That is enough to draw the map and to add items by
        kNN placement after a restart; :meth:`restore_projector` brings back UMAP transforms.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"format": MAP_FORMAT, "model_key": self.model_key, "fingerprint": self.fingerprint,
                "fit_fingerprint": self.fit_fingerprint, "n_fit": self.n_fit, "config": asdict(self.config),
                "sampled_fit": self.sampled_fit}
        empty = np.zeros((0, 0), np.float32)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, meta=np.array(json.dumps(meta)), ids=self.ids.astype(str), coords=self.coords,
                         placement=self.placement.astype(str), reference=self.reference,
                         pca_mean=empty if self.pca_mean is None else self.pca_mean,
                         pca_components=empty if self.pca_components is None else self.pca_components,
                         alignment=self.alignment.to_array())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    @classmethod
    def load(cls, path: Path | str) -> "LatentMap":
        """Read a map written by :meth:`save` (without the UMAP model: see :meth:`restore_projector`)."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                if meta.get("format") != MAP_FORMAT:
                    raise AddeError(f"{path}: map format {meta.get('format')!r}, expected {MAP_FORMAT}")
                arrays = {k: z[k] for k in ("ids", "coords", "placement", "reference", "pca_mean", "pca_components",
                                            "alignment")}
        except (OSError, KeyError, json.JSONDecodeError, ValueError) as exc:
            raise AddeError(f"{path}: not a readable ADDE map ({exc})") from exc
        has_pca = arrays["pca_mean"].size > 0
        return cls(ids=arrays["ids"], coords=arrays["coords"], placement=arrays["placement"],
                   model_key=meta["model_key"], fingerprint=meta["fingerprint"],
                   fit_fingerprint=meta["fit_fingerprint"], config=MapConfig(**meta["config"]), n_fit=meta["n_fit"],
                   reference=arrays["reference"], pca_mean=arrays["pca_mean"] if has_pca else None,
                   pca_components=arrays["pca_components"] if has_pca else None,
                   alignment=Alignment.from_array(arrays["alignment"]), sampled_fit=bool(meta.get("sampled_fit", False)))


def _chain_fingerprint(previous: str, added: str) -> str:
    return hashlib.blake2b(f"{previous}+{added}".encode(), digest_size=20).hexdigest()


def fit_map(X: np.ndarray, ids: Sequence[str], *, config: MapConfig = MapConfig(), model_key: str = "",
            fingerprint: str | None = None, max_fit: int | None = MAP_FIT_MAX,
            ann_min_pairs: int | None = ANN_MIN_PAIRS) -> LatentMap:
    """Fit the 2-D latent map.

    Parameters
    ----------
    X
        Embeddings (n, d), rows aligned with ``ids``.
    ids
        Unique item ids.
    config
        Map settings.
    model_key
        The embedding model's key (recorded on the map).
    fingerprint
        The data fingerprint (e.g. the store's); computed from ``ids`` and ``X`` when omitted.

    Returns
    -------
    LatentMap
        With the fitted UMAP model in memory.
    """
    X = as_matrix(X)
    ids = np.asarray(list(ids), dtype=str)
    if len(ids) != len(X):
        raise AddeError(f"{len(ids)} ids but {len(X)} rows in X")
    if pd.Index(ids).has_duplicates:
        raise AddeError(f"duplicate ids, e.g. {pd.Index(ids)[pd.Index(ids).duplicated()][:3].tolist()}")
    fp = fingerprint or array_fingerprint(ids, X)
    sample = fit_sample(len(X), max_fit, config.random_state)
    if sample is None:
        return _fitted_map(X, ids, config, model_key, fp, ann_min_pairs, sampled=False)
    # Sampled fit: the sample is a map of its own (rows [:n_fit]), and the rest join it the way
    # later items do, by kNN placement, so nothing downstream needs to know the map was sampled.
    rest = np.ones(len(X), dtype=bool)
    rest[sample] = False
    fitted = _fitted_map(X[sample], ids[sample], config, model_key, array_fingerprint(ids[sample], X[sample]),
                         ann_min_pairs, sampled=True)
    return fitted.extend(X[rest], ids[rest], method="knn", fingerprint=fp)


def _fitted_map(X: np.ndarray, ids: np.ndarray, config: MapConfig, model_key: str, fingerprint: str,
                ann_min_pairs: int | None, *, sampled: bool) -> LatentMap:
    """A map fitted on every row of ``X`` (``sampled``: the rows are a sample of the items)."""
    projector = config.projector(sampled=sampled).fit(X)
    return LatentMap(ids=ids, coords=projector.embedding_.copy(), placement=np.full(len(ids), "fit"),
                     model_key=model_key, fingerprint=fingerprint, fit_fingerprint=fingerprint, config=config,
                     n_fit=len(ids), reference=projector.reference_, pca_mean=projector.pca_mean_,
                     pca_components=projector.pca_components_, projector=projector, ann_min_pairs=ann_min_pairs,
                     sampled_fit=sampled)
