"""ProbCover, MaxHerding and UHerding: hand-made known answers, brute-force checks and scikit-activeml as reference."""

from __future__ import annotations

import numpy as np
import pytest

import adde_core.ranking.coverage as coverage_mod
import adde_core.ranking.strategies as strategies_mod
from adde_core.errors import AddeError
from adde_core.ranking import RankingInput, margin_uncertainty, rank_candidates
from adde_core.ranking.coverage import (
    PROBCOVER_DELTAS,
    ball_graph,
    herding_order,
    herding_sigma,
    probcover_delta,
    purity_radius,
)

skal = pytest.importorskip("skactiveml.pool")
from skactiveml.utils import MISSING_LABEL  # noqa: E402


def unit(A: np.ndarray) -> np.ndarray:
    """Unit rows computed as the strategies do (float32), returned as float64 for the references."""
    A = np.asarray(A, dtype=np.float32)
    return (A / np.linalg.norm(A, axis=1, keepdims=True)).astype(np.float64)


def blob_data(n: int = 150, m: int = 20, d: int = 12, *, seed: int = 0, n_centres: int = 4, spread: float = 1.0,
              scale: float = 3.0) -> tuple[RankingInput, np.ndarray, np.ndarray]:
    """Candidates and labelled items around a few random centres; labels are the labelled items' centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_centres, d)) * scale
    cx, cl = rng.integers(0, n_centres, n), rng.integers(0, n_centres, m)
    X = centres[cx] + spread * rng.standard_normal((n, d))
    L = centres[cl] + spread * rng.standard_normal((m, d))
    inp = RankingInput(ids=[f"x{i}" for i in range(n)], vectors=X, labelled_vectors=L,
                       probs=rng.dirichlet(np.full(3, 0.7), n), labelled_labels=[f"c{c}" for c in cl])
    return inp, X, L


def pool_arrays(inp: RankingInput) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """scikit-activeml's view: X = labelled rows then candidates, y with the labels, candidate indices."""
    m = inp.labelled_vectors.shape[0]
    X = np.vstack([unit(inp.labelled_vectors), unit(inp.vectors)]) if m else unit(inp.vectors)
    y = np.full(len(X), MISSING_LABEL)
    if m:
        y[:m] = np.unique(inp.labelled_labels, return_inverse=True)[1]
    return X, y, np.arange(m, len(X))


# ---------------------------------------------------------------- ProbCover


def three_groups() -> tuple[RankingInput, np.ndarray]:
    """Tight groups of 6, 4 and 2 candidates on three axes; one labelled item sits in the group of 6."""
    rng = np.random.default_rng(3)
    groups = np.repeat([0, 1, 2], [6, 4, 2])
    perm = rng.permutation(len(groups))
    groups = groups[perm]
    X = np.eye(3)[groups] + 0.01 * rng.standard_normal((len(groups), 3))
    return RankingInput(ids=[f"g{i}" for i in range(len(X))], vectors=X, labelled_vectors=[[1.0, 0.0, 0.01]]), groups


def test_probcover_covers_the_uncovered_groups_largest_first(monkeypatch):
    monkeypatch.setattr(strategies_mod, "PROBCOVER_DELTA", 0.3)  # a ball holds its group and nothing else
    inp, groups = three_groups()
    res = rank_candidates(inp, strategy="probcover", random_state=0)
    picks = res.frame["position"].to_numpy()
    # the labelled item already covers group 0; then the group of 4, then the group of 2
    assert groups[picks[:2]].tolist() == [1, 2]
    assert res.frame["criterion"].tolist()[:2] == [4.0, 2.0]
    assert (res.frame["criterion"].iloc[2:] == 0).all()
    # within a group every ball covers the same points: the tie goes to the earliest candidate
    assert picks[0] == np.flatnonzero(groups == 1)[0] and picks[1] == np.flatnonzero(groups == 2)[0]
    assert "δ = 0.3" in res.criterion and any("cover every point" in note for note in res.notes)
    assert (res.frame["score"] == 0).all() and res.weights == (0.0, 0.0, 0.0)


def test_probcover_tail_after_full_coverage_follows_random_state(monkeypatch):
    monkeypatch.setattr(strategies_mod, "PROBCOVER_DELTA", 0.3)
    inp, _ = three_groups()
    a, b, a2 = (rank_candidates(inp, strategy="probcover", random_state=s).ids for s in (0, 1, 0))
    assert a[:2] == b[:2] and a == a2 and a != b


