"""On-disk embedding cache keyed by (embedder key, item content key), so only new items are embedded."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import time
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adde_core.embedding.base import Embedder, ProgressCallback, check_batch_size
from adde_core.embedding.images import ImageInput
from adde_core.errors import AddeError

_SHARD_SUFFIX = ".npz"
_MAX_SHARDS = 16  # above this many shards for one model, store() merges them into one


class EmbeddingCache:
    """Vectors stored per embedder key in append-only shard files under ``root``.

    Each :meth:`store` writes one new shard (``.npz`` holding the model key,
    the content keys and the vectors) through a temporary file and
    ``os.replace``, so a crash never leaves a half-written shard. Shards are
    read with ``allow_pickle=False``. A shard that cannot be read is renamed to
    ``*.corrupt`` with a warning and its items count as misses, so they are
    recomputed and stored again rather than crashing the run.

    Parameters
    ----------
    root : pathlib.Path
        Folder for the cache; created on first store.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def lookup(self, model_key: str, content_keys: Sequence[str]) -> tuple[np.ndarray | None, np.ndarray]:
        """Find cached vectors for items.

        Parameters
        ----------
        model_key : str
            The embedder's ``key``.
        content_keys : sequence of str
            One key per item, such as :func:`file_sha1` of its bytes.

        Returns
        -------
        vectors : numpy.ndarray or None
            float32 ``(n, dim)`` with the cached rows filled in and NaN rows for
            misses; None when nothing is cached for ``model_key``.
        hit_mask : numpy.ndarray
            bool ``(n,)``, True where the row came from the cache.
        """
        wanted: dict[str, list[int]] = {}
        for row, content_key in enumerate(content_keys):
            wanted.setdefault(content_key, []).append(row)
        hit_mask = np.zeros(len(content_keys), dtype=bool)
        vectors: np.ndarray | None = None
        for shard in self._shards(model_key):
            if not wanted:
                break
            loaded = self._read(shard, model_key)
            if loaded is None:
                continue
            keys, shard_vectors = loaded
            if vectors is None:
                vectors = np.full((len(content_keys), shard_vectors.shape[1]), np.nan, dtype=np.float32)
            elif shard_vectors.shape[1] != vectors.shape[1]:
                self._discard(shard, f"its vectors have {shard_vectors.shape[1]} columns, not {vectors.shape[1]}")
                continue
            for index, content_key in enumerate(keys.tolist()):
                rows = wanted.pop(content_key, None)
                if rows is not None:
                    vectors[rows] = shard_vectors[index]
                    hit_mask[rows] = True
        return vectors, hit_mask

    def store(self, model_key: str, content_keys: Sequence[str], vectors: np.ndarray) -> None:
        """Add vectors for items to the cache.

        Parameters
        ----------
        model_key : str
            The embedder's ``key``.
        content_keys : sequence of str
            One key per row of ``vectors``.
        vectors : numpy.ndarray
            ``(n, dim)`` array, stored as float32.
        """
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(content_keys):
            raise AddeError(f"store() got {len(content_keys)} content keys for vectors of shape {vectors.shape}.")
        if not content_keys:
            return
        folder = self._folder(model_key)
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}{_SHARD_SUFFIX}"
        _write_shard(folder / name, model_key, np.asarray(content_keys, dtype=str), vectors)
        if len(self._shards(model_key)) > _MAX_SHARDS:
            self._compact(model_key)

    def _folder(self, model_key: str) -> Path:
        """Folder for one model key: a readable slug plus a hash, since keys contain ':' and '/'."""
        slug = re.sub(r"[^A-Za-z0-9._@-]+", "_", model_key)[:60]
        return self.root / f"{slug}-{hashlib.sha1(model_key.encode()).hexdigest()[:10]}"

    def _shards(self, model_key: str) -> list[Path]:
        """Shard files of one model key, oldest first."""
        folder = self._folder(model_key)
        return sorted(folder.glob(f"*{_SHARD_SUFFIX}")) if folder.is_dir() else []

    def _read(self, shard: Path, model_key: str) -> tuple[np.ndarray, np.ndarray] | None:
        """Load one shard's keys and vectors, or None (after a warning) when it is unusable."""
        try:
            with np.load(shard, allow_pickle=False) as data:
                stored_key = str(data["model_key"])
                keys, vectors = data["content_keys"], data["vectors"]
        except FileNotFoundError:
            return None  # merged away by a concurrent compaction
        except Exception as exc:  # truncated zip, bad header, missing array, pickled data
            self._discard(shard, f"it cannot be read ({type(exc).__name__}: {exc})")
            return None
        if stored_key != model_key:
            self._discard(shard, f"it belongs to model key {stored_key!r}")
            return None
        if vectors.ndim != 2 or vectors.dtype != np.float32 or keys.shape != (vectors.shape[0],):
            self._discard(shard, "its arrays have inconsistent shapes or types")
            return None
        return keys, vectors

    def _discard(self, shard: Path, reason: str) -> None:
        """Move an unusable shard aside so it is neither read again nor lost for inspection."""
        warnings.warn(
            f"Ignoring embedding cache file {shard}: {reason}. Its items will be recomputed; "
            f"the file was renamed to {shard.name}.corrupt.",
            stacklevel=3,
        )
        with contextlib.suppress(OSError):  # another process moved it first: it is out of the way
            os.replace(shard, shard.with_name(shard.name + ".corrupt"))

    def _compact(self, model_key: str) -> None:
        """Merge all shards of a model key into one, first occurrence of each key winning."""
        shards = self._shards(model_key)
        merged_keys: list[np.ndarray] = []
        merged_vectors: list[np.ndarray] = []
        for shard in shards:
            loaded = self._read(shard, model_key)
            if loaded is not None:
                merged_keys.append(loaded[0])
                merged_vectors.append(loaded[1])
        if not merged_keys or len({v.shape[1] for v in merged_vectors}) != 1:
            return
        keys = np.concatenate(merged_keys)
        keys, first = np.unique(keys, return_index=True)
        vectors = np.concatenate(merged_vectors)[first]
        # The merged shard sorts after every shard it replaces, then those are removed.
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}{_SHARD_SUFFIX}"
        _write_shard(self._folder(model_key) / name, model_key, keys, vectors)
        for shard in shards:
            shard.unlink(missing_ok=True)


