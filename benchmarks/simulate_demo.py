"""Label efficiency on the real demo: ADDE (the same engine the app runs) against the baselines, with an oracle.

Prints numbers; asserts nothing.

    .venv/bin/python benchmarks/simulate_demo.py                  # 5 seeds, budget 300, 10 rounds, DEFAULT strategies
    .venv/bin/python benchmarks/simulate_demo.py --quick          # 2 seeds, budget 60, 3 rounds (a few minutes)
    .venv/bin/python benchmarks/simulate_demo.py --strategies random adde-no-gen --out /tmp/sim

Writes results.csv/json, summary.csv, PNG plots and report.md to ``--out`` (default docs/simulation/,
docs/simulation-quick/ with --quick). Reads the demo project (``projects/demo``, built by ``make demo``) and
changes nothing in it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import cpu_model, loadavg_line

from adde_core.loop.policies import policy_names
from adde_core.loop.simulation.report import run_and_report
from adde_core.project import Project

#: ADDE, its ablations, the strongest pool-ranking baselines and the loop baselines.
DEFAULT = ["adde", "adde-no-gen", "adde-no-div", "adde-no-adapt", "random", "margin", "entropy", "coreset",
           "typiclust", "probcover", "uherding", "seed-only", "mads-naive", "static-aug"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", default=str(ROOT / "projects" / "demo"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--strategies", nargs="+", default=DEFAULT, choices=policy_names())
    parser.add_argument("--resplit", action="store_true", help="redraw the seed/pool split per seed")
    parser.add_argument("--quick", action="store_true", help="2 seeds, budget 60, 3 rounds")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.budget, args.rounds = 2, 60, 3
    out = Path(args.out) if args.out else ROOT / "docs" / ("simulation-quick" if args.quick else "simulation")
    src = Path(args.project)
    if not (src / "adde.db").exists():
        sys.exit(f"{src}: no demo project; run `make demo` first")
    command = "python " + " ".join(shlex.quote(a) for a in [str(Path(sys.argv[0]))] + sys.argv[1:])
    print(f"date {dt.datetime.now():%Y-%m-%d %H:%M}, cpu {cpu_model()}")
    if loadavg_line():
        print(loadavg_line())
    t0 = time.perf_counter()
    project = Project.open(src)
    data = project.simulation_data()
    counts = {r: len(data.rows(r)) for r in ("seed", "pool", "val", "ood")}
    print(f"data: {data.name}: {counts}, dim {data.X.shape[1]}, can generate: {data.can_generate}")
    run_and_report(data, args.strategies, budget=args.budget, rounds=args.rounds, seeds=args.seeds, out=out,
                   command=command, log=lambda line: print(line, flush=True), resplit=args.resplit)
    project.close()
    print(f"total wall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
