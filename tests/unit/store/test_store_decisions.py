"""Decisions and the fold-in on SQLite and PostgreSQL: conflicts, undo, and a decision landing in exactly one iteration."""

from __future__ import annotations

import threading
import time

import pytest

from adde_core.errors import IterationClosed
from adde_core.review import DecisionConflict, DecisionRequest, decision_states, record_decision, valid_items
from adde_core.store import iterations as iteration_store
from tests.backends import make_synthetic_project, run_together


@pytest.fixture
def project(tmp_path, database_url):
    p = make_synthetic_project(tmp_path / "p", database_url=database_url, n_per=12, n_seed=2, n_val=2)
    yield p
    p.close()


def _pool(project, n):
    return list(project.items(roles=["pool"])["id"][:n])


def _dataset(project) -> set[str]:
    items = project.items()
    return set(items["id"][(items["role"] == "seed") & items["label"].notna()])


def test_conflict_undo_and_reopen(project):
    from adde_core.project import Project

    a, b = _pool(project, 2)
    record_decision(project.store, DecisionRequest(a, "accept", "ann", label="ant", expected_seq=0))
    with pytest.raises(DecisionConflict, match="ann chose 'accept'"):
        record_decision(project.store, DecisionRequest(a, "reject", "bob", expected_seq=0))
    record_decision(project.store, DecisionRequest(a, "reject", "bob", expected_seq=1))
    record_decision(project.store, DecisionRequest(a, "undo", "bob", expected_seq=2))
    record_decision(project.store, DecisionRequest(b, "relabel", "ann", label="bee", flags=("edge case",),
                                                   expected_seq=0))
    other = Project.open(project.root)  # another process's view of the same database
    states = decision_states(other.store).set_index("item_id")
    assert states.loc[a, "action"] == "accept" and states.loc[a, "n_decisions"] == 3
    assert states.loc[b, "flags"] == ["edge case"]
    assert set(valid_items(other.store)["item_id"]) == {a, b}
    other.close()


def test_concurrent_writers_one_wins(project):
    from adde_core.project import Project

    (a,) = _pool(project, 1)
    others = [Project.open(project.root) for _ in range(4)]  # four server processes / tabs
    results = run_together(*[
        lambda p=p, k=k: record_decision(p.store, DecisionRequest(a, "accept", f"r{k}", label="ant", expected_seq=0))
        for k, p in enumerate(others)])
    assert sorted(type(r).__name__ for r in results) == ["DecisionConflict"] * 3 + ["dict"], results
    assert decision_states(project.store).set_index("item_id").loc[a, "n_decisions"] == 1
    for p in others:
        p.close()


def test_decisions_made_during_the_fold_in_belong_to_the_next_iteration(project, monkeypatch):
    """The issue's repro: right after D_valid is read, Bob rejects A and accepts C. Bob waits for the lock,
    so A (accepted when the fold-in read it) joins D_1, and Bob's decisions count for iteration 1."""
    from adde_core.project import Project

    a, b, c = _pool(project, 3)
    record_decision(project.store, DecisionRequest(a, "accept", "alice", label="ant", expected_seq=0))
    record_decision(project.store, DecisionRequest(b, "accept", "alice", label="bee", expected_seq=0))
    bob = Project.open(project.root)
    done: dict[str, float] = {}

    def bob_decides():
        record_decision(bob.store, DecisionRequest(a, "reject", "bob", expected_seq=1))
        record_decision(bob.store, DecisionRequest(c, "accept", "bob", label="cow", expected_seq=0))
        done["bob"] = time.monotonic()

    real = iteration_store.standing_decisions
    thread = threading.Thread(target=bob_decides)

    def read_then_let_bob_in(session, *args):
        states = real(session, *args)
        thread.start()
        time.sleep(1.0)  # Bob's writes are attempted now, between the read and the fold-in's write
        done["read"] = time.monotonic()
        return states

    monkeypatch.setattr(iteration_store, "standing_decisions", read_then_let_bob_in)
    added = iteration_store.fold_in(project.store, 0, {}, by="carol")
    folded = time.monotonic()
    thread.join(60)
    assert done["bob"] > folded > done["read"], "Bob waited for the fold-in's lock"
    assert added == {"pool": 2}
    assert {a, b} <= _dataset(project) and c not in _dataset(project)
    states = decision_states(project.store).set_index("item_id")
    assert states.loc[a, "action"] == "reject" and states.loc[a, "iteration"] == 1
    assert states.loc[c, "action"] == "accept" and states.loc[c, "iteration"] == 1
    assert list(valid_items(project.store)["item_id"]) == [c]  # pending for iteration 1, not lost
    bob.close()


def test_two_simultaneous_fold_ins_one_wins(project):
    from adde_core.project import Project

    (a,) = _pool(project, 1)
    record_decision(project.store, DecisionRequest(a, "accept", "ann", label="ant", expected_seq=0))
    closers = [Project.open(project.root) for _ in range(3)]
    outcome = run_together(*[lambda p=p, k=k: iteration_store.fold_in(p.store, 0, {}, by=f"closer{k}")
                             for k, p in enumerate(closers)])
    wins = [o for o in outcome if isinstance(o, dict)]
    losses = [o for o in outcome if not isinstance(o, dict)]
    assert wins == [{"pool": 1}] and len(losses) == 2
    assert all(isinstance(e, IterationClosed) and "already closed by closer" in str(e) for e in losses), losses
    assert project.current_iteration == 1
    for p in closers:
        p.close()
