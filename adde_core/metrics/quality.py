"""Quality metrics recorded each iteration: accuracy, macro-F1, AUC, OOD robustness and label consistency.

scikit-learn and cleanlab are imported inside the functions that use them, so importing this module
stays as light as the rest of :mod:`adde_core.metrics`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from adde_core.errors import AddeError
from adde_core.metrics._validation import as_labels, check_positive_int

__all__ = [
    "LabelConsistency",
    "classification_quality",
    "cross_val_pred_probs",
    "label_consistency",
    "robustness",
]

#: Metrics compared by :func:`robustness` when present in both inputs.
_ROBUSTNESS_KEYS = ("accuracy", "macro_f1", "auc")
#: Threads that fit cross-validation folds at once (the fits are small; more threads only contend for the GIL).
CV_THREADS = 2


def _as_str_labels(values: ArrayLike, name: str, *, n: int | None = None) -> np.ndarray:
    # Labels are class names throughout ADDE; comparing them as str avoids "1" != 1 surprises.
    return as_labels(values, name, n=n).astype(str)


def _check_proba(proba: ArrayLike, n: int, k: int, name: str = "proba") -> np.ndarray:
    P = np.asarray(proba, dtype=np.float64)
    if P.ndim != 2 or P.shape != (n, k):
        raise AddeError(f"{name} must have shape ({n}, {k}) = (items, classes), got {P.shape}")
    if not np.isfinite(P).all() or (P < 0).any():
        raise AddeError(f"{name} must hold finite probabilities >= 0")
    if not np.allclose(P.sum(axis=1), 1.0, atol=1e-3):
        bad = int(np.flatnonzero(~np.isclose(P.sum(axis=1), 1.0, atol=1e-3))[0])
        raise AddeError(f"{name} rows must sum to 1 (row {bad} sums to {P[bad].sum():.4f}); pass softmax outputs")
    return P


def classification_quality(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    proba: ArrayLike | None = None,
    classes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Accuracy, macro-F1 and one-vs-rest macro AUC of a classifier on one evaluation set.

    What these numbers mean: ``accuracy`` is the share of items predicted right; ``macro_f1`` averages
    the per-class F1 so a rare class weighs as much as a common one; ``auc`` (one-vs-rest, macro) says how
    well the probabilities rank each class's items above the others, independently of the threshold.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        True and predicted class names (compared as strings).
    proba : array-like of shape (n, k), optional
        Predicted class probabilities; rows sum to 1. Without it ``auc`` is NaN.
    classes : sequence of str, optional
        Class names of the ``proba`` columns, in order. Default: the sorted classes of ``y_true``
        (which then must have exactly k entries).

    Returns
    -------
    dict
        ``accuracy``, ``macro_f1`` (scikit-learn, macro over the classes present in ``y_true`` or
        ``y_pred``; a class never predicted scores F1 = 0), ``auc`` (NaN when undefined), ``auc_reason``
        (None, or why ``auc`` is NaN: no probabilities, fewer than two classes, or a class of ``classes``
        absent from ``y_true`` so its one-vs-rest AUC has no positives) and ``n_items``.

    Raises
    ------
    AddeError
        On a length or shape mismatch, probabilities that are not probabilities, or a true label that
        is not among ``classes``.
    """
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    yt = _as_str_labels(y_true, "y_true")
    yp = _as_str_labels(y_pred, "y_pred", n=yt.shape[0])
    out: dict[str, Any] = {
        "accuracy": float(accuracy_score(yt, yp)),
        "macro_f1": float(f1_score(yt, yp, average="macro", zero_division=0)),
        "auc": math.nan,
        "auc_reason": None,
        "n_items": int(yt.shape[0]),
    }
    if proba is None:
        out["auc_reason"] = "no predicted probabilities given"
        return out
    cls = np.unique(yt) if classes is None else np.asarray([str(c) for c in classes])
    if len(set(cls.tolist())) != cls.shape[0]:
        raise AddeError(f"classes must be unique, got {cls.tolist()}")
    P = _check_proba(proba, yt.shape[0], cls.shape[0])
    unknown = sorted(set(yt.tolist()) - set(cls.tolist()))
    if unknown:
        raise AddeError(f"y_true holds labels {unknown[:5]} that are not among classes {cls.tolist()[:10]}")
    absent = [c for c in cls.tolist() if c not in set(yt.tolist())]
    if cls.shape[0] < 2:
        out["auc_reason"] = "fewer than two classes"
    elif absent:
        out["auc_reason"] = f"class(es) {absent[:5]} absent from y_true, so their one-vs-rest AUC is undefined"
    elif cls.shape[0] == 2:
        # Binary: the OvR AUC of either class equals the AUC of p(classes[1]), which is what sklearn
        # needs here (it rejects a 2-column score matrix for a binary target).
        out["auc"] = float(roc_auc_score(yt == cls[1], P[:, 1]))
    else:
        order = np.argsort(cls)  # sklearn requires labels in sorted order; permute the columns to match
        out["auc"] = float(roc_auc_score(yt, P[:, order], multi_class="ovr", average="macro", labels=cls[order]))
    return out


