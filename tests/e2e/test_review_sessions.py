"""Review in real browsers: three sessions clicking fast, a batch relabel of 8 selected cards, a shortcut on first render."""

from __future__ import annotations

import re
import shutil
import time

import pytest

pytestmark = pytest.mark.e2e

_CARD = re.compile(r"st-key-review_card_(\S+)")


@pytest.fixture(scope="module")
def served(small_demo_embedded_dir, tmp_path_factory):
    """One server on a private copy of the small demo; each test acquires its own (newest) candidate set."""
    from adde_core.project import Project
    from tests.e2e.conftest import start_app

    tmp = tmp_path_factory.mktemp("review_sessions")
    root = tmp / "project"
    shutil.copytree(small_demo_embedded_dir, root)
    proc, url = start_app(root, tmp / "streamlit.log")
    project = Project.open(root)
    try:
        yield project, url
    finally:
        project.close()
        proc.terminate()
        proc.wait(timeout=30)


def _new_set(project, k: int, offset: int) -> list[str]:
    pool = project.items(roles=["pool"])
    result = project.acquire(list(pool["id"][offset:offset + 30]), mode="retrieve", k=k)
    return list(result.candidates["id"])


def _open_review(browser, url: str):
    from playwright.sync_api import expect

    from tests.e2e.conftest import wait_idle

    page = browser.new_page(viewport={"width": 1500, "height": 1400})
    page.goto(f"{url}/review")
    expect(page.locator("[class*='st-key-review_card_']").first).to_be_visible(timeout=240_000)
    wait_idle(page)
    return page


def _shown(page) -> list[str]:
    """Item ids of the cards this page shows, in order."""
    classes = page.locator("[class*='st-key-review_card_']").evaluate_all("els => els.map(e => e.className)")
    return [_CARD.search(c).group(1) for c in classes]


def _wait_for(fn, ready, timeout: float = 60.0):
    """``fn()`` once ``ready(fn())`` holds, or its last value after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if ready(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.25)


def test_three_sessions_clicking_fast_act_on_their_cards(browser, served):
    from adde_core.review import decision_log

    project, url = served
    _new_set(project, 60, 0)
    pages = [_open_review(browser, url) for _ in range(3)]
    shown = [_shown(p) for p in pages]
    assert all(len(s) == 12 for s in shown), shown
    offered = [i for s in shown for i in s]
    assert len(set(offered)) == 36, "every session is offered its own items"

    # Round-robin over the sessions, one click each, never waiting for a rerun to finish.
    intended: dict[str, str] = {}
    for k in range(6):
        for s, page in enumerate(pages):
            item = shown[s][k]
            action = "accept" if (k + s) % 3 else "reject"
            button = page.locator(f".st-key-review_card_{item}").get_by_role("button", name=action.capitalize())
            if k == 2:
                button.dblclick()  # a double-click stores one decision
            else:
                button.click()
            intended[item] = action
    _wait_for(lambda: decision_log(project.store), lambda log: len(log) >= len(intended))
    time.sleep(3)  # anything still in flight lands now
    log = decision_log(project.store)
    assert set(log["item_id"]) <= set(intended), "a click acted on a card it was not aimed at"
    assert log["item_id"].is_unique, "an item was decided twice (a double-click, or two sessions)"
    assert dict(zip(log["item_id"], log["action"])) == {i: intended[i] for i in log["item_id"]}
    assert len(log) == len(intended), f"{len(intended) - len(log)} clicks were lost"
    for page in pages:
        page.close()


def test_relabel_eight_selected_cards_in_one_action_then_undo(browser, served):
    from playwright.sync_api import expect

    from adde_core.review import decision_log, decision_states
    from tests.e2e.conftest import wait_idle

    project, url = served
    _new_set(project, 12, 100)
    before = len(decision_log(project.store))
    page = _open_review(browser, url)
    shown = _shown(page)
    chosen = shown[:8]
    for item in chosen:  # select as fast as a person can tick boxes
        page.locator(f".st-key-review_card_{item}").get_by_text("Select").click()
    expect(page.get_by_role("button", name="Relabel 8 selected")).to_be_enabled(timeout=30_000)
    combo = page.get_by_role("combobox", name="Label for the selected")
    combo.click()
    combo.fill("zebra")  # the list is long and drawn lazily: type to filter, as a person would
    page.get_by_role("option", name="zebra", exact=True).click()
    expect(combo).to_have_value("zebra")
    wait_idle(page)
    page.get_by_role("button", name="Relabel 8 selected").click()
    states = _wait_for(lambda: decision_states(project.store, chosen).dropna(subset=["action"]),
                       lambda s: len(s) >= 8, 30)
    assert len(states) == 8 and set(states["action"]) == {"relabel"} and set(states["label"]) == {"zebra"}
    assert len(decision_log(project.store)) - before == 8
    expect(page.get_by_text("8/12 decided")).to_be_visible(timeout=30_000)
    wait_idle(page)
    page.get_by_role("button", name="Undo last action").click()  # one undo withdraws the whole batch
    undone = _wait_for(lambda: decision_states(project.store, chosen)["action"], lambda a: a.isna().all(), 30)
    assert undone.isna().all()
    page.close()


def test_keyboard_shortcut_works_from_the_first_render(browser, served):
    from adde_core.review import decision_states

    project, url = served
    _new_set(project, 6, 200)
    page = _open_review(browser, url)
    shown = _shown(page)
    before = decision_states(project.store, shown).dropna(subset=["action"])
    # The shortcut acts on the first card still open (decided cards stay in place, greyed out).
    first = next(i for i in shown if i not in set(before["item_id"].astype(str)))
    # The shortcut belongs to the focused card's Accept (the primary button): wait until it is on the page and
    # enabled, since the self-refreshing grid can still be mounting when the script reports idle on a busy machine.
    from playwright.sync_api import expect

    from tests.e2e.conftest import wait_idle

    focused = page.locator(f"[class*='st-key-review_card_{first}'] [data-testid=stBaseButton-primary]")
    expect(focused.first).to_be_enabled(timeout=60_000)
    wait_idle(page)
    page.keyboard.press("a")  # no click anywhere first

    def new_decisions():
        after = decision_states(project.store, shown).dropna(subset=["action"])
        return after[~after["item_id"].astype(str).isin(set(before["item_id"].astype(str)))]

    states = _wait_for(new_decisions, len, 30)
    assert list(states["item_id"].astype(str)) == [first] and list(states["action"]) == ["accept"]
    page.close()
