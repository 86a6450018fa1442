"""How an iteration spends its label budget: ADDE, its ablations, every ranking strategy, and the loop baselines.

One registry, :data:`POLICIES`, serves ``simulate --strategy`` and oracle stepping:

* every entry of :data:`adde_core.ranking.STRATEGIES` (random, margin, entropy, coreset, typiclust, and
  any added later) as a pool-ranking policy: rank the whole available pool with that strategy and
  show the top ``budget`` items to the reviewer;
* ``adde`` (:class:`AddePolicy`: failure-targeted, calibrated coverage of the pool plus
  generation into failing regions at an adaptive share) and its ablations ``adde-no-gen``,
  ``adde-no-div``, ``adde-no-adapt``; ``adde-regions``, the region policy the app's Retrieve and
  Generate buttons follow and ADDE's ``generate`` arm runs (:class:`RegionPolicy`);
* the loop baselines ``seed-only`` (no acquisition), ``mads-naive`` (pseudo-labels, no reviewer)
  and ``static-aug`` (label-preserving augmentation of rare classes once, then random).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from adde_core.loop.engine import Engine, Reviewer, split_slots
from adde_core.loop.storage import AUGMENT_REVIEWER, PSEUDO_REVIEWER

if TYPE_CHECKING:
    from adde_core.working_set import WorkingSet
    from adde_core.store.decisions import DecisionRequest

__all__ = ["ARM_STRATEGIES", "POLICIES", "AddePolicy", "PoolRanking", "RegionPolicy", "policy_names"]


@dataclass
class PoolRanking:
    """Rank the available pool with registry strategy ``strategy`` and review the top ``budget``."""

    strategy: str
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or self.strategy

    def acquire(self, engine: Engine, reviewer: Reviewer) -> None:
        from adde_core.acquisition.acquire import rank_pool

        ctx = engine.context()
        if not ctx.ws.available.any():
            return
        proposal = rank_pool(ctx.ws, ctx.head, k=engine.config.budget, strategy=self.strategy,
                             random_state=engine.config.random_state + 1000 * ctx.ws.iteration)
        set_id = engine.storage.save_proposal(proposal, ctx.ws.iteration)
        engine.review(reviewer, set_id, proposal)


@dataclass
class SeedOnly:
    """No acquisition at all: the flat reference line of the seed set's head."""

    name: str = "seed-only"

    def acquire(self, engine: Engine, reviewer: Reviewer) -> None:
        return None


class PseudoLabeller:
    """The head labels candidates itself (no human, no labels spent): what a naive loop does."""

    def __init__(self, head: object) -> None:
        self.head = head

    def decide(self, candidates: pd.DataFrame, ws: "WorkingSet", *, candidate_set_id: int | None = None
               ) -> list["DecisionRequest"]:
        from adde_core.store.decisions import DecisionRequest

        return [DecisionRequest(item_id=str(i), action="accept", reviewer=PSEUDO_REVIEWER, label=str(lab),
                                candidate_set_id=candidate_set_id)
                for i, lab in zip(candidates["item_id"], candidates["suggested_label"])]


@dataclass
class NaivePseudoLabel:
    """MADS-style naive loop: add the pool items the head is at least ``tau`` sure of, with its labels, unreviewed.

    Most confident first, up to ``budget`` a round; wrong pseudo-labels stay in the dataset,
    which is what bias amplification measures.
    """

    tau: float = 0.9
    name: str = "mads-naive"

    def acquire(self, engine: Engine, reviewer: Reviewer) -> None:
        from adde_core.acquisition.acquire import Proposal

        ctx = engine.context()
        rows = np.flatnonzero(ctx.ws.available)
        if len(rows) == 0:
            return
        probs = ctx.head.predict_proba(ctx.ws.X[rows])
        conf = probs.max(axis=1)
        ok = np.flatnonzero(conf >= self.tau)
        pick = ok[np.lexsort((ok, -conf[ok]))][: engine.config.budget]
        frame = pd.DataFrame({"id": ctx.ws.ids[rows[pick]], "rank": np.arange(1, len(pick) + 1),
                              "score": conf[pick], "suggested_label": ctx.head.classes_[probs[pick].argmax(axis=1)],
                              "via": "pseudo-label"})
        proposal = Proposal("pseudo", {}, frame, {"strategy": "confidence", "weights": [0.0, 0.0, 0.0]},
                            {"tau": self.tau}, {"n_candidates": int(len(frame))})
        set_id = engine.storage.save_proposal(proposal, ctx.ws.iteration)
        engine.review(PseudoLabeller(ctx.head), set_id, proposal)


