"""Quality gate: each rejection reason on constructed vectors, the check order, scores and the radius."""

from __future__ import annotations

import numpy as np
import pytest

from adde_core.acquisition.quality_gate import (
    REASONS,
    GateConfig,
    cosine_distance_to,
    gate_candidates,
    region_radius,
)
from adde_core.errors import AddeError

CLASSES = ["cat", "dog"]


def at_angle(degrees: float, z: float = 0.0) -> np.ndarray:
    """A unit vector in 3-D at ``degrees`` from e1 in the e1-e2 plane (tilted by z towards e3)."""
    v = np.array([np.cos(np.radians(degrees)), np.sin(np.radians(degrees)), z])
    return v / np.linalg.norm(v)


def cos_dist(degrees: float) -> float:
    return 1.0 - np.cos(np.radians(degrees))


CENTROID = np.array([2.0, 0.0, 0.0])  # not unit length on purpose: only its direction matters
RADIUS = cos_dist(20)  # with slack 1.25 the gate's edge is at 1.25 * (1 - cos 20 deg), about 22.4 deg


def test_each_reason_triggers_as_designed_and_counts_add_up():
    vectors = np.stack([
        at_angle(5),        # 0 kept
        at_angle(40),       # 1 off_target
        at_angle(10),       # 2 label_disagrees: argmax is the other class
        at_angle(12),       # 3 label_disagrees: right argmax but below min_confidence... see probs
        at_angle(15),       # 4 near_duplicate of an existing item
        at_angle(-8),       # 5 kept
        at_angle(-8, 0.001),  # 6 near_duplicate of candidate 5 (same batch)
    ])
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.3, 0.7], [0.45, 0.55], [0.9, 0.1], [0.95, 0.05], [0.8, 0.2]])
    intended = ["cat", "cat", "cat", "dog", "cat", "cat", "cat"]
    reference = np.stack([at_angle(90), at_angle(15.3)])  # item 4 sits 0.3 deg from the second reference
    config = GateConfig(slack=1.25, min_confidence=0.6, dup_threshold=0.999)
    report = gate_candidates(vectors, intended, centroid=CENTROID, radius=RADIUS, reference_vectors=reference,
                             probs=probs, classes=CLASSES, config=config)
    assert report.reasons.tolist() == ["kept", "off_target", "label_disagrees", "label_disagrees",
                                       "near_duplicate", "kept", "near_duplicate"]
    assert report.kept.tolist() == [True, False, False, False, False, True, False]
    assert report.duplicate_of.tolist() == [-1, -1, -1, -1, -1, -1, 5]
    summary = report.summary()
    assert list(summary) == list(REASONS)
    assert summary == {"kept": 2, "off_target": 1, "label_disagrees": 2, "near_duplicate": 2}
    assert sum(summary.values()) == len(report) == 7
    assert report.n_kept == 2
    np.testing.assert_allclose(report.distance[[0, 1]], [cos_dist(5), cos_dist(40)], atol=1e-12)
    np.testing.assert_allclose(report.confidence, [0.9, 0.9, 0.3, 0.55, 0.9, 0.95, 0.8])
    assert report.max_reference_similarity[4] == pytest.approx(np.cos(np.radians(0.3)), abs=1e-12)


def test_first_failing_check_is_reported():
    # Off target AND label disagrees AND a duplicate of an existing item -> off_target.
    far = at_angle(60)
    r = gate_candidates(far[None], ["dog"], centroid=CENTROID, radius=RADIUS, reference_vectors=far[None],
                        probs=np.array([[0.9, 0.1]]), classes=CLASSES)
    assert r.reasons.tolist() == ["off_target"]
    # On target, label disagrees and duplicate -> label_disagrees.
    near = at_angle(3)
    r = gate_candidates(near[None], ["dog"], centroid=CENTROID, radius=RADIUS, reference_vectors=near[None],
                        probs=np.array([[0.9, 0.1]]), classes=CLASSES)
    assert r.reasons.tolist() == ["label_disagrees"]


def test_gate_edge_is_radius_times_slack():
    inside, outside = at_angle(22.0), at_angle(23.0)  # edge at about 22.4 deg for slack 1.25
    r = gate_candidates(np.stack([inside, outside]), ["cat", "cat"], centroid=CENTROID, radius=RADIUS)
    assert r.reasons.tolist() == ["kept", "off_target"]
    tight = gate_candidates(np.stack([inside, outside]), ["cat", "cat"], centroid=CENTROID, radius=RADIUS,
                            config=GateConfig(slack=1.0))
    assert tight.reasons.tolist() == ["off_target", "off_target"]


def test_batch_duplicates_keep_the_best_scoring_one():
    # Two near-identical candidates; the second is closer to the centroid with equal confidence, so it wins
    # even though it comes later in the batch.
    a, b = at_angle(10.0), at_angle(9.99)
    probs = np.array([[0.8, 0.2], [0.8, 0.2]])
    r = gate_candidates(np.stack([a, b]), ["cat", "cat"], centroid=CENTROID, radius=RADIUS, probs=probs,
                        classes=CLASSES, config=GateConfig(dup_threshold=0.9999))
    assert r.gate_score[1] > r.gate_score[0]
    assert r.reasons.tolist() == ["near_duplicate", "kept"]
    assert r.duplicate_of.tolist() == [1, -1]
    # A duplicate of a *rejected* candidate is not a duplicate: only kept ones count.
    probs = np.array([[0.8, 0.2], [0.1, 0.9]])
    r = gate_candidates(np.stack([a, b]), ["cat", "cat"], centroid=CENTROID, radius=RADIUS, probs=probs,
                        classes=CLASSES, config=GateConfig(dup_threshold=0.9999))
    assert r.reasons.tolist() == ["kept", "label_disagrees"]


