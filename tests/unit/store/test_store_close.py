"""Closing an iteration on SQLite and PostgreSQL: exactly D_valid, one winner, and a half-closed iteration finished once."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from adde_core.errors import IterationClosed
from adde_core.review import DecisionRequest, record_decision
from adde_core.store import iterations as iteration_store
from tests.backends import make_synthetic_project, run_together


@pytest.fixture
def project(tmp_path, database_url):
    p = make_synthetic_project(tmp_path / "p", database_url=database_url, n_per=20, n_seed=3, n_val=5)
    yield p
    p.close()


def _decide(project):
    a, b, c, d = list(project.items(roles=["pool"])["id"][:4])
    record_decision(project.store, DecisionRequest(a, "accept", "ann", label="ant", expected_seq=0))
    record_decision(project.store, DecisionRequest(b, "relabel", "ann", label="bee", expected_seq=0))
    record_decision(project.store, DecisionRequest(c, "reject", "ann", expected_seq=0))
    record_decision(project.store, DecisionRequest(d, "accept", "ann", label="cow", expected_seq=0))
    record_decision(project.store, DecisionRequest(d, "undo", "ann", expected_seq=1))
    return a, b, c, d


def test_close_adds_exactly_d_valid_and_records_every_phase(project):
    a, b, c, d = _decide(project)
    summary = project.next_iteration(reviewer="ann")
    items = project.items().set_index("id")
    assert summary.index == 1 == project.current_iteration and summary.added == {"pool": 2}
    assert items.loc[a, "role"] == "seed" and items.loc[a, "label"] == "ant"
    assert items.loc[b, "role"] == "seed" and items.loc[b, "label"] == "bee"
    assert items.loc[c, "role"] == "pool" and items.loc[d, "role"] == "pool"
    assert iteration_store.iteration_phase(project.store, 1) == "adapted"
    history = project.metrics_history().set_index("iteration")
    assert history.loc[1, "n_dataset"] == history.loc[0, "n_dataset"] + 2
    assert np.isfinite(history.loc[1, "val_accuracy"]) and np.isfinite(history.loc[1, "alpha"])


def test_two_simultaneous_closes_one_wins_the_other_is_told(project):
    from adde_core.project import Project

    _decide(project)
    project.measure()  # the baseline, so both closes go straight to the fold-in
    closers = [Project.open(project.root) for _ in range(2)]
    outcome = run_together(*[lambda p=p, who=who: p.next_iteration(reviewer=who)
                             for p, who in zip(closers, ("ann", "bob"))])
    errors = [o for o in outcome if isinstance(o, Exception)]
    summaries = [o for o in outcome if not isinstance(o, Exception)]
    assert len(summaries) == 1 and summaries[0].index == 1, outcome
    assert len(errors) == 1 and isinstance(errors[0], IterationClosed), errors
    assert "iteration 0" in str(errors[0]) and ("already closed by" in str(errors[0]) or "being closed by"
                                                 in str(errors[0]))
    assert project.current_iteration == 1 and iteration_store.iteration_phase(project.store, 1) == "adapted"
    for p in closers:
        p.close()


def test_a_close_in_progress_elsewhere_is_not_finished_twice(project):
    _decide(project)
    project.measure()
    folded, release = threading.Event(), threading.Event()

    def closer_that_is_still_working():
        iteration_store.fold_in(project.store, 0, {}, by="ann")
        folded.set()
        release.wait(60)  # alive: still "computing metrics"

    worker = threading.Thread(target=closer_that_is_still_working)
    worker.start()
    assert folded.wait(60)
    with pytest.raises(IterationClosed, match="iteration 0 is being closed by ann"):
        project.next_iteration(reviewer="bob")
    assert iteration_store.iteration_phase(project.store, 1) == "folded"
    release.set()
    worker.join(60)
    # Its owner is gone now (as after a crash): a retry finishes the SAME iteration.
    summary = project.next_iteration(reviewer="bob")
    assert summary.index == 1 == project.current_iteration
    assert iteration_store.iteration_phase(project.store, 1) == "adapted"
    with pytest.raises(IterationClosed, match="already closed"):
        iteration_store.save_iteration_metrics(project.store, 1, {}, phase="measured")  # never moved back
