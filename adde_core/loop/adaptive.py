"""Adapt the ranking weights, the retrieval/generation split, generator weights and region choice from what paid off.

After each iteration the loop summarises what happened in an :class:`IterationOutcome` and calls
:func:`update_state`, which returns the next :class:`AdaptiveState` plus one-line ``effects`` for the
iteration row. The rules are deliberately simple, bounded and documented so a user can predict them:

**Ranking weights (α, β, γ): exponentiated-gradient (multiplicative-weights) update.**
Each component gets a payoff ``r`` (r_U, r_Div in [-1/2, 1/2]; r_Q in [-1, 1])::

    s     = |val_gain| + |diversity_gain|
    r_U   = (val_gain - diversity_gain) / (2 s)    (0 when s == 0)  -> α
    r_Div = -r_U                                                     -> β
    p_gen = (accepted_gen + 1) / (shown_gen + 2)          (Beta(1, 1)-smoothed acceptance)
    r_Q   = (quality_target - p_gen) / max(quality_target, 1 - quality_target)
                                         (0 when no generated item was shown)  -> γ

then ``w_i <- w_i * exp(learning_rate * r_i)``, normalised to sum 1, and floored: any weight below
``weight_floor`` is set to the floor and the others are rescaled so the sum stays 1 (no term ever
dies, and with no evidence nothing moves). As in any multiplicative-weights update, a weight rises
when its payoff beats the weights' average payoff. Uncertainty sampling exists to raise accuracy and
Div to widen coverage, so the two gains decide how α and β share their mass; their payoffs are
zero-sum, so large gains do not by themselves crowd out γ. A low acceptance of generated items
means poor generations reached the reviewer, so Q, the quality term that demotes them, is raised
(and relaxed when generated items are accepted readily). ``val_gain`` and ``diversity_gain`` must
be on comparable scales: accuracy as a fraction and diversity as a *relative* gain
(ΔVendi / Vendi_before) or a gain of the normalised cluster entropy.

**Retrieval/generation split** (the share of the acquisition budget sent to generation):
``target = p_gen / (p_gen + p_ret)`` with both acceptance rates Beta(1, 1)-smoothed, then
``share <- share + learning_rate * (target - share)``, clipped to ``GENERATION_SHARE_BOUNDS``
([0.01, 0.9]). Unchanged when no candidate at all was shown. Generated images the quality gate
rejected count as *shown with zero reward* (they cost generation and review slots that
retrieval then had to fill), and a round in which generation was tried and **nothing** generated
was accepted at least quarters the share (``share <- min(share, share / 4)`` after the step), so
a generator whose output never passes is down to ≤ 5 % of the budget within two rounds
(0.2 → 0.05 → 0.0125) instead of creeping upward on Beta-smoothed evidence.

**Generators** with recorded gate counts are credited by their own smoothed pass-and-accept rate ``(accepted + 1) /
(generated + 2)`` (gate rejections included): their weight is multiplied by
``exp(learning_rate * (rate - quality_target) * 2)``, floored at ``generator_floor``, so between
several generators the allocation drifts to the one whose images pay.

**Acquisition split** (:mod:`adde_core.loop.policies`): ADDE sends the generation share of each
round to generation and the rest to failure-targeted coverage. An earlier version split the budget
over four arms by their leave-one-arm-out val gain; with ~10 labels per arm that gain was mostly
noise, and the split cost labels against coverage alone (digits, issue 13), so it was removed.

**Flags.** ``biased content`` on generated items multiplies that generator key's weight by
``bias_penalty ** (flag_share / bias_share_unit)``, where ``flag_share`` is the flagged fraction of
the items that key generated this iteration (defaults: every 20 % flagged halves the weight, so
3 of 10 flagged gives 1.00 → 0.35), floored at ``generator_floor``. ``edge case`` adds the item's region to ``regions_to_revisit``; a
region leaves that list once it has been acquired for again (it appears in the outcome's region
gains) without a new edge-case flag. ``ambiguous`` flags are counted (cumulatively in
``flag_counts``) and reported; they count against label consistency elsewhere.

**Regions.** Each acquired region's reward ``mix * val_gain_r + (1 - mix) * diversity_gain_r``
updates its running mean, which :class:`RegionBandit` turns into UCB scores.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from adde_core.errors import AddeError
from adde_core.ranking.weights import RankingWeights

__all__ = [
    "FLAG_AMBIGUOUS",
    "FLAG_BIASED",
    "FLAG_EDGE_CASE",
    "GENERATION_SHARE_BOUNDS",
    "SOURCES",
    "AdaptiveState",
    "IterationOutcome",
    "RegionBandit",
    "update_state",
]

#: Where a candidate came from (the acquisition modes stored with each candidate set).
SOURCES: tuple[str, ...] = ("retrieve", "generate")
# Same strings as adde_core.store.models.REVIEW_FLAGS (a test checks it); not imported from there
# because that module pulls in SQLAlchemy and this one should stay import-light.
FLAG_BIASED = "biased content"
FLAG_EDGE_CASE = "edge case"
FLAG_AMBIGUOUS = "ambiguous"
_FLAGS = (FLAG_BIASED, FLAG_EDGE_CASE, FLAG_AMBIGUOUS)
#: Bounds of the generation share: neither source is ever switched off, so it can prove itself again.
GENERATION_SHARE_BOUNDS: tuple[float, float] = (0.01, 0.9)
#: Factor the generation share is at least cut by in a round where generation produced no accepted item.
GENERATION_FAIL_FACTOR = 0.25
#: Default UCB exploration constant; rewards are accuracy-scale gains (a few hundredths), so the
#: textbook sqrt(2) would make exploration swamp every observed difference.
DEFAULT_EXPLORATION = 0.05
_STATE_VERSION = 1
_GREEK = {"alpha": "α", "beta": "β", "gamma": "γ"}


def _finite(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise AddeError(f"{what} must be a finite number, got {value!r}.")
    return float(value)


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise AddeError(f"{what} must be a whole number >= 0, got {value!r}.")
    return int(value)


def _smoothed(accepted: int, shown: int) -> float:
    """Posterior mean acceptance under a Beta(1, 1) prior: 0.5 with no evidence, never exactly 0 or 1."""
    return (accepted + 1) / (shown + 2)


# --------------------------------------------------------------------------------------------- outcome
@dataclass(frozen=True)
class IterationOutcome:
    """What one iteration's acquisition and review produced: the evidence :func:`update_state` learns from.

    Attributes
    ----------
    shown : mapping of str to int
        Candidates shown to the reviewer, by source (``"retrieve"``, ``"generate"``); missing sources count 0.
    accepted : mapping of str to int
        Candidates that entered D_valid (accepted or relabelled), by source; at most ``shown``.
    val_gain : float
        Change of validation accuracy over the iteration (a fraction: +0.02 is two points).
    diversity_gain : float
        Change of M_div on a scale comparable to ``val_gain``: the relative Vendi gain
        (ΔVendi / Vendi_before) or the gain of the normalised cluster entropy.
    shown_by_generator : mapping of str to int
        Generated candidates shown, by generator or prompt key (the denominator of flag shares).
    region_val_gain, region_diversity_gain : mapping of str to float
        Gains attributed to each region acquired for this iteration (a region missing from one
        mapping counts 0 there).
    flags : sequence of (flag, source, generator_key, region_id)
        One entry per flag a reviewer set; ``generator_key`` is required for generated items and
        ``None`` for retrieved ones; ``region_id`` may be ``None`` (no region known).
    gate_rejected : mapping of str to int
        Generated images the quality gate dropped this iteration, by generator key (never reviewed,
        so not in ``shown``): they count as generated-and-not-accepted.
    accepted_by_generator : mapping of str to int
        Generated candidates accepted, by generator key.
    """

    shown: Mapping[str, int] = field(default_factory=dict)
    accepted: Mapping[str, int] = field(default_factory=dict)
    val_gain: float = 0.0
    diversity_gain: float = 0.0
    shown_by_generator: Mapping[str, int] = field(default_factory=dict)
    region_val_gain: Mapping[str, float] = field(default_factory=dict)
    region_diversity_gain: Mapping[str, float] = field(default_factory=dict)
    flags: Sequence[tuple[str, str, str | None, str | None]] = ()
    gate_rejected: Mapping[str, int] = field(default_factory=dict)
    accepted_by_generator: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "accepted_by_generator", {str(k): _count(v, f"accepted_by_generator[{k!r}]")
                                                           for k, v in dict(self.accepted_by_generator).items()})
        object.__setattr__(self, "gate_rejected", {str(k): _count(v, f"gate_rejected[{k!r}]")
                                                   for k, v in dict(self.gate_rejected).items()})
        for name in ("shown", "accepted"):
            counts = dict(getattr(self, name))
            bad = sorted(set(counts) - set(SOURCES))
            if bad:
                raise AddeError(f"IterationOutcome.{name}: unknown source(s) {bad}; use {', '.join(SOURCES)}.")
            object.__setattr__(self, name, {s: _count(counts.get(s, 0), f"{name}[{s!r}]") for s in SOURCES})
        for s in SOURCES:
            if self.accepted[s] > self.shown[s]:
                raise AddeError(f"IterationOutcome: {self.accepted[s]} {s} candidates accepted but only "
                                f"{self.shown[s]} shown; count every accepted candidate as shown too.")
        object.__setattr__(self, "val_gain", _finite(self.val_gain, "val_gain"))
        object.__setattr__(self, "diversity_gain", _finite(self.diversity_gain, "diversity_gain"))
        by_gen = {str(k): _count(v, f"shown_by_generator[{k!r}]") for k, v in dict(self.shown_by_generator).items()}
        if sum(by_gen.values()) > self.shown["generate"]:
            raise AddeError(f"IterationOutcome: shown_by_generator adds up to {sum(by_gen.values())} but only "
                            f"{self.shown['generate']} generated candidates were shown.")
        object.__setattr__(self, "shown_by_generator", by_gen)
        for name in ("region_val_gain", "region_diversity_gain"):
            gains = {str(k): _finite(v, f"{name}[{k!r}]") for k, v in dict(getattr(self, name)).items()}
            object.__setattr__(self, name, gains)
        flags = []
        for entry in self.flags:
            try:
                flag, source, key, region = entry
            except (TypeError, ValueError):
                raise AddeError(f"IterationOutcome.flags: {entry!r} is not (flag, source, generator_key, region_id).")
            if flag not in _FLAGS:
                raise AddeError(f"IterationOutcome.flags: unknown flag {flag!r}; use {', '.join(_FLAGS)}.")
            if source not in SOURCES:
                raise AddeError(f"IterationOutcome.flags: unknown source {source!r} for flag {flag!r}; "
                                f"use {', '.join(SOURCES)}.")
            if source == "generate" and not key:
                raise AddeError(f"IterationOutcome.flags: the {flag!r} flag on a generated item needs its "
                                "generator key, so the right generator can be adjusted.")
            flags.append((flag, source, None if key is None else str(key), None if region is None else str(region)))
        object.__setattr__(self, "flags", tuple(flags))


# ---------------------------------------------------------------------------------------------- bandit
class RegionBandit:
    """UCB1 over regions (clusters), as in Quad-style region selection: explore unvisited regions first.

    ``UCB_r = mean_r + c * sqrt(ln N / n_r)`` with ``n_r`` the visits of region ``r`` and ``N`` the
    visits of all regions the bandit knows.

    Parameters
    ----------
    stats : mapping of str to (int, float), optional
        ``region_id -> (visits, mean reward)`` to start from.
    """

    def __init__(self, stats: Mapping[str, tuple[int, float]] | None = None) -> None:
        self.stats: dict[str, tuple[int, float]] = {}
        for rid, (n, mean) in dict(stats or {}).items():
            n = _count(n, f"visits of region {rid!r}")
            if n == 0:
                continue
            self.stats[str(rid)] = (n, _finite(mean, f"mean reward of region {rid!r}"))

    @property
    def total_visits(self) -> int:
        """N: visits summed over every known region."""
        return sum(n for n, _ in self.stats.values())

    def ucb(self, region_id: str, *, c: float = DEFAULT_EXPLORATION) -> float:
        """Upper confidence bound of one region; ``inf`` for a region never visited."""
        if region_id not in self.stats:
            return math.inf
        n, mean = self.stats[region_id]
        return mean + c * math.sqrt(math.log(self.total_visits) / n)

    def select(self, region_ids: Iterable[str], k: int, *, c: float = DEFAULT_EXPLORATION) -> list[str]:
        """The ``k`` regions with the highest UCB, unvisited regions first.

        Parameters
        ----------
        region_ids : iterable of str
            Candidate regions (duplicates are ignored).
        k : int
            How many to return (fewer when there are fewer candidates).
        c : float, default DEFAULT_EXPLORATION
            Exploration constant, >= 0.

        Returns
        -------
        list of str
            Best first. Ties (including among unvisited regions) keep the order of ``region_ids``,
            so a caller can pass regions sorted by sparsity and get the sparsest first.
        """
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 0:
            raise AddeError(f"RegionBandit.select: k must be a whole number >= 0, got {k!r}.")
        if _finite(c, "RegionBandit exploration constant c") < 0:
            raise AddeError(f"RegionBandit exploration constant c must be >= 0, got {c!r}.")
        ordered = list(dict.fromkeys(str(r) for r in region_ids))
        # sorted() is stable, so equal scores keep the caller's order.
        return sorted(ordered, key=lambda r: -self.ucb(r, c=c))[:k]

    def update(self, region_id: str, reward: float) -> None:
        """Record one visit of ``region_id`` with ``reward`` (incremental mean)."""
        reward = _finite(reward, f"reward for region {region_id!r}")
        n, mean = self.stats.get(str(region_id), (0, 0.0))
        self.stats[str(region_id)] = (n + 1, mean + (reward - mean) / (n + 1))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready ``{"regions": {id: {"count": n, "mean": m}}}``."""
        return {"regions": {r: {"count": n, "mean": m} for r, (n, m) in sorted(self.stats.items())}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RegionBandit:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls({r: (v["count"], v["mean"]) for r, v in dict(data.get("regions", {})).items()})
        except (KeyError, TypeError, AttributeError) as exc:
            raise AddeError(f"Region bandit state is malformed ({exc!r}); expected "
                            '{"regions": {id: {"count": n, "mean": m}}}.') from exc

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RegionBandit) and self.stats == other.stats

    def __repr__(self) -> str:
        return f"RegionBandit({self.stats!r})"


