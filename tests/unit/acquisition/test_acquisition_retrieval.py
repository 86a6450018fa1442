"""Pool retrieval: exact k-NN against numpy brute force, the FAISS path's recall, and region retrieval."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from adde_core.acquisition import VectorIndex, exact_knn, recall_at_k, retrieve_for_region
from adde_core.errors import AddeError


def brute_force(X: np.ndarray, Q: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    X64, Q64 = X.astype(np.float64), Q.astype(np.float64)
    if metric == "cosine":
        S = (Q64 / np.linalg.norm(Q64, axis=1, keepdims=True)) @ (X64 / np.linalg.norm(X64, axis=1, keepdims=True)).T
        idx = np.argsort(-S, axis=1, kind="stable")[:, :k]
    else:
        S = ((Q64[:, None, :] - X64[None, :, :]) ** 2).sum(-1)
        idx = np.argsort(S, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(S, idx, axis=1), idx


@pytest.fixture(scope="module")
def random_data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((1000, 16)).astype(np.float32), rng.standard_normal((7, 16)).astype(np.float32)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize(
    ("k", "chunk_size"),
    [(1, 65_536), (10, 1000), (10, 999), (10, 64), (37, 10), (100, 33), (1000, 128)],  # k > chunk, ragged chunks, k = n
)
def test_exact_knn_matches_numpy_brute_force(random_data, metric, k, chunk_size):
    X, Q = random_data
    scores, idx = exact_knn(X, Q, k, metric=metric, chunk_size=chunk_size, device="cpu")
    ref_s, ref_i = brute_force(X, Q, k, metric)
    assert scores.shape == idx.shape == (7, k)
    assert scores.dtype == np.float32 and idx.dtype == np.int64
    np.testing.assert_array_equal(idx, ref_i)
    np.testing.assert_allclose(scores, ref_s, rtol=1e-4, atol=1e-4)
    # ordering convention: similarities descend, squared distances ascend
    diffs = np.diff(scores, axis=1)
    assert (diffs <= 0).all() if metric == "cosine" else (diffs >= 0).all()


def test_exact_knn_accepts_tensors_and_a_single_query(random_data):
    import torch

    X, Q = random_data
    s1, i1 = exact_knn(torch.from_numpy(X), torch.from_numpy(Q[0]), 5)
    s2, i2 = exact_knn(X, Q[:1], 5, device="cpu")
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(s1, s2)
    # the query itself is its own nearest neighbour with similarity 1 / distance 0
    s, i = exact_knn(X, X[[3, 500]], 1, metric="cosine")
    np.testing.assert_array_equal(i[:, 0], [3, 500])
    np.testing.assert_allclose(s[:, 0], 1.0, atol=1e-5)
    s, i = exact_knn(X, X[[3, 500]], 1, metric="l2")
    np.testing.assert_array_equal(i[:, 0], [3, 500])
    np.testing.assert_allclose(s[:, 0], 0.0, atol=1e-4)


def test_exact_knn_errors(random_data):
    X, Q = random_data
    with pytest.raises(AddeError, match="at most k=1000"):
        exact_knn(X, Q, 1001)
    with pytest.raises(AddeError, match="positive integer"):
        exact_knn(X, Q, 0)
    with pytest.raises(AddeError, match="no indexed vectors"):
        exact_knn(np.zeros((0, 16), np.float32), Q, 1)
    with pytest.raises(AddeError, match="shape"):
        exact_knn(X, Q[:, :8], 3)
    with pytest.raises(AddeError, match="Unknown metric"):
        exact_knn(X, Q, 3, metric="dot")
    with pytest.raises(AddeError, match="NaN"):
        exact_knn(X, np.full((1, 16), np.nan, np.float32), 3)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_vector_index_exact_path_equals_exact_knn(random_data, metric):
    X, Q = random_data
    ids = np.array([f"item-{i}" for i in range(len(X))])
    index = VectorIndex(metric=metric, device="cpu", chunk_size=300).fit(X, ids=ids)
    assert (index.kind_, index.n_, index.dim_) == ("exact", 1000, 16)
    s, i = index.search(Q, 12)
    ref_s, ref_i = exact_knn(X, Q, 12, metric=metric)
    np.testing.assert_array_equal(i, ref_i)
    np.testing.assert_allclose(s, ref_s, rtol=1e-5, atol=1e-5)
    assert index.search_ids(Q, 12) == [ids[row].tolist() for row in ref_i]


def test_vector_index_errors(random_data):
    X, Q = random_data
    with pytest.raises(AddeError, match="not fitted"):
        VectorIndex().search(Q, 1)
    with pytest.raises(AddeError, match="empty"):
        VectorIndex().fit(np.zeros((0, 4), np.float32))
    with pytest.raises(AddeError, match="one id per vector"):
        VectorIndex().fit(X, ids=[1, 2, 3])
    with pytest.raises(AddeError, match="Unknown ann"):
        VectorIndex(ann="annoy").fit(X)
    with pytest.raises(AddeError, match="NaN"):
        bad = X.copy()
        bad[5, 2] = np.inf
        VectorIndex().fit(bad)
    with pytest.raises(AddeError, match="at most k=1000"):
        VectorIndex().fit(X).search(Q, 1001)


def clustered(n: int, d: int, n_clusters: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_clusters, d)).astype(np.float32) * 2.0
    labels = rng.integers(0, n_clusters, n)
    return (centers[labels] + rng.standard_normal((n, d)).astype(np.float32)).astype(np.float32), labels


@pytest.fixture(scope="module")
def clustered_20k():
    return clustered(20_000, 64, 50, seed=1)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_ann_ivf_recall(clustered_20k, metric):
    X, _ = clustered_20k
    Q = X[np.random.default_rng(2).choice(len(X), 50, replace=False)] + 0.1
    index = VectorIndex(metric=metric, ann_threshold=5_000, random_state=0).fit(X)
    assert index.kind_ == "faiss-ivf" and index.n_ == 20_000 and index.dim_ == 64
    s, i = index.search(Q, 10)
    exact_s, exact_i = exact_knn(X, Q, 10, metric=metric)
    assert recall_at_k(i, exact_i) >= 0.9
    # scores follow the exact path's convention (ascending distances / descending similarities)
    assert (np.diff(s, axis=1) <= 1e-6).all() if metric == "cosine" else (np.diff(s, axis=1) >= -1e-4).all()
    np.testing.assert_allclose(s[:, 0], exact_s[:, 0], rtol=1e-3, atol=1e-3)
    # deterministic: same seed, same index, same answers
    again = VectorIndex(metric=metric, ann_threshold=5_000, random_state=0).fit(X).search(Q, 10)[1]
    np.testing.assert_array_equal(again, i)


def test_ann_hnsw_recall(clustered_20k):
    X, _ = clustered_20k
    X = X[:6_000]
    Q = X[:40] + 0.1
    index = VectorIndex(ann="hnsw", ann_threshold=1_000).fit(X)
    assert index.kind_ == "faiss-hnsw"
    assert recall_at_k(index.search(Q, 10)[1], exact_knn(X, Q, 10)[1]) >= 0.9


def test_ann_returns_k_even_when_probed_lists_are_small():
    # 30 lists over 1200 rows, nprobe 1: a probed list holds ~40 rows, fewer than k = 200
    X, _ = clustered(1_200, 8, 30, seed=3)
    index = VectorIndex(ann_threshold=100, nlist=30, nprobe=1).fit(X)
    s, i = index.search(X[:5], 200)
    assert (i >= 0).all() and all(len(set(row)) == 200 for row in i)


def test_recall_at_k_known_values():
    exact = np.array([[0, 1, 2, 3], [4, 5, 6, 7]])
    assert recall_at_k(exact, exact) == 1.0
    assert recall_at_k(np.array([[3, 2, 9, -1], [8, 9, 10, 11]]), exact) == pytest.approx((2 / 4 + 0) / 2)
    assert recall_at_k(np.array([[-1, -1, -1, -1], [7, 6, 5, 4]]), exact) == pytest.approx(0.5)
    with pytest.raises(AddeError):
        recall_at_k(exact[:1], exact)


# ------------------------------------------------------------------------------------------------ region


@pytest.fixture(scope="module")
def two_blobs():
    """A big blob (2000 items) and a small blob (150 items) in 32-d; ids are strings, small blob ids 's…'."""
    rng = np.random.default_rng(5)
    d = 32
    big_c, small_c = np.zeros(d), np.zeros(d)
    big_c[0], small_c[1] = 6.0, 6.0
    big = big_c + rng.standard_normal((2000, d))
    small = small_c + rng.standard_normal((150, d))
    X = np.vstack([big, small]).astype(np.float32)
    ids = np.array([f"b{i}" for i in range(2000)] + [f"s{i}" for i in range(150)])
    members = (small_c + rng.standard_normal((20, d))).astype(np.float32)  # the region's labelled members
    return X, ids, members


def test_region_returns_mostly_blob_items(two_blobs):
    X, ids, members = two_blobs
    df = retrieve_for_region(X, ids, centroid=members.mean(0), member_vectors=members, k=50)
    assert list(df.columns) == ["id", "similarity", "via", "rank"]
    assert len(df) == 50 and df["id"].is_unique
    assert df["rank"].tolist() == list(range(50))
    assert df["id"].str.startswith("s").mean() >= 0.95
    assert set(df["via"]) <= {"centroid", "members"}
    assert (np.diff(df["similarity"].to_numpy()) <= 1e-9).all()  # similar items come best first
    # same inputs, same frame
    again = retrieve_for_region(X, ids, centroid=members.mean(0), member_vectors=members, k=50)
    assert again.equals(df)


def test_region_centroid_only_equals_exact_knn(two_blobs):
    X, ids, members = two_blobs
    c = members.mean(0)
    df = retrieve_for_region(X, ids, centroid=c, k=30)
    s, i = exact_knn(X, c, 30)
    assert df["id"].tolist() == ids[i[0]].tolist()
    np.testing.assert_allclose(df["similarity"], s[0], atol=1e-5)
    assert (df["via"] == "centroid").all()


def test_region_member_score_is_mean_of_top_r(two_blobs):
    X, ids, members = two_blobs
    df = retrieve_for_region(X, ids, centroid=-members.mean(0), member_vectors=members, k=20, member_top=3)
    # the centroid points away from everything, so every pick comes via the members; check the score rule
    assert (df["via"] == "members").all()
    unit = lambda a: a / np.linalg.norm(a, axis=-1, keepdims=True)  # noqa: E731
    sims = unit(X) @ unit(members).T
    top3 = -np.sort(-sims, axis=1)[:, :3].mean(axis=1)
    expected = ids[np.argsort(-top3, kind="stable")[:20]]
    assert df["id"].tolist() == expected.tolist()
    np.testing.assert_allclose(df["similarity"], np.sort(top3)[::-1][:20], atol=1e-5)


def test_region_excludes_ids_and_respects_uncertain_share(two_blobs):
    X, ids, members = two_blobs
    c = members.mean(0)
    first = retrieve_for_region(X, ids, centroid=c, member_vectors=members, k=40)
    excluded = set(first["id"].iloc[:25])
    # the most uncertain items are a known set far down the neighbour list: the 10 small-blob items least
    # similar to the centroid get p = 0.5, all others are confident
    order = np.argsort(-(X / np.linalg.norm(X, axis=1, keepdims=True)) @ (c / np.linalg.norm(c)), kind="stable")
    uncertain_rows = order[130:150]
    probs = np.full((len(X), 3), [0.98, 0.01, 0.01])
    probs[uncertain_rows] = [0.4, 0.3, 0.3]
    df = retrieve_for_region(
        X, ids, centroid=c, member_vectors=members, k=40, probs=probs, uncertain_share=0.25, exclude_ids=excluded
    )
    assert len(df) == 40 and df["id"].is_unique
    assert not excluded & set(df["id"])
    unc = df[df["via"] == "uncertain"]
    assert len(unc) == 10
    assert set(unc["id"]) <= set(ids[uncertain_rows])
    assert df["via"].iloc[:30].isin(["centroid", "members"]).all()  # similar items first, then uncertain
    # binary probabilities as a 1-D P(positive) work the same way
    p1 = np.full(len(X), 0.99)
    p1[uncertain_rows] = 0.5
    df1 = retrieve_for_region(X, ids, centroid=c, k=40, probs=p1, uncertain_share=0.25, exclude_ids=excluded)
    assert set(df1.loc[df1["via"] == "uncertain", "id"]) <= set(ids[uncertain_rows])


def test_region_with_ann_index_matches_exact(clustered_20k):
    X, labels = clustered_20k
    ids = np.arange(len(X)) + 10_000
    members = X[labels == 7][:40]
    index = VectorIndex(ann_threshold=5_000).fit(X, ids=ids)
    with_index = retrieve_for_region(X, ids, centroid=members.mean(0), member_vectors=members, k=50, index=index)
    exact = retrieve_for_region(X, ids, centroid=members.mean(0), member_vectors=members, k=50)
    assert len(set(with_index["id"]) & set(exact["id"])) >= 45
    assert labels[with_index["id"].to_numpy() - 10_000].tolist().count(7) >= 48


def test_region_small_pool_and_errors(two_blobs):
    X, ids, members = two_blobs
    small = retrieve_for_region(X[:5], ids[:5], centroid=members.mean(0), k=50, probs=np.full(5, 0.5))
    assert len(small) == 5 and small["id"].is_unique  # k > n: every available item, once
    all_but_two = set(ids[:3])
    assert len(retrieve_for_region(X[:5], ids[:5], centroid=X[0], k=50, exclude_ids=all_but_two)) == 2
    assert len(retrieve_for_region(X[:5], ids[:5], centroid=X[0], exclude_ids=set(ids[:5]))) == 0
    with pytest.raises(AddeError, match="pool is empty"):
        retrieve_for_region(np.zeros((0, 32), np.float32), [], centroid=members.mean(0))
    with pytest.raises(AddeError, match="unique"):
        retrieve_for_region(X[:3], ["a", "b", "a"], centroid=X[0])
    with pytest.raises(AddeError, match="centroid"):
        retrieve_for_region(X, ids, centroid=np.zeros(3))
    with pytest.raises(AddeError, match="uncertain_share"):
        retrieve_for_region(X, ids, centroid=X[0], uncertain_share=1.5)
    with pytest.raises(AddeError, match="probs"):
        retrieve_for_region(X, ids, centroid=X[0], probs=np.ones(3))
    with pytest.raises(AddeError, match="refit"):
        retrieve_for_region(X, ids, centroid=X[0], index=VectorIndex().fit(X[:100]))


def test_region_subsamples_many_members_deterministically(two_blobs):
    X, ids, members = two_blobs
    many = np.repeat(members, 20, axis=0)  # 400 members > max_members
    a = retrieve_for_region(X, ids, centroid=members.mean(0), member_vectors=many, k=30, max_members=64)
    b = retrieve_for_region(X, ids, centroid=members.mean(0), member_vectors=many, k=30, max_members=64)
    assert a.equals(b) and a["id"].str.startswith("s").all()


def test_import_acquisition_is_light():
    code = (
        "import sys, adde_core.acquisition\n"
        "print([m for m in ('torch', 'faiss', 'pandas', 'streamlit', 'sklearn') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_excluded_rows_never_take_a_slot_on_either_path(clustered_20k):
    X, _ = clustered_20k
    q = X[:3]
    excluded = np.zeros(len(X), dtype=bool)
    excluded[exact_knn(X, q, 30)[1].ravel()] = True  # the 30 nearest of each query
    exact = VectorIndex(ann_threshold=None).fit(X)
    ann = VectorIndex(ann_threshold=5_000).fit(X)
    s_e, i_e = exact._search(q, 20, exclude=excluded)
    s_a, i_a = ann._search(q, 20, exclude=excluded)
    ref = exact_knn(X[~excluded], q, 20)[1]
    np.testing.assert_array_equal(i_e, np.flatnonzero(~excluded)[ref])
    assert not excluded[i_a].any() and recall_at_k(i_a, i_e) >= 0.9
