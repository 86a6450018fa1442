"""Stopping rules: each fires on a constructed history, and not one step before."""

from __future__ import annotations

import pytest

from adde_core.errors import AddeError
from adde_core.loop import StopDecision, StoppingConfig, should_stop
from adde_core.loop.stopping import STOP_RULES


def _history(acc, div, key="vendi"):
    return [{"iteration": t, "accuracy": a, key: d} for t, (a, d) in enumerate(zip(acc, div))]


GROWING = _history([0.60, 0.65, 0.70, 0.74, 0.78], [4.0, 4.5, 5.0, 5.5, 6.0])


def test_label_budget():
    cfg = StoppingConfig(label_budget=300)
    assert not should_stop(GROWING, 299, cfg).stop
    d = should_stop(GROWING, 312, cfg)
    assert d == StopDecision(True, "Stopped: the label budget of 300 is spent (312 labels used).", "label_budget",
                             ("label_budget",))
    assert should_stop([], 300, cfg).stop  # the budget needs no history


def test_target_accuracy():
    cfg = StoppingConfig(target_accuracy=0.9)
    assert not should_stop(_history([0.8, 0.899], [3, 4]), 10, cfg).stop
    d = should_stop(_history([0.8, 0.899, 0.9], [3, 4, 5]), 10, cfg)
    assert (d.stop, d.rule) == (True, "target_accuracy")
    assert d.reason == "Stopped: validation accuracy 90.0% reached the target of 90.0%."
    # The latest model counts, not the best one seen.
    assert not should_stop(_history([0.8, 0.92, 0.85], [3, 4, 5]), 10, cfg).stop


def test_max_iterations_counts_refinement_iterations():
    cfg = StoppingConfig(max_iterations=4)
    assert not should_stop(GROWING[:4], 0, cfg).stop  # t = 0..3: three refinement iterations
    d = should_stop(GROWING, 0, cfg)
    assert (d.stop, d.rule, d.reason) == (True, "max_iterations",
                                          "Stopped: 4 refinement iterations done, the maximum set is 4.")
    # Without an iteration column the first row is the seed model.
    plain = [{"accuracy": r["accuracy"], "vendi": r["vendi"]} for r in GROWING]
    assert not should_stop(plain[:4], 0, cfg).stop and should_stop(plain, 0, cfg).stop


def test_plateau_fires_when_both_metrics_stall_for_k_iterations():
    cfg = StoppingConfig(plateau_iterations=3, plateau_tolerance=0.005)
    acc = [0.60, 0.70, 0.702, 0.703, 0.701]
    div = [4.0, 5.0, 5.01, 5.02, 5.0]
    assert not should_stop(_history(acc[:4], div[:4]), 0, cfg).stop  # window still contains the 0.70 jump
    d = should_stop(_history(acc, div), 0, cfg)
    assert (d.stop, d.rule) == (True, "plateau")
    assert d.reason == ("Stopped: accuracy and Vendi score have plateaued — over the last 3 iterations the best "
                        "accuracy moved by +0.30 points (progress needs 0.50) and the best Vendi score by +0.40% "
                        "(needs 0.50%).")


def test_plateau_needs_both_metrics_to_stall():
    cfg = StoppingConfig(plateau_iterations=2)
    flat_acc = [0.7, 0.7, 0.7, 0.7]
    assert not should_stop(_history(flat_acc, [4.0, 4.0, 4.1, 4.2]), 0, cfg).stop  # diversity still +5 %
    assert not should_stop(_history([0.6, 0.7, 0.71, 0.72], [4.0] * 4), 0, cfg).stop  # accuracy still rising
    assert should_stop(_history(flat_acc, [4.0] * 4), 0, cfg).stop


def test_plateau_compares_best_values():
    cfg = StoppingConfig(plateau_iterations=3)
    # A dip and recovery to the old best is not progress.
    assert should_stop(_history([0.70, 0.65, 0.68, 0.70], [5.0, 4.8, 4.9, 5.0]), 0, cfg).stop
    # A slow steady climb (0.2 points per iteration, 0.6 over the window) is.
    assert not should_stop(_history([0.700, 0.702, 0.704, 0.706], [5.0] * 4), 0, cfg).stop


def test_plateau_with_diversity_column_and_dataframe():
    pd = pytest.importorskip("pandas")
    hist = _history([0.7] * 4, [0.50, 0.50, 0.501, 0.501], key="diversity")
    d = should_stop(pd.DataFrame(hist), 0, StoppingConfig())
    assert d.stop and "diversity" in d.reason
    assert not should_stop(hist, 0, StoppingConfig(plateau_iterations=None)).stop


def test_every_triggered_rule_is_listed_in_order():
    cfg = StoppingConfig(label_budget=10, target_accuracy=0.7, max_iterations=2, plateau_iterations=1)
    hist = _history([0.8, 0.8, 0.8], [5.0, 5.0, 5.0])
    d = should_stop(hist, 50, cfg)
    assert d.rule == "label_budget" and d.triggered == STOP_RULES


def test_continue_reason_reports_progress():
    cfg = StoppingConfig(label_budget=300, target_accuracy=0.9, max_iterations=10)
    d = should_stop(GROWING, 120, cfg)
    assert d == StopDecision(False, "Continue: iteration 4, 120 of 300 labels used, accuracy 78.0% (target 90.0%), "
                                    "at most 10 iterations.", None, ())


def test_missing_metric_names_the_row():
    hist = GROWING[:2] + [{"iteration": 2, "accuracy": 0.7}]
    with pytest.raises(AddeError, match="row 2 has no diversity metric"):
        should_stop(hist, 0, StoppingConfig())


@pytest.mark.parametrize("kwargs", [
    {"label_budget": 0}, {"label_budget": 2.5}, {"plateau_iterations": 0}, {"plateau_tolerance": -0.1},
    {"target_accuracy": 1.5}, {"target_accuracy": 0}, {"max_iterations": True},
])
def test_config_validation(kwargs):
    with pytest.raises(AddeError):
        StoppingConfig(**kwargs)


def test_labels_spent_must_be_a_count():
    with pytest.raises(AddeError, match="labels_spent"):
        should_stop(GROWING, -1, StoppingConfig())