@dataclass
class StaticAugmentation:
    """Once, before the first acquisition: augment every seed class below the median count up to it; then random.

    Augmented images (flips, small affine transforms, crops, brightness, same-label mixup of the
    class's seed images) keep their source label, so they join without review and cost 0 labels.
    """

    name: str = "static-aug"

    def acquire(self, engine: Engine, reviewer: Reviewer) -> None:
        if engine.storage.working_set().iteration == 0 and engine.embed_images is not None:
            self._augment(engine)
        PoolRanking("random").acquire(engine, reviewer)

    def _augment(self, engine: Engine) -> None:
        from adde_core.acquisition.acquire import Proposal, RegionSpec, region_target
        from adde_core.acquisition.generation import AugmentationGenerator
        from adde_core.store.decisions import DecisionRequest

        ctx = engine.context()
        ws = ctx.ws
        classes, counts = np.unique(ws.label[ws.in_dataset].astype(str), return_counts=True)
        median = int(np.median(counts))
        gen = AugmentationGenerator()
        for c, n in zip(classes, counts):
            if n >= median:
                continue
            members = ws.ids[ws.in_dataset & (ws.label == c)]
            region = RegionSpec(f"class/{c}", "class", tuple(map(str, members)), f"Seed items of class {c}.")
            target = region_target(ws, region, random_state=engine.config.random_state)
            if not target.member_images:
                continue
            batch = gen.generate(target, median - int(n), label=str(c), seed=engine.config.random_state)
            vectors = np.asarray(engine.embed_images(batch.images), dtype=np.float32)
            kept = np.arange(len(batch.images))
            prov = [{"generator": gen.key, "params": batch.params, "prompt": None, "seed": batch.seeds[i],
                     "target_region": {"region_id": region.region_id}, "intended_label": str(c),
                     "gate": {"reason": "label-preserving augmentation", "score": 1.0}} for i in kept]
            ids = engine.storage.register_generated(batch, kept, vectors, prov)
            frame = pd.DataFrame({"id": ids, "rank": np.arange(1, len(ids) + 1), "score": 1.0,
                                  "suggested_label": str(c), "via": "augment"})
            proposal = Proposal("augment", region.as_dict(), frame, {"strategy": "augment",
                                                                     "weights": [0.0, 0.0, 0.0]})
            set_id = engine.storage.save_proposal(proposal, ws.iteration)
            engine.storage.record([DecisionRequest(item_id=i, action="accept", reviewer=AUGMENT_REVIEWER, label=str(c),
                                                   candidate_set_id=set_id) for i in ids])


