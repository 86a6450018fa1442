"""OpenCLIP image and text embedder that loads named, file or folder weights and fails fast offline."""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from adde_core.device import resolve_device
from adde_core.embedding.base import ProgressCallback, run_batches, unit_rows
from adde_core.embedding.hub import fetch_pretrained
from adde_core.embedding.images import ImageInput, load_rgb
from adde_core.errors import AddeError, WeightsUnavailableError

if TYPE_CHECKING:
    import torch

CHECKPOINT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
LOCAL_DIR_PREFIX = "local-dir:"
_COMMON_MODELS = ("ViT-B-32", "ViT-B-16", "ViT-L-14", "ViT-S-32", "convnext_base_w")
# Preprocessing a pretrained tag may set; passed as image_<name>= to open_clip.
_TAG_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")


@dataclass(frozen=True)
class _Weights:
    """Where the weights come from, resolved before anything is built."""

    arch: str  # what open_clip is given as model_name ("ViT-B-32" or "local-dir:/dir")
    checkpoint: str | None  # file to load; None for random or local-dir weights
    key_part: str  # "<model>:<weights id>" for the cache key
    config: dict[str, Any]  # open_clip model_cfg, for embed_dim
    preprocess: dict[str, Any] = field(default_factory=dict)
    quick_gelu: bool = False


