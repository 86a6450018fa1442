"""Wall seconds, CPU seconds and peak RSS per stage of a 10^5 or 10^6-item project of precomputed 512-d embeddings.

Builds a synthetic project in a temporary folder: a Gaussian mixture of ``--components``
common components (one label each) plus ``--rare`` rare components (0.05%, 0.1%, 0.2%, ...
of the items), as float32 512-d vectors in a ``.npy`` with a CSV manifest. The seed set
(``--seed-items`` labelled items) has no rare item; val and pool do, so each rare component
is a place the dataset misses. The stages run as the app and the CLI run them, through the
project's own entry points, each in its own child process so its peak RSS is its own:

- ingest:    ``Project.ingest_manifest(manifest, embeddings=<.npy>)``
- analysis:  ``Project.analyze()`` (map, clusters, regions; computed, then stored)
- selection: ``Project.analyze()`` again (read from the store, as every page open does), a box on the
             map with ~1% of the items, and the selection panel's tables for it
- retrieval: ``Project.acquire(<top region>, mode="retrieve")``
- oracle:    ``Project.run_oracle_iteration(budget=40, n_regions=2, generate=False)``

Each child reports wall seconds, CPU seconds (user + system, all threads) and its peak RSS
(``ru_maxrss``). The check line says, per rare component, the region that holds most of it and
that region's precision and recall. Prints numbers only; asserts nothing about time.

Usage: NUMBA_CACHE_DIR=.cache/numba nice -n 15 .venv/bin/python benchmarks/scale.py --n 100000
       ... --n 1000000 [--keep DIR] [--stages ingest,analysis,selection,retrieval,oracle]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import cpu_model, loadavg_line  # noqa: E402

STAGES = ("ingest", "analysis", "selection", "retrieval", "oracle")
DIM = 512
#: Shares of the items in each rare component (the first ``--rare`` are used).
RARE_SHARES = (0.0005, 0.001, 0.002, 0.004)
MODEL_KEY = "precomputed:synthetic"


# --------------------------------------------------------------------------- data
def make_data(folder: Path, n: int, *, components: int, rare: int, seed_items: int, val_share: float,
              seed: int = 0) -> dict:
    """Write ``embeddings.npy`` and ``manifest.csv`` for an ``n``-item mixture; returns the component per row."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    shares = np.asarray(RARE_SHARES[:rare])
    n_rare = np.maximum(1, np.round(shares * n)).astype(int)
    n_common = n - int(n_rare.sum())
    comp = np.concatenate([rng.integers(0, components, n_common),
                           np.repeat(components + np.arange(rare), n_rare)])
    comp = comp[rng.permutation(n)]
    # Well-separated means on a sphere of radius 1.2 (noise has radius ~1): every common
    # component is its own mode, and a rare component lies as far from the others.
    means = rng.normal(size=(components + rare, DIM)).astype(np.float32)
    means *= 1.2 / np.linalg.norm(means, axis=1, keepdims=True)
    X = np.lib.format.open_memmap(folder / "embeddings.npy", mode="w+", dtype=np.float32, shape=(n, DIM))
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        block = rng.normal(scale=1 / np.sqrt(DIM), size=(stop - start, DIM)).astype(np.float32)
        X[start:stop] = means[comp[start:stop]] + block
    X.flush()
    del X
    # A rare component is a sub-mode of one common class: the label exists in the seed, the mode does not.
    label_of = np.concatenate([np.arange(components), np.arange(rare) % components])
    labels = np.char.add("class-", label_of[comp].astype(str))
    role = np.where(rng.random(n) < val_share, "val", "pool").astype(object)
    common_rows = np.flatnonzero(comp < components)
    role[rng.choice(common_rows, size=min(seed_items, len(common_rows)), replace=False)] = "seed"
    frame = pd.DataFrame({"id": np.char.add("it-", np.arange(n).astype(str)), "role": role,
                          "label": np.where(role == "pool", "", labels),
                          "oracle_label": np.where(role == "pool", labels, "")})
    frame.to_csv(folder / "manifest.csv", index=False)
    np.save(folder / "components.npy", comp)
    return {"n": n, "n_rare": n_rare.tolist(), "components": components}


# --------------------------------------------------------------------------- stages (child side)
def _top_region(analysis):
    for region in analysis.regions:
        if region.kind == "coverage_gap":
            return region
    return analysis.regions.regions[0]


