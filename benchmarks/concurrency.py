"""Concurrent reviewers and iteration closes: 4 reviewer processes decide at random while a 5th closes iterations.

Each run builds a tiny synthetic project (a manifest plus a ``.npy`` of embeddings: no image
embedder runs), starts four reviewer processes that accept, reject, relabel and undo pool items
at random through :func:`adde_core.store.decisions.record_decision` (each passing the
``expected_seq`` it read, as the app's buttons do) and one process that closes iterations with
``Project.next_iteration()`` for the whole window. Afterwards the store is checked against a
replay of every decision the store confirmed to a reviewer:

- every confirmed decision is in the log, and nothing else is;
- each closed iteration k added exactly D_valid(k) (the standing accept/relabel decisions tagged
  k), with the reviewer's label, and nothing else: ``rejected_in_dt`` counts items in D_t that no
  standing accept put there, ``accepted_lost`` standing accepts that were not folded in;
- every confirmed accept/relabel is folded into exactly one iteration, still pending, or
  superseded by a later decision on the same item.

Usage::

    python benchmarks/concurrency.py                       # 10 runs of 20 s on SQLite (and PostgreSQL
                                                           # when ADDE_TEST_POSTGRES_URL is set)
    python benchmarks/concurrency.py --runs 3 --seconds 20 --backend postgres --postgres-url URL

It prints the counts per run and exits non-zero if any invariant count is not 0. The test
``tests/integration/test_concurrency.py`` runs one such run per backend.

Latest numbers (10 runs of 20 s per backend, 2 shared cores, PostgreSQL 15.18 on loopback):

=========== ========= ========= ====== ========= ======= ========== ============== =============
backend     confirmed conflicts closes folded in pending superseded rejected in D_t accepted lost
=========== ========= ========= ====== ========= ======= ========== ============== =============
SQLite      7,932     234       32     1,101     428     2,854      0              0
PostgreSQL  6,284     206       22     683       391     2,478      0              0
=========== ========= ========= ====== ========= ======= ========== ============== =============

Every run also had 0 decisions missing from the log, 0 unconfirmed ones in it, 0 wrong labels or
iterations and 0 worker errors; a close took 1.3–17.9 s under that load.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

LABELS = ("ant", "bee", "cow")
N_REVIEWERS = 4
#: Counts that must be 0 in every run.
INVARIANTS = ("missing_from_log", "unconfirmed_in_log", "rejected_in_dt", "accepted_lost", "wrong_label",
              "wrong_iteration", "worker_errors")


# ------------------------------------------------------------------ workers
def _wait_for_go(folder: Path, name: str) -> float:
    """Say ready, then wait until the parent writes the common start time."""
    (folder / f"{name}.ready").write_text("1")
    go = folder / "go"
    while not go.exists():
        time.sleep(0.01)
    start = float(go.read_text())
    while time.time() < start:
        time.sleep(0.001)
    return start


def reviewer_main(root: str, folder: str, name: str, seed: int, seconds: float) -> None:
    """Decide at random on the project's original pool items until the window ends; log what the store confirmed."""
    from adde_core.errors import AddeError
    from adde_core.project import Project
    from adde_core.review import DecisionConflict, DecisionRequest, decision_states, record_decision

    project = Project.open(root)
    pool = sorted(project.items(roles=["pool"])["id"])
    truth = project.store.items_frame(include_hidden=True).set_index("id")["oracle_label"].to_dict()
    rng = random.Random(seed)
    folder_p = Path(folder)
    counts = {"confirmed": 0, "conflicts": 0, "nothing_to_undo": 0, "errors": 0}
    start = _wait_for_go(folder_p, name)
    with open(folder_p / f"{name}.jsonl", "w") as log:
        while time.time() < start + seconds:
            item = rng.choice(pool)
            state = decision_states(project.store, [item])  # what this reviewer's card shows
            seq = int(state["n_decisions"].iloc[0]) if len(state) else 0
            standing = state["action"].iloc[0] if len(state) else None
            roll = rng.random()
            if standing is not None and roll < 0.3:
                action, label = "undo", None
            elif roll < 0.6:
                action, label = "accept", truth[item]
            elif roll < 0.8:
                action, label = "reject", None
            else:
                action, label = "relabel", rng.choice([x for x in LABELS if x != truth[item]])
            try:
                stored = record_decision(project.store, DecisionRequest(item, action, name, label=label,
                                                                        expected_seq=seq))
            except DecisionConflict:
                counts["conflicts"] += 1
                continue
            except AddeError as exc:
                counts["nothing_to_undo" if "nothing to undo" in str(exc) else "errors"] += 1
                continue
            counts["confirmed"] += 1
            log.write(json.dumps({"item": item, "seq": stored["seq"], "action": stored["action"],
                                  "label": stored["label"], "iteration": int(stored["iteration"]),
                                  "reviewer": name}) + "\n")
            log.flush()
            time.sleep(rng.random() * 0.01)
    (folder_p / f"{name}.json").write_text(json.dumps(counts))
    project.close()