class OpenCLIPEmbedder:
    """Embed images and texts into a shared space with an OpenCLIP model.

    Parameters
    ----------
    model_name : str, default "ViT-B-32"
        Any name in ``open_clip.list_models()``, including configs registered
        with ``open_clip.add_model_config``. Ignored for ``"local-dir:"`` weights.
    pretrained : str or None
        A pretrained tag such as ``"laion2b_s34b_b79k"`` (loaded from the local
        Hugging Face cache, or downloaded when the hub is reachable); a local
        checkpoint file (``.safetensors``, ``.bin``, ``.pt``, ``.pth``); or
        ``"local-dir:/dir"`` for a folder with ``open_clip_config.json`` and
        weights. ``None`` builds seeded random weights, for testing plumbing
        only: their vectors carry no meaning.
    device : str, default "auto"
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    precision : str, default "auto"
        ``"fp16"`` runs CUDA autocast in half precision, ``"fp32"`` does not;
        ``"auto"`` uses fp16 on CUDA and fp32 on the CPU. fp16 adds ``+fp16``
        to the key because its vectors differ slightly.

    Attributes
    ----------
    key : str
        ``"openclip:<model>:<weights>@<image size>"``; weights is the tag,
        ``file=<name>#<fingerprint>``, or ``random-seed0``.
    dim : int
        The joint embedding size.

    Raises
    ------
    AddeError
        For an unknown model name or tag, or a checkpoint that does not fit.
    WeightsUnavailableError
        When the weights are neither local nor downloadable right now; the
        message says how to supply them.
    """

    def __init__(
        self,
        *,
        model_name: str = "ViT-B-32",
        pretrained: str | None,
        device: str = "auto",
        precision: str = "auto",
    ) -> None:
        import torch

        open_clip = _import_open_clip()
        self.device = resolve_device(device)
        self._fp16 = _use_fp16(precision, self.device)
        weights = _resolve_weights(open_clip, model_name, pretrained)
        self._arch = weights.arch
        with torch.random.fork_rng(devices=[]):
            # Seeded so that random weights, and hence their cache key, are reproducible.
            torch.manual_seed(0)
            model, _, self._preprocess = _create(open_clip, weights)
        self._model = model.eval().to(self.device)
        self._tokenizer: Any = None
        size = open_clip.get_model_preprocess_cfg(model)["size"]
        self.image_size = size
        self.dim = int(weights.config["embed_dim"])
        sides = sorted(set(size)) if isinstance(size, (tuple, list)) else [size]
        size_text = "x".join(map(str, size)) if len(sides) > 1 else str(sides[0])
        self.key = f"openclip:{weights.key_part}@{size_text}" + ("+fp16" if self._fp16 else "")

    def embed_images(
        self,
        images: Sequence[ImageInput],
        *,
        batch_size: int = 64,
        progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        """Embed images into L2-normalised vectors.

        Parameters
        ----------
        images : sequence of str, os.PathLike or PIL.Image.Image
        batch_size : int, default 64
        progress : ProgressCallback, optional
            Called with ``(done, total)`` after every batch.

        Returns
        -------
        numpy.ndarray
            float32 array of shape ``(len(images), dim)`` with unit-norm rows.
        """
        import torch

        return run_batches(
            images,
            batch_size=batch_size,
            dim=self.dim,
            prepare=lambda batch: torch.stack([self._preprocess(load_rgb(item)) for item in batch]),
            compute=lambda batch: self._encode(self._model.encode_image, batch),
            progress=progress,
            prefetch=self.device.type == "cuda",
        )

    def embed_texts(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 256,
        progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        """Embed texts into the same space as the images.

        Parameters
        ----------
        texts : sequence of str
        batch_size : int, default 256
        progress : ProgressCallback, optional
            Called with ``(done, total)`` after every batch.

        Returns
        -------
        numpy.ndarray
            float32 array of shape ``(len(texts), dim)`` with unit-norm rows.
        """
        if isinstance(texts, str) or not all(isinstance(text, str) for text in texts):
            raise AddeError("embed_texts expects a list of strings.")
        tokenizer = self._get_tokenizer()
        return run_batches(
            list(texts),
            batch_size=batch_size,
            dim=self.dim,
            prepare=tokenizer,
            compute=lambda tokens: self._encode(self._model.encode_text, tokens),
            progress=progress,
        )

    def _encode(self, encoder: Any, batch: torch.Tensor) -> np.ndarray:
        """Run one encoder on a batch on the model's device and return unit rows."""
        import torch

        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=self._fp16):
            return unit_rows(encoder(batch.to(self.device)))

    def _get_tokenizer(self) -> Any:
        """Build the tokenizer on first use, so image-only use never needs it."""
        if self._tokenizer is None:
            open_clip = _import_open_clip()
            try:
                self._tokenizer = open_clip.get_tokenizer(self._arch)
            except Exception as exc:  # HF tokenizers may need the hub
                raise WeightsUnavailableError(
                    f"The text tokenizer for OpenCLIP model {self._arch!r} cannot be loaded: {exc}"
                ) from exc
        return self._tokenizer


def _import_open_clip() -> ModuleType:
    """Import open_clip, naming the package to install when it is missing."""
    try:
        import open_clip
    except ModuleNotFoundError as exc:
        raise AddeError("The OpenCLIP embedder needs `pip install open_clip_torch==3.3.0`.") from exc
    return open_clip


def _use_fp16(precision: str, device: torch.device) -> bool:
    """Decide on CUDA half-precision autocast from the precision setting."""
    if precision not in ("auto", "fp16", "fp32"):
        raise AddeError(f"precision must be 'auto', 'fp16' or 'fp32', got {precision!r}.")
    if precision == "fp16" and device.type != "cuda":
        raise AddeError("precision='fp16' needs a CUDA device; use 'fp32' on the CPU.")
    return device.type == "cuda" and precision != "fp32"


def _resolve_weights(open_clip: ModuleType, model_name: str, pretrained: str | None) -> _Weights:
    """Check the model name and find the weights, without building the model."""
    if pretrained is not None and pretrained.startswith(LOCAL_DIR_PREFIX):
        return _local_dir_weights(pretrained[len(LOCAL_DIR_PREFIX) :])
    config = _builtin_config(open_clip, model_name)
    if pretrained is None:
        return _Weights(model_name, None, f"{model_name}:random-seed0", config)
    path = Path(pretrained).expanduser()
    if path.is_file():
        if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
            raise AddeError(f"Checkpoint {path} must be one of {', '.join(CHECKPOINT_SUFFIXES)}.")
        _check_loads_weights_only(path)
        key_part = f"{model_name}:file={path.name}#{_fingerprint([path])}"
        return _Weights(model_name, str(path.resolve()), key_part, config)
    if os.sep in pretrained or pretrained.lower().endswith(CHECKPOINT_SUFFIXES):
        raise WeightsUnavailableError(f"Checkpoint file {path} does not exist.")
    tag_cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
    if not tag_cfg:
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        known = f"Known tags: {', '.join(tags)}." if tags else "It has no published weights."
        raise AddeError(
            f"{pretrained!r} is neither a checkpoint file nor a pretrained tag of OpenCLIP model "
            f"{model_name!r}. {known}"
        )
    tag = pretrained.lower().replace("-", "_")  # open_clip's own tag normalisation
    checkpoint = fetch_pretrained(model_name, tag, tag_cfg)
    _check_loads_weights_only(Path(checkpoint))
    return _Weights(
        model_name,
        checkpoint,
        f"{model_name}:{tag}",
        config,
        preprocess={k: tag_cfg[k] for k in _TAG_PREPROCESS_KEYS if k in tag_cfg},
        # The tag's own activation: QuickGELU-trained weights degrade under plain GELU.
        quick_gelu=bool(tag_cfg.get("quick_gelu", False)),
    )


def _builtin_config(open_clip: ModuleType, model_name: str) -> dict[str, Any]:
    """Return open_clip's config for a model name, or explain which names exist."""
    if model_name.startswith(("hf-hub:", LOCAL_DIR_PREFIX)):
        raise AddeError(
            f"model_name {model_name!r} is not supported: pass a built-in model name with a "
            "pretrained tag or checkpoint, or pretrained='local-dir:/dir' for a local folder."
        )
    config = open_clip.get_model_config(model_name)
    if config is None:
        names = open_clip.list_models()
        suggestions = difflib.get_close_matches(model_name, names, n=5) or [
            name for name in _COMMON_MODELS if name in names
        ]
        raise AddeError(
            f"Unknown OpenCLIP model {model_name!r}. Valid names include: {', '.join(suggestions)} "
            f"({len(names)} in all; see open_clip.list_models())."
        )
    return config


def _local_dir_weights(directory: str) -> _Weights:
    """Validate a local-dir: folder (config plus weights) and fingerprint its contents."""
    folder = Path(directory).expanduser()
    config_path = folder / "open_clip_config.json"
    if not config_path.is_file():
        raise WeightsUnavailableError(
            f"{LOCAL_DIR_PREFIX}{folder} needs a folder containing open_clip_config.json; {config_path} does not exist."
        )
    checkpoints = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".pth"))
    if not checkpoints:
        raise WeightsUnavailableError(f"{LOCAL_DIR_PREFIX}{folder} holds no .safetensors, .bin or .pth weights.")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))["model_cfg"]
    except (ValueError, KeyError, UnicodeDecodeError) as exc:
        raise AddeError(f"{config_path} is not a valid open_clip config with a 'model_cfg' entry.") from exc
    for checkpoint in checkpoints:
        _check_loads_weights_only(checkpoint)
    key_part = f"local-dir:{folder.name}#{_fingerprint([config_path, *checkpoints])}"
    return _Weights(f"{LOCAL_DIR_PREFIX}{folder.resolve()}", None, key_part, config)


