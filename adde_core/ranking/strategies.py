"""Candidate ranking for human review: the ADDE score α·U + β·Div + γ·Q and the baseline strategies.

Every strategy returns the same table, whose breakdown always sums to the score
(``alpha_U + beta_Div + gamma_Q == score``); a strategy whose criterion is not a weighted sum of
U, Div and Q reports weights 0 (score 0) and puts its own criterion in the ``criterion`` column.

========= ======================================= ============================== ===========================
name      order                                   score (weights α, β, γ)        criterion column
========= ======================================= ============================== ===========================
adde      greedy: best score, then Div updated    α·U + β·Div + γ·Q (the given   the score at pick time
          against the pick                        weights divided by their sum)
margin    margin uncertainty, highest first       U (1, 0, 0), U = margin        U
entropy   entropy uncertainty, highest first      U (1, 0, 0), U = entropy       U
coreset   k-center greedy (Sener & Savarese)      Div (0, 1, 0), no region term  raw cosine distance at pick
typiclust TypiClust (Hacohen et al. 2022)         0 (0, 0, 0)                    typicality in its cluster
random    uniform random permutation              0 (0, 0, 0)                    the uniform draw
========= ======================================= ============================== ===========================

Column ``Div`` is always the diversity contribution *at that rank*: novelty relative to the
labelled set and every row ranked above (see :mod:`adde_core.ranking.components`), so the
same column compares how redundant each strategy's picks are. Ties are broken by input
order. Adding a strategy is one function ``(RankingContext, k) -> Selection`` plus one line
in ``STRATEGIES``.
"""

from __future__ import annotations

import heapq
import numbers
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Union

import numpy as np

from adde_core.errors import AddeError
from adde_core.ranking.components import (
    UNCERTAINTIES,
    cosine_distance_to_set,
    novelty_in_order,
    unit_rows,
)
from adde_core.ranking.inputs import RankingInput
from adde_core.ranking.weights import RankingWeights

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "COLUMNS",
    "STRATEGIES",
    "RankedCandidates",
    "RankingContext",
    "Selection",
    "rank_adde",
    "rank_candidates",
    "rank_coreset",
    "rank_entropy",
    "rank_margin",
    "rank_random",
    "rank_typiclust",
]

RandomState = Union[None, int, np.random.Generator]
Weights3 = tuple[float, float, float]

COLUMNS = ("id", "rank", "score", "U", "Div", "Q", "alpha_U", "beta_Div", "gamma_Q", "criterion",
           "position", "source", "strategy")

# TypiClust settings from the authors' code (github.com/avihu111/TypiClust): at most 500 clusters,
# clusters of <= 5 items are visited last, typicality from up to 20 neighbours.
TYPICLUST_MAX_CLUSTERS = 500
TYPICLUST_MIN_CLUSTER_SIZE = 5
TYPICLUST_NEIGHBORS = 20
# Clustering runs on a PCA of the unit rows: k-means++ seeding of ~400 clusters costs ~5 s on
# 8k x 1280 but ~0.1 s on 50 dimensions, which keep the cluster structure that matters here.
TYPICLUST_PCA_COMPONENTS = 50
# Picks between full distance updates in the greedy strategies (see _lazy_greedy).
_GREEDY_BLOCK = 256


