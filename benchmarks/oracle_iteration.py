"""Seconds for one oracle iteration of 40 labels on the full demo (retrieval-only, with generation), and per simulated round.

Each demo mode runs on its own private copy of the demo project (so both start from iteration 0's
state) in one process: the first iteration pays the process's cold costs (embedder, numba,
torch's lazy imports), the second is what a person stepping iterations in the app waits for.
Iteration 0 is measured first (untimed) when the copy has no metrics yet.

``--modes simulation`` times rounds of the headless simulation on sklearn digits (1,238 pool
items, 64-d pixels, 40 labels a round, one thread as ``simulate`` runs): the engine's overhead
per round, which decides how many benchmark seeds are affordable.

Every line gives wall-clock seconds and the process's CPU seconds: on a shared machine the wall
clock measures the neighbours too, the CPU time what this code costs. The load average is printed
with each run. Prints numbers only (targets on 2 cores: <= 5 s retrieval-only, <= 20 s with generation).
``--profile`` prints the top functions by cumulative time of each timed iteration.

Usage: NUMBA_CACHE_DIR=.cache/numba .venv/bin/python benchmarks/oracle_iteration.py [--project projects/demo]
       .venv/bin/python benchmarks/oracle_iteration.py --modes simulation --rounds 5
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def load() -> str:
    """The 1-minute load average over the core count, e.g. ``load 3.1/2``."""
    return f"load {os.getloadavg()[0]:.1f}/{os.cpu_count()}"


def timed_iteration(project, *, generate: bool, profile: bool) -> tuple[float, float, object]:
    prof = cProfile.Profile() if profile else None
    start, cpu = time.perf_counter(), time.process_time()
    if prof:
        prof.enable()
    summary = project.run_oracle_iteration(budget=40, n_regions=2, generate=generate)
    if prof:
        prof.disable()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    if prof:
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(30)
        print(buf.getvalue())
    return seconds, cpu, summary


def simulation_rounds(rounds: int, strategies: list[str]) -> list[tuple[str, int, float, float]]:
    """Per-round wall and CPU seconds of simulated strategies on sklearn digits (seed 0, 40 labels a round)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from method_benchmark import load_digits_data

    from adde_core.loop.simulation.run import _threads, make_engine
    from adde_core.memo import Memo
    from adde_core.review.oracle import OracleReviewer, reference_head

    data = load_digits_data()
    truth = data.truth()
    out = []
    with _threads(1):
        for name in strategies:
            engine, policy = make_engine(data, name, budget=40, seed=0, memo=Memo(per_kind=4))
            oracle = OracleReviewer(truth, lambda: engine.memo.get(
                "oracle_reference", ("digits",), lambda: reference_head(data.to_storage().working_set(), truth)))
            engine.measure()
            for r in range(1, rounds + 1):
                start, cpu = time.perf_counter(), time.process_time()
                engine.step(policy, oracle)
                seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
                out.append((name, r, seconds, cpu))
                print(f"[simulation {name}] round {r}: {seconds:.2f} s ({cpu:.2f} s CPU, {load()})", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", default=str(ROOT / "projects" / "demo"))
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--modes", nargs="+", default=["retrieval", "generation"],
                        choices=["retrieval", "generation", "simulation"])
    parser.add_argument("--rounds", type=int, default=5, help="simulated rounds per strategy (--modes simulation)")
    parser.add_argument("--strategies", nargs="+", default=["margin", "adde"],
                        help="simulated strategies (--modes simulation)")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))
    from adde_core.project import Project

    rows = []
    for mode in [m for m in args.modes if m != "simulation"]:
        with tempfile.TemporaryDirectory(prefix="adde-oracle-") as tmp:
            root = Path(tmp) / "demo"
            shutil.copytree(args.project, root)
            project = Project.open(root)
            if not project.has_metrics():
                start = time.perf_counter()
                project.measure()
                print(f"[{mode}] iteration 0 measured first: {time.perf_counter() - start:.1f} s (not counted)")
            for k in range(args.iterations):
                seconds, cpu, summary = timed_iteration(project, generate=mode == "generation", profile=args.profile)
                acc = summary.metrics.get("val_accuracy")
                rows.append((mode, k + 1, seconds, cpu, summary.added))
                print(f"[{mode}] iteration {summary.index}: {seconds:.1f} s ({cpu:.1f} s CPU, {load()}), added "
                      f"{summary.added}" + (f", val accuracy {acc:.3f}" if isinstance(acc, float) else ""), flush=True)
            project.close()
    sim = simulation_rounds(args.rounds, args.strategies) if "simulation" in args.modes else []
    if rows:
        print(f"\n{'mode':12s} {'#':>2s} {'seconds':>8s} {'CPU s':>7s}  added")
        for mode, k, seconds, cpu, added in rows:
            print(f"{mode:12s} {k:2d} {seconds:8.1f} {cpu:7.1f}  {added}")
        print(f"({os.cpu_count()} cores, {load()}; targets: retrieval-only <= 5 s, with generation <= 20 s)")
    for name in dict.fromkeys(r[0] for r in sim):
        secs = [r[2] for r in sim if r[0] == name]
        cpus = [r[3] for r in sim if r[0] == name]
        print(f"simulated round on digits, {name}: {min(secs):.2f}-{max(secs):.2f} s "
              f"(CPU {min(cpus):.2f}-{max(cpus):.2f} s) over {len(secs)} rounds")


if __name__ == "__main__":
    main()
