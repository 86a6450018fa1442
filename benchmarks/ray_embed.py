"""Compare the in-process and the Ray Data embedding engines on the same images, in one run, interleaved.

Writes N Animal-MNIST images as PNG files, starts one local Ray instance (loopback, --cpus CPUs) and
then, --repeats times, embeds all of them with EfficientNet-Lite0 into a fresh cache with each engine:

- in-process: ``embed_with_cache`` (the model built once, before timing, as an app or CLI run has it);
- Ray: ``embed_with_ray``, one model actor per CPU (per GPU when there are GPUs). Each job starts its
  actors, so its end-to-end time includes their start-up (torch import, model build); the steady rate
  counts from the moment every actor has returned its first batch to the end.

Prints both throughputs (img/s, PNG decode and cache writes included) as min-max ranges and medians,
and the largest absolute difference between the two engines' vectors. It asserts nothing about time.
Usage::

    python benchmarks/ray_embed.py [--n 500] [--repeats 3] [--cpus 2] [--device cpu|auto] [--address ADDR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adde_core.embedding import EmbeddingCache, create_embedder, embed_with_cache, file_sha1  # noqa: E402
from adde_core.embedding import distributed  # noqa: E402
from _common import print_torch_header  # noqa: E402 - benchmarks/ is on sys.path when run as scripts
from embed_throughput import write_pngs  # noqa: E402 - the same PNG files as the in-process benchmark


def span(values: list[float], digits: int = 0) -> str:
    """'min-max (median m)' of a list of rates."""
    return f"{min(values):.{digits}f}-{max(values):.{digits}f} (median {statistics.median(values):.{digits}f})"


def ray_parser(description: str) -> argparse.ArgumentParser:
    """The flags both Ray embedding benchmarks take: images, repeats, Ray CPUs, image and batch size."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--batch-size", type=int, default=64)
    return parser


def main() -> None:
    parser = ray_parser(__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="embedder device: cpu, cuda or auto")
    parser.add_argument("--address", default=None, help="a Ray cluster instead of a local instance")
    args = parser.parse_args()

    import ray

    params = {"image_size": args.image_size, "device": args.device}
    print_torch_header(f"{args.n} Animal-MNIST PNGs, efficientnet-lite0 {params}, batch {args.batch_size}, "
                       f"ray {ray.__version__}")
    with tempfile.TemporaryDirectory(prefix="adde-ray-bench-") as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        paths = write_pngs(folder, args.n)
        keys = [file_sha1(p) for p in paths]
        distinct = len(set(keys))  # identical images are computed once; rates count computed images
        print(f"distinct  : {distinct} of {args.n} images")
        embedder = create_embedder("efficientnet-lite0", **params)
        started = time.perf_counter()
        if args.address is None:
            distributed._connect(ray, None, args.cpus)
        else:
            ray.init(address=args.address)
        print(f"ray start : {time.perf_counter() - started:.1f} s ({ray.cluster_resources().get('CPU', 0):g} CPUs, "
              f"{ray.cluster_resources().get('GPU', 0):g} GPUs), paid once per process, not counted below")

        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0)) if args.device != "cpu" else 0
        slots = gpus or int(resources["CPU"])
        actors = max(1, min(slots, -(-distinct // args.batch_size)))  # what embed_with_ray starts by default
        local_rates, ray_rates, steady_rates, diffs = [], [], [], []
        for round_ in range(args.repeats):
            local = embed_with_cache(embedder, paths, keys, EmbeddingCache(Path(tmp) / f"local-{round_}"),
                                     batch_size=args.batch_size)
            stamps: list[tuple[float, int]] = []
            remote = distributed.embed_with_ray(
                "efficientnet-lite0", params, paths, keys, EmbeddingCache(Path(tmp) / f"ray-{round_}"),
                model_key=embedder.key, batch_size=args.batch_size,
                progress=lambda done, total: stamps.append((time.perf_counter(), done)),
            )
            assert remote.n_computed == local.n_computed == distinct, (remote.n_computed, local.n_computed)
            # Steady rate: from the moment every actor has delivered its first batch, to the end.
            (first_t, first_done), (last_t, last_done) = stamps[min(actors, len(stamps) - 1) - 1], stamps[-1]
            local_rates.append(distinct / local.seconds)
            ray_rates.append(distinct / remote.seconds)
            steady_rates.append((last_done - first_done) / (last_t - first_t) if last_t > first_t else float("nan"))
            diffs.append(float(np.abs(local.vectors - remote.vectors).max()))
            print(f"round {round_ + 1}   : in-process {local_rates[-1]:6.1f} img/s ({local.seconds:5.2f} s) | "
                  f"ray {ray_rates[-1]:6.1f} img/s end to end ({remote.seconds:5.2f} s, first batch after "
                  f"{stamps[0][0] - (last_t - remote.seconds):4.1f} s), steady {steady_rates[-1]:6.1f} img/s | "
                  f"max |diff| {diffs[-1]:.2e}")
        ray.shutdown()
    print(f"in-process          : {span(local_rates)} img/s")
    print(f"ray, end to end     : {span(ray_rates)} img/s (actor start-up included)")
    print(f"ray, steady         : {span(steady_rates)} img/s ({actors} actors, once each has returned a batch)")
    print(f"max abs difference  : {max(diffs):.2e} over {args.repeats} rounds (float32 vectors of unit norm)")


if __name__ == "__main__":
    main()
