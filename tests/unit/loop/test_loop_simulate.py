"""Headless simulation: label accounting, determinism, oracle isolation, report files and the label-efficiency maths."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from adde_core.errors import AddeError
from adde_core.loop.simulate import (
    SIM_STRATEGIES,
    MarginUncertainty,
    PoolOracle,
    SimulationData,
    StrategyView,
    full_data_accuracy,
    simulate,
)
from adde_core.loop.simulate_report import labels_to_target, summarize, write_report

STRATEGIES = ["seed-only", "random", "uncertainty", "mads-naive", "adde-no-gen"]
BUDGET, ROUNDS, BATCH = 40, 2, 20


def _blobs(seed: int = 0, *, ids: bool = True) -> SimulationData:
    """Four overlapping Gaussian classes in 16-d; class c3 is rare in the seed (3 items) but common in the pool."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 1.2, (4, 16))

    def draw(counts: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        X, y, g = [], [], []
        for c, n in enumerate(counts):
            X.append(centers[c] + rng.normal(0.0, 1.0, (n, 16)))
            y += [f"c{c}"] * n
            g += [f"c{c}|{'a' if i % 2 else 'b'}" for i in range(n)]
        return np.concatenate(X).astype(np.float32) + 4.0, np.array(y), np.array(g)

    Xs, ys, _ = draw([20, 20, 20, 3])
    Xp, yp, _ = draw([120, 120, 120, 120])
    Xv, yv, gv = draw([40, 40, 40, 40])
    return SimulationData(X_seed=Xs, y_seed=ys, X_pool=Xp, y_pool=yp, X_val=Xv, y_val=yv, groups_val=gv,
                          ids_pool=[f"p{i}" for i in range(len(Xp))] if ids else None)


@pytest.fixture(scope="module")
def data() -> SimulationData:
    return _blobs()


@pytest.fixture(scope="module")
def results(data: SimulationData) -> pd.DataFrame:
    return simulate(data, STRATEGIES, budget=BUDGET, rounds=ROUNDS, seeds=2)


def test_one_row_per_seed_strategy_round(results):
    assert len(results) == 2 * len(STRATEGIES) * (ROUNDS + 1)
    counts = results.groupby(["seed", "strategy"]).size()
    assert (counts == ROUNDS + 1).all()
    assert set(results["strategy"]) == set(STRATEGIES)
    assert results[["val_accuracy", "val_macro_f1", "worst_group_accuracy", "bias_amplification"]].notna().all().all()
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
    # It adds pseudo-labelled items without spending labels (at most batch a round).
    assert naive["added_pseudo"].max() > 0
    assert (naive["added_pseudo"] <= naive["round"] * BATCH).all()
    seed_only = results[results["strategy"] == "seed-only"]
    assert seed_only.groupby("seed")["val_accuracy"].nunique().eq(1).all()  # a flat line


def test_round_zero_is_the_same_for_every_strategy(results):
    r0 = results[results["round"] == 0]
    for _, g in r0.groupby("seed"):
        assert g["val_accuracy"].nunique() == 1 and g["vendi"].nunique() == 1


def test_rows_are_deterministic_per_seed(data, results):
    again = simulate(data, ["random", "adde-no-gen"], budget=BUDGET, rounds=ROUNDS, seeds=[1])
    cols = [c for c in again.columns if c != "seconds"]
    ref = results[(results["seed"] == 1) & results["strategy"].isin(["random", "adde-no-gen"])]
    pd.testing.assert_frame_equal(again[cols].reset_index(drop=True), ref[cols].reset_index(drop=True))


def test_strategies_never_see_pool_labels(data, monkeypatch):
    # By construction: the view strategies get has no field holding pool labels or pool groups.
    fields = {f.name for f in dataclasses.fields(StrategyView)}
    assert not fields & {"y_pool", "groups_pool"}
    view = data.view()
    assert not any(np.array_equal(np.asarray(getattr(view, f), dtype=object), data.y_pool.astype(object))
                   for f in fields if getattr(view, f) is not None and np.ndim(getattr(view, f)) == 1)
    # And by behaviour: permuting the pool's oracle labels cannot change what is asked for first.
    seen: dict[str, list[np.ndarray]] = {}

    class Recording(MarginUncertainty):
        def acquire(self, ctx):
            acq = super().acquire(ctx)
            seen.setdefault(tag, []).append(acq.pool_idx.copy())
            return acq

    monkeypatch.setitem(SIM_STRATEGIES, "recording", Recording)
    shuffled = dataclasses.replace(data, y_pool=np.random.default_rng(5).permutation(data.y_pool))
    for tag, d in (("true", data), ("shuffled", shuffled)):
        simulate(d, ["recording"], budget=BUDGET, rounds=ROUNDS, seeds=[0])
    np.testing.assert_array_equal(seen["true"][0], seen["shuffled"][0])


def test_oracle_counts_every_label_and_judges_by_the_reference():
    class Ref:
        classes_ = np.array(["a", "b"])

        def predict_proba(self, X):
            return np.asarray(X, dtype=float)

    oracle = PoolOracle(np.array(["a", "b", "b"]), Ref())
    assert oracle.label_pool(np.array([2, 0])).tolist() == ["b", "a"]
    ok = oracle.judge_generated(np.array([[0.6, 0.4], [0.6, 0.4], [0.5, 0.5], [0.1, 0.9]]), ["a", "b", "a", "z"])
    assert ok.tolist() == [True, False, True, False]  # p >= 0.5 and top class; unknown label rejected
    assert oracle.spent == 6  # generated items cost a label whether accepted or not


def test_generation_strategies_are_skipped_without_images(data):
    assert not data.can_generate
    got = simulate(data, ["static-aug", "random"], budget=10, rounds=1, seeds=1)
    assert set(got["strategy"]) == {"random"}
    assert "static-aug" in got.attrs["skipped"] and "images" in got.attrs["skipped"]["static-aug"]


def test_full_data_accuracy_and_bad_arguments(data):
    acc = full_data_accuracy(data)
    assert 0.0 <= acc <= 1.0
    with pytest.raises(AddeError, match="Unknown simulation strategies"):
        simulate(data, ["nope"], budget=10, rounds=1, seeds=1)
    with pytest.raises(AddeError, match="fewer than"):
        simulate(data, ["random"], budget=10_000, rounds=2, seeds=1)


def test_from_arrays_splits_roles_and_requires_labels():
    X = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    roles = ["seed", "seed", "pool", "pool", "val", "val", "ood", "other"]
    labels = ["a", "b", "a", "b", "a", "b", "a", "a"]
    d = SimulationData.from_arrays(X, roles, labels, groups=list("xyxyxyxy"))
    assert (len(d.X_seed), len(d.X_pool), len(d.X_val), len(d.X_ood)) == (2, 2, 2, 1)
    assert d.groups_val.tolist() == ["x", "y"]
    with pytest.raises(AddeError, match="oracle label"):
        SimulationData.from_arrays(X, roles, ["a", "b", None, "b", "a", "b", "a", "a"])


def test_labels_to_target_matches_hand_interpolation():
    labels, acc = [0, 10, 20, 30], [0.5, 0.6, 0.8, 0.9]
    assert labels_to_target(labels, acc, 0.7) == pytest.approx(15.0)  # 10 + (0.7-0.6)/(0.8-0.6) * 10
    assert labels_to_target(labels, acc, 0.9) == pytest.approx(30.0)
    assert labels_to_target(labels, acc, 0.4) == 0.0
    assert math.isnan(labels_to_target(labels, acc, 0.95))


def test_summarize_on_a_hand_made_curve():
    rows = []
    for seed, shift in ((0, 0.0), (1, 0.02)):
        for r, a in enumerate([0.5, 0.6, 0.8]):
            rows.append({"seed": seed, "strategy": "s", "round": r, "labels_spent": 10 * r, "items_added": 10 * r,
                         "val_accuracy": a + shift, "worst_group_accuracy": a, "bias_amplification": 0.1,
                         "vendi": 5.0, "cluster_entropy": 0.5, "ood_accuracy": math.nan})
    frame = pd.DataFrame(rows)
    frame.attrs.update({"batch": 10, "budget": 20})
    s = summarize(frame, full_accuracy=0.7 / 0.95)  # target 0.70
    # Mean curve: 0.51, 0.61, 0.81 -> reaches 0.70 at 10 + 0.09/0.20 * 10 = 14.5 labels.
    assert s.loc["s", "labels_to_95"] == pytest.approx(14.5)
    assert s.loc["s", "seeds_reaching_95"] == 2
    # AULC: trapezoid over labels 0..20 divided by 20: (0.5+0.6)/4 + (0.6+0.8)/4 = 0.625 (seed 0), +0.02 (seed 1).
    assert s.loc["s", "aulc_mean"] == pytest.approx(0.635)
    assert s.loc["s", "final_val_accuracy_mean"] == pytest.approx(0.81)


def test_report_files_are_written(results, data, tmp_path):
    summary = summarize(results, full_data_accuracy(data))
    assert list(summary.index) == STRATEGIES
    files = write_report(results, summary, tmp_path, command="python benchmarks/simulate_demo.py --quick")
    for key in ("results_csv", "results_json", "summary_csv", "learning_curves", "worst_group", "bias", "report"):
        assert files[key].exists() and files[key].stat().st_size > 0, key
    assert files["learning_curves"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    back = pd.read_csv(files["results_csv"])
    assert len(back) == len(results)
    report = files["report"].read_text()
    assert "python benchmarks/simulate_demo.py --quick" in report and "learning_curves.png" in report
