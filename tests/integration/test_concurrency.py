"""Four reviewer processes deciding at random for 20 s while a fifth closes iterations, on SQLite and PostgreSQL.

The scenario and its checks are ``benchmarks/concurrency.py`` (which repeats it 10 times and prints
the counts); here one run per backend must keep every invariant: each confirmed decision is in the
log, folded into exactly one iteration's D_valid, still pending or superseded; no rejected item in
D_t; no accepted item lost.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.backends import make_synthetic_project

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(900)


def _scenario():
    spec = importlib.util.spec_from_file_location("adde_concurrency_benchmark", REPO / "benchmarks" / "concurrency.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_four_reviewers_and_a_closer_lose_and_invert_nothing(tmp_path, database_url):
    scenario = _scenario()
    result = scenario.run_once(tmp_path, database_url=database_url, seconds=20.0, seed=1)
    print(result)
    for name in scenario.INVARIANTS:
        assert result[name] == 0, (name, result)
    assert result["in_two_iterations"] == 0, result
    # The run really exercised the race: many decisions, closes during them, items folded in.
    assert result["confirmed"] >= 100 and result["iterations_closed"] >= 1 and result["folded_in"] >= 1, result
    assert result["superseded"] >= 0, "no accept is counted both folded and pending"


def test_two_processes_closing_at_the_same_moment_one_wins(tmp_path, database_url):
    from adde_core.review import DecisionRequest, record_decision

    project = make_synthetic_project(tmp_path / "p", database_url=database_url, n_per=15, n_seed=3, n_val=4)
    (item,) = list(project.items(roles=["pool"])["id"][:1])
    record_decision(project.store, DecisionRequest(item, "accept", "ann", label="ant", expected_seq=0))
    project.measure()
    project.close()
    start = time.time() + 25.0  # both have imported and warmed up by then
    code = textwrap.dedent("""
        import sys, time
        from adde_core.errors import IterationClosed
        from adde_core.project import Project
        root, who, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
        p = Project.open(root)
        p.engine().context()  # warm: working set, head and reference space
        while time.time() < start:
            time.sleep(0.001)
        try:
            s = p.next_iteration(reviewer=who)
            print("WON", s.index, s.added)
        except IterationClosed as exc:
            print("CLOSED", exc)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "p"), who, str(start)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for who in ("ann", "bob")]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-3000:] for _, err in outs]
    lines = sorted(out.strip().splitlines()[-1] for out, _ in outs)
    assert lines[0].startswith("CLOSED iteration 0 ") and lines[1].startswith("WON 1 {'pool': 1}"), lines
    assert "already closed by" in lines[0] or "is being closed by" in lines[0], lines
    assert "IntegrityError" not in "".join(out + err for out, err in outs)
    from adde_core.project import Project

    again = Project.open(tmp_path / "p")
    assert again.current_iteration == 1
    again.close()
