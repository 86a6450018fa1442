"""ONE ADDE step — plan → acquire → rank → review → fold in → retrain → evaluate → adapt → stop? — over a storage.

:class:`Engine` is the loop. The app's "Next iteration" (:meth:`Engine.close`), the Retrieve and
Generate buttons (:meth:`Engine.retrieve`, :meth:`Engine.generate`), oracle stepping on Trends and
every strategy of ``python -m adde_core simulate`` (:meth:`Engine.step` with a policy from
:data:`adde_core.loop.policies.POLICIES`) all run through it. Only two things differ between them:
the **storage** (a project's database, :class:`~adde_core.loop.store_storage.StoreStorage`, or
arrays, :class:`~adde_core.loop.storage.MemoryStorage`) and the **reviewer** (a person writing to
the store, or the :class:`~adde_core.review.oracle.OracleReviewer`).

Closing an iteration is a small state machine recorded on the new iteration's row: the fold-in
writes phase ``folded`` (atomically with D_valid, see :func:`adde_core.store.iterations.fold_in`),
the metrics phase ``measured`` and the adaptation phase ``adapted``. A close that died part-way is
finished by the next :meth:`Engine.close` instead of opening another iteration. The adaptive state
after each close is stored on that row, so it is written atomically with the phase.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from adde_core.errors import AddeError
from adde_core.faults import fault_point
from adde_core.loop.adaptive import AdaptiveState, IterationOutcome, update_state
from adde_core.loop.evaluate import EvalConfig, evaluate, fit_head, reference_key, reference_space
from adde_core.loop.stopping import StopDecision, StoppingConfig, should_stop
from adde_core.memo import Memo

if TYPE_CHECKING:
    from adde_core.acquisition.acquire import EmbedFn, Proposal, RegionSpec
    from adde_core.analysis.regions import SparseRegion
    from adde_core.embedding.base import ProgressCallback
    from adde_core.loop.evaluate import ReferenceSpace
    from adde_core.loop.storage import LoopStorage
    from adde_core.working_set import WorkingSet
    from adde_core.model import LinearHead
    from adde_core.ranking import RankingWeights
    from adde_core.store.decisions import DecisionRequest

__all__ = ["STOPPING_KEY", "Context", "Engine", "IterationSummary", "LoopConfig", "Plan", "Policy", "Reviewer",
           "outcome_from_reviewed", "split_slots"]

#: Storage meta key of the user's stopping rules.
STOPPING_KEY = "stopping_config"
#: A trained generator is reused until its training set grew by more than this factor.
RETRAIN_GROWTH = 1.25
#: Storage meta key of generated/kept counts per iteration and generator (gate rejections feed the adaptation).
GATE_KEY = "gate_counts"


class Reviewer(Protocol):
    """Decides on shown candidates: the oracle, the head (pseudo-labels), or a person through the store."""

    def decide(self, candidates: pd.DataFrame, ws: "WorkingSet", *, candidate_set_id: int | None = None
               ) -> list["DecisionRequest"]:
        """Decisions for ``candidates`` (``item_id``, ``suggested_label``, score columns)."""


@dataclass(frozen=True)
class LoopConfig:
    """How one iteration is run.

    Attributes
    ----------
    budget : int
        Labels (reviews) per iteration.
    n_regions : int
        Regions acquired for per iteration.
    retrieve_factor : int
        Retrieve this many candidates per slot, then rank and show the best.
    generate : bool
        Whether ADDE may generate (only where the data has images and an image embedder).
    generator : str
    generation_share : float
        Initial share of the budget sent to generation (adapted afterwards).
    adapt : bool
        Learn α/β/γ, the split and region rewards from each iteration.
    use_diversity : bool
        False pins β = 0 (an ablation).
    random_state : int
    eval : EvalConfig
    """

    budget: int = 40
    n_regions: int = 3
    retrieve_factor: int = 3
    generate: bool = True
    generator: str = "cvae"
    generation_share: float = 0.2
    adapt: bool = True
    use_diversity: bool = True
    random_state: int = 0
    eval: EvalConfig = field(default_factory=EvalConfig)

    def initial_state(self) -> AdaptiveState:
        """The adaptive state before any iteration."""
        from adde_core.ranking import RankingWeights

        weights = RankingWeights() if self.use_diversity else RankingWeights(alpha=0.4, beta=0.0, gamma=0.2)
        return AdaptiveState(weights=weights, generation_share=self.generation_share)


@dataclass(frozen=True, eq=False)
class Plan:
    """What the engine recommends for the current iteration, with its reasons.

    Attributes
    ----------
    regions : list of SparseRegion
        Every detected region in the recommended order (revisit marks, then UCB, then sparsity).
    reasons : dict
        ``region_id -> why it is at that place``.
    chosen : list of str
        The ``n_regions`` first region ids: what an ADDE iteration acquires for.
    weights : RankingWeights
        The learned weights the ranking should start from.
    generation_share : float
    """

    regions: list["SparseRegion"]
    reasons: dict[str, str]
    chosen: list[str]
    weights: "RankingWeights"
    generation_share: float

    def frame(self) -> pd.DataFrame:
        """One row per region in recommended order, with the reason (for the Explore table)."""
        rows = []
        for k, r in enumerate(self.regions, start=1):
            top = r.dominant_labels[0] if r.dominant_labels else (None, np.nan)
            rows.append({"rank": k, "region_id": r.region_id, "kind": r.kind, "score": r.score, "size": r.size,
                         "dominant_label": top[0], "n_unlabelled": r.n_unlabelled,
                         "x": r.centroid_2d[0] if r.centroid_2d else np.nan,
                         "y": r.centroid_2d[1] if r.centroid_2d else np.nan,
                         "why": self.reasons.get(r.region_id, ""), "reason": r.reason, "description": r.description})
        return pd.DataFrame(rows, columns=["rank", "region_id", "kind", "score", "size", "dominant_label",
                                           "n_unlabelled", "x", "y", "why", "reason", "description"])


@dataclass(frozen=True)
class IterationSummary:
    """What closing an iteration did."""

    index: int
    added: dict[str, int]
    metrics: dict[str, Any]
    effects: list[str] = field(default_factory=list)
    stop_reason: str | None = None


@dataclass(eq=False)
class Context:
    """The derived state one step works with: the working set, its head and the reference space."""

    ws: "WorkingSet"
    head: "LinearHead"
    reference: "ReferenceSpace"


class Engine:
    """The ADDE loop over one storage.

    Parameters
    ----------
    storage : LoopStorage
    memo : Memo, optional
        Where heads, indexes, generators and reference spaces are kept (the project passes its own).
    embed_images : callable, optional
        Embeds generated images in the storage's space; without it nothing is generated.
    config : LoopConfig
    """

    def __init__(self, storage: "LoopStorage", *, memo: Memo | None = None, embed_images: "EmbedFn | None" = None,
                 config: LoopConfig = LoopConfig()) -> None:
        self.storage = storage
        self.memo = memo or Memo()
        self.embed_images = embed_images
        self.config = config

    # ------------------------------------------------------------------ state
    def context(self) -> Context:
        """The working set now, the head fitted on its D_t, and the reference space (all memoised)."""
        ws = self.storage.working_set()
        seed = self.config.random_state
        head = self.memo.get("head", (ws.dataset_key, seed), lambda: self._fitted_head(ws, seed))
        key = reference_key(ws)
        reference = self.memo.get("reference", key, lambda: self._fitted_reference(ws, key))
        return Context(ws, head, reference)

    def _fitted_head(self, ws: "WorkingSet", seed: int) -> "LinearHead":
        """The head on D_t: the one stored with the project when it was fitted on this D_t, else a new fit (stored)."""
        from adde_core.model.head import HEAD_MAX_ITER, LinearHead

        fitted = getattr(self.storage, "fitted", None)
        key = f"{ws.dataset_key}:seed={seed}:max_iter={HEAD_MAX_ITER}"
        arrays = fitted.load("head", key) if fitted is not None else None
        if arrays is not None:
            return LinearHead.from_arrays(arrays)
        head = fit_head(ws.X[ws.in_dataset], ws.label[ws.in_dataset], random_state=seed)
        if fitted is not None:
            fitted.save("head", key, head.to_arrays())
        return head

    def _fitted_reference(self, ws: "WorkingSet", key: str) -> "ReferenceSpace":
        """The reference space stored with the project for this population, else a new fit (stored)."""
        from adde_core.loop.evaluate import ReferenceSpace

        fitted = getattr(self.storage, "fitted", None)
        arrays = fitted.load("reference", key) if fitted is not None else None
        if arrays is not None:
            return ReferenceSpace.from_arrays(arrays, key)
        reference = reference_space(ws)
        if fitted is not None:
            fitted.save("reference", key, reference.to_arrays())
        return reference

    def pool_index(self, ws: "WorkingSet") -> Any:
        """A search index over the real pool, rebuilt exactly when the pool's membership or vectors change."""
        from adde_core.acquisition.retrieval import VectorIndex

        def build() -> Any:
            rows = np.flatnonzero((ws.role == "pool") & (ws.source != "synthetic"))
            return VectorIndex().fit(ws.X[rows], ids=ws.ids[rows])

        return self.memo.get("pool_index", ws.pool_key, build)

    def state(self) -> AdaptiveState:
        """The adaptive state: the one stored by the latest completed close, else the config's initial one."""
        for row in reversed(self.storage.iteration_rows()):
            stored = (row.get("metrics") or {}).get("adaptive_state")
            if stored:
                return AdaptiveState.from_dict(stored)
        return self.config.initial_state()

    def stopping(self) -> StoppingConfig:
        """The stopping rules kept with the storage."""
        return StoppingConfig(**(self.storage.get_meta(STOPPING_KEY) or {}))

    def can_generate(self, ws: "WorkingSet") -> bool:
        """Generation needs an embedder for new images and image files of labelled items."""
        from adde_core.acquisition.acquire import generator_training_rows

        return self.embed_images is not None and len(generator_training_rows(ws)[0]) > 0

    # ------------------------------------------------------------------ plan
    def detect_regions(self, ctx: Context) -> list["SparseRegion"]:
        """Sparse regions in the reference space, against D_t ∪ D_valid; region ids are stable across iterations.

        Centroids are in the reference space (like the sparse regions found there). Regions are not
        placed on a map (``centroid_2d`` is None): drawing places them at their centre member
        (:func:`adde_core.loop.plan_store.place_plan`).
        """
        from adde_core.analysis.clustering import ClusterConfig, ClusterResult
        from adde_core.analysis.regions import RegionConfig, find_sparse_regions

        ws = ctx.ws
        rows = np.flatnonzero(np.isin(ws.role, ("seed", "pool", "val")) & (ws.source != "synthetic"))
        ids = ws.ids[rows]
        Z = ctx.reference.project(ws.X[rows])
        labels = ctx.reference.kmeans.predict(Z)
        data_rows, data_labels = ws.dataset_and_pending
        in_dataset = np.isin(rows, data_rows)
        label = np.full(len(rows), None, dtype=object)
        pos = {int(r): k for k, r in enumerate(rows)}
        for r, lab in zip(data_rows, data_labels):
            if int(r) in pos:
                label[pos[int(r)]] = lab
        val = ws.role[rows] == "val"
        label[val] = ws.label[rows][val]
        items = pd.DataFrame({"id": ids, "role": ws.role[rows], "label": label})
        cfg = ClusterConfig(method="kmeans", space="pca", n_clusters=ctx.reference.n_clusters)
        clusters = ClusterResult(ids=ids, labels=labels, raw_labels=labels, space=Z, config=cfg,
                                 fingerprint=ctx.reference.key)
        found = find_sparse_regions(Z, items, clusters=clusters,
                                    config=RegionConfig(pca_components=None, max_outliers=0,
                                                        random_state=self.config.random_state),
                                    in_dataset=in_dataset, subgroup_columns=[], fingerprint=ctx.reference.key)
        available = set(map(str, ws.ids[ws.available]))
        regions = [r for r in found.regions if any(str(i) in available for i in r.member_ids)]
        return regions + error_regions(ctx, Z, rows, subgroup=self.storage.subgroup)

    def plan(self, ctx: Context | None = None) -> Plan:
        """Regions in the order the loop recommends, why, and the weights and split to use now."""
        from adde_core.ranking import RankingWeights

        ctx = ctx or self.context()
        state = self.state()
        regions = self.detect_regions(ctx)
        failure = region_failure(ctx, regions, subgroup=self.storage.subgroup)
        # Where the model fails first (val error, pool uncertainty, subgroup under-representation),
        # ties by sparsity; marked regions go first when the loop adapts.
        ids = spread_over_classes([r.region_id for r in regions], failure)
        if self.config.adapt:
            marked = [r for r in state.regions_to_revisit if r in ids]
            order = marked + [r for r in ids if r not in marked]
        else:
            order = ids
        by_id = {r.region_id: r for r in regions}
        reasons = {}
        bandit = state.bandit()
        for rid in order:
            f = failure[rid]
            why = (f"val error {f['val_error']:.2f} over {f['n_val']} val items, pool uncertainty "
                   f"{f['pool_uncertainty']:.2f}" + (f", subgroup under-represented by {f['under']:.2f}"
                                                     if f["under"] > 0 else ""))
            if rid in state.regions_to_revisit and self.config.adapt:
                reasons[rid] = "marked for revisiting: a reviewer flagged edge cases here; " + why
            elif rid in bandit.stats:
                n, mean = bandit.stats[rid]
                reasons[rid] = f"{why}; acquired {n}× before, mean reward {mean:+.3f}"
            elif by_id[rid].kind == "model_error":
                reasons[rid] = f"{why}; {by_id[rid].reason}"
            else:
                reasons[rid] = f"{why}; {by_id[rid].score:.1f}× thinner than expected ({by_id[rid].kind})"
        weights = state.weights
        if not self.config.use_diversity:
            weights = RankingWeights(alpha=weights.alpha, beta=0.0, gamma=weights.gamma)
        return Plan([by_id[r] for r in order], reasons, order[: self.config.n_regions], weights,
                    state.generation_share)

    # --------------------------------------------------------------- acquire
    def retrieve(self, region: "RegionSpec", *, k: int = 50, strategy: str = "adde",
                 weights: "RankingWeights | None" = None, uncertain_share: float = 0.2,
                 ctx: Context | None = None) -> tuple[int, "Proposal"]:
        """Retrieve and rank pool candidates for a region, and store them; returns (set id, proposal)."""
        from adde_core.acquisition.acquire import retrieve_candidates

        ctx = ctx or self.context()
        proposal = retrieve_candidates(ctx.ws, ctx.head, region, k=k, strategy=strategy, weights=weights,
                                       uncertain_share=uncertain_share, index=self.pool_index(ctx.ws),
                                       random_state=self.config.random_state)
        return self.storage.save_proposal(proposal, ctx.ws.iteration), proposal

    def generator(self, ctx: Context, name: str, params: Mapping[str, Any] | None = None,
                  progress: "ProgressCallback | None" = None) -> Any:
        """Generator ``name`` trained on D_t ∪ D_valid's real images, retrained only when that set grew enough.

        Retraining every iteration costs minutes on a CPU for a few more images. A generator is
        reused while the images it learnt from are all still in the training set and the set grew
        by at most ``RETRAIN_GROWTH`` (25 %); beyond that, or when an image left, it is retrained.
        """
        from adde_core.acquisition.acquire import generator_key, generator_training_rows, train_generator

        seed = self.config.random_state
        rows, _ = generator_training_rows(ctx.ws)
        current = frozenset(map(str, ctx.ws.ids[rows]))
        slot = (name, repr(sorted((params or {}).items())), ctx.ws.model_key, seed)
        last = self.memo.peek("generator_latest", slot)
        if last is not None and last[0] <= current and len(current) <= RETRAIN_GROWTH * len(last[0]):
            return last[1]
        key = generator_key(ctx.ws, name, params, random_state=seed)
        gen = self.memo.get("generator", key, lambda: train_generator(ctx.ws, name, params, random_state=seed,
                                                                        progress=progress))
        self.memo.put("generator_latest", slot, (current, gen))
        return gen

    def generate(self, region: "RegionSpec", *, generator: str | None = None, n: int = 48, label: str | None = None,
                 prompt: str | None = None, generator_params: Mapping[str, Any] | None = None,
                 strategy: str = "adde", weights: "RankingWeights | None" = None, gate_config: Any = None,
                 ctx: Context | None = None, progress: "ProgressCallback | None" = None,
                 seed: int | None = None) -> tuple[int, "Proposal"]:
        """Generate candidates for a region with a trained generator, gate, rank and store them.

        ``seed`` fixes the generator's sampling (default: derived from the config's seed and the iteration).
        """
        from adde_core.acquisition.acquire import generate_candidates

        if self.embed_images is None:
            raise AddeError("generated images cannot be placed in this embedding space (precomputed vectors or no "
                            "image embedder); embed the project with an image embedder on the Data page first")
        ctx = ctx or self.context()
        name = generator or self.config.generator
        gen = self.generator(ctx, name, generator_params, progress)
        seed = self.config.random_state * 1000 + ctx.ws.iteration if seed is None else seed
        proposal = generate_candidates(ctx.ws, ctx.head, region, generator=gen, embed_images=self.embed_images,
                                       register=self.storage.register_generated, n=n, label=label, prompt=prompt,
                                       gate_config=gate_config, strategy=strategy, weights=weights, seed=seed,
                                       generator_name=name)
        counts = dict(self.storage.get_meta(GATE_KEY) or {})
        per_gen = dict(counts.get(str(ctx.ws.iteration)) or {})
        made, kept = per_gen.get(name, [0, 0])
        per_gen[name] = [int(made) + int(proposal.summary.get("n_generated", 0)),
                         int(kept) + int(proposal.summary.get("n_kept", 0))]
        counts[str(ctx.ws.iteration)] = per_gen
        self.storage.set_meta(GATE_KEY, counts)
        return self.storage.save_proposal(proposal, ctx.ws.iteration), proposal

    # ---------------------------------------------------------------- review
    def review(self, reviewer: Reviewer, set_id: int, proposal: "Proposal", n: int | None = None) -> int:
        """Show the top ``n`` of a stored proposal to ``reviewer`` and store its decisions; returns how many."""
        shown = proposal.frame if n is None else proposal.frame.head(n)
        if shown.empty:
            return 0
        candidates = shown.rename(columns={"id": "item_id"})
        ws = self.storage.working_set()
        decisions = reviewer.decide(candidates, ws, candidate_set_id=set_id)
        self.storage.record(decisions)
        return len(decisions)

    # ----------------------------------------------------------------- close
    def measure(self) -> dict[str, Any]:
        """Record the current iteration's metrics (iteration 0's baseline, or after a crash); returns them."""
        ctx = self.context()
        metrics = self._evaluate(ctx)
        current = self.storage.phase(ctx.ws.iteration)
        self.storage.save_metrics(ctx.ws.iteration, metrics, phase=current or "measured")
        return metrics

    def _evaluate(self, ctx: Context) -> dict[str, Any]:
        return evaluate(ctx.ws, ctx.head, ctx.reference, labels_spent=ctx.ws.labels_spent,
                        ambiguous=ctx.ws.ambiguous, config=self.config.eval, subgroup=self.storage.subgroup)

    def _acted_weights(self, reviewed: pd.DataFrame, fallback: "RankingWeights") -> "RankingWeights":
        """The weights that ranked what was reviewed (count-weighted over sets), not merely the stored ones."""
        from adde_core.ranking import RankingWeights

        w = reviewed[["alpha", "beta", "gamma"]].apply(pd.to_numeric, errors="coerce").dropna()
        w = w[w.sum(axis=1) > 0]
        if w.empty:
            return fallback
        mean = w.div(w.sum(axis=1), axis=0).mean()
        return RankingWeights(alpha=float(mean["alpha"]), beta=float(mean["beta"]), gamma=float(mean["gamma"]))

    def close(self) -> IterationSummary:
        """Close the current iteration: fold D_valid in, retrain, measure, adapt, check the stopping rules.

        Re-running after a crash finishes the same iteration (see the module docstring). A
        concurrent second close gets :class:`~adde_core.errors.IterationClosed`.
        """
        storage = self.storage
        ws = storage.working_set()
        t = ws.iteration
        phase = storage.phase(t) if t > 0 else None
        if phase in ("folded", "measured"):
            t_new = t  # a close that died part-way: finish it
            config = self.storage.iteration_rows()[t].get("config") or {}
            state = AdaptiveState.from_dict(config["adaptive_state"]) if config.get("adaptive_state") else self.state()
        else:
            if not self.storage.iteration_rows()[t].get("metrics", {}).get("val_accuracy") and t == 0:
                self.measure()  # iteration 0's baseline, so the first gain is measured against something
                fault_point("close:baseline")
            state = self.state()
            reviewed = storage.reviewed(t)
            acted = self._acted_weights(reviewed, state.weights)
            storage.fold_in(t, {"adaptive_state": state.to_dict(), "weights": acted.__dict__})
            fault_point("close:folded")
            t_new, phase = t + 1, "folded"
        if phase == "folded":
            metrics = self._evaluate(self.context())
            storage.save_metrics(t_new, metrics, phase="measured")
            fault_point("close:measured")
        rows = self.storage.iteration_rows()
        before, after = rows[t_new - 1].get("metrics") or {}, rows[t_new].get("metrics") or {}
        reviewed = storage.reviewed(t_new - 1)
        state = replace(state, weights=self._acted_weights(reviewed, state.weights))
        new_state, effects, gains = self._adapt(state, reviewed, before, after, iteration=t_new - 1)
        stop = self._stop()
        extra = {"effects": effects, **gains, "stop": stop.stop, "stop_reason": stop.reason,
                 "alpha": new_state.weights.normalized()[0], "beta": new_state.weights.normalized()[1],
                 "gamma": new_state.weights.normalized()[2], "generation_share": new_state.generation_share,
                 **{f"arm_labels_{a}": n for a, n in arm_labels(reviewed).items()},
                 "adaptive_state": new_state.to_dict()}
        storage.save_metrics(t_new, extra, phase="adapted")
        fault_point("close:adapted")
        after = {**after, **extra}
        added = {str(k): int(v) for k, v in (after.get("added") or {}).items()}
        return IterationSummary(t_new, added, after, effects, stop.reason if stop.stop else None)

    def _adapt(self, state: AdaptiveState, reviewed: pd.DataFrame, before: Mapping[str, Any],
               after: Mapping[str, Any], *, iteration: int | None = None
               ) -> tuple[AdaptiveState, list[str], dict[str, float]]:
        val_gain = float((after.get("val_accuracy") or 0.0) - (before.get("val_accuracy") or 0.0)) \
            if before.get("val_accuracy") is not None else 0.0
        v0 = float(before.get("vendi_q1") or 0.0)
        diversity_gain = (float(after.get("vendi_q1") or 0.0) - v0) / v0 if v0 > 0 else 0.0
        gains = {"val_gain": val_gain, "diversity_gain": diversity_gain}
        if not self.config.adapt:
            return state, ["adaptation is off: weights, split and region rewards stay as they are"], gains
        gate = (self.storage.get_meta(GATE_KEY) or {}).get(str(iteration), {}) if iteration is not None else {}
        outcome = outcome_from_reviewed(reviewed, val_gain, diversity_gain, gate=gate)
        new_state, effects = update_state(state, outcome)
        if not self.config.use_diversity:
            from adde_core.ranking import RankingWeights

            w = new_state.weights
            new_state = replace(new_state, weights=RankingWeights(alpha=w.alpha, beta=0.0, gamma=w.gamma))
        return new_state, effects, gains

    def _stop(self) -> StopDecision:
        history = self.storage.history()
        rows = [{"iteration": int(r.iteration), "accuracy": float(r.val_accuracy), "vendi": float(r.vendi_q1)}
                for r in history.itertuples() if pd.notna(getattr(r, "val_accuracy", float("nan")))]
        spent = int(history["labels_spent"].dropna().iloc[-1]) if "labels_spent" in history and \
            history["labels_spent"].notna().any() else 0
        return should_stop(rows, spent, self.stopping())

    def check_stop(self) -> StopDecision:
        """The stopping rules applied to the recorded history."""
        return self._stop()

    # ------------------------------------------------------------------ step
    def step(self, policy: "Policy", reviewer: Reviewer, *,
             progress: Callable[[int, int], None] | None = None) -> IterationSummary:
        """One whole iteration: the policy acquires (each set reviewed as it comes), then :meth:`close`."""
        tick = progress or (lambda done, total: None)
        tick(0, 3)
        policy.acquire(self, reviewer)
        tick(2, 3)
        summary = self.close()
        tick(3, 3)
        return summary


