"""Acquisition on the real demo: precision@50 of pool retrieval for the rare-class regions vs random pool
sampling, and how many generated candidates pass the quality gate and the oracle.

Works on a throwaway copy of the demo project (``projects/demo``, built by ``make demo``), so the
project itself is left untouched. Prints numbers; asserts nothing.

    .venv/bin/python benchmarks/acquisition_demo.py [--k 50] [--n-generate 48]
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adde_core.project import Project  # noqa: E402
from adde_core.review import candidates_frame  # noqa: E402
from _common import cpu_model  # noqa: E402 - benchmarks/ is on sys.path when run as scripts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", default=str(ROOT / "projects" / "demo"))
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--n-generate", type=int, default=48)
    parser.add_argument("--random-draws", type=int, default=200)
    args = parser.parse_args()
    src = Path(args.project)
    if not (src / "adde.db").exists():
        sys.exit(f"{src}: no demo project; run `make demo` first")
    print(f"date {dt.datetime.now():%Y-%m-%d %H:%M}, cpu {cpu_model()}, project {src}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "demo"
        shutil.copytree(src, root, ignore=shutil.ignore_patterns("exports"))
        project = Project.open(root)
        rare = list(project.store.get_meta("demo", {}).get("rare_classes", {"zebra": 4, "cat": 6}))
        t0 = time.perf_counter()
        result = project.analyze()
        print(f"analysis {time.perf_counter() - t0:.1f} s, {len(result.regions)} regions")
        items = project.store.items_frame(include_hidden=True).set_index("id")
        truth = items["oracle_label"].fillna(items["label"])
        pool_ids = items.index[items["role"] == "pool"].to_numpy()
        rng = np.random.default_rng(0)

        print(f"\nPool retrieval, k={args.k} (precision = share of candidates whose hidden label is the class)")
        print(f"{'region':28s} {'class':6s} {'p@k':>5s} {'random':>7s} {'ratio':>6s} {'seconds':>7s}")
        targets = []
        for label in rare:
            # The detected region that holds the most pool items of this class.
            region = max(result.regions.regions,
                         key=lambda r: (truth.reindex(r.member_ids) == label).sum())
            targets.append((label, region))
            base = np.mean([(truth[rng.choice(pool_ids, args.k, replace=False)] == label).mean()
                            for _ in range(args.random_draws)])
            # The ranking strategy only orders the retrieved set for review, so precision@k is the retrieval's.
            t0 = time.perf_counter()
            got = project.acquire(region, mode="retrieve", k=args.k)
            seconds = time.perf_counter() - t0
            precision = (truth[got.candidates["id"]] == label).mean()
            print(f"{region.region_id:28s} {label:6s} {precision:5.2f} {base:7.3f} {precision / base:6.1f} "
                  f"{seconds:7.2f}")

        print(f"\nGeneration (cvae, n={args.n_generate}) for the same regions, then the oracle reviewer")
        print(f"{'region':28s} {'label':6s} {'kept':>9s} {'dropped by reason':40s} {'oracle accepts':>15s} {'seconds':>7s}")
        oracle = project.oracle()
        seen = {r.region_id for _, r in targets}
        extra = [(None, r) for r in result.regions.regions if r.region_id not in seen][:2]
        for label, region in targets + extra:
            t0 = time.perf_counter()
            got = project.acquire(region, mode="generate", n=args.n_generate, label=label, seed=0)
            seconds = time.perf_counter() - t0
            s = got.summary
            dropped = ", ".join(f"{k} {v}" for k, v in s["gate"].items() if k != "kept" and v) or "-"
            cands = candidates_frame(project.store, got.set_id)
            decisions = oracle.decide(cands, project.working_set()) if len(cands) else []
            accepted = sum(d.action == "accept" for d in decisions)
            share = f"{accepted}/{len(decisions)}" + (f" ({accepted / len(decisions):.0%})" if decisions else "")
            print(f"{region.region_id:28s} {s['label']!s:6s} {s['n_kept']:>3d}/{s['n_generated']:<3d} "
                  f"{dropped:40s} {share:>15s} {seconds:7.1f}")
        project.close()


if __name__ == "__main__":
    main()
