"""Fairness metrics recorded each iteration: per-group accuracy, equalized odds, demographic parity, bias amplification.

The group metrics follow fairlearn's definitions (``MetricFrame``, ``equalized_odds_difference``,
``demographic_parity_difference``), so they are the ones users can look up. They are computed here from
per-group confusion counts in numpy, because fairlearn's pandas group-bys cost ~2 s per evaluation (20
MetricFrames for 10 classes), more than the rest of an iteration; tests pin the numbers to fairlearn's.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from adde_core.errors import AddeError
from adde_core.metrics._validation import as_labels
from adde_core.metrics.representation import subgroup_representation

if TYPE_CHECKING:  # pandas is imported lazily
    import pandas as pd

__all__ = [
    "BiasAmplification",
    "FairnessReport",
    "bias_amplification",
    "group_fairness",
    "representation",
]


def _json_number(value: float) -> float | None:
    """NaN/inf become None so that ``json.dumps(..., allow_nan=False)`` accepts the result."""
    return float(value) if math.isfinite(value) else None


def _as_python(v: object) -> Hashable:
    return v.item() if isinstance(v, np.generic) else v


def _labels_pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    yt = as_labels(y_true, "y_true").astype(str)
    yp = as_labels(y_pred, "y_pred", n=yt.shape[0]).astype(str)
    return yt, yp


def _nanmax(values: np.ndarray) -> tuple[float, int | None]:
    """Largest finite value and its index, or (NaN, None) when none is finite."""
    finite = np.isfinite(values)
    if not finite.any():
        return math.nan, None
    i = int(np.flatnonzero(finite)[np.argmax(values[finite])])
    return float(values[i]), i


@dataclass(frozen=True)
class FairnessReport:
    """Per-group accuracy and group-fairness gaps of one set of predictions.

    Attributes
    ----------
    groups : tuple
        Group labels, sorted (the order of the per-group arrays).
    group_counts : numpy.ndarray of int
        Items per group.
    group_accuracy : numpy.ndarray of float
        Accuracy within each group (fairlearn ``MetricFrame.by_group``).
    overall_accuracy : float
        Accuracy over all items.
    worst_group : Hashable
        The group with the lowest accuracy.
    worst_group_accuracy : float
        Its accuracy.
    accuracy_gap : float
        Largest minus smallest group accuracy (``MetricFrame.difference()``).
    classes : tuple of str
        Classes in ``y_true`` or ``y_pred``, sorted (the order of the per-class arrays).
    eo_by_class, dp_by_class : numpy.ndarray of float
        One-vs-rest equalized-odds and demographic-parity differences per class (NaN where undefined).
    equalized_odds_difference, demographic_parity_difference : float
        Their maxima over classes (NaN if no class is defined).
    worst_eo_class, worst_dp_class : str or None
        The classes attaining those maxima.
    """

    groups: tuple[Hashable, ...]
    group_counts: np.ndarray
    group_accuracy: np.ndarray
    overall_accuracy: float
    worst_group: Hashable
    worst_group_accuracy: float
    accuracy_gap: float
    classes: tuple[str, ...]
    eo_by_class: np.ndarray
    dp_by_class: np.ndarray
    equalized_odds_difference: float
    demographic_parity_difference: float
    worst_eo_class: str | None
    worst_dp_class: str | None

    def __post_init__(self) -> None:
        g, k = len(self.groups), len(self.classes)
        if self.group_counts.shape != (g,) or self.group_accuracy.shape != (g,):
            raise AddeError("group_counts and group_accuracy must have one entry per group")
        if self.eo_by_class.shape != (k,) or self.dp_by_class.shape != (k,):
            raise AddeError("eo_by_class and dp_by_class must have one entry per class")
        if not 0.0 <= self.accuracy_gap <= 1.0:
            raise AddeError(f"accuracy_gap must lie in [0, 1], got {self.accuracy_gap}")

    def to_frame(self) -> pd.DataFrame:
        """Per-group table indexed by group with columns count and accuracy."""
        import pandas as pd

        return pd.DataFrame(
            {"count": self.group_counts, "accuracy": self.group_accuracy},
            index=pd.Index(list(self.groups), name="group"),
        )

    def as_dict(self) -> dict[str, float | int | str | None]:
        """Flat JSON-serialisable summary; undefined values are None.

        Keys: ``worst_group_accuracy``, ``group_accuracy_gap``, ``equalized_odds_difference``,
        ``demographic_parity_difference``, ``worst_group``, then ``group_accuracy.<group>``,
        ``group_count.<group>``, ``eo_difference.<class>`` and ``dp_difference.<class>``.
        """
        out: dict[str, float | int | str | None] = {
            "worst_group_accuracy": _json_number(self.worst_group_accuracy),
            "group_accuracy_gap": _json_number(self.accuracy_gap),
            "equalized_odds_difference": _json_number(self.equalized_odds_difference),
            "demographic_parity_difference": _json_number(self.demographic_parity_difference),
            "worst_group": str(self.worst_group),
        }
        for g, n, a in zip(self.groups, self.group_counts, self.group_accuracy):
            out[f"group_accuracy.{g}"] = _json_number(a)
            out[f"group_count.{g}"] = int(n)
        for c, eo, dp in zip(self.classes, self.eo_by_class, self.dp_by_class):
            out[f"eo_difference.{c}"] = _json_number(eo)
            out[f"dp_difference.{c}"] = _json_number(dp)
        return out


def _spread(values: np.ndarray) -> float:
    """fairlearn's ``difference(method="between_groups")``: largest minus smallest group value."""
    return float(values.max() - values.min())


