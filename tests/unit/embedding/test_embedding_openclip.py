"""OpenCLIP embedder: plumbing with a tiny random model, weight sources, and fail-fast errors."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adde_core.embedding import OpenCLIPEmbedder, hub
from adde_core.errors import AddeError, WeightsUnavailableError

TEXTS = ["a photo of a cat", "a zebra", "a horse standing in a field", "", "a bird " * 40]


@pytest.fixture(scope="module")
def tiny(tiny_model_name: str) -> OpenCLIPEmbedder:
    return OpenCLIPEmbedder(model_name=tiny_model_name, pretrained=None, device="cpu")


@pytest.fixture(scope="module")
def mixed_images() -> list[Image.Image]:
    """Nine random images in different sizes and PIL modes."""
    rng = np.random.default_rng(0)
    images = []
    for index, mode in enumerate(["RGB", "L", "RGBA", "P", "RGB", "L", "RGB", "RGBA", "RGB"]):
        array = rng.integers(0, 256, size=(24 + 3 * index, 40 - index, 3), dtype=np.uint8)
        images.append(Image.fromarray(array).convert(mode))
    return images


def test_random_weights_give_unit_rows_and_say_random(tiny, mixed_images):
    calls = []
    vectors = tiny.embed_images(mixed_images, batch_size=4, progress=lambda d, t: calls.append((d, t)))
    assert vectors.shape == (9, 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert calls == [(4, 9), (8, 9), (9, 9)]
    assert "random" in tiny.key and tiny.key == "openclip:adde-tiny-vit:random-seed0@32"
    assert tiny.dim == 32


def test_batch_size_does_not_change_vectors(tiny, mixed_images):
    small = tiny.embed_images(mixed_images, batch_size=2)
    large = tiny.embed_images(mixed_images, batch_size=7)
    np.testing.assert_allclose(small, large, atol=1e-5)


def test_text_encoder(tiny):
    calls = []
    vectors = tiny.embed_texts(TEXTS, batch_size=2, progress=lambda d, t: calls.append((d, t)))
    assert vectors.shape == (len(TEXTS), 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert calls[-1] == (len(TEXTS), len(TEXTS))
    np.testing.assert_allclose(vectors, tiny.embed_texts(TEXTS, batch_size=256), atol=1e-5)
    with pytest.raises(AddeError, match=r"list of strings"):
        tiny.embed_texts("a single string")


def test_empty_input(tiny):
    calls = []
    assert tiny.embed_images([], progress=lambda d, t: calls.append((d, t))).shape == (0, 32)
    assert calls == [(0, 0)]


def test_random_weights_are_reproducible(tiny, tiny_model_name, mixed_images):
    # The key claims "random-seed0", so two builds must agree.
    again = OpenCLIPEmbedder(model_name=tiny_model_name, pretrained=None, device="cpu")
    np.testing.assert_array_equal(again.embed_images(mixed_images[:3]), tiny.embed_images(mixed_images[:3]))


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_local_checkpoint_round_trip(tiny, tiny_model_name, mixed_images, tmp_path, suffix):
    import torch
    from safetensors.torch import save_file

    # Perturb the weights so a silent fallback to the seeded random init would be caught.
    state = {name: value + 0.01 for name, value in tiny._model.state_dict().items()}
    path = tmp_path / f"tiny{suffix}"
    if suffix == ".safetensors":
        save_file(state, path)
    else:
        torch.save(state, path)
    loaded = OpenCLIPEmbedder(model_name=tiny_model_name, pretrained=str(path), device="cpu")
    reference = OpenCLIPEmbedder(model_name=tiny_model_name, pretrained=None, device="cpu")
    reference._model.load_state_dict(state)
    np.testing.assert_allclose(loaded.embed_images(mixed_images), reference.embed_images(mixed_images), atol=1e-6)
    np.testing.assert_allclose(loaded.embed_texts(TEXTS), reference.embed_texts(TEXTS), atol=1e-6)
    assert loaded.key.startswith(f"openclip:{tiny_model_name}:file=tiny{suffix}#")
    assert not np.allclose(loaded.embed_images(mixed_images[:2]), tiny.embed_images(mixed_images[:2]))


def test_local_dir_round_trip(tiny, tiny_model_name, mixed_images, tmp_path):
    from safetensors.torch import save_file

    folder = tmp_path / "tiny-clip"
    folder.mkdir()
    config = json.loads((Path(__file__).parent / f"{tiny_model_name}.json").read_text())
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": config}))
    save_file(tiny._model.state_dict(), folder / "open_clip_model.safetensors")
    loaded = OpenCLIPEmbedder(pretrained=f"local-dir:{folder}", device="cpu")
    np.testing.assert_allclose(loaded.embed_images(mixed_images), tiny.embed_images(mixed_images), atol=1e-6)
    np.testing.assert_allclose(loaded.embed_texts(TEXTS), tiny.embed_texts(TEXTS), atol=1e-6)
    assert loaded.key.startswith("openclip:local-dir:tiny-clip#") and loaded.dim == 32


def test_checkpoint_loading_never_unpickles_code(tiny_model_name, tmp_path):
    import torch

    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pt"
    torch.save({"state_dict": Payload()}, path)
    with pytest.raises(AddeError, match=r"evil.pt"):
        OpenCLIPEmbedder(model_name=tiny_model_name, pretrained=str(path), device="cpu")
    assert not marker.exists()


def test_corrupt_or_wrong_checkpoint_names_the_file(tiny_model_name, tmp_path):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    with pytest.raises(AddeError, match=r"garbage.safetensors"):
        OpenCLIPEmbedder(model_name=tiny_model_name, pretrained=str(garbage), device="cpu")
    with pytest.raises(WeightsUnavailableError, match=r"does not exist"):
        OpenCLIPEmbedder(model_name=tiny_model_name, pretrained=str(tmp_path / "missing.safetensors"))
    with pytest.raises(WeightsUnavailableError, match=r"open_clip_config.json"):
        OpenCLIPEmbedder(pretrained=f"local-dir:{tmp_path}")


def test_unknown_model_lists_valid_names():
    with pytest.raises(AddeError, match=r"Unknown OpenCLIP model 'ViT-B-33'.*ViT-B-32"):
        OpenCLIPEmbedder(model_name="ViT-B-33", pretrained=None)


def test_unknown_tag_lists_known_tags():
    with pytest.raises(AddeError, match=r"laion2b_s34b_b79k"):
        OpenCLIPEmbedder(model_name="ViT-B-32", pretrained="not-a-tag")


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    """Point huggingface_hub at an empty cache, so weights on a developer's machine do not interfere."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))


