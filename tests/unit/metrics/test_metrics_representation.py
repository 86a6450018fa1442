"""Subgroup representation against uniform and given target distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adde_core.metrics import SubgroupRepresentation, subgroup_representation

GROUPS = ["a"] * 6 + ["b"] * 3 + ["c"]


def test_uniform_target_by_default():
    r = subgroup_representation(GROUPS)
    assert isinstance(r, SubgroupRepresentation)
    assert r.groups == ("a", "b", "c")
    np.testing.assert_array_equal(r.counts, [6, 3, 1])
    np.testing.assert_allclose(r.shares, [0.6, 0.3, 0.1])
    np.testing.assert_allclose(r.target_shares, [1 / 3] * 3)
    np.testing.assert_allclose(r.ratios, [1.8, 0.9, 0.3])
    assert r.tv_distance == pytest.approx(0.5 * (0.6 - 1 / 3 + 1 / 3 - 0.3 + 1 / 3 - 0.1))
    assert (r.min_ratio, r.worst_group, r.n_total) == (pytest.approx(0.3), "c", 10)


def test_given_target_is_normalised_and_adds_missing_groups():
    r = subgroup_representation(GROUPS, {"a": 6, "b": 3, "c": 1, "d": 0})
    assert r.tv_distance == pytest.approx(0.0)
    np.testing.assert_allclose(r.ratios[:3], 1.0)
    assert math.isnan(r.ratios[3])  # 0 of 0
    r = subgroup_representation(GROUPS, {"a": 1, "b": 1, "c": 1, "d": 1})
    assert r.counts[3] == 0 and r.min_ratio == 0.0 and r.worst_group == "d"


def test_group_outside_target_has_infinite_ratio():
    r = subgroup_representation(GROUPS, {"a": 1.0, "b": 1.0})
    assert r.target_shares[2] == 0.0 and math.isinf(r.ratios[2])
    assert r.tv_distance == pytest.approx(0.5 * (0.1 + 0.2 + 0.1))


def test_integer_groups_match_target_keys_and_frame():
    r = subgroup_representation(np.array([0, 0, 1, 2]), {0: 0.5, 1: 0.25, 2: 0.25})
    assert r.tv_distance == pytest.approx(0.0)
    df = r.to_frame()
    assert list(df.columns) == ["count", "share", "target_share", "ratio"]
    assert list(df.index) == [0, 1, 2] and df.index.name == "group"
    assert df.loc[0, "count"] == 2


@pytest.mark.parametrize(
    ("groups", "target", "match"),
    [
        ([], None, "empty"),
        (["a", None], None, "missing"),
        ([1.0, np.nan], None, "NaN"),
        (["a"], {"a": -1}, ">= 0"),
        (["a"], {"a": 0}, "all be 0"),
        (["a"], {}, "non-empty"),
    ],
)
def test_rejects_bad_input(groups, target, match):
    with pytest.raises(ValueError, match=match):
        subgroup_representation(groups, target)
