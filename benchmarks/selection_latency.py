"""Time from a box selection on the latent map to the selection panel, in a real browser.

Serves a Streamlit page that draws the Explore map (the same figure builder and
selection panel the app uses) for N synthetic points, box-selects with real mouse
drags in headless Chromium, and prints the time from mouse-up until the panel shows
the selection. Prints numbers only; asserts nothing about time.

``--draw all`` draws every point with Plotly WebGL (the map before ``MAP_DRAW_MAX``), ``--draw sample``
the app's map: at most ``MAP_DRAW_MAX`` points drawn, box/lasso resolved over every item.

Usage: python benchmarks/selection_latency.py [--n 10000 100000 1000000] [--repeats 3] [--draw sample all]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import CHROMIUM, start_app  # noqa: E402  (same server start-up as the e2e tests)

PAGE = '''
import numpy as np, pandas as pd, streamlit as st
from adde_core.ui.analysis import map_figure
from adde_core.ui.figures import latent_map_figure, selected_ids
from adde_core.ui.selection_panel import selection_panel

st.set_page_config(layout="wide")
N = int({n})

@st.cache_data
def frame(n):
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=8, size=(20, 2))
    lab = rng.integers(0, 20, n)
    xy = centers[lab] + rng.normal(size=(n, 2))
    ids = np.char.add("it-", np.arange(n).astype(str))
    return pd.DataFrame({{"id": ids, "x": xy[:, 0], "y": xy[:, 1], "cluster": np.char.add("C", lab.astype(str)),
                         "label": "(unlabelled)", "role": "pool", "source": "pool", "path": None}})

f = frame(N)
MAX = {max_points}


@st.cache_resource
def every_point(n):  # Plotly WebGL with every point, as the map drew before MAP_DRAW_MAX
    return latent_map_figure(f, color_by="cluster", max_points=None)


fig = map_figure(("bench", N), "cluster", None, f, None, None) if MAX == "default" else every_point(N)
event = st.plotly_chart(fig, on_select="rerun", selection_mode=("points", "box", "lasso"), key="map")
selection_panel(f, selected_ids(event, f) if MAX == "default" else selected_ids(event), subgroup=None)
'''

TO_PAGE_XY = """(args) => {
    const gd = document.querySelector('.js-plotly-plot');
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, r = gd.getBoundingClientRect();
    return args.map(([x, y]) => [r.left + xa._offset + xa.l2p(x), r.top + ya._offset + ya.l2p(y)]);
}"""


def measure(browser, n: int, repeats: int, workdir: Path, draw: str = "sample") -> tuple[float, list[float]]:
    """Return (seconds to first render, [seconds from mouse-up to panel] per repeat)."""
    script = workdir / f"select_{n}_{draw}.py"
    script.write_text(PAGE.format(n=n, max_points='"default"' if draw == "sample" else "None"))
    proc, url = start_app(workdir, workdir / f"streamlit_{n}_{draw}.log", script=script)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        start = time.perf_counter()
        page.goto(url)
        page.locator(".js-plotly-plot .scatterlayer, .js-plotly-plot canvas").first.wait_for(timeout=300_000)
        page.locator("[data-testid=stApp][data-test-script-state=notRunning]").wait_for(timeout=300_000)
        first_render = time.perf_counter() - start
        times = []
        for k in range(repeats):
            if k:  # a fresh page each time, so every drag draws a new box rather than moving the last one
                page.reload()
                page.locator(".js-plotly-plot canvas").first.wait_for(timeout=300_000)
                page.locator("[data-testid=stApp][data-test-script-state=notRunning]").wait_for(timeout=300_000)
            page.locator(".modebar-btn[data-title='Box Select']").first.click()
            x0, x1 = -4.0 + k, -1.0 + k
            (px0, py0), (px1, py1) = page.evaluate(TO_PAGE_XY, [[x0, -2.0], [x1, 2.0]])
            page.mouse.move(px0, py0)
            page.mouse.down()
            page.mouse.move(px1, py1, steps=8)
            before = page.locator("h3").filter(has_text="Selection:").first.inner_text()
            t0 = time.perf_counter()
            page.mouse.up()
            heading = page.locator("h3").filter(has_text="Selection:").first
            while True:  # poll from Python every 20 ms: in-page polling starved the page at 10k points
                text = heading.inner_text()
                if text != before and not text.startswith("Selection: 0 "):
                    break
                if time.perf_counter() - t0 > 120:
                    raise TimeoutError(f"n={n}: the selection panel did not update within 120 s")
                page.wait_for_timeout(20)
            times.append(time.perf_counter() - t0)
        return first_render, times
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--draw", choices=("sample", "all"), nargs="+", default=["sample"],
                        help="sample: the app's map (at most MAP_DRAW_MAX points drawn, selection by geometry over "
                             "all); all: Plotly WebGL with every point")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    print(f"date      {dt.datetime.now().isoformat(timespec='seconds')}; cores {os.cpu_count()}; "
          f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("measures  mouse-up of a box selection -> selection panel heading updated (Plotly WebGL + Streamlit rerun)")
    with tempfile.TemporaryDirectory(prefix="adde-select-") as tmp, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
            # Keep producing frames as a visible tab would: Plotly emits the selection after a redraw.
            "--disable-renderer-backgrounding", "--disable-background-timer-throttling",
            "--disable-backgrounding-occluded-windows"])
        for n, draw in [(n, d) for n in args.n for d in args.draw]:
            first, times = measure(browser, n, args.repeats, Path(tmp), draw)
            print(f"n={n:>7,} draw={draw:<6}  first render {first:6.2f} s   selection->panel median {statistics.median(times):.2f} s "
                  f"(runs: {', '.join(f'{t:.2f}' for t in times)})")
        browser.close()


if __name__ == "__main__":
    main()
