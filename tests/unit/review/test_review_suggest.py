"""Suggested labels: the head when confident, the labelled neighbours' vote when it is weak, and always saying which."""

from __future__ import annotations

import numpy as np

from adde_core.review.suggest import SuggestionConfig, suggest_labels


def _case():
    # Three labelled cats near (0, 0), two dogs near (10, 0); two candidates next to the cats.
    labelled = np.array([[0, 0], [0.1, 0], [0, 0.1], [10, 0], [10.1, 0]], dtype=float)
    labels = np.array(["cat", "cat", "cat", "dog", "dog"], dtype=object)
    cands = np.array([[0.05, 0.05], [0.02, 0.0]])
    return labelled, labels, cands


def test_weak_head_defers_to_a_clear_neighbour_majority():
    labelled, labels, cands = _case()
    probs = np.array([[0.45, 0.55], [0.1, 0.9]])  # (cat, dog): unsure "dog", then a confident "dog"
    out = suggest_labels(["a", "b"], cands, probs, np.array(["cat", "dog"]), labelled, labels,
                         config=SuggestionConfig(k=5, min_confidence=0.6, min_share=0.6))
    a, b = out.set_index("item_id").loc["a"], out.set_index("item_id").loc["b"]
    assert (a["suggested_label"], a["basis"]) == ("cat", "neighbours")
    assert a["why"] == "3/5 nearest labelled are cat; the head is unsure (dog 55%)"
    assert a["knn_share"] == 0.6 and a["head_label"] == "dog"
    assert (b["suggested_label"], b["basis"]) == ("dog", "head")  # a confident head keeps its word...
    assert b["why"] == "head 90%; nearest labelled: 3/5 cat"  # ...and the disagreement is shown


def test_split_neighbours_leave_the_head_and_ties_go_to_the_nearest():
    labelled, labels, cands = _case()
    probs = np.array([[0.45, 0.55]])
    out = suggest_labels(["a"], cands[:1], probs, np.array(["cat", "dog"]), labelled, labels,
                         config=SuggestionConfig(k=5, min_confidence=0.6, min_share=0.8))
    assert out.loc[0, "basis"] == "head" and out.loc[0, "suggested_label"] == "dog"
    assert out.loc[0, "why"] == "head 55% (unsure); nearest labelled: 3/5 cat"
    tie = suggest_labels(["t"], np.array([[9.0, 0.0]]), np.array([[0.5, 0.5]]), np.array(["cat", "dog"]),
                         labelled[[0, 3]], labels[[0, 3]], config=SuggestionConfig(k=2, min_share=0.5))
    assert tie.loc[0, "knn_label"] == "dog" and tie.loc[0, "basis"] == "neighbours"


def test_no_labelled_items_means_the_head():
    out = suggest_labels(["a"], np.zeros((1, 2)), np.array([[0.3, 0.7]]), np.array(["x", "y"]),
                         np.zeros((0, 2)), np.array([], dtype=object))
    assert out.loc[0, "suggested_label"] == "y" and out.loc[0, "why"] == "head 70% (no labelled neighbours)"
