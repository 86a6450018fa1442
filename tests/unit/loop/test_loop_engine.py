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


def test_a_generator_is_retrained_only_when_its_training_set_grew_enough(monkeypatch):
    """Reused while every image it learnt from is still there and the set grew ≤ 25 %; retrained otherwise."""
    import numpy as np

    import adde_core.acquisition.acquire as acquire
    from adde_core.loop.engine import Engine
    from adde_core.loop.storage import MemoryStorage

    n = 40
    rng = np.random.default_rng(0)
    roles = np.array(["seed"] * 20 + ["pool"] * 20, dtype=object)
    labels = np.array([f"c{i % 2}" for i in range(20)] + [None] * 20, dtype=object)
    storage = MemoryStorage([f"i{i}" for i in range(n)], rng.normal(size=(n, 4)) + 3, roles, labels,
                            np.full(n, "real", dtype=object), paths=np.array([f"/x/{i}.png" for i in range(n)], object))
    trained = []
    monkeypatch.setattr(acquire, "train_generator", lambda ws, *a, **k: trained.append(int(ws.in_dataset.sum())) or
                        object())
    engine = Engine(storage, embed_images=lambda images: np.zeros((len(images), 4)))
    first = engine.generator(engine.context(), "cvae")
    storage.role[20:24], storage.label[20:24] = "seed", "c0"  # +4 images (20 %): reuse
    storage._changed()
    assert engine.generator(engine.context(), "cvae") is first and trained == [20]
    storage.role[24:28], storage.label[24:28] = "seed", "c1"  # 28 > 1.25 × 20: retrain
    storage._changed()
    assert engine.generator(engine.context(), "cvae") is not first and trained == [20, 28]
