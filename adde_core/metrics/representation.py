"""Subgroup representation: how each group's share of the dataset compares with a target share."""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from adde_core.errors import AddeError
from adde_core.metrics._validation import as_labels

if TYPE_CHECKING:  # pandas is imported lazily by to_frame()
    import pandas as pd

__all__ = ["SubgroupRepresentation", "subgroup_representation"]


@dataclass(frozen=True)
class SubgroupRepresentation:
    """Per-group representation of a dataset against a target distribution.

    Per-group arrays are aligned with ``groups``; :meth:`to_frame` gives them as a pandas DataFrame.

    Attributes
    ----------
    groups : tuple
        Group labels: observed groups and groups named by the target, sorted.
    counts : numpy.ndarray of int
        Items per group (0 for a target group absent from the data).
    shares : numpy.ndarray of float
        counts / total.
    target_shares : numpy.ndarray of float
        The target distribution (sums to 1).
    ratios : numpy.ndarray of float
        shares / target_shares: 1 is on target, < 1 under-represented. inf for a group present in the
        data but with target share 0.
    tv_distance : float
        Total-variation distance ½ Σ |share - target share|, in [0, 1]: the fraction of items that would
        have to change group to hit the target.
    min_ratio : float
        Smallest ratio among groups with a positive target share (0 if such a group is missing).
    worst_group : Hashable
        The group with ``min_ratio``.
    n_total : int
        Number of items.
    """

    groups: tuple[Hashable, ...]
    counts: np.ndarray
    shares: np.ndarray
    target_shares: np.ndarray
    ratios: np.ndarray
    tv_distance: float
    min_ratio: float
    worst_group: Hashable
    n_total: int

    def to_frame(self) -> pd.DataFrame:
        """Table indexed by group with columns count, share, target_share, ratio."""
        import pandas as pd

        return pd.DataFrame(
            {"count": self.counts, "share": self.shares, "target_share": self.target_shares, "ratio": self.ratios},
            index=pd.Index(list(self.groups), name="group"),
        )


def _sorted(keys: set) -> list:
    try:
        return sorted(keys)
    except TypeError:  # mixed types, e.g. ints and strings
        return sorted(keys, key=lambda v: (type(v).__name__, str(v)))


def _as_python(v: object) -> Hashable:
    return v.item() if isinstance(v, np.generic) else v


def subgroup_representation(
    groups: ArrayLike, target: Mapping[Hashable, float] | None = None
) -> SubgroupRepresentation:
    """Compare each subgroup's share of the dataset with a target share.

    What this number means: ``ratio`` per group says how many times its target share the group gets
    (1 = on target, 0.5 = half as many as it should); ``tv_distance`` sums the imbalance into one number.

    Parameters
    ----------
    groups : array-like of shape (n,)
        Group label per item (e.g. a sensitive attribute or a class). Missing values are rejected.
    target : mapping group -> share, optional
        Desired distribution; non-negative weights, normalised to sum to 1. Groups it names that are
        absent from the data get count 0. Default: uniform over the observed groups.

    Returns
    -------
    SubgroupRepresentation
    """
    lab = as_labels(groups, "groups")
    values, counts = np.unique(lab, return_counts=True)
    observed = {_as_python(v): int(c) for v, c in zip(values, counts)}
    if target is None:
        tgt = {g: 1.0 for g in observed}
    else:
        if not isinstance(target, Mapping) or not target:
            raise AddeError("target must be a non-empty mapping from group to share")
        tgt = {}
        for g, w in target.items():
            if isinstance(w, bool) or not isinstance(w, numbers.Real) or not math.isfinite(w) or w < 0:
                raise AddeError(f"target share for group {g!r} must be a finite number >= 0, got {w!r}")
            tgt[_as_python(g)] = float(w)
        if sum(tgt.values()) <= 0:
            raise AddeError("target shares must not all be 0")
    names = _sorted(set(observed) | set(tgt))
    n = int(lab.shape[0])
    cnt = np.array([observed.get(g, 0) for g in names], dtype=np.int64)
    share = cnt / n
    t = np.array([tgt.get(g, 0.0) for g in names], dtype=np.float64)
    t = t / t.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(t > 0, share / np.where(t > 0, t, 1.0), np.where(share > 0, np.inf, np.nan))
    positive = np.flatnonzero(t > 0)
    worst = int(positive[np.argmin(ratio[positive])])
    return SubgroupRepresentation(
        groups=tuple(names),
        counts=cnt,
        shares=share,
        target_shares=t,
        ratios=ratio,
        tv_distance=float(0.5 * np.abs(share - t).sum()),
        min_ratio=float(ratio[worst]),
        worst_group=names[worst],
        n_total=n,
    )