class Policy(Protocol):
    """How an iteration spends its budget (registry: :data:`adde_core.loop.policies.POLICIES`)."""

    name: str

    def acquire(self, engine: Engine, reviewer: Reviewer) -> None:
        """Acquire and have ``reviewer`` review up to ``engine.config.budget`` candidates."""


#: Acquisition arm of a pool-ranking strategy (the portfolio policy's arms; see adde_core.loop.policies).
ARM_OF_STRATEGY = {"margin": "margin", "entropy": "margin", "uherding": "coverage", "probcover": "coverage",
                   "maxherding": "coverage", "typiclust": "typicality", "adde": "region"}


def arm_of_strategy(strategy: Any) -> str | None:
    """The arm a candidate set's ranking strategy belongs to (None: not an arm)."""
    return ARM_OF_STRATEGY.get(str(strategy)) if isinstance(strategy, str) else None


def arm_labels(reviewed: pd.DataFrame) -> dict[str, int]:
    """Labels spent per acquisition arm in ``reviewed`` (generation counted as the ``generate`` arm)."""
    from adde_core.loop.storage import FREE_REVIEWERS

    reviewed = reviewed[~reviewed["reviewer"].isin(FREE_REVIEWERS)]
    arms = reviewed["strategy"].map(arm_of_strategy).where(reviewed["mode"] != "generate", "generate")
    return {str(k): int(v) for k, v in arms.dropna().value_counts().items()}