def _one_vs_rest_eo(tp: np.ndarray, pos: np.ndarray, fp: np.ndarray, neg: np.ndarray) -> float:
    """fairlearn's equalized-odds difference of one binary task from per-group counts, skipping undefined rates.

    ``tp``, ``pos``, ``fp``, ``neg`` are per group: true positives, positives, false positives,
    negatives. fairlearn reports TPR = 0 for a group with no positives (and FPR = 0 for one with no
    negatives), which for a rare class would show a large gap for a perfect classifier. So when some
    group lacks positives or negatives, the TPR gap is taken over the groups that have positives and
    the FPR gap over those with negatives; a rate defined in fewer than two groups is left out.
    """
    has_pos, has_neg = pos > 0, neg > 0
    # Division by the group's own count, as sklearn's confusion_matrix(normalize="true") does.
    tpr = np.divide(tp, pos, out=np.zeros(len(pos)), where=has_pos)
    fpr = np.divide(fp, neg, out=np.zeros(len(neg)), where=has_neg)
    if has_pos.all() and has_neg.all():
        return max(_spread(tpr), _spread(fpr))
    parts = [_spread(rate[defined]) for defined, rate in ((has_pos, tpr), (has_neg, fpr)) if defined.sum() >= 2]
    return max(parts) if parts else math.nan


