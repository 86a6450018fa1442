"""Failure targeting: local val error per pool item, and herding that covers where the model fails."""

from __future__ import annotations

import numpy as np
import pytest

from adde_core.acquisition.targeting import local_val_error
from adde_core.errors import AddeError
from adde_core.model.head import fit_head
from adde_core.ranking import RankingInput, rank_candidates


def _two_clusters(seed: int = 0):
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 0.1, (40, 8)) + np.eye(8)[0] * 3
    b = rng.normal(0, 0.1, (40, 8)) + np.eye(8)[1] * 3
    return a.astype(np.float32), b.astype(np.float32)


def test_local_val_error_is_high_next_to_misclassified_val_items_and_zero_elsewhere():
    a, b = _two_clusters()
    # the head has only seen class "a" items labelled as two classes in cluster a, so all of cluster b's val is unseen
    head = fit_head(np.vstack([a[:5], a[5:10]]), np.array(["a"] * 5 + ["x"] * 5))
    X_val = np.vstack([a[10:20], b[:10]])
    y_val = np.array(["a"] * 10 + ["b"] * 10)  # "b" is a label the head never saw: error exactly 1
    err = local_val_error(np.vstack([a[20:30], b[20:30]]), X_val, y_val, head, k=5)
    assert err[10:] == pytest.approx(1.0)
    assert err[:10].max() < err[10:].min()


def test_herding_with_unit_importance_is_plain_uherding_and_zero_importance_is_never_covered():
    a, b = _two_clusters(1)
    X = np.vstack([a, b])
    probs = np.full((len(X), 2), 0.5)
    ids = [str(i) for i in range(len(X))]
    L = np.vstack([a[:1], b[:1]])
    plain = rank_candidates(RankingInput(ids, X, probs=probs, labelled_vectors=L), strategy="uherding", k=6)
    ones = rank_candidates(RankingInput(ids, X, probs=probs, labelled_vectors=L, importance=np.ones(len(X))),
                           strategy="uherding", k=6)
    assert plain.ids == ones.ids
    # only cluster b counts as a target: every pick lands there
    imp = np.r_[np.zeros(len(a)), np.ones(len(b))]
    targeted = rank_candidates(RankingInput(ids, X, probs=probs, labelled_vectors=L, importance=imp),
                               strategy="uherding", k=6)
    assert all(int(i) >= len(a) for i in targeted.ids)


def test_bad_importance_is_named():
    with pytest.raises(AddeError, match="importance row 1"):
        RankingInput(["a", "b"], np.eye(2), importance=np.array([1.0, -1.0]))


class _Logits:
    """A stand-in head whose logits are given (val_temperature only reads decision_function and classes_)."""

    classes_ = np.array(["a", "b", "c"])

    def __init__(self, z):
        self.z = z

    def decision_function(self, X):
        return self.z[np.asarray(X, dtype=int).ravel()]


def test_val_temperature_recovers_the_temperature_the_labels_were_drawn_at():
    from adde_core.acquisition.targeting import val_temperature

    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, (20000, 3))
    t_true = 2.5
    p = np.exp(z / t_true)
    p /= p.sum(axis=1, keepdims=True)
    y = np.array(["a", "b", "c"])[(rng.random(len(z))[:, None] > np.cumsum(p, axis=1)).sum(axis=1)]
    t = val_temperature(_Logits(z), np.arange(len(z))[:, None], y)
    assert t == pytest.approx(t_true, rel=0.05)
