"""The ADDE portfolio policy: arms split the budget, their choices are recorded, and regions point where the model fails."""

from __future__ import annotations

import numpy as np
import pytest

from adde_core.loop.engine import LoopConfig, region_failure, spread_over_classes
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
    # blobs have no images: ADDE is the coverage arm alone, every label of every round
    assert (adde["arm_labels_coverage"] == 20).all()
    no_div = runs[(runs["strategy"] == "adde-no-div") & (runs["round"] > 0)]
    assert (no_div["arm_labels_margin"] == 20).all() and no_div["arm_labels_coverage"].fillna(0).eq(0).all()


def test_the_coverage_arm_is_failure_targeted_and_plain_uherding_is_not(runs):
    from adde_core.acquisition.acquire import rank_pool

    data = _blobs()
    engine, _ = make_engine(data, "adde", budget=20, seed=0, config=CONFIG)
    ctx = engine.context()
    targeted = rank_pool(ctx.ws, ctx.head, k=20, strategy="uherding", target_failures=True)
    plain = rank_pool(ctx.ws, ctx.head, k=20, strategy="uherding")
    assert any("importance" in n for n in targeted.ranking["notes"])
    assert not any("importance" in n for n in plain.ranking["notes"])
    # calibrated: the confidence shown is at the val temperature, the suggested labels are the head's
    assert (targeted.frame["suggested_label"].to_numpy() ==
            ctx.head.predict(ctx.ws.X[ctx.ws.rows(targeted.frame["id"])])).all()


def test_generation_gets_the_adaptive_share_only_where_the_data_can_generate():
    data = _blobs()
    engine, policy = make_engine(data, "adde", budget=20, seed=0, config=CONFIG)
    assert policy.shares(engine) == {"coverage": 1.0}


def test_a_class_the_model_confuses_gets_a_model_error_region_ranked_by_failure():
    data = _blobs()
    engine, _ = make_engine(data, "adde", budget=20, seed=0, config=CONFIG)
    ctx = engine.context()
    plan = engine.plan(ctx)
    ids = [r.region_id for r in plan.regions]
    err = [r for r in ids if r.startswith("model_error/c3") or r.startswith("model_error/c2")]
    assert err, ids
    failure = region_failure(ctx, plan.regions, subgroup="side")
    # the plan is ordered by where the model fails, spread over the classes the failures are about
    assert ids == spread_over_classes(sorted(ids, key=lambda r: -failure[r]["priority"]), failure)
    assert failure[ids[0]]["priority"] == max(f["priority"] for f in failure.values())
    # the confused classes' error region is among the first three, with its evidence in the reasons
    first_err = next(k for k, r in enumerate(ids) if r in err)
    assert first_err < 3, ids
    assert "val error" in plan.reasons[ids[first_err]] and "misclassifies" in plan.reasons[ids[first_err]]
    # The region's val members are the misclassified ones (only val labels were read).
    ws = ctx.ws
    region = plan.regions[first_err]
    rows = ws.rows(region.member_ids)
    val = rows[ws.role[rows] == "val"]
    pred = ctx.head.predict(ws.X[val])
    assert (pred != ws.label[val].astype(str)).all()


def test_adde_generates_only_for_regions_the_pool_cannot_serve(monkeypatch):
    import adde_core.loop.policies as policies

    data = _blobs()
    engine, _ = make_engine(data, "adde", budget=20, seed=0, config=CONFIG)
    from dataclasses import replace

    # pretend the blobs can generate (make_engine switched generation off for data without images)
    monkeypatch.setattr(engine, "config", replace(engine.config, generate=True))
    monkeypatch.setattr(engine, "can_generate", lambda ws: True)
    asked = []

    def fake_generate(region, n, weights=None):
        asked.append(region.region_id)
        raise LookupError("generation asked for")

    monkeypatch.setattr(engine, "generate", fake_generate)
    oracle = None  # never reached: nothing is reviewed
    # every plan region of the blobs has far more pool items than 5 per slot: no generation, nothing spent
    assert RegionPolicy().acquire_budget(engine, oracle, 6, fill=False, generation_only=True) == 0
    assert asked == []
    # a pool that cannot serve the region (threshold above its size): generation is asked for
    monkeypatch.setattr(policies, "POOL_SUFFICES", 10**6)
    with pytest.raises(LookupError):
        RegionPolicy().acquire_budget(engine, oracle, 6, fill=False, generation_only=True)
    assert len(asked) == 1