def test_purity_radius_and_ball_graph_match_brute_force(monkeypatch):
    rng = np.random.default_rng(1)
    Z = unit(rng.standard_normal((70, 5))).astype(np.float32)
    clusters = rng.integers(0, 3, 70)
    D = np.linalg.norm(Z[:, None, :].astype(np.float64) - Z[None, :, :], axis=2)
    expected = np.where(clusters[:, None] != clusters[None, :], D, np.inf).min(axis=1)
    dense = purity_radius(Z, clusters, Z @ Z.T)
    # also the path without the all-pairs matrix, in blocks of a few rows
    monkeypatch.setattr(coverage_mod, "_BLOCK_ELEMENTS", 3 * 70)
    blocked = purity_radius(Z, clusters, None)
    assert np.allclose(dense, expected, atol=1e-5) and np.allclose(blocked, expected, atol=1e-5)
    for delta in (0.4, 0.9):
        edges = ball_graph(Z, delta, None).toarray().astype(bool)
        assert (edges == (D <= delta)).all()
        assert (ball_graph(Z, delta, Z @ Z.T).toarray().astype(bool) == edges).all()


def test_probcover_delta_matches_scikit_activeml():
    inp, _, _ = blob_data(seed=4)
    X, y, cand = pool_arrays(inp)
    ref = skal.ProbCover(deltas=PROBCOVER_DELTAS, random_state=0, cluster_algo_dict={"n_init": 1})
    ref.query(X, y, candidates=cand, batch_size=1)
    delta, purity, reached = probcover_delta(X.astype(np.float32), 4, random_state=0)
    assert reached and purity >= 0.95
    # the data must make the choice non-trivial: neither end of the grid
    assert PROBCOVER_DELTAS[0] < ref.delta_max_ < PROBCOVER_DELTAS[-1]
    assert delta == pytest.approx(ref.delta_max_)
    # the strategy counts the classes in labelled_labels (4 centres) and reports the δ it used
    res = rank_candidates(inp, strategy="probcover", k=5, random_state=0)
    assert f"δ = {ref.delta_max_:g}," in res.criterion


def test_probcover_delta_uses_the_number_of_labelled_classes(monkeypatch):
    seen = []

    def spy(Z, n_clusters, **kwargs):
        seen.append(n_clusters)
        return probcover_delta(Z, n_clusters, **kwargs)

    monkeypatch.setattr(strategies_mod, "probcover_delta", spy)
    inp, X, L = blob_data(m=9, seed=2)
    rank_candidates(inp, strategy="probcover", k=3)
    labels = RankingInput(ids=inp.ids, vectors=X, labelled_vectors=L, probs=inp.probs)  # no labels: probs' 3 columns
    rank_candidates(labels, strategy="probcover", k=3)
    rank_candidates(RankingInput(ids=inp.ids, vectors=X), strategy="probcover", k=3)  # nothing: 2
    assert seen == [len(set(inp.labelled_labels)), 3, 2]


@pytest.mark.parametrize("seed", [0, 5])
def test_probcover_picks_are_a_greedy_path_of_scikit_activeml(monkeypatch, seed):
    """Each pick has the largest gain under scikit-activeml given the same labelled set and δ.

    Gains are integers, so ties are common and scikit-activeml breaks them at random; the
    invariant that survives ties is that every pick is one of the reference's argmax picks,
    with the same gain, when the reference is given our earlier picks as labelled.
    """
    # the purity rule picks balls so large on this data that one pick covers everything (δ = 0.4: 12 useful picks)
    delta = 0.4
    monkeypatch.setattr(strategies_mod, "PROBCOVER_DELTA", delta)
    inp, _, _ = blob_data(n=120, m=6, seed=seed)
    X, y, _ = pool_arrays(inp)
    m, k = 6, 12
    res = rank_candidates(inp, strategy="probcover", k=k, random_state=0)
    ours, gains = res.frame["position"].to_numpy() + m, res.frame["criterion"].to_numpy()
    assert gains[0] > 1 and (gains > 0).all(), "the test needs k picks that still cover something"
    unique_steps = 0
    for t in range(k):
        y_t = y.copy()
        y_t[ours[:t]] = 0  # any label: scikit-activeml only asks whether a point is labelled
        cand = np.setdiff1d(np.arange(m, len(X)), ours[:t])
        _, util = skal.ProbCover(deltas=[delta]).query(X, y_t, candidates=cand, batch_size=1, return_utilities=True)
        best = np.nanmax(util[0])
        assert util[0][ours[t]] == best == gains[t], t
        unique_steps += int((util[0] == best).sum() == 1)
    assert unique_steps >= 2  # some steps have a single argmax, which we must then match exactly