def closer_main(root: str, folder: str, name: str, seconds: float) -> None:
    """Close iterations for the whole window (after a warm-up measure, so the first close is not all imports)."""
    from adde_core.errors import IterationClosed
    from adde_core.project import Project

    project = Project.open(root)
    project.measure()  # iteration 0's baseline; also pays the cold imports before the window starts
    folder_p = Path(folder)
    closes: list[dict[str, Any]] = []
    errors: list[str] = []
    start = _wait_for_go(folder_p, name)
    while time.time() < start + seconds:
        t0 = time.perf_counter()
        try:
            summary = project.next_iteration(reviewer=name)
            closes.append({"index": summary.index, "added": summary.added,
                           "seconds": round(time.perf_counter() - t0, 2)})
        except IterationClosed as exc:
            errors.append(f"IterationClosed: {exc}")
        time.sleep(0.5)
    (folder_p / f"{name}.json").write_text(json.dumps({"closes": closes, "errors": errors}))
    project.close()


# ------------------------------------------------------------------ one run
def _spawn(*args: str) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run_once(workdir: Path, *, database_url: str | None, seconds: float = 20.0, seed: int = 0) -> dict[str, Any]:
    """Build a project, run the reviewers and the closer, and return the checked counts."""
    from tests.backends import make_synthetic_project

    root = workdir / "project"
    make_synthetic_project(root, database_url=database_url, n_per=40, n_seed=4, n_val=8, seed=seed).close()
    folder = workdir / "workers"
    folder.mkdir()
    procs = {f"reviewer{k}": _spawn("reviewer", str(root), str(folder), f"reviewer{k}", str(seed * 100 + k),
                                    str(seconds)) for k in range(N_REVIEWERS)}
    procs["closer"] = _spawn("closer", str(root), str(folder), "closer", str(seconds))
    deadline = time.time() + 600
    while not all((folder / f"{n}.ready").exists() for n in procs):
        dead = [n for n, p in procs.items() if p.poll() is not None]
        if dead or time.time() > deadline:
            for p in procs.values():
                p.kill()
            raise RuntimeError(f"workers {dead} died before the start: "
                               + " | ".join(procs[n].communicate()[0][-1500:] for n in dead))
        time.sleep(0.05)
    (folder / "go.tmp").write_text(str(time.time() + 0.3))
    os.replace(folder / "go.tmp", folder / "go")  # atomically: a worker never reads it half-written
    outputs = {n: p.communicate(timeout=seconds + 600)[0] for n, p in procs.items()}
    failed = {n: out[-3000:] for n, out in outputs.items() if procs[n].returncode != 0}
    if failed:
        raise RuntimeError(f"workers failed: {failed}")
    return check(root, folder, seconds=seconds)


