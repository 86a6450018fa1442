"""Measure conditional-VAE training and sampling speed on the demo seed set, and what the quality gate keeps.

Sections (numbers only; nothing is asserted about time):

1. Data: the demo seed set (330 labelled Animal-MNIST images, the shipped DemoSpec split) or ``--n`` images
   balanced over the 10 classes; their EfficientNet-Lite0 embeddings (the CVAE's position condition) are
   computed here and timed separately.
2. CVAE training on the CPU with 1 thread (the default) and with torch's default thread count, and on CUDA
   when a GPU is visible: seconds, epochs, optimiser steps, images/s (images x epochs / seconds).
3. Sampling: seconds for 64 region-aimed images (member encoding included) and images/s.
4. ``--gate``: a real demo region. The analysis (map, clusters, sparse regions) runs on the built demo
   project (read only), the top region with a dominant label is the target, CVAE and augmentation
   candidates are embedded and gated. The "current model" is a logistic-regression head on the seed
   embeddings (the design's frozen backbone + trainable head). Prints the share kept and why the rest failed.

Usage::

    .venv/bin/python benchmarks/generator_training.py                 # demo seed set, sections 1-3
    .venv/bin/python benchmarks/generator_training.py --n 2000        # 2,000 images
    .venv/bin/python benchmarks/generator_training.py --gate          # plus the gate on a real region
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adde_core.acquisition.generation import ConditionalVAE, RegionTarget, create_generator  # noqa: E402
from adde_core.data.demo import DemoSpec, demo_split, first_copies, load_animal_mnist  # noqa: E402
from _common import cpu_model, loadavg_line  # noqa: E402 - benchmarks/ is on sys.path when run as scripts

DEMO = ROOT / "projects" / "demo"


def machine_info() -> list[str]:
    import torch

    lines = [
        f"date      : {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"python    : {platform.python_version()}  numpy {np.__version__}  torch {torch.__version__} "
        f"({platform.machine()})",
        f"cpu       : {cpu_model()}; os.cpu_count={os.cpu_count()}, usable={len(os.sched_getaffinity(0))}, "
        f"torch threads={torch.get_num_threads()}",
        f"cuda      : {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'not available'}",
    ]
    if loadavg_line():
        lines.append(loadavg_line())
    return lines



def training_data(n: int | None) -> tuple[np.ndarray, list[str], str]:
    """The demo seed split (n None) or n images balanced over the classes (distinct images only)."""
    from adde_core.data.attributes import silhouette_attributes

    images, labels, classes = load_animal_mnist()
    usable = first_copies(images)
    if n is None:
        roles = demo_split(labels, classes, silhouette_attributes(images), DemoSpec(), usable=usable)
        idx = np.flatnonzero(roles == "seed")
        what = "demo seed set (DemoSpec defaults)"
    else:
        rng = np.random.default_rng(0)
        per = -(-n // len(classes))
        idx = np.concatenate([rng.permutation(np.flatnonzero((labels == c) & usable))[:per]
                              for c in range(len(classes))])[:n]
        what = f"{len(idx)} images balanced over {len(classes)} classes"
    return images[idx], [classes[k] for k in labels[idx]], what


def embed(images, device: str = "auto") -> tuple[np.ndarray, float]:
    from PIL import Image

    from adde_core.embedding import create_embedder

    embedder = create_embedder("efficientnet-lite0", device=device)
    start = time.perf_counter()
    vectors = embedder.embed_images([Image.fromarray(a) if isinstance(a, np.ndarray) else a for a in images])
    return vectors, time.perf_counter() - start


def time_training(images, labels, vectors, *, device: str, num_threads: int | None, epochs: int | None):
    model = ConditionalVAE(device=device, num_threads=num_threads, epochs=epochs, random_state=0)
    start = time.perf_counter()
    model.fit(list(images), labels, conditions=vectors)
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    steps = model.epochs_ * -(-len(images) // model.batch_size)
    return model, seconds, steps


def time_sampling(model: ConditionalVAE, images, labels, vectors, n: int = 64) -> float:
    labels_arr = np.array(labels)
    anchor = 0
    same = np.flatnonzero(labels_arr == labels_arr[anchor])
    members = same[np.argsort(-(vectors[same] @ vectors[anchor]))[:20]]
    target = RegionTarget(region_id="bench", centroid=vectors[members].mean(axis=0),
                          member_images=tuple(images[members]), member_labels=tuple(labels_arr[members]),
                          member_vectors=vectors[members])
    model.generate(target, 4, seed=0)  # warm-up
    start = time.perf_counter()
    model.generate(target, n, seed=1)
    return time.perf_counter() - start


def gate_section(n_candidates: int, max_regions: int = 5) -> None:
    from sklearn.linear_model import LogisticRegression

    from adde_core.acquisition.generation.base import load_image_array
    from adde_core.acquisition.quality_gate import GateConfig, gate_candidates, region_radius
    from adde_core.analysis import LatentMap, analyze_embeddings
    from adde_core.project import Project

    if not (DEMO / "adde_project.json").exists():
        print(f"\n[gate] skipped: no built demo project at {DEMO} (run `make run` or build it with Project.create_demo)")
        return
    project = Project.open(DEMO)
    try:
        key = project.default_model_key()
        stored = project.embeddings(key)
        items = project.items()
        path = project.map_path(key)
        start = time.perf_counter()
        result = analyze_embeddings(stored.vectors, stored.ids, items, model_key=key, fingerprint=stored.fingerprint,
                                    previous_map=LatentMap.load(path) if path.exists() else None)
        analysis_s = time.perf_counter() - start
    finally:
        project.close()
    ids = np.array(stored.ids)
    row = {i: k for k, i in enumerate(ids)}
    frame = items.set_index("id")
    seed_ids = [i for i in items.loc[items["role"] == "seed", "id"] if i in row]
    seed_vectors = stored.vectors[[row[i] for i in seed_ids]]
    seed_labels = [str(frame.at[i, "label"]) for i in seed_ids]
    # C=10 with balanced classes: scikit-learn's default C=1 gives an under-confident head on these
    # unit-norm 1280-d features (median p(true label) 0.36 on val, only 26% of real val images would pass a
    # 0.5 confidence check), which would make the label check reject nearly everything.
    head = LogisticRegression(C=10.0, class_weight="balanced", max_iter=3000).fit(seed_vectors, seed_labels)
    val_ids = [i for i in items.loc[items["role"] == "val", "id"] if i in row]
    val_vectors = stored.vectors[[row[i] for i in val_ids]]
    val_probs = head.predict_proba(val_vectors)
    cols = {c: k for k, c in enumerate(head.classes_)}
    true = np.array([cols[str(frame.at[i, "label"])] for i in val_ids])
    p_true = val_probs[np.arange(len(true)), true]
    config = GateConfig()
    passing = (val_probs.argmax(axis=1) == true) & (p_true >= config.min_confidence)
    print(f"\n[gate] analysis {analysis_s:.1f} s; current-model stand-in: logistic head on {len(seed_ids)} seed "
          f"embeddings; real val images passing the label check (reference): {passing.mean():.0%}")
    seed_images = [load_image_array(frame.at[i, "path"]) for i in seed_ids]
    start = time.perf_counter()
    cvae = ConditionalVAE(random_state=0).fit(seed_images, seed_labels, conditions=seed_vectors)
    print(f"[gate] CVAE trained on the seed set in {time.perf_counter() - start:.1f} s")
    total: dict[str, dict[str, int]] = {}
    for region in [r for r in result.regions if r.label_counts][:max_regions]:
        target = RegionTarget.from_region(region, items, vectors=stored.vectors, ids=ids)
        member_vectors = stored.vectors[[row[i] for i in region.member_ids]]
        radius = region_radius(member_vectors, region.centroid, quantile=0.9)
        print(f"[gate] {region.region_id} ({region.size} members; label {target.dominant_label!r}; "
              f"{sum(lab is not None for lab in target.member_labels)} labelled member images; "
              f"radius {radius:.3f})")
        for name, gen in [("cvae", cvae), ("augment", create_generator("augment"))]:
            try:
                batch = gen.generate(target, n_candidates, seed=0)
            except Exception as exc:  # e.g. augment without labelled members: report and go on
                print(f"[gate]    {name:8s}: cannot generate: {str(exc).splitlines()[0][:90]}")
                continue
            vectors, _ = embed(batch.to_pil())
            report = gate_candidates(vectors, batch.labels, centroid=region.centroid, radius=radius,
                                     reference_vectors=stored.vectors, probs=head.predict_proba(vectors),
                                     classes=list(head.classes_), config=config)
            summary = report.summary()
            for reason, count in summary.items():
                total.setdefault(name, dict.fromkeys(summary, 0))[reason] += count
            share = summary["kept"] / len(report)
            print(f"[gate]    {name:8s}: kept {summary['kept']:3d}/{len(report)} ({share:4.0%}) "
                  f"{summary}; median distance {np.median(report.distance):.3f} (gate edge "
                  f"{radius * config.slack:.3f}), median p(label) {np.median(report.confidence):.2f}")
    for name, counts in total.items():
        n = sum(counts.values())
        print(f"[gate] all regions, {name}: kept {counts['kept']}/{n} ({counts['kept'] / max(n, 1):.0%}) {counts}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=None, help="images to train on (default: the demo seed set)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: the CVAE's automatic choice)")
    parser.add_argument("--skip-default-threads", action="store_true",
                        help="skip the CPU run with torch's default thread count (slow on a busy machine)")
    parser.add_argument("--gate", action="store_true", help="also gate candidates for a real demo region")
    parser.add_argument("--candidates", type=int, default=64, help="candidates per generator for --gate")
    args = parser.parse_args(argv)

    import torch

    print("\n".join(machine_info()))
    images, labels, what = training_data(args.n)
    vectors, embed_s = embed(images)
    print(f"\ndata      : {what}: {len(images)} images {images.shape[1]}x{images.shape[2]}, "
          f"{len(set(labels))} labels")
    print(f"embedding : EfficientNet-Lite0@112 {embed_s:.2f} s ({len(images) / embed_s:.0f} images/s)")

    runs = [("cpu", 1)]
    if not args.skip_default_threads:
        runs.append(("cpu", None))
    if torch.cuda.is_available():
        runs.append(("cuda", None))
    print(f"\n{'device':8s} {'threads':>7s} {'epochs':>6s} {'steps':>6s} {'fit s':>7s} {'img/s':>8s} "
          f"{'loss first->last':>18s} {'sample 64 s':>11s} {'gen img/s':>9s}")
    for device, threads in runs:
        model, seconds, steps = time_training(images, labels, vectors, device=device, num_threads=threads,
                                              epochs=args.epochs)
        sample_s = time_sampling(model, images, labels, vectors)
        shown = threads if threads is not None else f"{torch.get_num_threads()}*"
        print(f"{device:8s} {shown!s:>7s} {model.epochs_:6d} {steps:6d} {seconds:7.2f} "
              f"{len(images) * model.epochs_ / seconds:8.0f} "
              f"{model.history_[0]:8.1f}->{model.history_[-1]:7.1f} {sample_s:11.3f} {64 / sample_s:9.0f}")
    print("(* torch's default thread count; loss is the negative ELBO per image in nats)")
    if args.gate:
        gate_section(args.candidates)


if __name__ == "__main__":
    main()
