"""EmbeddingCache and embed_with_cache: only misses are computed, and broken cache files never crash a run."""

from __future__ import annotations

import numpy as np
import pytest

from adde_core.embedding import EfficientNetLite0Embedder, EmbeddingCache, embed_with_cache, file_sha1
from adde_core.errors import AddeError


@pytest.fixture(scope="module")
def real_embedder() -> EfficientNetLite0Embedder:
    return EfficientNetLite0Embedder(device="cpu")


@pytest.fixture
def embedder(real_embedder, counting):
    return counting(real_embedder)


def test_second_run_computes_nothing_and_new_items_only_compute_themselves(embedder, animal_pngs, tmp_path):
    cache = EmbeddingCache(tmp_path / "cache")
    first_paths, new_paths = animal_pngs[:6], animal_pngs[6:9]
    keys = [file_sha1(p) for p in first_paths]

    first = embed_with_cache(embedder, first_paths, keys, cache)
    assert (first.n_computed, first.n_cached, embedder.embedded) == (6, 0, 6)
    np.testing.assert_allclose(first.vectors, embedder.inner.embed_images(first_paths), atol=1e-6)
    embedder.embedded = 0

    calls = []
    second = embed_with_cache(embedder, first_paths, keys, cache, progress=lambda d, t: calls.append((d, t)))
    assert (second.n_computed, second.n_cached, embedder.embedded) == (0, 6, 0)
    np.testing.assert_array_equal(second.vectors, first.vectors)
    assert calls == [(6, 6)] and second.model_key == embedder.key

    all_paths = first_paths + new_paths
    calls.clear()
    third = embed_with_cache(
        embedder,
        all_paths,
        [file_sha1(p) for p in all_paths],
        cache,
        batch_size=2,
        progress=lambda d, t: calls.append((d, t)),
    )
    assert (third.n_computed, third.n_cached, embedder.embedded) == (3, 6, 3)
    np.testing.assert_array_equal(third.vectors[:6], first.vectors)
    assert calls == [(8, 9), (9, 9)]  # cached items count as done from the start


def test_duplicate_content_is_computed_once(embedder, animal_pngs, tmp_path):
    paths = [animal_pngs[0], animal_pngs[1], animal_pngs[0]]
    outcome = embed_with_cache(embedder, paths, [file_sha1(p) for p in paths], EmbeddingCache(tmp_path))
    assert outcome.n_computed == 2 and embedder.embedded == 2
    np.testing.assert_array_equal(outcome.vectors[0], outcome.vectors[2])


def test_corrupt_cache_file_is_set_aside_with_a_warning(embedder, animal_pngs, tmp_path):
    cache = EmbeddingCache(tmp_path)
    keys = [file_sha1(p) for p in animal_pngs[:4]]
    reference = embed_with_cache(embedder, animal_pngs[:4], keys, cache).vectors
    (shard,) = list(tmp_path.rglob("*.npz"))
    shard.write_bytes(shard.read_bytes()[:100])  # as if the disk filled up mid-write

    with pytest.warns(UserWarning, match=r"Ignoring embedding cache file .*will be recomputed"):
        again = embed_with_cache(embedder, animal_pngs[:4], keys, cache)
    assert again.n_computed == 4
    np.testing.assert_allclose(again.vectors, reference, atol=1e-6)
    assert shard.with_name(shard.name + ".corrupt").exists()
    assert embed_with_cache(embedder, animal_pngs[:4], keys, cache).n_computed == 0


def test_pickled_cache_file_is_refused(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.store("model@1", ["a"], np.ones((1, 3)))
    (shard,) = list(tmp_path.rglob("*.npz"))
    np.savez(
        shard,
        model_key=np.array("model@1"),
        content_keys=np.array(["a"], dtype=object),
        vectors=np.ones((1, 3), np.float32),
    )
    with pytest.warns(UserWarning, match=r"Ignoring embedding cache file"):
        vectors, hits = cache.lookup("model@1", ["a"])
    assert vectors is None and not hits.any()


def test_lookup_store_and_compaction(tmp_path):
    cache = EmbeddingCache(tmp_path)
    rng = np.random.default_rng(0)
    stored = {}
    for round_ in range(20):  # more rounds than the shard limit, to trigger merging
        keys = [f"item-{round_}-{i}" for i in range(3)]
        vectors = rng.standard_normal((3, 4)).astype(np.float32)
        cache.store("model:x@1", keys, vectors)
        stored.update(zip(keys, vectors, strict=True))
    assert len(list(tmp_path.rglob("*.npz"))) <= 16
    assert not list(tmp_path.rglob(".tmp-*"))  # atomic writes leave no temporary files

    wanted = ["item-0-0", "unknown", "item-19-2"]
    vectors, hits = cache.lookup("model:x@1", wanted)
    assert hits.tolist() == [True, False, True]
    np.testing.assert_array_equal(vectors[0], stored["item-0-0"])
    np.testing.assert_array_equal(vectors[2], stored["item-19-2"])
    assert np.isnan(vectors[1]).all()
    assert cache.lookup("other-model", wanted)[0] is None


def test_mismatched_inputs_are_rejected(embedder, animal_pngs, tmp_path):
    with pytest.raises(AddeError, match=r"2 images but 1 content keys"):
        embed_with_cache(embedder, animal_pngs[:2], ["only-one"], EmbeddingCache(tmp_path))
    with pytest.raises(AddeError, match=r"content keys"):
        EmbeddingCache(tmp_path).store("m", ["a", "b"], np.ones((3, 2)))


def test_file_sha1_names_unreadable_files(tmp_path, animal_pngs):
    import hashlib

    assert file_sha1(animal_pngs[0]) == hashlib.sha1(animal_pngs[0].read_bytes()).hexdigest()
    with pytest.raises(AddeError, match=r"missing.png"):
        file_sha1(tmp_path / "missing.png")
