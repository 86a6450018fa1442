"""The Explore map in a real browser: hovering a point shows that item's thumbnail, id and label."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

pytestmark = pytest.mark.e2e

STARS = """() => {
    const gd = document.querySelector('.js-plotly-plot');
    return gd.data.filter(t => t.name === 'sparse regions').flatMap(t => Array.from(t.x, (x, i) => [x, t.y[i]]));
}"""


def test_hovering_a_point_shows_its_thumbnail(browser, small_demo_embedded_dir, tmp_path):
    from playwright.sync_api import expect

    from adde_core.analysis import LatentMap
    from adde_core.project import Project
    from adde_core.ui import thumbnails
    from tests.e2e.conftest import ROOT, TO_PAGE_XY, start_app, wait_idle
    from tests.unit.ui.test_ui_thumbnails import TRICKY_IDS

    root = tmp_path / "project"
    shutil.copytree(small_demo_embedded_dir, root)
    thumbs = ROOT / "static" / thumbnails.THUMBS / thumbnails.project_thumb_dir(str(root))
    proc, url = start_app(root, tmp_path / "streamlit.log")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/explore")
        expect(page.locator(".js-plotly-plot")).to_be_visible(timeout=240_000)
        wait_idle(page)
        expect(page.locator(".js-plotly-plot[data-adde-thumbs]")).to_have_count(1, timeout=30_000)

        # The browser names thumbnails exactly as Python does, tricky ids included.
        assert page.evaluate("ids => ids.map(window.__addeThumbName)", TRICKY_IDS) == \
            [thumbnails.thumb_name(i) for i in TRICKY_IDS]

        project = Project.open(root)
        latent = LatentMap.load(project.map_path(project.default_model_key()))
        labels = project.items().set_index("id")["label"]
        project.close()
        ids = list(latent.ids)
        pix = np.array(page.evaluate(TO_PAGE_XY, latent.coords.astype(float).tolist()))
        stars = page.evaluate(STARS)
        star_pix = np.array(page.evaluate(TO_PAGE_XY, stars)) if stars else np.empty((0, 2))
        # The point farthest (in pixels) from every other point and region star: its hover is unambiguous.
        others = np.vstack([pix, star_pix])
        d = np.linalg.norm(pix[:, None, :] - others[None, :, :], axis=2)
        d[np.arange(len(pix)), np.arange(len(pix))] = np.inf
        k = int(np.argmax(d.min(axis=1)))
        assert d[k].min() > 6, "no isolated point to hover"
        item, (x, y) = ids[k], pix[k]

        box, img = page.locator("#adde-hover-thumb"), page.locator("#adde-hover-thumb img")
        page.mouse.move(x + 40, y + 40)
        page.mouse.move(x, y, steps=8)
        expect(box).to_be_visible(timeout=10_000)
        expect(box).to_have_attribute("data-item-id", item)
        src = img.get_attribute("src")
        assert src.startswith("/app/static/thumbs/") and src.endswith(thumbnails.thumb_name(item)), src
        page.wait_for_function("() => document.querySelector('#adde-hover-thumb img').naturalWidth > 0",
                               timeout=10_000)
        expect(img).to_be_visible()
        label = labels.get(item)
        expect(box).to_contain_text(item if label is None else f"{item} · {label}")
        assert (thumbs / thumbnails.thumb_name(item)).exists()
        page.screenshot(path=str(tmp_path / "hover.png"))

        # Leaving the plot hides it again.
        page.mouse.move(5, 5, steps=4)
        expect(box).to_be_hidden(timeout=10_000)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(thumbs, ignore_errors=True)
