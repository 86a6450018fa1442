"""Headless simulation on the engine: label accounting, determinism, oracle isolation, report files, the maths."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from adde_core.errors import AddeError
from adde_core.loop.policies import POLICIES
from adde_core.loop.simulation import SimulationData, full_data_accuracy, simulate
from adde_core.loop.simulation.report import labels_to_target, summarize, write_report

STRATEGIES = ["seed-only", "random", "margin", "coreset", "mads-naive", "adde-no-gen"]
BUDGET, ROUNDS, BATCH = 40, 2, 20


def _blobs(seed: int = 0) -> SimulationData:
    """Four overlapping Gaussian classes in 16-d; class c3 is rare in the seed (3 items) but common in the pool."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 1.2, (4, 16))
    X, y, g, roles = [], [], [], []
    for role, counts in (("seed", [20, 20, 20, 3]), ("pool", [120] * 4), ("val", [40] * 4)):
        for c, n in enumerate(counts):
            X.append(centers[c] + rng.normal(0.0, 1.0, (n, 16)))
            y += [f"c{c}"] * n
            g += ["a" if i % 2 else "b" for i in range(n)]
            roles += [role] * n
    return SimulationData(np.concatenate(X).astype(np.float32) + 4.0, roles, y, groups=g, subgroup="side")


@pytest.fixture(scope="module")
def data() -> SimulationData:
    return _blobs()


@pytest.fixture(scope="module")
def results(data: SimulationData) -> pd.DataFrame:
    return simulate(data, STRATEGIES, budget=BUDGET, rounds=ROUNDS, seeds=2)


def test_one_row_per_seed_strategy_round(results):
    assert len(results) == 2 * len(STRATEGIES) * (ROUNDS + 1)
    assert (results.groupby(["seed", "strategy"]).size() == ROUNDS + 1).all()
    assert results[["val_accuracy", "val_macro_f1", "worst_group_accuracy", "bias_amplification", "vendi",
                    "cluster_entropy", "label_consistency"]].notna().all().all()
    assert results["ood_accuracy"].isna().all()  # no OOD set given


def test_labels_spent_increase_by_exactly_batch(results):
    for (_, name), g in results.groupby(["seed", "strategy"]):
        g = g.sort_values("round")
        spent = g["labels_spent"].to_numpy()
        if name in ("seed-only", "mads-naive"):
            assert (spent == 0).all(), name
        else:
            assert spent.tolist() == [BATCH * r for r in range(ROUNDS + 1)], name
            assert g["added_pool"].tolist() == spent.tolist()  # every label bought a pool item
        assert (np.diff(g["n_labelled"]) >= 0).all()
    naive = results[results["strategy"] == "mads-naive"]
    assert naive["added_pseudo"].max() > 0
    assert (naive["added_pseudo"] <= naive["round"] * BATCH).all()


def test_deterministic(data, results):
    again = simulate(data, ["margin", "adde-no-gen"], budget=BUDGET, rounds=ROUNDS, seeds=[1])
    mine = results[(results["seed"] == 1) & results["strategy"].isin(["margin", "adde-no-gen"])]
    cols = ["val_accuracy", "vendi", "labels_spent", "n_labelled"]
    pd.testing.assert_frame_equal(again[cols].reset_index(drop=True), mine[cols].reset_index(drop=True))


def test_strategies_never_see_pool_labels(data):
    storage = data.to_storage()
    ws = storage.working_set()
    assert all(lab is None for lab in ws.label[ws.role == "pool"])
    assert not ws.labelled[ws.role == "pool"].any()


def test_every_ranking_strategy_is_a_policy():
    from adde_core.ranking import STRATEGIES as RANKING

    assert set(RANKING) - {"adde"} <= set(POLICIES)
    assert {"adde", "adde-no-gen", "adde-no-div", "adde-no-adapt", "seed-only", "mads-naive", "static-aug"} <= \
        set(POLICIES)


def test_bad_arguments_are_clear(data):
    with pytest.raises(AddeError, match="Unknown simulation strategies"):
        simulate(data, ["nope"], budget=10, rounds=2, seeds=1)
    with pytest.raises(AddeError, match="at least rounds"):
        simulate(data, ["random"], budget=1, rounds=2, seeds=1)


def test_full_data_accuracy_beats_seed_only(data, results):
    seed_only = results[(results["strategy"] == "seed-only")]["val_accuracy"].mean()
    assert full_data_accuracy(data) > seed_only


def test_labels_to_target_interpolates():
    assert labels_to_target([0, 10, 20], [0.5, 0.7, 0.9], 0.8) == pytest.approx(15.0)
    assert math.isnan(labels_to_target([0, 10], [0.5, 0.6], 0.9))


def test_report_files(results, tmp_path):
    summary = summarize(results, 0.9)
    files = write_report(results, summary, tmp_path, command="python -m adde_core simulate ...")
    for path in files.values():
        assert path.stat().st_size > 0
