"""Whole-pool ranking past POOL_RANK_MAX: set-based strategies rank a uniform sample, per-item ones the whole pool."""

from __future__ import annotations

import numpy as np
import pytest

from adde_core.acquisition.acquire import POOL_RANK_MAX, rank_pool
from adde_core.loop.engine import LoopConfig
from adde_core.loop.evaluate import EvalConfig
from adde_core.loop.simulation import SimulationData
from adde_core.loop.simulation.run import make_engine


@pytest.fixture(scope="module")
def ctx():
    rng = np.random.default_rng(0)
    centers = rng.normal(0.0, 3.0, (3, 8))
    X, y, roles = [], [], []
    for role, n in (("seed", 10), ("pool", 400), ("val", 20)):
        for c in range(3):
            X.append(centers[c] + rng.normal(size=(n, 8)))
            y += [f"c{c}"] * n
            roles += [role] * n
    data = SimulationData(np.concatenate(X).astype(np.float32), roles, y)
    engine, _ = make_engine(data, "adde", budget=20, seed=0, config=LoopConfig(eval=EvalConfig(label_consistency=False)))
    return engine.context()


def test_set_based_strategies_rank_a_sample_past_the_limit(ctx):
    n_pool = int(ctx.ws.available.sum())
    sampled = rank_pool(ctx.ws, ctx.head, k=20, strategy="uherding", target_failures=True, max_pool=300)
    assert sampled.summary == {"n_pool": n_pool, "n_ranked": 300, "n_candidates": 20}
    again = rank_pool(ctx.ws, ctx.head, k=20, strategy="uherding", target_failures=True, max_pool=300)
    assert again.frame["id"].tolist() == sampled.frame["id"].tolist()  # the sample is seeded
    assert ctx.ws.available[ctx.ws.rows(sampled.frame["id"])].all()


def test_per_item_strategies_and_small_pools_rank_everything(ctx):
    n_pool = int(ctx.ws.available.sum())
    margin = rank_pool(ctx.ws, ctx.head, k=20, strategy="margin", max_pool=300)
    assert margin.summary["n_ranked"] == n_pool
    full = rank_pool(ctx.ws, ctx.head, k=20, strategy="uherding", max_pool=None)
    default = rank_pool(ctx.ws, ctx.head, k=20, strategy="uherding")  # 1,200 < POOL_RANK_MAX: unchanged
    assert n_pool < POOL_RANK_MAX
    assert full.frame["id"].tolist() == default.frame["id"].tolist() and default.summary["n_ranked"] == n_pool
