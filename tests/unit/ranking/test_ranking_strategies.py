"""Candidate ranking: invariants of every strategy, hand-made known answers, references, and input errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import adde_core.ranking.strategies as strategies_mod
from adde_core.errors import AddeError
from adde_core.ranking import (
    COLUMNS,
    STRATEGIES,
    RankingInput,
    RankingWeights,
    entropy_uncertainty,
    margin_uncertainty,
    rank_candidates,
)

SCORE_ORDERED = ("adde", "margin", "entropy", "coreset")


def make_input(n: int = 60, m: int = 12, d: int = 16, *, seed: int = 0, k_classes: int = 4, region: bool = True,
               quality: bool = True) -> RankingInput:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((5, d)) * 3
    X = centres[rng.integers(0, 5, n)] + rng.standard_normal((n, d))
    L = centres[rng.integers(0, 5, m)] + rng.standard_normal((m, d))
    return RankingInput(
        ids=[f"c{i:03d}" for i in range(n)],
        vectors=X,
        probs=rng.dirichlet(np.full(k_classes, 0.5), n),
        quality=rng.uniform(0.3, 1.0, n) if quality else None,
        labelled_vectors=L,
        region_centroid=centres[0] if region else None,
        sources=["pool" if i % 2 else "generated" for i in range(n)],
    )


@pytest.fixture(scope="module")
def inputs() -> RankingInput:
    return make_input()


def unit(A: np.ndarray) -> np.ndarray:
    A = np.asarray(A, dtype=np.float64)
    return A / np.linalg.norm(A, axis=1, keepdims=True)


# ---------------------------------------------------------------- invariants of every strategy


def test_registry_names():
    assert set(STRATEGIES) == {"adde", "random", "margin", "entropy", "coreset", "typiclust", "probcover",
                               "maxherding", "uherding", "badge"}


@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("k", [1, 7, None, 1000])
def test_invariants(inputs, strategy, k):
    res = rank_candidates(inputs, strategy=strategy, k=k, random_state=3)
    f = res.frame
    n_expected = inputs.n if k is None else min(k, inputs.n)
    assert list(f.columns) == list(COLUMNS)
    assert len(f) == len(res) == n_expected
    assert f["id"].is_unique and f["position"].is_unique
    assert f["rank"].tolist() == list(range(1, n_expected + 1))
    assert (f["id"] == [inputs.ids[p] for p in f["position"]]).all()
    assert np.allclose(f["alpha_U"] + f["beta_Div"] + f["gamma_Q"], f["score"], rtol=0, atol=1e-12)
    for col in ("U", "Div", "Q", "score"):
        assert f[col].between(0.0, 1.0).all(), col
    assert (f["strategy"] == strategy).all() and res.strategy == strategy
    assert res.input_fingerprint == inputs.fingerprint()
    assert f["source"].tolist() == [inputs.sources[p] for p in f["position"]]
    a, b, g = res.weights
    assert np.allclose(f["alpha_U"], a * f["U"]) and np.allclose(f["beta_Div"], b * f["Div"])
    assert np.allclose(f["gamma_Q"], g * f["Q"])
    if strategy in SCORE_ORDERED:
        assert (np.diff(f["score"].to_numpy()) <= 1e-12).all(), "scores must not increase down the ranking"


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_deterministic_with_the_same_seed(inputs, strategy):
    a = rank_candidates(inputs, strategy=strategy, k=15, random_state=7).frame
    b = rank_candidates(inputs, strategy=strategy, k=15, random_state=7).frame
    assert a.equals(b)


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_without_labelled_items_region_or_quality(strategy):
    inp = make_input(n=30, m=0, region=False, quality=False)
    res = rank_candidates(inp, strategy=strategy, k=10)
    assert len(res) == 10 and res.frame["id"].is_unique
    assert (res.frame["Q"] == 1.0).all()
    first_div = res.frame["Div"].iloc[0]
    assert first_div == 1.0  # nothing labelled and nothing above: the first row is maximally new


def test_random_differs_across_seeds_and_scores_nothing(inputs):
    a = rank_candidates(inputs, strategy="random", random_state=0)
    b = rank_candidates(inputs, strategy="random", random_state=1)
    assert a.ids != b.ids and sorted(a.ids) == sorted(b.ids)
    assert (a.frame["score"] == 0).all() and a.weights == (0.0, 0.0, 0.0)
    draws = a.frame["criterion"].to_numpy()
    assert ((draws >= 0) & (draws < 1)).all() and (np.diff(draws) <= 0).all()


def test_empty_candidate_set():
    inp = RankingInput(ids=[], vectors=np.zeros((0, 4)), labelled_vectors=np.eye(4))
    res = rank_candidates(inp, strategy="adde", k=5)
    assert len(res) == 0 and list(res.frame.columns) == list(COLUMNS)


# ---------------------------------------------------------------- known answers

HAND_PROBS = np.array([
    [0.90, 0.05, 0.05],   # confident:             margin U 0.15, entropy 0.36
    [0.50, 0.45, 0.05],   # top two nearly tied:   margin U 0.95, entropy 0.82
    [0.40, 0.30, 0.30],   # spread over three:     margin U 0.90, entropy 0.99
    [0.34, 0.33, 0.33],   # almost uniform:        margin U 0.99, entropy ~1.00
])


def hand_input(probs: np.ndarray = HAND_PROBS) -> RankingInput:
    n = len(probs)
    return RankingInput(ids=list("abcd")[:n], vectors=np.eye(n) + 0.1, probs=probs, labelled_vectors=np.ones((1, n)))


def test_uncertainty_values():
    assert np.allclose(margin_uncertainty(HAND_PROBS), [0.15, 0.95, 0.90, 0.99])
    assert entropy_uncertainty(np.array([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]])) == pytest.approx([0.0, 1.0])
    h = -(0.5 * np.log(0.5) + 0.45 * np.log(0.45) + 0.05 * np.log(0.05)) / np.log(3)
    assert entropy_uncertainty(HAND_PROBS)[1] == pytest.approx(h)


def test_margin_and_entropy_pick_the_expected_items():
    margin = rank_candidates(hand_input(), strategy="margin")
    entropy = rank_candidates(hand_input(), strategy="entropy")
    assert margin.ids == ["d", "b", "c", "a"]   # the near-tie b beats the spread-out c on margin...
    assert entropy.ids == ["d", "c", "b", "a"]  # ...and loses to it on entropy
    assert np.allclose(margin.frame["score"], [0.99, 0.95, 0.90, 0.15])
    assert margin.weights == (1.0, 0.0, 0.0) and margin.uncertainty == "margin"
    assert entropy.uncertainty == "entropy"


def arc_input() -> tuple[RankingInput, list[str]]:
    """Candidates on an arc of the unit circle: cosine distance grows with the angle between them."""
    angles = [0.1, 0.2, 0.35, 0.6, 0.8, 1.2]
    pts = np.array([[np.cos(a), np.sin(a), 0.0] for a in angles])
    ids = [f"a{a}" for a in angles]
    return RankingInput(ids=ids, vectors=pts, labelled_vectors=np.array([[1.0, 0.0, 0.0]])), ids


def test_coreset_on_an_arc_picks_farthest_points_in_order():
    inp, _ = arc_input()
    res = rank_candidates(inp, strategy="coreset")
    # labelled at angle 0: farthest 1.2; then 0.6 (0.6 from both ends); then 0.35 (0.25 away);
    # then 0.8 (0.2 from 0.6); then 0.2 (0.15 from 0.35); then 0.1
    assert res.ids == ["a1.2", "a0.6", "a0.35", "a0.8", "a0.2", "a0.1"]
    gaps = np.array([1.2, 0.6, 0.25, 0.2, 0.15, 0.1])
    # unit rows are float32, so distances carry ~1e-7 absolute rounding
    assert np.allclose(res.frame["criterion"], 1 - np.cos(gaps), rtol=0, atol=1e-6)
    assert np.allclose(res.frame["Div"], (1 - np.cos(gaps)) / (1 - np.cos(1.2)), rtol=0, atol=1e-5)
    assert res.frame["score"].iloc[0] == pytest.approx(1.0)


def test_coreset_matches_scikit_activeml():
    skal = pytest.importorskip("skactiveml.pool")
    from skactiveml.utils import MISSING_LABEL

    inp = make_input(n=200, m=15, d=12, seed=5)
    X = np.vstack([unit(inp.labelled_vectors), unit(inp.vectors)])
    y = np.full(len(X), MISSING_LABEL)
    y[:15] = 0
    ref = skal.CoreSet(random_state=0).query(X, y, candidates=np.arange(15, len(X)), batch_size=25)
    ours = rank_candidates(inp, strategy="coreset", k=25).frame["position"].to_numpy() + 15
    assert ours.tolist() == ref.tolist()


def blobs_input(labelled_in_biggest: bool) -> tuple[RankingInput, np.ndarray, np.ndarray]:
    """Four far-apart blobs of 40, 30, 20 and 12 candidates; each has a tight 3-point core."""
    rng = np.random.default_rng(11)
    d = 8
    centres = np.eye(d)[:4] * 10 + 20 * np.eye(d)[4]  # distinct directions, all positive
    rows, blob, core = [], [], []
    for b, size in enumerate((40, 30, 20, 12)):
        for j in range(size):
            spread = 0.05 if j < 3 else 1.0
            rows.append(centres[b] + spread * rng.standard_normal(d))
            blob.append(b)
            core.append(j < 3)
    perm = rng.permutation(len(rows))
    X, blob, core = np.asarray(rows)[perm], np.asarray(blob)[perm], np.asarray(core)[perm]
    L = centres[:1] + 0.05 * rng.standard_normal((1, d)) if labelled_in_biggest else np.zeros((0, d))
    return RankingInput(ids=[f"b{i}" for i in range(len(X))], vectors=X, labelled_vectors=L), blob, core


def test_typiclust_takes_one_typical_item_per_blob_largest_first():
    inp, blob, core = blobs_input(labelled_in_biggest=False)
    res = rank_candidates(inp, strategy="typiclust", k=4)
    picks = res.frame["position"].to_numpy()
    assert blob[picks].tolist() == [0, 1, 2, 3]
    assert core[picks].all(), "each pick should come from its blob's dense core"
    assert (res.frame["score"] == 0).all() and res.weights == (0.0, 0.0, 0.0)


def test_typiclust_visits_the_covered_blob_last():
    inp, blob, _ = blobs_input(labelled_in_biggest=True)
    res = rank_candidates(inp, strategy="typiclust", k=4)
    assert blob[res.frame["position"].to_numpy()].tolist() == [1, 2, 3, 0]


def test_adde_with_uncertainty_only_equals_margin_and_entropy(inputs):
    only_u = RankingWeights(1, 0, 0)
    assert rank_candidates(inputs, weights=only_u).ids == rank_candidates(inputs, strategy="margin").ids
    assert (rank_candidates(inputs, weights=only_u, uncertainty="entropy").ids
            == rank_candidates(inputs, strategy="entropy").ids)


def test_adde_with_diversity_only_prefers_far_items(inputs):
    no_region = make_input(region=False)
    res = rank_candidates(no_region, weights=RankingWeights(0, 1, 0))
    L, X = unit(no_region.labelled_vectors), unit(no_region.vectors)
    dist_to_labelled = 1 - (X @ L.T).max(axis=1)
    assert res.frame["position"].iloc[0] == int(np.argmax(dist_to_labelled))
    assert res.ids == rank_candidates(no_region, strategy="coreset").ids
    # the top half of the ranking is, on average, farther from the labelled set than the bottom half
    d_ranked = dist_to_labelled[res.frame["position"].to_numpy()]
    assert d_ranked[:30].mean() > d_ranked[30:].mean()


def test_adde_demotes_a_near_duplicate_of_an_earlier_pick():
    # a and a2 are near-identical and the most uncertain; b is distinct but a little less uncertain
    vectors = np.array([[1.0, 0.0, 0.0], [1.0, 0.01, 0.0], [0.0, 1.0, 0.0]])
    probs = np.array([[0.5, 0.5], [0.51, 0.49], [0.6, 0.4]])
    inp = RankingInput(ids=["a", "a2", "b"], vectors=vectors, probs=probs, labelled_vectors=[[0.0, 0.0, 1.0]])
    assert rank_candidates(inp, strategy="margin").ids == ["a", "a2", "b"]
    res = rank_candidates(inp, weights=RankingWeights(0.5, 0.5, 0.0))
    assert res.ids == ["a", "b", "a2"]
    assert res.frame["Div"].iloc[2] < 1e-3  # measured against the pick a, a2 adds almost nothing


def eager_reference(inp: RankingInput, w: tuple[float, float, float], region_weight: float) -> list[str]:
    """Plain greedy: after every pick, recompute every candidate's score from scratch."""
    X, L = unit(inp.vectors), unit(inp.labelled_vectors)
    d = 1 - (X @ L.T).max(axis=1)
    scale = d.max()
    c = unit(inp.region_centroid[None, :])[0]
    cd = 1 - X @ c
    prox = 1 - cd / cd.max()
    U, Q = margin_uncertainty(inp.probs), inp.quality
    total = sum(w)
    a, b, g = (x / total for x in w)
    picked: list[int] = []
    for _ in range(inp.n):
        div = (1 - region_weight) * d / scale + region_weight * prox
        score = a * U + b * div + g * Q
        score[picked] = -np.inf
        i = int(np.argmax(score))
        picked.append(i)
        d = np.minimum(d, 1 - X @ X[i])
    return [inp.ids[i] for i in picked]


