"""Cheap label-preserving variations of a region's labelled images: small transforms and same-label mixup."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from adde_core.acquisition.generation.base import (
    BaseGenerator,
    GeneratedBatch,
    ProgressCallback,
    RegionTarget,
    check_n,
    resize_image,
    resolve_label,
    sample_seeds,
)
from adde_core.errors import AddeError


class AugmentationGenerator(BaseGenerator):
    """Augment the region's labelled member images; needs no training.

    Each output starts from one member image with the generated label (or, with
    probability ``mixup_fraction``, a mixup of two such members) and goes through a
    random horizontal flip, a small affine transform (rotation, translation, scale),
    a random resized crop back to the source size and a brightness change, all from
    ``torchvision.transforms.v2``. Outputs keep the source image's size and channels.

    Mixup is written out rather than taken from ``v2.MixUp``: that transform mixes
    a whole batch and its labels, whereas here only two images of the *same* label
    are blended, and the weight is drawn from the per-image seed so each image can be
    reproduced on its own. The weight is folded to ``max(lam, 1 - lam)`` so one
    member always dominates and the blend stays recognisable.

    Parameters
    ----------
    flip : bool, default True
        Random horizontal flips. Turn off for data where mirroring changes the label
        (digits, text, left/right anatomy).
    max_rotation : float, default 15.0
        Largest rotation in degrees, either way.
    max_translate : float, default 0.1
        Largest shift as a fraction of the width and height.
    scale : tuple of float, default (0.9, 1.1)
        Range of the affine zoom.
    crop_scale : tuple of float, default (0.8, 1.0)
        Area range of the random resized crop.
    brightness : float, default 0.2
        Brightness factor drawn from ``[1 - brightness, 1 + brightness]``.
    mixup_fraction : float, default 0.25
        Share of outputs made by mixing two same-label members (needs two of them).
    mixup_alpha : float, default 0.4
        Beta(alpha, alpha) parameter of the mixup weight.
    """

    name = "augment"

    def __init__(self, *, flip: bool = True, max_rotation: float = 15.0, max_translate: float = 0.1,
                 scale: tuple[float, float] = (0.9, 1.1), crop_scale: tuple[float, float] = (0.8, 1.0),
                 brightness: float = 0.2, mixup_fraction: float = 0.25, mixup_alpha: float = 0.4) -> None:
        self.flip = flip
        self.max_rotation = max_rotation
        self.max_translate = max_translate
        self.scale = scale
        self.crop_scale = crop_scale
        self.brightness = brightness
        self.mixup_fraction = mixup_fraction
        self.mixup_alpha = mixup_alpha

    def generate(self, target: RegionTarget, n: int, *, label: str | None = None, seed: int = 0,
                 progress: ProgressCallback | None = None) -> GeneratedBatch:
        """Make ``n`` variations of the region's member images that carry ``label``.

        Parameters
        ----------
        target : RegionTarget
            Must hold member images with the label (``member_images``/``member_labels``).
        n : int
        label : str, optional
            Default: the region's dominant label.
        seed : int, default 0
            The same seed, target and settings give the same images.
        progress : ProgressCallback, optional
            Called as ``progress(done, n)`` after every image.

        Returns
        -------
        GeneratedBatch
            ``params["sources"]`` says, per image, which member(s) it came from and the
            mixup weight.

        Raises
        ------
        AddeError
            If the region has no member image with that label.
        """
        import torch

        self._check_params()
        n = check_n(n)
        label = resolve_label(target, label)
        pool = target.images_with_label(label)
        if not pool:
            known = sorted({lab for lab in target.member_labels if lab is not None})
            raise AddeError(f"Region {target.region_id!r} has no member images labelled {label!r} "
                            f"(labelled members: {known or 'none'}); augmentation only varies real images of the "
                            "label it outputs. Pick one of those labels or use a generator such as 'cvae'.")
        images = [_rgb_or_gray(target.member_images[i]) for i in pool]
        ids = [target.member_ids[i] if len(target.member_ids) == len(target.member_images) else str(i) for i in pool]
        seeds = sample_seeds(seed, n)
        out, sources = [], []
        pipelines: dict[tuple[int, int], Any] = {}
        for done, s in enumerate(seeds, start=1):
            rng = np.random.default_rng(s)
            a = int(rng.integers(len(images)))
            base, source = images[a], {"member": ids[a]}
            if len(images) >= 2 and rng.random() < self.mixup_fraction:
                b = int(rng.choice([j for j in range(len(images)) if j != a]))
                lam = float(rng.beta(self.mixup_alpha, self.mixup_alpha))
                lam = max(lam, 1.0 - lam)
                other = resize_image(images[b], base.shape[:2], channels=1 if base.ndim == 2 else 3)
                base = np.clip(np.rint(lam * base + (1.0 - lam) * other.astype(np.float32)), 0, 255).astype(np.uint8)
                source = {"member": ids[a], "mixed_with": ids[b], "lam": round(lam, 4)}
            shape = tuple(base.shape[:2])
            if shape not in pipelines:
                pipelines[shape] = self._pipeline(shape)
            out.append(_transform(pipelines[shape], base, s, torch))
            sources.append(source)
            if progress is not None:
                progress(done, n)
        params = {**self._json_params(), "sources": sources}
        return GeneratedBatch(images=out, labels=[label] * n, seeds=seeds, params=params, prompt=None,
                              generator=self.key, region_id=target.region_id)

    def _pipeline(self, shape: tuple[int, int]) -> Any:
        from torchvision.transforms import v2

        steps = [v2.RandomHorizontalFlip(p=0.5)] if self.flip else []
        steps += [
            v2.RandomAffine(degrees=self.max_rotation, translate=(self.max_translate, self.max_translate),
                            scale=tuple(self.scale), interpolation=v2.InterpolationMode.BILINEAR),
            v2.RandomResizedCrop(size=tuple(shape), scale=tuple(self.crop_scale), ratio=(0.9, 1.1), antialias=True),
        ]
        if self.brightness > 0:
            steps.append(v2.ColorJitter(brightness=self.brightness))
        return v2.Compose(steps)

    def _check_params(self) -> None:
        checks = {
            "max_rotation": 0 <= self.max_rotation <= 180,
            "max_translate": 0 <= self.max_translate < 1,
            "brightness": 0 <= self.brightness < 1,
            "mixup_fraction": 0 <= self.mixup_fraction <= 1,
            "mixup_alpha": self.mixup_alpha > 0 and math.isfinite(self.mixup_alpha),
            "scale": len(self.scale) == 2 and 0 < self.scale[0] <= self.scale[1],
            "crop_scale": len(self.crop_scale) == 2 and 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise AddeError(f"AugmentationGenerator: invalid {name}={getattr(self, name)!r}; see its docstring "
                                "for the allowed range.")

    def _json_params(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.get_params().items()}


def _rgb_or_gray(image: np.ndarray) -> np.ndarray:
    """Drop an alpha channel (composited on black) so every transform sees 1 or 3 channels."""
    if image.ndim == 3 and image.shape[2] == 4:
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        return np.rint(image[:, :, :3] * alpha).astype(np.uint8)
    return image


def _transform(pipeline: Any, image: np.ndarray, seed: int, torch: Any) -> np.ndarray:
    """Apply a v2 pipeline with torch's RNG seeded for this image only (the global RNG state is restored)."""
    # A copy: arrays read from PIL images are read-only, which torch.from_numpy warns about.
    chw = torch.from_numpy(np.array(image[None] if image.ndim == 2 else image.transpose(2, 0, 1), order="C"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        result = pipeline(chw).numpy()
    return result[0] if image.ndim == 2 else result.transpose(1, 2, 0)
