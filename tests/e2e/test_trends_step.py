"""Trends in a real browser: step one iteration with the oracle and see the curves and the evolving map."""

from __future__ import annotations

import re
import shutil

import pytest

pytestmark = pytest.mark.e2e


def test_step_one_oracle_iteration_updates_the_trends(browser, small_demo_embedded_dir, tmp_path):
    from playwright.sync_api import expect

    from adde_core.project import Project
    from tests.e2e.conftest import start_app, wait_idle

    root = tmp_path / "project"
    shutil.copytree(small_demo_embedded_dir, root)
    proc, url = start_app(root, tmp_path / "streamlit.log")
    try:
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.goto(f"{url}/trends")
        expect(page.get_by_text("No metrics yet")).to_be_visible(timeout=240_000)
        wait_idle(page)
        page.get_by_text("Oracle stepping (simulation)").click()
        page.get_by_text("Include generation (cvae)").click()  # off: keeps the test quick
        wait_idle(page)
        page.get_by_role("button", name="Run one iteration with the oracle").click()
        expect(page.get_by_text(re.compile(r"^Iteration 1: added"))).to_be_visible(timeout=300_000)
        wait_idle(page, timeout=120_000)
        expect(page.locator(".js-plotly-plot")).to_have_count(2, timeout=60_000)  # trend panels + evolving map
        expect(page.get_by_text(re.compile(r"^D_1: [\d,]+ items \(\d+ added at this iteration\)"))).to_be_visible()
        project = Project.open(root)
        assert project.current_iteration == 1
        assert list(project.metrics_history()["iteration"]) == [0, 1]
        project.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
