"""Fault-injection hooks: named points in long operations where a test can SIGKILL the process.

Set ``ADDE_FAULT_AT`` to a comma-separated list of point names (``close:folded``,
``ingest:items``, ...) and the process kills itself with SIGKILL the first time it reaches
one of them, exactly as a ``kill -9`` or a power cut would stop it there. The
fault-injection tests use it to prove that every long operation leaves a consistent
state and that running it again finishes the same work. Unset, a point costs one
environment lookup. (The embedding cache has its own batch-count hook,
``ADDE_FAULT_AFTER_BATCHES``.)
"""

from __future__ import annotations

import os
import signal

__all__ = ["FAULT_ENV", "POINTS", "fault_point"]

FAULT_ENV = "ADDE_FAULT_AT"
#: Every point in the code, so a test can check that it names real ones.
POINTS = (
    "close:baseline",  # iteration 0's baseline metrics recorded, nothing folded yet
    "close:folded",  # D_valid folded in (committed), metrics not computed
    "close:measured",  # metrics of the new iteration recorded, adaptation not yet
    "close:adapted",  # the close is complete
    "ingest:items",  # items inserted but not committed, their vectors not yet written
    "ingest:written",  # items and vectors committed, the run not yet marked finished
)


def fault_point(name: str) -> None:
    """SIGKILL this process if ``ADDE_FAULT_AT`` names ``name`` (a test hook; a no-op otherwise)."""
    wanted = os.environ.get(FAULT_ENV)
    if wanted and name in wanted.split(","):
        os.kill(os.getpid(), signal.SIGKILL)
