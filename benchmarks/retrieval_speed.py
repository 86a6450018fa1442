"""Measure pool retrieval speed and accuracy: exact torch search and FAISS IVF against a numpy reference.

Prints numbers only (no assertions about time). Usage:

    .venv/bin/python benchmarks/retrieval_speed.py                    # 10^6 × 512 pool (≈2 GB, ~2-3 min)
    .venv/bin/python benchmarks/retrieval_speed.py --n 100000 --dim 128   # quick run

The pool is a mixture of 1000 Gaussians (seed 0) with a decaying spectrum like real embeddings, with
overlapping clusters, L2-normalised in place (so all methods read the same 2 GB and none copies it). Measured:

* build: ``VectorIndex.fit`` for the exact torch index (norm pass) and FAISS IVF-Flat (train + add);
* (a) top-100 for one centroid query: exact torch, FAISS, and the reference ``X @ q`` + ``np.argpartition``;
* (b) a region with 50 members, ``retrieve_for_region`` end to end (k = 100) with no index (exact torch) and
  with the FAISS index, against a numpy reference implementing the same selection rule;
* recall@100 of FAISS against exact search (centroid queries and member queries), and the overlap of the
  region results with the reference's.

Timings are wall-clock medians over repeats after one warm-up; ratios are time / reference time.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adde_core.acquisition import VectorIndex, exact_knn, recall_at_k, retrieve_for_region  # noqa: E402
from _common import cpu_model, timed  # noqa: E402 - benchmarks/ is on sys.path when run as scripts

K = 100


def machine_info() -> list[str]:
    import torch

    # Start torch's thread pool before faiss loads its own OpenMP runtime, as happens in the library (faiss is
    # imported lazily): with faiss imported first, torch's CPU matmuls measured ~1.3-1.9x slower here.
    torch.ones(256, 256) @ torch.ones(256, 256)
    try:
        import faiss

        faiss_txt = f"faiss {faiss.__version__} (omp threads {faiss.omp_get_max_threads()})"
    except ImportError:
        faiss_txt = "faiss not installed"
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return [
        f"date      : {_dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"python    : {platform.python_version()}  numpy {np.__version__}  torch {torch.__version__}  {faiss_txt}",
        f"cpu       : {cpu_model()}; os.cpu_count={os.cpu_count()}, usable={len(os.sched_getaffinity(0))}, "
        f"torch threads={torch.get_num_threads()}",
        f"cuda      : {cuda}",
    ]




def make_pool(n: int, d: int, n_clusters: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm mixture of Gaussians, generated block by block into one float32 array (no full-size temporaries)."""
    rng = np.random.default_rng(seed)
    scales = (1.0 / np.sqrt(np.arange(1, d + 1))).astype(np.float32)
    centers = rng.standard_normal((n_clusters, d), dtype=np.float32) * scales
    labels = rng.integers(0, n_clusters, n)
    X = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, 65_536):
        e = min(n, s + 65_536)
        block = X[s:e]
        block[:] = rng.standard_normal((e - s, d), dtype=np.float32)
        block *= scales
        block += centers[labels[s:e]]
        block /= np.linalg.norm(block, axis=1, keepdims=True)
    return X, labels


# ------------------------------------------------------------------------------------------- references


