"""The validated input of candidate ranking: candidate embeddings, head probabilities, quality, labelled set."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from adde_core.errors import AddeError

__all__ = ["RankingInput"]

# Softmax outputs stored as float32 sum to 1 within ~1e-6; 1e-3 still catches logits or
# unnormalised scores passed by mistake.
_PROB_SUM_TOL = 1e-3


@dataclass(frozen=True, eq=False)
class RankingInput:
    """Everything the ranking strategies read, checked once in ``__post_init__``.

    Attributes
    ----------
    ids : sequence of str
        Candidate ids (unique); rows of every per-candidate array follow this order.
        Stored as a tuple.
    vectors : array-like (n, d)
        Candidate embeddings. Stored as float32; rows must be finite and non-zero because
        the diversity term uses cosine distances.
    probs : array-like (n, k) or None
        The current head's class probabilities for each candidate (k >= 2, rows sum to 1).
        None before a head exists: uncertainty is then unknown (U = 0) and the ``margin``
        and ``entropy`` strategies refuse to run.
    quality : array-like (n,) or None
        Quality scores in [0, 1] from the quality gate. None means 1 for every candidate;
        NaN entries also mean 1 (pool items are real images and have no gate score).
    labelled_vectors : array-like (m, d) or None
        Embeddings of the current labelled dataset D_t (m may be 0; None means none).
    region_centroid : array-like (d,) or None
        Centroid of the sparse region the candidates were acquired for, if any.
    sources : sequence of str or None
        Where each candidate came from (e.g. ``"pool"``, ``"generated"``); copied to the
        result, not used in the score.
    labelled_labels : sequence of str or None
        Class label of each labelled item (one per row of ``labelled_vectors``). Optional:
        only ``probcover`` reads it, to set its number of k-means clusters to the number of
        classes seen; without it that number comes from the columns of ``probs`` (or is 2).
        Stored as a tuple.
    importance : array-like (n,) or None
        Non-negative weight of each candidate as a point to be *covered* by the herding
        strategies (``maxherding``, ``uherding``): UHerding's uncertainty weight is multiplied
        by it. ADDE passes ``1 + λ × local val error`` so coverage goes where the model fails;
        None counts every candidate as 1 (the published methods).
    """

    ids: Sequence[str]
    vectors: np.ndarray
    probs: np.ndarray | None = None
    quality: np.ndarray | None = None
    labelled_vectors: np.ndarray | None = None
    region_centroid: np.ndarray | None = None
    sources: Sequence[str] | None = None
    labelled_labels: Sequence[str] | None = None
    importance: np.ndarray | None = None

    def __post_init__(self) -> None:
        ids = tuple(str(i) for i in self.ids)
        if len(set(ids)) != len(ids):
            dup = next(i for i, c in Counter(ids).items() if c > 1)
            raise AddeError(f"RankingInput.ids contains {dup!r} more than once: every candidate needs a unique id.")
        n = len(ids)
        vectors = _matrix(self.vectors, "vectors", rows=n, what="candidate embeddings")
        d = vectors.shape[1]
        _check_nonzero(vectors, "vectors")
        if self.labelled_vectors is None:
            labelled = np.zeros((0, d), dtype=np.float32)
        else:
            labelled = _matrix(self.labelled_vectors, "labelled_vectors", cols=d, what="labelled embeddings")
            _check_nonzero(labelled, "labelled_vectors")
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "vectors", vectors)
        object.__setattr__(self, "labelled_vectors", labelled)
        object.__setattr__(self, "probs", None if self.probs is None else _probs(self.probs, n))
        object.__setattr__(self, "quality", None if self.quality is None else _quality(self.quality, n))
        object.__setattr__(self, "importance", None if self.importance is None else _importance(self.importance, n))
        if self.region_centroid is not None:
            c = np.asarray(self.region_centroid, dtype=np.float64)
            if c.shape != (d,):
                raise AddeError(
                    f"RankingInput.region_centroid has shape {c.shape} but the embeddings have {d} dimensions: "
                    f"pass one vector of shape ({d},) in the same embedding space, or None."
                )
            if not np.isfinite(c).all() or not np.any(c):
                raise AddeError("RankingInput.region_centroid must be finite and non-zero (cosine needs a direction).")
            object.__setattr__(self, "region_centroid", c.astype(np.float32))
        if self.sources is not None:
            sources = tuple(str(s) for s in self.sources)
            if len(sources) != n:
                raise AddeError(
                    f"RankingInput.sources has {len(sources)} entries but there are {n} candidates (ids): "
                    "pass one source per candidate, or None."
                )
            object.__setattr__(self, "sources", sources)
        if self.labelled_labels is not None:
            labels = tuple(str(y) for y in self.labelled_labels)
            if len(labels) != labelled.shape[0]:
                raise AddeError(
                    f"RankingInput.labelled_labels has {len(labels)} entries but there are {labelled.shape[0]} "
                    "labelled_vectors: pass one label per labelled item, in the same order, or None."
                )
            object.__setattr__(self, "labelled_labels", labels)

    @property
    def n(self) -> int:
        """Number of candidates."""
        return len(self.ids)

    def fingerprint(self) -> str:
        """BLAKE2b fingerprint of every field, so a stored ranking can be checked against its inputs."""
        h = hashlib.blake2b(digest_size=20)
        h.update("\0".join(self.ids).encode())
        for name in ("vectors", "probs", "quality", "labelled_vectors", "region_centroid"):
            arr = getattr(self, name)
            h.update(name.encode())
            if arr is not None:
                arr = np.ascontiguousarray(arr)
                h.update(f"{arr.dtype.str}{arr.shape}".encode())
                h.update(arr.tobytes() if arr.size == 0 else memoryview(arr).cast("B"))
        if self.sources is not None:
            h.update("\0".join(self.sources).encode())
        if self.labelled_labels is not None:  # only when given, so fingerprints made before the field still match
            h.update(b"labelled_labels")
            h.update("\0".join(self.labelled_labels).encode())
        if self.importance is not None:  # likewise
            h.update(b"importance")
            h.update(np.ascontiguousarray(self.importance).tobytes())
        return h.hexdigest()


def _matrix(value: object, name: str, *, rows: int | None = None, cols: int | None = None, what: str) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise AddeError(f"RankingInput.{name} must be a 2-D numeric array of {what}: {exc}") from exc
    if arr.ndim != 2 or arr.dtype.kind not in "biuf":
        raise AddeError(
            f"RankingInput.{name} must be a 2-D numeric array (rows, dims) of {what}, got "
            f"shape {arr.shape} and dtype {arr.dtype}."
        )
    if rows is not None and arr.shape[0] != rows:
        raise AddeError(
            f"RankingInput.{name} has {arr.shape[0]} rows but there are {rows} candidates (ids): "
            "pass one row per candidate, in the same order as ids."
        )
    if arr.shape[1] < 1:
        raise AddeError(f"RankingInput.{name} has no columns (shape {arr.shape}).")
    if cols is not None and arr.shape[1] != cols:
        raise AddeError(
            f"RankingInput.{name} has {arr.shape[1]} dimensions but the candidate vectors have {cols}: "
            "both must come from the same embedding model."
        )
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise AddeError(f"RankingInput.{name} contains NaN or inf (first in row {bad}); re-embed that item.")
    return arr


def _check_nonzero(arr: np.ndarray, name: str) -> None:
    norms = np.einsum("ij,ij->i", arr, arr)
    if arr.shape[0] and not (norms > 0).all():
        bad = int(np.flatnonzero(~(norms > 0))[0])
        raise AddeError(
            f"RankingInput.{name} row {bad} is all zeros: cosine distance is undefined for it; re-embed that item."
        )


def _probs(value: object, n: int) -> np.ndarray:
    p = np.asarray(value)
    if p.ndim != 2 or p.dtype.kind not in "biuf":
        raise AddeError(
            f"RankingInput.probs must be a 2-D numeric array (candidates, classes), got shape {p.shape}: "
            "pass the head's softmax probabilities, one row per candidate."
        )
    if p.shape[0] != n:
        raise AddeError(
            f"RankingInput.probs has shape {p.shape} but there are {n} candidates (ids): "
            "pass one row of class probabilities per candidate, in the same order as ids."
        )
    p = p.astype(np.float64)
    if p.shape[1] < 2:
        raise AddeError(
            f"RankingInput.probs has {p.shape[1]} class column(s): uncertainty needs at least 2 classes."
        )
    bad_rows = ~np.isfinite(p).all(axis=1) | (p < -1e-9).any(axis=1) | (np.abs(p.sum(axis=1) - 1.0) > _PROB_SUM_TOL)
    if bad_rows.any():
        row = int(np.flatnonzero(bad_rows)[0])
        raise AddeError(
            f"RankingInput.probs row {row} is not a probability distribution (values {p[row][:5].round(4).tolist()}"
            f"{'...' if p.shape[1] > 5 else ''}, sum {p[row].sum():.4g}): pass softmax probabilities, not logits."
        )
    return np.clip(p, 0.0, 1.0)


def _quality(value: object, n: int) -> np.ndarray:
    q = np.asarray(value)
    if q.ndim != 1 or q.dtype.kind not in "biuf":
        raise AddeError(f"RankingInput.quality must be a 1-D numeric array with one score per candidate, got shape "
                        f"{q.shape} and dtype {q.dtype}.")
    if q.shape[0] != n:
        raise AddeError(
            f"RankingInput.quality has {q.shape[0]} entries but there are {n} candidates (ids): "
            "pass one score per candidate (NaN for pool items), or None."
        )
    q = q.astype(np.float64)
    out_of_range = ~np.isnan(q) & ~((q >= 0.0) & (q <= 1.0))
    if out_of_range.any():
        row = int(np.flatnonzero(out_of_range)[0])
        raise AddeError(f"RankingInput.quality row {row} is {q[row]!r}: quality scores must lie in [0, 1] "
                        "(NaN means 'no gate score' and counts as 1).")
    return np.where(np.isnan(q), 1.0, q)


def _importance(value: object, n: int) -> np.ndarray:
    w = np.asarray(value)
    if w.ndim != 1 or w.dtype.kind not in "biuf" or w.shape[0] != n:
        raise AddeError(f"RankingInput.importance must be a 1-D numeric array with one weight per candidate ({n}), "
                        f"got shape {w.shape} and dtype {w.dtype}.")
    w = w.astype(np.float64)
    if not np.isfinite(w).all() or (w < 0).any():
        row = int(np.flatnonzero(~np.isfinite(w) | (w < 0))[0])
        raise AddeError(f"RankingInput.importance row {row} is {w[row]!r}: coverage weights must be finite and >= 0.")
    return w