@pytest.mark.parametrize("block", [4, 256])
def test_lazy_greedy_matches_the_eager_greedy(monkeypatch, block):
    monkeypatch.setattr(strategies_mod, "_GREEDY_BLOCK", block)
    inp = make_input(n=80, seed=9)
    for w, rw in [((0.4, 0.4, 0.2), 0.5), ((0.2, 0.8, 0.0), 0.25), ((1, 3, 1), 0.0)]:
        res = rank_candidates(inp, weights=RankingWeights(*w), region_weight=rw)
        assert res.ids == eager_reference(inp, w, rw), (w, rw)


def test_region_weight_one_ranks_by_proximity_to_the_centroid(inputs):
    res = rank_candidates(inputs, weights=RankingWeights(0, 1, 0), region_weight=1.0)
    X, c = unit(inputs.vectors), unit(inputs.region_centroid[None, :])[0]
    expected = np.argsort(-(X @ c), kind="stable")
    assert res.frame["position"].tolist() == expected.tolist()
    assert res.frame["Div"].iloc[0] == pytest.approx(1 - (1 - (X @ c).max()) / (1 - (X @ c).min()))


def test_quality_only_and_missing_quality():
    inp = RankingInput(ids=["p", "g1", "g2"], vectors=np.eye(3), quality=[np.nan, 0.4, 0.8],
                       labelled_vectors=np.ones((1, 3)))
    res = rank_candidates(inp, weights=RankingWeights(0, 0, 1))
    assert res.ids == ["p", "g2", "g1"]  # NaN = a pool item without a gate score = 1
    assert res.frame["Q"].tolist() == [1.0, 0.8, 0.4]


