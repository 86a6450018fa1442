"""One engine: the app's path (project + store + oracle) and the simulation driver pick the same items and measure alike."""

from __future__ import annotations

import pytest

from adde_core.loop.engine import LoopConfig
from adde_core.loop.simulation.run import _threads, run_strategy


@pytest.fixture()
def project(embedded_project):
    return embedded_project


def test_app_path_and_simulation_pick_the_same_items_and_metrics(project):
    data = project.simulation_data()
    with _threads(1):
        project.measure()
        app = [project.run_oracle_iteration(budget=20, n_regions=2, generate=False) for _ in range(2)]
        engines: list = []
        sim_rows = run_strategy(data, "adde-no-gen", budget=40, rounds=2, seed=0, config=LoopConfig(n_regions=2),
                                engines=engines)
    # The same items were reviewed, in the same iteration, with the same decisions.
    decisions = project.decision_states()
    sim = engines[0].storage.decisions
    assert len(decisions) == len(sim) == 40
    for row in decisions.itertuples():
        assert (row.iteration, row.action, row.label) == (sim[row.item_id]["iteration"], sim[row.item_id]["action"],
                                                         sim[row.item_id]["label"]), row.item_id
    items = project.items()
    assert sorted(items.loc[items["iteration_added"] == 1, "id"]) == sorted(
        i for i, d in sim.items() if d["iteration"] == 0)
    for summary, row in zip(app, sim_rows[1:]):
        for key, sim_key in (("val_accuracy", "val_accuracy"), ("vendi_q1", "vendi"),
                             ("cluster_entropy", "cluster_entropy"), ("labels_spent", "labels_spent"),
                             ("fair_worst_group_accuracy", "worst_group_accuracy")):
            assert summary.metrics[key] == pytest.approx(row[sim_key], abs=1e-9), key
        assert summary.metrics["alpha"] == pytest.approx(row["alpha"], abs=1e-12)
