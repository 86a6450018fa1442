"""Adaptive refinement: weight, split and generator updates move as documented; UCB region choice; JSON round trips."""

from __future__ import annotations

import itertools
import json
import math
import random

import pytest

from adde_core.errors import AddeError
from adde_core.loop import AdaptiveState, IterationOutcome, RegionBandit, update_state
from adde_core.loop.adaptive import FLAG_AMBIGUOUS, FLAG_BIASED, FLAG_EDGE_CASE, GENERATION_SHARE_BOUNDS, SOURCES
from adde_core.ranking import RankingWeights


def _exp_weights(w, r, lr=0.3):
    """Reference exponentiated-gradient step without a floor."""
    raw = [wi * math.exp(lr * ri) for wi, ri in zip(w, r)]
    return [x / sum(raw) for x in raw]


# ------------------------------------------------------------------------------------- ranking weights
def test_diversity_heavy_outcome_raises_beta_exactly():
    new, effects = update_state(AdaptiveState(), IterationOutcome(val_gain=0.01, diversity_gain=0.12))
    r = 0.11 / 0.26  # (d - v) / (2 (|v| + |d|))
    assert new.weights.as_tuple() == pytest.approx(_exp_weights((0.4, 0.4, 0.2), (-r, r, 0.0)), abs=1e-12)
    assert new.weights.as_tuple() == pytest.approx((0.350062, 0.451220, 0.198718), abs=1e-6)
    assert new.weights.beta > 0.4 > new.weights.alpha
    assert effects[:2] == ["α 0.40 → 0.35: diversity gain +0.120 outweighed val gain +0.010",
                           "β 0.40 → 0.45: diversity gain +0.120 outweighed val gain +0.010"]


def test_val_heavy_outcome_raises_alpha():
    new, effects = update_state(AdaptiveState(), IterationOutcome(val_gain=0.05, diversity_gain=0.01))
    assert new.weights.alpha > 0.4 > new.weights.beta
    assert new.weights.as_tuple() == pytest.approx((0.440306, 0.360492, 0.199203), abs=1e-6)
    assert effects[0] == "α 0.40 → 0.44: val gain +0.050 outweighed diversity gain +0.010"


def test_val_loss_with_diversity_gain_raises_beta():
    new, _ = update_state(AdaptiveState(), IterationOutcome(val_gain=-0.02, diversity_gain=0.01))
    assert new.weights.beta > new.weights.alpha


def test_low_generation_acceptance_lowers_split_and_raises_gamma():
    outcome = IterationOutcome(shown={"retrieve": 20, "generate": 20}, accepted={"retrieve": 16, "generate": 2})
    new, effects = update_state(AdaptiveState(), outcome)
    p_gen, p_ret = 3 / 22, 17 / 22  # Beta(1, 1)-smoothed acceptance
    assert new.generation_share == pytest.approx(0.5 + 0.3 * (p_gen / (p_gen + p_ret) - 0.5))  # 0.395
    assert new.generation_share == pytest.approx(0.395)
    r_q = (0.5 - p_gen) / 0.5
    assert new.weights.as_tuple() == pytest.approx(_exp_weights((0.4, 0.4, 0.2), (0, 0, r_q)), abs=1e-12)
    assert new.weights.gamma == pytest.approx(0.237196, abs=1e-6)
    assert "γ 0.20 → 0.24: 2 of 20 generated items accepted (smoothed rate 0.14 vs target 0.50)" in effects
    assert ("generation share 0.50 → 0.40: generated acceptance 0.14 < retrieved acceptance 0.77 "
            "(2 of 20 vs 16 of 20)") in effects


def test_low_generation_acceptance_raises_gamma_even_with_gains():
    outcome = IterationOutcome(shown={"retrieve": 20, "generate": 20}, accepted={"retrieve": 16, "generate": 2},
                               val_gain=0.01, diversity_gain=0.12)
    new, _ = update_state(AdaptiveState(), outcome)
    assert new.weights.gamma > 0.2 and new.weights.beta > new.weights.alpha


def test_high_generation_acceptance_raises_split_to_its_bound_and_relaxes_gamma():
    outcome = IterationOutcome(shown={"retrieve": 20, "generate": 20}, accepted={"retrieve": 2, "generate": 19})
    state = AdaptiveState()
    shares = []
    for _ in range(30):
        state, _ = update_state(state, outcome)
        shares.append(state.generation_share)
    assert shares[0] > 0.5 and state.weights.gamma < 0.2
    assert all(b >= a for a, b in itertools.pairwise(shares))
    assert max(shares) == pytest.approx(20 / 22 / (20 / 22 + 3 / 22), abs=1e-4)  # target 0.8696, inside the bounds
    low = IterationOutcome(shown={"retrieve": 100, "generate": 100}, accepted={"retrieve": 100, "generate": 0})
    state = AdaptiveState()
    for _ in range(30):
        state, _ = update_state(state, low)
    assert state.generation_share == pytest.approx(GENERATION_SHARE_BOUNDS[0])


