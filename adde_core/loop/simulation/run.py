"""Headless runs of the loop: every strategy drives the same :class:`~adde_core.loop.engine.Engine` on memory storage.

For each seed and strategy a fresh :class:`~adde_core.loop.storage.MemoryStorage` is made from the
data, iteration 0 is measured, and ``rounds`` iterations are stepped with the policy and the
:class:`~adde_core.review.oracle.OracleReviewer` (one label per review). Metrics are those of
:func:`adde_core.loop.evaluate.evaluate` — the numbers the Trends page shows — so a simulation
measures what users run. The returned table has one row per seed × strategy × round.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from adde_core.errors import AddeError
from adde_core.loop.engine import Engine, LoopConfig
from adde_core.loop.policies import ABLATIONS, ALIASES, POLICIES, policy_names
from adde_core.loop.simulation.data import SimulationData
from adde_core.memo import Memo

__all__ = ["NEEDS_IMAGES", "full_data_accuracy", "run_strategy", "simulate"]

#: ``progress(done, total, message)``: called after every simulated round.
SimProgress = Callable[[int, int, str], None]
#: Strategies whose distinctive part needs images and an image embedder.
NEEDS_IMAGES = {"static-aug": "augments seed images", "adde": "generates images"}
#: Columns copied from the metrics of each iteration, renamed for the report.
_RENAMED = {"fair_worst_group_accuracy": "worst_group_accuracy", "fair_worst_group": "worst_group",
            "bias_max_abs_gap": "bias_amplification", "vendi_q1": "vendi"}


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """Limit torch and BLAS threads: tiny fits are fastest single-threaded, and far slower when cores are shared."""
    if n is None:
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(n):
            yield
    finally:
        torch.set_num_threads(before)


def full_data_accuracy(data: SimulationData, *, seed: int = 0) -> float:
    """Val accuracy of the head trained on the seed set plus the whole pool with its oracle labels."""
    from adde_core.model.head import fit_head

    with _threads(1):
        rows = np.flatnonzero(np.isin(data.roles, ("seed", "pool")))
        val = data.rows("val")
        head = fit_head(data.X[rows], data.labels[rows].astype(str), random_state=seed)
        return float((head.predict(data.X[val]) == data.labels[val].astype(str)).mean())


def make_engine(data: SimulationData, name: str, *, budget: int, seed: int, memo: Memo | None = None,
                config: LoopConfig | None = None) -> tuple[Engine, Any]:
    """A fresh memory-backed engine and the policy for strategy ``name``."""
    name = ALIASES.get(name, name)
    base = config or LoopConfig()
    switches = ABLATIONS.get(name, {})
    cfg = replace(base, budget=budget, random_state=seed, **switches)
    if not data.can_generate:
        cfg = replace(cfg, generate=False)
    embed = data.embed_images if data.can_generate else None
    return Engine(data.to_storage(), memo=memo, embed_images=embed, config=cfg), POLICIES[name]()


def run_strategy(data: SimulationData, name: str, *, budget: int, rounds: int, seed: int, memo: Memo | None = None,
                 config: LoopConfig | None = None, tick: Callable[[str], None] = lambda m: None,
                 engines: list[Engine] | None = None) -> list[dict[str, Any]]:
    """One seed of one strategy: ``rounds`` engine steps of ``budget // rounds`` labels; one row per round.

    ``engines``, when given, receives the engine used (to inspect its storage afterwards).
    """
    from adde_core.review.oracle import OracleReviewer, reference_head

    batch = budget // rounds
    engine, policy = make_engine(data, name, budget=batch, seed=seed, memo=memo, config=config)
    if engines is not None:
        engines.append(engine)
    truth = data.truth()
    oracle = OracleReviewer(truth, lambda: engine.memo.get(
        "oracle_reference", ("oracle", data.name, len(data.ids)),
        lambda: reference_head(data.to_storage().working_set(), truth)))
    rows = []
    t0 = time.perf_counter()
    metrics = engine.measure()
    rows.append(_row(engine, seed, name, 0, metrics, time.perf_counter() - t0))
    tick(f"{name} seed {seed} round 0")
    for r in range(1, rounds + 1):
        t0 = time.perf_counter()
        summary = engine.step(policy, oracle)
        rows.append(_row(engine, seed, name, r, summary.metrics, time.perf_counter() - t0))
        tick(f"{name} seed {seed} round {r}")
    return rows


def _row(engine: Engine, seed: int, name: str, r: int, metrics: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The report row of one round: what joined D_t by kind, generation counts, then every metric."""
    from adde_core.loop.storage import AUGMENT_REVIEWER, PSEUDO_REVIEWER, VALID_ACTIONS

    storage = engine.storage
    ws = storage.working_set()
    joined = set(map(str, ws.ids[ws.in_dataset]))
    mode_of = {s["id"]: s["mode"] for s in storage.sets}  # type: ignore[attr-defined]
    added = {"pool": 0, "pseudo": 0, "generated": 0, "augmented": 0}
    gen_shown = gen_accepted = 0
    for item_id, d in storage.decisions.items():  # type: ignore[attr-defined]
        mode = mode_of.get(d["set_id"])
        if mode == "generate":
            gen_shown += 1
            gen_accepted += d["action"] in VALID_ACTIONS
        if item_id not in joined:
            continue
        kind = {PSEUDO_REVIEWER: "pseudo", AUGMENT_REVIEWER: "augmented"}.get(d["reviewer"])
        added[kind or ("generated" if mode == "generate" else "pool")] += 1
    row: dict[str, Any] = {"seed": seed, "strategy": name, "round": r,
                           "labels_spent": int(metrics.get("labels_spent", 0)),
                           "items_added": sum(added.values()), **{f"added_{k}": v for k, v in added.items()},
                           "n_labelled": int(ws.in_dataset.sum()), "gen_shown": gen_shown,
                           "gen_accepted": gen_accepted, "seconds": round(seconds, 3)}
    for key, value in metrics.items():
        if isinstance(value, (int, float, str, np.integer, np.floating)) or value is None:
            row.setdefault(_RENAMED.get(key, key), value)
    adaptive = ALIASES.get(name, name) in ABLATIONS
    for key in ("alpha", "beta", "gamma", "generation_share"):
        row[key] = row.get(key, np.nan) if adaptive else np.nan
    if not engine.config.generate:
        row["generation_share"] = np.nan
    row["ood_accuracy"] = row.get("ood_accuracy", np.nan)
    row["regions"] = ";".join(dict.fromkeys(
        s["region_id"] for s in storage.sets if s["region_id"] and s["iteration"] == ws.iteration - 1)) if r else ""  # type: ignore[attr-defined]
    return row


