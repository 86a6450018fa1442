"""Helpers shared by the benchmark scripts: machine description and repeated timing."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """The CPU's model name, from /proc/cpuinfo where there is one."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def loadavg_line() -> str | None:
    """The 1/5/15-minute load averages, so contended timings can be recognised as such."""
    try:
        return f"loadavg   : {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1/5/15 min) at start"
    except OSError:
        return None


def print_torch_header(setup: str) -> None:
    """Print the date, the machine (torch threads, CUDA), the load and ``setup``: the head of every embedding run."""
    import datetime as dt

    import torch

    print(f"date      : {dt.datetime.now().isoformat(timespec='seconds')}")
    print(f"machine   : {cpu_model()}, {platform.machine()}, torch threads {torch.get_num_threads()}, "
          f"cuda {torch.cuda.is_available()}")
    print(loadavg_line() or "loadavg   : unknown")
    print(f"setup     : {setup}")


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """(median wall seconds, min wall seconds, value of the last call)."""
    times, value = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), value
