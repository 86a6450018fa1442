"""Fairness metrics: hand-computed group accuracy, equalized odds and demographic parity; bias amplification."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from fairlearn.metrics import MetricFrame, demographic_parity_difference, equalized_odds_difference
from sklearn.metrics import accuracy_score

from adde_core.metrics import subgroup_representation
from adde_core.metrics.fairness import (
    BiasAmplification,
    FairnessReport,
    bias_amplification,
    group_fairness,
    representation,
)

# Group A: y=[1,1,0,0], ŷ=[1,0,0,0] -> acc 3/4, TPR 1/2, FPR 0,   selection rate 1/4
# Group B: y=[1,0,0,0], ŷ=[1,1,1,0] -> acc 2/4, TPR 1,   FPR 2/3, selection rate 3/4
Y01 = np.array([1, 1, 0, 0, 1, 0, 0, 0])
P01 = np.array([1, 0, 0, 0, 1, 1, 1, 0])
GROUPS = np.array(["A"] * 4 + ["B"] * 4)
NAMES = np.array(["neg", "pos"])


def test_binary_two_group_case_matches_hand_computation_and_fairlearn():
    r = group_fairness(NAMES[Y01], NAMES[P01], GROUPS)
    assert isinstance(r, FairnessReport)
    assert r.groups == ("A", "B")
    np.testing.assert_array_equal(r.group_counts, [4, 4])
    np.testing.assert_allclose(r.group_accuracy, [0.75, 0.5])
    assert r.overall_accuracy == pytest.approx(5 / 8)
    assert (r.worst_group, r.worst_group_accuracy) == ("B", 0.5)
    assert r.accuracy_gap == pytest.approx(0.25)
    assert r.demographic_parity_difference == pytest.approx(0.75 - 0.25)
    assert r.equalized_odds_difference == pytest.approx(max(abs(0.5 - 1.0), abs(0.0 - 2 / 3)))
    # one-vs-rest on either class reproduces fairlearn's binary definition
    np.testing.assert_allclose(r.eo_by_class, equalized_odds_difference(Y01, P01, sensitive_features=GROUPS))
    np.testing.assert_allclose(r.dp_by_class, demographic_parity_difference(Y01, P01, sensitive_features=GROUPS))
    mf = MetricFrame(metrics=accuracy_score, y_true=Y01, y_pred=P01, sensitive_features=GROUPS)
    assert r.accuracy_gap == pytest.approx(mf.difference())


def _rates(yt, yp, groups, c):
    """Per-group TPR (NaN without positives), FPR (NaN without negatives) and selection rate of class c."""
    out = []
    for g in np.unique(groups):
        t, p = yt[groups == g] == c, yp[groups == g] == c
        tpr = (t & p).sum() / t.sum() if t.any() else math.nan
        fpr = (~t & p).sum() / (~t).sum() if (~t).any() else math.nan
        out.append((tpr, fpr, p.mean()))
    return np.array(out)


def _spread(v):
    v = v[np.isfinite(v)]
    return v.max() - v.min() if v.size >= 2 else math.nan


def test_multiclass_one_vs_rest_max_matches_manual():
    rng = np.random.default_rng(3)
    classes = np.array(["cat", "dog", "fox"])
    yt = classes[rng.integers(0, 3, size=90)]
    yp = np.where(rng.random(90) < 0.6, yt, classes[rng.integers(0, 3, size=90)])
    groups = np.array(["g1", "g2", "g3"])[rng.integers(0, 3, size=90)]
    r = group_fairness(yt, yp, groups)
    eo, dp = [], []
    for c in classes:
        rates = _rates(yt, yp, groups, c)
        assert np.isfinite(rates).all()  # every group has positives and negatives of every class here
        eo.append(max(_spread(rates[:, 0]), _spread(rates[:, 1])))
        dp.append(_spread(rates[:, 2]))
    assert r.classes == tuple(classes)
    np.testing.assert_allclose(r.eo_by_class, eo)
    np.testing.assert_allclose(r.dp_by_class, dp)
    assert r.equalized_odds_difference == pytest.approx(max(eo))
    assert r.demographic_parity_difference == pytest.approx(max(dp))
    assert r.worst_eo_class == classes[int(np.argmax(eo))]
    accs = [np.mean(yt[groups == g] == yp[groups == g]) for g in ("g1", "g2", "g3")]
    np.testing.assert_allclose(r.group_accuracy, accs)
    assert r.accuracy_gap == pytest.approx(max(accs) - min(accs))


def test_rate_undefined_in_a_group_is_skipped_not_counted_as_zero():
    # Group B holds no "fox": fairlearn alone would report TPR_B = 0 and an EO gap of 1 for a perfect model.
    yt = np.array(["cat", "fox", "fox", "cat", "cat", "cat"])
    groups = np.array(["A", "A", "A", "B", "B", "B"])
    t, g = (yt == "fox").astype(int), groups
    assert equalized_odds_difference(t, t, sensitive_features=g) == pytest.approx(1.0)
    r = group_fairness(yt, yt, groups)
    np.testing.assert_allclose(r.eo_by_class, [0.0, 0.0])
    assert r.equalized_odds_difference == 0.0
    # A wrong "fox" for a B item: FPR_B = 1/3, FPR_A = 0 (TPR comparable only within A, so skipped)
    yp = np.array(["cat", "fox", "fox", "fox", "cat", "cat"])
    r = group_fairness(yt, yp, groups)
    fox = r.classes.index("fox")
    assert r.eo_by_class[fox] == pytest.approx(1 / 3)
    assert r.dp_by_class[fox] == pytest.approx(2 / 3 - 1 / 3)


def test_single_group_has_no_gaps_and_as_dict_is_strict_json():
    r = group_fairness(["a", "b", "a"], ["a", "a", "a"], ["x", "x", "x"])
    assert r.accuracy_gap == 0.0 and r.demographic_parity_difference == 0.0
    d = r.as_dict()
    json.dumps(d, allow_nan=False)
    assert d["group_accuracy.x"] == pytest.approx(2 / 3) and d["group_count.x"] == 3
    r2 = group_fairness(NAMES[Y01], NAMES[P01], GROUPS)
    d2 = r2.as_dict()
    assert d2["worst_group"] == "B" and d2["group_accuracy_gap"] == pytest.approx(0.25)
    assert d2["eo_difference.pos"] == pytest.approx(2 / 3) and d2["dp_difference.neg"] == pytest.approx(0.5)
    assert list(r2.to_frame().columns) == ["count", "accuracy"]


def test_integer_groups_and_input_validation():
    r = group_fairness(NAMES[Y01], NAMES[P01], np.r_[[0] * 4, [1] * 4])
    assert r.groups == (0, 1) and r.worst_group == 1 and type(r.worst_group) is int
    with pytest.raises(ValueError, match="entries"):
        group_fairness(["a", "b"], ["a", "b"], ["x"])
    with pytest.raises(ValueError, match="missing"):
        group_fairness(["a", "b"], ["a", "b"], ["x", None])


def test_representation_is_the_subgroup_table():
    groups = ["a"] * 6 + ["b"] * 3 + ["c"]
    df = representation(groups, {"a": 1, "b": 1, "c": 2})
    assert list(df.columns) == ["count", "share", "target_share", "ratio"]
    np.testing.assert_allclose(df["ratio"], [0.6 / 0.25, 0.3 / 0.25, 0.1 / 0.5])
    assert df.equals(subgroup_representation(groups, {"a": 1, "b": 1, "c": 2}).to_frame())


def test_always_predicting_the_majority_gives_gap_one_minus_its_share():
    yt = np.array(["maj"] * 7 + ["mid"] * 2 + ["min"])
    b = bias_amplification(yt, ["maj"] * 10)
    assert isinstance(b, BiasAmplification)
    assert b.classes == ("maj", "mid", "min")
    np.testing.assert_allclose(b.true_rate, [0.7, 0.2, 0.1])
    np.testing.assert_allclose(b.pred_rate, [1.0, 0.0, 0.0])
    np.testing.assert_allclose(b.gap, [1 - 0.7, -0.2, -0.1])
    assert b.max_abs_gap == pytest.approx(0.3) and b.most_overpredicted_class == "maj"
    assert b.mean_abs_gap == pytest.approx(2 * 0.3 / 3)  # 2 * TV distance / k
    assert b.groups is None and math.isnan(b.group_max_abs_gap)
    assert set(b.as_dict()) == {
        "bias_max_abs_gap",
        "bias_mean_abs_gap",
        "bias_most_overpredicted_class",
        "bias_gap.maj",
        "bias_gap.mid",
        "bias_gap.min",
    }


def test_bias_amplification_per_group():
    # x: 2 maj + 2 min, all predicted maj -> gap maj +0.5, min -0.5; y: 4 maj predicted right -> 0
    yt = np.array(["maj", "maj", "min", "min", "maj", "maj", "maj", "maj"])
    yp = np.array(["maj"] * 8)
    groups = np.array(["x"] * 4 + ["y"] * 4)
    b = bias_amplification(yt, yp, groups)
    assert b.groups == ("x", "y")
    np.testing.assert_allclose(b.group_gap, [[0.5, -0.5], [0.0, 0.0]])
    np.testing.assert_allclose(b.group_true_rate.sum(axis=1), 1.0)
    assert b.group_max_abs_gap == pytest.approx(0.5)
    assert b.group_mean_abs_gap == pytest.approx(0.25)
    assert b.max_abs_gap == pytest.approx(0.25)
    d = b.as_dict()
    json.dumps(d, allow_nan=False)
    assert d["bias_gap.x|min"] == pytest.approx(-0.5) and d["bias_group_max_abs_gap"] == pytest.approx(0.5)


def test_perfect_predictions_have_no_bias_and_predicted_only_class_counts():
    yt = ["a", "b", "b", "c"]
    assert bias_amplification(yt, yt).max_abs_gap == 0.0
    b = bias_amplification(yt, ["a", "b", "b", "z"])  # "z" never occurs but is predicted once
    assert b.classes == ("a", "b", "c", "z")
    np.testing.assert_allclose(b.gap, [0.0, 0.0, -0.25, 0.25])


def _fairlearn_reference(yt, yp, groups):
    """The report as fairlearn computes it (MetricFrame, one-vs-rest EO/DP), for pinning the numpy version."""
    from fairlearn.metrics import count, false_positive_rate_difference, true_positive_rate_difference

    mf = MetricFrame(metrics={"accuracy": accuracy_score, "count": count}, y_true=yt, y_pred=yp,
                     sensitive_features=groups)
    classes = np.unique(np.concatenate([yt, yp]))
    eo, dp = [], []
    for c in classes:
        t, p = (yt == c).astype(np.int64), (yp == c).astype(np.int64)
        uniq, inv = np.unique(groups, return_inverse=True)
        has_pos = np.bincount(inv, weights=t, minlength=len(uniq)) > 0
        has_neg = np.bincount(inv, weights=1 - t, minlength=len(uniq)) > 0
        if has_pos.all() and has_neg.all():
            eo.append(float(equalized_odds_difference(t, p, sensitive_features=groups)))
        else:
            parts = [float(diff(t[d[inv]], p[d[inv]], sensitive_features=groups[d[inv]]))
                     for d, diff in ((has_pos, true_positive_rate_difference),
                                     (has_neg, false_positive_rate_difference)) if d.sum() >= 2]
            eo.append(max(parts) if parts else math.nan)
        dp.append(float(demographic_parity_difference(t, p, sensitive_features=groups)))
    return mf, np.array(eo), np.array(dp)


@pytest.mark.parametrize("seed", range(8))
def test_numpy_group_metrics_equal_fairlearn_exactly(seed):
    """The counts-based implementation gives fairlearn's numbers bit for bit (rare classes, missing cells)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 200))
    classes = np.array([f"c{i}" for i in range(int(rng.integers(2, 8)))])
    p = rng.dirichlet(np.ones(len(classes)) * 0.5)
    yt = classes[rng.choice(len(classes), size=n, p=p)]
    yp = np.where(rng.random(n) < 0.6, yt, classes[rng.integers(0, len(classes), size=n)])
    groups = np.array(["a", "b", "c", "d"])[rng.integers(0, int(rng.integers(1, 5)), size=n)]
    r = group_fairness(yt, yp, groups)
    mf, eo, dp = _fairlearn_reference(yt, yp, groups)
    by_group = mf.by_group
    assert r.groups == tuple(by_group.index)
    np.testing.assert_array_equal(r.group_counts, by_group["count"].to_numpy())
    np.testing.assert_array_equal(r.group_accuracy, by_group["accuracy"].to_numpy(dtype=float))
    assert r.overall_accuracy == float(mf.overall["accuracy"])
    assert r.accuracy_gap == float(mf.difference()["accuracy"])
    np.testing.assert_array_equal(r.eo_by_class, eo)
    np.testing.assert_array_equal(r.dp_by_class, dp)
