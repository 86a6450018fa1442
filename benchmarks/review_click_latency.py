"""Time from a review click to its result on screen, in a real browser on the demo project.

Copies the demo project (``make demo`` builds it), retrieves candidates for its cat gap if it
has none, serves the app, and in headless Chromium clicks Accept (and Reject) on the Review
page's cards one at a time, timing mouse click -> the card showing the stored decision.
It also times a batch: 8 selected cards relabelled in one action -> all 8 shown relabelled.
Prints numbers only (repeat, range, median); asserts nothing about time.

Usage: python benchmarks/review_click_latency.py [--project projects/demo] [--clicks 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import cpu_model  # noqa: E402
from tests.e2e.conftest import CHROMIUM, start_app  # noqa: E402  (same server start-up as the e2e tests)


FLOOR = """
import streamlit as st

@st.fragment
def counter():
    n = st.session_state.setdefault("n", 0)
    if st.button("Go", key=f"go_{n}"):
        st.session_state["n"] = n + 1
        st.rerun(scope="fragment")
    st.text(f"count {st.session_state['n']}")

counter()
"""


def measure_floor(browser, workdir: Path, clicks: int) -> list[float]:
    """Click -> result for a one-button fragment: what Streamlit itself costs on this machine, now."""
    script = workdir / "floor.py"
    script.write_text(FLOOR)
    proc, url = start_app(workdir, workdir / "floor.log", script=script)
    try:
        page = browser.new_page()
        page.goto(url)
        page.get_by_text("count 0").wait_for(timeout=120_000)
        times = []
        for k in range(clicks):
            box = page.get_by_role("button", name="Go").bounding_box()
            t0 = time.perf_counter()
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.get_by_text(f"count {k + 1}").wait_for()
            times.append(time.perf_counter() - t0)
            time.sleep(0.3)
        page.close()
        return times
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _prepare(source: Path, workdir: Path) -> Path:
    """A private copy of the demo with a fresh candidate set of 60 retrieved around the seed cats."""
    from adde_core.project import Project

    root = workdir / "project"
    shutil.copytree(source, root, ignore=shutil.ignore_patterns("exports"))
    project = Project.open(root)
    items = project.items(roles=["seed"])
    cats = list(items["id"][items["label"] == "cat"]) or list(items["id"][:10])
    project.acquire(cats, mode="retrieve", k=60)
    project.close()
    return root


def _wait_text(locator, predicate, timeout: float = 60.0) -> float:
    """Poll ``locator``'s text every 10 ms from Python until ``predicate`` holds; returns the time it took."""
    t0 = time.perf_counter()
    while not predicate(locator.inner_text()):
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"no result on screen within {timeout} s")
        time.sleep(0.01)
    return time.perf_counter() - t0


def _cards(page) -> list:
    return page.locator("[class*='st-key-review_card_']").all()


def measure(browser, url: str, clicks: int) -> tuple[list[float], float]:
    """(seconds per single click, seconds for one 8-card batch relabel) on one fresh page."""
    page = browser.new_page(viewport={"width": 1500, "height": 1400})
    page.goto(f"{url}/review")
    page.locator("[class*='st-key-review_card_']").first.wait_for(timeout=300_000)
    page.locator("[data-testid=stApp][data-test-script-state=notRunning]").wait_for(timeout=300_000)
    time.sleep(1.0)  # let the images arrive, as a person would see them before the first click
    times = []
    cards = _cards(page)
    for k, card in enumerate(cards[:clicks]):
        action = "Reject" if k % 4 == 3 else "Accept"
        shown = "❌ reject" if action == "Reject" else "✅ accept"
        button = card.get_by_role("button", name=action)
        button.scroll_into_view_if_needed()
        box = button.bounding_box()
        # The clock starts as the mouse clicks, not while Playwright waits for the button to be actionable.
        t0 = time.perf_counter()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        _wait_text(card, lambda text: shown in text)
        times.append(time.perf_counter() - t0)
        time.sleep(0.3)  # a person looks at the next card before clicking it
    batch = None
    rest = [c for c in cards[clicks:] if c.get_by_text("Select").count()]
    if len(rest) >= 8:
        for card in rest[:8]:
            card.get_by_text("Select").click()
        page.get_by_role("button", name="Relabel 8 selected").wait_for()
        combo = page.get_by_role("combobox", name="Label for the selected")
        combo.click()
        combo.fill("cat")
        page.get_by_role("option", name="cat", exact=True).click()
        page.locator("[data-testid=stApp][data-test-script-state=notRunning]").wait_for()
        button = page.get_by_role("button", name="Relabel 8 selected")
        button.scroll_into_view_if_needed()
        box = button.bounding_box()
        t0 = time.perf_counter()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        relabelled = page.locator("[class*='st-key-review_card_']", has_text="relabel as ")
        # All 8 arrive in one redraw; the finished batch then stays a second before the next one replaces it.
        while relabelled.count() < 8:
            if time.perf_counter() - t0 > 60:
                raise TimeoutError("the 8 relabelled cards were not shown within 60 s")
            time.sleep(0.01)
        batch = time.perf_counter() - t0
    page.close()
    return times, batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=ROOT / "projects" / "demo")
    parser.add_argument("--clicks", type=int, default=4, help="single clicks per round (a batch has 12 cards)")
    parser.add_argument("--rounds", type=int, default=3, help="fresh pages (each gets its own batch)")
    args = parser.parse_args()
    if not (args.project / "adde_project.json").exists():
        sys.exit(f"{args.project}: no project there; build the demo first with `make demo`")
    from playwright.sync_api import sync_playwright

    print(f"date      {dt.datetime.now().isoformat(timespec='seconds')}; {cpu_model()}; cores {os.cpu_count()}; "
          f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("measures  mouse click on a review card -> that card shows the stored decision (Review page, demo)")
    with tempfile.TemporaryDirectory(prefix="adde-review-") as tmp, sync_playwright() as pw:
        workdir = Path(tmp)
        t0 = time.perf_counter()
        root = _prepare(args.project, workdir)
        print(f"setup     copied the demo and retrieved 60 candidates in {time.perf_counter() - t0:.1f} s")
        proc, url = start_app(root, workdir / "streamlit.log")
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
            "--disable-renderer-backgrounding", "--disable-background-timer-throttling"])
        try:
            singles, batches = [], []
            for r in range(args.rounds):
                times, batch = measure(browser, url, args.clicks)
                singles += times
                if batch is not None:
                    batches.append(batch)
                print(f"round {r + 1}   clicks: {', '.join(f'{t:.2f}' for t in times)} s"
                      + (f"; 8-card batch relabel {batch:.2f} s" if batch is not None else ""))
            print(f"single click -> result: median {statistics.median(singles):.2f} s, range "
                  f"{min(singles):.2f}-{max(singles):.2f} s over {len(singles)} clicks (target <= 0.5 s)")
            if batches:
                print(f"8-card relabel -> all 8 shown: median {statistics.median(batches):.2f} s, range "
                      f"{min(batches):.2f}-{max(batches):.2f} s over {len(batches)} batches")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        try:
            floor = measure_floor(browser, workdir, 8)
            print(f"floor     a one-button Streamlit fragment, same machine: median {statistics.median(floor):.2f} s, "
                  f"range {min(floor):.2f}-{max(floor):.2f} s over {len(floor)} clicks")
        finally:
            browser.close()
        print(f"load      {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end")


if __name__ == "__main__":
    main()
