"""Candidate ranking for human review: the ADDE score α·U + β·Div + γ·Q and the baseline strategies.

Every strategy returns the same table, whose breakdown always sums to the score
(``alpha_U + beta_Div + gamma_Q == score``); a strategy whose criterion is not a weighted sum of
U, Div and Q reports weights 0 (score 0) and puts its own criterion in the ``criterion`` column.

========== ======================================= ============================== ===========================
name       order                                   score (weights α, β, γ)        criterion column
========== ======================================= ============================== ===========================
adde       greedy: best score, then Div updated    α·U + β·Div + γ·Q (the given   the score at pick time
           against the pick                        weights divided by their sum)
margin     margin uncertainty, highest first       U (1, 0, 0), U = margin        U
entropy    entropy uncertainty, highest first      U (1, 0, 0), U = entropy       U
coreset    k-center greedy (Sener & Savarese)      Div (0, 1, 0), no region term  raw cosine distance at pick
typiclust  TypiClust (Hacohen et al. 2022)         0 (0, 0, 0)                    typicality in its cluster
probcover  ProbCover (Yehuda et al. 2022): greedy  0 (0, 0, 0)                    points newly covered by its
           max coverage of δ-balls                                                δ-ball
maxherding MaxHerding (Bae et al. 2024): greedy    0 (0, 0, 0)                    kernel coverage gain
           Gaussian-kernel coverage
uherding   UHerding (Bae et al. 2025): kernel      0 (0, 0, 0)                    uncertainty-weighted
           coverage of the uncertain points                                       coverage gain
badge      BADGE (Ash et al. 2020): k-means++ on   0 (0, 0, 0)                    squared distance to the
           the head's gradient embeddings                                         nearest earlier pick
random     uniform random permutation              0 (0, 0, 0)                    the uniform draw
========== ======================================= ============================== ===========================

ProbCover and the herding strategies measure coverage over the candidates and the labelled
set together and count what the labelled set already covers, so with the whole pool as the
candidates they are the pool-based methods of their papers.

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
from adde_core.ranking.coverage import (
    PROBCOVER_PURITY,
    ball_graph,
    gram_if_fits,
    herding_order,
    herding_sigma,
    probcover_delta,
    probcover_order,
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
    "rank_badge",
    "rank_candidates",
    "rank_coreset",
    "rank_entropy",
    "rank_margin",
    "rank_maxherding",
    "rank_probcover",
    "rank_random",
    "rank_typiclust",
    "rank_uherding",
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
# BADGE rankings longer than this read feature products from one Gram matrix (see rank_badge).
_BADGE_GRAM_AFTER = 64
# ProbCover's ball radius (Euclidean between unit rows, i.e. cosine distance δ²/2). None picks it
# by cluster purity (see adde_core.ranking.coverage.probcover_delta); a number fixes it for every call.
PROBCOVER_DELTA: float | None = None
# Gaussian kernel radius of maxherding/uherding. None adapts it as UHerding does (see
# adde_core.ranking.coverage.herding_sigma); a number fixes it.
HERDING_SIGMA: float | None = None


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
            "train the head first, or pick a strategy that needs none (adde, coreset, typiclust, probcover, "
            "maxherding, random)."
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


def _n_classes(inputs: RankingInput) -> int:
    """Classes seen in the labelled labels, else the head's classes (columns of probs), else 2."""
    if inputs.labelled_labels is not None and len(set(inputs.labelled_labels)) >= 2:
        return len(set(inputs.labelled_labels))
    if inputs.probs is not None:
        return int(inputs.probs.shape[1])
    return 2


def rank_probcover(ctx: RankingContext, k: int, *, delta: float | None = None) -> Selection:
    """ProbCover (Yehuda et al. 2022): greedy max coverage of δ-balls over the candidates and the labelled set.

    Every point (candidate or labelled, unit-normalised) owns a ball of Euclidean radius δ,
    i.e. cosine distance δ²/2. Points inside a labelled item's ball start covered; each pick
    is the candidate whose ball holds the most uncovered points, and those become covered.
    δ is ``delta``, else ``PROBCOVER_DELTA``, else the paper's rule: k-means with as many
    clusters as classes (``labelled_labels`` when given, else the columns of ``probs``,
    else 2), and the largest δ of ``coverage.PROBCOVER_DELTAS`` for which 95% of the balls
    are pure (hold only their centre's cluster). Once everything is covered the rest follow
    in random order. Score is 0 (weights 0, 0, 0); the new coverage is in ``criterion``.
    Exact against scikit-activeml's ``ProbCover`` (same δ, same picks up to ties, which go to
    input order here), but with a sparse ball graph and incremental gains instead of a dense
    N x N boolean matrix recounted after every pick.
    """
    m = ctx.Ln.shape[0]
    Z = np.vstack([ctx.Ln, ctx.Xn]) if m else ctx.Xn
    G = gram_if_fits(Z)
    delta = PROBCOVER_DELTA if delta is None else delta
    notes: list[str] = []
    if delta is None:
        n_classes = _n_classes(ctx.inputs)
        delta, purity, reached = probcover_delta(Z, n_classes, random_state=ctx.int_seed(), G=G)
        if not reached:
            notes.append(f"ProbCover: no δ in the grid keeps {PROBCOVER_PURITY:.0%} of the δ-balls pure over "
                         f"{n_classes} k-means clusters (best {purity:.1%}); using the smallest, δ = {delta:g}.")
    graph = ball_graph(Z, float(delta), G)
    del G
    order, gains = probcover_order(graph, m, k, ctx.rng())
    n_covering = int(np.count_nonzero(gains))
    if n_covering < k:
        notes.append(f"ProbCover: the δ-balls of the first {n_covering} picks cover every point; the other "
                     f"{k - n_covering} follow in random order (a smaller δ would rank them).")
    return Selection(order=order, weights=(0.0, 0.0, 0.0), criterion=gains.astype(np.float64),
                     criterion_name=f"points newly covered by its δ-ball (δ = {delta:g}, cosine distance "
                                    f"{delta * delta / 2:.3g}; order only, not a score)",
                     uncertainty=ctx.uncertainty, notes=tuple(notes))