def test_adde_without_probs_notes_it_and_margin_refuses():
    inp = RankingInput(ids=["a", "b"], vectors=np.eye(2), labelled_vectors=np.ones((1, 2)))
    res = rank_candidates(inp)
    assert (res.frame["U"] == 0).all() and res.notes
    with pytest.raises(AddeError, match="probs"):
        rank_candidates(inp, strategy="margin")


# ---------------------------------------------------------------- weights, inputs, errors


def test_weights_defaults_and_validation():
    w = RankingWeights()
    assert w.as_tuple() == (0.4, 0.4, 0.2) and sum(w.normalized()) == pytest.approx(1.0)
    assert RankingWeights(2, 2, 1).normalized() == pytest.approx(w.normalized())
    assert set(RankingWeights.HELP) == {"alpha", "beta", "gamma"}
    for bad, match in [((-0.1, 1, 1), "alpha"), ((0, 0, 0), "all 0"), ((1, float("nan"), 1), "beta"),
                       ((1, 1, True), "gamma")]:
        with pytest.raises(AddeError, match=match):
            RankingWeights(*bad)


def test_probs_shape_mismatch_names_the_field():
    with pytest.raises(AddeError, match=r"probs has shape \(3, 2\) but there are 4 candidates"):
        RankingInput(ids=list("abcd"), vectors=np.eye(4), probs=np.full((3, 2), 0.5))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"probs": np.array([[2.0, -1.0]] * 4)}, "probs row 0"),
        ({"probs": np.array([[0.7, 0.7]] * 4)}, "probs row 0 is not a probability"),
        ({"probs": np.ones((4, 1))}, "probs has 1 class"),
        ({"vectors": np.eye(4)[:3]}, "vectors has 3 rows"),
        ({"vectors": np.vstack([np.eye(4)[:3], np.zeros(4)])}, "vectors row 3 is all zeros"),
        ({"labelled_vectors": np.ones((2, 5))}, "labelled_vectors has 5 dimensions"),
        ({"quality": [0.5, 1.2, 0.1, 0.3]}, "quality row 1"),
        ({"quality": [0.5, 0.5]}, "quality has 2 entries"),
        ({"region_centroid": np.ones(3)}, "region_centroid"),
        ({"sources": ["pool"]}, "sources has 1"),
        ({"ids": list("abca")}, "'a' more than once"),
        ({"vectors": np.full((4, 4), np.nan)}, "vectors contains NaN"),
    ],
)
def test_bad_inputs_name_the_field(kwargs, match):
    base = {"ids": list("abcd"), "vectors": np.eye(4)}
    with pytest.raises(AddeError, match=match):
        RankingInput(**{**base, **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"strategy": "bald"}, "adde, random, margin"), ({"uncertainty": "variance"}, "margin, entropy"),
     ({"k": 0}, "k must be"), ({"region_weight": 1.5}, "region_weight"), ({"random_state": "x"}, "random_state")],
)
def test_bad_arguments(inputs, kwargs, match):
    with pytest.raises(AddeError, match=match):
        rank_candidates(inputs, **kwargs)


def test_fingerprint_tracks_the_inputs():
    a, b = make_input(seed=1), make_input(seed=1)
    assert a.fingerprint() == b.fingerprint()
    changed = RankingInput(ids=a.ids, vectors=a.vectors, probs=a.probs[::-1], quality=a.quality,
                           labelled_vectors=a.labelled_vectors, region_centroid=a.region_centroid, sources=a.sources)
    assert changed.fingerprint() != a.fingerprint()


def test_import_is_light():
    code = "import sys, adde_core.ranking; print([m for m in ('sklearn', 'pandas', 'torch', 'streamlit') " \
           "if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
