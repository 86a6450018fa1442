"""Embedder registry, device resolution and the lazy-import promise of adde_core.embedding."""

from __future__ import annotations

import subprocess
import sys

import pytest

from adde_core.device import resolve_device
from adde_core.embedding import DEFAULT_EMBEDDER, EMBEDDERS, Embedder, create_embedder
from adde_core.errors import AddeError


def test_registry_names_and_default():
    assert {"efficientnet-lite0", "openclip"} <= set(EMBEDDERS)
    assert DEFAULT_EMBEDDER == "efficientnet-lite0"


def test_create_embedder_builds_a_protocol_instance(tiny_model_name):
    efficientnet = create_embedder("efficientnet-lite0", image_size=64, device="cpu")
    assert isinstance(efficientnet, Embedder) and efficientnet.key == "efficientnet-lite0@64"
    clip = create_embedder("openclip", model_name=tiny_model_name, pretrained=None, device="cpu")
    assert isinstance(clip, Embedder) and clip.dim == 32


def test_create_embedder_rejects_unknown_names_and_parameters():
    with pytest.raises(AddeError, match=r"Unknown embedder 'resnet'.*efficientnet-lite0"):
        create_embedder("resnet")
    with pytest.raises(AddeError, match=r"accepts: image_size, device"):
        create_embedder("efficientnet-lite0", size=112)
    with pytest.raises(AddeError, match=r"pretrained"):
        create_embedder("openclip", model_name="ViT-B-32")  # pretrained must be chosen explicitly


def test_resolve_device():
    import torch

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(AddeError, match=r"Unknown device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(AddeError, match=r"cannot use a CUDA GPU"):
            resolve_device("cuda")


def test_importing_the_package_does_not_import_torch():
    code = (
        "import sys, adde_core, adde_core.embedding, adde_core.device\n"
        "print([m for m in ('torch', 'open_clip', 'streamlit', 'huggingface_hub', 'ray') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