def test_probcover_without_labelled_items_uses_candidates_only():
    inp, X, _ = blob_data(seed=1)
    bare = RankingInput(ids=inp.ids, vectors=X, probs=inp.probs)
    res = rank_candidates(bare, strategy="probcover", k=8, random_state=0)
    delta = float(res.criterion.split("δ = ")[1].split(",")[0])
    Xu, y, _ = pool_arrays(bare)
    y_all = np.full(len(Xu), MISSING_LABEL)
    _, util = skal.ProbCover(deltas=[delta]).query(Xu, y_all, batch_size=1, return_utilities=True)
    assert util[0][res.frame["position"].iloc[0]] == np.nanmax(util[0]) == res.frame["criterion"].iloc[0]


# ---------------------------------------------------------------- MaxHerding / UHerding


def upstream_sigma(X_cand: np.ndarray, X_lab: np.ndarray) -> float:
    """scikit-activeml's UHerding radius rule (``_resolve_metric_dict``), written out with sklearn's distances."""
    from sklearn.metrics import pairwise_distances

    def nonzero(A):
        d = pairwise_distances(A)[np.triu_indices(len(A), 1)]
        return d[d > 0]

    return float(np.min(nonzero(X_lab)) if len(X_lab) >= 2 else np.median(nonzero(X_cand)))


def uherding_utilities(X_cand: np.ndarray, X_lab: np.ndarray, u: np.ndarray, sigma: float) -> np.ndarray:
    """One step of scikit-activeml's UHerding (main branch; not in release 1.0.1), in float64."""
    from sklearn.metrics.pairwise import rbf_kernel

    gamma = 1.0 / sigma**2
    K = rbf_kernel(X_cand, gamma=gamma)
    k_max = rbf_kernel(X_cand, X_lab, gamma=gamma).max(axis=1) if len(X_lab) else np.zeros(len(X_cand))
    return np.mean(u[:, None] * np.maximum(K - k_max[:, None], 0.0), axis=0)


def check_greedy_path(ours: np.ndarray, gains: np.ndarray, utilities_after, n: int, tol: float = 1e-4) -> int:
    """Assert that each pick is a reference argmax given the earlier picks; return the steps with a clear argmax.

    ``utilities_after(picks)`` gives the reference's utilities with ``picks`` labelled (NaN
    where not a candidate). Herding gains tie exactly, e.g. for two isolated mutual nearest
    neighbours, and the reference breaks ties at random, so a pick only has to reach the
    maximum within ``tol`` (relative; float32 kernels with a small σ carry ~1e-5); where the
    maximum is clear by more, the picks must be the same point. The reference averages over
    the candidates left, ours over all ``n``.
    """
    clear = 0
    for t in range(len(ours)):
        util = utilities_after(ours[:t])
        best = np.nanmax(util)
        assert util[ours[t]] >= best * (1 - tol), t
        others = util.copy()
        others[np.nanargmax(util)] = np.nan
        if np.nanmax(others) < best * (1 - tol):
            clear += 1
            assert ours[t] == np.nanargmax(util), t
        assert gains[t] * n / (n - t) == pytest.approx(util[ours[t]], rel=tol), t
    return clear


def skactiveml_maxherding_after(X: np.ndarray, y: np.ndarray, m: int, sigma: float):
    def utilities(picks: np.ndarray) -> np.ndarray:
        y_t = y.copy()
        y_t[picks] = 0  # any label: only whether a point is labelled matters
        cand = np.setdiff1d(np.arange(m, len(X)), picks)
        ref = skal.MaxHerding(metric="rbf", metric_dict={"gamma": 1.0 / sigma**2})
        return ref.query(X, y_t, candidates=cand, batch_size=1, return_utilities=True)[1][0]
    return utilities


@pytest.mark.parametrize("m", [0, 1, 12])
def test_herding_sigma_is_the_upstream_rule(m):
    inp, _, _ = blob_data(n=120, m=m, d=8, seed=7, n_centres=5)
    X, _, cand = pool_arrays(inp)
    # with one labelled item there are no labelled pairs, so the candidates' median is used
    expected = upstream_sigma(X[cand], X[:m] if m != 1 else X[:0])
    got = herding_sigma(X[cand].astype(np.float32), X[:m].astype(np.float32), np.random.default_rng(0))
    assert got == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(("m", "dense", "seed"), [(0, True, 7), (12, True, 7), (12, False, 3), (0, False, 1)])