def group_fairness(y_true: ArrayLike, y_pred: ArrayLike, groups: ArrayLike) -> FairnessReport:
    """Per-group accuracy, worst group, and equalized-odds / demographic-parity differences.

    What these numbers mean: ``worst_group_accuracy`` is the accuracy of the group served worst;
    ``accuracy_gap`` how far it trails the best one. ``demographic_parity_difference`` is the largest gap
    between groups in how often a class is predicted; ``equalized_odds_difference`` the largest gap in
    true- or false-positive rate for a class. 0 is perfectly even; 1 is as uneven as possible.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        True and predicted class names (compared as strings).
    groups : array-like of shape (n,)
        Sensitive attribute (group label) per item.

    Returns
    -------
    FairnessReport

    Notes
    -----
    fairlearn defines equalized odds and demographic parity for binary targets. For k classes each is
    computed one-vs-rest per class c as fairlearn would (``y_true == c``, ``y_pred == c``,
    ``sensitive_features=groups``) and the maximum over classes is reported, so it reads as "the worst
    class's gap"; per-class values are kept in ``eo_by_class`` / ``dp_by_class``. For two classes both
    one-vs-rest tasks give fairlearn's binary value, so the maximum equals it. Classes are those in
    ``y_true`` or ``y_pred``. See :func:`_one_vs_rest_eo` for groups that lack positives of a class.
    """
    yt, yp = _labels_pair(y_true, y_pred)
    g = as_labels(groups, "groups", n=yt.shape[0])
    names, gi = np.unique(g, return_inverse=True)
    classes = np.unique(np.concatenate([yt, yp]))
    ti, pi = np.searchsorted(classes, yt), np.searchsorted(classes, yp)
    n_groups, k = names.shape[0], classes.shape[0]
    counts = np.bincount(gi, minlength=n_groups)
    correct = yt == yp
    # Integer counts divided once, so every rate is the same float fairlearn's sklearn metrics compute.
    acc = np.bincount(gi, weights=correct, minlength=n_groups) / counts
    shape = (n_groups, k)
    true_c, pred_c, hit_c = np.zeros(shape, np.int64), np.zeros(shape, np.int64), np.zeros(shape, np.int64)
    np.add.at(true_c, (gi, ti), 1)
    np.add.at(pred_c, (gi, pi), 1)
    np.add.at(hit_c, (gi[correct], ti[correct]), 1)
    eo = np.empty(k)
    dp = np.empty(k)
    for c in range(k):
        pos, tp = true_c[:, c], hit_c[:, c]
        eo[c] = _one_vs_rest_eo(tp, pos, pred_c[:, c] - tp, counts - pos)
        dp[c] = _spread(pred_c[:, c] / counts)
    worst = int(np.argmin(acc))
    eo_max, eo_i = _nanmax(eo)
    dp_max, dp_i = _nanmax(dp)
    return FairnessReport(
        groups=tuple(_as_python(v) for v in names),
        group_counts=counts.astype(np.int64),
        group_accuracy=acc,
        overall_accuracy=float(correct.mean()),
        worst_group=_as_python(names[worst]),
        worst_group_accuracy=float(acc[worst]),
        accuracy_gap=_spread(acc),
        classes=tuple(classes.tolist()),
        eo_by_class=eo,
        dp_by_class=dp,
        equalized_odds_difference=eo_max,
        demographic_parity_difference=dp_max,
        worst_eo_class=None if eo_i is None else str(classes[eo_i]),
        worst_dp_class=None if dp_i is None else str(classes[dp_i]),
    )


def representation(groups_in_dataset: ArrayLike, target: Mapping[Hashable, float] | None = None) -> pd.DataFrame:
    """Table of each group's count and share of the dataset against a target share.

    A thin wrapper over :func:`adde_core.metrics.representation.subgroup_representation` for pages that
    want a table; use that function for the summary numbers (TV distance, worst group).

    Parameters
    ----------
    groups_in_dataset : array-like of shape (n,)
        Group label per item of the dataset (e.g. D_t).
    target : mapping group -> share, optional
        Desired distribution (normalised); default uniform over the observed groups.

    Returns
    -------
    pandas.DataFrame
        Indexed by group, columns ``count``, ``share``, ``target_share``, ``ratio`` (share / target share).
    """
    return subgroup_representation(groups_in_dataset, target).to_frame()


@dataclass(frozen=True)
class BiasAmplification:
    """How much more (or less) often each class is predicted than it truly occurs.

    Attributes
    ----------
    classes : tuple of str
        Classes in ``y_true`` or ``y_pred``, sorted.
    true_rate, pred_rate, gap : numpy.ndarray of float, shape (k,)
        Share of items truly of each class, share predicted as it, and ``pred_rate − true_rate``.
    max_abs_gap, mean_abs_gap : float
        max and mean of |gap| over classes.
    most_overpredicted_class : str
        The class with the largest (signed) gap.
    groups : tuple or None
        Group labels, sorted, when groups were given.
    group_true_rate, group_pred_rate, group_gap : numpy.ndarray of shape (g, k) or None
        The same rates within each group.
    group_max_abs_gap, group_mean_abs_gap : float
        max and mean of |gap| over all group × class cells (NaN without groups).
    """

    classes: tuple[str, ...]
    true_rate: np.ndarray
    pred_rate: np.ndarray
    gap: np.ndarray
    max_abs_gap: float
    mean_abs_gap: float
    most_overpredicted_class: str
    groups: tuple[Hashable, ...] | None = None
    group_true_rate: np.ndarray | None = None
    group_pred_rate: np.ndarray | None = None
    group_gap: np.ndarray | None = None
    group_max_abs_gap: float = math.nan
    group_mean_abs_gap: float = math.nan

    def __post_init__(self) -> None:
        k = len(self.classes)
        if any(a.shape != (k,) for a in (self.true_rate, self.pred_rate, self.gap)):
            raise AddeError("true_rate, pred_rate and gap must have one entry per class")
        if self.groups is not None:
            shape = (len(self.groups), k)
            arrays = (self.group_true_rate, self.group_pred_rate, self.group_gap)
            if any(a is None or a.shape != shape for a in arrays):
                raise AddeError(f"group rates must have shape {shape} (groups, classes)")

    def as_dict(self) -> dict[str, float | str | None]:
        """Flat JSON-serialisable summary; undefined values are None.

        Keys: ``bias_max_abs_gap``, ``bias_mean_abs_gap``, ``bias_most_overpredicted_class``,
        ``bias_gap.<class>``, and with groups ``bias_group_max_abs_gap``, ``bias_group_mean_abs_gap``
        and ``bias_gap.<group>|<class>``.
        """
        out: dict[str, float | str | None] = {
            "bias_max_abs_gap": _json_number(self.max_abs_gap),
            "bias_mean_abs_gap": _json_number(self.mean_abs_gap),
            "bias_most_overpredicted_class": self.most_overpredicted_class,
        }
        for c, v in zip(self.classes, self.gap):
            out[f"bias_gap.{c}"] = _json_number(v)
        if self.groups is not None and self.group_gap is not None:
            out["bias_group_max_abs_gap"] = _json_number(self.group_max_abs_gap)
            out["bias_group_mean_abs_gap"] = _json_number(self.group_mean_abs_gap)
            for gi, g in enumerate(self.groups):
                for ci, c in enumerate(self.classes):
                    out[f"bias_gap.{g}|{c}"] = _json_number(self.group_gap[gi, ci])
        return out


