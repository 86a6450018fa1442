"""Rank candidates for human review: the ADDE score α·U + β·Div + γ·Q with its breakdown, and baseline strategies.

Only numpy is imported here; pandas and scikit-learn are imported inside the functions that use them.
"""

from adde_core.ranking.components import UNCERTAINTIES, entropy_uncertainty, margin_uncertainty
from adde_core.ranking.inputs import RankingInput
from adde_core.ranking.strategies import (
    COLUMNS,
    STRATEGIES,
    RankedCandidates,
    RankingContext,
    Selection,
    rank_candidates,
)
from adde_core.ranking.weights import RankingWeights

__all__ = [
    "COLUMNS",
    "STRATEGIES",
    "UNCERTAINTIES",
    "RankedCandidates",
    "RankingContext",
    "RankingInput",
    "RankingWeights",
    "Selection",
    "entropy_uncertainty",
    "margin_uncertainty",
    "rank_candidates",
]
