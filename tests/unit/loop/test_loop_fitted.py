"""Fitted heads and reference spaces stored with the project: round trips, reuse by a new process, invalidation."""

from __future__ import annotations

import numpy as np
import pytest

from adde_core.loop.engine import Engine
from adde_core.loop.evaluate import ReferenceSpace, reference_key, reference_space
from adde_core.loop.fitted import FittedStore
from adde_core.loop.storage import MemoryStorage
from adde_core.model.head import LinearHead, fit_head


def _storage(n: int = 120, d: int = 8, seed: int = 0) -> MemoryStorage:
    rng = np.random.default_rng(seed)
    roles = np.array(["seed"] * 30 + ["pool"] * 60 + ["val"] * 30, dtype=object)
    labels = np.array([f"c{i % 3}" for i in range(n)], dtype=object)
    labels[roles == "pool"] = None
    X = rng.normal(size=(n, d)).astype(np.float32) + np.repeat(np.eye(3, d) * 3, n // 3, axis=0)
    return MemoryStorage([f"i{i:03d}" for i in range(n)], X, roles, labels, np.full(n, "real", dtype=object))


def test_head_arrays_round_trip_predict_bitwise_the_same(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 5)).astype(np.float32)
    head = fit_head(X, np.array(["a", "b", "c"] * 20))
    store = FittedStore(tmp_path)
    store.save("head", "k1", head.to_arrays())
    loaded = LinearHead.from_arrays(store.load("head", "k1"))
    np.testing.assert_array_equal(loaded.predict_proba(X), head.predict_proba(X))
    np.testing.assert_array_equal(loaded.classes_, head.classes_)
    assert store.load("head", "k2") is None  # fitted for another key: never reused


def test_reference_space_round_trip_projects_and_assigns_the_same(tmp_path):
    ws = _storage().working_set()
    ref = reference_space(ws)
    store = FittedStore(tmp_path)
    key = reference_key(ws)
    store.save("reference", key, ref.to_arrays())
    loaded = ReferenceSpace.from_arrays(store.load("reference", key), key)
    np.testing.assert_array_equal(loaded.project(ws.X), ref.project(ws.X))
    np.testing.assert_array_equal(loaded.assign(ws.X), ref.assign(ws.X))
    np.testing.assert_array_equal(loaded.kmeans.predict(ref.project(ws.X)), ref.kmeans.predict(ref.project(ws.X)))
    assert loaded.n_clusters == ref.n_clusters and loaded.key == key


def test_unreadable_or_foreign_files_are_refitted_not_trusted(tmp_path):
    store = FittedStore(tmp_path)
    store.path("head").parent.mkdir(parents=True, exist_ok=True)
    store.path("head").write_bytes(b"not an npz")
    assert store.load("head", "k") is None
    np.savez(store.path("reference"), meta=np.array('{"format": 1, "key": "k"}'), mean=np.zeros(2))
    assert store.load("reference", "k") is None  # no fitted_format: written by something else


def test_a_new_engine_reuses_the_stored_fits_and_refits_when_their_inputs_change(tmp_path, monkeypatch):
    import adde_core.loop.engine as engine_module
    import adde_core.loop.evaluate as evaluate_module

    storage = _storage()
    storage.fitted = FittedStore(tmp_path)
    first = Engine(storage).context()
    assert storage.fitted.path("head").exists() and storage.fitted.path("reference").exists()

    # A new process (fresh memo): nothing is fitted, and it predicts exactly as before.
    monkeypatch.setattr(engine_module, "fit_head", lambda *a, **k: pytest.fail("head refitted"))
    monkeypatch.setattr(engine_module, "reference_space", lambda *a, **k: pytest.fail("reference refitted"))
    again = Engine(storage).context()
    X = storage.X
    np.testing.assert_array_equal(again.head.predict_proba(X), first.head.predict_proba(X))
    np.testing.assert_array_equal(again.reference.assign(X), first.reference.assign(X))

    # D_t changes (a pool item joins with a label): the head is refitted, the reference space is not.
    fits = []
    monkeypatch.setattr(engine_module, "fit_head", lambda *a, **k: fits.append(1) or fit_head(*a, **k))
    storage.role[30], storage.label[30] = "seed", "c0"
    storage._changed()
    changed = Engine(storage).context()
    assert fits == [1]
    assert not np.array_equal(changed.head.coef_, first.head.coef_)
    assert Engine(storage).context().head.coef_ is not None and fits == [1]  # stored again, for the new D_t

    # Another seed is another head.
    Engine(storage, config=engine_module.LoopConfig(random_state=3)).context()
    assert fits == [1, 1]

    # The reference population changes (an item's vector): the reference space is refitted.
    refs = []
    monkeypatch.setattr(engine_module, "reference_space",
                        lambda ws: refs.append(1) or evaluate_module.reference_space(ws))
    storage.X = storage.X.copy()
    storage.X[0] += 1.0
    storage._changed()
    Engine(storage).context()
    assert refs == [1]


