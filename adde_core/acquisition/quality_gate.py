"""Quality gate for generated candidates: keep those that land in the target region, look like their label, and are new.

The checks run in a fixed order and each rejected candidate reports the first one
it fails:

1. ``off_target``: cosine distance to the region centroid is above
   ``radius * config.slack``. Checked first because a sample that landed elsewhere
   does not fill the gap, whatever else is true of it.
2. ``label_disagrees``: the current model's most probable class is not the
   intended label, or its probability for that label is below
   ``config.min_confidence``. A label the model does not know counts as
   disagreement (the model cannot vouch for it).
3. ``near_duplicate``: cosine similarity to an existing item (``reference_vectors``)
   is at least ``config.dup_threshold``, or to a candidate of the same batch that was
   already kept. Candidates are considered best ``gate_score`` first, so of a group of
   near-identical samples the best one is kept.

``gate_score`` in [0, 1] is the weighted geometric mean
``proximity ** w * confidence ** (1 - w)`` with ``w = config.proximity_weight``,
``proximity = clip(1 - distance / (radius * slack), 0, 1)`` (1 at the centroid, 0 at
the gate's edge) and ``confidence`` the model's probability of the intended label.
A geometric mean is 0 when either part is 0, so a sample cannot make up for being
off target with confidence, or the reverse. Without ``probs`` the score is the
proximity and the label check is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from adde_core.errors import AddeError

REASONS = ("kept", "off_target", "label_disagrees", "near_duplicate")
"""Every reason a candidate can get, in report order."""


@dataclass(frozen=True)
class GateConfig:
    """Thresholds of the quality gate.

    Attributes
    ----------
    slack : float, default 1.25
        A candidate is on target within ``radius * slack`` of the centroid (cosine
        distance); above 1 admits samples just outside the members' spread.
    min_confidence : float, default 0.5
        Least probability the current model must give the intended label.
    dup_threshold : float, default 0.98
        Cosine similarity at or above which a candidate duplicates an existing item
        or an already-kept candidate.
    proximity_weight : float, default 0.5
        Exponent ``w`` of proximity in ``gate_score`` (confidence gets ``1 - w``).
    """

    slack: float = 1.25
    min_confidence: float = 0.5
    dup_threshold: float = 0.98
    proximity_weight: float = 0.5

    def __post_init__(self) -> None:
        if not (isinstance(self.slack, (int, float)) and 0 < self.slack < np.inf):
            raise AddeError(f"slack must be a positive number, got {self.slack!r}")
        if not (isinstance(self.min_confidence, (int, float)) and 0 <= self.min_confidence <= 1):
            raise AddeError(f"min_confidence must be in [0, 1], got {self.min_confidence!r}")
        if not (isinstance(self.dup_threshold, (int, float)) and -1 < self.dup_threshold <= 1):
            raise AddeError(f"dup_threshold must be in (-1, 1], got {self.dup_threshold!r}")
        if not (isinstance(self.proximity_weight, (int, float)) and 0 <= self.proximity_weight <= 1):
            raise AddeError(f"proximity_weight must be in [0, 1], got {self.proximity_weight!r}")


@dataclass(frozen=True, eq=False)
class GateReport:
    """What the gate decided for each candidate, and why.

    Attributes
    ----------
    kept : ndarray of bool (n,)
    reasons : ndarray of str (n,)
        One of :data:`REASONS` per candidate (the first check it failed, or "kept").
    gate_score : ndarray (n,)
        In [0, 1]; see the module docstring. Computed for every candidate.
    distance : ndarray (n,)
        Cosine distance to the centroid.
    confidence : ndarray (n,)
        Model probability of the intended label (NaN without ``probs``).
    max_reference_similarity : ndarray (n,)
        Highest cosine similarity to an existing item (NaN without references).
    duplicate_of : ndarray of int (n,)
        For batch duplicates, the index of the kept candidate it repeats; -1 otherwise.
    radius : float
        The region radius used (before slack).
    config : GateConfig
    """

    kept: np.ndarray
    reasons: np.ndarray
    gate_score: np.ndarray
    distance: np.ndarray
    confidence: np.ndarray
    max_reference_similarity: np.ndarray
    duplicate_of: np.ndarray
    radius: float
    config: GateConfig = field(default_factory=GateConfig)

    def __len__(self) -> int:
        return len(self.kept)

    @property
    def n_kept(self) -> int:
        return int(self.kept.sum())

    @property
    def kept_indices(self) -> np.ndarray:
        """Indices of kept candidates, best ``gate_score`` first."""
        idx = np.flatnonzero(self.kept)
        return idx[np.argsort(-self.gate_score[idx], kind="stable")]

    def summary(self) -> dict[str, int]:
        """Count of candidates per reason (every reason listed, zeros included); the counts sum to ``len(self)``."""
        return {reason: int((self.reasons == reason).sum()) for reason in REASONS}


def cosine_distance_to(vectors: np.ndarray, centroid: np.ndarray) -> np.ndarray:
    """Cosine distance ``1 - cos`` of each row to a centroid (which need not be unit length).

    Parameters
    ----------
    vectors : ndarray (n, d)
    centroid : ndarray (d,)

    Returns
    -------
    numpy.ndarray
        float64 array (n,), in [0, 2].
    """
    v = _unit(_matrix(vectors, "vectors"))
    c = np.asarray(centroid, dtype=np.float64).ravel()
    if c.shape[0] != v.shape[1]:
        raise AddeError(f"centroid has {c.shape[0]} dimensions but the vectors have {v.shape[1]}.")
    norm = np.linalg.norm(c)
    if not norm > 0:
        raise AddeError("The region centroid is the zero vector; its cosine distances are undefined.")
    return np.clip(1.0 - v @ (c / norm), 0.0, 2.0)


def region_radius(member_vectors: np.ndarray, centroid: np.ndarray, *, quantile: float = 0.9,
                  min_radius: float = 0.0) -> float:
    """Radius of a region: a high quantile of its members' cosine distances to the centroid.

    The 0.9 quantile covers the bulk of the members while ignoring the few farthest
    ones, so a single stray member does not widen the gate. A region with one member
    has radius 0; pass ``min_radius`` (for instance the dataset's median
    nearest-neighbour distance) to give such regions room.

    Parameters
    ----------
    member_vectors : ndarray (m, d)
        Embeddings of the region's members, same space as the candidates.
    centroid : ndarray (d,)
    quantile : float, default 0.9
    min_radius : float, default 0.0

    Returns
    -------
    float
    """
    if not 0 <= quantile <= 1:
        raise AddeError(f"quantile must be in [0, 1], got {quantile!r}.")
    distances = cosine_distance_to(member_vectors, centroid)
    if distances.size == 0:
        raise AddeError("The region has no member vectors to measure its radius from.")
    return float(max(np.quantile(distances, quantile), min_radius))


def gate_candidates(vectors: np.ndarray, intended_labels: Sequence[str], *, centroid: np.ndarray, radius: float,
                    reference_vectors: np.ndarray | None = None, probs: np.ndarray | None = None,
                    classes: Sequence[str] | None = None, config: GateConfig = GateConfig()) -> GateReport:
    """Decide which generated candidates to keep (see the module docstring for the rules).

    Parameters
    ----------
    vectors : ndarray (n, d)
        Embeddings of the candidates, in the space of ``centroid``.
    intended_labels : sequence of str (n,)
        The label each candidate was generated to show.
    centroid : ndarray (d,)
        The target region's centroid.
    radius : float
        The region radius in cosine distance, e.g. from :func:`region_radius`.
    reference_vectors : ndarray (m, d), optional
        Existing items (the dataset, and the pool if wanted) to check for duplicates.
    probs : ndarray (n, k), optional
        The current model's class probabilities for the candidates, columns in
        ``classes`` order. Without it the label check is skipped.
    classes : sequence of str (k,), optional
        Required with ``probs``.
    config : GateConfig

    Returns
    -------
    GateReport

    Raises
    ------
    AddeError
        For mismatched shapes or lengths.
    """
    V = _unit(_matrix(vectors, "vectors"))
    n = V.shape[0]
    labels = [str(x) for x in intended_labels]
    if len(labels) != n:
        raise AddeError(f"{n} candidate vectors but {len(labels)} intended labels.")
    if not (isinstance(radius, (int, float, np.floating)) and radius >= 0 and np.isfinite(radius)):
        raise AddeError(f"radius must be a non-negative finite number, got {radius!r}.")
    distance = cosine_distance_to(V, centroid)
    limit = float(radius) * config.slack
    proximity = np.clip(1.0 - distance / limit, 0.0, 1.0) if limit > 0 else (distance <= 0).astype(float)
    on_target = distance <= limit

    if probs is not None:
        P = _matrix(probs, "probs")
        if classes is None or P.shape != (n, len(classes)):
            raise AddeError(f"probs has shape {P.shape}; it needs one row per candidate ({n}) and one column per "
                            f"class in `classes` ({'missing' if classes is None else len(classes)}).")
        col = {str(c): j for j, c in enumerate(classes)}
        j = np.array([col.get(lab, -1) for lab in labels], dtype=np.int64)
        confidence = np.where(j >= 0, P[np.arange(n), np.maximum(j, 0)], 0.0)
        agrees = (j >= 0) & (P.argmax(axis=1) == j) & (confidence >= config.min_confidence)
        w = config.proximity_weight
        score = proximity ** w * np.clip(confidence, 0.0, 1.0) ** (1.0 - w)
    else:
        confidence = np.full(n, np.nan)
        agrees = np.ones(n, dtype=bool)
        score = proximity

    max_ref = np.full(n, np.nan)
    if reference_vectors is not None and len(reference_vectors):
        R = _unit(_matrix(reference_vectors, "reference_vectors"))
        if R.shape[1] != V.shape[1]:
            raise AddeError(f"reference_vectors have {R.shape[1]} dimensions but the candidates have {V.shape[1]}.")
        # Chunked so 10^5 references never need an n x m matrix at once.
        for s in range(0, n, 256):
            max_ref[s: s + 256] = (V[s: s + 256] @ R.T).max(axis=1)
    dup_existing = np.nan_to_num(max_ref, nan=-np.inf) >= config.dup_threshold

    reasons = np.full(n, "kept", dtype=object)
    reasons[~on_target] = "off_target"
    reasons[on_target & ~agrees] = "label_disagrees"
    reasons[(reasons == "kept") & dup_existing] = "near_duplicate"
    duplicate_of = np.full(n, -1, dtype=np.int64)
    kept_rows: list[int] = []
    for i in np.argsort(-score, kind="stable"):
        if reasons[i] != "kept":
            continue
        if kept_rows:
            sims = V[kept_rows] @ V[i]
            best = int(np.argmax(sims))
            if sims[best] >= config.dup_threshold:
                reasons[i] = "near_duplicate"
                duplicate_of[i] = kept_rows[best]
                continue
        kept_rows.append(int(i))
    reasons = reasons.astype(str)
    return GateReport(kept=reasons == "kept", reasons=reasons, gate_score=score.astype(np.float64),
                      distance=distance, confidence=confidence, max_reference_similarity=max_ref,
                      duplicate_of=duplicate_of, radius=float(radius), config=config)


def _matrix(X: np.ndarray, name: str) -> np.ndarray:
    A = np.asarray(X, dtype=np.float64)
    if A.ndim != 2:
        raise AddeError(f"{name} must be a 2-D array (rows are items), got shape {A.shape}.")
    if not np.all(np.isfinite(A)):
        raise AddeError(f"{name} contains NaN or infinite values.")
    return A


def _unit(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)
