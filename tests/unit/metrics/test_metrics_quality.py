"""Quality metrics: accuracy / macro-F1 / AUC known answers, robustness drops, out-of-fold probabilities, label consistency."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from adde_core.errors import AddeError
from adde_core.metrics.quality import (
    LabelConsistency,
    classification_quality,
    cross_val_pred_probs,
    label_consistency,
    robustness,
)

Y_TRUE = ["a", "a", "a", "b", "b", "c"]
Y_PRED = ["a", "a", "b", "b", "c", "c"]


def _mann_whitney_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """AUC as the share of (positive, negative) pairs ranked right, ties counting one half."""
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def test_accuracy_and_macro_f1_match_hand_computation():
    q = classification_quality(Y_TRUE, Y_PRED)
    assert q["accuracy"] == pytest.approx(4 / 6)
    # a: P=2/2, R=2/3 -> 0.8; b: P=1/2, R=1/2 -> 0.5; c: P=1/2, R=1/1 -> 2/3
    assert q["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert q["n_items"] == 6
    assert math.isnan(q["auc"]) and "no predicted probabilities" in q["auc_reason"]


def test_perfect_probabilities_give_auc_one():
    P = np.eye(3)[[0, 0, 0, 1, 1, 2]] * 0.7 + 0.1
    q = classification_quality(Y_TRUE, Y_PRED, P, ["a", "b", "c"])
    assert q["auc"] == pytest.approx(1.0) and q["auc_reason"] is None
    q2 = classification_quality(["x", "y", "y"], ["x", "y", "y"], [[0.8, 0.2], [0.3, 0.7], [0.1, 0.9]])
    assert q2["auc"] == pytest.approx(1.0)


def test_binary_auc_hand_case():
    # p(b) for the two b items (0.4, 0.9) beats the a items (0.1, 0.6) in 3 of 4 pairs.
    pb = np.array([0.1, 0.6, 0.4, 0.9])
    q = classification_quality(["a", "a", "b", "b"], ["a", "b", "a", "b"], np.c_[1 - pb, pb], ["a", "b"])
    assert q["auc"] == pytest.approx(0.75)


def test_multiclass_auc_is_macro_of_one_vs_rest_with_unsorted_classes():
    rng = np.random.default_rng(0)
    y = np.array(["b", "a", "c"])[rng.integers(0, 3, size=60)]
    P = rng.dirichlet([1, 1, 1], size=60)
    classes = ["c", "a", "b"]  # column order deliberately not sorted
    expected = np.mean([_mann_whitney_auc(P[y == c, j], P[y != c, j]) for j, c in enumerate(classes)])
    q = classification_quality(y, y, P, classes)
    assert q["auc"] == pytest.approx(expected)


def test_auc_is_nan_with_reason_when_a_class_is_absent_from_y_true():
    P = np.full((3, 3), 1 / 3)
    q = classification_quality(["a", "b", "b"], ["a", "b", "b"], P, ["a", "b", "c"])
    assert math.isnan(q["auc"]) and "['c'] absent" in q["auc_reason"]
    assert q["accuracy"] == 1.0


@pytest.mark.parametrize(
    ("proba", "classes", "match"),
    [
        (np.full((6, 2), 0.5), ["a", "b", "c"], "shape"),
        (np.full((6, 3), 0.5), ["a", "b", "c"], "sum to 1"),
        (np.full((6, 2), 0.5), ["a", "b"], "not among classes"),
        (np.full((6, 3), 1 / 3), ["a", "a", "c"], "unique"),
    ],
)
def test_bad_probabilities_are_rejected(proba, classes, match):
    with pytest.raises(AddeError, match=match):
        classification_quality(Y_TRUE, Y_PRED, proba, classes)


def test_length_mismatch_is_rejected():
    with pytest.raises(ValueError, match="entries"):
        classification_quality(["a", "b"], ["a"])


def test_robustness_drops():
    val = {"accuracy": 0.9, "macro_f1": 0.8, "auc": 0.95}
    ood = {"accuracy": 0.6, "macro_f1": 0.7, "auc": float("nan")}
    r = robustness(val, ood)
    assert r["accuracy_drop"] == pytest.approx(0.3) and r["macro_f1_drop"] == pytest.approx(0.1)
    assert math.isnan(r["auc_drop"])
    assert set(robustness({"accuracy": 1, "macro_f1": 1}, {"accuracy": 1, "macro_f1": 0.5})) == {
        "accuracy_drop",
        "macro_f1_drop",
    }
    with pytest.raises(AddeError, match="macro_f1"):
        robustness({"accuracy": 1.0}, {"accuracy": 1.0})


def _one_nn():
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(n_neighbors=1)


def test_cross_val_probs_are_out_of_fold():
    # Two far-apart tight blobs, one item in blob 0 labelled "b". In-sample 1-NN would return its own
    # (wrong) label; out of fold its nearest neighbour is a blob-0 "a".
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(0, 0.1, size=(10, 2)), rng.normal(5, 0.1, size=(10, 2))]
    y = np.array(["a"] * 10 + ["b"] * 10)
    y[3] = "b"
    P, classes = cross_val_pred_probs(X, y, n_folds=5, make_model=_one_nn)
    assert classes.tolist() == ["a", "b"]
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    np.testing.assert_array_equal(P[3], [1.0, 0.0])
    # (another blob-0 item may have item 3 as its nearest neighbour, so only blob 1 is checked whole)
    np.testing.assert_array_equal(P[10:].argmax(axis=1), 1)


class _CountingCentroid:
    """Nearest-centroid model without ``classes_``; counts fits and returns columns in sorted-label order."""

    fits = 0

    def fit(self, X, y):
        type(self).fits += 1
        self.labels = np.unique(y)
        self.centroids = np.stack([X[y == c].mean(axis=0) for c in self.labels])
        return self

    def predict_proba(self, X):
        d = ((X[:, None, :] - self.centroids[None]) ** 2).sum(-1)
        e = np.exp(-(d - d.min(axis=1, keepdims=True)))
        return e / e.sum(axis=1, keepdims=True)


def test_fold_count_shrinks_to_smallest_class_and_singletons_get_in_sample_probs():
    rng = np.random.default_rng(1)
    centers = {"a": 0.0, "b": 10.0, "z": 20.0}
    y = np.array(["a"] * 8 + ["b"] * 3 + ["z"])
    X = np.array([[centers[c]] for c in y]) + rng.normal(0, 0.1, size=(12, 1))
    _CountingCentroid.fits = 0
    P, classes = cross_val_pred_probs(X, y, n_folds=5, make_model=_CountingCentroid)
    assert _CountingCentroid.fits == 3  # min(5, smallest class with >= 2 items = 3)
    assert classes.tolist() == ["a", "b", "z"]
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    # the singleton "z" is in every training split, so its (in-sample) probability is confidently "z"
    assert P[11].argmax() == 2 and P[11, 2] > 0.99
    np.testing.assert_array_equal(P[:11].argmax(axis=1), [0] * 8 + [1] * 3)


def test_cross_val_rejects_degenerate_labels():
    X = np.zeros((3, 2))
    with pytest.raises(AddeError, match="two classes"):
        cross_val_pred_probs(X, ["a", "a", "a"])
    with pytest.raises(AddeError, match="single item"):
        cross_val_pred_probs(X, ["a", "b", "c"])


@pytest.fixture(scope="module")
def noisy_blobs():
    """Three separable Gaussian blobs (6σ apart) with 10 % of the labels flipped to another class."""
    rng = np.random.default_rng(0)
    k, m, d = 3, 100, 5
    y = np.repeat(np.arange(k), m)
    X = np.eye(k, d)[y] * 6.0 + rng.normal(size=(k * m, d))
    flip = rng.choice(k * m, size=k * m // 10, replace=False)
    noisy = y.copy()
    noisy[flip] = (y[flip] + rng.integers(1, k, size=flip.size)) % k
    names = np.array(["cat", "dog", "fox"])
    truth = np.zeros(k * m, dtype=bool)
    truth[flip] = True
    P, classes = cross_val_pred_probs(X, names[noisy], random_state=0)
    return names[noisy], P, classes, truth


def test_label_consistency_finds_flipped_labels(noisy_blobs):
    labels, P, classes, truth = noisy_blobs
    r = label_consistency(labels, P, classes)
    assert isinstance(r, LabelConsistency)
    recall = (r.issue_mask & truth).sum() / truth.sum()
    assert recall >= 0.7
    assert r.consistency == pytest.approx(0.9, abs=0.05)
    assert r.consistency == pytest.approx(1 - r.issue_mask.sum() / labels.shape[0])
    np.testing.assert_array_equal(r.class_counts, [(labels == c).sum() for c in classes])
    np.testing.assert_array_equal(r.class_issues, [(r.issue_mask & (labels == c)).sum() for c in classes])
    d = r.as_dict()
    json.dumps(d, allow_nan=False)
    assert d["label_consistency"] == r.consistency and d["n_label_issues"] == r.issue_mask.sum()
    assert sum(d[f"label_issues.{c}"] for c in classes) == r.n_inconsistent


def test_ambiguous_flags_lower_consistency(noisy_blobs):
    labels, P, classes, _ = noisy_blobs
    base = label_consistency(labels, P, classes)
    extra = np.zeros(labels.shape[0], dtype=bool)
    extra[np.flatnonzero(~base.issue_mask)[:15]] = True  # 15 items cleanlab accepted
    extra[np.flatnonzero(base.issue_mask)[:5]] = True  # 5 already flagged: counted once
    r = label_consistency(labels, P, classes, extra_inconsistent=extra)
    np.testing.assert_array_equal(r.issue_mask, base.issue_mask)
    assert r.n_extra == 20 and r.n_inconsistent == base.n_inconsistent + 15
    assert r.consistency == pytest.approx(base.consistency - 15 / labels.shape[0])


def test_label_consistency_validates_inputs():
    P = np.full((4, 2), 0.5)
    with pytest.raises(AddeError, match="not among classes"):
        label_consistency(["a", "b", "a", "q"], P, ["a", "b"])
    with pytest.raises(AddeError, match="boolean mask"):
        label_consistency(["a", "b", "a", "b"], P, ["a", "b"], extra_inconsistent=[1, 0, 0, 0])
    with pytest.raises(AddeError, match="shape"):
        label_consistency(["a", "b", "a", "b"], np.full((4, 3), 1 / 3), ["a", "b"])


def test_fold_fits_in_threads_give_the_same_probabilities_as_one_after_another(monkeypatch):
    import adde_core.metrics.quality as quality_mod
    from adde_core.model.head import LinearHead

    rng = np.random.default_rng(0)
    y = np.array([f"c{i % 4}" for i in range(120)])
    X = rng.standard_normal((120, 32)) + 2.0 * (np.arange(4) == np.arange(120)[:, None] % 4) @ rng.standard_normal((4, 32))
    y[:3] = "solo-" + y[:3]  # single-item classes stay in every training split
    runs = {}
    for threads in (1, 2):
        monkeypatch.setattr(quality_mod, "CV_THREADS", threads)
        runs[threads] = quality_mod.cross_val_pred_probs(X, y, n_folds=5, random_state=0,
                                                         make_model=lambda: LinearHead(max_iter=30))
    np.testing.assert_array_equal(runs[1][0], runs[2][0])
    assert list(runs[1][1]) == list(runs[2][1])
    np.testing.assert_allclose(runs[2][0].sum(axis=1), 1.0)