def simulate(data: SimulationData, strategies: Sequence[str], *, budget: int, rounds: int,
             seeds: int | Sequence[int], progress: SimProgress | None = None, num_threads: int | None = 1,
             resplit: bool = False, config: LoopConfig | None = None) -> pd.DataFrame:
    """Run every strategy for every seed on the engine and return one metrics row per seed × strategy × round.

    Parameters
    ----------
    data : SimulationData
    strategies : sequence of str
        Names from :func:`adde_core.loop.policies.policy_names`. A strategy whose distinctive part
        needs images (``adde``'s generation, ``static-aug``) still runs on data without images,
        without that part, and ``attrs["notes"]`` says so: never a silent skip.
    budget : int
        Oracle labels per run; each round spends ``budget // rounds``.
    rounds : int
    seeds : int or sequence of int
    progress : callable, optional
        ``progress(done, total, message)`` after every round.
    num_threads : int or None, default 1
        torch/BLAS threads while simulating (None: leave as is).
    resplit : bool, default False
        Redraw the seed/pool split per seed (:meth:`SimulationData.resplit`).
    config : LoopConfig, optional
        Loop settings other than budget and seed (regions per round, generator, ...).

    Returns
    -------
    pandas.DataFrame
        ``attrs``: ``notes`` (strategy -> what it ran without), ``batch``, ``budget``, ``rounds``.
    """
    known = policy_names()
    unknown = [s for s in strategies if s not in known]
    if unknown:
        raise AddeError(f"Unknown simulation strategies {unknown}; choose from {', '.join(known)}.")
    for name, value in (("budget", budget), ("rounds", rounds)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise AddeError(f"{name} must be a positive integer, got {value!r}.")
    if budget < rounds:
        raise AddeError(f"budget ({budget}) must be at least rounds ({rounds}) so each round spends >= 1 label.")
    n_pool = len(data.rows("pool"))
    if budget // rounds * rounds > n_pool:
        raise AddeError(f"The pool has {n_pool} items, fewer than the {budget // rounds * rounds} "
                        "labels to spend; lower the budget.")
    seed_list = list(range(seeds)) if isinstance(seeds, (int, np.integer)) else [int(s) for s in seeds]
    notes = {name: f"ran without its {why.split(' ', 1)[1]} part: this data has no images or no image embedder "
                   f"(it {why} otherwise)" for name, why in NEEDS_IMAGES.items()
             if name in strategies and not data.can_generate}
    total = len(strategies) * len(seed_list) * (rounds + 1)
    done = 0

    def tick(message: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, message)

    for name, note in notes.items():
        if progress is not None:
            progress(0, total, f"{name}: {note}")
    rows: list[dict[str, Any]] = []
    with _threads(num_threads):
        for seed in seed_list:
            seed_data = data.resplit(seed) if resplit else data
            memo = Memo(per_kind=4)  # reference space and oracle reference shared by the strategies of a seed
            for name in strategies:
                rows += run_strategy(seed_data, name, budget=budget, rounds=rounds, seed=seed, memo=memo,
                                     config=config, tick=tick)
    frame = pd.DataFrame(rows)
    frame.attrs.update({"notes": notes, "batch": budget // rounds, "budget": budget, "rounds": rounds})
    return frame