def _herding(ctx: RankingContext, k: int, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    sigma = HERDING_SIGMA if HERDING_SIGMA is not None else herding_sigma(ctx.Xn, ctx.Ln, ctx.rng())
    if ctx.inputs.importance is not None:  # ADDE's failure targeting: cover where the model errs
        weights = weights * ctx.inputs.importance
    order, gains = herding_order(ctx.Xn, ctx.Ln, weights, sigma, k, d_labelled=ctx.d_labelled)
    return order, gains, sigma


def rank_maxherding(ctx: RankingContext, k: int) -> Selection:
    """MaxHerding (Bae et al. 2024): greedy maximisation of Gaussian-kernel coverage of the candidates.

    Each pick is the candidate that most raises ``mean_j max_{s in L ∪ picks} K(j, s)`` over
    the candidates j, with ``K(a, b) = exp(-||a - b||² / σ²)`` on unit rows; σ is
    ``HERDING_SIGMA`` or UHerding's adaptive radius (the smallest distance between labelled
    items, or the median distance between candidates with fewer than two), so that
    ``uherding`` with equal uncertainties gives the same order. Exact against
    scikit-activeml's ``MaxHerding`` given the same σ; lazy greedy on one kernel matrix
    instead of a full recomputation per pick keeps 10k candidates to seconds. Score is 0
    (weights 0, 0, 0); the gain at pick time is in ``criterion``.
    """
    order, gains, sigma = _herding(ctx, k, np.ones(ctx.n))
    return Selection(order=order, weights=(0.0, 0.0, 0.0), criterion=gains,
                     criterion_name=f"gain in mean kernel coverage of the candidates (σ = {sigma:.3g}; order only)",
                     uncertainty=ctx.uncertainty)


def rank_uherding(ctx: RankingContext, k: int) -> Selection:
    """UHerding (Bae et al. 2025): greedy coverage of the *uncertain* candidates by a Gaussian kernel.

    As ``maxherding``, but each candidate j counts with weight U_j (the context's
    uncertainty, margin by default), so picks go where uncertain points are not yet
    covered: spread out at small budgets, close to uncertainty sampling once σ (the
    smallest labelled distance) is small. Follows scikit-activeml's ``UHerding``
    (unreleased at 1.0.1) with two differences: the head's probabilities are used as given
    (the paper calibrates a softmax temperature on a split of the labelled set, which needs
    labels and refits this interface does not have), and without probabilities, or when
    every U is 0, the weights are 1 (MaxHerding), the fallback scikit-activeml uses when
    the uncertainty carries no information. With ``inputs.importance`` each candidate's
    weight is ``U_j × importance_j`` (ADDE's failure-targeted coverage). Score is 0 (weights 0, 0, 0).
    """
    U = ctx.U()
    notes: tuple[str, ...] = ()
    if ctx.inputs.importance is not None:
        notes = ("uherding: candidates weighted by the given importance (ADDE: local val error) as well.",)
    if U is None or not np.isfinite(U).all() or np.allclose(U, 0.0):
        U = np.ones(ctx.n)
        notes += ("uherding: no informative class probabilities, so every candidate counts equally "
                  "(this is maxherding).",)
    order, gains, sigma = _herding(ctx, k, U)
    return Selection(order=order, weights=(0.0, 0.0, 0.0), criterion=gains,
                     criterion_name=f"gain in uncertainty-weighted kernel coverage (σ = {sigma:.3g}; order only)",
                     uncertainty=ctx.uncertainty, notes=notes)


def _head_features(ctx: RankingContext) -> np.ndarray:
    """Candidate features as the linear head sees them: standardised by the labelled set, plus 1 for the bias."""
    X = ctx.inputs.vectors.astype(np.float64)
    L = ctx.inputs.labelled_vectors
    if L.shape[0] >= 2:
        # LinearHead standardises with its training set's mean and std (+1e-6); that set is D_t
        X = (X - L.mean(axis=0, dtype=np.float64)) / (L.std(axis=0, dtype=np.float64) + 1e-6)
    return np.hstack([X, np.ones((X.shape[0], 1))]).astype(np.float32)


def rank_badge(ctx: RankingContext, k: int) -> Selection:
    """BADGE (Ash et al. 2020): k-means++ seeding on the linear head's gradient embeddings.

    The gradient of the cross-entropy at the predicted class with respect to the head's
    weights is ``g_i = (p_i - onehot(argmax p_i)) ⊗ x_i``, with ``x_i`` the candidate's
    features standardised by the labelled set (as ``LinearHead`` does) plus a 1 for the
    bias. Its norm grows with uncertainty and its direction encodes the features, so
    k-means++ on it picks items that are uncertain *and* different. The first pick has the
    largest norm; each next one is drawn with probability proportional to its squared
    distance to the nearest pick (scikit-activeml's ``Badge`` loop; uniform among the
    unpicked once every distance is 0). ``<g_i, g_j> = <a_i, a_j> <x_i, x_j>`` for the
    factors a and x, so the n x (classes · dims) embedding is never built. Labelled items
    are not used, as in the paper. Score is 0 (weights 0, 0, 0); the squared distance at
    pick time is in ``criterion``.
    """
    P = ctx.inputs.probs
    if P is None:
        raise AddeError("The 'badge' strategy needs class probabilities (RankingInput.probs) from a trained head: "
                        "train the head first, or pick a strategy that needs none (adde, coreset, typiclust, "
                        "probcover, maxherding, random).")
    n = ctx.n
    A = P.copy()
    A[np.arange(n), np.argmax(P, axis=1)] -= 1.0
    Xt = _head_features(ctx)
    # each pick needs one row of Xt @ Xt.T: for long rankings one matrix product beats k
    # memory-bound matrix-vector products (8,000 x 1280 ranked in full: minutes -> seconds)
    G = gram_if_fits(Xt) if k > _BADGE_GRAM_AFTER else None
    sq_norm = np.einsum("ij,ij->i", A, A) * (np.diag(G) if G is not None else np.einsum("ij,ij->i", Xt, Xt))
    rng = ctx.rng()
    d2 = np.full(n, np.inf)
    picked = np.zeros(n, dtype=bool)
    order = np.empty(k, dtype=np.int64)
    crit = np.empty(k)
    for t in range(k):
        if t == 0:
            i = int(np.argmax(sq_norm))
            crit[t] = sq_norm[i]
        else:
            total = float(d2.sum())
            if total > 0:
                i = int(rng.choice(n, p=d2 / total))
            else:  # every candidate duplicates a pick in gradient space: nothing left to prefer
                i = int(rng.choice(np.flatnonzero(~picked)))
            crit[t] = d2[i]
        order[t] = i
        picked[i] = True
        dist = sq_norm + sq_norm[i] - 2.0 * (A @ A[i]) * (G[i] if G is not None else Xt @ Xt[i])
        d2 = np.minimum(d2, np.maximum(dist, 0.0))
        d2[picked] = 0.0  # rounding must not give a pick a second chance
    return Selection(order=order, weights=(0.0, 0.0, 0.0), criterion=crit,
                     criterion_name="squared gradient-embedding distance to the nearest earlier pick "
                                    "(the first: squared norm; order only)",
                     uncertainty=ctx.uncertainty)


STRATEGIES: dict[str, StrategyFn] = {
    "adde": rank_adde,
    "random": rank_random,
    "margin": rank_margin,
    "entropy": rank_entropy,
    "coreset": rank_coreset,
    "typiclust": rank_typiclust,
    "probcover": rank_probcover,
    "maxherding": rank_maxherding,
    "uherding": rank_uherding,
    "badge": rank_badge,
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
        A key of ``STRATEGIES``: adde, random, margin, entropy, coreset, typiclust,
        probcover, maxherding, uherding, badge.
    k : int or None, default None
        Number of rows to return (``min(k, n)``); None ranks every candidate. Greedy
        strategies stop after k picks, so a small k is cheaper.
    weights : RankingWeights
        α, β, γ for ``adde`` (divided by their sum); the other strategies use fixed weights.
    random_state : None, int or numpy Generator, default 0
        Seed for ``random``, the k-means of ``typiclust`` and ``probcover``, the order of
        ``probcover``'s picks after full coverage, the k-means++ draws of ``badge`` and the
        candidate sample behind the herding kernel radius (above 2,000 candidates); the
        other strategies are deterministic.
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
        if strategy in ("margin", "entropy", "badge") and inputs.probs is None:
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