def test_named_tag_offline_fails_fast_with_instructions(empty_hf_cache):
    started = time.perf_counter()
    with pytest.raises(WeightsUnavailableError) as info:
        OpenCLIPEmbedder(model_name="ViT-B-32", pretrained="laion2b_s34b_b79k", device="cpu")
    assert time.perf_counter() - started < 2.0
    message = str(info.value)
    assert "HF_HUB_OFFLINE" in message and "local-dir:" in message and ".safetensors" in message
    assert "download laion/CLIP-ViT-B-32-laion2B-s34B-b79K" in message


@pytest.fixture
def online_hub_at(monkeypatch, empty_hf_cache):
    """Turn offline mode off and send hub requests to a local port chosen by the test."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    def point_to(port: int) -> None:
        template = f"http://127.0.0.1:{port}/{{repo_id}}/resolve/{{revision}}/{{filename}}"
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)

    return point_to


def test_unreachable_hub_fails_fast(online_hub_at):
    with socket.socket() as probe:  # a port with nothing listening: connection refused
        probe.bind(("127.0.0.1", 0))
        online_hub_at(probe.getsockname()[1])
    started = time.perf_counter()
    with pytest.raises(WeightsUnavailableError, match=r"(?s)cannot be reached.*pretrained="):
        OpenCLIPEmbedder(model_name="ViT-B-32", pretrained="laion2b_s34b_b79k", device="cpu")
    assert time.perf_counter() - started < 3.0


def test_silent_hub_fails_after_the_probe_timeout(online_hub_at, monkeypatch):
    monkeypatch.setattr(hub, "PROBE_TIMEOUT_S", 0.5)
    with socket.socket() as server:  # accepts connections and never answers
        server.bind(("127.0.0.1", 0))
        server.listen()
        online_hub_at(server.getsockname()[1])
        started = time.perf_counter()
        with pytest.raises(WeightsUnavailableError, match=r"did not answer|cannot be reached"):
            OpenCLIPEmbedder(model_name="ViT-B-32", pretrained="laion2b_s34b_b79k", device="cpu")
        assert time.perf_counter() - started < 3.0