def bias_amplification(y_true: ArrayLike, y_pred: ArrayLike, groups: ArrayLike | None = None) -> BiasAmplification:
    """Gap between how often each class is predicted and how often it truly occurs, on validation data.

    What these numbers mean: ``gap[c] = pred_rate[c] − true_rate[c]``; +0.2 says class c is predicted for
    20 % more of the items than truly belong to it. This is the monitor used to compare ADDE with a
    naive pseudo-labelling loop, which feeds its own predictions back and so tends to over-predict the
    majority classes more each round; a growing ``max_abs_gap`` is the symptom.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        True and predicted class names on the validation set.
    groups : array-like of shape (n,), optional
        Group label per item; adds the same gaps within each group.

    Returns
    -------
    BiasAmplification

    Notes
    -----
    The gaps sum to 0 over classes, so ``mean_abs_gap = 2 · TV / k`` where TV is the total-variation
    distance between the predicted and true class distributions. ``max_abs_gap`` is the headline
    number: it names one class's distortion and does not shrink as classes are added.
    """
    yt, yp = _labels_pair(y_true, y_pred)
    classes = np.unique(np.concatenate([yt, yp]))
    # searchsorted is exact here since every label is in classes.
    ti, pi = np.searchsorted(classes, yt), np.searchsorted(classes, yp)
    k, n = classes.shape[0], yt.shape[0]
    true_rate = np.bincount(ti, minlength=k) / n
    pred_rate = np.bincount(pi, minlength=k) / n
    gap = pred_rate - true_rate
    kwargs: dict = {}
    if groups is not None:
        g = as_labels(groups, "groups", n=n)
        names, gi = np.unique(g, return_inverse=True)
        sizes = np.bincount(gi, minlength=names.shape[0])[:, None]
        gt = np.zeros((names.shape[0], k))
        gp = np.zeros((names.shape[0], k))
        np.add.at(gt, (gi, ti), 1.0)
        np.add.at(gp, (gi, pi), 1.0)
        gt, gp = gt / sizes, gp / sizes
        ggap = gp - gt
        kwargs = {
            "groups": tuple(_as_python(v) for v in names),
            "group_true_rate": gt,
            "group_pred_rate": gp,
            "group_gap": ggap,
            "group_max_abs_gap": float(np.abs(ggap).max()),
            "group_mean_abs_gap": float(np.abs(ggap).mean()),
        }
    return BiasAmplification(
        classes=tuple(classes.tolist()),
        true_rate=true_rate,
        pred_rate=pred_rate,
        gap=gap,
        max_abs_gap=float(np.abs(gap).max()),
        mean_abs_gap=float(np.abs(gap).mean()),
        most_overpredicted_class=str(classes[int(np.argmax(gap))]),
        **kwargs,
    )
