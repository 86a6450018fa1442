"""The app in a real browser: first launch builds the demo, and the Data page shows its images and counts."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


def test_first_launch_shows_demo_data_page(browser, tmp_path):
    from playwright.sync_api import expect

    from tests.e2e.conftest import start_app

    # A project folder that does not exist yet: the app must build the demo itself on first launch.
    proc, url = start_app(tmp_path / "demo", tmp_path / "streamlit.log")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        app = page.locator("[data-testid=stApp][data-test-script-state=notRunning]")
        expect(app).to_be_visible(timeout=180_000)
        expect(page.get_by_role("heading", name="Data")).to_be_visible(timeout=60_000)
        sidebar = page.locator("[data-testid=stSidebar]")
        expect(sidebar).to_contain_text("Animal-MNIST demo")
        # Counts by role from the shipped demo split: pool 7,786 · val 1,000 · ood 600 · seed 330.
        for count in ("7786", "1000", "600", "330"):
            expect(sidebar.locator("table")).to_contain_text(count)
        images = page.locator("[data-testid=stImage] img")
        expect(images.first).to_be_visible(timeout=60_000)
        assert images.count() >= 30
        assert page.evaluate("(img) => img.naturalWidth", images.first.element_handle()) > 0
        assert page.locator("text=Traceback").count() == 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
