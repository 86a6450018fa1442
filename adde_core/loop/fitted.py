"""Fitted heads and reference spaces kept with a project as plain arrays (npz, never pickles), so a restart refits nothing.

A new server process used to fit f_θ's head (and import torch to do it) and the reference
space (PCA-50 plus k-means on every real item) before it could draw Explore: most of a minute on
2 cores. Both are pure functions of their inputs, so they are stored next to the persisted
analysis, one file per kind and embedding space::

    analysis/<model>/fitted-head.npz        keyed by D_t's fingerprint (ids, labels, embeddings) and the seed
    analysis/<model>/fitted-reference.npz   keyed by the reference population's fingerprint

Each file records the key it was fitted for; a file for another key (D_t changed, items were
added, another format) is ignored and overwritten by the next fit, never silently reused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from adde_core.analysis.persist import STORE_FORMAT, read_npz, write_npz

__all__ = ["FITTED_FORMAT", "FittedStore"]

#: Bumped whenever what a kind's arrays mean changes (e.g. the head's optimiser), so old files are refitted.
FITTED_FORMAT = 1


class FittedStore:
    """One npz file per kind in a folder, each holding the key it was fitted for.

    Parameters
    ----------
    root : Path
        The folder (``<project>/analysis/<model>``); created on the first save.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path(self, kind: str) -> Path:
        """Where ``kind``'s arrays are kept."""
        return self.root / f"fitted-{kind}.npz"

    def load(self, kind: str, key: str) -> dict[str, np.ndarray] | None:
        """The arrays saved for ``key``, or None when there are none for it (missing, stale or unreadable)."""
        z = read_npz(self.path(kind))
        if z is None:
            return None
        meta = z.pop("meta")
        if meta.get("key") != key or meta.get("fitted_format") != FITTED_FORMAT:  # type: ignore[union-attr]
            return None
        return z

    def save(self, kind: str, key: str, arrays: Mapping[str, np.ndarray]) -> None:
        """Store ``arrays`` as ``kind``'s, fitted for ``key`` (atomically: a reader sees the old or the new file).

        A folder that cannot be written (read-only checkout) only costs the next process a refit.
        """
        meta = {"format": STORE_FORMAT, "fitted_format": FITTED_FORMAT, "key": key}
        try:
            write_npz(self.path(kind), meta=np.array(json.dumps(meta)), **dict(arrays))
        except OSError:
            pass
