"""Shared fixtures for the embedding tests: offline hub, a tiny OpenCLIP config, real images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
TINY_CONFIG = HERE / "adde-tiny-vit.json"
TINY_MODEL = TINY_CONFIG.stem
CAT_PHOTO = REPO / "tests" / "data" / "chelsea.jpg"
ANIMAL_MNIST = REPO / "assets" / "animal_mnist" / "animal_mnist.npz"


@pytest.fixture(autouse=True)
def _offline_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never touch the network: the Hugging Face hub is declared offline."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model_name() -> str:
    """Register the tiny ViT config with open_clip and return its name."""
    import open_clip

    open_clip.add_model_config(TINY_CONFIG)
    return TINY_MODEL


@pytest.fixture(scope="session")
def cat_photo() -> Path:
    """A real photo of a tabby cat (scikit-image's "chelsea", CC0; see tests/data/README.md)."""
    return CAT_PHOTO


@pytest.fixture(scope="session")
def animal_mnist() -> tuple[np.ndarray, np.ndarray]:
    """The Animal-MNIST images (uint8, 28x28) and labels shipped in assets/."""
    with np.load(ANIMAL_MNIST, allow_pickle=False) as data:
        return data["images"], data["labels"]


def _write_pngs(folder: Path, arrays: np.ndarray) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, array in enumerate(arrays):
        path = folder / f"animal_{index:02d}.png"
        Image.fromarray(array).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def animal_pngs(tmp_path: Path, animal_mnist: tuple[np.ndarray, np.ndarray]) -> list[Path]:
    """Twelve Animal-MNIST images written as grayscale PNG files."""
    return _write_pngs(tmp_path, animal_mnist[0][:12])


@pytest.fixture
def forty_pngs(tmp_path: Path, animal_mnist: tuple[np.ndarray, np.ndarray]) -> list[Path]:
    """Forty Animal-MNIST PNG files, alone in their own folder."""
    return _write_pngs(tmp_path / "images", animal_mnist[0][:40])


class CountingEmbedder:
    """Wraps a real embedder and records how many images it was asked to embed."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.key, self.dim = inner.key, inner.dim
        self.embedded = 0

    def embed_images(self, images, *, batch_size=64, progress=None):
        self.embedded += len(images)
        return self.inner.embed_images(images, batch_size=batch_size, progress=progress)


@pytest.fixture(scope="session")
def counting() -> type[CountingEmbedder]:
    """The CountingEmbedder wrapper, for tests that check what was (not) recomputed."""
    return CountingEmbedder
