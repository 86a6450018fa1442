"""The Explore map in a real browser: a box selection lists exactly the items inside the box."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

pytestmark = pytest.mark.e2e

def test_box_selection_lists_the_ids_inside_the_box(browser, small_demo_embedded_dir, tmp_path):
    from playwright.sync_api import expect

    from adde_core.analysis import LatentMap
    from adde_core.project import Project
    from tests.e2e.conftest import box_select, start_app

    root = tmp_path / "project"
    shutil.copytree(small_demo_embedded_dir, root)
    proc, url = start_app(root, tmp_path / "streamlit.log")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/explore")  # a direct link: must still get the shell and the project
        expect(page.locator(".js-plotly-plot")).to_be_visible(timeout=240_000)
        expect(page.locator("[data-testid=stApp][data-test-script-state=notRunning]")).to_be_visible(timeout=60_000)
        expect(page.locator("[data-testid=stSidebar]")).to_contain_text("Animal-MNIST demo")

        # The coordinates the page drew are the project's saved map.
        project = Project.open(root)
        latent = LatentMap.load(project.map_path(project.default_model_key()))
        ids, xy = latent.ids, latent.coords.astype(float)
        # A box around the middle of the map, holding some but not all points.
        (x0, x1), (y0, y1) = np.quantile(xy[:, 0], [0.35, 0.65]), np.quantile(xy[:, 1], [0.35, 0.65])

        (px0, py0), (px1, py1) = box_select(page, x0, y0, x1, y1)

        # The mouse moves in whole pixels, so points within 2 px of the box's edges may fall
        # either way; every other point must be listed exactly when it is inside the box.
        ex = 2 * abs((x1 - x0) / (px1 - px0))
        ey = 2 * abs((y1 - y0) / (py1 - py0))

        def inside(dx: float, dy: float) -> np.ndarray:
            return (xy[:, 0] >= x0 - dx) & (xy[:, 0] <= x1 + dx) & (xy[:, 1] >= y0 - dy) & (xy[:, 1] <= y1 + dy)

        surely_in, maybe_in = set(ids[inside(-ex, -ey)]), set(ids[inside(ex, ey)])
        assert 0 < len(surely_in) and len(maybe_in) < 200

        heading = page.get_by_role("heading", name=re.compile(r"^Selection: [1-9]\d* items$"))
        expect(heading).to_be_visible(timeout=60_000)
        listed = page.locator("[data-testid=stCode]").first.inner_text().split()
        assert heading.inner_text().startswith(f"Selection: {len(listed)} items")
        assert listed == sorted(listed) and surely_in <= set(listed) <= maybe_in
        expect(page.locator("[data-testid=stImage] img").first).to_be_visible()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