def test_maxherding_is_a_greedy_path_of_scikit_activeml(monkeypatch, m, dense, seed):
    if not dense:  # rows of the kernel computed on demand instead of one n x n matrix
        monkeypatch.setattr(coverage_mod, "DENSE_BYTES", 0)
    n, k = 120, 25
    inp, _, _ = blob_data(n=n, m=m, d=8, seed=seed, n_centres=5)
    X, y, _ = pool_arrays(inp)
    sigma = upstream_sigma(X[m:], X[:m])  # the adaptive radius: 0.19 with 12 labelled, ~1 without
    res = rank_candidates(inp, strategy="maxherding", k=k)
    ours, gains = res.frame["position"].to_numpy() + m, res.frame["criterion"].to_numpy()
    assert f"σ = {sigma:.3g}" in res.criterion
    assert check_greedy_path(ours, gains, skactiveml_maxherding_after(X, y, m, sigma), n) >= k // 2
    assert (np.diff(gains) <= 1e-7).all(), "gains of a submodular greedy never rise"


def test_maxherding_batch_equals_scikit_activeml_where_nothing_ties(monkeypatch):
    # σ = 0.3 on this draw leaves every step's best gain clear of the next by > 1e-5 (checked by the reference)
    monkeypatch.setattr(strategies_mod, "HERDING_SIGMA", 0.3)
    inp, _, _ = blob_data(n=120, m=0, d=8, seed=7, n_centres=5)
    X, y, _ = pool_arrays(inp)
    ref = skal.MaxHerding(metric="rbf", metric_dict={"gamma": 1.0 / 0.3**2}, random_state=0)
    expected, util = ref.query(X, y, batch_size=25, return_utilities=True)
    top2 = -np.sort(-np.nan_to_num(util, nan=-1.0), axis=1)[:, :2]
    assert ((top2[:, 0] - top2[:, 1]) / top2[:, 0] > 1e-5).all()
    assert rank_candidates(inp, strategy="maxherding", k=25).frame["position"].tolist() == expected.tolist()


@pytest.mark.parametrize("m", [0, 12])
def test_uherding_is_a_greedy_path_of_the_scikit_activeml_objective(m):
    n, k = 120, 25
    inp, _, _ = blob_data(n=n, m=m, d=8, seed=11, n_centres=5)
    X, _, _ = pool_arrays(inp)
    sigma = upstream_sigma(X[m:], X[:m])
    u = margin_uncertainty(inp.probs)
    res = rank_candidates(inp, strategy="uherding", k=k)
    ours, gains = res.frame["position"].to_numpy(), res.frame["criterion"].to_numpy()

    def utilities(picks: np.ndarray) -> np.ndarray:
        left = np.setdiff1d(np.arange(n), picks)
        out = np.full(n, np.nan)
        out[left] = uherding_utilities(X[m:][left], np.vstack([X[:m], X[m:][picks]]), u[left], sigma)
        return out

    assert check_greedy_path(ours, gains, utilities, n) >= k // 2
    # the uncertainty weights matter on this data: the order differs from MaxHerding
    assert res.ids != rank_candidates(inp, strategy="maxherding", k=k).ids


def test_uherding_with_uninformative_uncertainty_is_maxherding():
    inp, X, L = blob_data(n=80, m=10, seed=3)
    uniform = RankingInput(ids=inp.ids, vectors=X, labelled_vectors=L, probs=np.full((80, 3), 1 / 3))
    no_probs = RankingInput(ids=inp.ids, vectors=X, labelled_vectors=L)
    reference = rank_candidates(no_probs, strategy="maxherding", k=20).ids
    assert rank_candidates(uniform, strategy="uherding", k=20).ids == reference  # U = 1 for every candidate
    res = rank_candidates(no_probs, strategy="uherding", k=20)
    assert res.ids == reference and any("maxherding" in note for note in res.notes)


def test_herding_sigma_override_and_the_long_tail(monkeypatch):
    monkeypatch.setattr(strategies_mod, "HERDING_SIGMA", 0.5)
    n = 60
    inp, X, L = blob_data(n=n, m=5, d=6, seed=8)
    res = rank_candidates(inp, strategy="uherding", k=n)
    assert "σ = 0.5" in res.criterion
    # ranking every candidate visits the long tail, where lazy evaluation skips the most work
    Xu, Lu, u = unit(X), unit(L), margin_uncertainty(inp.probs)

    def utilities(picks: np.ndarray) -> np.ndarray:
        left = np.setdiff1d(np.arange(n), picks)
        out = np.full(n, np.nan)
        out[left] = uherding_utilities(Xu[left], np.vstack([Lu, Xu[picks]]), u[left], 0.5)
        return out

    ours, gains = res.frame["position"].to_numpy(), res.frame["criterion"].to_numpy()
    assert check_greedy_path(ours[:-1], gains[:-1], utilities, n) >= n // 2


