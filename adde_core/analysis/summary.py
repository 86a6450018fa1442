"""The diversity metrics M_div of the current dataset, each with a one-line meaning, for cards and trends."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from adde_core.analysis import AnalysisResult
from adde_core.metrics import (
    cluster_entropy,
    convex_hull_area,
    knn_coverage,
    max_intracluster_distance,
    min_intercluster_distance,
    mmd_rbf,
    pca_hull_volume,
    subgroup_representation,
    vendi_score_subsampled,
)

#: Vendi grows with n, so iterations are compared on subsamples of this fixed size.
VENDI_SUBSAMPLE = 300


@dataclass(frozen=True)
class MetricValue:
    """One number with what it means, so no number is shown without an explanation."""

    key: str
    label: str
    value: float
    meaning: str
    fmt: str = "{:.3f}"

    @property
    def text(self) -> str:
        return "n/a" if self.value is None or not np.isfinite(self.value) else self.fmt.format(self.value)


@dataclass(frozen=True)
class DiversitySummary:
    """Metric cards plus the tables the Diversity page shows."""

    metrics: list[MetricValue]
    subgroups: pd.DataFrame
    labels: pd.DataFrame
    n_dataset: int


def dataset_mask(items: pd.DataFrame) -> np.ndarray:
    """D_t: labelled items in the seed role (accepted items join it in later iterations)."""
    return ((items["role"] == "seed") & items["label"].notna()).to_numpy()


#: q-independent metric cards by analysis key, in this process (the same cards are also kept on disk
#: next to the stored analysis, so a restarted server shows them at once).
_CARDS: "OrderedDict[str, list[MetricValue]]" = OrderedDict()
_CARDS_LOCK = threading.Lock()
_MAX_CARDS = 8
_CARDS_FILE = "diversity-cards.json"


def _cards_key(result: AnalysisResult, subgroup: str | None, random_state: int) -> str:
    from adde_core.analysis.persist import items_fingerprint

    cols = [c for c in ("id", "role", "label", subgroup) if c and c in result.items]
    h = hashlib.blake2b(digest_size=16)
    for part in (result.fingerprint, items_fingerprint(result.items[cols]), str(subgroup), str(random_state)):
        h.update(part.encode() + b"\0")
    h.update(np.ascontiguousarray(result.clusters.labels, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(result.coords, dtype=np.float32).tobytes())
    return h.hexdigest()


def _load_cards(folder: str | None, key: str) -> list[MetricValue] | None:
    if folder is None:
        return None
    try:
        stored = json.loads((Path(folder) / _CARDS_FILE).read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    return [MetricValue(**m) for m in stored] if isinstance(stored, list) else None


def _save_cards(folder: str | None, key: str, cards: list[MetricValue]) -> None:
    if folder is None:
        return
    path = Path(folder) / _CARDS_FILE
    try:
        kept = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        kept = {}
    kept = {k: v for k, v in kept.items() if k != key}
    kept[key] = [asdict(m) for m in cards]
    kept = dict(list(kept.items())[-_MAX_CARDS:])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(kept))
    os.replace(tmp, path)


def summarize_diversity(X: np.ndarray, result: AnalysisResult, *, q: float = 1.0, subgroup: str | None = None,
                        random_state: int = 0) -> DiversitySummary:
    """Compute M_div for the dataset D_t against the validation and pool sets.

    Every card but Vendi at the user's order ``q`` is kept by analysis key (data, labels, clusters,
    map, subgroup), in memory and next to the stored analysis (``result.store_dir``): kNN coverage
    of a 7,800-item pool and the 1,280-d PCA basis took ~15 s on 2 cores, and moving the q slider or
    reopening the page must not pay that again.

    Parameters
    ----------
    X
        Embeddings aligned with ``result.items`` rows.
    result
        The analysis (map, clusters) of the same embeddings.
    q
        The user's Vendi order, shown next to q = 1.
    subgroup
        Attribute for subgroup representation (uniform target).
    """
    items = result.items
    in_d = dataset_mask(items)
    D = X[in_d]
    n_sub = min(VENDI_SUBSAMPLE, len(D))
    key = _cards_key(result, subgroup, random_state)
    folder = getattr(result, "store_dir", None)
    with _CARDS_LOCK:
        cards = _CARDS.get(key)
    if cards is None:
        cards = _load_cards(folder, key)
        if cards is None:
            cards = _cards(X, result, in_d, subgroup, random_state)
            _save_cards(folder, key, cards)
        with _CARDS_LOCK:
            _CARDS[key] = cards
            while len(_CARDS) > _MAX_CARDS:
                _CARDS.popitem(last=False)
    m = list(cards)
    if len(D) >= 2:
        vq = vendi_score_subsampled(D, q, n_samples=n_sub, random_state=random_state)
        m.insert(1 if m and m[0].key == "vendi_q1" else 0, MetricValue(
            "vendi_q", f"Vendi (q={q:g}, n={n_sub})", vq.mean,
            "Same at your order q: q<1 counts rare kinds of items more, q>1 counts mostly the common ones.",
            "{:.1f}"))
    sub = subgroup_representation(items.loc[in_d, subgroup].fillna("(none)").astype(str)) if (
        subgroup and subgroup in items and in_d.any()) else None
    labels = subgroup_representation(items.loc[in_d, "label"].astype(str)) if in_d.any() else None
    empty = pd.DataFrame(columns=["count", "share", "target_share", "ratio"])
    return DiversitySummary(m, sub.to_frame() if sub is not None else empty,
                            labels.to_frame() if labels is not None else empty, int(in_d.sum()))


def _cards(X: np.ndarray, result: AnalysisResult, in_d: np.ndarray, subgroup: str | None,
           random_state: int) -> list[MetricValue]:
    """Every metric card that does not depend on the Vendi order q."""
    items = result.items
    D, val, pool = X[in_d], X[(items["role"] == "val").to_numpy()], X[(items["role"] == "pool").to_numpy()]
    n_sub = min(VENDI_SUBSAMPLE, len(D))
    m: list[MetricValue] = []
    if len(D) >= 2:
        v1 = vendi_score_subsampled(D, 1.0, n_samples=n_sub, random_state=random_state)
        m.append(MetricValue("vendi_q1", f"Vendi (q=1, n={n_sub})", v1.mean,
                             f"Effective number of distinct items among {n_sub} drawn from the dataset (cosine "
                             "kernel); higher is more diverse.", "{:.1f}"))
    ent = cluster_entropy(result.clusters.labels[in_d], noise="exclude")
    m += [
        MetricValue("cluster_entropy", "Cluster entropy (normalised)", ent.normalized,
                    f"How evenly the dataset spreads over its {ent.n_clusters} occupied clusters: 1 is perfectly "
                    "even, 0 is all in one (HDBSCAN noise excluded)."),
        MetricValue("effective_clusters", "Effective clusters", ent.effective_number,
                    "exp(entropy): the number of equally-sized clusters that would give the same entropy.",
                    "{:.1f}"),
    ]
    if len(D) and len(val):
        m.append(MetricValue("coverage_val", "Coverage of val (k=5)", knn_coverage(D, val, k=5),
                             "Share of validation items with a dataset item inside their 5-NN ball: how much of "
                             "the target distribution the dataset reaches.", "{:.1%}"))
    if len(D) and len(pool):
        m.append(MetricValue("coverage_pool", "Coverage of pool (k=5)", knn_coverage(D, pool, k=5),
                             "Same against the unlabelled pool: low coverage means the pool holds kinds of items "
                             "the dataset lacks.", "{:.1%}"))
    if len(D) >= 2 and len(val) >= 2:
        m.append(MetricValue("mmd_val", "MMD to val (RBF)", mmd_rbf(D, val, random_state=random_state).mmd,
                             "Distance between the dataset and validation distributions (0 = same); lower is "
                             "better."))
    m += [
        MetricValue("hull_area", "Map hull area", convex_hull_area(result.coords[in_d]),
                    "Area of the convex hull of the dataset on the 2-D map: the ADDE 'latent space coverage'.",
                    "{:.1f}"),
        MetricValue("pca_hull", "PCA-3 hull volume", pca_hull_volume(D, n_components=3, reference=X),
                    "Hull volume of the dataset in the first 3 principal axes of all items (fixed basis, so "
                    "iterations compare)."),
        MetricValue("min_inter", "Min inter-cluster distance",
                    min_intercluster_distance(X, result.clusters.labels),
                    "Smallest distance between two cluster centroids (all items): small means clusters blur."),
        MetricValue("max_intra", "Max intra-cluster distance",
                    max_intracluster_distance(X, result.clusters.labels, max_points_per_cluster=500,
                                              random_state=random_state),
                    "Largest cluster diameter (up to 500 points a cluster): large means a loose cluster."),
    ]
    sub = subgroup_representation(items.loc[in_d, subgroup].fillna("(none)").astype(str)) if (
        subgroup and subgroup in items and in_d.any()) else None
    if sub is not None:
        m.append(MetricValue("subgroup_tv", f"{subgroup}: distance from uniform", sub.tv_distance,
                             "Total-variation distance between the dataset's subgroup shares and a uniform target "
                             "(0 = perfectly balanced).", "{:.2f}"))
    return [replace(c, value=None if c.value is None else float(c.value)) for c in m]
