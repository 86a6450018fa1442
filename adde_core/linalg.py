"""Small vector helpers shared across packages (numpy only)."""

from __future__ import annotations

import hashlib

import numpy as np


def unit_rows(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, as C-contiguous float32; all-zero rows stay zero instead of NaN."""
    X = np.asarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=-1, keepdims=True)
    return np.ascontiguousarray(np.divide(X, norms, out=np.zeros_like(X), where=norms > 0))


def row_digests(X: np.ndarray) -> list[bytes]:
    """A 128-bit digest of each row's bytes: equal rows, and only equal rows, share one.

    What content-keyed reuse keys on (e.g. the pool's similarity matrix from one round to the
    next): a row found among earlier digests holds exactly the vector that was seen before.
    """
    X = np.ascontiguousarray(X)
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in X]