def robustness(val_metrics: Mapping[str, float], ood_metrics: Mapping[str, float]) -> dict[str, float]:
    """Drop in quality from the validation set to the out-of-distribution set.

    What these numbers mean: ``accuracy_drop`` = val accuracy − OOD accuracy, so 0 means the model holds
    up off-distribution and a larger value means it degrades more (negative: OOD is easier).

    Parameters
    ----------
    val_metrics, ood_metrics : mapping
        Outputs of :func:`classification_quality` (or any mapping with ``accuracy`` and ``macro_f1``).

    Returns
    -------
    dict
        ``accuracy_drop`` and ``macro_f1_drop``; ``auc_drop`` too when both inputs carry ``auc``
        (NaN if either AUC is NaN).
    """
    out: dict[str, float] = {}
    for key in _ROBUSTNESS_KEYS:
        present = key in val_metrics and key in ood_metrics
        if not present:
            if key == "auc":
                continue
            raise AddeError(f"robustness needs '{key}' in both the validation and the OOD metrics")
        out[f"{key}_drop"] = float(val_metrics[key]) - float(ood_metrics[key])
    return out


def _default_model() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, class_weight="balanced"))


def _aligned_proba(model: Any, X: np.ndarray, train_classes: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """predict_proba with columns reordered to ``classes`` (a class unseen in training gets 0)."""
    P = np.asarray(model.predict_proba(X), dtype=np.float64)
    # sklearn-like models expose classes_; otherwise assume the sklearn convention (sorted fit labels).
    model_classes = np.asarray(getattr(model, "classes_", train_classes)).astype(str)
    if P.shape != (X.shape[0], model_classes.shape[0]):
        raise AddeError(
            f"make_model's predict_proba returned shape {P.shape}, expected ({X.shape[0]}, {model_classes.shape[0]})"
        )
    out = np.zeros((X.shape[0], classes.shape[0]))
    out[:, np.searchsorted(classes, model_classes)] = P
    return out


def cross_val_pred_probs(
    X: ArrayLike,
    y: ArrayLike,
    *,
    n_folds: int = 5,
    random_state: int | None = 0,
    make_model: Callable[[], Any] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold predicted probabilities, the input :func:`label_consistency` needs.

    Each item's probabilities come from a model that did not see it, so a mislabelled item is not
    simply memorised back to its wrong label.

    Parameters
    ----------
    X : array-like of shape (n, d)
        Features (e.g. frozen-backbone embeddings).
    y : array-like of shape (n,)
        Class names.
    n_folds : int
        Wanted number of folds. The split is stratified with ``min(n_folds, smallest class count)``
        folds (at least 2), counting only classes with two or more items.
    random_state : int or None
        Seeds the fold shuffle.
    make_model : callable, optional
        Zero-argument factory returning an unfitted object with ``fit(X, y)`` and ``predict_proba(X)``
        (columns in ``classes_`` order if it has that attribute, else sorted fit labels), e.g.
        ``lambda: LinearHead(random_state=0)``. Default: scikit-learn
        ``StandardScaler`` + ``LogisticRegression(max_iter=1000, class_weight="balanced")``.

    Returns
    -------
    pred_probs : numpy.ndarray of shape (n, k)
        Out-of-fold probabilities; rows sum to 1.
    classes : numpy.ndarray of str, shape (k,)
        Sorted class names, the column order of ``pred_probs``.

    Notes
    -----
    A class with a single item cannot be held out and still be learnt, so its item stays in every
    training split and gets the average of the fold models' *in-sample* probabilities. Its label is
    therefore judged more leniently than the others'.
    """
    from sklearn.model_selection import StratifiedKFold

    n_folds = check_positive_int(n_folds, "n_folds", minimum=2)
    Xa = np.asarray(X, dtype=np.float64)
    if Xa.ndim != 2:
        raise AddeError(f"X must be 2-D (items, features), got shape {Xa.shape}")
    ya = _as_str_labels(y, "y", n=Xa.shape[0])
    classes, codes, counts = np.unique(ya, return_inverse=True, return_counts=True)
    if classes.shape[0] < 2:
        raise AddeError(f"cross_val_pred_probs needs at least two classes, got {classes.tolist()}; label more items")
    splittable = counts[codes] >= 2
    if not splittable.any():
        raise AddeError("every class has a single item, so no out-of-fold probability exists; label more items")
    n_splits = int(min(n_folds, counts[counts >= 2].min()))
    make = make_model or _default_model
    idx_split = np.flatnonzero(splittable)
    idx_single = np.flatnonzero(~splittable)
    out = np.zeros((Xa.shape[0], classes.shape[0]))
    skf = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    splits = [(np.concatenate([idx_split[tr], idx_single]), idx_split[te])
              for tr, te in skf.split(idx_split, ya[idx_split])]

    def fold(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        train_classes = np.unique(ya[train])
        model = make()
        model.fit(Xa[train], ya[train])
        single = _aligned_proba(model, Xa[idx_single], train_classes, classes) if idx_single.size else None
        return _aligned_proba(model, Xa[test], train_classes, classes), single

    # The fold fits are independent: two threads overlap one fit's BLAS calls with another's Python
    # (1.5 s -> 1.1 s for a demo D_t's folds on 2 cores). Results are combined in fold order, so
    # they are the same as one after the other.
    with ThreadPoolExecutor(max_workers=min(len(splits), CV_THREADS)) as pool:
        results = list(pool.map(lambda s: fold(*s), splits))
    for (_, test), (proba, single) in zip(splits, results):
        out[test] = proba
        if single is not None:
            out[idx_single] += single / n_splits
    out /= out.sum(axis=1, keepdims=True)
    return out, classes


@dataclass(frozen=True)
class LabelConsistency:
    """How far the data supports its own labels (cleanlab confident learning plus reviewer flags).

    Attributes
    ----------
    consistency : float
        1 − n_inconsistent / n_items: the share of items whose label the data supports.
    classes : tuple of str
        Class names, the column order of the pred_probs used.
    issue_mask : numpy.ndarray of bool, shape (n,)
        Items cleanlab flags as likely mislabelled.
    inconsistent_mask : numpy.ndarray of bool, shape (n,)
        ``issue_mask`` or flagged by the caller (e.g. reviewers marked the item ambiguous).
    class_counts, class_issues : numpy.ndarray of int, shape (k,)
        Items per given label and how many of them are inconsistent (aligned with ``classes``).
    n_items, n_label_issues, n_extra, n_inconsistent : int
        Totals: items, cleanlab issues, extra flags, and their union.
    filter_by : str
        The cleanlab filter that produced ``issue_mask``.
    """

    consistency: float
    classes: tuple[str, ...]
    issue_mask: np.ndarray
    inconsistent_mask: np.ndarray
    class_counts: np.ndarray
    class_issues: np.ndarray
    n_items: int
    n_label_issues: int
    n_extra: int
    n_inconsistent: int
    filter_by: str

    def __post_init__(self) -> None:
        n = self.n_items
        if self.issue_mask.shape != (n,) or self.inconsistent_mask.shape != (n,):
            raise AddeError("issue_mask and inconsistent_mask must have one entry per item")
        if self.class_counts.shape != (len(self.classes),) or self.class_issues.shape != (len(self.classes),):
            raise AddeError("class_counts and class_issues must have one entry per class")
        if not 0.0 <= self.consistency <= 1.0:
            raise AddeError(f"consistency must lie in [0, 1], got {self.consistency}")

    def as_dict(self) -> dict[str, float | int | str]:
        """Flat JSON-serialisable summary (per-class counts as ``label_issues.<class>``)."""
        out: dict[str, float | int | str] = {
            "label_consistency": float(self.consistency),
            "n_items": int(self.n_items),
            "n_label_issues": int(self.n_label_issues),
            "n_extra_inconsistent": int(self.n_extra),
            "n_inconsistent": int(self.n_inconsistent),
            "filter_by": self.filter_by,
        }
        for c, k in zip(self.classes, self.class_issues):
            out[f"label_issues.{c}"] = int(k)
        return out


def label_consistency(
    labels: ArrayLike,
    pred_probs: ArrayLike,
    classes: Sequence[str],
    *,
    extra_inconsistent: ArrayLike | None = None,
    filter_by: str = "prune_by_noise_rate",
    n_jobs: int | None = 1,
) -> LabelConsistency:
    """Share of items whose label the data supports, by cleanlab's confident learning.

    What this number means: 0.95 says that for 95 % of the items the (out-of-sample) model agrees well
    enough with the given label; the other 5 % are likely mislabelled, or were flagged by reviewers.

    Parameters
    ----------
    labels : array-like of shape (n,)
        Given class names.
    pred_probs : array-like of shape (n, k)
        Out-of-sample predicted probabilities, e.g. from :func:`cross_val_pred_probs`. In-sample
        probabilities would hide issues because the model has memorised the labels.
    classes : sequence of str
        Class names of the ``pred_probs`` columns.
    extra_inconsistent : array-like of bool, shape (n,), optional
        Items to count as inconsistent regardless of cleanlab, e.g. those reviewers flagged ambiguous.
    filter_by : str
        cleanlab's ``find_label_issues`` filter. The default ``"prune_by_noise_rate"`` (cleanlab's own
        default) removes, per given class, as many items as the estimated noise rate says, choosing
        those with the largest margin for another class.
    n_jobs : int or None
        Passed to cleanlab; 1 avoids spawning processes, which costs more than it saves below ~10⁵ items.

    Returns
    -------
    LabelConsistency
    """
    from cleanlab.filter import find_label_issues

    lab = _as_str_labels(labels, "labels")
    n = lab.shape[0]
    cls = np.asarray([str(c) for c in classes])
    if len(set(cls.tolist())) != cls.shape[0] or cls.shape[0] < 2:
        raise AddeError(f"classes must hold at least two unique names, got {cls.tolist()}")
    P = _check_proba(pred_probs, n, cls.shape[0], "pred_probs")
    index = {c: i for i, c in enumerate(cls.tolist())}
    unknown = sorted(set(lab.tolist()) - set(index))
    if unknown:
        raise AddeError(f"labels holds {unknown[:5]} that are not among classes {cls.tolist()[:10]}")
    codes = np.fromiter((index[v] for v in lab.tolist()), dtype=np.int64, count=n)
    with warnings.catch_warnings():
        # Fires for every rare class, which is ADDE's normal case; class_issues reports per class instead.
        warnings.filterwarnings("ignore", message="May not flag all label issues")
        issues = np.asarray(find_label_issues(codes, P, filter_by=filter_by, n_jobs=n_jobs), dtype=bool)
    if extra_inconsistent is None:
        extra = np.zeros(n, dtype=bool)
    else:
        extra = np.asarray(extra_inconsistent)
        if extra.shape != (n,) or extra.dtype != bool:
            raise AddeError(
                f"extra_inconsistent must be a boolean mask of shape ({n},), got {extra.dtype} {extra.shape}"
            )
    inconsistent = issues | extra
    return LabelConsistency(
        consistency=1.0 - float(inconsistent.sum()) / n,
        classes=tuple(cls.tolist()),
        issue_mask=issues,
        inconsistent_mask=inconsistent,
        class_counts=np.bincount(codes, minlength=cls.shape[0]),
        class_issues=np.bincount(codes[inconsistent], minlength=cls.shape[0]),
        n_items=int(n),
        n_label_issues=int(issues.sum()),
        n_extra=int(extra.sum()),
        n_inconsistent=int(inconsistent.sum()),
        filter_by=filter_by,
    )