def outcome_from_reviewed(reviewed: pd.DataFrame, val_gain: float, diversity_gain: float, *,
                          gate: Mapping[str, Any] | None = None) -> IterationOutcome:
    """The evidence adaptation learns from: shown/accepted by source, flags, per-region credit.

    ``gate`` is ``{generator: [generated, kept]}`` of the iteration (the images the gate dropped count
    as generated and not accepted).
    """
    from adde_core.loop.storage import FREE_REVIEWERS, VALID_ACTIONS

    reviewed = reviewed[~reviewed["reviewer"].isin(FREE_REVIEWERS)]
    source = reviewed["mode"].map({"generate": "generate"}).fillna("retrieve")
    shown = source.value_counts().to_dict()
    ok = reviewed["action"].isin(VALID_ACTIONS)
    accepted = source[ok].value_counts().to_dict()
    gen = reviewed[source == "generate"]
    by_generator = gen["generator"].fillna("generator").value_counts().to_dict()
    region_acc = reviewed[ok & reviewed["region_id"].notna()]["region_id"].value_counts().to_dict()
    total = sum(region_acc.values()) or 1
    flags = []
    for row, src in zip(reviewed.itertuples(), source):
        for flag in row.flags or []:
            key = (row.generator or "generator") if src == "generate" else None
            flags.append((flag, src, key, row.region_id if isinstance(row.region_id, str) else None))
    return IterationOutcome(
        shown={k: int(v) for k, v in shown.items()}, accepted={k: int(v) for k, v in accepted.items()},
        val_gain=val_gain, diversity_gain=diversity_gain,
        shown_by_generator={str(k): int(v) for k, v in by_generator.items()},
        region_val_gain={r: val_gain * n / total for r, n in region_acc.items()},
        region_diversity_gain={r: diversity_gain * n / total for r, n in region_acc.items()},
        flags=tuple(flags),
        gate_rejected={str(k): max(0, int(v[0]) - int(v[1])) for k, v in (gate or {}).items()},
        accepted_by_generator={str(k): int(v) for k, v in
                               gen[gen["action"].isin(VALID_ACTIONS)]["generator"].fillna("generator")
                               .value_counts().items()})


