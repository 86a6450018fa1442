"""In a real browser, what the data says is shown as text: Markdown in labels, ids and names loads nothing."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# Port 9 (discard) on loopback: nothing listens there, and any request to it is one the data caused.
IMAGE = "![x](http://127.0.0.1:9/t.png)"
LINK = "[Log in](http://127.0.0.1:9/login)"
NAME = "![n](http://127.0.0.1:9/name.png) *team*"
MISSING = "![p](http://127.0.0.1:9/path.png).png"


def _payload_project(folder: Path) -> Path:
    """A project named with Markdown, whose labels, an id and an attribute value are Markdown too."""
    import pandas as pd
    from PIL import Image

    from adde_core.project import Project

    images = folder / "images"
    images.mkdir(parents=True)
    with np.load(ROOT / "assets" / "animal_mnist" / "animal_mnist.npz", allow_pickle=False) as data:
        arrays = data["images"][:6]
    rows = []
    for k, array in enumerate(arrays):
        Image.fromarray(array).save(images / f"a{k}.png")
        rows.append({"id": LINK if k == 0 else f"item-{k}", "path": f"images/a{k}.png",
                     "label": IMAGE if k % 2 else "cat", "role": "seed", "site": IMAGE if k < 3 else "B"})
    rows.append({"id": "missing", "path": MISSING, "label": "cat", "role": "seed", "site": "B"})
    manifest = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    project = Project.create(folder / "project", name=NAME)
    try:
        report = project.ingest_manifest(manifest)
        assert report.n_loaded == 6 and report.n_rejected == 1
        project.set_subgroup("site")
    finally:
        project.close()
    return folder / "project"


def test_markdown_in_labels_ids_and_names_is_text_and_loads_nothing(browser, tmp_path):
    from playwright.sync_api import expect

    from tests.e2e.conftest import start_app, wait_idle

    project = _payload_project(tmp_path)
    proc, url = start_app(project, tmp_path / "streamlit.log")
    requested: list[str] = []
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("request", lambda request: requested.append(request.url))
        page.goto(url)
        wait_idle(page, timeout=180_000)
        expect(page.get_by_role("heading", name="Data")).to_be_visible(timeout=60_000)
        sidebar = page.locator("[data-testid=stSidebar]")
        expect(sidebar).to_contain_text(f"Project: {NAME}")
        main = page.locator("[data-testid=stMain]")
        expect(main).to_contain_text(f"Project {NAME}")  # the caption under the title
        # The Browse grid: every caption is "id · label · role", text and all.
        expect(main).to_contain_text(f"{LINK} · cat · seed · {IMAGE}")
        expect(main).to_contain_text(f"item-1 · {IMAGE} · seed · {IMAGE}")
        assert page.locator("[data-testid=stImage] img").count() == 6  # the items' own images, nothing else

        # The Ingest tab: the report names the rejected path, and the subgroup message quotes the column.
        page.get_by_role("tab", name="Ingest").click()
        expect(main).to_contain_text("Last ingest")
        expect(main).to_contain_text(str(tmp_path / "manifest.csv"))

        # An error message that quotes what the person typed.
        page.get_by_text("Open or create another project").click()
        box = page.get_by_label("Project folder")
        box.fill(str(tmp_path / IMAGE))
        box.press("Enter")
        wait_idle(page)
        page.get_by_role("button", name="Open project").click()
        wait_idle(page)
        # (the path as the app normalised it: "http://" became "http:/", still Markdown if it were rendered)
        expect(page.locator("[data-testid=stAlertContentError]")).to_contain_text(f"{tmp_path / IMAGE}: not an ADDE")

        page.wait_for_timeout(1000)  # give a late image request time to show up
        assert page.locator("main a[href*='127.0.0.1:9']").count() == 0
        assert page.locator("img[src*='127.0.0.1:9']").count() == 0
        leaked = [u for u in requested if urlsplit(u).hostname == "127.0.0.1" and urlsplit(u).port == 9]
        assert leaked == []
        assert page.locator("text=Traceback").count() == 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
