"""First Explore render after a server restart, in a real browser, against the cold analysis time.

On a private copy of the demo project with no stored analysis:

1. cold analysis: ``Project.analyze()`` in a new process (imports, numba JIT, UMAP, HDBSCAN,
   regions), as every server restart paid before analyses were stored;
2. first open: a server is started and Explore opened in headless Chromium (thumbnails are
   made here, once per project), then Diversity and Trends;
3. restart: the server is stopped, a new one started, and Explore opened again: the time from
   navigation until the map is drawn and the script has finished. Then Diversity and Trends.

Prints the times and the ratio restart / cold (target <= 0.15; goal <= 3 s on 2 cores).
Asserts nothing about time.

Usage: NUMBA_CACHE_DIR=.cache/numba .venv/bin/python benchmarks/first_render.py [--project projects/demo]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import CHROMIUM, start_app  # noqa: E402  (the e2e tests' server start-up)

COLD = """
import sys, time
t0 = time.perf_counter()
from adde_core.project import Project
p = Project.open(sys.argv[1])
r = p.analyze()
cold = time.perf_counter() - t0
print(f"COLD {cold:.2f} " + " ".join(f"{k}={v:.1f}" for k, v in r.timings.items()))
if not p.has_metrics():
    t1 = time.perf_counter(); p.measure(); print(f"MEASURE {time.perf_counter() - t1:.2f}")
"""


def open_page(browser, url: str, path: str, ready: str) -> float:
    """Seconds from navigation to ``ready`` visible and the script finished."""
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    start = time.perf_counter()
    page.goto(f"{url}/{path}")
    expect(page.locator(ready).first).to_be_visible(timeout=600_000)
    expect(page.locator("[data-testid=stApp][data-test-script-state=notRunning]")).to_be_visible(timeout=600_000)
    seconds = time.perf_counter() - start
    page.close()
    return seconds


def serve_and_open(browser, project: Path, log: Path) -> dict[str, float]:
    start = time.perf_counter()
    proc, url = start_app(project, log, timeout=300)
    times = {"server start": time.perf_counter() - start}
    try:
        times["explore"] = open_page(browser, url, "explore", ".js-plotly-plot")
        times["explore, second tab"] = open_page(browser, url, "explore", ".js-plotly-plot")
        times["diversity"] = open_page(browser, url, "diversity", "[data-testid=stMetric]")
        times["trends"] = open_page(browser, url, "trends", ".js-plotly-plot")
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", default=str(ROOT / "projects" / "demo"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))
    with tempfile.TemporaryDirectory(prefix="adde-first-render-") as tmp:
        project = Path(tmp) / "demo"
        shutil.copytree(args.project, project, ignore=shutil.ignore_patterns("analysis", "maps"))
        out = subprocess.run([sys.executable, "-c", COLD, str(project)], capture_output=True, text=True,
                             cwd=ROOT, check=True).stdout
        cold_line = next(line for line in out.splitlines() if line.startswith("COLD"))
        cold = float(cold_line.split()[1])
        print(f"cold analysis in a new process: {cold:.1f} s ({' '.join(cold_line.split()[2:])})")
        for line in out.splitlines():
            if line.startswith("MEASURE"):
                print(f"(iteration 0 was not measured in this copy: measured it in {line.split()[1]} s, not timed below)")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM,
                                         args=["--no-sandbox", "--headless", "--disable-gpu",
                                               "--disable-background-networking"])
            first = serve_and_open(browser, project, Path(tmp) / "first.log")
            again = serve_and_open(browser, project, Path(tmp) / "restart.log")
            browser.close()
    print(f"\n{'page':24s} {'first open':>11s} {'after restart':>14s}")
    for key in first:
        print(f"{key:24s} {first[key]:10.1f}s {again[key]:13.1f}s")
    print(f"\nfirst Explore render after a restart: {again['explore']:.1f} s = {again['explore'] / cold:.3f} x the cold "
          f"analysis ({cold:.1f} s); target <= 0.15 x, goal <= 3 s ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
