"""Build the demo project from the real Animal-MNIST silhouettes shipped in ``assets/``.

The split is deliberately skewed so the tool has gaps to find: a small labelled seed
in which two classes and one subgroup within a class are rare, a large pool whose
labels are hidden (read only by the simulated oracle reviewer), a balanced
validation set, and an out-of-distribution set made by rotating held-out images.
See ``assets/animal_mnist/README.md`` for the exact recipe.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from adde_core.data.attributes import silhouette_attributes
from adde_core.data.ingest import ProgressCallback, ingest_manifest
from adde_core.data.report import IngestReport
from adde_core.workspace import Workspace

ASSET = Path(__file__).resolve().parents[2] / "assets" / "animal_mnist" / "animal_mnist.npz"


@dataclass(frozen=True)
class DemoSpec:
    """How the demo splits Animal-MNIST; the defaults are the shipped demo.

    Attributes
    ----------
    n_per_class
        Images used per class (the asset has 1,000).
    val_per_class, ood_per_class, seed_per_class
        Balanced validation and OOD sizes, and the seed size of a common class.
    rare_classes
        Seed size of each deliberately rare class.
    rare_subgroup
        ``(label, attribute, value, max_in_seed)``: that subgroup is capped in the seed.
    ood_angle
        OOD images are rotated by a uniform angle in this range (degrees), with random sign.
    random_state
        Seed for every random choice, so the demo is the same on every machine.
    """

    n_per_class: int = 1000
    val_per_class: int = 100
    ood_per_class: int = 60
    seed_per_class: int = 40
    rare_classes: dict[str, int] = field(default_factory=lambda: {"zebra": 4, "cat": 6})
    rare_subgroup: tuple[str, str, str, int] = ("horse", "pose", "upright", 2)
    ood_angle: tuple[float, float] = (30.0, 60.0)
    random_state: int = 0


def load_animal_mnist() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Return ``(images uint8 (10000, 28, 28), labels int (10000,), class names)`` from the shipped asset."""
    with np.load(ASSET, allow_pickle=False) as z:
        return z["images"], z["labels"], [str(c) for c in z["classes"]]


def first_copies(images: np.ndarray) -> np.ndarray:
    """Mask of the first occurrence of each distinct image (Animal-MNIST repeats 284 images byte for byte)."""
    _, first = np.unique(images.reshape(len(images), -1), axis=0, return_index=True)
    mask = np.zeros(len(images), dtype=bool)
    mask[first] = True
    return mask


def demo_split(labels: np.ndarray, classes: list[str], attributes: dict[str, np.ndarray],
               spec: DemoSpec, usable: np.ndarray | None = None) -> np.ndarray:
    """Assign each image a role (``seed``, ``pool``, ``val``, ``ood``) or ``""`` (unused).

    Per class: shuffle the usable images, take val, then OOD, then the seed (capped for
    rare classes and for the rare subgroup), and the rest goes to the pool. Pass
    ``usable=first_copies(images)`` so that no image is in two roles: a duplicate shared
    by val and the pool would leak the evaluation set into training.
    """
    rng = np.random.default_rng(spec.random_state)
    roles = np.full(len(labels), "", dtype=object)
    usable = np.ones(len(labels), dtype=bool) if usable is None else usable
    rare_label, attr, value, cap = spec.rare_subgroup
    for c, name in enumerate(classes):
        idx = rng.permutation(np.flatnonzero((labels == c) & usable))[: spec.n_per_class]
        val, ood, rest = np.split(idx, [spec.val_per_class, spec.val_per_class + spec.ood_per_class])
        roles[val], roles[ood] = "val", "ood"
        n_seed = spec.rare_classes.get(name, spec.seed_per_class)
        if name == rare_label:
            in_group = attributes[attr][rest] == value
            seed = np.concatenate([rest[in_group][:cap], rest[~in_group][: n_seed - min(cap, in_group.sum())]])
        else:
            seed = rest[:n_seed]
        roles[rest] = "pool"
        roles[seed] = "seed"
    return roles


def write_demo(workspace: Workspace, spec: DemoSpec = DemoSpec(),
               progress: ProgressCallback | None = None) -> IngestReport:
    """Fill a new project with the demo: write the images as PNG files, then ingest them through a manifest.

    ``Project.create_demo`` creates the project and calls this.

    Going through the same manifest ingest a user would use keeps the demo honest:
    every image is validated and hashed like any other input.
    """
    from PIL import Image

    images, labels, classes = load_animal_mnist()
    attrs = silhouette_attributes(images)
    roles = demo_split(labels, classes, attrs, spec, usable=first_copies(images))
    image_dir = workspace.data_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.random_state + 1)
    rows = []
    chosen = np.flatnonzero(roles != "")
    for n, i in enumerate(chosen, start=1):
        role, label = roles[i], classes[labels[i]]
        image = Image.fromarray(images[i])
        shift = ""
        if role == "ood":
            angle = float(rng.uniform(*spec.ood_angle) * rng.choice([-1, 1]))
            image = image.rotate(angle, resample=Image.BILINEAR)
            shift = f"rotate {angle:+.0f} deg"
        item_id = f"am-{i:05d}"
        image.save(image_dir / f"{item_id}.png")
        rows.append({
            "id": item_id, "path": f"images/{item_id}.png", "role": role,
            "label": label if role != "pool" else "", "oracle_label": label if role == "pool" else "",
            "pose": attrs["pose"][i], "size": attrs["size"][i], "ood_shift": shift,
        })
        if progress is not None and (n % 500 == 0 or n == len(chosen)):
            progress(n, 2 * len(chosen))  # writing is the first half of the work, ingest the second
    manifest = workspace.data_dir / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    half = len(chosen)
    report = ingest_manifest(
        workspace, manifest, progress=None if progress is None else (lambda d, t: progress(half + d * half // max(t, 1), 2 * half))
    )
    rare_label, attr, value, cap = spec.rare_subgroup
    workspace.store.set_meta("subgroup_attribute", "pose")
    workspace.store.set_meta("demo", {
        "dataset": "Animal-MNIST 0.4 (MIT)",
        "rare_classes": spec.rare_classes,
        "rare_subgroup": {"label": rare_label, "attribute": attr, "value": value, "max_in_seed": cap},
    })
    return report
