"""Label efficiency on the real demo: the headless ADDE loop against seed-only, random, uncertainty, a naive
pseudo-labelling loop and static augmentation, with an oracle reviewer. Prints numbers; asserts nothing.

    .venv/bin/python benchmarks/simulate_demo.py                  # 5 seeds, budget 300, 10 rounds, every strategy
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

from adde_core.loop.simulate import SIM_STRATEGIES, SimulationData
from adde_core.loop.simulate_report import run_and_report
from adde_core.project import Project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", default=str(ROOT / "projects" / "demo"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--strategies", nargs="+", default=list(SIM_STRATEGIES), choices=list(SIM_STRATEGIES))
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
    data = SimulationData.from_project(project)
    print(f"data: {data.name}: seed {len(data.X_seed)}, pool {len(data.X_pool)}, val {len(data.X_val)}, "
          f"ood {0 if data.X_ood is None else len(data.X_ood)}, dim {data.dim}, can generate: {data.can_generate}")
    run_and_report(data, args.strategies, budget=args.budget, rounds=args.rounds, seeds=args.seeds, out=out,
                   command=command, log=lambda line: print(line, flush=True))
    project.close()
    print(f"total wall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