def test_no_evidence_changes_nothing():
    state = AdaptiveState(weights=RankingWeights(0.5, 0.3, 0.2), generation_share=0.7)
    new, effects = update_state(state, IterationOutcome())
    assert new.weights == state.weights and new.generation_share == 0.7
    assert new.iteration == 1
    assert effects == ["nothing changed: no gains, no candidates shown and no flags to learn from"]


def test_floor_is_applied_exactly():
    state = AdaptiveState(weights=RankingWeights(0.98, 0.01, 0.01))
    new, effects = update_state(state, IterationOutcome(), learning_rate=0.0)
    assert new.weights.as_tuple() == pytest.approx((0.9, 0.05, 0.05), abs=1e-12)
    assert "β 0.01 → 0.05: kept at or above the floor 0.05 so no term dies" in effects


def test_weights_sum_to_one_and_stay_above_floor_on_random_outcomes():
    rng = random.Random(0)
    for start in (RankingWeights(), RankingWeights(1, 0, 0), RankingWeights(0, 0, 5)):
        state = AdaptiveState(weights=start)
        for _ in range(200):
            shown = {s: rng.randint(0, 30) for s in SOURCES}
            accepted = {s: rng.randint(0, n) for s, n in shown.items()}
            outcome = IterationOutcome(shown=shown, accepted=accepted, val_gain=rng.uniform(-0.1, 0.1) ** 3,
                                       diversity_gain=rng.choice([0.0, rng.uniform(-0.5, 0.5)]))
            state, _ = update_state(state, outcome, learning_rate=rng.choice([0.3, 1.0]))
            w = state.weights.as_tuple()
            assert sum(w) == pytest.approx(1.0, abs=1e-12)
            assert min(w) >= 0.05 - 1e-12
            assert GENERATION_SHARE_BOUNDS[0] <= state.generation_share <= GENERATION_SHARE_BOUNDS[1]


def test_persistent_diversity_wins_drive_alpha_to_the_floor():
    state = AdaptiveState()
    for _ in range(100):
        state, _ = update_state(state, IterationOutcome(val_gain=0.0, diversity_gain=0.1))
    assert state.weights.alpha == pytest.approx(0.05)
    assert state.weights.beta > 0.7


# ------------------------------------------------------------------------------------------------ flags
def test_biased_content_flags_lower_that_generator_only():
    flags = [(FLAG_BIASED, "generate", "cvae", "r1")] * 3 + [(FLAG_BIASED, "retrieve", None, "r1")]
    outcome = IterationOutcome(shown={"retrieve": 5, "generate": 20}, shown_by_generator={"cvae": 10, "augment": 10},
                               flags=flags)
    state = AdaptiveState(generator_weights={"augment": 0.8})
    new, effects = update_state(state, outcome)
    assert new.generator_weight("cvae") == pytest.approx(0.5 ** (0.3 / 0.2))  # 0.3536
    assert new.generator_weight("augment") == 0.8
    assert new.generator_weight("diffusers") == 1.0
    assert "generator cvae weight 1.00 → 0.35: 3 of 10 generated items flagged biased content" in effects
    assert "1 retrieved item(s) flagged biased content: check the pool's sources" in effects
    for _ in range(10):
        new, _ = update_state(new, outcome)
    assert new.generator_weight("cvae") == pytest.approx(0.05)  # the floor


def test_generated_flag_without_generator_key_is_rejected():
    with pytest.raises(AddeError, match="generator key"):
        IterationOutcome(shown={"generate": 1}, flags=[(FLAG_BIASED, "generate", None, None)])


def test_edge_case_marks_region_until_it_is_revisited():
    outcome = IterationOutcome(shown={"retrieve": 4}, flags=[(FLAG_EDGE_CASE, "retrieve", None, "cluster-3"),
                                                            (FLAG_EDGE_CASE, "retrieve", None, "cluster-3"),
                                                            (FLAG_EDGE_CASE, "retrieve", None, None)])
    state, effects = update_state(AdaptiveState(), outcome)
    assert state.regions_to_revisit == ("cluster-3",)
    assert "region cluster-3 marked for more acquisition: 2 item(s) flagged edge case" in effects
    assert state.flag_counts == {FLAG_EDGE_CASE: 3}
    # Acquiring elsewhere keeps the mark; acquiring there with a new edge case keeps it; without one clears it.
    state, _ = update_state(state, IterationOutcome(region_val_gain={"cluster-1": 0.01}))
    assert state.regions_to_revisit == ("cluster-3",)
    again = IterationOutcome(shown={"generate": 1}, shown_by_generator={"cvae": 1}, region_val_gain={"cluster-3": 0.0},
                             flags=[(FLAG_EDGE_CASE, "generate", "cvae", "cluster-3")])
    state, _ = update_state(state, again)
    assert state.regions_to_revisit == ("cluster-3",)
    state, effects = update_state(state, IterationOutcome(region_diversity_gain={"cluster-3": 0.02}))
    assert state.regions_to_revisit == ()
    assert "region cluster-3 revisited with no new edge cases: no longer marked" in effects