def test_herding_order_gain_is_the_objective_increase():
    rng = np.random.default_rng(0)
    Xn = unit(rng.standard_normal((40, 4))).astype(np.float32)
    w = rng.uniform(0, 1, 40)
    order, gains = herding_order(Xn, Xn[:0], w, 0.7, 5)
    K = np.exp(-np.linalg.norm(Xn[:, None].astype(np.float64) - Xn[None], axis=2) ** 2 / 0.49)
    value = [0.0] + [float(np.mean(w * K[:, order[:t]].max(axis=1))) for t in range(1, 6)]
    assert np.allclose(gains, np.diff(value), atol=1e-6)


# ---------------------------------------------------------------- the new RankingInput field


def test_labelled_labels_are_checked_and_fingerprinted():
    base = {"ids": ["a", "b"], "vectors": np.eye(2), "labelled_vectors": np.eye(2)}
    with pytest.raises(AddeError, match="labelled_labels has 1 entries but there are 2 labelled_vectors"):
        RankingInput(**base, labelled_labels=["cat"])
    plain, labelled = RankingInput(**base), RankingInput(**base, labelled_labels=[0, 1])
    assert labelled.labelled_labels == ("0", "1")
    assert plain.fingerprint() != labelled.fingerprint()
    # inputs without labels keep the fingerprint they had before the field existed (value from commit ce757b0)
    assert plain.fingerprint() == "de9c3d30c43ef040df6c544dd62440aad04f1b51"


# ---------------------------------------------------------------- BADGE


def badge_reference(inp: RankingInput, k: int, seed: int) -> tuple[list[int], list[float]]:
    """scikit-activeml's Badge loop on explicitly built gradient embeddings, drawing from a numpy Generator."""
    from sklearn.metrics import pairwise_distances_argmin_min

    P = inp.probs
    X, L = inp.vectors.astype(np.float64), inp.labelled_vectors.astype(np.float64)
    X = np.hstack([(X - L.mean(axis=0)) / (L.std(axis=0) + 1e-6), np.ones((len(X), 1))])
    factor = P - np.eye(P.shape[1])[P.argmax(axis=1)]
    g = (factor[:, :, None] * X[:, None, :]).reshape(len(X), -1)
    rng = np.random.default_rng(seed)
    d2 = np.sum(g**2, axis=1)
    picks = [int(np.argmax(d2))]
    crit = [float(d2[picks[0]])]
    for _ in range(k - 1):
        _, D = pairwise_distances_argmin_min(g, g[picks])
        d2 = D**2
        d2[picks] = 0.0
        picks.append(int(rng.choice(len(g), p=d2 / d2.sum())))
        crit.append(float(d2[picks[-1]]))
    return picks, crit


@pytest.mark.parametrize("gram_after", [64, 0])
def test_badge_matches_the_explicit_gradient_embedding_loop(monkeypatch, gram_after):
    monkeypatch.setattr(strategies_mod, "_BADGE_GRAM_AFTER", gram_after)  # 0: the one-Gram path
    inp, _, _ = blob_data(n=90, m=15, d=6, seed=12)
    res = rank_candidates(inp, strategy="badge", k=20, random_state=4)
    picks, crit = badge_reference(inp, 20, seed=4)
    assert res.frame["position"].tolist() == picks
    assert np.allclose(res.frame["criterion"], crit, rtol=1e-4)


def test_badge_prefers_uncertain_and_never_redraws_a_duplicate():
    # a and its exact copy are the most uncertain; after a is picked its copy has distance 0
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 4))
    X[1] = X[0]
    probs = np.tile([0.99, 0.01], (30, 1))
    probs[[0, 1]] = [0.5, 0.5]
    inp = RankingInput(ids=[f"b{i}" for i in range(30)], vectors=X, probs=probs, labelled_vectors=X[2:6])
    for seed in range(20):
        res = rank_candidates(inp, strategy="badge", random_state=seed)
        order = res.frame["position"].tolist()
        assert order[0] == 0 and order.index(1) == 29  # the copy only comes once nothing else is left
        crit = res.frame["criterion"].to_numpy()
        assert crit[-1] <= 1e-6 * crit.max()  # zero up to float32 rounding


def test_badge_needs_probabilities():
    with pytest.raises(AddeError, match="badge.*probs"):
        rank_candidates(RankingInput(ids=["a", "b"], vectors=np.eye(2)), strategy="badge")
