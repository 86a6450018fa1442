"""Choose the clustering defaults by measurement: NMI/ARI against hidden labels on the demo and on sklearn digits.

Hidden labels (the demo pool's oracle labels, the digits' targets) are read here only, to score
clusterings; the app never sees them. Every setting clusters the same clustering space (UMAP-10
after PCA-50, computed once per data set), so the sweep measures the clusterer's settings.

Run:  NUMBA_CACHE_DIR=.cache/numba .venv/bin/python benchmarks/cluster_defaults.py [--project projects/demo]
Prints one row per setting: clusters, noise share, largest cluster share, NMI and ARI over all
items (noise counted as one group) and NMI over the clustered items only, plus seconds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def demo_data(project_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Embeddings, true labels (NaN-free only for seed/pool/val) and roles of the demo project."""
    from adde_core.project import Project

    project = Project.open(project_dir)
    stored = project.embeddings(project.default_model_key())
    items = project.store.items_frame(include_hidden=True).set_index("id").reindex(stored.ids)
    truth = items["oracle_label"].where(items["oracle_label"].notna(), items["label"]).astype(object)
    return stored.vectors, truth.to_numpy(), items["role"].to_numpy()


def digits_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.data.astype(np.float32), d.target.astype(str).astype(object), np.full(len(d.target), "pool")


def settings(n: int) -> list[tuple[str, dict]]:
    """(rule, spec): rules are written in terms of n, so one rule is scored on both sets."""
    out: list[tuple[str, dict]] = []
    for div in (200, 100, 50, 25):
        mcs = max(10, n // div)
        for ms in (None, 5, 15):
            out.append((f"hdbscan mcs=n/{div} ms={ms or 'mcs'}",
                        dict(method="hdbscan", min_cluster_size=mcs, min_samples=ms)))
    for div in (100, 50):
        out.append((f"hdbscan mcs=n/{div} ms=5 leaf", dict(method="hdbscan", min_cluster_size=max(10, n // div),
                                                            min_samples=5, selection="leaf")))
    for k in (10, 15, 20):
        out.append((f"kmeans k={k}", dict(method="kmeans", n_clusters=k)))
    return out


def run_clusterer(Z: np.ndarray, spec: dict) -> np.ndarray:
    if spec["method"] == "kmeans":
        from sklearn.cluster import KMeans

        return KMeans(n_clusters=spec["n_clusters"], n_init=4, random_state=0).fit_predict(Z)
    import hdbscan

    return hdbscan.HDBSCAN(min_cluster_size=spec["min_cluster_size"],
                           min_samples=spec["min_samples"] or spec["min_cluster_size"],
                           cluster_selection_method=spec.get("selection", "eom")).fit_predict(Z)


def evaluate(name: str, X: np.ndarray, truth: np.ndarray, role: np.ndarray) -> list[dict]:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from adde_core.analysis import ClusterConfig, clustering_space

    t = time.perf_counter()
    Z = clustering_space(X, ClusterConfig())
    print(f"\n== {name}: {len(X):,} items, clustering space {Z.shape[1]}-d in {time.perf_counter() - t:.1f} s")
    scored = np.isin(role, ("seed", "pool", "val")) & np.array([v is not None and v == v for v in truth])
    y = truth[scored].astype(str)
    print(f"{'setting':32s} {'k':>4s} {'noise':>6s} {'largest':>8s} {'NMI':>6s} {'ARI':>6s} {'NMI-cl':>7s} {'s':>5s}")
    rows = []
    for label, spec in settings(len(X)):
        t = time.perf_counter()
        labels = run_clusterer(Z, spec)
        secs = time.perf_counter() - t
        lab = labels[scored]
        clustered = lab >= 0
        sizes = np.bincount(labels[labels >= 0]) if (labels >= 0).any() else np.zeros(1)
        row = dict(setting=label, k=int((np.unique(labels) >= 0).sum()), noise=float(np.mean(labels < 0)),
                   largest=float(sizes.max() / len(labels)), nmi=normalized_mutual_info_score(y, lab),
                   ari=adjusted_rand_score(y, lab),
                   nmi_clustered=normalized_mutual_info_score(y[clustered], lab[clustered]) if clustered.any()
                   else float("nan"), seconds=secs)
        rows.append(row)
        print(f"{label:32s} {row['k']:4d} {row['noise']:6.1%} {row['largest']:8.1%} {row['nmi']:6.3f} "
              f"{row['ari']:6.3f} {row['nmi_clustered']:7.3f} {secs:5.1f}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", default="projects/demo")
    args = parser.parse_args()
    results = {"demo": evaluate("Animal-MNIST demo (EfficientNet-Lite0)", *demo_data(Path(args.project))),
               "digits": evaluate("sklearn digits (pixels)", *digits_data())}
    print("\nBy mean ARI over both sets:")
    by_rule: dict[str, list[tuple[float, float]]] = {}
    for rows in results.values():
        for row in rows:
            by_rule.setdefault(row["setting"], []).append((row["ari"], row["nmi"]))
    for rule, vals in sorted(by_rule.items(), key=lambda kv: -np.mean([a for a, _ in kv[1]])):
        print(f"  {rule:32s} mean ARI {np.mean([a for a, _ in vals]):.3f}  mean NMI {np.mean([m for _, m in vals]):.3f}"
              f"  (ARI per set: {', '.join(f'{a:.3f}' for a, _ in vals)})")


if __name__ == "__main__":
    main()
