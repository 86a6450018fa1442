"""Decide when the refinement loop stops: label budget spent, target accuracy reached, iteration cap or plateau."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adde_core.errors import AddeError

__all__ = ["STOP_RULES", "StopDecision", "StoppingConfig", "should_stop"]

#: Rule names in the order they are checked; the first that fires gives the reason.
STOP_RULES: tuple[str, ...] = ("label_budget", "target_accuracy", "max_iterations", "plateau")


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise AddeError(f"StoppingConfig.{name} must be a whole number >= 1 (or None to switch the rule off), "
                        f"got {value!r}.")
    return int(value)


@dataclass(frozen=True)
class StoppingConfig:
    """When to stop refining; each rule is switched off with ``None``.

    Attributes
    ----------
    label_budget : int or None
        Stop once this many labels (reviewer decisions that add items) have been spent.
    plateau_iterations : int or None, default 3
        k: stop when neither M_qual nor M_div improved by ``plateau_tolerance`` in the last k iterations.
    plateau_tolerance : float, default 0.005
        Smallest improvement that counts: absolute for accuracy (0.005 = half a point), relative for
        M_div (0.005 = 0.5 %), because Vendi scores are effective counts whose size depends on the data.
    target_accuracy : float or None
        Stop once validation accuracy reaches this value, in (0, 1].
    max_iterations : int or None
        Stop after this many refinement iterations.
    """

    label_budget: int | None = None
    plateau_iterations: int | None = 3
    plateau_tolerance: float = 0.005
    target_accuracy: float | None = None
    max_iterations: int | None = None

    def __post_init__(self) -> None:
        for name in ("label_budget", "plateau_iterations", "max_iterations"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _positive_int(value, name))
        tol = self.plateau_tolerance
        if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not math.isfinite(tol) or tol < 0:
            raise AddeError(f"StoppingConfig.plateau_tolerance must be a finite number >= 0, got {tol!r}.")
        object.__setattr__(self, "plateau_tolerance", float(tol))
        acc = self.target_accuracy
        if acc is not None:
            if isinstance(acc, bool) or not isinstance(acc, numbers.Real) or not 0 < acc <= 1:
                raise AddeError(f"StoppingConfig.target_accuracy must lie in (0, 1] (accuracy as a fraction, "
                                f"e.g. 0.9 for 90 %), got {acc!r}.")
            object.__setattr__(self, "target_accuracy", float(acc))


@dataclass(frozen=True)
class StopDecision:
    """Whether to stop, and why, in a sentence for the user.

    Attributes
    ----------
    stop : bool
    reason : str
        ``"Stopped: …"`` naming the rule and the numbers, or ``"Continue: …"`` with the progress.
    rule : str or None
        The first rule of :data:`STOP_RULES` that fired, or ``None``.
    triggered : tuple of str
        Every rule that fired, in :data:`STOP_RULES` order.
    """

    stop: bool
    reason: str
    rule: str | None = None
    triggered: tuple[str, ...] = ()


def _series(history: Sequence[Mapping[str, Any]], keys: tuple[str, ...], what: str) -> list[float]:
    values = []
    for i, row in enumerate(history):
        key = next((k for k in keys if row.get(k) is not None), None)
        if key is None:
            raise AddeError(f"Metrics history row {i} has no {what} ({' or '.join(repr(k) for k in keys)}); "
                            "record it for every iteration before checking the stopping rules.")
        value = row[key]
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise AddeError(f"Metrics history row {i}: {key} must be a finite number, got {value!r}.")
        values.append(float(value))
    return values


def _iterations_done(history: Sequence[Mapping[str, Any]]) -> int:
    if not history:
        return 0
    last = history[-1].get("iteration")
    return int(last) if last is not None else len(history) - 1


def should_stop(history: Sequence[Mapping[str, Any]], labels_spent: int, config: StoppingConfig) -> StopDecision:
    """Check the stopping rules after an iteration.

    Parameters
    ----------
    history : sequence of mapping (or a pandas DataFrame)
        One row per trained model in iteration order, starting with t = 0 on D_seed. Each row has
        ``accuracy`` (M_qual) and ``vendi`` or else ``diversity`` (M_div); an ``iteration`` column,
        when present, gives the number of refinement iterations done (otherwise ``len(history) - 1``).
    labels_spent : int
        Labels used so far.
    config : StoppingConfig

    Returns
    -------
    StopDecision

    Notes
    -----
    Rules, checked in :data:`STOP_RULES` order:

    * ``label_budget``: ``labels_spent >= label_budget``.
    * ``target_accuracy``: the latest accuracy ``>= target_accuracy``.
    * ``max_iterations``: refinement iterations done ``>= max_iterations``.
    * ``plateau`` (needs k + 1 rows): the best accuracy of the last k rows beats the best before them
      by less than the tolerance, *and* so does M_div relative to its best before them. Comparing
      best values (as early stopping with patience does) means a dip and recovery is not progress,
      while a steady slow climb that adds up to the tolerance is.
    """
    if hasattr(history, "to_dict") and not isinstance(history, Mapping):
        history = history.to_dict("records")  # a pandas DataFrame
    history = list(history)
    if isinstance(labels_spent, bool) or not isinstance(labels_spent, numbers.Integral) or labels_spent < 0:
        raise AddeError(f"labels_spent must be a whole number >= 0, got {labels_spent!r}.")
    if not isinstance(config, StoppingConfig):
        raise AddeError("should_stop needs a StoppingConfig.")
    acc = _series(history, ("accuracy",), "accuracy")
    div = _series(history, ("vendi", "diversity"), "diversity metric")
    div_name = "Vendi score" if history and history[-1].get("vendi") is not None else "diversity"
    done = _iterations_done(history)

    reasons: dict[str, str] = {}
    if config.label_budget is not None and labels_spent >= config.label_budget:
        reasons["label_budget"] = (f"Stopped: the label budget of {config.label_budget} is spent "
                                   f"({labels_spent} labels used).")
    if config.target_accuracy is not None and acc and acc[-1] >= config.target_accuracy:
        reasons["target_accuracy"] = (f"Stopped: validation accuracy {acc[-1]:.1%} reached the target of "
                                      f"{config.target_accuracy:.1%}.")
    if config.max_iterations is not None and done >= config.max_iterations:
        reasons["max_iterations"] = (f"Stopped: {done} refinement iterations done, the maximum set is "
                                     f"{config.max_iterations}.")
    k = config.plateau_iterations
    if k is not None and len(history) >= k + 1:
        tol = config.plateau_tolerance
        acc_gain = max(acc[-k:]) - max(acc[:-k])
        div_before = max(div[:-k])
        div_gain = (max(div[-k:]) - div_before) / abs(div_before) if div_before else max(div[-k:]) - div_before
        if acc_gain < tol and div_gain < tol:
            reasons["plateau"] = (f"Stopped: accuracy and {div_name} have plateaued — over the last {k} "
                                  f"iterations the best accuracy moved by {acc_gain * 100:+.2f} points (progress needs "
                                  f"{tol * 100:.2f}) and the best {div_name} by {div_gain:+.2%} (needs {tol:.2%}).")

    triggered = tuple(r for r in STOP_RULES if r in reasons)
    if triggered:
        return StopDecision(True, reasons[triggered[0]], triggered[0], triggered)
    parts = [f"iteration {done}"]
    if config.label_budget is not None:
        parts.append(f"{labels_spent} of {config.label_budget} labels used")
    else:
        parts.append(f"{labels_spent} labels used")
    if acc:
        parts.append(f"accuracy {acc[-1]:.1%}" + (f" (target {config.target_accuracy:.1%})"
                                                  if config.target_accuracy is not None else ""))
    if config.max_iterations is not None:
        parts.append(f"at most {config.max_iterations} iterations")
    return StopDecision(False, "Continue: " + ", ".join(parts) + ".", None, ())