def test_ambiguous_flags_are_counted_and_reported():
    flags = [(FLAG_AMBIGUOUS, "generate", "cvae", "r"), (FLAG_AMBIGUOUS, "retrieve", None, "r"),
             (FLAG_AMBIGUOUS, "generate", "cvae", None)]
    outcome = IterationOutcome(shown={"retrieve": 3, "generate": 3}, accepted={"retrieve": 3, "generate": 1},
                               shown_by_generator={"cvae": 3}, flags=flags)
    state, effects = update_state(AdaptiveState(flag_counts={FLAG_AMBIGUOUS: 4}), outcome)
    assert state.flag_counts == {FLAG_AMBIGUOUS: 7}
    assert "3 item(s) flagged ambiguous (1 retrieved, 2 generated): they count against label consistency" in effects
    assert state.generator_weight("cvae") == 1.0


def test_flag_names_match_the_store():
    from adde_core.store.models import REVIEW_FLAGS

    assert {FLAG_BIASED, FLAG_EDGE_CASE, FLAG_AMBIGUOUS} == set(REVIEW_FLAGS)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"shown": {"retrieve": 1}, "accepted": {"retrieve": 2}}, "accepted but only"),
    ({"shown": {"pool": 1}}, "unknown source"),
    ({"shown": {"generate": 1}, "shown_by_generator": {"cvae": 2}}, "adds up to 2"),
    ({"flags": [("spam", "retrieve", None, None)]}, "unknown flag"),
    ({"flags": [(FLAG_AMBIGUOUS, "web", None, None)]}, "unknown source"),
    ({"val_gain": float("nan")}, "val_gain"),
    ({"shown": {"retrieve": -1}}, "whole number"),
])
def test_outcome_validation(kwargs, match):
    with pytest.raises(AddeError, match=match):
        IterationOutcome(**kwargs)


def test_update_state_validates_hyperparameters():
    with pytest.raises(AddeError, match="learning_rate"):
        update_state(AdaptiveState(), IterationOutcome(), learning_rate=1.5)
    with pytest.raises(AddeError, match="weight_floor"):
        update_state(AdaptiveState(), IterationOutcome(), weight_floor=0.4)
    with pytest.raises(AddeError, match="generation_share"):
        AdaptiveState(generation_share=0.95)


# ----------------------------------------------------------------------------------------------- regions
def test_ucb_picks_unvisited_first_then_exact_ucb_order():
    bandit = RegionBandit({"a": (2, 0.10), "b": (1, 0.05), "c": (1, 0.0)})
    assert bandit.total_visits == 4
    bonus = math.sqrt(math.log(4))  # sqrt(ln N / n) for n = 1
    assert bandit.ucb("a", c=0.05) == pytest.approx(0.10 + 0.05 * math.sqrt(math.log(4) / 2))  # 0.141628
    assert bandit.ucb("a", c=0.05) == pytest.approx(0.141628, abs=1e-6)
    assert bandit.ucb("b", c=0.05) == pytest.approx(0.05 + 0.05 * bonus)  # 0.108871
    assert bandit.ucb("d") == math.inf
    assert bandit.select(["c", "b", "a", "d", "e"], 3, c=0.05) == ["d", "e", "a"]
    assert bandit.select(["c", "b", "a", "e", "d"], 5, c=0.05) == ["e", "d", "a", "b", "c"]
    # More exploration favours the less-visited b: 0.05 + 0.2 * 1.1774 = 0.2855 > 0.1 + 0.2 * 0.8326 = 0.2665.
    assert bandit.select(["a", "b", "c"], 2, c=0.2) == ["b", "a"]
    assert bandit.select(["a", "b", "c"], 2, c=0.0) == ["a", "b"]
    assert bandit.select(["a"], 0) == []


def test_ucb_ties_keep_input_order():
    bandit = RegionBandit({"x": (3, 0.2), "y": (3, 0.2)})
    assert bandit.select(["x", "y"], 2) == ["x", "y"]
    assert bandit.select(["y", "x", "y"], 2) == ["y", "x"]