def ref_topk(X: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    """Reference top-k by cosine for unit rows: one matrix-vector product and an argpartition."""
    s = X @ (q / np.linalg.norm(q))
    top = np.argpartition(-s, k - 1)[:k]
    return top[np.argsort(-s[top], kind="stable")]


def ref_region(X: np.ndarray, c: np.ndarray, members: np.ndarray, k: int, r: int = 3) -> np.ndarray:
    """numpy reference of retrieve_for_region's rule (no probs): centroid top-k ∪ members' top-k, best score."""
    Q = np.vstack([c[None, :], members]).astype(np.float32)
    Q /= np.linalg.norm(Q, axis=1, keepdims=True)
    S = X @ Q.T  # (n, 1 + m): the one big product
    top = np.argpartition(-S, k - 1, axis=0)[:k]  # (k, 1 + m)
    cand = np.unique(top)
    Sc = S[cand]
    mem = -np.partition(-Sc[:, 1:], r - 1, axis=1)[:, :r]
    best = np.maximum(Sc[:, 0], mem.mean(axis=1))
    return cand[np.lexsort((cand, -best))][:k]


# ------------------------------------------------------------------------------------------- sections


def bench(X: np.ndarray, labels: np.ndarray, device: str, repeats: int, with_faiss: bool) -> None:
    n, d = X.shape
    rng = np.random.default_rng(1)
    # A region: 50 members of one cluster (taken from the pool itself, as a user's clicked region would be).
    region_rows = np.flatnonzero(labels == labels[0])[:50]
    members = X[region_rows]
    centroid = members.mean(axis=0)
    probe_rows = rng.choice(n, 50, replace=False)
    centroid_queries = np.stack(
        [X[np.flatnonzero(labels == labels[i])[:50]].mean(axis=0) for i in probe_rows[:20]]
    )

    print(f"\n## device={device}, pool {n:,} × {d} float32 ({X.nbytes / 2**30:.2f} GiB), k = {K}")
    # ---- build
    t0 = time.perf_counter()
    exact_index = VectorIndex(ann_threshold=None, device=device).fit(X)
    t_exact_build = time.perf_counter() - t0
    print(f"build exact torch index (norms{', copy to GPU' if device != 'cpu' else ''}): {t_exact_build:.2f} s")
    ann_index = None
    if with_faiss:
        t0 = time.perf_counter()
        ann_index = VectorIndex(ann_threshold=1, ann="ivf", random_state=0).fit(X)
        t_ann = time.perf_counter() - t0
        print(
            f"build FAISS {ann_index.kind_} (nlist={ann_index.nlist_}, nprobe={ann_index.nprobe_}): {t_ann:.1f} s "
            f"(train on {min(n, 64 * ann_index.nlist_):,} rows + add {n:,})"
        )

    # ---- (a) one centroid query
    print(f"\n(a) top-{K} for one centroid query (median of {repeats}; ratio = time / reference)")
    t_ref, m_ref, ref_idx = timed(lambda: ref_topk(X, centroid, K), repeats)
    rows = [("reference numpy X @ q + argpartition", t_ref, m_ref, None)]
    t, m, (_, ex_idx) = timed(lambda: exact_index.search(centroid, K), repeats)
    rows.append(("exact torch VectorIndex.search", t, m, recall_at_k(ex_idx, ref_idx[None, :])))
    t, m, _ = timed(lambda: exact_knn(X, centroid, K, device=device), repeats)
    rows.append(("exact_knn (norm pass every call)", t, m, None))
    if ann_index is not None:
        t, m, (_, ann_idx) = timed(lambda: ann_index.search(centroid, K), repeats)
        rows.append((f"FAISS {ann_index.kind_} search", t, m, recall_at_k(ann_idx, ex_idx)))
    for name, t, m, rec in rows:
        rec_txt = "" if rec is None else f"  recall@{K} vs exact {rec:.4f}"
        print(f"  {name:<40} median {t * 1e3:9.2f} ms  min {m * 1e3:9.2f} ms  ratio {t / t_ref:6.3f}{rec_txt}")

    if ann_index is not None:
        _, e_c = exact_index.search(centroid_queries, K)
        _, a_c = ann_index.search(centroid_queries, K)
        _, e_m = exact_index.search(X[probe_rows], K)
        _, a_m = ann_index.search(X[probe_rows], K)
        print(
            f"  FAISS recall@{K} vs exact: {recall_at_k(a_c, e_c):.4f} over 20 cluster-centroid queries, "
            f"{recall_at_k(a_m, e_m):.4f} over 50 single-item queries"
        )

    # ---- (b) region with 50 members, end to end
    print(f"\n(b) retrieve_for_region, 50 members, k = {K} (median of {max(1, repeats // 2)}; ratio = time / reference)")
    reps = max(1, repeats // 2)
    t_ref, m_ref, ref_rows = timed(lambda: ref_region(X, centroid, members, K), reps)
    print(f"  {'reference numpy X @ [c, M].T + argpartition':<48} median {t_ref:7.3f} s  min {m_ref:7.3f} s")
    ref_set = set(ref_rows.tolist())
    ids = np.arange(n)
    variants = [("exact torch (index=None)", None), ("exact torch VectorIndex", exact_index)]
    if ann_index is not None:
        variants.append((f"FAISS {ann_index.kind_} VectorIndex", ann_index))
    for name, index in variants:
        t, m, df = timed(
            lambda index=index: retrieve_for_region(
                X, ids, centroid=centroid, member_vectors=members, k=K, index=index
            ),
            reps,
        )
        overlap = len(ref_set & set(df["id"].tolist())) / K
        in_cluster = float(np.mean(labels[df["id"].to_numpy()] == labels[0]))
        print(
            f"  {name:<48} median {t:7.3f} s  min {m:7.3f} s  ratio {t / t_ref:6.3f}  "
            f"overlap with reference {overlap:.2f}  share in region's cluster {in_cluster:.2f}"
        )
    probs = np.random.default_rng(2).dirichlet(np.ones(5), size=n).astype(np.float32)
    best_index = ann_index if ann_index is not None else exact_index
    t, m, df = timed(
        lambda: retrieve_for_region(
            X, ids, centroid=centroid, member_vectors=members, k=K, probs=probs, uncertain_share=0.2,
            exclude_ids=set(region_rows.tolist()), index=best_index,
        ),
        reps,
    )
    print(
        f"  with probs (uncertain_share 0.2, 5 classes) + 50 excluded ids, {best_index.kind_}: median {t:.3f} s "
        f"(via counts: {df['via'].value_counts().to_dict()})"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="pool rows (default 10^6)")
    parser.add_argument("--dim", type=int, default=512, help="embedding dimension (default 512)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per single-query measurement")
    parser.add_argument("--no-faiss", action="store_true", help="skip the FAISS index")
    args = parser.parse_args(argv)

    import torch

    print("# Pool retrieval benchmark")
    for line in machine_info():
        print(line)
    t0 = time.perf_counter()
    X, labels = make_pool(args.n, args.dim)
    print(f"pool generated in {time.perf_counter() - t0:.1f} s (1000 Gaussians, seed 0, unit rows)")
    bench(X, labels, "cpu", args.repeats, with_faiss=not args.no_faiss)
    if torch.cuda.is_available():
        bench(X, labels, "cuda", args.repeats, with_faiss=False)
    else:
        print("\n(CUDA not available: GPU numbers not measured)")
    print(f"\ntotal wall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
