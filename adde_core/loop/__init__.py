"""The refinement loop: one engine (:mod:`adde_core.loop.engine`), its policies, evaluation, adaptation and stopping.

The engine and its storages are imported from their modules directly, so that this package stays import-light.
"""

from adde_core.loop.adaptive import AdaptiveState, IterationOutcome, RegionBandit, update_state
from adde_core.loop.stopping import StopDecision, StoppingConfig, should_stop

__all__ = [
    "AdaptiveState",
    "IterationOutcome",
    "RegionBandit",
    "StopDecision",
    "StoppingConfig",
    "should_stop",
    "update_state",
]
