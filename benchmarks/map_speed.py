"""Measure the latent map and sparse-region engine: UMAP fit vs plain umap-learn, adding points, detection time.

Run ``python benchmarks/map_speed.py`` (about 5 minutes on 2 cores) or ``--quick`` for a smoke
run. It prints numbers and asserts nothing about time. Data are a structured Gaussian
mixture (so the numbers do not depend on a dataset download): 70,000 x 512 for the fit,
10,000 x 1280 unit vectors with demo-like roles for the detection.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".cache" / "numba"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def mixture(n: int, dim: int, *, components: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian mixture with uneven weights and spreads, living near a 30-d subspace (like real embeddings)."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(dim, 30)))[0]
    centres = rng.normal(size=(components, 30)) * 4.0
    weights = rng.dirichlet(np.full(components, 2.0))
    comp = rng.choice(components, size=n, p=weights)
    spread = rng.uniform(0.6, 1.6, size=components)
    low = centres[comp] + rng.normal(size=(n, 30)) * spread[comp, None]
    X = low @ basis.T + rng.normal(size=(n, dim)) * 0.05
    return X.astype(np.float32), comp


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def machine_info() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numba
    import umap

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    return (f"date {datetime.datetime.now().isoformat(timespec='seconds')} | {platform.platform()} | "
            f"Python {platform.python_version()} | {cpu} | {cores} cores | load avg {load[0]:.2f} | "
            f"numpy {np.__version__} | umap-learn {umap.__version__} | numba {numba.__version__}")


def preservation(hi_ref: np.ndarray, hi_new: np.ndarray, lo_ref: np.ndarray, lo_new: np.ndarray, k: int = 10) -> float:
    """Share of each new point's k nearest fitted items (input space) that are also its k nearest on the map."""
    from adde_core.analysis.density import knn

    _, a = knn(hi_new, hi_ref, k)
    _, b = knn(lo_new, lo_ref, k)
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    n_big, n_map, n_add, n_detect = (7_000, 2_000, 200, 2_000) if args.quick else (70_000, 10_000, 1_000, 10_000)

    import umap

    from adde_core.analysis import (
        ClusterConfig,
        LatentMap,
        MapConfig,
        cluster_embeddings,
        find_sparse_regions,
        fit_map,
    )

    print(machine_info())
    print(f"sizes: fit {n_big:,} x 512, map {n_map:,} (+{n_add:,}), detection {n_detect:,} x 1280"
          + (" [--quick]" if args.quick else ""))

    # ---- one-off JIT warm-up (numba compiles umap/pynndescent once per process)
    warm_X, _ = mixture(5_000, 512, seed=9)
    ids_w = np.array([f"w{i}" for i in range(len(warm_X))])
    _, t_ours_exact = timed(fit_map, warm_X, ids_w, config=MapConfig(n_epochs=20))
    m, t_ours_nnd = timed(fit_map, warm_X, ids_w, config=MapConfig(n_epochs=20, knn_method="nndescent"))
    _, t_transform = timed(m.extend, warm_X[:50] + 0.01, [f"v{i}" for i in range(50)])
    _, t_plain = timed(umap.UMAP(n_epochs=20).fit, warm_X)
    print(f"warm-up (one-off per process): ours exact-kNN fit {t_ours_exact:.1f} s, ours NN-descent fit "
          f"{t_ours_nnd:.1f} s, first transform {t_transform:.1f} s, plain umap-learn {t_plain:.1f} s")

    # ---- UMAP fit at n_big: ours (PCA-50, cosine, fixed seed, 200 epochs) vs plain umap.UMAP().fit
    X_all, _ = mixture(n_big + n_add, 512)
    ids_all = np.array([f"i{i:06d}" for i in range(n_big + n_add)])
    X, ids = X_all[:n_big], ids_all[:n_big]
    ours, t_ours = timed(fit_map, X, ids)
    _, t_par = timed(fit_map, X, ids, config=MapConfig(random_state=None))
    _, t_plain = timed(umap.UMAP().fit, X)
    print(f"UMAP fit {n_big:,} x 512: ours {t_ours:.1f} s (default: PCA-50, knn={ours.projector.knn_method_}, "
          f"random_state=0 so reproducible, layout on 1 thread) | ours with random_state=None {t_par:.1f} s "
          f"(parallel layout) | plain umap.UMAP().fit {t_plain:.1f} s (parallel, not reproducible) | "
          f"ratio plain/ours {t_plain / t_ours:.2f}x, plain/ours-parallel {t_plain / t_par:.2f}x")

    # ---- adding points to a fitted map (earlier coordinates stay bitwise equal)
    for n_base in (n_map, n_big):
        if n_base == n_big:
            base, fit_note = ours, "the map above"
        else:
            base, t_fit = timed(fit_map, X_all[:n_base], ids_all[:n_base])
            fit_note = f"fit {t_fit:.1f} s"
        Xb = X_all[:n_base]
        Xn, idn = X_all[n_base:n_base + n_add], ids_all[n_base:n_base + n_add]
        grown_u, t_u = timed(base.extend, Xn, idn, method="umap")
        grown_k, t_k = timed(base.extend, Xn, idn, method="knn")
        same = np.array_equal(grown_u.coords[:n_base], base.coords) and np.array_equal(grown_k.coords[:n_base],
                                                                                       base.coords)
        q_u = preservation(base.reference, base._input_space(Xn), base.coords, grown_u.coords[n_base:])
        q_k = preservation(base.reference, base._input_space(Xn), base.coords, grown_k.coords[n_base:])
        sub = np.random.default_rng(0).choice(n_base, size=min(n_add, n_base), replace=False)
        q_fit = preservation(np.delete(base.reference, sub, 0), base.reference[sub],
                             np.delete(base.coords, sub, 0), base.coords[sub])
        print(f"add {n_add:,} to a {n_base:,} map ({fit_note}): UMAP transform {t_u:.2f} s, kNN placement "
              f"{t_k:.2f} s; earlier coords bitwise unchanged: {same}; 10-NN preservation umap {q_u:.3f} / "
              f"knn {q_k:.3f} (fitted items themselves: {q_fit:.3f})")
        if n_base == n_map:
            with tempfile.TemporaryDirectory() as tmp:
                path, t_save = timed(grown_u.save, Path(tmp) / "map.npz")
                size_mb = path.stat().st_size / 1e6
                loaded, t_load = timed(LatentMap.load, path)
                restored, t_restore = timed(loaded.restore_projector, Xb, ids_all[:n_base])
            exact = restored.alignment.scale == 1.0 and np.allclose(restored.alignment.rotation, np.eye(2))
            print(f"persistence ({n_map:,}+{n_add:,} map): save {t_save * 1e3:.0f} ms, {size_mb:.1f} MB npz, load "
                  f"{t_load * 1e3:.0f} ms; restore UMAP model by deterministic refit {t_restore:.1f} s, reproduced "
                  f"the fit bitwise: {exact}")

    # ---- sparse-region detection at n_detect x 1280
    Xd, comp_d = mixture(n_detect, 1280, seed=3)
    Xd /= np.linalg.norm(Xd, axis=1, keepdims=True)
    rng = np.random.default_rng(4)
    role = rng.choice(["seed", "pool", "val", "ood"], size=n_detect, p=[0.04, 0.8, 0.1, 0.06])
    missing = np.argsort(np.bincount(comp_d, minlength=comp_d.max() + 1))[-5]  # a mid-sized component
    role[(comp_d == missing) & (role == "seed")] = "pool"  # the dataset misses one component
    items = pd.DataFrame({"id": [f"d{i:05d}" for i in range(n_detect)], "role": role,
                          "label": np.where(role == "pool", None, comp_d.astype(str)), "source": "bench"})
    clusters, t_cluster = timed(cluster_embeddings, Xd, items["id"], config=ClusterConfig())
    regions, t_regions = timed(find_sparse_regions, Xd, items, clusters=clusters)
    _, t_regions2 = timed(find_sparse_regions, Xd, items, clusters=clusters)
    top = regions.regions[0] if regions.regions else None
    hit = top is not None and top.kind == "coverage_gap" and np.mean(
        comp_d[pd.Index(items["id"]).get_indexer(top.member_ids)] == missing) > 0.9
    print(f"sparse regions {n_detect:,} x 1280: detection {t_regions:.2f} s (again {t_regions2:.2f} s), "
          f"{len(regions)} regions; clustering (UMAP-10 + HDBSCAN) {t_cluster:.1f} s, {clusters.n_clusters} "
          f"clusters; planted gap ranked first: {hit}")


if __name__ == "__main__":
    main()
