"""Decisions: stored at once, survive a reopen, undo by replay, and conflicts instead of overwrites."""

from __future__ import annotations

import shutil
import threading

import pandas as pd
import pytest

from adde_core.errors import AddeError
from adde_core.project import Project
from adde_core.review import (
    DecisionConflict,
    DecisionRequest,
    decision_log,
    decision_states,
    record_decision,
    record_decisions,
    valid_items,
)


@pytest.fixture()
def project(small_demo_dir, tmp_path):
    root = tmp_path / "p"
    shutil.copytree(small_demo_dir, root)
    p = Project.open(root)
    yield p
    p.close()


def _pool_ids(project, n):
    return list(project.items(roles=["pool"])["id"][:n])


def test_decision_persists_across_reopen(project):
    a, b = _pool_ids(project, 2)
    record_decision(project.store, DecisionRequest(a, "accept", "ann", label="cat", expected_seq=0))
    record_decision(project.store, DecisionRequest(b, "relabel", "ann", label="dog", flags=("edge case",),
                                                   critique="tail hidden", expected_seq=0))
    root = project.root
    project.close()
    reopened = Project.open(root)
    states = decision_states(reopened.store).set_index("item_id")
    assert states.loc[a, "action"] == "accept" and states.loc[a, "label"] == "cat"
    assert states.loc[b, "flags"] == ["edge case"] and states.loc[b, "critique"] == "tail hidden"
    assert set(valid_items(reopened.store)["item_id"]) == {a, b}
    reopened.close()


def test_conflict_is_raised_not_overwritten(project):
    (a,) = _pool_ids(project, 1)
    # Two reviewers both saw the item undecided (seq 0).
    record_decision(project.store, DecisionRequest(a, "accept", "ann", label="cat", expected_seq=0))
    with pytest.raises(DecisionConflict) as info:
        record_decision(project.store, DecisionRequest(a, "reject", "bob", expected_seq=0))
    assert "ann" in str(info.value) and "accept" in str(info.value)
    assert info.value.current["reviewer"] == "ann"
    states = decision_states(project.store).set_index("item_id")
    assert states.loc[a, "action"] == "accept" and states.loc[a, "n_decisions"] == 1
    # Having seen ann's decision (seq 1), bob may decide on top of it.
    record_decision(project.store, DecisionRequest(a, "reject", "bob", expected_seq=1))
    assert decision_states(project.store).set_index("item_id").loc[a, "action"] == "reject"
    assert len(decision_log(project.store)) == 2


def test_concurrent_writers_one_wins(project):
    (a,) = _pool_ids(project, 1)
    other = Project.open(project.root)  # a second server process / tab with its own connections
    results: list[str] = []
    barrier = threading.Barrier(2)

    def decide(p, who):
        barrier.wait()
        try:
            record_decision(p.store, DecisionRequest(a, "accept", who, label="cat", expected_seq=0))
            results.append("ok")
        except DecisionConflict:
            results.append("conflict")

    threads = [threading.Thread(target=decide, args=(p, w)) for p, w in ((project, "ann"), (other, "bob"))]
    [t.start() for t in threads]
    [t.join() for t in threads]
    other.close()
    assert sorted(results) == ["conflict", "ok"]
    assert len(decision_log(project.store)) == 1


def test_undo_replays_to_previous_state(project):
    (a,) = _pool_ids(project, 1)
    record_decision(project.store, DecisionRequest(a, "accept", "ann", label="cat"))
    record_decision(project.store, DecisionRequest(a, "relabel", "ann", label="dog"))
    record_decision(project.store, DecisionRequest(a, "undo", "ann"))
    state = decision_states(project.store).set_index("item_id").loc[a]
    assert state["action"] == "accept" and state["label"] == "cat" and state["n_decisions"] == 3
    record_decision(project.store, DecisionRequest(a, "undo", "ann"))
    state = decision_states(project.store).set_index("item_id").loc[a]
    assert pd.isna(state["action"]) and state["n_decisions"] == 4
    assert a not in set(valid_items(project.store)["item_id"])
    with pytest.raises(AddeError, match="nothing to undo"):
        record_decision(project.store, DecisionRequest(a, "undo", "ann"))
    assert list(decision_log(project.store)["action"]) == ["accept", "relabel", "undo", "undo"]


def test_batch_keeps_going_past_a_conflict(project):
    a, b, c = _pool_ids(project, 3)
    record_decision(project.store, DecisionRequest(b, "reject", "ann"))
    done, conflicts = record_decisions(project.store, [DecisionRequest(i, "accept", "bob", label="cat", expected_seq=0)
                                                       for i in (a, b, c)])
    assert [d["item_id"] for d in done] == [a, c]
    assert [x.item_id for x in conflicts] == [b]


@pytest.mark.parametrize("kwargs, match", [
    ({"action": "approve"}, "unknown action"),
    ({"action": "flag", "flags": ("offensive",)}, "unknown flag"),
    ({"action": "relabel"}, "needs the new label"),
    ({"action": "accept", "reviewer": " "}, "reviewer name"),
])
def test_invalid_requests_are_named(kwargs, match):
    with pytest.raises(AddeError, match=match):
        DecisionRequest(**{"item_id": "x", "reviewer": "ann", **kwargs})


def test_unknown_item_rejected(project):
    with pytest.raises(AddeError, match="no such item"):
        record_decision(project.store, DecisionRequest("nope", "accept", "ann", label="cat"))