def run_stage(stage: str, folder: Path) -> dict:
    """Run one stage in this (child) process and return what it measured besides time and memory."""
    from adde_core.project import Project

    info: dict = {}
    if stage == "ingest":
        project = Project.create(folder / "project", name="scale")
        report = project.ingest_manifest(folder / "manifest.csv", embeddings=folder / "embeddings.npy",
                                         embedding_name="synthetic")
        info["loaded"] = report.n_loaded
        info["rejected"] = report.n_rejected
        return info
    project = Project.open(folder / "project")
    if stage == "analysis":
        analysis = project.analyze(MODEL_KEY)
        info["steps"] = {k: round(v, 1) for k, v in analysis.timings.items()}
        info["clusters"] = analysis.clusters.n_clusters
        info["regions"] = len(analysis.regions)
        info["check"] = rare_check(analysis, folder)
        info["placement"] = {str(k): int(v) for k, v in zip(*np.unique(analysis.map.placement, return_counts=True))}
        return info
    if stage == "selection":
        t = time.perf_counter()
        analysis = project.analyze(MODEL_KEY)
        info["analysis_from_store_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        xy = analysis.coords
        # A square box around item 0 holding ~1% of the items, as a person would drag it.
        cheb = np.abs(xy - xy[0]).max(axis=1)
        inside = cheb <= np.quantile(cheb, 0.01)
        ids = analysis.items["id"].to_numpy()[inside]
        items = analysis.items
        chosen = items[items["id"].isin(ids)]
        tables = (chosen["role"].value_counts(), chosen["label"].dropna().value_counts(),
                  chosen["cluster"].value_counts())
        info["selected"] = int(len(chosen))
        info["panel_tables_s"] = round(time.perf_counter() - t, 3)
        info["n_tables"] = len(tables)
        return info
    if stage == "retrieval":
        analysis = project.analyze(MODEL_KEY)
        region = _top_region(analysis)
        result = project.acquire(region, mode="retrieve", model_key=MODEL_KEY)
        info["region"] = region.region_id
        info["candidates"] = int(len(result.candidates))
        return info
    if stage == "oracle":
        summary = project.run_oracle_iteration(budget=40, n_regions=2, generate=False, model_key=MODEL_KEY)
        info["iteration"] = summary.index
        info["added"] = summary.added
        info["accuracy"] = summary.metrics.get("accuracy")
        return info
    raise SystemExit(f"unknown stage {stage!r}")


def rare_check(analysis, folder: Path) -> list[dict]:
    """Per rare component: the region holding most of its items, with that region's precision and recall."""
    comp = np.load(folder / "components.npy")
    meta = json.loads((folder / "meta.json").read_text())
    k = meta["components"]
    pos = {i: p for p, i in enumerate(np.char.add("it-", np.arange(len(comp)).astype(str)).tolist())}
    out = []
    for r in range(len(meta["n_rare"])):
        members = comp == k + r
        best = {"rare": r, "size": int(members.sum()), "found": False, "region": None, "precision": 0.0,
                "recall": 0.0}
        for region in analysis.regions:
            rows = np.fromiter((pos[i] for i in region.member_ids.tolist()), dtype=np.int64,
                               count=len(region.member_ids))
            hit = int(members[rows].sum())
            recall = hit / max(1, int(members.sum()))
            if hit and recall > best["recall"]:
                best.update(region=region.region_id, precision=round(hit / len(rows), 3), recall=round(recall, 3))
        # Found: some region is mostly this component and holds at least a fifth of it.
        best["found"] = best["precision"] >= 0.5 and best["recall"] >= 0.2
        out.append(best)
    return out


def child(stage: str, folder: Path, out: Path) -> None:
    start, cpu0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    info = run_stage(stage, folder)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    info.update(wall_s=time.perf_counter() - start,
                cpu_s=(usage.ru_utime - cpu0.ru_utime) + (usage.ru_stime - cpu0.ru_stime),
                peak_rss_gib=usage.ru_maxrss / 2**20)
    out.write_text(json.dumps(info, default=str))


# --------------------------------------------------------------------------- parent
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--components", type=int, default=20)
    parser.add_argument("--rare", type=int, default=3)
    parser.add_argument("--seed-items", type=int, default=2_000)
    parser.add_argument("--val-share", type=float, default=0.05)
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--keep", type=Path, default=None, help="build in (and keep) this folder")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        child(args.stage, args.folder, args.out)
        return

    folder = args.keep or Path(tempfile.mkdtemp(prefix="adde-scale-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"date      : {dt.datetime.now().isoformat(timespec='seconds')}")
    print(f"machine   : {cpu_model()}, {platform.machine()}, {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM")
    print(loadavg_line() or "loadavg   : unknown")
    print(f"setup     : n={args.n:,} x {DIM} float32, {args.components} common + {args.rare} rare components, "
          f"{args.seed_items} seed items, val share {args.val_share}, folder {folder}")
    try:
        if not (folder / "meta.json").exists():
            t = time.perf_counter()
            meta = make_data(folder, args.n, components=args.components, rare=args.rare,
                             seed_items=args.seed_items, val_share=args.val_share)
            (folder / "meta.json").write_text(json.dumps(meta))
            print(f"data      : written in {time.perf_counter() - t:.1f} s; rare sizes {meta['n_rare']}")
        print(f"{'stage':<10} {'wall s':>8} {'CPU s':>8} {'peak RSS GiB':>13}  details")
        for stage in args.stages.split(","):
            out = folder / f"stage-{stage}.json"
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            proc = subprocess.run([sys.executable, __file__, "--stage", stage, "--folder", str(folder),
                                   "--out", str(out)], env=env)
            if proc.returncode != 0:
                print(f"{stage:<10} failed with exit code {proc.returncode}")
                break
            info = json.loads(out.read_text())
            wall, cpu, rss = info.pop("wall_s"), info.pop("cpu_s"), info.pop("peak_rss_gib")
            check = info.pop("check", None)
            print(f"{stage:<10} {wall:8.1f} {cpu:8.1f} {rss:13.2f}  {json.dumps(info, default=str)}", flush=True)
            if check is not None:
                found = sum(c["found"] for c in check)
                print(f"check     : {found}/{len(check)} rare components found among the regions: "
                      + "; ".join(f"rare {c['rare']} ({c['size']} items) -> {c['region']} precision "
                                  f"{c['precision']:.2f} recall {c['recall']:.2f}" for c in check), flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
