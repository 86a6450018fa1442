"""One turn of the ADDE loop on a project: measure D_t, fold D_valid in, retrain, and record the iteration row."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import select, update

from adde_core.errors import AddeError
from adde_core.review.decisions import decision_states, valid_items
from adde_core.store.models import Item, Iteration, utcnow

if TYPE_CHECKING:
    from adde_core.project import Project

#: Vendi is compared across iterations on fixed-size subsamples (it grows with n).
VENDI_SUBSAMPLE = 300
#: Cluster entropy of D_t is measured over this many reference clusters, fitted once on val ∪ pool,
#: so the same clusters are used at every iteration and the trend means something.
REFERENCE_CLUSTERS = 20


@dataclass(frozen=True)
class IterationSummary:
    """What :func:`next_iteration` did."""

    index: int
    added: dict[str, int]
    metrics: dict[str, Any]
    effects: list[str] = field(default_factory=list)
    stop_reason: str | None = None


def _reference_clusters(project: "Project", model_key: str, X: np.ndarray, roles: np.ndarray) -> Any:
    from sklearn.cluster import KMeans

    key = ("reference-clusters", model_key, project.embeddings(model_key).fingerprint)
    if key not in project._indexes:
        target = X[np.isin(roles, ("val", "pool"))]
        project._indexes[key] = KMeans(n_clusters=min(REFERENCE_CLUSTERS, len(target)), n_init=3,
                                       random_state=0).fit(target)
    return project._indexes[key]


def evaluate(project: "Project", model_key: str | None = None, *, q: float = 2.0) -> dict[str, Any]:
    """All metrics of the current D_t and its head, as a flat JSON-serialisable dict.

    Quality (accuracy, macro-F1, AUC on val, on OOD when present, and the drop), fairness
    over the subgroup attribute on val (per-group accuracy, worst group, gap,
    equalized-odds and demographic-parity differences, via fairlearn), bias amplification
    on val, label consistency of D_t (cleanlab on out-of-fold probabilities; items flagged
    *ambiguous* count as inconsistent), diversity (Vendi at q = 1 and ``q`` on a fixed
    300-item subsample, cluster entropy over fixed reference clusters, kNN coverage of val),
    representation of each subgroup in D_t, and the labels spent so far.
    """
    from adde_core.metrics import cluster_entropy, knn_coverage, vendi_score_subsampled
    from adde_core.metrics.fairness import bias_amplification, group_fairness
    from adde_core.metrics.quality import (
        classification_quality,
        cross_val_pred_probs,
        label_consistency,
        robustness,
    )

    model_key = model_key or project.default_model_key()
    stored = project.embeddings(model_key)
    items = project.items().set_index("id").reindex(stored.ids)
    X, roles = stored.vectors, items["role"].to_numpy()
    in_dt = np.asarray((items["role"] == "seed") & items["label"].notna())
    if in_dt.sum() < 2:
        raise AddeError("D_t has fewer than two labelled items; label some seed items first")
    head = project.head(model_key)
    out: dict[str, Any] = {"iteration": project.current_iteration, "n_dataset": int(in_dt.sum()),
                           "model_key": model_key}
    for role in ("val", "ood"):
        mask = np.asarray((items["role"] == role) & items["label"].notna())
        if mask.any():
            proba = head.predict_proba(X[mask])
            pred = head.classes_[proba.argmax(axis=1)]
            quality = classification_quality(items["label"][mask].to_numpy(), pred, proba, list(head.classes_))
            out.update({f"{role}_{k}": v for k, v in quality.items() if isinstance(v, (int, float)) or v is None})
            if role == "val":
                val_pred, val_mask = pred, mask
    if "val_accuracy" in out and "ood_accuracy" in out:
        out.update({f"robustness_{k}": v for k, v in robustness(
            {"accuracy": out["val_accuracy"], "macro_f1": out["val_macro_f1"]},
            {"accuracy": out["ood_accuracy"], "macro_f1": out["ood_macro_f1"]}).items()})
    subgroup = project.subgroup_attribute
    if "val_accuracy" in out:
        y_val = items["label"][val_mask].to_numpy()
        if subgroup and subgroup in items:
            groups = items[subgroup][val_mask].fillna("(none)").astype(str).to_numpy()
            out.update({f"fair_{k}": v for k, v in group_fairness(y_val, val_pred, groups).as_dict().items()})
        out.update(bias_amplification(y_val, val_pred).as_dict())
    # Label consistency: is each label of D_t supported by the data (out-of-fold head)?
    y_dt = items["label"][in_dt].astype(str).to_numpy()
    states = decision_states(project.store).set_index("item_id")
    flags = states["flags"].reindex(stored.ids[in_dt])
    ambiguous = np.array([isinstance(f, list) and "ambiguous" in f for f in flags])
    probs, classes = cross_val_pred_probs(X[in_dt], y_dt, random_state=0)
    consistency = label_consistency(y_dt, probs, list(classes), extra_inconsistent=ambiguous)
    out.update(consistency.as_dict())
    # Diversity of D_t.
    out["vendi_q1"] = float(vendi_score_subsampled(X[in_dt], 1.0, n_samples=VENDI_SUBSAMPLE, random_state=0).mean)
    out["vendi_q"] = float(vendi_score_subsampled(X[in_dt], q, n_samples=VENDI_SUBSAMPLE, random_state=0).mean)
    out["vendi_order"] = q
    reference = _reference_clusters(project, model_key, X, roles)
    entropy = cluster_entropy(reference.predict(X[in_dt]))
    out["cluster_entropy"] = float(entropy.normalized)
    out["effective_clusters"] = float(entropy.effective_number)
    if (roles == "val").any():
        out["coverage_val"] = float(knn_coverage(X[in_dt], X[roles == "val"], k=5))
    if subgroup and subgroup in items:
        shares = items[subgroup][in_dt].fillna("(none)").astype(str).value_counts(normalize=True)
        out.update({f"share_{subgroup}_{k}": float(v) for k, v in shares.items()})
    by_source = items["source"][in_dt].value_counts()
    out.update({f"dataset_{k}": int(v) for k, v in by_source.items()})
    # Labels spent building D_t: every item decided in an earlier iteration (one review = one label).
    spent = states[states["action"].notna() & (states["iteration"] < project.current_iteration)] if len(states) else states
    out["labels_spent"] = int(len(spent))
    return out


def record_metrics(project: "Project", model_key: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """Evaluate D_t and store the numbers in the current iteration's row (replacing earlier ones)."""
    metrics = evaluate(project, model_key, **kwargs)
    with project.store.transaction() as s:
        row = s.get(Iteration, project.current_iteration)
        row.metrics = {**(row.metrics or {}), **metrics}
    return metrics