def _check_loads_weights_only(path: Path) -> None:
    """Refuse a pickle-based checkpoint unless torch.load(weights_only=True) accepts it.

    open_clip passes weights_only=True too, but retries with torch's default
    when that raises TypeError; checking here first means no checkpoint ever
    reaches that retry.
    """
    import torch

    if path.suffix == ".safetensors":
        return
    try:  # mmap keeps the check cheap for zip-format checkpoints (torch >= 1.6)
        torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as exc:
        raise AddeError(
            f"Refusing checkpoint {path}: it cannot be loaded with torch.load(weights_only=True) "
            f"({type(exc).__name__}: {str(exc)[:300]}). Convert it to .safetensors or re-save its state_dict."
        ) from exc


def _create(open_clip: ModuleType, weights: _Weights) -> tuple[Any, Any, Any]:
    """Build the model on the CPU and load the resolved weights (torch.load with weights_only=True)."""
    try:
        return open_clip.create_model_and_transforms(
            weights.arch,
            pretrained=weights.checkpoint,
            force_quick_gelu=weights.quick_gelu,
            **{f"image_{name}": value for name, value in weights.preprocess.items()},
            weights_only=True,
            device="cpu",
        )
    except Exception as exc:  # corrupt file, wrong architecture, unsafe pickle
        source = weights.checkpoint or weights.arch
        raise AddeError(
            f"Cannot load OpenCLIP weights from {source} for model {weights.arch!r}: "
            f"{type(exc).__name__}: {str(exc)[:500]}"
        ) from exc


def _fingerprint(paths: Sequence[Path], chunk: int = 1 << 20) -> str:
    """Hash names, sizes and the first and last MiB of files: cheap, and enough to tell checkpoints apart."""
    digest = hashlib.sha1()
    for path in paths:
        size = path.stat().st_size
        digest.update(f"{path.name}:{size}".encode())
        with path.open("rb") as handle:
            digest.update(handle.read(chunk))
            handle.seek(max(size - chunk, 0))
            digest.update(handle.read(chunk))
    return digest.hexdigest()[:12]
