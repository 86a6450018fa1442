"""A killed embed keeps every finished batch and resumes; an unreadable image is reported and skipped, not fatal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from adde_core.embedding import EfficientNetLite0Embedder, EmbeddingCache, embed_with_cache, file_sha1
from adde_core.embedding.cache import FAULT_AFTER_BATCHES_ENV, EmbedOutcome

REPO = Path(__file__).resolve().parents[3]
IMAGE_SIZE = 32  # the smallest input EfficientNet-Lite0 takes: a tiny, fast model for plumbing tests


@pytest.fixture(scope="module")
def tiny() -> EfficientNetLite0Embedder:
    return EfficientNetLite0Embedder(image_size=IMAGE_SIZE, device="cpu")


@pytest.fixture
def embedder(tiny, counting):
    return counting(tiny)


def test_sigkill_after_two_batches_then_rerun_computes_only_the_rest(embedder, forty_pngs, tmp_path):
    cache_dir = tmp_path / "cache"
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from adde_core.embedding import EfficientNetLite0Embedder, EmbeddingCache, embed_with_cache, file_sha1
        paths = sorted(Path({str(forty_pngs[0].parent)!r}).glob("*.png"))
        embedder = EfficientNetLite0Embedder(image_size={IMAGE_SIZE}, device="cpu")
        embed_with_cache(embedder, paths, [file_sha1(p) for p in paths], EmbeddingCache(Path({str(cache_dir)!r})),
                         batch_size=8, progress=lambda done, total: print(done, total, flush=True))
        print("finished", flush=True)
        """
    )
    env = {**os.environ, FAULT_AFTER_BATCHES_ENV: "2", "HF_HUB_OFFLINE": "1"}
    killed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert killed.stdout.split() == ["8", "40", "16", "40"]  # killed right after the 2nd batch was cached
    assert len(list(cache_dir.rglob("*.npz"))) == 2 and not list(cache_dir.rglob(".tmp-*"))

    keys = [file_sha1(p) for p in forty_pngs]
    resumed = embed_with_cache(embedder, forty_pngs, keys, EmbeddingCache(cache_dir), batch_size=8)
    assert (resumed.n_cached, resumed.n_computed, embedder.embedded) == (16, 24, 24)
    assert resumed.failed == () and resumed.ok.all()
    np.testing.assert_allclose(resumed.vectors, embedder.inner.embed_images(forty_pngs, batch_size=8), atol=1e-5)
    embedder.embedded = 0
    assert embed_with_cache(embedder, forty_pngs, keys, EmbeddingCache(cache_dir)).n_computed == 0
    assert embedder.embedded == 0


def test_unreadable_images_are_reported_skipped_and_not_cached(embedder, forty_pngs, tmp_path):
    good = forty_pngs[:10]
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good[0].read_bytes()[:60])
    not_image = tmp_path / "notes.png"
    not_image.write_text("this is not an image")
    missing = tmp_path / "gone.png"
    # Bad files at the start, in the middle and at the end of the batches; two rows share the truncated file.
    paths = [truncated, *good[:4], not_image, *good[4:], truncated, missing]
    keys = [file_sha1(p) if p.exists() else "missing-file" for p in paths]
    cache = EmbeddingCache(tmp_path / "cache")

    calls = []
    outcome = embed_with_cache(embedder, paths, keys, cache, batch_size=4, progress=lambda d, t: calls.append((d, t)))
    failed_rows = [row for row, _ in outcome.failed]
    assert failed_rows == [0, 5, 12, 13]
    reasons = dict(outcome.failed)
    assert "truncated.png" in reasons[0] and reasons[0] == reasons[12]
    assert "notes.png" in reasons[5] and "not an image" in reasons[5]
    assert "gone.png" in reasons[13] and "does not exist" in reasons[13]
    assert (outcome.n_computed, outcome.n_cached) == (10, 0)
    assert outcome.ok.tolist() == [row not in failed_rows for row in range(len(paths))]
    assert np.isnan(outcome.vectors[~outcome.ok]).all()  # never silently zero
    np.testing.assert_allclose(outcome.vectors[outcome.ok], embedder.inner.embed_images(good), atol=1e-5)
    assert calls[-1] == (14, 14) and all(a[0] < b[0] for a, b in zip(calls, calls[1:], strict=False))

    again = embed_with_cache(embedder, paths, keys, cache, batch_size=4)  # the bad files are tried again
    assert (again.n_cached, again.n_computed, [row for row, _ in again.failed]) == (10, 0, failed_rows)


def test_outcome_ok_mask_without_failures():
    outcome = EmbedOutcome(np.ones((3, 2), np.float32), "m", 3, 0, 0.1)
    assert outcome.failed == () and outcome.ok.tolist() == [True, True, True]


def test_many_batches_compact_once_at_the_end(embedder, forty_pngs, tmp_path):
    cache = EmbeddingCache(tmp_path / "cache")
    paths = forty_pngs[:36]
    outcome = embed_with_cache(embedder, paths, [file_sha1(p) for p in paths], cache, batch_size=2)
    assert outcome.n_computed == 36
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 1  # 18 batch shards merged into one
    vectors, hits = cache.lookup(embedder.key, [file_sha1(p) for p in paths])
    assert hits.all()
    np.testing.assert_array_equal(vectors, outcome.vectors)