def next_iteration(project: "Project", *, model_key: str | None = None, config: dict[str, Any] | None = None,
                   effects: list[str] | None = None) -> IterationSummary:
    """Close iteration t and open t + 1: D_{t+1} = D_t ∪ D_valid, retrain the head, record every metric.

    Accepted and relabelled items of iteration t join the dataset (role ``seed``) with
    the label the reviewer gave and ``iteration_added = t + 1``; their source (pool or
    synthetic) is kept for provenance. This happens in one transaction, so a crash
    leaves either the old or the new iteration, never half of one. The head is refitted
    on D_{t+1} (the project's head cache is keyed by the labelled items), and the map is
    extended the next time it is drawn (earlier points keep their coordinates).

    Parameters
    ----------
    config
        Stored with the new iteration row (weights, strategy, adaptive state, ...).
    effects
        One-line explanations (e.g. how flags changed the weights) stored with the row.
    """
    t = project.current_iteration
    with project.store.transaction() as s:
        current = s.get(Iteration, t)
        has_metrics = bool(current.metrics)
    if not has_metrics:
        record_metrics(project, model_key)
    valid = valid_items(project.store, iteration=t)
    items = project.store.items_frame().set_index("id")
    added = items["source"].reindex(valid["item_id"]).value_counts().to_dict()
    with project.store.transaction() as s:
        for item_id, label in zip(valid["item_id"], valid["label"]):
            s.execute(update(Item).where(Item.id == item_id).values(role="seed", label=label, iteration_added=t + 1))
        s.get(Iteration, t).finished_at = utcnow()
        s.add(Iteration(index=t + 1, started_at=utcnow(), config=config or {},
                        metrics={"added": {str(k): int(v) for k, v in added.items()}, "effects": effects or []}))
    metrics = record_metrics(project, model_key)
    return IterationSummary(t + 1, {str(k): int(v) for k, v in added.items()}, metrics, effects or [])


def metrics_history(project: "Project") -> pd.DataFrame:
    """One row per iteration with every recorded metric (NaN where an iteration lacks one)."""
    with project.store.transaction() as s:
        rows = list(s.scalars(select(Iteration).order_by(Iteration.index)))
        data = [{"iteration": r.index, "started_at": r.started_at, "finished_at": r.finished_at,
                 **{k: v for k, v in (r.metrics or {}).items() if not isinstance(v, (dict, list))},
                 **{f"added_{k}": v for k, v in (r.metrics or {}).get("added", {}).items()},
                 "effects": (r.metrics or {}).get("effects", []), "config": r.config or {}} for r in rows]
    return pd.DataFrame(data)
