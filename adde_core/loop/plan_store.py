"""The engine's plan stored with the project (npz + JSON, never pickles), so a restarted server draws Explore at once.

A plan (the regions in the order the loop recommends, with why) costs a new process several
seconds: the working set, the head, the reference space, a kNN graph over the pool and the
model-error cells (4.7 s on the demo on 2 cores, on top of importing scikit-learn). It is a pure
function of the store's contents, the subgroup attribute, the adaptive state, the loop settings
and the code, so it is kept in ``analysis/<model>/fitted-plan.npz`` under a key made of exactly
those; any change to one of them recomputes it.

The regions' map positions are not part of it: each region is placed at its centre member's
position on whichever map it is drawn on (a refitted map moves the stars, not the plan).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from adde_core.analysis.persist import json_default, regions_from_arrays, regions_to_arrays
from adde_core.code_version import code_fingerprint
from adde_core.loop.engine import Plan

if TYPE_CHECKING:
    from adde_core.loop.fitted import FittedStore

__all__ = ["PLAN_KIND", "load_plan", "place_plan", "plan_key", "save_plan"]

PLAN_KIND = "plan"
Position = Callable[[str], "tuple[float, float] | None"]


def plan_key(*, model_key: str, revision: Any, subgroup: str | None, state: Mapping[str, Any],
             config: Any) -> str:
    """A key naming every input of a plan: the store revision, subgroup, adaptive state, loop config and code."""
    doc = json.dumps([model_key, revision, subgroup, state, repr(config), code_fingerprint()],
                     default=str, sort_keys=True)
    return hashlib.sha1(doc.encode()).hexdigest()


def save_plan(fitted: "FittedStore", key: str, plan: Plan) -> None:
    """Store ``plan`` for ``key`` (its regions' map positions are dropped; see the module docstring)."""
    rows, members, centroids = regions_to_arrays(plan.regions)
    doc = {"regions": rows, "reasons": plan.reasons, "chosen": list(plan.chosen), "weights": asdict(plan.weights),
           "generation_share": float(plan.generation_share)}
    fitted.save(PLAN_KIND, key, {"plan": np.array(json.dumps(doc, default=json_default)), "members": members,
                                 "centroids": centroids})


def load_plan(fitted: "FittedStore", key: str, position: Position) -> Plan | None:
    """The plan stored for ``key``, its regions placed by ``position(centre_id)``; None when there is none for it."""
    from adde_core.ranking import RankingWeights

    arrays = fitted.load(PLAN_KIND, key)
    if arrays is None:
        return None
    try:
        doc = json.loads(str(arrays["plan"]))
        regions = regions_from_arrays(doc["regions"], arrays["members"], arrays["centroids"], position)
        return Plan(regions, dict(doc["reasons"]), list(doc["chosen"]), RankingWeights(**doc["weights"]),
                    float(doc["generation_share"]))
    except (KeyError, TypeError, ValueError):
        return None  # written by another layout: recomputed and overwritten


def place_plan(plan: Plan, position: Position) -> Plan:
    """``plan`` with each region at ``position(centre_id)`` (regions without a centre member stay unplaced)."""
    regions = [replace(r, centroid_2d=position(r.centre_id) if r.centre_id is not None else None)
               for r in plan.regions]
    return replace(plan, regions=regions)
