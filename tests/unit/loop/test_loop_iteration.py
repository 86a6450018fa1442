"""One iteration on the small real demo: D_{t+1} = D_t ∪ D_valid exactly, metrics recorded, weights adapted."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture()
def project(embedded_project):
    return embedded_project


def test_next_iteration_adds_exactly_d_valid(project):
    from adde_core.review import DecisionRequest, record_decision

    before = project.items().set_index("id")
    pool = list(before.index[before["role"] == "pool"][:6])
    got = project.acquire(pool, mode="retrieve", k=6)
    a, b, c, d = got.candidates["id"][:4]
    record_decision(project.store, DecisionRequest(a, "accept", "ann", label="cat"))
    record_decision(project.store, DecisionRequest(b, "relabel", "ann", label="dog"))
    record_decision(project.store, DecisionRequest(c, "reject", "ann"))
    record_decision(project.store, DecisionRequest(d, "accept", "ann", label="cow"))
    record_decision(project.store, DecisionRequest(d, "undo", "ann"))
    summary = project.next_iteration()
    after = project.items().set_index("id")
    dt_before = set(before.index[(before["role"] == "seed") & before["label"].notna()])
    dt_after = set(after.index[(after["role"] == "seed") & after["label"].notna()])
    assert dt_after - dt_before == {a, b} and dt_before <= dt_after
    assert after.loc[a, "label"] == "cat" and after.loc[b, "label"] == "dog"
    assert (after.loc[[a, b], "iteration_added"] == 1).all() and (after.loc[[a, b], "source"] == "pool").all()
    assert after.loc[c, "role"] == "pool" and after.loc[d, "role"] == "pool"
    assert summary.index == 1 == project.current_iteration and summary.added == {"pool": 2}
    history = project.metrics_history().set_index("iteration")
    assert history.loc[1, "n_dataset"] == history.loc[0, "n_dataset"] + 2
    assert history.loc[0, "labels_spent"] == 0 and history.loc[1, "labels_spent"] == 3  # a, b, c (d was undone)
    for key in ("val_accuracy", "val_macro_f1", "fair_worst_group_accuracy", "vendi_q1", "cluster_entropy",
                "label_consistency", "bias_max_abs_gap", "alpha"):
        assert np.isfinite(history.loc[1, key]), key
    assert summary.effects, "the adaptive update explains itself"


def test_oracle_iteration_and_stop_on_budget(project):
    from adde_core.loop import StoppingConfig

    project.set_stopping_config(StoppingConfig(label_budget=10))
    summary = project.run_oracle_iteration(budget=12, generate=False)
    assert summary.index == 1 and sum(summary.added.values()) >= 1
    assert summary.stop_reason and "label budget of 10" in summary.stop_reason


def test_human_close_learns_from_the_weights_that_ranked_the_reviewed_sets(project):
    """The adaptive update starts from the weights stored with the reviewed sets, not from stale stored ones."""
    from adde_core.ranking import RankingWeights
    from adde_core.review import DecisionRequest, record_decision

    before = project.items().set_index("id")
    pool = list(before.index[before["role"] == "pool"][:8])
    used = RankingWeights(alpha=0.8, beta=0.1, gamma=0.1)
    got = project.acquire(pool, mode="retrieve", k=8, weights=used)
    assert project.candidate_set(got.set_id)["weights"] == pytest.approx(dict(zip(("alpha", "beta", "gamma"),
                                                                                 used.normalized())))
    for item in got.candidates["id"][:4]:
        record_decision(project.store, DecisionRequest(item, "accept", "ann", label="cat", candidate_set_id=got.set_id))
    summary = project.next_iteration()
    config = project.metrics_history().set_index("iteration").loc[1, "config"]
    assert config["weights"]["alpha"] == pytest.approx(0.8)
    learned = project.learned_weights().normalized()
    # The update moved from (0.8, 0.1, 0.1), not from the defaults.
    assert abs(learned[0] - 0.8) < 0.2 and summary.effects


def test_a_cached_index_never_outlives_its_pool(project):
    """After a fold-in the pool shrinks: the retrieval index is rebuilt, and an oracle step works in the same process."""
    from adde_core.review import DecisionRequest, record_decision

    engine = project.engine()
    ws = engine.storage.working_set()
    first = engine.pool_index(ws)
    got = project.acquire(list(ws.ids[ws.role == "pool"][:5]), mode="retrieve", k=5)
    for item in got.candidates["id"]:
        record_decision(project.store, DecisionRequest(item, "accept", "ann", label="cat"))
    project.next_iteration()
    ws2 = project.engine().storage.working_set()
    assert ws2.pool_key != ws.pool_key
    assert project.engine().pool_index(ws2) is not first
    summary = project.run_oracle_iteration(budget=8, generate=False)  # the reverse order works too
    assert summary.index == 2
