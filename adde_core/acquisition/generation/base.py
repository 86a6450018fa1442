"""The Generator protocol, the region a generator aims at, and the batch of images it returns."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from adde_core.errors import AddeError

if TYPE_CHECKING:
    import pandas as pd
    from PIL import Image

    from adde_core.analysis.regions import SparseRegion

ProgressCallback = Callable[[int, int], None]
"""``progress(done, total)``, as in :mod:`adde_core.embedding.base`; the last call is ``(total, total)``."""


# --------------------------------------------------------------------------- data
@dataclass(frozen=True, eq=False)
class RegionTarget:
    """What a generator is asked to fill: one region of embedding space and what is known about it.

    Attributes
    ----------
    region_id : str
        The region's id (e.g. ``"coverage_gap/cluster-3"``), carried into the batch.
    centroid : ndarray (d,)
        Centre of the region in the embedding space the project analyses.
    member_ids : tuple of str
        Items in the region (all of them, or a sample).
    member_images : tuple of ndarray
        uint8 images (HxW or HxWxC) of members whose pixels the generator may use; may be
        a subset of ``member_ids`` (only labelled ones, say) or empty.
    member_labels : tuple of (str or None)
        Label of each image in ``member_images`` (None where unknown), same length.
    member_vectors : ndarray (len(member_images), d) or None
        Embeddings of the images in ``member_images``, same space as ``centroid``.
    dominant_label : str or None
        The region's most common label; generators use it when no label is asked for.
    label_counts : dict
        Label mix among the labelled members, most common first.
    subgroup_counts : dict
        ``{attribute: {value: count}}`` among the members (e.g. ``{"pose": {"upright": 3}}``).
    description : str
        Human-readable summary (the region's ``description``).
    nearest_example_ids : tuple of str
        Dataset items nearest the centroid.
    nearest_example_labels : tuple of (str or None)
        Their labels, same length (or empty).
    """

    region_id: str
    centroid: np.ndarray
    member_ids: tuple[str, ...] = ()
    member_images: tuple[np.ndarray, ...] = ()
    member_labels: tuple[str | None, ...] = ()
    member_vectors: np.ndarray | None = None
    dominant_label: str | None = None
    label_counts: dict[str, int] = field(default_factory=dict)
    subgroup_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    description: str = ""
    nearest_example_ids: tuple[str, ...] = ()
    nearest_example_labels: tuple[str | None, ...] = ()

    def __post_init__(self) -> None:
        centroid = np.asarray(self.centroid, dtype=np.float32)
        if centroid.ndim != 1 or centroid.size == 0 or not np.all(np.isfinite(centroid)):
            raise AddeError(f"RegionTarget {self.region_id!r}: centroid must be a finite 1-D vector, "
                            f"got shape {centroid.shape}.")
        object.__setattr__(self, "centroid", centroid)
        images = tuple(as_uint8_image(im, name=f"member image {i} of region {self.region_id!r}")
                       for i, im in enumerate(self.member_images))
        object.__setattr__(self, "member_images", images)
        object.__setattr__(self, "member_ids", tuple(str(i) for i in self.member_ids))
        labels = tuple(None if _missing(lab) else str(lab) for lab in self.member_labels)
        if not labels and images:
            labels = (None,) * len(images)
        if len(labels) != len(images):
            raise AddeError(f"RegionTarget {self.region_id!r}: {len(images)} member images but "
                            f"{len(labels)} member labels; give one label (or None) per image.")
        object.__setattr__(self, "member_labels", labels)
        if self.member_vectors is not None:
            vectors = np.asarray(self.member_vectors, dtype=np.float32)
            if vectors.shape != (len(images), centroid.size):
                raise AddeError(f"RegionTarget {self.region_id!r}: member_vectors has shape {vectors.shape}, "
                                f"expected ({len(images)}, {centroid.size}) (one row per member image, "
                                "in the centroid's space).")
            object.__setattr__(self, "member_vectors", vectors)
        object.__setattr__(self, "nearest_example_ids", tuple(str(i) for i in self.nearest_example_ids))
        object.__setattr__(self, "nearest_example_labels",
                           tuple(None if _missing(lab) else str(lab) for lab in self.nearest_example_labels))
        if self.dominant_label is None:
            known = [lab for lab in labels if lab is not None]
            if self.label_counts:
                object.__setattr__(self, "dominant_label", str(next(iter(self.label_counts))))
            elif known:
                values, counts = np.unique(known, return_counts=True)
                object.__setattr__(self, "dominant_label", str(values[np.argmax(counts)]))

    def images_with_label(self, label: str) -> list[int]:
        """Indices into ``member_images`` of the members carrying ``label``."""
        return [i for i, lab in enumerate(self.member_labels) if lab == label]

    @classmethod
    def from_region(cls, region: SparseRegion, items: pd.DataFrame, *, vectors: np.ndarray | None = None,
                    ids: Sequence[str] | None = None, image_roles: Sequence[str] | None = ("seed", "pool"),
                    max_images: int = 64, random_state: int = 0) -> RegionTarget:
        """Build a target from a detected :class:`~adde_core.analysis.regions.SparseRegion`.

        Parameters
        ----------
        region : SparseRegion
        items : pandas.DataFrame
            The project's items with ``id``, ``label`` and ``path`` columns
            (``Project.items()``). Member images are read from ``path``.
        vectors, ids : optional
            The embedding set the region was found in (rows aligned with ``ids``), to
            attach ``member_vectors``.
        image_roles : sequence of str or None, default ("seed", "pool")
            Only members with these roles lend their images (None: any role, when
            ``items`` has no ``role`` column). Validation and OOD images are left out by
            default so that nothing generated from them leaks into training.
        max_images : int, default 64
            At most this many member images are loaded (labelled members first, then a
            seeded random sample), to bound memory for big regions.
        random_state : int, default 0

        Returns
        -------
        RegionTarget
        """
        frame = items.set_index("id", drop=False)
        member_ids = [str(i) for i in region.member_ids if str(i) in frame.index]
        if image_roles is not None and "role" in frame.columns:
            allowed = {str(r) for r in image_roles}
            member_ids = [i for i in member_ids if str(frame.at[i, "role"]) in allowed]
        labelled = [i for i in member_ids if not _missing(frame.at[i, "label"]) and frame.at[i, "label"] != ""]
        labelled_set = set(labelled)
        rest = [i for i in member_ids if i not in labelled_set]
        rng = np.random.default_rng(random_state)
        chosen = list(rng.permutation(labelled))[:max_images]
        chosen += list(rng.permutation(rest))[: max(0, max_images - len(chosen))]
        chosen = [str(i) for i in chosen if isinstance(frame.at[i, "path"], str)]
        images = tuple(load_image_array(frame.at[i, "path"]) for i in chosen)
        labels = tuple(None if i not in labelled_set else str(frame.at[i, "label"]) for i in chosen)
        member_vectors = None
        if vectors is not None and ids is not None:
            row = {str(k): j for j, k in enumerate(ids)}
            if all(i in row for i in chosen):
                member_vectors = np.asarray(vectors, dtype=np.float32)[[row[i] for i in chosen]].reshape(
                    len(chosen), -1)
        nearest = tuple(str(i) for i in region.nearest_dataset_ids)
        nearest_labels = tuple(None if i not in frame.index or _missing(frame.at[i, "label"]) else
                               str(frame.at[i, "label"]) for i in nearest)
        return cls(region_id=region.region_id, centroid=region.centroid, member_ids=tuple(map(str, region.member_ids)),
                   member_images=images, member_labels=labels, member_vectors=member_vectors,
                   label_counts=dict(region.label_counts), subgroup_counts={k: dict(v) for k, v in
                                                                            region.subgroup_counts.items()},
                   description=region.description, nearest_example_ids=nearest, nearest_example_labels=nearest_labels)


@dataclass(frozen=True, eq=False)
class GeneratedBatch:
    """Images a generator made for a region, with everything needed to reproduce them.

    Attributes
    ----------
    images : list of ndarray
        uint8 arrays, HxW (grayscale) or HxWxC.
    labels : list of str
        The label each image is meant to show.
    seeds : list of int
        Per-image seeds; the same generator, target and seed reproduce the image.
    params : dict
        The generator's settings and any per-call choices (JSON-serialisable).
    prompt : str or None
        The text prompt, for prompt-driven generators.
    generator : str
        The generator's ``key``.
    region_id : str or None
        The region the batch was aimed at.
    """

    images: list[np.ndarray]
    labels: list[str]
    seeds: list[int]
    params: dict[str, Any] = field(default_factory=dict)
    prompt: str | None = None
    generator: str = ""
    region_id: str | None = None

    def __post_init__(self) -> None:
        images = [as_uint8_image(im, name=f"generated image {i}") for i, im in enumerate(self.images)]
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "labels", [str(x) for x in self.labels])
        object.__setattr__(self, "seeds", [int(s) for s in self.seeds])
        if not len(images) == len(self.labels) == len(self.seeds):
            raise AddeError(f"GeneratedBatch: {len(images)} images, {len(self.labels)} labels and "
                            f"{len(self.seeds)} seeds; they must match one to one.")

    def __len__(self) -> int:
        return len(self.images)

    def to_pil(self) -> list[Image.Image]:
        """The images as PIL images (mode ``L`` or ``RGB``), e.g. to embed them."""
        from PIL import Image

        return [Image.fromarray(im) for im in self.images]

    def save_pngs(self, folder: str | os.PathLike[str], *, prefix: str = "gen") -> list[Path]:
        """Write the images as ``<prefix>-<index>-<seed>.png`` in ``folder`` and return their paths."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, (image, pil) in enumerate(zip(self.images, self.to_pil())):
            path = out / f"{prefix}-{i:04d}-{self.seeds[i]}.png"
            pil.save(path)
            paths.append(path)
        return paths


# --------------------------------------------------------------------------- protocol
@runtime_checkable
class Generator(Protocol):
    """Anything that makes labelled images aimed at a region.

    Attributes
    ----------
    key : str
        Names the generator and the settings its outputs depend on.
    """

    key: str

    def fit(self, images: Sequence[Any], labels: Sequence[str], *, conditions: np.ndarray | None = None,
            progress: ProgressCallback | None = None) -> Generator:
        """Learn from the current dataset (a no-op for generators that need no training); return self."""
        ...

    def generate(self, target: RegionTarget, n: int, *, label: str | None = None, seed: int = 0,
                 progress: ProgressCallback | None = None) -> GeneratedBatch:
        """Return ``n`` images aimed at ``target``, meant to show ``label`` (default: the region's)."""
        ...


class BaseGenerator:
    """Shared plumbing: parameter introspection, ``n``/label checks and a no-op ``fit``.

    Subclasses take keyword-only hyperparameters in ``__init__`` and store them
    unchanged (the scikit-learn estimator contract), so ``get_params`` can list them.
    """

    name: str = "generator"

    @property
    def key(self) -> str:
        return self.name

    def get_params(self) -> dict[str, Any]:
        """The constructor's hyperparameters and their current values."""
        import inspect

        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {p: getattr(self, p) for p in names}

    def fit(self, images: Sequence[Any], labels: Sequence[str], *, conditions: np.ndarray | None = None,
            progress: ProgressCallback | None = None) -> BaseGenerator:
        """Nothing to learn; report completion and return self."""
        if progress is not None:
            progress(1, 1)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if k != "pipeline")
        return f"{type(self).__name__}({args})"


