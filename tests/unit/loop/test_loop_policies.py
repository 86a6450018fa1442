"""The ADDE portfolio policy: arms split the budget, their choices are recorded, and regions point where the model fails."""

from __future__ import annotations

import numpy as np
import pytest

from adde_core.loop.engine import LoopConfig, region_failure
from adde_core.loop.evaluate import EvalConfig
from adde_core.loop.policies import ABLATIONS, ARM_STRATEGIES, POLICIES, AddePolicy, RegionPolicy
from adde_core.loop.simulation import SimulationData, simulate
from adde_core.loop.simulation.run import make_engine

CONFIG = LoopConfig(eval=EvalConfig(label_consistency=False))


def _blobs(seed: int = 0) -> SimulationData:
    """Four Gaussian classes in 16-d; c3 is rare in the seed (2 items), and c2/c3 overlap so the model confuses them."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 1.5, (4, 16))
    centers[3] = centers[2] + rng.normal(0.0, 0.6, 16)
    X, y, g, roles = [], [], [], []
    for role, counts in (("seed", [15, 15, 15, 2]), ("pool", [100] * 4), ("val", [40] * 4)):
        for c, n in enumerate(counts):
            X.append(centers[c] + rng.normal(0.0, 1.0, (n, 16)))
            y += [f"c{c}"] * n
            g += ["a" if i % 2 else "b" for i in range(n)]
            roles += [role] * n
    return SimulationData(np.concatenate(X).astype(np.float32) + 4.0, roles, y, groups=g, subgroup="side")


@pytest.fixture(scope="module")
def runs():
    return simulate(_blobs(), ["adde", "adde-no-div", "adde-no-adapt"], budget=60, rounds=3, seeds=1, config=CONFIG)


def test_registry_runs_the_portfolio_for_adde_and_the_region_policy_for_adde_regions():
    assert isinstance(POLICIES["adde"](), AddePolicy)
    assert isinstance(POLICIES["adde-regions"](), RegionPolicy)
    assert set(ABLATIONS) >= {"adde", "adde-no-gen", "adde-no-div", "adde-no-adapt"}
    assert set(ARM_STRATEGIES.values()) <= set(POLICIES)


def test_arm_labels_are_recorded_per_round_and_add_up_to_the_batch(runs):
    adde = runs[(runs["strategy"] == "adde") & (runs["round"] > 0)]
    arm_cols = [c for c in runs.columns if c.startswith("arm_labels_")]
    assert {"arm_labels_region", "arm_labels_margin", "arm_labels_coverage", "arm_labels_typicality"} <= set(arm_cols)
    assert (adde[arm_cols].fillna(0).sum(axis=1) == 20).all()
    first = adde[adde["round"] == 1].iloc[0]
    assert [first[f"arm_labels_{a}"] for a in ("coverage", "margin", "region", "typicality")] == [5, 5, 5, 5]


def test_no_div_uses_only_region_and_margin_and_no_adapt_splits_evenly(runs):
    no_div = runs[(runs["strategy"] == "adde-no-div") & (runs["round"] > 0)]
    assert no_div[["arm_labels_coverage", "arm_labels_typicality"]].fillna(0).eq(0).all().all()
    no_adapt = runs[(runs["strategy"] == "adde-no-adapt") & (runs["round"] > 0)]
    for a in ("coverage", "margin", "region", "typicality"):
        assert (no_adapt[f"arm_labels_{a}"] == 5).all(), a


def test_the_adaptive_state_learns_arm_gains():
    data = _blobs()
    engine, policy = make_engine(data, "adde", budget=20, seed=0, config=CONFIG)
    from adde_core.loop.simulation.run import run_strategy

    engines: list = []
    run_strategy(data, "adde", budget=40, rounds=2, seed=0, config=CONFIG, engines=engines)
    state = engines[0].state()
    assert set(state.arm_stats) == {"region", "margin", "coverage", "typicality"}
    shares = state.arm_shares(["region", "margin", "coverage", "typicality"])
    assert sum(shares.values()) == pytest.approx(1.0) and min(shares.values()) > 0


def test_a_class_the_model_confuses_gets_a_model_error_region_ranked_by_failure():
    data = _blobs()
    engine, _ = make_engine(data, "adde", budget=20, seed=0, config=CONFIG)
    ctx = engine.context()
    plan = engine.plan(ctx)
    ids = [r.region_id for r in plan.regions]
    err = [r for r in ids if r.startswith("model_error/c3") or r.startswith("model_error/c2")]
    assert err, ids
    failure = region_failure(ctx, plan.regions, subgroup="side")
    pri = [failure[r]["priority"] for r in ids]
    assert pri == sorted(pri, reverse=True)  # the plan is ordered by where the model fails
    assert ids[0].startswith("model_error/")
    assert "val error" in plan.reasons[ids[0]]
    # The region's val members are the misclassified ones (only val labels were read).
    ws = ctx.ws
    region = plan.regions[0]
    rows = ws.rows(region.member_ids)
    val = rows[ws.role[rows] == "val"]
    pred = ctx.head.predict(ws.X[val])
    assert (pred != ws.label[val].astype(str)).all()
