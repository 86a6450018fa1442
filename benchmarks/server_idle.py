"""CPU of an idle dashboard server with a browser page open, per Streamlit file-watcher setting.

Starts ``streamlit run app.py`` on the demo project once per file-watcher type, opens a
page in headless Chromium, waits until the script has finished its run, then measures the
server process's CPU over a window in which nobody clicks, and counts the file-watcher
lines in its log ("Inotify queue overflowed ..."). Also prints how many inotify watches
the server holds: Streamlit schedules a *recursive* watch on the folder of every file it
watches, app.py's folder included, which holds ``.venv/``, ``static/`` and ``projects/``.
Prints numbers only; asserts nothing about time.

``none`` is what ``make run`` serves with; ``poll`` what ``make dev`` and a bare
``streamlit run app.py`` use (.streamlit/config.toml); ``auto`` (watchdog) was the default before.

Usage: python benchmarks/server_idle.py [--watchers none poll auto] [--seconds 60] [--page explore]
       python benchmarks/server_idle.py --watchers none --page review --with-candidates --post-gc off on
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import cpu_model, loadavg_line  # noqa: E402
from tests.e2e.conftest import CHROMIUM, start_app  # noqa: E402  (same server start-up as the e2e tests)

DEMO = ROOT / "projects" / "demo"
WATCHER_LINE = re.compile(r"inotify|overflow", re.IGNORECASE)
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def inotify_watches(pid: int) -> int:
    """Number of inotify watches the process holds, summed over its inotify descriptors."""
    total = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd) == "anon_inode:inotify":
                total += sum(line.startswith("inotify wd:")
                             for line in Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text().splitlines())
        except OSError:  # a descriptor closed while we looked
            continue
    return total


def watcher_lines(log: Path) -> int:
    """Lines of the server log that mention inotify or an overflow."""
    return sum(bool(WATCHER_LINE.search(line)) for line in log.read_text(errors="replace").splitlines())


def measure(browser, watcher: str, *, seconds: float, page_path: str, settle: float, workdir: Path,
            project: Path = DEMO, post_gc: str = "off") -> dict:
    """Serve ``project`` with one file-watcher type and post-run GC setting, and measure it while a page sits open."""
    log = workdir / f"streamlit_{watcher}_{post_gc}.log"
    os.environ["STREAMLIT_SERVER_FILE_WATCHER_TYPE"] = watcher  # start_app passes the environment on
    os.environ["STREAMLIT_RUNNER_POST_SCRIPT_GC"] = "true" if post_gc == "on" else "false"
    t0 = time.perf_counter()
    proc, url = start_app(project, log, timeout=300)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/{page_path}")
        page.locator("[data-testid=stApp][data-test-script-state=notRunning]").wait_for(timeout=600_000)
        ready = time.perf_counter() - t0
        time.sleep(settle)  # let the first run's stragglers (thumbnail writes, cache saves) finish
        lines_before = watcher_lines(log)
        c0, w0 = cpu_seconds(proc.pid), time.perf_counter()
        time.sleep(seconds)
        used, wall = cpu_seconds(proc.pid) - c0, time.perf_counter() - w0
        result = {"watcher": watcher, "post_gc": post_gc, "ready_s": ready, "cpu_pct": 100 * used / wall,
                  "watches": inotify_watches(proc.pid), "lines_idle": watcher_lines(log) - lines_before,
                  "lines_total": watcher_lines(log), "total_cpu_s": cpu_seconds(proc.pid)}
        page.close()
        return result
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except Exception:  # noqa: BLE001 - a server that ignores SIGTERM is killed
            proc.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watchers", nargs="+", default=["none", "poll", "auto"],
                        choices=["none", "auto", "watchdog", "poll"], help="server.fileWatcherType values")
    parser.add_argument("--seconds", type=float, default=60.0, help="idle window measured")
    parser.add_argument("--settle", type=float, default=5.0, help="wait after the first run before measuring")
    parser.add_argument("--page", default="", help="URL path of the page to open (default: the Data page)")
    parser.add_argument("--post-gc", nargs="+", default=["off"], choices=["off", "on"],
                        help="runner.postScriptGC: off is what .streamlit/config.toml sets, on Streamlit's default")
    parser.add_argument("--with-candidates", action="store_true",
                        help="serve a copy of the demo with 50 retrieved candidates for its top region (for --page review, "
                             "whose grid refreshes itself every few seconds)")
    args = parser.parse_args(argv)
    from adde_core.project import PROJECT_FILE

    if not (DEMO / PROJECT_FILE).exists():
        print(f"{DEMO} is missing: build it first with `{sys.executable} -m adde_core demo` (1-2 min)")
        return 1
    from playwright.sync_api import sync_playwright

    print(f"server_idle  {dt.datetime.now():%Y-%m-%d %H:%M}  cpu: {cpu_model()} x{os.cpu_count()}")
    if (line := loadavg_line()) is not None:
        print(line)
    print(f"project   : {DEMO}  page: /{args.page}  idle window: {args.seconds:.0f} s, nobody clicking")
    rows = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        project = DEMO
        if args.with_candidates:
            import shutil

            from adde_core.project import Project

            project = Path(tmp) / "demo"
            shutil.copytree(DEMO, project)
            copy = Project.open(project)
            copy.acquire(copy.recommended_regions().regions[0], mode="retrieve", k=50)
            copy.close()
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--headless", "--disable-gpu"])
        for watcher, post_gc in [(w, g) for w in args.watchers for g in args.post_gc]:
            rows.append(measure(browser, watcher, seconds=args.seconds, page_path=args.page, settle=args.settle,
                                workdir=Path(tmp), project=project, post_gc=post_gc))
            r = rows[-1]
            print(f"  {watcher:<9} post-run GC {post_gc:<3} ready {r['ready_s']:6.1f} s · idle CPU {r['cpu_pct']:5.1f}% of a core · "
                  f"{r['watches']:,} inotify watches · watcher log lines {r['lines_idle']:,} while idle, "
                  f"{r['lines_total']:,} in all · server CPU {r['total_cpu_s']:.1f} s in all")
        browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
