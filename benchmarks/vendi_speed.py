"""Measure Vendi score speed and agreement: adde_core.metrics against the vendi-score reference package.

Prints numbers only (no assertions about time). Usage:

    .venv/bin/python benchmarks/vendi_speed.py            # n = 2,000 and 5,000 vs the package; n = 100,000
    .venv/bin/python benchmarks/vendi_speed.py --quick    # small smoke run (a few seconds)
    .venv/bin/python benchmarks/vendi_speed.py --wait-quiet 300   # on a shared machine: start each section
                                                                  # once other processes have been idle 5 s

Timings are wall-clock medians (and minima). A busy machine inflates them a lot with OpenBLAS (its threads
spin while waiting for a core), so each section also prints how much CPU *other* processes used meanwhile.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adde_core.metrics import vendi_score, vendi_score_from_kernel  # noqa: E402
from _common import cpu_model, loadavg_line, timed  # noqa: E402 - benchmarks/ is on sys.path when run as scripts


def machine_info() -> list[str]:
    lines = [
        f"date      : {_dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"python    : {platform.python_version()}  numpy {np.__version__}  ({platform.machine()})",
        f"cpu       : {cpu_model()}; os.cpu_count={os.cpu_count()}, usable={len(os.sched_getaffinity(0))}",
    ]
    try:
        from threadpoolctl import threadpool_info

        for lib in threadpool_info():
            lines.append(
                f"threadpool: {lib.get('internal_api')} {lib.get('version')} "
                f"({lib.get('architecture', '?')}) threads={lib.get('num_threads')} [{lib.get('user_api')}]"
            )
    except ImportError:
        lines.append("threadpool: threadpoolctl not installed")
    if loadavg_line():
        lines.append(loadavg_line())
    return lines



def _busy_jiffies() -> int | None:
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(fields) - fields[3] - fields[4]  # all CPU time except idle and iowait


class OtherLoad:
    """Average number of cores kept busy by other processes while the block runs (Linux only)."""

    def __enter__(self) -> OtherLoad:
        self.j0, self.c0, self.t0 = _busy_jiffies(), time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        j1, c1, t1 = _busy_jiffies(), time.process_time(), time.perf_counter()
        if self.j0 is None or j1 is None:
            self.cores = float("nan")
        else:
            other = (j1 - self.j0) / os.sysconf("SC_CLK_TCK") - (c1 - self.c0)
            self.cores = max(other, 0.0) / max(t1 - self.t0, 1e-9)

    def line(self) -> str:
        return f"(other processes kept {self.cores:.2f} cores busy during this section)"


_QUIET_WAIT_S = 0.0


def wait_quiet(max_wait_s: float | None = None) -> None:
    """Wait (at most ``max_wait_s``) until other processes have used < 5% of one core for 5 seconds."""
    max_wait_s = _QUIET_WAIT_S if max_wait_s is None else max_wait_s
    if max_wait_s <= 0 or _busy_jiffies() is None:
        return
    hz, deadline, quiet = os.sysconf("SC_CLK_TCK"), time.monotonic() + max_wait_s, 0
    prev, prev_own = _busy_jiffies(), time.process_time()
    while time.monotonic() < deadline and quiet < 5:
        time.sleep(1.0)
        cur, own = _busy_jiffies(), time.process_time()  # minus our own idle-spinning BLAS threads
        quiet = quiet + 1 if (cur - prev) / hz - (own - prev_own) < 0.05 else 0
        prev, prev_own = cur, own
    if quiet < 5:
        print(f"(machine still busy after waiting {max_wait_s:.0f} s; timings below are contended)")



def make_embeddings(n: int, d: int, seed: int = 0) -> np.ndarray:
    # A decaying spectrum (like real embeddings) rather than isotropic noise; float32 like model outputs.
    rng = np.random.default_rng(seed)
    scales = (1.0 / np.sqrt(np.arange(1, d + 1))).astype(np.float32)
    return rng.standard_normal((n, d), dtype=np.float32) * scales


def compare_with_package(sizes: list[int], d: int, repeats: int) -> None:
    from vendi_score import vendi as ref

    warnings.filterwarnings("ignore", message="Please import `csr_matrix`", category=DeprecationWarning)
    print(f"\n## Ours vs vendi-score 0.0.3, d = {d}, q = 1 (cosine kernel; {repeats} runs each, n×n paths: 1 run)")
    print("ratio = median time / median time of ours (float64); |diff| vs ours float64, or vs score_K for n×n")
    header = f"{'n':>7} {'method':<34} {'median s':>9} {'min s':>8} {'ratio':>8} {'value':>18} {'|diff|':>10}"
    print(header)
    print("-" * len(header))
    for n in sizes:
        wait_quiet()
        with OtherLoad() as load:
            X = make_embeddings(n, d, seed=n)
            X64 = X.astype(np.float64)
            t_ours, m_ours, v_ours = timed(lambda: vendi_score(X), repeats)
            t_o32, m_o32, v_o32 = timed(lambda: vendi_score(X, precision="float32"), repeats)
            t_dual, m_dual, v_dual = timed(lambda: ref.score_dual(X64), repeats)
            Xn = X64 / np.linalg.norm(X64, axis=1, keepdims=True)
            K = Xn @ Xn.T  # precomputed, not timed
            t_K, m_K, v_K = timed(lambda: ref.score_K(K), 1)
            t_oK, m_oK, v_oK = timed(lambda: vendi_score_from_kernel(K), 1)
        rows = [
            ("ours vendi_score (float64)", t_ours, m_ours, v_ours, None),
            ("ours vendi_score (float32)", t_o32, m_o32, v_o32, abs(v_o32 - v_ours)),
            ("ref score_dual (d×d)", t_dual, m_dual, v_dual, abs(v_dual - v_ours)),
            ("ref score_K (n×n, K given)", t_K, m_K, v_K, abs(v_K - v_ours)),
            ("ours vendi_score_from_kernel (n×n)", t_oK, m_oK, v_oK, abs(v_oK - v_K)),
        ]
        for name, t, tmin, v, diff in rows:
            d_txt = "" if diff is None else f"{diff:10.2e}"
            print(f"{n:>7} {name:<34} {t:9.4f} {tmin:8.4f} {t / t_ours:7.2f}x {v:18.10f} {d_txt}")
        print(
            f"{'':>7} speed-up of ours (float64) over score_dual: {t_dual / t_ours:.1f}x, "
            f"over score_K: {t_K / t_ours:.1f}x {load.line()}"
        )


def large_n(n: int, d: int, repeats: int) -> None:
    print(f"\n## Ours at n = {n:,}, d = {d} (float32 input, {repeats} runs after 1 warm-up)")
    X = make_embeddings(n, d, seed=1)
    for precision in ("float64", "float32"):
        vendi_score(X, precision=precision)  # warm-up: page faults, BLAS thread start
        wait_quiet()
        times, cpu = [], []
        value = None
        with OtherLoad() as load:
            for _ in range(repeats):
                c0, t0 = time.process_time(), time.perf_counter()
                value = vendi_score(X, precision=precision)
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
        print(
            f"precision={precision:<8} median {statistics.median(times):.3f} s  (min {min(times):.3f}, "
            f"max {max(times):.3f}; CPU {statistics.median(cpu):.3f} s)  VS_1 = {value:.6f}  {load.line()}"
        )
    t, _, v = timed(lambda: vendi_score(X, q=0.5), 1)
    print(f"q=0.5 (float64), one run: {t:.3f} s  VS_0.5 = {v:.6f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument(
        "--wait-quiet", type=float, default=0.0, metavar="S",
        help="before each section wait up to S seconds for other processes to go idle (Linux)",
    )
    args = parser.parse_args(argv)
    global _QUIET_WAIT_S
    _QUIET_WAIT_S = args.wait_quiet
    print("# Vendi score benchmark" + (" (--quick)" if args.quick else ""))
    for line in machine_info():
        print(line)
    if args.quick:
        compare_with_package([300, 600], d=64, repeats=3)
        large_n(10_000, 64, repeats=3)
    else:
        compare_with_package([2_000, 5_000], d=512, repeats=5)
        large_n(100_000, 512, repeats=5)
    try:
        print(f"\nloadavg at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    except OSError:
        pass


if __name__ == "__main__":
    main()
