"""The α, β, γ weights of the review score α·U + β·Div + γ·Q, validated and documented for the UI."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import ClassVar

from adde_core.errors import AddeError

__all__ = ["RankingWeights"]


@dataclass(frozen=True)
class RankingWeights:
    """Weights of the three score components; only their ratios matter.

    The score is computed with the weights divided by their sum, so it always lies in
    [0, 1] and ``RankingWeights(2, 2, 1)`` ranks exactly like the defaults.

    Attributes
    ----------
    alpha : float, default 0.4
        Weight of U, the current head's uncertainty: favours items the model would learn
        the most from (near its decision boundary).
    beta : float, default 0.4
        Weight of Div, the diversity contribution: favours items far from the labelled set
        and from the items ranked above them (and, with a region, close to that region).
    gamma : float, default 0.2
        Weight of Q, the quality score of generated items (pool items count as 1): demotes
        borderline generations that only just passed the quality gate.

    Notes
    -----
    Why these defaults: U and Div are the two complementary active-learning signals
    (informativeness and coverage); with no evidence favouring one, they weigh the same,
    as in hybrid strategies such as BADGE. Q weighs half as much because generated items
    have already passed the quality gate and real pool items all score 1, so Q should
    break near-ties rather than dominate. The refinement loop may adapt the weights from
    what paid off in earlier iterations.
    """

    alpha: float = 0.4
    beta: float = 0.4
    gamma: float = 0.2

    HELP: ClassVar[dict[str, str]] = {
        "alpha": "Uncertainty (U): prefer items the current model is unsure about.",
        "beta": "Diversity (Div): prefer items unlike the labelled set and the items ranked above them.",
        "gamma": "Quality (Q): prefer generated items the quality gate scored higher (real items score 1).",
    }

    def __post_init__(self) -> None:
        for name in ("alpha", "beta", "gamma"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise AddeError(f"Ranking weight {name} must be a finite number >= 0, got {value!r}.")
            if value < 0:
                raise AddeError(f"Ranking weight {name} must be >= 0, got {value!r}: use 0 to switch the term off.")
            object.__setattr__(self, name, float(value))
        if self.alpha + self.beta + self.gamma <= 0:
            raise AddeError(
                "Ranking weights alpha, beta and gamma are all 0, so no candidate can be preferred: "
                "give at least one of them a positive value."
            )

    def as_tuple(self) -> tuple[float, float, float]:
        """``(alpha, beta, gamma)`` as given."""
        return (self.alpha, self.beta, self.gamma)

    def normalized(self) -> tuple[float, float, float]:
        """``(alpha, beta, gamma)`` divided by their sum: the weights the score actually uses."""
        total = self.alpha + self.beta + self.gamma
        return (self.alpha / total, self.beta / total, self.gamma / total)