def region_failure(ctx: Context, regions: list["SparseRegion"], *, subgroup: str | None = None
                   ) -> dict[str, dict[str, float]]:
    """How badly the current head does in each region: the evidence the plan orders regions by.

    ``val_error`` is the head's error on the region's val members, smoothed toward the overall
    val error with a prior of ``_ERROR_PRIOR`` items; ``pool_uncertainty`` the mean 1 − margin of
    its undecided pool members; ``under`` (with a subgroup set) the largest shortfall of a
    subgroup value's share in D_t against its share in val, within the classes it misses (how much thinner that class's
    subgroup is in D_t than in val). A ``model_error`` region's val error is its class (or
    class × subgroup) cell's rate (its ``score``), since its val members are only the wrong ones.
    ``priority = val_error * (1 + under)`` (pool uncertainty breaks ties): where the model fails
    most often, not density alone, and not simply where the most val items are. ``target`` is the
    class the region's failures are about (its most common true label among wrong val members),
    which :meth:`Engine.plan` uses to spread the first regions over different classes.
    """
    ws, head = ctx.ws, ctx.head
    pos = ws.index
    val = (ws.role == "val") & ws.labelled
    data_rows, _ = ws.dataset_and_pending
    in_data = np.zeros(len(ws.ids), dtype=bool)
    in_data[data_rows] = True
    all_rows = np.flatnonzero(val | ws.available)
    probs = head.predict_proba(ws.X[all_rows]) if len(all_rows) else np.zeros((0, len(head.classes_)))
    pred = np.full(len(ws.ids), None, dtype=object)
    unc = np.zeros(len(ws.ids))
    if len(all_rows):
        pred[all_rows] = head.classes_[probs.argmax(axis=1)]
        top2 = np.sort(probs, axis=1)[:, -2:] if probs.shape[1] > 1 else np.hstack([np.zeros_like(probs), probs])
        unc[all_rows] = 1.0 - (top2[:, 1] - top2[:, 0])
    wrong = val & (pred.astype(str) != ws.label.astype(str))
    base = float(wrong.sum() / max(val.sum(), 1))
    out = {}
    for r in regions:
        rows = np.asarray([pos[str(i)] for i in r.member_ids if str(i) in pos], dtype=np.int64)
        v = rows[val[rows]]
        p = rows[ws.available[rows]]
        if r.kind == "model_error":
            err, n_val = float(r.score), int(r.role_counts.get("val_cell", len(v)))
        else:
            err, n_val = float((wrong[v].sum() + _ERROR_PRIOR * base) / (len(v) + _ERROR_PRIOR)), int(len(v))
        targets = pd.Series(ws.label[v[wrong[v]]] if wrong[v].any() else ws.label[v]).astype(str).value_counts()
        u = float(unc[p].mean()) if len(p) else 0.0
        under = 0.0
        if subgroup and ws.groups is not None and len(v):
            # Within the classes of the region's wrong val items: is its subgroup thinner in D_t than in val?
            for c, g in set(zip(ws.label[v[wrong[v]]].astype(str), ws.groups[v[wrong[v]]])):
                cls_val = val & (ws.label.astype(str) == c)
                cls_dt = in_data & (ws.label.astype(str) == c)
                want = float((ws.groups[cls_val] == g).mean()) if cls_val.any() else 0.0
                got = float((ws.groups[cls_dt] == g).mean()) if cls_dt.any() else 0.0
                under = max(under, want - got)
        priority = err * (1 + under) + u / 100
        out[r.region_id] = {"val_error": err, "n_val": n_val, "pool_uncertainty": u, "under": under,
                            "priority": priority, "target": str(targets.index[0]) if len(targets) else ""}
    return out


