"""Drive the loop on a project: close an iteration with adaptation and stopping, or run one with the oracle."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import select

from adde_core.loop.adaptive import AdaptiveState, IterationOutcome, update_state
from adde_core.loop.iteration import IterationSummary, metrics_history, next_iteration
from adde_core.loop.stopping import StopDecision, StoppingConfig, should_stop
from adde_core.review.candidates import candidates_frame, provenance_frame
from adde_core.review.decisions import VALID_ACTIONS, decision_states, record_decisions
from adde_core.store.models import CandidateSet, Iteration

if TYPE_CHECKING:
    from adde_core.embedding.base import ProgressCallback
    from adde_core.project import Project

_STATE_KEY = "adaptive_state"
_STOPPING_KEY = "stopping_config"


def adaptive_state(project: "Project") -> AdaptiveState:
    """The adaptive weights, split and region statistics carried from iteration to iteration."""
    data = project.store.get_meta(_STATE_KEY)
    return AdaptiveState.from_dict(data) if data else AdaptiveState()


def stopping_config(project: "Project") -> StoppingConfig:
    """The user's stopping rules (label budget, plateau, target accuracy, max iterations)."""
    return StoppingConfig(**(project.store.get_meta(_STOPPING_KEY) or {}))


def set_stopping_config(project: "Project", config: StoppingConfig) -> None:
    """Store the stopping rules with the project."""
    project.store.set_meta(_STOPPING_KEY, {k: getattr(config, k) for k in config.__dataclass_fields__})


def _outcome_counts(project: "Project", iteration: int) -> dict[str, Any]:
    """Shown / accepted by source and generator, flags and per-region acceptance for one iteration."""
    with project.store.transaction() as s:
        sets = {r.id: (r.mode, r.region.get("region_id")) for r in
                s.scalars(select(CandidateSet).where(CandidateSet.iteration == iteration))}
    states = decision_states(project.store)
    states = states[states["action"].notna() & (states["iteration"] == iteration)]
    source_of, region_of = {}, {}
    for set_id, (mode, region_id) in sets.items():
        for item_id in candidates_frame(project.store, set_id)["item_id"]:
            source_of[item_id], region_of[item_id] = mode, region_id
    states = states[states["item_id"].isin(source_of)]
    prov = provenance_frame(project.store, list(states["item_id"])).set_index("item_id")["generator"]
    shown: dict[str, int] = {}
    accepted: dict[str, int] = {}
    by_generator: dict[str, int] = {}
    region_accepted: dict[str, int] = {}
    flags = []
    for row in states.itertuples():
        source, region = source_of[row.item_id], region_of[row.item_id]
        shown[source] = shown.get(source, 0) + 1
        generator = str(prov.get(row.item_id)).split("@")[0] if source == "generate" else None
        if generator:
            by_generator[generator] = by_generator.get(generator, 0) + 1
        if row.action in VALID_ACTIONS:
            accepted[source] = accepted.get(source, 0) + 1
            region_accepted[region] = region_accepted.get(region, 0) + 1
        for flag in row.flags or []:
            flags.append((flag, source, generator, region))
    return {"shown": shown, "accepted": accepted, "shown_by_generator": by_generator,
            "region_accepted": region_accepted, "flags": tuple(flags)}


def _history_rows(history: pd.DataFrame) -> list[dict[str, float]]:
    return [{"iteration": int(r.iteration), "accuracy": float(r.val_accuracy), "vendi": float(r.vendi_q1)}
            for r in history.itertuples() if pd.notna(getattr(r, "val_accuracy", float("nan")))]


def check_stop(project: "Project") -> StopDecision:
    """Apply the project's stopping rules to its recorded history."""
    history = metrics_history(project)
    spent = int(decision_states(project.store)["action"].notna().sum())
    return should_stop(_history_rows(history), spent, stopping_config(project))


