"""Input checks and small numeric helpers shared by the diversity metrics, so they all behave the same way."""

from __future__ import annotations

import math
import numbers
from typing import Union

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike

from adde_core.errors import AddeError


RandomState = Union[None, int, np.random.Generator, np.random.RandomState]


def as_matrix(X: ArrayLike, name: str = "X", *, min_rows: int = 1, check_finite: bool = True) -> np.ndarray:
    """Return ``X`` as a 2-D float array (float32 kept, everything else float64), or raise ValueError."""
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists and the like
        raise AddeError(f"{name} must be a 2-D numeric array (n_samples, n_features): {exc}") from exc
    if arr.dtype.kind not in "biuf":
        raise AddeError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise AddeError(f"{name} must be 2-D (n_samples, n_features), got shape {arr.shape}")
    if arr.shape[1] < 1:
        raise AddeError(f"{name} must have at least one feature column, got shape {arr.shape}")
    if arr.shape[0] < min_rows:
        raise AddeError(f"{name} needs at least {min_rows} row(s), got {arr.shape[0]}")
    if arr.dtype != np.float32:
        arr = arr.astype(np.float64, copy=False)
    if check_finite:
        check_all_finite(arr, name)
    return arr


def check_all_finite(arr: np.ndarray, name: str, row_offset: int = 0) -> None:
    """Raise ValueError naming the first row of ``arr`` that holds NaN or inf."""
    if arr.size and not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr).reshape(arr.shape[0], -1).all(axis=1))[0]
        raise AddeError(f"{name} contains NaN or inf (first at row {int(bad) + row_offset})")


def check_q(q: float) -> float:
    """Validate a Vendi/Renyi order: a real number with 0 < q <= inf."""
    if isinstance(q, str) and q.strip().lower() in {"inf", "infinity"}:
        return math.inf  # the reference package spells infinity "inf"
    if isinstance(q, bool) or not isinstance(q, numbers.Real):
        raise AddeError(f"q must be a real number with 0 < q <= inf, got {q!r}")
    q = float(q)
    if math.isnan(q) or q <= 0:
        raise AddeError(f"q must satisfy 0 < q <= inf, got {q!r}")
    return q


def check_positive_int(value: int, name: str, *, minimum: int = 1) -> int:
    """Validate an integer parameter such as ``k`` or ``n_samples``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise AddeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise AddeError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def as_rng(random_state: RandomState) -> np.random.Generator:
    """Turn ``None``, an int seed, a Generator or a legacy RandomState into a Generator."""
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**32 - 1, dtype=np.uint64))
    if random_state is None or isinstance(random_state, (numbers.Integral, np.random.Generator)):
        return np.random.default_rng(random_state)
    raise AddeError(f"random_state must be None, an int or a numpy Generator, got {random_state!r}")


def as_labels(labels: ArrayLike, name: str = "labels", *, n: int | None = None) -> np.ndarray:
    """Return 1-D labels, rejecting empty input, missing values (None/NaN) and a length mismatch."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise AddeError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise AddeError(f"{name} is empty")
    if n is not None and arr.shape[0] != n:
        raise AddeError(f"{name} has {arr.shape[0]} entries but the data has {n} rows")
    if arr.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise AddeError(f"{name} contains NaN or inf (first at index {int(bad[0])})")
    elif arr.dtype.kind == "O":
        for i, v in enumerate(arr):
            if v is None or (isinstance(v, float) and math.isnan(v)):
                raise AddeError(f"{name} contains a missing value (first at index {i})")
    return arr


def noise_mask(labels: np.ndarray, noise_label: object) -> np.ndarray:
    """Boolean mask of entries equal to ``noise_label`` (HDBSCAN uses -1); all False if types differ."""
    if noise_label is None:
        return np.zeros(labels.shape[0], dtype=bool)
    if labels.dtype.kind in "biuf":
        if isinstance(noise_label, numbers.Real) and not isinstance(noise_label, bool):
            return labels == noise_label
        return np.zeros(labels.shape[0], dtype=bool)
    return np.fromiter((v == noise_label for v in labels.tolist()), dtype=bool, count=labels.shape[0])


def eigh_small(G: np.ndarray, *, eigvals_only: bool = True) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of a symmetric matrix, run on one BLAS thread when it has <= 1024 rows.

    Multi-threaded OpenBLAS eigensolvers gain nothing at this size on an idle machine, yet take ~100x
    longer (seconds instead of ~15 ms for 512x512) when the cores are shared with another busy process.
    """
    if G.shape[0] > 1024:
        return scipy.linalg.eigh(G, eigvals_only=eigvals_only, check_finite=False)
    try:
        from threadpoolctl import threadpool_limits  # ships with scikit-learn
    except ImportError:  # pragma: no cover
        return scipy.linalg.eigh(G, eigvals_only=eigvals_only, check_finite=False)
    with threadpool_limits(limits=1, user_api="blas"):
        return scipy.linalg.eigh(G, eigvals_only=eigvals_only, check_finite=False)
