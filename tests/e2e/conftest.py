"""A real Streamlit server and a real headless Chromium for end-to-end tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(project: Path, log: Path, timeout: float = 180, *,
              script: Path = ROOT / "app.py") -> tuple[subprocess.Popen, str]:
    """Start ``streamlit run <script>`` (the app by default) on a free loopback port and wait until it answers."""
    port = _free_port()
    env = {**os.environ, "ADDE_PROJECT": str(project), "HF_HUB_OFFLINE": "1"}
    # Served as `make run` serves it: no file watcher (polling the sources cost ~3 s of CPU per page load).
    env.setdefault("STREAMLIT_SERVER_FILE_WATCHER_TYPE", "none")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(script), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"streamlit did not answer within {timeout} s:\n{log.read_text()}")


TO_PAGE_XY = """(args) => {
    const gd = document.querySelector('.js-plotly-plot');
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, r = gd.getBoundingClientRect();
    return args.map(([x, y]) => [r.left + xa._offset + xa.l2p(x), r.top + ya._offset + ya.l2p(y)]);
}"""


def box_select(page, x0: float, y0: float, x1: float, y1: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """Drag a box selection on the first Plotly chart between two points in data coordinates.

    Returns the page pixel positions of the two corners.
    """
    page.locator(".modebar-btn[data-title='Box Select']").first.click()
    (px0, py0), (px1, py1) = page.evaluate(TO_PAGE_XY, [[x0, y0], [x1, y1]])
    page.mouse.move(px0, py0)
    page.mouse.down()
    page.mouse.move((px0 + px1) / 2, (py0 + py1) / 2, steps=5)
    page.mouse.move(px1, py1, steps=5)
    page.mouse.up()
    return (px0, py0), (px1, py1)


def wait_idle(page, timeout: float = 60_000) -> None:
    """Wait until the Streamlit script has finished its current run."""
    from playwright.sync_api import expect

    expect(page.locator("[data-testid=stApp][data-test-script-state=notRunning]")).to_be_visible(timeout=timeout)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium not found: install Debian's `chromium` (the CI script does), never `playwright install`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"],
        )
        yield browser
        browser.close()