def _write_shard(path: Path, model_key: str, keys: np.ndarray, vectors: np.ndarray) -> None:
    """Write a shard atomically: temporary file in the same folder, fsync, os.replace."""
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=_SHARD_SUFFIX)
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, model_key=np.array(model_key), content_keys=keys, vectors=vectors)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class EmbedOutcome:
    """Result of :func:`embed_with_cache`.

    Attributes
    ----------
    vectors : numpy.ndarray
        float32 ``(n, dim)``, in input order.
    model_key : str
        Key of the embedder that produced them.
    n_computed : int
        Items run through the model (distinct content keys that were missing).
    n_cached : int
        Items served from the cache.
    seconds : float
        Wall-clock time of the whole call.
    """

    vectors: np.ndarray
    model_key: str
    n_computed: int
    n_cached: int
    seconds: float


def embed_with_cache(
    embedder: Embedder,
    images: Sequence[ImageInput],
    content_keys: Sequence[str],
    cache: EmbeddingCache,
    *,
    batch_size: int = 64,
    progress: ProgressCallback | None = None,
) -> EmbedOutcome:
    """Embed images, computing only those whose vectors are not cached yet.

    Items with the same content key are computed once. New vectors are stored
    before returning, so a second identical call computes nothing.

    Parameters
    ----------
    embedder : Embedder
    images : sequence of str, os.PathLike or PIL.Image.Image
    content_keys : sequence of str
        One key per image that changes when its content does, such as
        :func:`file_sha1`.
    cache : EmbeddingCache
    batch_size : int, default 64
    progress : ProgressCallback, optional
        Called with ``(done, total)`` over the whole request, cached items
        counting as done; the last call is ``(n, n)``.

    Returns
    -------
    EmbedOutcome
    """
    started = time.perf_counter()
    check_batch_size(batch_size)
    total = len(images)
    if len(content_keys) != total:
        raise AddeError(f"Got {total} images but {len(content_keys)} content keys.")
    vectors, hit_mask = cache.lookup(embedder.key, content_keys)
    if vectors is None:
        vectors = np.full((total, embedder.dim), np.nan, dtype=np.float32)
    miss_rows = np.flatnonzero(~hit_mask)
    n_cached = total - len(miss_rows)
    first_row: dict[str, int] = {}
    for row in miss_rows.tolist():
        first_row.setdefault(content_keys[row], row)
    compute_rows = list(first_row.values())

    def relay(done: int, todo: int) -> None:
        progress(total if done == todo else n_cached + done, total)

    if compute_rows:
        computed = embedder.embed_images(
            [images[row] for row in compute_rows],
            batch_size=batch_size,
            progress=relay if progress is not None else None,
        )
        cache.store(embedder.key, list(first_row), computed)
        by_key = dict(zip(first_row, computed, strict=True))
        for row in miss_rows.tolist():
            vectors[row] = by_key[content_keys[row]]
    elif progress is not None:
        progress(total, total)
    return EmbedOutcome(vectors, embedder.key, len(compute_rows), n_cached, time.perf_counter() - started)


def file_sha1(path: str | os.PathLike[str]) -> str:
    """Return the SHA-1 hex digest of a file's bytes, a content key for :class:`EmbeddingCache`.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    str

    Raises
    ------
    AddeError
        If the file cannot be read; the message names it.
    """
    digest = hashlib.sha1()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise AddeError(f"Cannot read {os.fspath(path)}: {exc.strerror or exc}.") from exc
    return digest.hexdigest()
