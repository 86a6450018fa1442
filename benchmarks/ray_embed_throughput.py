"""The two embedding engines as a user runs them: ``Project.embed`` (``embed --engine local|ray``) on the same images.

Writes N Animal-MNIST demo images as PNG files and ingests them into two fresh projects per round,
then embeds one with ``engine="local"`` and the other with ``engine="ray"`` (one local Ray instance
on loopback with --cpus CPUs, started once and reused, as a long-lived cluster would be), --repeats
times, interleaved. Each rate is end to end through the project: PNG decode, the cache shards and
saving the embedding set included; the Ray rate also includes its actors' start-up (torch import,
model build), paid once per job. Prints the largest absolute difference between the two engines'
stored vectors and both rates as ranges. Asserts nothing about time.

For the engines alone (``embed_with_cache`` vs ``embed_with_ray``, with a steady-state rate) see
``benchmarks/ray_embed.py``. Usage::

    python benchmarks/ray_embed_throughput.py [--n 500] [--repeats 3] [--cpus 2] [--image-size 112]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import print_torch_header  # noqa: E402 - benchmarks/ is on sys.path when run as scripts
from embed_throughput import write_pngs  # noqa: E402 - the same PNG files as the in-process benchmark
from ray_embed import ray_parser, span  # noqa: E402

from adde_core.embedding import distributed  # noqa: E402
from adde_core.project import Project  # noqa: E402


def _project(folder: Path, images: list[Path]) -> Project:
    """A fresh project (own cache) holding the images as seed items."""
    import pandas as pd

    folder.mkdir(parents=True)
    pd.DataFrame({"path": [str(p) for p in images], "label": "animal", "role": "seed"}).to_csv(
        folder / "manifest.csv", index=False)
    project = Project.create(folder / "project")
    report = project.ingest_manifest(folder / "manifest.csv", data_root=images[0].parent)
    if report.n_loaded != len(images):
        raise SystemExit(f"ingest loaded {report.n_loaded} of {len(images)} images: {report.issues[:3]}")
    return project


def main() -> None:
    args = ray_parser(__doc__.splitlines()[0]).parse_args()

    import ray

    params = {"image_size": args.image_size, "device": "cpu"}
    print_torch_header(f"{args.n} Animal-MNIST PNGs, efficientnet-lite0 {params}, batch {args.batch_size}, "
                       f"ray {ray.__version__} on {args.cpus} CPUs")
    with tempfile.TemporaryDirectory(prefix="adde-ray-project-bench-") as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        images = write_pngs(folder, args.n)
        started = time.perf_counter()
        distributed._connect(ray, None, args.cpus)  # what Project.embed(engine="ray") reuses when Ray is up
        print(f"ray start : {time.perf_counter() - started:.1f} s, once per process, not counted below")
        local_rates, ray_rates, diffs = [], [], []
        for round_ in range(args.repeats):
            local = _project(Path(tmp) / f"local-{round_}", images)
            remote = _project(Path(tmp) / f"ray-{round_}", images)
            try:
                a = local.embed(params=params, batch_size=args.batch_size)
                b = remote.embed(params=params, batch_size=args.batch_size, engine="ray")
                assert a.model_key == b.model_key and a.fingerprint == b.fingerprint
                assert a.n_computed == b.n_computed > 0, (a.n_computed, b.n_computed)
                va, vb = (p.store.load_embeddings(a.model_key) for p in (local, remote))
                assert list(va.ids) == list(vb.ids)
                diffs.append(float(np.abs(va.vectors - vb.vectors).max()))
                local_rates.append(a.n_computed / a.seconds)
                ray_rates.append(b.n_computed / b.seconds)
                print(f"round {round_ + 1}   : local {local_rates[-1]:6.1f} img/s ({a.seconds:5.2f} s) | "
                      f"ray {ray_rates[-1]:6.1f} img/s ({b.seconds:5.2f} s) | {a.n_computed} computed | "
                      f"max |diff| {diffs[-1]:.2e}")
            finally:
                local.close()
                remote.close()
        ray.shutdown()
    print(f"local (in-process)  : {span(local_rates)} img/s")
    print(f"ray, end to end     : {span(ray_rates)} img/s (actor start-up included)")
    print(f"max abs difference  : {max(diffs):.2e} over {args.repeats} rounds "
          f"({'within' if max(diffs) <= 1e-5 else 'OVER'} the 1e-5 agreement bound)")


if __name__ == "__main__":
    main()
