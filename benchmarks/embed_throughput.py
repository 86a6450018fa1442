"""Measure end-to-end image embedding throughput (PNG decode included) against a plain torchvision loop.

Writes N Animal-MNIST images as PNG files in an ImageFolder layout, then times,
in one run and interleaved over --repeats rounds:

(a) ADDE: ``EfficientNetLite0Embedder(image_size=112).embed_images(paths)``;
(b) reference: ``torchvision.datasets.ImageFolder`` with PIL and torchvision
    transforms, ``DataLoader(batch_size=64)``, and the unmodified EfficientNet-Lite0
    module (same weights and padding; no BatchNorm folding, channels-first);
(c) ``embed_with_cache`` over the same files twice: computing all, then all cache hits.

Prints numbers only; it asserts nothing about time. Usage::

    python benchmarks/embed_throughput.py [--n 2000] [--device cpu|cuda|auto] [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adde_core.embedding import EfficientNetLite0Embedder, EmbeddingCache, embed_with_cache, file_sha1  # noqa: E402
from adde_core.embedding.efficientnet import IMAGENET_MEAN, IMAGENET_STD, weights_path  # noqa: E402

ASSET = ROOT / "assets" / "animal_mnist" / "animal_mnist.npz"


def write_pngs(folder: Path, n: int) -> list[Path]:
    """Write the first n Animal-MNIST images as PNGs in class subfolders (ImageFolder layout)."""
    with np.load(ASSET, allow_pickle=False) as data:
        images, labels, classes = data["images"][:n], data["labels"][:n], data["classes"]
    paths = []
    for index, (array, label) in enumerate(zip(images, labels, strict=True)):
        path = folder / str(classes[label]) / f"{index:05d}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(array).save(path)
        paths.append(path)
    return paths


def reference_loop(folder: Path, image_size: int, device: str):
    """Build the plain torchvision pipeline; return a function that embeds the whole folder."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    # image_size gives the same TF-style padding as (a); without it the padding is set for 224 px.
    model = EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
    model.load_state_dict(torch.load(weights_path(), map_location="cpu", weights_only=True))
    model = model.eval().to(device)
    transform = transforms.Compose(
        [
            transforms.Resize(image_size, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(image_size),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    dataset = datasets.ImageFolder(str(folder), transform=transform)
    with torch.inference_mode():  # warm-up, as for (a)
        model.extract_features(torch.zeros(64, 3, image_size, image_size, device=device))

    def run() -> np.ndarray:
        out = []
        with torch.inference_mode():
            for batch, _ in DataLoader(dataset, batch_size=64):
                features = model.extract_features(batch.to(device)).mean(dim=(2, 3))
                out.append(torch.nn.functional.normalize(features, dim=1).cpu())
        return torch.cat(out).numpy()

    return run


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo where there is one."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor()


def timed(fn):
    """Return (seconds, result) of calling fn()."""
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="number of PNG files (max 10000)")
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timing rounds; best and median shown")
    args = parser.parse_args()

    import torch

    embedder = EfficientNetLite0Embedder(image_size=args.image_size, device=args.device)
    device = str(embedder.device)
    print(f"date            {dt.datetime.now().isoformat(timespec='seconds')}")
    print(
        f"machine         {platform.platform()}; CPU {cpu_name()}; cores {os.cpu_count()}"
        f" (usable {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'})"
    )
    print(f"load average    {' '.join(f'{x:.2f}' for x in os.getloadavg())}  (other jobs on the machine skew timings)")
    print(
        f"torch           {torch.__version__}; threads {torch.get_num_threads()}; device {device}"
        + (f" ({torch.cuda.get_device_name()})" if device.startswith("cuda") else "")
    )
    print(
        f"workload        {args.n} Animal-MNIST 28x28 grayscale PNGs -> EfficientNet-Lite0 @ {args.image_size} px,"
        f" batch {args.batch_size}"
    )

    with tempfile.TemporaryDirectory(prefix="adde-bench-") as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        paths = write_pngs(folder, args.n)
        paths = sorted(paths)  # ImageFolder order, so the two pipelines see the same sequence
        reference = reference_loop(folder, args.image_size, device)
        embedder.embed_images(paths[:64], batch_size=args.batch_size)  # warm-up: oneDNN kernel selection
        ours_s, ref_s = [], []
        for _ in range(max(args.repeats, 1)):
            seconds, ours = timed(lambda: embedder.embed_images(paths, batch_size=args.batch_size))
            ours_s.append(seconds)
            seconds, ref = timed(reference)
            ref_s.append(seconds)

        cache = EmbeddingCache(Path(tmp) / "cache")
        hash_s, keys = timed(lambda: [file_sha1(p) for p in paths])
        cold = embed_with_cache(embedder, paths, keys, cache, batch_size=args.batch_size)
        warm = embed_with_cache(embedder, paths, keys, cache, batch_size=args.batch_size)

    def rate(seconds: list[float]) -> str:
        return (
            f"best {args.n / min(seconds):7.1f} img/s   median {args.n / statistics.median(seconds):7.1f} img/s"
            f"   ({', '.join(f'{s:.2f}' for s in seconds)} s)"
        )

    print(f"(a) ADDE embed_images        {rate(ours_s)}")
    print(f"(b) torchvision reference    {rate(ref_s)}")
    print(
        f"ratio (a)/(b)                best {min(ref_s) / min(ours_s):.2f}x   median "
        f"{statistics.median(ref_s) / statistics.median(ours_s):.2f}x"
    )
    print(
        f"max |a - b| per coordinate   {float(np.abs(ours - ref).max()):.2e}"
        "  (same function: (b) has unfused BatchNorm, channels-first layout, torchvision transforms)"
    )
    print(f"content keys (sha1)          {hash_s:.2f} s for {args.n} files")
    for name, outcome in (("first", cold), ("second (cache hits)", warm)):
        print(
            f"(c) embed_with_cache, {name:<20} {outcome.seconds:7.3f} s"
            f"  (computed {outcome.n_computed}, cached {outcome.n_cached})"
        )


if __name__ == "__main__":
    main()