def test_project_restart_reuses_head_and_reference(embedded_project, monkeypatch):
    """What a server restart does: a new Project on the same folder fits neither again."""
    import adde_core.loop.engine as engine_module
    from adde_core.project import Project

    ctx = embedded_project.engine().context()
    root = embedded_project.root
    monkeypatch.setattr(engine_module, "fit_head", lambda *a, **k: pytest.fail("head refitted after restart"))
    monkeypatch.setattr(engine_module, "reference_space", lambda *a, **k: pytest.fail("reference refitted"))
    reopened = Project.open(root)
    try:
        again = reopened.engine().context()
        X = ctx.ws.X
        np.testing.assert_array_equal(again.head.predict_proba(X), ctx.head.predict_proba(X))
        np.testing.assert_array_equal(again.reference.assign(X), ctx.reference.assign(X))
    finally:
        reopened.close()


def test_item_arrays_are_read_once_per_item_revision_and_never_outlive_a_change(embedded_project):
    """A decision rebuilds only the decision part; a fold-in or a subgroup change re-reads the items."""
    from adde_core.store.decisions import DecisionRequest

    project = embedded_project
    storage = project.engine().storage
    ws0 = project.working_set()
    pool_id = str(ws0.ids[np.flatnonzero(ws0.role == "pool")[0]])
    project.record_decisions([DecisionRequest(item_id=pool_id, action="relabel", label="zebra", reviewer="t")])
    ws1 = project.working_set()
    assert ws1 is not ws0 and ws1.pending == {pool_id: "zebra"}
    assert ws1.X is ws0.X and ws1.role is ws0.role  # the items and the matrix were not read again
    assert project.memo.builds["item_arrays"] == 1

    project.next_iteration()  # the fold-in rewrites the item's role and label
    ws2 = project.working_set()
    r = ws2.index[pool_id]
    assert (ws2.role[r], ws2.label[r], ws2.iteration) == ("seed", "zebra", 1)
    assert ws0.role[ws0.index[pool_id]] == "pool"  # an earlier working set is never changed in place
    assert project.memo.builds["item_arrays"] == 2

    # The subgroup attribute decides ws.groups: changing it re-reads the groups.
    before = project.subgroup_attribute
    other = next(n for n in project.attribute_names() if n != before)
    project.set_subgroup(other)
    groups = project.working_set().groups
    assert groups is not None and storage.item_arrays().groups is groups
    assert sorted(set(groups)) != sorted(set(ws2.groups if ws2.groups is not None else []))


def test_project_items_are_read_once_per_item_revision_and_each_caller_gets_a_copy(embedded_project):
    from adde_core.store.decisions import DecisionRequest

    project = embedded_project
    first = project.items()
    pool_id = str(first.loc[first["role"] == "pool", "id"].iloc[0])
    first["label"] = "changed by a caller"
    project.record_decisions([DecisionRequest(item_id=pool_id, action="accept", label="zebra", reviewer="t")])
    again = project.items()
    assert project.memo.builds["items"] == 1 and not (again["label"] == "changed by a caller").any()
    project.next_iteration()
    after = project.items().set_index("id")
    assert project.memo.builds["items"] == 2 and after.loc[pool_id, "role"] == "seed"