def spread_over_classes(region_ids: list[str], failure: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Region ids by priority, each earlier pick aimed at the same class discounting a region by ``SAME_CLASS_DISCOUNT``.

    Without it the first places all go to the one class the model knows least (its error region,
    its subgroup cells, the density gaps it sits in), and a rare subgroup of another class never
    reaches the top of the plan. Greedy; ties keep the input order.
    """
    left = list(region_ids)
    picked: dict[str, int] = {}
    order = []
    while left:
        best = max(left, key=lambda r: (failure[r]["priority"] * SAME_CLASS_DISCOUNT ** picked.get(
            str(failure[r].get("target", "")), 0), -left.index(r)))
        order.append(best)
        left.remove(best)
        t = str(failure[best].get("target", ""))
        picked[t] = picked.get(t, 0) + 1
    return order


#: Val items of prior weight when smoothing a region's error toward the overall error.
_ERROR_PRIOR = 3
#: A class needs this many misclassified val items to get a model-error region.
MIN_ERRORS = 3
#: A subgroup value gets its own model-error region when its error rate inside the class exceeds the rest's by this.
SUBGROUP_GAP = 0.25
#: Each earlier region in the plan aimed at the same class multiplies a region's priority by this.
SAME_CLASS_DISCOUNT = 0.5
#: Nearest val items that vote on which model-error region a pool item joins (a majority of them in the cell).
ERROR_NEIGHBOURS = 5


def error_regions(ctx: Context, Z: np.ndarray, rows: np.ndarray, *, subgroup: str | None = None
                  ) -> list["SparseRegion"]:
    """Regions where the model fails: per true class, its misclassified val items and the pool items among them.

    With a subgroup set, a subgroup value whose val error rate inside the class exceeds the rest
    of the class's by at least ``SUBGROUP_GAP`` gets a region of its own
    (``model_error/<class>/<subgroup>=<value>``): a rare pose of a common class the model
    otherwise knows. A class the model fails across every subgroup stays one region
    (``model_error/<class>``), so it is not counted once per subgroup value. ``score`` is the
    cell's val error rate, smoothed toward the overall val error with ``_ERROR_PRIOR`` items;
    ``role_counts["val_cell"]`` the cell's val items. Ids are stable across iterations; a region
    disappears once fewer than ``MIN_ERRORS`` of its val items are wrong. ``Z`` are the
    reference-space coordinates of ``rows`` (real seed/pool/val rows). Val labels are the
    user's own (never the pool's).
    """
    from adde_core.analysis.regions import SparseRegion

    ws, head = ctx.ws, ctx.head
    is_val = (ws.role[rows] == "val") & ws.labelled[rows]
    is_pool = ws.available[rows]
    if not is_val.any() or not is_pool.any():
        return []
    v = np.flatnonzero(is_val)
    pred = head.classes_[head.predict_proba(ws.X[rows[v]]).argmax(axis=1)]
    truth = ws.label[rows[v]].astype(str)
    wrong = pred != truth
    base = float(wrong.mean())
    pool_local = np.flatnonzero(is_pool)
    Zp = Z[pool_local]
    use_groups = bool(subgroup) and ws.groups is not None
    groups = ws.groups[rows[v]].astype(str) if use_groups else np.full(len(v), "", dtype=object)

    def rate(cell: np.ndarray) -> float:
        return float(((wrong & cell).sum() + _ERROR_PRIOR * base) / (cell.sum() + _ERROR_PRIOR))

    cells: list[tuple[str, str | None, np.ndarray]] = []
    for c in sorted(set(truth[wrong])):
        in_class = truth == c
        rest = in_class.copy()
        for g in sorted(set(groups[in_class])) if use_groups else []:
            cell = in_class & (groups == g)
            other = in_class & ~cell
            gap = (wrong & cell).sum() / cell.sum() - ((wrong & other).sum() / other.sum() if other.any() else 0.0)
            if other.any() and gap >= SUBGROUP_GAP and (wrong & cell).sum() >= MIN_ERRORS:
                cells.append((c, g, cell))
                rest &= ~cell
        cells.append((c, None, rest))
    # Each pool item's nearest val items (reference space): a pool item belongs to a cell's region
    # when most of them are in the cell, i.e. it sits where that class (× subgroup) lives, not merely
    # next to one of its misclassified items (whose neighbours are often the class it is confused with).
    Zv = Z[v]
    dv = (Zp ** 2).sum(1)[:, None] - 2 * Zp @ Zv.T + (Zv ** 2).sum(1)[None, :]
    k_vote = min(ERROR_NEIGHBOURS, len(v))
    nearest_val = np.argpartition(dv, k_vote - 1, axis=1)[:, :k_vote]
    out = []
    for c, g, cell in cells:
        errs = v[wrong & cell]
        if len(errs) < MIN_ERRORS:
            continue
        voted = np.flatnonzero(cell[nearest_val].sum(axis=1) * 2 > k_vote)
        if len(voted) == 0:  # no pool item sits inside the cell: fall back to the errors' nearest pool items
            d = ((Z[errs] ** 2).sum(1)[:, None] - 2 * Z[errs] @ Zp.T + (Zp ** 2).sum(1)[None, :])
            voted = np.unique(np.argsort(d, axis=1, kind="stable")[:, :ERROR_NEIGHBOURS])
        members = np.concatenate([errs, pool_local[voted]])
        ids = ws.ids[rows[members]]
        confused = pd.Series(pred[wrong & cell]).value_counts()
        what = f"class {c}" + (f" with {subgroup}={g}" if g is not None else "")
        reason = (f"The model misclassifies {len(errs)} of {int(cell.sum())} val items of {what} "
                  f"(mostly as {', '.join(map(str, confused.index[:2]))}); the pool items whose nearest val "
                  f"items are mostly {what}.")
        out.append(SparseRegion(
            region_id=f"model_error/{c}" + (f"/{subgroup}={g}" if g is not None else ""), kind="model_error",
            score=rate(cell), member_ids=np.asarray(ids), centroid=Z[members].mean(axis=0),
            centroid_2d=None,
            role_counts={"val": int(len(errs)), "val_cell": int(cell.sum()), "pool": int(len(members) - len(errs))},
            label_counts={str(c): int(len(errs))}, subgroup_counts={}, n_unlabelled=int(len(members) - len(errs)),
            nearest_dataset_ids=(), reason=reason))
    return out


def split_slots(n: int, parts: int) -> list[int]:
    """``n`` slots over ``parts`` regions, the remainder to the first ones."""
    if parts <= 0:
        return []
    base, extra = divmod(n, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]