@dataclass(frozen=True, eq=False)
class RankingContext:
    """What every strategy reads: the validated input, unit vectors and the precomputed components.

    Attributes
    ----------
    inputs : RankingInput
    weights : RankingWeights
        The user's weights (only ``adde`` uses them).
    uncertainty : str
        ``"margin"`` or ``"entropy"``: the U reported by strategies other than margin/entropy.
    region_weight : float
        Share of proximity to the region centroid in Div (ignored without a centroid).
    random_state : None, int or numpy Generator
    Xn, Ln : ndarray
        Unit-normalised candidate and labelled embeddings (float32).
    d_labelled : ndarray (n,)
        Cosine distance of each candidate to the nearest labelled item (2 when none).
    d_scale : float
        ``D0``, the largest of ``d_labelled`` (1 when that is 0), dividing every distance in Div.
    proximity : ndarray (n,) or None
        ``1 - c / C0`` for the cosine distance ``c`` to the region centroid, or None.
    quality : ndarray (n,)
        Q, 1 where not given.
    """

    inputs: RankingInput
    weights: RankingWeights
    uncertainty: str
    region_weight: float
    random_state: RandomState
    Xn: np.ndarray
    Ln: np.ndarray
    d_labelled: np.ndarray
    d_scale: float
    proximity: np.ndarray | None
    quality: np.ndarray
    _u_cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, inputs: RankingInput, *, weights: RankingWeights, uncertainty: str, region_weight: float,
              random_state: RandomState) -> RankingContext:
        """Normalise the embeddings and compute the distances every strategy needs."""
        Xn = unit_rows(inputs.vectors)
        Ln = unit_rows(inputs.labelled_vectors) if len(inputs.labelled_vectors) else inputs.labelled_vectors
        d_lab = cosine_distance_to_set(Xn, Ln)
        d_scale = float(d_lab.max()) if d_lab.size else 1.0
        proximity = None
        if inputs.region_centroid is not None:
            c = unit_rows(inputs.region_centroid[None, :])
            c_dist = np.clip(1.0 - (Xn @ c[0]).astype(np.float64), 0.0, 2.0)
            c_max = float(c_dist.max()) if c_dist.size else 0.0
            proximity = 1.0 - c_dist / c_max if c_max > 0 else np.ones_like(c_dist)
        quality = inputs.quality if inputs.quality is not None else np.ones(inputs.n)
        return cls(inputs=inputs, weights=weights, uncertainty=uncertainty, region_weight=float(region_weight),
                   random_state=random_state, Xn=Xn, Ln=Ln, d_labelled=d_lab,
                   d_scale=d_scale if d_scale > 0 else 1.0, proximity=proximity, quality=quality)

    @property
    def n(self) -> int:
        """Number of candidates."""
        return self.inputs.n

    def U(self, kind: str | None = None) -> np.ndarray | None:
        """Uncertainty of every candidate (``kind`` defaults to the context's), or None without probs."""
        kind = kind or self.uncertainty
        if self.inputs.probs is None:
            return None
        if kind not in self._u_cache:
            self._u_cache[kind] = UNCERTAINTIES[kind](self.inputs.probs)
        return self._u_cache[kind]

    def div(self, d: np.ndarray | float, positions: np.ndarray | int, *, use_region: bool = True) -> np.ndarray:
        """Div for raw cosine distances ``d`` of the candidates at ``positions`` (see the components module)."""
        novelty = d / self.d_scale
        if not use_region or self.proximity is None:
            return novelty
        w = self.region_weight
        return (1.0 - w) * novelty + w * self.proximity[positions]

    def rng(self) -> np.random.Generator:
        """A numpy Generator from ``random_state`` (a given Generator is used as is)."""
        return np.random.default_rng(self.random_state)

    def int_seed(self) -> int | None:
        """An integer seed for libraries that want one (drawn from a Generator if that is what was given)."""
        if self.random_state is None or isinstance(self.random_state, numbers.Integral):
            return None if self.random_state is None else int(self.random_state)
        return int(self.random_state.integers(0, 2**31 - 1))


@dataclass(frozen=True, eq=False)
class Selection:
    """What a strategy returns: the order and how to express its criterion as a score.

    Attributes
    ----------
    order : ndarray (k,) of int
        Positions into the candidates, best first, without repeats.
    weights : (float, float, float)
        Weights (α, β, γ) that turn U, Div, Q into this strategy's score.
    criterion : ndarray (k,)
        The strategy's own selection criterion for each picked row.
    criterion_name : str
        What ``criterion`` means, shown to the user.
    uncertainty : str
        Which uncertainty the U column reports.
    novelty : ndarray (k,) or None
        Raw cosine distance at pick time when the strategy tracked it (the greedy ones);
        otherwise computed from the order.
    use_region : bool
        Whether Div includes proximity to the region centroid.
    notes : tuple of str
        Caveats worth showing next to the ranking.
    """

    order: np.ndarray
    weights: Weights3
    criterion: np.ndarray
    criterion_name: str
    uncertainty: str
    novelty: np.ndarray | None = None
    use_region: bool = True
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class RankedCandidates:
    """A ranking of candidates with the score breakdown of every row.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per ranked candidate, best first, with columns ``COLUMNS``:
        ``id``, ``rank`` (1..k), ``score``, ``U``, ``Div``, ``Q``, ``alpha_U``, ``beta_Div``,
        ``gamma_Q`` (``score == alpha_U + beta_Div + gamma_Q``), ``criterion`` (the strategy's
        own criterion), ``position`` (row in the input), ``source`` and ``strategy``.
    strategy : str
    weights : (float, float, float)
        The (α, β, γ) the score used (for ``adde`` the user's weights divided by their sum).
    uncertainty : str
        The uncertainty measure in column U.
    criterion : str
        What the ``criterion`` column means for this strategy.
    region_weight : float
        Share of region proximity in Div (0 when there was no region or the strategy ignores it).
    random_state : None, int or numpy Generator
    input_fingerprint : str
        ``RankingInput.fingerprint()`` of the data this was computed from.
    notes : tuple of str
        Caveats worth showing with the ranking.
    """

    frame: pd.DataFrame
    strategy: str
    weights: Weights3
    uncertainty: str
    criterion: str
    region_weight: float
    random_state: RandomState
    input_fingerprint: str
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def ids(self) -> list[str]:
        """Candidate ids, best first."""
        return self.frame["id"].tolist()