def test_bandit_update_is_a_running_mean_and_round_trips_through_json():
    bandit = RegionBandit()
    for reward in (0.1, 0.3, -0.1):
        bandit.update("r1", reward)
    bandit.update("r2", 0.5)
    assert bandit.stats["r1"] == (3, pytest.approx(0.1))
    again = RegionBandit.from_dict(json.loads(json.dumps(bandit.to_dict())))
    assert again == bandit
    with pytest.raises(AddeError):
        bandit.update("r1", float("inf"))


def test_update_state_feeds_region_rewards_to_the_bandit():
    outcome = IterationOutcome(region_val_gain={"r1": 0.04, "r2": 0.0}, region_diversity_gain={"r1": 0.02, "r3": 0.1})
    state, effects = update_state(AdaptiveState(region_stats={"r1": (1, 0.0)}), outcome)
    assert state.region_stats == {"r1": (2, pytest.approx(0.015)), "r2": (1, 0.0), "r3": (1, pytest.approx(0.05))}
    assert "region rewards: r1 +0.030, r2 +0.000, r3 +0.050" in effects
    state, _ = update_state(state, IterationOutcome(region_val_gain={"r2": 0.1}), region_reward_mix=1.0)
    assert state.region_stats["r2"] == (2, pytest.approx(0.05))


def test_select_regions_puts_marked_regions_first():
    state = AdaptiveState(region_stats={"a": (1, 0.3), "b": (1, 0.0)}, regions_to_revisit=("b", "gone"))
    assert state.select_regions(["a", "b", "c"], 2) == ["b", "c"]
    assert state.select_regions(["a", "b", "c"], 3) == ["b", "c", "a"]


def test_allocate_splits_the_budget_by_share_and_generator_weight():
    state = AdaptiveState(generation_share=0.4, generator_weights={"cvae": 0.5})
    assert state.allocate(50, ["cvae", "augment"]) == {"retrieve": 30, "generate": {"cvae": 7, "augment": 13}}
    assert state.allocate(50) == {"retrieve": 50, "generate": {}}
    alloc = state.allocate(7, ["a", "b", "c"])
    assert alloc == {"retrieve": 4, "generate": {"a": 1, "b": 1, "c": 1}}


def test_state_round_trips_through_json():
    outcome = IterationOutcome(shown={"retrieve": 10, "generate": 10}, accepted={"retrieve": 7, "generate": 3},
                               val_gain=0.02, diversity_gain=0.05, shown_by_generator={"cvae": 10},
                               region_val_gain={"r1": 0.02}, flags=[(FLAG_BIASED, "generate", "cvae", "r1"),
                                                                    (FLAG_EDGE_CASE, "generate", "cvae", "r2")])
    state, _ = update_state(AdaptiveState(), outcome)
    data = json.loads(json.dumps(state.to_dict()))
    again = AdaptiveState.from_dict(data)
    assert again == state
    assert again.to_dict() == state.to_dict()
    assert AdaptiveState.from_dict(AdaptiveState().to_dict()) == AdaptiveState()
    with pytest.raises(AddeError, match="version"):
        AdaptiveState.from_dict({**data, "version": 99})
    with pytest.raises(AddeError, match="malformed"):
        AdaptiveState.from_dict({**data, "region_stats": {"r1": {"mean": 0.1}}})


def test_gate_rejected_generations_bring_the_share_to_5_percent_by_round_3():
    # Every round the generator makes 12 images and the gate keeps none: nothing generated is shown.
    outcome = IterationOutcome(shown={"retrieve": 30}, accepted={"retrieve": 27}, val_gain=0.01,
                               gate_rejected={"cvae": 12})
    state = AdaptiveState(generation_share=0.2)
    shares = []
    for _ in range(3):
        state, effects = update_state(state, outcome)
        shares.append(state.generation_share)
    assert shares[1] <= 0.05 and shares[2] <= 0.05
    assert shares[0] == pytest.approx(0.05)  # quartered in the first failing round
    assert state.generator_weight("cvae") < 1.0
    assert any("rejected by the gate" in e for e in effects)


def test_accepted_generations_are_not_cut():
    outcome = IterationOutcome(shown={"retrieve": 20, "generate": 10}, accepted={"retrieve": 18, "generate": 9},
                               gate_rejected={"cvae": 2}, accepted_by_generator={"cvae": 9},
                               shown_by_generator={"cvae": 10})
    new, _ = update_state(AdaptiveState(generation_share=0.2), outcome)
    assert new.generation_share > 0.2


def test_a_state_stored_with_the_removed_arm_split_still_loads():
    stored = AdaptiveState(generation_share=0.3).to_dict() | {"arm_stats": {"coverage": [8.0, 0.1, 0.01]}}
    assert AdaptiveState.from_dict(stored).generation_share == pytest.approx(0.3)