def test_gate_score_combines_proximity_and_confidence():
    vectors = np.stack([at_angle(0), at_angle(10), at_angle(-10), at_angle(40)])
    probs = np.array([[1.0, 0.0], [1.0, 0.0], [0.64, 0.36], [1.0, 0.0]])
    config = GateConfig(dup_threshold=0.999)  # 10 deg apart is cos 0.985: not duplicates here
    r = gate_candidates(vectors, ["cat"] * 4, centroid=CENTROID, radius=RADIUS, probs=probs, classes=CLASSES,
                        config=config)
    limit = RADIUS * 1.25
    proximity_10 = 1 - cos_dist(10) / limit
    np.testing.assert_allclose(r.gate_score, [1.0, np.sqrt(proximity_10), np.sqrt(proximity_10 * 0.64), 0.0])
    assert np.all((r.gate_score >= 0) & (r.gate_score <= 1))
    assert r.kept_indices.tolist() == [0, 1, 2]
    # proximity_weight = 1 ignores the confidence; = 0 ignores the proximity.
    r1 = gate_candidates(vectors, ["cat"] * 4, centroid=CENTROID, radius=RADIUS, probs=probs, classes=CLASSES,
                         config=GateConfig(proximity_weight=1.0, dup_threshold=0.999))
    np.testing.assert_allclose(r1.gate_score[[1, 2]], [proximity_10, proximity_10])
    r0 = gate_candidates(vectors, ["cat"] * 4, centroid=CENTROID, radius=RADIUS, probs=probs, classes=CLASSES,
                         config=GateConfig(proximity_weight=0.0, dup_threshold=0.999))
    np.testing.assert_allclose(r0.gate_score, [1.0, 1.0, 0.64, 1.0])


def test_without_probs_the_label_check_is_skipped_and_unknown_labels_disagree():
    vectors = np.stack([at_angle(5), at_angle(-10)])  # 15 deg apart: not duplicates at 0.98
    r = gate_candidates(vectors, ["zebra", "cat"], centroid=CENTROID, radius=RADIUS)
    assert r.reasons.tolist() == ["kept", "kept"]
    assert np.isnan(r.confidence).all()
    r = gate_candidates(vectors, ["zebra", "cat"], centroid=CENTROID, radius=RADIUS,
                        probs=np.array([[0.9, 0.1], [0.9, 0.1]]), classes=CLASSES)
    assert r.reasons.tolist() == ["label_disagrees", "kept"]
    assert r.confidence[0] == 0.0 and r.gate_score[0] == 0.0


def test_empty_batch():
    r = gate_candidates(np.zeros((0, 3)), [], centroid=CENTROID, radius=RADIUS, reference_vectors=np.eye(3))
    assert len(r) == 0 and r.summary() == dict.fromkeys(REASONS, 0)


def test_region_radius_is_a_quantile_of_member_distances():
    angles = np.arange(1, 11)  # 1..10 degrees around e1: the centroid direction stays e1 by symmetry
    members = np.stack([at_angle(a) for a in angles] + [at_angle(-a) for a in angles])
    centroid = members.mean(axis=0)
    distances = np.array([cos_dist(a) for a in angles] * 2)
    assert region_radius(members, centroid, quantile=0.9) == pytest.approx(np.quantile(distances, 0.9))
    assert region_radius(members, centroid, quantile=1.0) == pytest.approx(cos_dist(10))
    assert region_radius(members[:1], members[0]) == pytest.approx(0.0, abs=1e-12)
    assert region_radius(members[:1], members[0], min_radius=0.05) == 0.05
    np.testing.assert_allclose(cosine_distance_to(members, centroid), distances, atol=1e-12)


def test_invalid_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="slack"):
        GateConfig(slack=0)
    with pytest.raises(ValueError, match="min_confidence"):
        GateConfig(min_confidence=1.5)
    with pytest.raises(ValueError, match="dup_threshold"):
        GateConfig(dup_threshold=1.1)
    with pytest.raises(ValueError, match="proximity_weight"):
        GateConfig(proximity_weight=-0.1)
    v = np.stack([at_angle(1), at_angle(2)])
    with pytest.raises(AddeError, match="intended labels"):
        gate_candidates(v, ["cat"], centroid=CENTROID, radius=RADIUS)
    with pytest.raises(AddeError, match="probs has shape"):
        gate_candidates(v, ["cat", "cat"], centroid=CENTROID, radius=RADIUS, probs=np.ones((2, 3)) / 3,
                        classes=CLASSES)
    with pytest.raises(AddeError, match="dimensions"):
        gate_candidates(v, ["cat", "cat"], centroid=np.ones(4), radius=RADIUS)
    with pytest.raises(AddeError, match="radius"):
        gate_candidates(v, ["cat", "cat"], centroid=CENTROID, radius=-1.0)
    with pytest.raises(AddeError, match="zero vector"):
        gate_candidates(v, ["cat", "cat"], centroid=np.zeros(3), radius=RADIUS)
