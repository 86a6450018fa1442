"""Measure candidate-ranking speed: every strategy of adde_core.ranking, and scikit-activeml's CoreSet/TypiClust.

Prints numbers only (no assertions about time). Usage:

    .venv/bin/python benchmarks/ranking_speed.py            # 8,000 candidates x 1280 dims, 330 labelled
    .venv/bin/python benchmarks/ranking_speed.py --quick    # 1,000 x 128, 50 labelled (a few seconds)

Data: clustered float32 embeddings (40 centres plus noise, like image features) and Dirichlet class
probabilities over 10 classes. Timings are wall-clock medians over the repeats (min in brackets),
for a review batch (k = 50) and for ranking every candidate (k = None).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adde_core.ranking import STRATEGIES, RankingInput, rank_candidates  # noqa: E402
from _common import timed  # noqa: E402 - benchmarks/ is on sys.path when run as scripts


def make_data(n: int, m: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, d)).astype(np.float32)
    def draw(size: int) -> np.ndarray:
        return centres[rng.integers(0, 40, size)] + 1.5 * rng.standard_normal((size, d), dtype=np.float32)
    probs = rng.dirichlet(np.full(10, 0.3), n)
    return draw(n), draw(m), probs



def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    n, m, d = (1_000, 50, 128) if args.quick else (8_000, 330, 1280)
    X, L, P = make_data(n, m, d)
    centroid = X[:100].mean(axis=0)
    inputs = RankingInput(ids=[f"c{i}" for i in range(n)], vectors=X, probs=P, labelled_vectors=L,
                          region_centroid=centroid, quality=np.random.default_rng(1).uniform(0.5, 1, n))
    print(f"# Ranking benchmark: n = {n:,} candidates x d = {d}, {m} labelled; {os.cpu_count()} CPUs; "
          f"loadavg {os.getloadavg()[0]:.2f} at start")
    print(f"{'strategy':<12} {'k':>6} {'median s':>9} {'min s':>8}")
    results = {}
    for k in (50, None):
        for name in STRATEGIES:
            reps = args.repeats if k is not None or name != "typiclust" else 1
            t, tmin, res = timed(lambda: rank_candidates(inputs, strategy=name, k=k), reps)
            results[(name, k)] = res
            print(f"{name:<12} {str(k):>6} {t:9.3f} {tmin:8.3f}")

    try:
        from skactiveml.pool import CoreSet, TypiClust
        from skactiveml.utils import MISSING_LABEL
    except ImportError:
        print("scikit-activeml not installed: no reference timings")
        return
    warnings.filterwarnings("ignore")
    unit = lambda A: A / np.linalg.norm(A, axis=1, keepdims=True)  # noqa: E731
    XX = np.vstack([unit(L), unit(X)]).astype(np.float64)
    y = np.full(len(XX), MISSING_LABEL)
    y[:m] = 0
    cand = np.arange(m, len(XX))
    k = 50
    print(f"\n## scikit-activeml 1.0.1 on the same unit-normalised data, batch_size = {k}")
    t_ref, tmin_ref, q = timed(lambda: CoreSet(random_state=0).query(XX, y, candidates=cand, batch_size=k),
                               args.repeats)
    ours = results[("coreset", k)].frame["position"].to_numpy() + m
    t_ours = timed(lambda: rank_candidates(inputs, strategy="coreset", k=k), args.repeats)[0]
    print(f"CoreSet      {t_ref:9.3f} {tmin_ref:8.3f}   ours/ref time ratio {t_ours / t_ref:.2f}; "
          f"same picks in the same order: {np.array_equal(q, ours)} ({(q == ours).sum()}/{k} positions equal)")
    t_ref, tmin_ref, q = timed(lambda: TypiClust(random_state=0).query(XX, y, candidates=cand, batch_size=k), 1)
    t_ours = timed(lambda: rank_candidates(inputs, strategy="typiclust", k=k), args.repeats)[0]
    print(f"TypiClust    {t_ref:9.3f} {tmin_ref:8.3f}   ours/ref time ratio {t_ours / t_ref:.2f} "
          "(ref: k-means++ on all 1280 dims; ours: PCA-50 first)")


    print(f"loadavg at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
