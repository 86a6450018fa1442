"""Image (and text) embedders behind one protocol, a registry to pick them by name, and an on-disk cache.

Two engines fill the same resumable cache: :func:`embed_with_cache` in this
process, :func:`embed_with_ray` on a Ray cluster or a local Ray instance.
Importing this package does not import torch, open_clip or ray; each embedder
imports them when it is constructed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adde_core.embedding.base import Embedder, ProgressCallback
from adde_core.embedding.cache import EmbeddingCache, EmbedOutcome, embed_with_cache, file_sha1
from adde_core.embedding.distributed import embed_with_ray
from adde_core.embedding.efficientnet import EfficientNetLite0Embedder
from adde_core.embedding.images import ImageInput, load_rgb
from adde_core.embedding.openclip import OpenCLIPEmbedder
from adde_core.registry import create_from_registry

DEFAULT_EMBEDDER = "efficientnet-lite0"

EMBEDDERS: dict[str, Callable[..., Embedder]] = {
    "efficientnet-lite0": EfficientNetLite0Embedder,
    "openclip": OpenCLIPEmbedder,
}
"""Embedder factories by name; adding one is one class plus one line here."""


def create_embedder(name: str = DEFAULT_EMBEDDER, **params: Any) -> Embedder:
    """Build a registered embedder by name.

    Parameters
    ----------
    name : str, default DEFAULT_EMBEDDER
        A key of :data:`EMBEDDERS`.
    **params
        Keyword arguments for that embedder, such as ``image_size`` or
        ``pretrained``.

    Returns
    -------
    Embedder

    Raises
    ------
    AddeError
        For an unknown name or a parameter the embedder does not take.
    """
    return create_from_registry(EMBEDDERS, name, "embedder", params)


__all__ = [
    "DEFAULT_EMBEDDER",
    "EMBEDDERS",
    "EfficientNetLite0Embedder",
    "EmbedOutcome",
    "Embedder",
    "EmbeddingCache",
    "ImageInput",
    "OpenCLIPEmbedder",
    "ProgressCallback",
    "create_embedder",
    "embed_with_cache",
    "embed_with_ray",
    "file_sha1",
    "load_rgb",
]
