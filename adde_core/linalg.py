"""Small vector helpers shared across packages (numpy only)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from typing import Any

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


class KeptByRows:
    """The last value computed from some rows, with their digests, so a later call on rows it saw can reuse it.

    Between two loop rounds the pool only loses the items just labelled, so what was computed per
    pool row (a similarity matrix, nearest neighbours) holds for every row of the next pool.
    :meth:`find` gives the rows of the kept value for the asked rows (by :func:`row_digests`,
    in the asked order) when every asked row was seen under the same ``tag`` (what else the value
    depends on, e.g. a digest of the val set); :meth:`keep` replaces the kept value. One value
    per instance; thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.last: tuple[bytes, dict[bytes, int], Any] | None = None

    def find(self, tag: bytes, digests: Sequence[bytes]) -> tuple[np.ndarray, Any] | None:
        """``(rows, value)``: the kept value and the row of each digest in it, or None when one is missing."""
        with self._lock:
            last = self.last
        if last is None or last[0] != tag:
            return None
        rows = [last[1].get(d) for d in digests]
        if None in rows:
            return None
        return np.asarray(rows, dtype=np.int64), last[2]

    def keep(self, tag: bytes, digests: Sequence[bytes], value: Any) -> None:
        """Keep ``value`` (computed from the rows of ``digests``, in that order) in place of the last one."""
        with self._lock:
            self.last = (tag, {d: i for i, d in enumerate(digests)}, value)