StrategyFn = Callable[[RankingContext, int], Selection]


def _stable_top(values: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k largest values, largest first, ties in input order."""
    return np.argsort(-values, kind="stable")[:k]


def _lazy_greedy(ctx: RankingContext, k: int, weights: Weights3, U: np.ndarray | None,
                 use_region: bool) -> tuple[np.ndarray, np.ndarray]:
    """Greedily pick k candidates by ``a·U + b·Div + g·Q`` with Div recomputed against each pick.

    Div only decreases as picks are added, so a stale score is an upper bound and lazy
    evaluation (Minoux 1978) is exact: pop the best bound, refresh it against the picks made
    since it was last computed, and pick it if it is still on top. This gives the same order
    as refreshing every candidate after each pick. For long rankings every candidate must
    eventually meet every earlier pick; doing that one candidate at a time is memory-bound,
    so every ``_GREEDY_BLOCK`` picks all distances are brought up to date in one matrix
    product and the heap is rebuilt (8,000 x 1280 ranked in full on 2 cores: 29 s -> about 1-2 s).

    Returns
    -------
    order : ndarray (k,) of int
    novelty : ndarray (k,) float64, raw cosine distance of each pick at pick time
    """
    a, b, g = weights
    n = ctx.n
    Uv = U if U is not None else np.zeros(n)
    Q = ctx.quality

    def score(d: np.ndarray | float, pos: np.ndarray | int) -> np.ndarray:
        # the same expression, in the same order, as the breakdown built in rank_candidates
        return a * Uv[pos] + b * ctx.div(d, pos, use_region=use_region) + g * Q[pos]

    def fresh_heap(d: np.ndarray, pos: np.ndarray) -> list[tuple[float, int]]:
        heap = list(zip((-score(d[pos], pos)).tolist(), pos.tolist()))
        heapq.heapify(heap)
        return heap

    d = ctx.d_labelled.copy()
    heap = fresh_heap(d, np.arange(n))
    refreshed = np.zeros(n, dtype=np.int64)  # number of picks each d already accounts for
    is_picked = np.zeros(n, dtype=bool)
    picks = np.empty(k, dtype=np.int64)
    picked_vecs = np.empty((k, ctx.Xn.shape[1]), dtype=np.float32)
    novelty = np.empty(k)
    t = 0
    while t < k:
        if t % _GREEDY_BLOCK == 0 and t:
            # bring every unpicked distance up to date with the last block of picks in one product
            rest = np.flatnonzero(~is_picked)
            stale = rest[refreshed[rest] < t]
            if stale.size:
                sims = ctx.Xn[stale] @ picked_vecs[t - _GREEDY_BLOCK:t].T
                nearest = np.clip(1.0 - sims.max(axis=1).astype(np.float64), 0.0, 2.0)
                # rows refreshed inside the block already saw some of these picks; min() is idempotent
                d[stale] = np.minimum(d[stale], nearest)
                refreshed[stale] = t
                heap = fresh_heap(d, rest)
        neg, i = heapq.heappop(heap)
        if refreshed[i] < t:
            sims = picked_vecs[refreshed[i]:t] @ ctx.Xn[i]
            refreshed[i] = t
            nearest = min(max(1.0 - float(sims.max()), 0.0), 2.0)
            if nearest < d[i]:
                d[i] = nearest
                neg = -float(score(d[i], i))
            heapq.heappush(heap, (neg, i))
            continue
        picks[t], novelty[t] = i, d[i]
        picked_vecs[t] = ctx.Xn[i]
        is_picked[i] = True
        t += 1
    return picks, novelty


def rank_adde(ctx: RankingContext, k: int) -> Selection:
    """ADDE: greedy batch by α·U + β·Div + γ·Q, Div updated after each pick so near-duplicates drop.

    After each pick, every remaining candidate's Div is measured against the labelled set
    *and* the picks so far; the score at pick time is what the table shows. Without class
    probabilities U is 0 for every candidate, so the order comes from Div and Q alone.
    """
    w = ctx.weights.normalized()
    U = ctx.U()
    notes = () if U is not None else (
        "No class probabilities were given (no trained head yet): U is 0 for every candidate, "
        "so the order comes from diversity and quality only.",)
    div_moves = w[1] > 0 and not (ctx.proximity is not None and ctx.region_weight >= 1.0)
    Uv = U if U is not None else np.zeros(ctx.n)
    if div_moves:
        order, novelty = _lazy_greedy(ctx, k, w, U, use_region=True)
    else:
        # Div does not affect the score: the greedy reduces to one sort
        pos = np.arange(ctx.n)
        static = w[0] * Uv + w[1] * ctx.div(ctx.d_labelled, pos) + w[2] * ctx.quality
        order, novelty = _stable_top(static, k), None
    nov = novelty if novelty is not None else novelty_in_order(ctx.Xn, order, ctx.d_labelled)
    crit = w[0] * Uv[order] + w[1] * ctx.div(nov, order) + w[2] * ctx.quality[order]
    return Selection(order=order, weights=w, criterion=crit, criterion_name="score at pick time",
                     uncertainty=ctx.uncertainty, novelty=nov, notes=notes)


def _rank_by_uncertainty(ctx: RankingContext, k: int, kind: str) -> Selection:
    U = ctx.U(kind)
    if U is None:
        raise AddeError(
            f"The {kind!r} strategy needs class probabilities (RankingInput.probs) from a trained head: "
            "train the head first, or pick a strategy that needs none (adde, coreset, typiclust, random)."
        )
    order = _stable_top(U, k)
    return Selection(order=order, weights=(1.0, 0.0, 0.0), criterion=U[order],
                     criterion_name=f"{kind} uncertainty U", uncertainty=kind)


def rank_margin(ctx: RankingContext, k: int) -> Selection:
    """Margin sampling: smallest gap between the two most likely classes first (score = U = 1 - (p1 - p2))."""
    return _rank_by_uncertainty(ctx, k, "margin")


def rank_entropy(ctx: RankingContext, k: int) -> Selection:
    """Entropy sampling: highest normalised predictive entropy first (score = U = H / log k)."""
    return _rank_by_uncertainty(ctx, k, "entropy")


def rank_random(ctx: RankingContext, k: int) -> Selection:
    """Random order: a uniform draw per candidate, highest first; score 0 (the draw is in ``criterion``)."""
    draw = ctx.rng().random(ctx.n)
    order = _stable_top(draw, k)
    return Selection(order=order, weights=(0.0, 0.0, 0.0), criterion=draw[order],
                     criterion_name="uniform random draw (order only; not a score)", uncertainty=ctx.uncertainty)


def rank_coreset(ctx: RankingContext, k: int) -> Selection:
    """Core-set (Sener & Savarese 2018): k-center greedy on cosine distance to labelled ∪ picked items.

    The farthest candidate from everything labelled or already picked goes next; score = Div
    at pick time (weights 0, 1, 0), which never increases down the ranking. On unit vectors
    Euclidean distance is a monotone function of cosine distance, so this is k-center greedy
    on the normalised embeddings. The region centroid is ignored (pure k-center). With an
    empty labelled set the first pick is the first candidate (ties go to input order).
    """
    order, novelty = _lazy_greedy(ctx, k, (0.0, 1.0, 0.0), None, use_region=False)
    notes = ("coreset ignores the region centroid: Div here is pure distance to labelled and picked items.",) \
        if ctx.proximity is not None else ()
    return Selection(order=order, weights=(0.0, 1.0, 0.0), criterion=novelty,
                     criterion_name="cosine distance to the nearest labelled or higher-ranked item",
                     uncertainty=ctx.uncertainty, novelty=novelty, use_region=False, notes=notes)


def _typicality(Z: np.ndarray) -> np.ndarray:
    """``1 / (mean distance to the K nearest others + 1e-5)`` with K = min(20, size // 2), as in the authors' code."""
    s = Z.shape[0]
    if s < 2:
        return np.zeros(s)  # no neighbours, no density evidence
    K = max(1, min(TYPICLUST_NEIGHBORS, s // 2))
    sq = np.einsum("ij,ij->i", Z, Z)
    D = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * (Z @ Z.T), 0.0))
    np.fill_diagonal(D, np.inf)
    nearest = np.partition(D, K - 1, axis=1)[:, :K]
    return 1.0 / (nearest.mean(axis=1) + 1e-5)


def rank_typiclust(ctx: RankingContext, k: int) -> Selection:
    """TypiClust (Hacohen et al. 2022): the most typical candidate of each large uncovered cluster.

    Labelled and candidate embeddings (unit rows, PCA to 50 dimensions when larger) are
    clustered by k-means into ``min(|L| + k, 500)`` clusters. Clusters are visited in order of
    fewest labelled members, then largest size (clusters of <= 5 items come after all others);
    each visit takes the not-yet-picked candidate of highest typicality, the inverse mean
    distance to its 20 nearest neighbours among the cluster's candidates. When k exceeds the
    number of clusters the visits go round again. Score is 0 (weights 0, 0, 0): the order
    comes from this selection and the typicality is in ``criterion``. Unlike the authors'
    code, typicality is computed once per cluster rather than again after each pick; the
    two agree while each cluster is visited at most once (k <= number of clusters).
    """
    from sklearn.cluster import KMeans

    n, m = ctx.n, ctx.Ln.shape[0]
    Z = np.vstack([ctx.Ln, ctx.Xn]) if m else ctx.Xn
    if Z.shape[1] > TYPICLUST_PCA_COMPONENTS and Z.shape[0] > TYPICLUST_PCA_COMPONENTS:
        from adde_core.analysis.density import reduce_for_search

        Z = reduce_for_search(Z, TYPICLUST_PCA_COMPONENTS)
    n_clusters = int(min(m + k, TYPICLUST_MAX_CLUSTERS, m + n))
    with warnings.catch_warnings():
        # duplicate points can leave fewer distinct clusters than asked for; that is harmless here
        warnings.simplefilter("ignore")
        labels = KMeans(n_clusters=n_clusters, n_init=1, random_state=ctx.int_seed()).fit_predict(Z)
    lab_labels, cand_labels = labels[:m], labels[m:]
    Zc = Z[m:]
    sizes = np.bincount(labels, minlength=n_clusters)
    covered = np.bincount(lab_labels, minlength=n_clusters)
    typicality = np.zeros(n)
    queues: list[tuple[tuple[int, int, int, int], list[int]]] = []
    for c in np.unique(cand_labels):
        members = np.flatnonzero(cand_labels == c)
        typ = _typicality(Zc[members])
        typicality[members] = typ
        queue = members[np.argsort(-typ, kind="stable")].tolist()
        small = int(sizes[c] <= TYPICLUST_MIN_CLUSTER_SIZE)
        queues.append(((small, int(covered[c]), -int(sizes[c]), int(c)), queue))
    queues.sort(key=lambda item: item[0])
    order: list[int] = []
    for tier in (0, 1):  # large clusters round after round, then the small ones
        active = [queue for key, queue in queues if key[0] == tier]
        depth = 0  # every active queue has been visited `depth` times
        while active and len(order) < k:
            remaining = []
            for queue in active:
                if len(order) == k:
                    break
                order.append(queue[depth])
                if depth + 1 < len(queue):
                    remaining.append(queue)
            active, depth = remaining, depth + 1
    order_arr = np.asarray(order[:k], dtype=np.int64)
    return Selection(order=order_arr, weights=(0.0, 0.0, 0.0), criterion=typicality[order_arr],
                     criterion_name="typicality in its k-means cluster (order only; not a score)",
                     uncertainty=ctx.uncertainty)


STRATEGIES: dict[str, StrategyFn] = {
    "adde": rank_adde,
    "random": rank_random,
    "margin": rank_margin,
    "entropy": rank_entropy,
    "coreset": rank_coreset,
    "typiclust": rank_typiclust,
}


def rank_candidates(
    inputs: RankingInput,
    *,
    strategy: str = "adde",
    k: int | None = None,
    weights: RankingWeights = RankingWeights(),
    random_state: RandomState = 0,
    uncertainty: str = "margin",
    region_weight: float = 0.5,
) -> RankedCandidates:
    """Rank candidates for review and explain each row's score.

    Parameters
    ----------
    inputs : RankingInput
        Candidates, the head's probabilities, quality scores and the labelled set.
    strategy : str, default "adde"
        A key of ``STRATEGIES``: adde, random, margin, entropy, coreset, typiclust.
    k : int or None, default None
        Number of rows to return (``min(k, n)``); None ranks every candidate. Greedy
        strategies stop after k picks, so a small k is cheaper.
    weights : RankingWeights
        α, β, γ for ``adde`` (divided by their sum); the other strategies use fixed weights.
    random_state : None, int or numpy Generator, default 0
        Seed for ``random`` and the k-means of ``typiclust``; the other strategies are
        deterministic.
    uncertainty : {"margin", "entropy"}, default "margin"
        The U used by ``adde`` and reported by the strategies that do not fix their own.
    region_weight : float in [0, 1], default 0.5
        Share of proximity to ``inputs.region_centroid`` in Div (unused without a centroid).

    Returns
    -------
    RankedCandidates
        ``frame`` holds one row per ranked candidate with the score breakdown.

    Raises
    ------
    AddeError
        Unknown strategy or uncertainty, a bad k or region_weight, or a strategy that needs
        class probabilities when ``inputs.probs`` is None.
    """
    import pandas as pd

    if strategy not in STRATEGIES:
        raise AddeError(f"Unknown ranking strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}.")
    if uncertainty not in UNCERTAINTIES:
        raise AddeError(f"Unknown uncertainty {uncertainty!r}: choose one of {', '.join(UNCERTAINTIES)}.")
    if not isinstance(inputs, RankingInput):
        raise AddeError(f"rank_candidates needs a RankingInput, got {type(inputs).__name__}.")
    if not isinstance(weights, RankingWeights):
        raise AddeError(f"weights must be a RankingWeights, got {type(weights).__name__}.")
    if isinstance(region_weight, bool) or not isinstance(region_weight, numbers.Real) or not 0 <= region_weight <= 1:
        raise AddeError(f"region_weight must be a number in [0, 1], got {region_weight!r}.")
    if k is not None and (isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1):
        raise AddeError(f"k must be a positive integer (how many candidates to rank) or None for all, got {k!r}.")
    if random_state is not None and not isinstance(random_state, (numbers.Integral, np.random.Generator)):
        raise AddeError(f"random_state must be None, an int or a numpy Generator, got {random_state!r}.")

    ctx = RankingContext.build(inputs, weights=weights, uncertainty=uncertainty, region_weight=region_weight,
                               random_state=random_state)
    k_eff = inputs.n if k is None else min(int(k), inputs.n)
    if k_eff == 0:
        sel = Selection(order=np.zeros(0, dtype=np.int64), weights=(0.0, 0.0, 0.0), criterion=np.zeros(0),
                        criterion_name="", uncertainty=uncertainty, novelty=np.zeros(0))
        if strategy in ("margin", "entropy") and inputs.probs is None:
            STRATEGIES[strategy](ctx, 0)  # raises the same error as with candidates
    else:
        sel = STRATEGIES[strategy](ctx, k_eff)
    order = np.asarray(sel.order, dtype=np.int64)
    if order.shape != (k_eff,) or len(np.unique(order)) != k_eff:
        raise AssertionError(f"strategy {strategy!r} returned {order.shape} positions with repeats or wrong length")

    U_all = ctx.U(sel.uncertainty)
    U = U_all[order] if U_all is not None else np.zeros(k_eff)
    novelty = sel.novelty if sel.novelty is not None else novelty_in_order(ctx.Xn, order, ctx.d_labelled)
    Div = ctx.div(novelty, order, use_region=sel.use_region)
    Q = ctx.quality[order]
    a, b, g = sel.weights
    alpha_U, beta_Div, gamma_Q = a * U, b * Div, g * Q
    score = alpha_U + beta_Div + gamma_Q
    sources = inputs.sources
    frame = pd.DataFrame({
        "id": [inputs.ids[i] for i in order],
        "rank": np.arange(1, k_eff + 1),
        "score": score,
        "U": U,
        "Div": Div,
        "Q": Q,
        "alpha_U": alpha_U,
        "beta_Div": beta_Div,
        "gamma_Q": gamma_Q,
        "criterion": np.asarray(sel.criterion, dtype=np.float64),
        "position": order,
        "source": [sources[i] for i in order] if sources is not None else [None] * k_eff,
        "strategy": strategy,
    }, columns=list(COLUMNS))
    used_region = sel.use_region and ctx.proximity is not None
    return RankedCandidates(
        frame=frame,
        strategy=strategy,
        weights=(float(a), float(b), float(g)),
        uncertainty=sel.uncertainty,
        criterion=sel.criterion_name,
        region_weight=float(region_weight) if used_region else 0.0,
        random_state=random_state,
        input_fingerprint=inputs.fingerprint(),
        notes=sel.notes,
    )
