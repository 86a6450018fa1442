"""Small vector helpers shared across packages (numpy only)."""

from __future__ import annotations

import numpy as np


def unit_rows(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, as C-contiguous float32; all-zero rows stay zero instead of NaN."""
    X = np.asarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=-1, keepdims=True)
    return np.ascontiguousarray(np.divide(X, norms, out=np.zeros_like(X), where=norms > 0))