def check_n(n: int) -> int:
    """Validate the number of images asked for."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise AddeError(f"n (images to generate) must be a positive integer, got {n!r}.")
    return int(n)


def resolve_label(target: RegionTarget, label: str | None) -> str:
    """The label to generate: the one asked for, else the region's dominant label."""
    if label is not None:
        return str(label)
    if target.dominant_label is not None:
        return target.dominant_label
    raise AddeError(f"Region {target.region_id!r} has no labelled members, so the label to generate is unknown; "
                    "pass label=... to generate().")


def sample_seeds(seed: int, n: int) -> list[int]:
    """Independent per-image seeds derived from one call seed (so batches with nearby seeds do not overlap)."""
    return [int(s) for s in np.random.SeedSequence(int(seed)).generate_state(n, dtype=np.uint32)]


# --------------------------------------------------------------------------- images
def as_uint8_image(image: Any, *, name: str = "image") -> np.ndarray:
    """Return an image as a uint8 array, HxW for grayscale or HxWx3 / HxWx4.

    Parameters
    ----------
    image : ndarray or PIL.Image.Image
        uint8 arrays pass through; float arrays in [0, 1] are scaled to [0, 255];
        HxWx1 is squeezed to HxW.
    name : str
        Used in error messages.

    Returns
    -------
    numpy.ndarray
    """
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)) or 0 in array.shape[:2]:
        raise AddeError(f"{name}: expected an HxW or HxWxC (C = 1, 3 or 4) image, got shape {array.shape}.")
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise AddeError(f"{name}: the image has NaN or infinite pixels.")
        scale = 255.0 if array.max(initial=0) <= 1.0 else 1.0
        return np.clip(np.rint(array * scale), 0, 255).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer) or array.dtype == bool:
        return np.clip(array, 0, 255).astype(np.uint8)
    raise AddeError(f"{name}: unsupported pixel type {array.dtype}.")