# ----------------------------------------------------------------------------------------------- state
@dataclass(frozen=True)
class AdaptiveState:
    """Everything the loop adapts between iterations; immutable, JSON round trip via ``to_dict``/``from_dict``.

    Attributes
    ----------
    weights : RankingWeights
        Current α, β, γ (normalised to sum 1 after the first update).
    generation_share : float, default 0.5
        Share of the acquisition budget sent to generation, in [0.1, 0.9]; the rest goes to retrieval.
    generator_weights : mapping of str to float
        Weight of each generator or prompt key; a key not listed weighs 1.0.
    region_stats : mapping of str to (int, float)
        UCB statistics per region: ``(visits, mean reward)``.
    regions_to_revisit : tuple of str
        Regions reviewers marked ``edge case``: acquire more there.
    flag_counts : mapping of str to int
        Flags seen so far, summed over iterations.
    iteration : int
        How many outcomes this state has learned from.
    """

    weights: RankingWeights = field(default_factory=RankingWeights)
    generation_share: float = 0.5
    generator_weights: Mapping[str, float] = field(default_factory=dict)
    region_stats: Mapping[str, tuple[int, float]] = field(default_factory=dict)
    regions_to_revisit: tuple[str, ...] = ()
    flag_counts: Mapping[str, int] = field(default_factory=dict)
    iteration: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.weights, RankingWeights):
            raise AddeError(f"AdaptiveState.weights must be a RankingWeights, got {type(self.weights).__name__}.")
        share = _finite(self.generation_share, "generation_share")
        lo, hi = GENERATION_SHARE_BOUNDS
        if not lo - 1e-12 <= share <= hi + 1e-12:
            raise AddeError(f"generation_share must lie in [{lo}, {hi}] so neither source is switched off, "
                            f"got {share}.")
        object.__setattr__(self, "generation_share", share)
        gw = {}
        for key, w in dict(self.generator_weights).items():
            w = _finite(w, f"weight of generator {key!r}")
            if w <= 0:
                raise AddeError(f"weight of generator {key!r} must be > 0, got {w}.")
            gw[str(key)] = w
        object.__setattr__(self, "generator_weights", gw)
        object.__setattr__(self, "region_stats", RegionBandit(self.region_stats).stats)
        object.__setattr__(self, "regions_to_revisit", tuple(dict.fromkeys(str(r) for r in self.regions_to_revisit)))
        counts = {str(f): _count(n, f"flag_counts[{f!r}]") for f, n in dict(self.flag_counts).items()}
        object.__setattr__(self, "flag_counts", counts)
        object.__setattr__(self, "iteration", _count(self.iteration, "iteration"))

    def generator_weight(self, key: str) -> float:
        """Weight of a generator or prompt key (1.0 until it has been penalised)."""
        return self.generator_weights.get(key, 1.0)

    def bandit(self) -> RegionBandit:
        """A :class:`RegionBandit` holding a copy of this state's region statistics."""
        return RegionBandit(self.region_stats)

    def select_regions(self, region_ids: Iterable[str], k: int, *, c: float = DEFAULT_EXPLORATION) -> list[str]:
        """Up to ``k`` regions to acquire for: regions marked for revisiting first, then by UCB.

        Parameters
        ----------
        region_ids : iterable of str
            The regions available now (a marked region no longer among them is skipped).
        k : int
        c : float, default DEFAULT_EXPLORATION
            UCB exploration constant.

        Returns
        -------
        list of str
        """
        available = list(dict.fromkeys(str(r) for r in region_ids))
        marked = [r for r in self.regions_to_revisit if r in available]
        rest = self.bandit().select([r for r in available if r not in marked], k, c=c)
        return (marked + rest)[:k]

    def allocate(self, budget: int, generator_keys: Sequence[str] = ()) -> dict[str, Any]:
        """Split an acquisition budget between retrieval and the generators.

        Parameters
        ----------
        budget : int
            Candidates to acquire this iteration.
        generator_keys : sequence of str
            Generators available; with none, everything goes to retrieval.

        Returns
        -------
        dict
            ``{"retrieve": n, "generate": {key: n_key, ...}}``. Generation gets
            ``round(budget * generation_share)``, shared across keys in proportion to their
            weights by largest remainder (ties to the earlier key), so counts always add up to ``budget``.
        """
        budget = _count(budget, "budget")
        keys = list(dict.fromkeys(generator_keys))
        n_gen = round(budget * self.generation_share) if keys else 0
        weights = [self.generator_weight(k) for k in keys]
        total = sum(weights)
        exact = [n_gen * w / total for w in weights] if keys else []
        alloc = [math.floor(x) for x in exact]
        order = sorted(range(len(keys)), key=lambda i: (-(exact[i] - alloc[i]), i))
        for i in order[: n_gen - sum(alloc)]:
            alloc[i] += 1
        return {"retrieve": budget - n_gen, "generate": dict(zip(keys, alloc))}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (plain floats, ints, strings, lists)."""
        return {
            "version": _STATE_VERSION,
            "weights": {"alpha": self.weights.alpha, "beta": self.weights.beta, "gamma": self.weights.gamma},
            "generation_share": self.generation_share,
            "generator_weights": dict(sorted(self.generator_weights.items())),
            "region_stats": RegionBandit(self.region_stats).to_dict()["regions"],
            "regions_to_revisit": list(self.regions_to_revisit),
            "flag_counts": dict(sorted(self.flag_counts.items())),
            "iteration": self.iteration,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AdaptiveState:
        """Inverse of :meth:`to_dict`; raises :class:`AddeError` on a malformed or newer state."""
        version = data.get("version", _STATE_VERSION)
        if version != _STATE_VERSION:
            raise AddeError(f"Adaptive state version {version!r} is not supported (expected {_STATE_VERSION}); "
                            "upgrade ADDE or reset the adaptive state.")
        try:
            w = data.get("weights", {})
            return cls(
                weights=RankingWeights(w["alpha"], w["beta"], w["gamma"]) if w else RankingWeights(),
                generation_share=data.get("generation_share", 0.5),
                generator_weights=data.get("generator_weights", {}),
                region_stats=RegionBandit.from_dict({"regions": data.get("region_stats", {})}).stats,
                regions_to_revisit=tuple(data.get("regions_to_revisit", ())),
                flag_counts=data.get("flag_counts", {}),
                iteration=data.get("iteration", 0),
            )  # states stored while the arm split existed carry "arm_stats": ignored
        except (KeyError, TypeError, AttributeError) as exc:
            raise AddeError(f"Adaptive state is malformed ({exc!r}); reset it or restore it from a backup.") from exc


# ---------------------------------------------------------------------------------------------- update
def _floor_simplex(w: list[float], floor: float) -> list[float]:
    """Normalise to sum 1 with every entry >= floor, rescaling only the entries above the floor."""
    total = sum(w)
    w = [x / total for x in w]
    fixed: set[int] = set()
    while True:
        low = {i for i, x in enumerate(w) if i not in fixed and x < floor}
        if not low:
            return w
        fixed |= low
        free = [i for i in range(len(w)) if i not in fixed]
        mass = sum(w[i] for i in free)
        remaining = 1.0 - floor * len(fixed)
        w = [floor if i in fixed else w[i] * remaining / mass for i in range(len(w))]


def _gain_reason(v: float, d: float) -> str:
    if d > v:
        return f"diversity gain {d:+.3f} outweighed val gain {v:+.3f}"
    return f"val gain {v:+.3f} outweighed diversity gain {d:+.3f}"


def update_state(
    state: AdaptiveState,
    outcome: IterationOutcome,
    *,
    learning_rate: float = 0.3,
    weight_floor: float = 0.05,
    quality_target: float = 0.5,
    bias_penalty: float = 0.5,
    bias_share_unit: float = 0.2,
    generator_floor: float = 0.05,
    region_reward_mix: float = 0.5,
) -> tuple[AdaptiveState, list[str]]:
    """Learn from one iteration: return the next state and the human-readable effects.

    The rules are documented in this module's docstring.

    Parameters
    ----------
    state : AdaptiveState
    outcome : IterationOutcome
    learning_rate : float, default 0.3
        In [0, 1]. Step of the exponentiated-gradient weight update (a payoff of 1 multiplies a
        weight by e^0.3 ≈ 1.35 before renormalising) and fraction of the way the generation share
        moves toward its target.
    weight_floor : float, default 0.05
        Smallest α, β or γ after the update, in [0, 1/3].
    quality_target : float, default 0.5
        Acceptance rate of generated items at which γ holds still; below it γ rises.
    bias_penalty : float, default 0.5
        Factor applied to a generator's weight per ``bias_share_unit`` of its items flagged ``biased content``.
    bias_share_unit : float, default 0.2
        Flagged share that costs one full ``bias_penalty`` (so by default each 20 % flagged halves the weight).
    generator_floor : float, default 0.05
        Smallest generator weight (a generator is never banned outright; the user can remove it).
    region_reward_mix : float, default 0.5
        Weight of the region's val gain (vs its diversity gain) in the bandit reward, in [0, 1].

    Returns
    -------
    new_state : AdaptiveState
    effects : list of str
        One line per change, e.g. ``"β 0.40 → 0.46: diversity gain +0.120 outweighed val gain +0.010"``.
    """
    if not isinstance(state, AdaptiveState) or not isinstance(outcome, IterationOutcome):
        raise AddeError("update_state needs an AdaptiveState and an IterationOutcome.")
    lr = _finite(learning_rate, "learning_rate")
    floor = _finite(weight_floor, "weight_floor")
    target_q = _finite(quality_target, "quality_target")
    penalty = _finite(bias_penalty, "bias_penalty")
    unit = _finite(bias_share_unit, "bias_share_unit")
    gfloor = _finite(generator_floor, "generator_floor")
    mix = _finite(region_reward_mix, "region_reward_mix")
    checks = [(0 <= lr <= 1, "learning_rate must lie in [0, 1]"),
              (0 <= floor <= 1 / 3, "weight_floor must lie in [0, 1/3]"),
              (0 < target_q < 1, "quality_target must lie in (0, 1)"),
              (0 < penalty <= 1, "bias_penalty must lie in (0, 1]"),
              (unit > 0, "bias_share_unit must be > 0"), (0 < gfloor <= 1, "generator_floor must lie in (0, 1]"),
              (0 <= mix <= 1, "region_reward_mix must lie in [0, 1]")]
    for ok, message in checks:
        if not ok:
            raise AddeError(f"update_state: {message}.")
    effects: list[str] = []

    # --- ranking weights: exponentiated gradient on the payoffs, then the floored simplex
    v, d = outcome.val_gain, outcome.diversity_gain
    s = abs(v) + abs(d)
    r_u = (v - d) / (2 * s) if s > 0 else 0.0
    r_div = -r_u
    rejected = sum(outcome.gate_rejected.values())
    shown_gen, acc_gen = outcome.shown["generate"] + rejected, outcome.accepted["generate"]
    shown_ret, acc_ret = outcome.shown["retrieve"], outcome.accepted["retrieve"]
    p_gen, p_ret = _smoothed(acc_gen, shown_gen), _smoothed(acc_ret, shown_ret)
    r_q = (target_q - p_gen) / max(target_q, 1 - target_q) if shown_gen else 0.0
    old = list(state.weights.normalized())
    new = _floor_simplex([w * math.exp(lr * r) for w, r in zip(old, (r_u, r_div, r_q))], floor)
    quality_reason = (f"{acc_gen} of {shown_gen} generated items accepted (smoothed rate {p_gen:.2f} vs "
                      f"target {target_q:.2f})")
    for name, before, after, r in zip(("alpha", "beta", "gamma"), old, new, (r_u, r_div, r_q)):
        if round(before, 2) == round(after, 2):
            continue
        floor_reason = f"kept at or above the floor {floor:.2f} so no term dies"
        if name == "gamma":
            reason = quality_reason if r_q else "renormalised after α and β moved" if r_u else floor_reason
        else:
            reason = _gain_reason(v, d) if r_u else "renormalised after γ moved" if r_q else floor_reason
        if after <= floor + 1e-12 and reason != floor_reason:
            reason += f" (held at the floor {floor:.2f})"
        effects.append(f"{_GREEK[name]} {before:.2f} → {after:.2f}: {reason}")
    weights = RankingWeights(*new)

    # --- retrieval/generation split
    share = state.generation_share
    if shown_gen + shown_ret:
        lo, hi = GENERATION_SHARE_BOUNDS
        target = p_gen / (p_gen + p_ret)
        share = min(hi, max(lo, share + lr * (target - share)))
        if shown_gen and acc_gen == 0:
            share = max(lo, min(share, state.generation_share * GENERATION_FAIL_FACTOR))
        if round(share, 3) != round(state.generation_share, 3):
            cmp = "<" if p_gen < p_ret else ">"
            effects.append(f"generation share {state.generation_share:.2f} → {share:.2f}: generated acceptance "
                           f"{p_gen:.2f} {cmp} retrieved acceptance {p_ret:.2f} ({acc_gen} of {shown_gen} vs "
                           f"{acc_ret} of {shown_ret}" + (f"; {rejected} generated rejected by the gate count as "
                                                          "shown and not accepted" if rejected else "") + ")")

    # --- per-generator credit: pass-and-accept rate, gate rejections included
    gen_weights = dict(state.generator_weights)
    if shown_gen:
        accepted_by = dict(outcome.accepted_by_generator)
        keys = sorted(outcome.gate_rejected)  # generators whose gate counts the engine recorded
        for key in keys:
            made = outcome.shown_by_generator.get(key, 0) + outcome.gate_rejected.get(key, 0)
            acc = accepted_by.get(key, acc_gen if len(keys) == 1 else 0)
            rate = _smoothed(acc, made)
            before = gen_weights.get(key, 1.0)
            after = max(gfloor, min(1.0, before * math.exp(lr * 2 * (rate - target_q))))
            if round(after, 2) != round(before, 2):
                gen_weights[key] = after
                effects.append(f"generator {key} weight {before:.2f} → {after:.2f}: {acc} of {made} generated "
                               "images passed the gate and were accepted")

    # --- flags
    biased: dict[str, int] = {}
    for flag, source, key, _region in outcome.flags:
        if flag == FLAG_BIASED and source == "generate":
            biased[key] = biased.get(key, 0) + 1  # type: ignore[index]
    for key in sorted(biased):
        n = biased[key]
        # A key missing from shown_by_generator is judged on its flagged items alone (share 1).
        denom = max(outcome.shown_by_generator.get(key, 0), n)
        before = gen_weights.get(key, 1.0)
        after = max(gfloor, before * penalty ** ((n / denom) / unit))
        gen_weights[key] = after
        effects.append(f"generator {key} weight {before:.2f} → {after:.2f}: {n} of {denom} generated items "
                       "flagged biased content")
    biased_retrieved = sum(1 for f, src, _, _ in outcome.flags if f == FLAG_BIASED and src == "retrieve")
    if biased_retrieved:
        effects.append(f"{biased_retrieved} retrieved item(s) flagged biased content: check the pool's sources")

    edge: dict[str, int] = {}
    for flag, _source, _key, region in outcome.flags:
        if flag == FLAG_EDGE_CASE and region is not None:
            edge[region] = edge.get(region, 0) + 1
    acquired = set(outcome.region_val_gain) | set(outcome.region_diversity_gain)
    revisit = [r for r in state.regions_to_revisit if r in edge or r not in acquired]
    for region in state.regions_to_revisit:
        if region not in revisit:
            effects.append(f"region {region} revisited with no new edge cases: no longer marked")
    for region in sorted(edge):
        if region not in revisit:
            revisit.append(region)
        effects.append(f"region {region} marked for more acquisition: {edge[region]} item(s) flagged edge case")

    n_amb = sum(1 for f, *_ in outcome.flags if f == FLAG_AMBIGUOUS)
    if n_amb:
        per_source = {src: sum(1 for f, s_, *_ in outcome.flags if f == FLAG_AMBIGUOUS and s_ == src)
                      for src in SOURCES}
        by_src = ", ".join(f"{n} {src}d" for src, n in per_source.items() if n)
        effects.append(f"{n_amb} item(s) flagged ambiguous ({by_src}): they count against label consistency")
    flag_counts = dict(state.flag_counts)
    for flag, *_ in outcome.flags:
        flag_counts[flag] = flag_counts.get(flag, 0) + 1

    # --- region bandit
    bandit = state.bandit()
    rewards = []
    for region in sorted(acquired):
        val_r = outcome.region_val_gain.get(region, 0.0)
        reward = mix * val_r + (1 - mix) * outcome.region_diversity_gain.get(region, 0.0)
        bandit.update(region, reward)
        rewards.append(f"{region} {reward:+.3f}")
    if rewards:
        effects.append("region rewards: " + ", ".join(rewards))

    if not effects:
        effects.append("nothing changed: no gains, no candidates shown and no flags to learn from")
    new_state = replace(state, weights=weights, generation_share=share, generator_weights=gen_weights,
                        region_stats=bandit.stats, regions_to_revisit=tuple(revisit), flag_counts=flag_counts,
                        iteration=state.iteration + 1)
    return new_state, effects
