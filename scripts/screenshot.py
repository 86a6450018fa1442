"""Take the README screenshot: start the app on a project, open a page in headless Chromium, save a PNG.

Usage: python scripts/screenshot.py [--project projects/demo] [--page data] [--out docs/screenshot-data.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import CHROMIUM, start_app  # noqa: E402  (reuses the tested server start-up)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", default=str(ROOT / "projects" / "demo"))
    parser.add_argument("--page", default="", help="URL path of the page, e.g. 'explore' (default: the Data page)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshot-data.png"))
    parser.add_argument("--wait-for", default="[data-testid=stImage] img", help="CSS selector that marks the page ready")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    proc, url = start_app(Path(args.project).resolve(), Path("/tmp/adde-screenshot.log"))
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--headless", "--disable-gpu",
                                                                          "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.goto(f"{url}/{args.page}")
            page.locator("[data-testid=stApp][data-test-script-state=notRunning]").wait_for(timeout=180_000)
            page.locator(args.wait_for).first.wait_for(timeout=180_000)
            page.wait_for_timeout(1500)
            page.screenshot(path=args.out, full_page=False)
            browser.close()
    finally:
        proc.terminate()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