def load_image_array(source: Any) -> np.ndarray:
    """Read a path, PIL image or array into a uint8 array (grayscale files stay HxW).

    Parameters
    ----------
    source : str, os.PathLike, PIL.Image.Image or ndarray

    Returns
    -------
    numpy.ndarray
    """
    from PIL import Image, ImageOps

    from adde_core.embedding.images import load_rgb

    if isinstance(source, np.ndarray):
        return as_uint8_image(source)
    if isinstance(source, Image.Image):
        pil = source
    else:
        try:
            with Image.open(Path(os.fspath(source))) as opened:
                pil = ImageOps.exif_transpose(opened)
                pil.load()
        except Exception:
            # load_rgb turns every read failure into a message that names the file.
            pil = load_rgb(source)
    grayscale = pil.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
    # load_rgb also rescales 16-bit grayscale instead of saturating it.
    rgb = load_rgb(pil)
    return np.asarray(rgb.convert("L") if grayscale else rgb, dtype=np.uint8)


def resize_image(image: np.ndarray, shape: tuple[int, int], *, channels: int | None = None) -> np.ndarray:
    """Resize (bicubic with antialiasing) and convert to ``channels`` (1 or 3) without cropping."""
    from PIL import Image

    pil = Image.fromarray(as_uint8_image(image))
    if channels == 1 and pil.mode != "L":
        pil = pil.convert("L")
    elif channels == 3 and pil.mode != "RGB":
        pil = pil.convert("RGB")
    height, width = shape
    if pil.size != (width, height):
        pil = pil.resize((width, height), Image.Resampling.BICUBIC, reducing_gap=None)
    return np.asarray(pil, dtype=np.uint8)


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN from pandas
    except (TypeError, ValueError):
        return False


def params_json(params: Mapping[str, Any]) -> dict[str, Any]:
    """Keep only JSON-friendly parameter values (objects become their type name)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, (str, int, float, bool)) or value is None:
            out[key] = value
        elif isinstance(value, (tuple, list)) and all(isinstance(v, (str, int, float, bool)) for v in value):
            out[key] = list(value)
        else:
            out[key] = type(value).__name__
    return out