@dataclass
class RegionPolicy:
    """ADDE: regions the loop recommends → retrieval (+ generation) ranked by α·U + β·Div + γ·Q → review → adapt.

    Each iteration: take the plan's first ``n_regions`` regions (revisit marks, then UCB over past
    rewards, ties by sparsity; sparsity order alone without adaptation) and split the budget
    evenly across them. In each region a ``generation_share`` of the slots goes to generation when
    the data can generate: the generator (CVAE by default, trained on D_t's real images) makes
    twice as many images as slots, the quality gate filters them, and the top-ranked kept ones are
    reviewed. The other slots go to retrieval: ``retrieve_factor × slots`` pool candidates near the
    region, ranked with the learned weights, the top ones reviewed. Each set is reviewed as soon as
    it is acquired, so a later region never re-fetches what an earlier one took. Slots no region
    fills go to the most uncertain (margin) pool items.

    The ablations are the same policy with a :class:`~adde_core.loop.engine.LoopConfig` switch
    (``generate``, ``use_diversity``, ``adapt``) set to False.
    """

    name: str = "adde-regions"

    def acquire(self, engine: Engine, reviewer: Reviewer) -> None:
        self.acquire_budget(engine, reviewer, engine.config.budget)

    def acquire_budget(self, engine: Engine, reviewer: Reviewer, budget: int, *, fill: bool = True,
                       generation_only: bool = False) -> int:
        """Spend up to ``budget`` labels on the plan's regions (generation share included); returns labels spent.

        ``generation_only`` sends every slot to generation and leaves a shortfall unspent (the
        caller spends it elsewhere) instead of retrieving from the region; it also skips a region
        whose undecided pool members number at least ``POOL_SUFFICES`` × its slots, where retrieval
        (ADDE's coverage arm) can serve it with real items.
        """
        from adde_core.acquisition.acquire import RegionSpec

        cfg = engine.config
        ctx = engine.context()
        plan = engine.plan(ctx)
        by_id = {r.region_id: r for r in plan.regions}
        can_gen = cfg.generate and engine.can_generate(ctx.ws)
        spent = 0
        for rid, slots in zip(plan.chosen, split_slots(budget, len(plan.chosen))):
            if slots == 0:
                continue
            region = RegionSpec.from_sparse(by_id[rid])
            if generation_only:
                in_pool = int(ctx.ws.available[ctx.ws.rows(region.member_ids)].sum())
                if in_pool >= POOL_SUFFICES * slots:
                    continue
            n_gen = (slots if generation_only else round(slots * plan.generation_share)) if can_gen else 0
            shown_gen = 0
            if n_gen:
                set_id, proposal = engine.generate(region, n=2 * n_gen, weights=plan.weights)
                shown_gen = engine.review(reviewer, set_id, proposal, n_gen)
            spent += shown_gen
            n_ret = slots - shown_gen  # a generation shortfall goes to retrieval
            ctx = engine.context()
            if generation_only or n_ret <= 0 or not ctx.ws.available.any():
                continue
            set_id, proposal = engine.retrieve(region, k=min(cfg.retrieve_factor * n_ret, int(ctx.ws.available.sum())),
                                               weights=plan.weights, ctx=ctx)
            spent += engine.review(reviewer, set_id, proposal, n_ret)
        short = budget - spent
        ctx = engine.context()
        if fill and short > 0 and ctx.ws.available.any():
            from adde_core.acquisition.acquire import rank_pool

            proposal = rank_pool(ctx.ws, ctx.head, k=short, strategy="margin", random_state=cfg.random_state)
            set_id = engine.storage.save_proposal(proposal, ctx.ws.iteration)
            spent += engine.review(reviewer, set_id, proposal)
        return spent


#: ADDE generates for a region only when it has fewer undecided pool items than this many per slot.
#: Generated images have paid where real data is scarce and no pool can be retrieved from; on the
#: demo, where every failing region has dozens of pool items, 28 generated labels a run cost ADDE
#: its target (never vs 160 labels to 95 %, 3 seeds) although the oracle accepted them.
POOL_SUFFICES = 5

#: The pool-ranking arms and the registry strategy each one runs.
ARM_STRATEGIES: dict[str, str] = {"margin": "margin", "coverage": "uherding"}


