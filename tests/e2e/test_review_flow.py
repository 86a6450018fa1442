"""Review in a real browser: retrieve for a selection, decide, reload; and kill -9 the server mid-review."""

from __future__ import annotations

import os
import re
import shutil
import signal

import numpy as np
import pytest

pytestmark = pytest.mark.e2e


def _open_page(browser, url: str, path: str, ready: str):
    from playwright.sync_api import expect

    from tests.e2e.conftest import wait_idle

    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    page.goto(f"{url}/{path}")
    expect(page.locator(ready).first).to_be_visible(timeout=240_000)
    wait_idle(page)
    return page


def _card(page, key: str, item_id: str):
    return page.locator(f".st-key-{key}_card_{item_id}")


def test_retrieve_accept_reject_then_reload(browser, small_demo_embedded_dir, tmp_path):
    from playwright.sync_api import expect

    from adde_core.analysis import LatentMap
    from adde_core.project import Project
    from adde_core.review import candidates_frame, decision_states
    from tests.e2e.conftest import box_select, start_app, wait_idle

    root = tmp_path / "project"
    shutil.copytree(small_demo_embedded_dir, root)
    proc, url = start_app(root, tmp_path / "streamlit.log")
    try:
        page = _open_page(browser, url, "explore", ".js-plotly-plot")
        project = Project.open(root)
        latent = LatentMap.load(project.map_path(project.default_model_key()))
        xy = latent.coords.astype(float)
        (x0, x1), (y0, y1) = np.quantile(xy[:, 0], [0.4, 0.6]), np.quantile(xy[:, 1], [0.4, 0.6])
        box_select(page, x0, y0, x1, y1)
        expect(page.get_by_role("heading", name=re.compile(r"^Selection: [1-9]\d* items$"))).to_be_visible(
            timeout=60_000)
        page.get_by_role("spinbutton", name="Candidates").fill("10")
        page.get_by_role("button", name="Retrieve candidates").click()
        expect(page.get_by_text(re.compile(r"Candidates\*?\*? \(set #1\)"))).to_be_visible(timeout=120_000)
        wait_idle(page)

        cands = candidates_frame(project.store, 1)
        assert len(cands) == 10
        first, second, third = cands["item_id"][:3]
        # A decided card keeps its place in the batch and shows the stored decision.
        _card(page, "explore_review", first).get_by_role("button", name="Accept").click()
        expect(_card(page, "explore_review", first)).to_contain_text("accept as", timeout=30_000)
        wait_idle(page)
        _card(page, "explore_review", second).get_by_role("button", name="Accept").click()
        expect(_card(page, "explore_review", second)).to_contain_text("accept as", timeout=30_000)
        wait_idle(page)
        _card(page, "explore_review", third).get_by_role("button", name="Reject").click()
        expect(_card(page, "explore_review", third)).to_contain_text("reject · by", timeout=30_000)
        wait_idle(page)

        # A fresh load of the Review page (new session, nothing in memory) shows the same state.
        page.goto(f"{url}/review")
        expect(page.get_by_text("3/10 decided")).to_be_visible(timeout=120_000)
        page.reload()
        expect(page.get_by_text("3/10 decided")).to_be_visible(timeout=120_000)
        wait_idle(page)
        page.get_by_role("radio", name="decided", exact=True).or_(
            page.get_by_role("button", name="decided", exact=True)).first.click()
        wait_idle(page)
        for item_id, verdict in ((first, "accept"), (second, "accept"), (third, "reject")):
            expect(_card(page, "review", item_id)).to_contain_text(verdict)
        states = decision_states(project.store).set_index("item_id")
        assert states.loc[[first, second, third], "action"].tolist() == ["accept", "accept", "reject"]
        assert set(states.loc[[first, second], "label"]) <= set(cands["suggested_label"])
        project.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_kill_9_mid_review_loses_no_confirmed_decision(browser, small_demo_embedded_dir, tmp_path):
    """200 candidates reviewed one by one; SIGKILL the server mid-way; every confirmed decision is stored."""
    from playwright.sync_api import expect

    from adde_core.project import Project
    from adde_core.review import decision_states
    from tests.e2e.conftest import start_app, wait_idle

    root = tmp_path / "project"
    shutil.copytree(small_demo_embedded_dir, root)
    project = Project.open(root)
    pool = project.items(roles=["pool"])
    result = project.acquire(list(pool["id"][:50]), mode="retrieve", k=200)
    assert len(result.candidates) == 200
    project.close()

    proc, url = start_app(root, tmp_path / "streamlit.log")
    confirmed: list[str] = []
    try:
        page = _open_page(browser, url, "review", "text=Next up")
        focus = page.locator("[class*='st-key-review_card_']", has_text="Next up")  # moves card to card
        accept = focus.get_by_role("button", name="Accept")
        for i in range(1, 41):
            item_id = re.search(r"#\d+ ([\w.-]+) · pool", focus.inner_text(timeout=60_000)).group(1)
            accept.click()
            expect(page.get_by_text(f"{i}/200 decided")).to_be_visible(timeout=60_000)
            confirmed.append(item_id)
            wait_idle(page)
        accept.click()  # one more in flight...
        os.kill(proc.pid, signal.SIGKILL)  # ...and the server dies without any chance to clean up
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()

    reopened = Project.open(root)
    states = decision_states(reopened.store).set_index("item_id")
    assert len(confirmed) == 40 and len(set(confirmed)) == 40
    assert set(confirmed) <= set(states.index)
    assert (states.loc[confirmed, "action"] == "accept").all()
    assert 40 <= len(states) <= 41  # the in-flight one may or may not have landed, nothing else
    reopened.close()
