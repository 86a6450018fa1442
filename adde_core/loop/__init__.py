"""The refinement loop: adaptive weights and region choice, the stopping rules, and the iteration runner.

The runner (:mod:`adde_core.loop.iteration`, :mod:`adde_core.loop.runner`) touches the store and is
imported from those modules directly, so that this package stays import-light.
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