def advance(project: "Project", *, model_key: str | None = None) -> IterationSummary:
    """Close the current iteration: fold D_valid in, retrain, measure, adapt the weights, check the stopping rules.

    The adaptive state before the update is stored with the new iteration row, the
    updated state in the project, and each visible change (how weights, the generation
    split and generator weights moved, and which flags caused what) as ``effects``.
    """
    t = project.current_iteration
    state = adaptive_state(project)
    counts = _outcome_counts(project, t)
    summary = next_iteration(project, model_key=model_key, config={"adaptive_state": state.to_dict(),
                                                                    "weights": state.weights.__dict__})
    history = metrics_history(project).set_index("iteration")
    before, after = history.loc[t], history.loc[t + 1]
    val_gain = float(after.get("val_accuracy", 0.0) - before.get("val_accuracy", 0.0))
    v0 = float(before.get("vendi_q1", 0.0) or 0.0)
    diversity_gain = (float(after.get("vendi_q1", 0.0)) - v0) / v0 if v0 > 0 else 0.0
    total = sum(counts["region_accepted"].values()) or 1
    outcome = IterationOutcome(
        shown=counts["shown"], accepted=counts["accepted"], val_gain=val_gain, diversity_gain=diversity_gain,
        shown_by_generator=counts["shown_by_generator"],
        region_val_gain={r: val_gain * n / total for r, n in counts["region_accepted"].items()},
        region_diversity_gain={r: diversity_gain * n / total for r, n in counts["region_accepted"].items()},
        flags=counts["flags"],
    )
    new_state, effects = update_state(state, outcome)
    project.store.set_meta(_STATE_KEY, new_state.to_dict())
    stop = check_stop(project)
    with project.store.transaction() as s:
        row = s.get(Iteration, t + 1)
        row.metrics = {**row.metrics, "effects": effects, "val_gain": val_gain, "diversity_gain": diversity_gain,
                       "stop": stop.stop, "stop_reason": stop.reason, "alpha": new_state.weights.alpha,
                       "beta": new_state.weights.beta, "gamma": new_state.weights.gamma,
                       "generation_share": new_state.generation_share}
    return replace(summary, effects=effects, stop_reason=stop.reason if stop.stop else None)


def run_oracle_iteration(project: "Project", *, budget: int = 40, n_regions: int = 2, generate: bool = True,
                         model_key: str | None = None, progress: "ProgressCallback | None" = None) -> IterationSummary:
    """One full iteration with the simulated oracle reviewer (for demos and stepping).

    Analyse, pick regions (edge-case regions first, then UCB over regions by their past
    reward), split ``budget`` between retrieval and generation as the adaptive state says,
    acquire, let the oracle decide every candidate it is shown (each decision costs one
    label), then :func:`advance`.
    """
    from adde_core.review.oracle import OracleReviewer

    steps = 4 + int(generate)
    tick = (lambda i: progress(i, steps)) if progress is not None else (lambda i: None)
    tick(0)
    analysis = project.analyze(model_key)
    tick(1)
    state = adaptive_state(project)
    regions = {r.region_id: r for r in analysis.regions.regions}
    chosen = [regions[r] for r in state.select_regions(list(regions), min(n_regions, len(regions)))]
    allocation = state.allocate(budget, ["cvae"] if generate else [])
    oracle = OracleReviewer(project, model_key)
    per_region = max(1, math.ceil(allocation["retrieve"] / max(len(chosen), 1)))
    for region in chosen:
        got = project.acquire(region, mode="retrieve", k=per_region, weights=state.weights, model_key=model_key)
        cands = candidates_frame(project.store, got.set_id)
        record_decisions(project.store, oracle.decide(cands, candidate_set_id=got.set_id))
    tick(2)
    n_generate = sum(allocation.get("generate", {}).values()) if generate else 0
    if n_generate and chosen:
        got = project.acquire(chosen[0], mode="generate", n=max(16, 2 * n_generate), weights=state.weights,
                              model_key=model_key)
        cands = candidates_frame(project.store, got.set_id).head(n_generate)
        if len(cands):
            oracle = OracleReviewer(project, model_key)  # sees the new synthetic embeddings
            record_decisions(project.store, oracle.decide(cands, candidate_set_id=got.set_id))
        tick(3)
    summary = advance(project, model_key=model_key)
    tick(steps)
    return summary

