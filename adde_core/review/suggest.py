"""The label a review card suggests: the head's when it is confident, else its labelled neighbours' vote.

A head trained on a few seed examples of a rare class is weak exactly where ADDE looks (the
sparse regions): for the demo's cat gap it suggests "dog" or "bear" for most retrieved cats.
The region's own evidence, the labels of the nearest labelled items in embedding space, is
then the better guess. Every suggestion says which evidence it used, so the reviewer can
weigh it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["SuggestionConfig", "suggest_labels"]


@dataclass(frozen=True)
class SuggestionConfig:
    """When the head counts as weak, and how many neighbours vote.

    Parameters
    ----------
    k
        Labelled neighbours that vote (fewer when fewer are labelled).
    min_confidence
        Below this top-class probability the head is weak and a clear neighbour majority wins.
    min_share
        The share of the ``k`` votes the neighbours' label needs to override a weak head.
    """

    k: int = 5
    min_confidence: float = 0.6
    min_share: float = 0.6


def _knn(labelled: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` nearest labelled rows per query (squared Euclidean; exact)."""
    d = (queries ** 2).sum(1)[:, None] - 2.0 * queries @ labelled.T + (labelled ** 2).sum(1)[None, :]
    k = min(k, labelled.shape[0])
    part = np.argpartition(d, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(d, part, axis=1).argsort(axis=1)
    return np.take_along_axis(part, order, axis=1)


def suggest_labels(ids: list[str], vectors: np.ndarray, probs: np.ndarray, classes: np.ndarray,
                   labelled_vectors: np.ndarray, labelled_labels: np.ndarray, *,
                   config: SuggestionConfig = SuggestionConfig()) -> pd.DataFrame:
    """A suggested label per candidate and the evidence behind it.

    Parameters
    ----------
    ids
        Candidate ids, aligned with ``vectors`` and ``probs``.
    vectors
        Candidate embeddings (n, d).
    probs
        The head's class probabilities for the candidates (n, n_classes), columns in ``classes`` order.
    classes
        The head's class labels.
    labelled_vectors, labelled_labels
        The labelled items that vote (D_t, or D_t ∪ D_valid), in the same embedding space.
    config
        Thresholds; see :class:`SuggestionConfig`.

    Returns
    -------
    DataFrame
        ``item_id, suggested_label, basis, head_label, head_confidence, knn_label, knn_share, why``;
        ``basis`` is ``"head"`` or ``"neighbours"``, and ``why`` says it in words.
    """
    probs = np.asarray(probs, dtype=float)
    head_idx = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=int)
    head_label = np.asarray(classes)[head_idx] if len(probs) else np.array([], dtype=object)
    head_conf = probs.max(axis=1) if len(probs) else np.zeros(0)
    n = len(ids)
    knn_label = np.full(n, None, dtype=object)
    knn_share = np.zeros(n)
    labelled_labels = np.asarray(labelled_labels, dtype=object)
    if n and len(labelled_labels):
        idx = _knn(np.asarray(labelled_vectors, dtype=np.float64), np.asarray(vectors, dtype=np.float64), config.k)
        for r, row in enumerate(idx):
            votes = pd.Series(labelled_labels[row]).value_counts(sort=False)
            # Ties go to the label of the nearest voter among the tied: the closest evidence decides.
            best = votes[votes == votes.max()].index
            winner = next(lab for lab in labelled_labels[row] if lab in set(best))
            knn_label[r], knn_share[r] = winner, votes[winner] / len(row)
    rows = []
    for r in range(n):
        k_used = min(config.k, len(labelled_labels))
        votes = int(round(knn_share[r] * k_used))
        weak = head_conf[r] < config.min_confidence
        if weak and knn_label[r] is not None and knn_share[r] >= config.min_share:
            label, basis = knn_label[r], "neighbours"
            why = (f"{votes}/{k_used} nearest labelled are {label}; the head is unsure "
                   f"({head_label[r]} {head_conf[r]:.0%})")
        else:
            label, basis = head_label[r], "head"
            if knn_label[r] is None:
                why = f"head {head_conf[r]:.0%} (no labelled neighbours)"
            elif knn_label[r] == label and knn_share[r] >= config.min_share:
                why = f"head {head_conf[r]:.0%}; {votes}/{k_used} nearest labelled agree"
            else:
                why = (f"head {head_conf[r]:.0%}" + (" (unsure)" if weak else "")
                       + f"; nearest labelled: {votes}/{k_used} {knn_label[r]}")
        rows.append({"item_id": str(ids[r]), "suggested_label": str(label), "basis": basis,
                     "head_label": str(head_label[r]), "head_confidence": float(head_conf[r]),
                     "knn_label": knn_label[r], "knn_share": float(knn_share[r]), "why": why})
    return pd.DataFrame(rows, columns=["item_id", "suggested_label", "basis", "head_label", "head_confidence",
                                       "knn_label", "knn_share", "why"])
