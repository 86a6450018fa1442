"""Seconds for one oracle iteration of 40 labels on the full demo, retrieval-only and with generation.

Each mode runs on its own private copy of the demo project (so both start from iteration 0's
state) in one process: the first iteration pays the process's cold costs (embedder, numba,
fitted heads), the second is what a person stepping iterations in the app waits for. Iteration
0 is measured first (untimed) when the copy has no metrics yet.

Prints numbers only (targets on 2 cores: <= 5 s retrieval-only, <= 20 s with generation).
``--profile`` prints the top functions by cumulative time of each timed iteration.

Usage: NUMBA_CACHE_DIR=.cache/numba .venv/bin/python benchmarks/oracle_iteration.py [--project projects/demo]
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


def timed_iteration(project, *, generate: bool, profile: bool) -> tuple[float, object]:
    prof = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if prof:
        prof.enable()
    summary = project.run_oracle_iteration(budget=40, n_regions=2, generate=generate)
    if prof:
        prof.disable()
    seconds = time.perf_counter() - start
    if prof:
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(30)
        print(buf.getvalue())
    return seconds, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", default=str(ROOT / "projects" / "demo"))
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--modes", nargs="+", default=["retrieval", "generation"], choices=["retrieval", "generation"])
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))
    from adde_core.project import Project

    rows = []
    for mode in args.modes:
        with tempfile.TemporaryDirectory(prefix="adde-oracle-") as tmp:
            root = Path(tmp) / "demo"
            shutil.copytree(args.project, root)
            project = Project.open(root)
            if project.metrics_history().empty:
                start = time.perf_counter()
                project.measure()
                print(f"[{mode}] iteration 0 measured first: {time.perf_counter() - start:.1f} s (not counted)")
            for k in range(args.iterations):
                seconds, summary = timed_iteration(project, generate=mode == "generation", profile=args.profile)
                acc = summary.metrics.get("val_accuracy")
                rows.append((mode, k + 1, seconds, summary.added, acc))
                print(f"[{mode}] iteration {summary.index}: {seconds:.1f} s, added {summary.added}"
                      + (f", val accuracy {acc:.3f}" if isinstance(acc, float) else ""), flush=True)
            project.close()
    print(f"\n{'mode':12s} {'#':>2s} {'seconds':>8s}  added")
    for mode, k, seconds, added, _ in rows:
        print(f"{mode:12s} {k:2d} {seconds:8.1f}  {added}")
    print(f"({os.cpu_count()} cores; targets: retrieval-only <= 5 s, with generation <= 20 s)")


if __name__ == "__main__":
    main()
