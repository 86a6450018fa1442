"""The engine's plan stored with the project: a round trip, reuse by a new process, and recomputation on every input."""

from __future__ import annotations

import numpy as np
import pytest

import adde_core.loop.engine as engine_module
from adde_core.loop.fitted import FittedStore
from adde_core.loop.plan_store import load_plan, place_plan, plan_key, save_plan


def _assert_same_plan(a, b) -> None:
    assert [r.region_id for r in a.regions] == [r.region_id for r in b.regions]
    for ra, rb in zip(a.regions, b.regions):
        np.testing.assert_array_equal(np.asarray(ra.member_ids).astype(str), np.asarray(rb.member_ids).astype(str))
        np.testing.assert_array_equal(np.asarray(ra.centroid), np.asarray(rb.centroid))
        assert (ra.kind, ra.score, ra.reason, ra.centre_id) == (rb.kind, rb.score, rb.reason, rb.centre_id)
        assert (ra.label_counts, ra.role_counts, ra.subgroup_counts) == (rb.label_counts, rb.role_counts,
                                                                          rb.subgroup_counts)
        assert ra.description == rb.description
    assert a.reasons == b.reasons and a.chosen == b.chosen
    assert a.weights == b.weights and a.generation_share == b.generation_share


def test_a_plan_round_trips_and_is_placed_at_its_centre_members(embedded_project, tmp_path):
    plan = embedded_project.engine().plan()
    assert plan.regions and all(r.centroid_2d is None for r in plan.regions)
    store = FittedStore(tmp_path)
    save_plan(store, "k1", plan)
    loaded = load_plan(store, "k1", lambda _: None)
    _assert_same_plan(loaded, plan)
    assert load_plan(store, "k2", lambda _: None) is None  # stored for another key: never reused

    placed = place_plan(loaded, lambda item_id: (float(len(item_id)), 1.0))
    for r in placed.regions:
        assert r.centroid_2d == (None if r.centre_id is None else (float(len(r.centre_id)), 1.0))
    frame = placed.frame()
    with_centre = frame["region_id"].isin([r.region_id for r in placed.regions if r.centre_id is not None])
    assert frame.loc[with_centre, "x"].notna().all() and frame.loc[~with_centre, "x"].isna().all()


def test_a_new_process_reuses_the_stored_plan_and_any_input_change_recomputes_it(embedded_project, monkeypatch):
    from adde_core.project import Project

    project = embedded_project
    first = project.recommended_regions()
    root = project.root

    # A restarted server: a new Project (empty memo) reads the plan; nothing is fitted or detected.
    monkeypatch.setattr(engine_module.Engine, "plan", lambda *a, **k: pytest.fail("plan recomputed"))
    again = Project.open(root)
    _assert_same_plan(again.recommended_regions(), first)

    # Map coordinates only place the stars: the same plan, each region at its centre member.
    items = again.items()
    coords = items[["id"]].assign(x=np.arange(len(items), dtype=float), y=1.0)
    placed = again.recommended_regions(map_coords=coords)
    row = dict(zip(coords["id"].astype(str), coords["x"]))
    for r in placed.regions:
        if r.centre_id is not None:
            assert r.centroid_2d == (row[str(r.centre_id)], 1.0)
    again.close()

    # A decision changes the store revision, a new subgroup attribute or loop setting changes the key:
    # each gives a plan computed for it.
    engine = project.engine()
    base = dict(model_key=engine.storage.model_key, revision=project.store.revision(),
                subgroup=engine.storage.subgroup, state=engine.state().to_dict(), config=engine.config)
    keys = {plan_key(**base)}
    for change in ({"revision": ("other",)}, {"subgroup": "size"}, {"state": {**base["state"], "generation_share": 0.5}},
                   {"config": engine_module.LoopConfig(n_regions=7)}):
        keys.add(plan_key(**{**base, **change}))
    assert len(keys) == 5
    assert plan_key(**base) == plan_key(**dict(base))  # and the same inputs give the same key
