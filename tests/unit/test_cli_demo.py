"""`python -m adde_core demo` prepares what the pages show at first open: the analysis, iteration 0's numbers, the plan."""

from __future__ import annotations

import pytest

import adde_core.loop.engine as engine_module
from adde_core.cli import _prepare_demo


def test_prepare_demo_records_iteration_0_and_stores_the_plan(embedded_project, monkeypatch, capsys):
    from adde_core.project import Project

    project = embedded_project
    assert len(project.metrics_history()) == 1 and not project.has_metrics()  # iteration 0's row, no numbers
    _prepare_demo(project)
    out = capsys.readouterr().out
    assert "iteration 0 measured" in out and "recommended regions" in out
    assert project.has_metrics()
    assert project.metrics_history()["val_accuracy"].notna().iloc[0]

    # A server started now (a new process: empty memo) draws the plan without computing it.
    monkeypatch.setattr(engine_module.Engine, "plan", lambda *a, **k: pytest.fail("plan recomputed"))
    reopened = Project.open(project.root)
    assert reopened.recommended_regions().regions
    # Running it again measures nothing twice.
    _prepare_demo(reopened)
    assert "iteration 0 measured" not in capsys.readouterr().out
    reopened.close()
