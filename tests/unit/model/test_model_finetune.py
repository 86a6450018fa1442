"""Backbone fine-tuning plumbing on the small real demo: safetensors round trip, new embedding key, determinism."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from adde_core.embedding import EfficientNetLite0Embedder
from adde_core.errors import AddeError
from adde_core.model.finetune import FINETUNE_NOTE, FinetuneResult, _subset, train_backbone
from adde_core.project import Project


@pytest.fixture(scope="module")
def finetuned(small_demo_embedded_dir, tmp_path_factory):
    """One short fine-tuning run (16 seed images, one epoch) on a copy of the small embedded demo."""
    root = tmp_path_factory.mktemp("finetune") / "project"
    shutil.copytree(small_demo_embedded_dir, root)
    project = Project.open(root)
    calls = []
    result = project.finetune_backbone(epochs=1, batch_size=8, device="cpu", max_items=16,
                               progress=lambda done, total: calls.append((done, total)))
    yield project, result, calls
    project.close()


def test_writes_valid_safetensors_under_the_project_cache(finetuned):
    from safetensors import safe_open
    from safetensors.torch import load_file

    project, result, _ = finetuned
    assert isinstance(result, FinetuneResult)
    assert result.weights_path.parent == project.cache_dir / "finetuned"
    assert result.weights_path.suffix == ".safetensors"
    state = load_file(result.weights_path)  # fails on a pickled (torch.save) file
    assert "_conv_stem.weight" in state and not any(k.startswith("_fc.") for k in state)
    with safe_open(result.weights_path, framework="pt") as handle:
        meta = handle.metadata()
    assert meta["base_model_key"] == "efficientnet-lite0@112" and meta["epochs"] == "1"


def test_reembeds_every_item_under_a_new_key(finetuned):
    project, result, calls = finetuned
    assert result.base_model_key == "efficientnet-lite0@112"
    assert result.model_key.startswith("efficientnet-lite0@112+ft-") and result.model_key != result.base_model_key
    assert result.model_key.endswith(result.weights_path.stem.rsplit("+ft-", 1)[1])
    assert (result.n_train, result.epochs, result.device) == (16, 1, "cpu")
    assert 0.0 <= result.train_accuracy <= 1.0
    assert calls == [(1, 2), (2, 2)]  # per training batch, over all epochs

    new, base = project.embeddings(result.model_key), project.embeddings(result.base_model_key)
    with_images = project.items().dropna(subset=["content_hash"])
    assert set(new.ids) == set(with_images["id"]) == set(base.ids)
    rows = pd.Index(base.ids).get_indexer(new.ids)
    np.testing.assert_allclose(np.linalg.norm(new.vectors, axis=1), 1.0, atol=1e-5)
    # Training moved the features: no item keeps its frozen vector.
    change = np.linalg.norm(new.vectors - base.vectors[rows], axis=1)
    assert change.min() > 1e-4
    # The newest efficientnet-lite0 set becomes the project's default, and its embedder can be rebuilt.
    assert project.default_model_key() == result.model_key
    assert project.embedder_for(result.model_key).key == result.model_key


def test_weights_round_trip_through_the_embedder(finetuned):
    project, result, _ = finetuned
    paths = list(project.items().dropna(subset=["content_hash"])["path"].iloc[:3])
    first = EfficientNetLite0Embedder(device="cpu", weights=str(result.weights_path))
    second = EfficientNetLite0Embedder(device="cpu", weights=str(result.weights_path))
    assert first.key == second.key == result.model_key
    vectors = first.embed_images(paths)
    np.testing.assert_array_equal(vectors, second.embed_images(paths))
    stored = project.embeddings(result.model_key)
    ids = list(project.items().dropna(subset=["content_hash"])["id"].iloc[:3])
    np.testing.assert_allclose(vectors, stored.vectors[pd.Index(stored.ids).get_indexer(ids)], atol=1e-5)
    assert EfficientNetLite0Embedder(device="cpu").key == "efficientnet-lite0@112"


def test_training_is_deterministic_given_random_state(small_demo_embedded_dir, tmp_path):
    from safetensors.torch import load_file

    project = Project.open(small_demo_embedded_dir)
    seed = project.items(roles=["seed"]).dropna(subset=["label"])
    project.close()
    subset = seed.iloc[_subset(seed["label"].to_numpy(str), 6, 0)]
    paths, labels = list(subset["path"]), subset["label"].to_numpy(str)
    runs = [train_backbone(paths, labels, out_dir=tmp_path / name, epochs=1, batch_size=3, device="cpu",
                           random_state=state) for name, state in [("a", 0), ("b", 0), ("c", 1)]]
    # safetensors writes its header from a hash map, so the bytes (and file names) may differ; the tensors may not.
    a, b, c = (load_file(run.weights_path) for run in runs)
    assert a.keys() == b.keys() == c.keys()
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert not np.array_equal(a["_conv_stem.weight"].numpy(), c["_conv_stem.weight"].numpy())
    np.testing.assert_array_equal(runs[0].coef, runs[1].coef)
    assert len(runs[0].epoch_losses) == 1 and np.isfinite(runs[0].epoch_losses[0])


def test_subset_is_round_robin_over_classes():
    labels = np.array(["a"] * 10 + ["b"] * 3 + ["c"] * 1)
    picked = _subset(labels, 6, 0)
    assert len(picked) == len(set(picked)) == 6
    assert sorted(labels[picked].tolist()) == ["a", "a", "a", "b", "b", "c"]
    np.testing.assert_array_equal(_subset(labels, None, 0), np.arange(14))


def test_embedder_refuses_non_safetensors_weights(tmp_path):
    import torch

    pickled = tmp_path / "backbone.pth"
    torch.save({"x": torch.zeros(1)}, pickled)
    with pytest.raises(AddeError, match=r"\.safetensors"):
        EfficientNetLite0Embedder(device="cpu", weights=str(pickled))
    fake = tmp_path / "backbone.safetensors"
    fake.write_bytes(b"not a safetensors file")
    with pytest.raises(AddeError, match=r"not a valid safetensors"):
        EfficientNetLite0Embedder(device="cpu", weights=str(fake))
    with pytest.raises(AddeError, match=r"does not exist"):
        EfficientNetLite0Embedder(device="cpu", weights=str(tmp_path / "missing.safetensors"))


def test_foreign_safetensors_is_rejected(tmp_path):
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"layer.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(AddeError, match=r"not an EfficientNet-Lite0 backbone"):
        EfficientNetLite0Embedder(device="cpu", weights=str(path))


@pytest.mark.parametrize("kwargs, match", [({"epochs": 0}, "epochs"), ({"learning_rate": 0.0}, "learning_rate"),
                                           ({"batch_size": 0}, "batch_size")])
def test_bad_hyperparameters_are_refused(tmp_path, kwargs, match):
    with pytest.raises(AddeError, match=match):
        train_backbone(["x.png", "y.png"], ["a", "b"], out_dir=tmp_path, **kwargs)


def test_one_class_is_refused(tmp_path):
    with pytest.raises(AddeError, match="at least two classes"):
        train_backbone(["x.png", "y.png"], ["cat", "cat"], out_dir=tmp_path, device="cpu")


def test_note_mentions_cpu_and_gpu():
    assert "CPU" in FINETUNE_NOTE and "GPU" in FINETUNE_NOTE and "\n" not in FINETUNE_NOTE