def check(root: Path, folder: Path, *, seconds: float) -> dict[str, Any]:
    """Replay every confirmed decision and compare with what the store holds."""
    from adde_core.project import Project
    from adde_core.review import decision_log

    confirmed = [json.loads(line) for f in sorted(folder.glob("reviewer*.jsonl")) for line in f.read_text().splitlines()]
    counts = defaultdict(int)
    for f in folder.glob("reviewer*.json"):
        for k, v in json.loads(f.read_text()).items():
            counts[k] += v
    closer = json.loads((folder / "closer.json").read_text())
    project = Project.open(root)
    log = decision_log(project.store)
    items = project.store.items_frame(include_hidden=True).set_index("id")
    final_t = project.current_iteration
    pool = sorted(items.index[items["oracle_label"].notna()])  # the original pool: only its items get decided
    project.close()

    # 1. The log holds exactly the confirmed decisions.
    in_log = {(r.item_id, int(r.seq)): (r.action, r.label if isinstance(r.label, str) else None, int(r.iteration))
              for r in log.itertuples()}
    mine = {(d["item"], d["seq"]): (d["action"], d["label"], d["iteration"]) for d in confirmed}
    missing = sum(1 for k, v in mine.items() if in_log.get(k) != v)
    unconfirmed = len(set(in_log) - set(mine))

    # 2. Replay: D_valid(k) is each item's standing decision over decisions tagged <= k, when valid and tagged k.
    by_item: dict[str, list[tuple[int, str, str | None, int]]] = defaultdict(list)
    for (item, seq), (action, label, it) in sorted(in_log.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        by_item[item].append((seq, action, label, it))

    def standing(rows):
        stack = []
        for row in rows:
            if row[1] == "undo":
                if stack:
                    stack.pop()
            else:
                stack.append(row)
        return stack[-1] if stack else None

    expected: dict[str, tuple[str, str, int]] = {}
    folded_decisions: dict[tuple[str, int], int] = {}
    for k in range(final_t):
        for item, rows in by_item.items():
            s = standing([r for r in rows if r[3] <= k])
            if s is not None and s[1] in ("accept", "relabel") and s[3] == k:
                expected[item] = ("seed", s[2], k + 1)
                folded_decisions[(item, s[0])] = folded_decisions.get((item, s[0]), 0) + 1
    pending = 0
    for item, rows in by_item.items():
        s = standing(rows)
        if s is not None and s[1] in ("accept", "relabel") and s[3] == final_t:
            pending += 1
    rejected_in_dt = accepted_lost = wrong_label = wrong_iteration = 0
    for item in pool:
        role, label, added = items.loc[item, "role"], items.loc[item, "label"], int(items.loc[item, "iteration_added"])
        want = expected.get(item)
        if want is None:
            rejected_in_dt += role == "seed"
        elif role != "seed":
            accepted_lost += 1
        else:
            wrong_label += label != want[1]
            wrong_iteration += added != want[2]
    valid_confirmed = [d for d in confirmed if d["action"] in ("accept", "relabel")]
    folded = sum(1 for d in valid_confirmed if folded_decisions.get((d["item"], d["seq"])) == 1)
    twice = sum(1 for v in folded_decisions.values() if v > 1)
    return {
        "seconds": seconds, "confirmed": len(confirmed), "conflicts": counts["conflicts"],
        "iterations_closed": len(closer["closes"]), "close_seconds": [c["seconds"] for c in closer["closes"]],
        "folded_in": folded, "pending": pending,
        "superseded": len(valid_confirmed) - folded - pending, "in_two_iterations": twice,
        "items_in_dt_from_pool": int(sum(items.loc[pool, "role"] == "seed")),
        "missing_from_log": missing, "unconfirmed_in_log": unconfirmed, "rejected_in_dt": rejected_in_dt,
        "accepted_lost": accepted_lost, "wrong_label": wrong_label, "wrong_iteration": wrong_iteration,
        "worker_errors": counts["errors"] + len(closer["errors"]),
    }


# ------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "reviewer":
        reviewer_main(argv[1], argv[2], argv[3], int(argv[4]), float(argv[5]))
        return 0
    if argv and argv[0] == "closer":
        closer_main(argv[1], argv[2], argv[3], float(argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--postgres-url", default=os.environ.get("ADDE_TEST_POSTGRES_URL"),
                        help="a server URL whose user may create databases (default: $ADDE_TEST_POSTGRES_URL)")
    args = parser.parse_args(argv)
    from tests.backends import create_database, drop_database

    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    if "postgres" in backends and not args.postgres_url:
        if args.backend == "postgres":
            parser.error("--postgres-url (or ADDE_TEST_POSTGRES_URL) is needed for the PostgreSQL runs")
        print("PostgreSQL: skipped (set ADDE_TEST_POSTGRES_URL or pass --postgres-url)")
        backends.remove("postgres")
    bad = 0
    for backend in backends:
        totals: dict[str, int] = defaultdict(int)
        for run in range(args.runs):
            url = create_database(args.postgres_url) if backend == "postgres" else None
            try:
                with tempfile.TemporaryDirectory(prefix="adde-concurrency-") as tmp:
                    result = run_once(Path(tmp), database_url=url, seconds=args.seconds, seed=run)
            finally:
                if url:
                    drop_database(args.postgres_url, url)
            bad += sum(result[k] for k in INVARIANTS)
            for k, v in result.items():
                if isinstance(v, int):
                    totals[k] += v
            print(f"{backend} run {run + 1}/{args.runs}: " + ", ".join(
                f"{k} {v}" for k, v in result.items() if k != "seconds"), flush=True)
        print(f"{backend} total over {args.runs} runs of {args.seconds:.0f} s: "
              + ", ".join(f"{k} {v}" for k, v in totals.items()), flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