@dataclass
class AddePolicy:
    """ADDE: failure-targeted coverage of the pool, plus generation into failing regions while it pays.

    Two arms share the round's budget:

    * ``generate`` — the plan's regions (where the model fails most, spread over classes) that the
      pool cannot serve (fewer than ``POOL_SUFFICES`` undecided pool items per slot), the
      generator trained on D_t, the quality gate, and the top-ranked kept images reviewed
      (:class:`RegionPolicy` with every slot sent to generation). It gets the adaptive
      generation share (``LoopConfig.generation_share`` at first, 0.2), which the engine raises
      when reviewers accept generated items and cuts at least 4x in a round where nothing passes
      the gate and review (0.2 → 0.05 → 0.0125), so generation pays or stops. Only where the data
      has images and an image embedder.
    * ``coverage`` — every other label: UHerding (greedy Gaussian-kernel coverage of the pool,
      each item counted by its uncertainty) with two changes that read the val split the loop
      already has (:mod:`adde_core.acquisition.targeting`): the uncertainty comes from
      probabilities at the val-fitted softmax temperature (the paper's calibration), and each
      item also counts ``1 + λ × local val error``, so coverage goes where the model is unsure
      *and* wrong. It takes any generation shortfall too.

    Why not a bandit over more arms (region retrieval, margin, typicality): measured on digits
    (8 seeds, 200 labels), sending 20 % of each round to region retrieval and margin needed 98
    labels to 95 % of full-data accuracy against 69-75 for coverage alone; with 10 labels per arm
    the leave-one-arm-out gains were mostly noise. UHerding already moves from coverage to
    uncertainty as its kernel shrinks.

    Ablations: ``adde-no-gen`` (coverage only), ``adde-no-div`` (the coverage arm becomes margin
    sampling, β = 0), ``adde-no-adapt`` (generation share fixed at its initial value).
    """

    name: str = "adde"

    def shares(self, engine: Engine) -> dict[str, float]:
        """This round's split of the budget over the arms."""
        cfg = engine.config
        main = "coverage" if cfg.use_diversity else "margin"
        ws = engine.storage.working_set()
        if not (cfg.generate and engine.can_generate(ws)):
            return {main: 1.0}
        g = engine.state().generation_share if cfg.adapt else cfg.generation_share
        return {"generate": float(g), main: 1.0 - float(g)}

    def acquire(self, engine: Engine, reviewer: Reviewer) -> None:
        from adde_core.acquisition.acquire import rank_pool

        budget = engine.config.budget
        shares = self.shares(engine)
        spent = 0
        n_gen = round(budget * shares.get("generate", 0.0))
        if n_gen > 0:
            spent += RegionPolicy().acquire_budget(engine, reviewer, n_gen, fill=False, generation_only=True)
        arm = "coverage" if "coverage" in shares else "margin"
        ctx = engine.context()
        if budget - spent > 0 and ctx.ws.available.any():
            proposal = rank_pool(ctx.ws, ctx.head, k=budget - spent, strategy=ARM_STRATEGIES[arm],
                                 random_state=engine.config.random_state + 1000 * ctx.ws.iteration,
                                 target_failures=arm == "coverage")
            set_id = engine.storage.save_proposal(proposal, ctx.ws.iteration)
            engine.review(reviewer, set_id, proposal)


def _pool_policy(name: str) -> Callable[[], PoolRanking]:
    return lambda: PoolRanking(name)


def _registry() -> dict[str, Callable[[], object]]:
    from adde_core.ranking import STRATEGIES

    out: dict[str, Callable[[], object]] = {"adde": AddePolicy, "adde-no-gen": AddePolicy,
                                            "adde-no-div": AddePolicy, "adde-no-adapt": AddePolicy,
                                            "adde-regions": RegionPolicy}
    out.update({name: _pool_policy(name) for name in STRATEGIES if name != "adde"})
    out.update({"seed-only": SeedOnly, "mads-naive": NaivePseudoLabel, "static-aug": StaticAugmentation})
    return out


#: Policy factories by name. The ADDE ablations differ only in the LoopConfig they run with (``ABLATIONS``).
POLICIES: dict[str, Callable[[], object]] = _registry()
#: LoopConfig switches of each ADDE variant.
ABLATIONS: dict[str, dict[str, bool]] = {"adde": {}, "adde-no-gen": {"generate": False},
                                         "adde-no-div": {"use_diversity": False}, "adde-no-adapt": {"adapt": False},
                                         "adde-regions": {}}
#: The pre-engine name of margin sampling, kept so old commands still run.
ALIASES = {"uncertainty": "margin"}


def policy_names() -> list[str]:
    """Every name ``simulate --strategy`` accepts."""
    return list(POLICIES) + list(ALIASES)
