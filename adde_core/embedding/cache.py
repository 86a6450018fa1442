"""On-disk embedding cache keyed by (embedder key, item content key), so only new items are embedded."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import tempfile
import time
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adde_core.embedding.base import Embedder, ProgressCallback, check_batch_size
from adde_core.embedding.images import ImageInput, load_rgb
from adde_core.errors import AddeError

_SHARD_SUFFIX = ".npz"
_MAX_SHARDS = 16  # above this many shards for one model, compact() (and store() by default) merges them into one

FAULT_AFTER_BATCHES_ENV = "ADDE_FAULT_AFTER_BATCHES"
"""Test hook: when set to N, an embed SIGKILLs its own process right after its N-th batch is cached.

Fault-injection tests use it to prove that a killed embed resumes from its cache;
it has no other use and is unset in normal runs.
"""


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

    def store(self, model_key: str, content_keys: Sequence[str], vectors: np.ndarray, *, compact: bool = True) -> None:
        """Add vectors for items to the cache.

        Parameters
        ----------
        model_key : str
            The embedder's ``key``.
        content_keys : sequence of str
            One key per row of ``vectors``.
        vectors : numpy.ndarray
            ``(n, dim)`` array, stored as float32.
        compact : bool, default True
            Merge the shards when there are too many. A long run that stores one
            shard per batch passes False and calls :meth:`compact` once at the
            end, so it does not rewrite the whole cache every few batches.
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
        if compact:
            self.compact(model_key)

    def compact(self, model_key: str) -> None:
        """Merge the shards of a model key into one when there are more than a few.

        Parameters
        ----------
        model_key : str
            The embedder's ``key``.
        """
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
    failed : tuple of (int, str)
        ``(row, reason)`` for every input row whose image could not be read,
        in row order; the reason names the file. Their rows of ``vectors`` are
        NaN: drop them with :attr:`ok`. Failed items are not cached, so a later
        run tries them again.
    """

    vectors: np.ndarray
    model_key: str
    n_computed: int
    n_cached: int
    seconds: float
    failed: tuple[tuple[int, str], ...] = ()

    @property
    def ok(self) -> np.ndarray:
        """bool ``(n,)``: True for rows with a vector, False for the rows in :attr:`failed`."""
        mask = np.ones(len(self.vectors), dtype=bool)
        mask[[row for row, _ in self.failed]] = False
        return mask


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

    Items with the same content key are computed once. Every batch is stored
    as a cache shard as soon as it is computed, so a run that is killed keeps
    what it finished and running it again computes only the rest. An image
    that cannot be read is reported in :attr:`EmbedOutcome.failed` and skipped;
    the other items are still embedded.

    Parameters
    ----------
    embedder : Embedder
    images : sequence of str, os.PathLike or PIL.Image.Image
    content_keys : sequence of str
        One key per image that changes when its content does, such as
        :func:`file_sha1`.
    cache : EmbeddingCache
    batch_size : int, default 64
        Images per forward pass, and per cache shard.
    progress : ProgressCallback, optional
        Called with ``(done, total)`` over the whole request, cached and failed
        items counting as done; the last call is ``(n, n)``.

    Returns
    -------
    EmbedOutcome
    """
    check_batch_size(batch_size)
    run = CachedEmbedRun(cache, embedder.key, images, content_keys, progress=progress, dim=embedder.dim)
    todo = run.compute_rows
    for start in range(0, len(todo), batch_size):
        rows = todo[start : start + batch_size]
        vectors, failures = embed_batch(embedder, [images[row] for row in rows], batch_size=batch_size)
        run.add(rows, vectors, [(rows[position], reason) for position, reason in failures])
    return run.finish()


def embed_batch(
    embedder: Embedder, images: Sequence[ImageInput], *, batch_size: int = 64
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Embed one batch, turning each unreadable image into a reported failure instead of an error.

    Parameters
    ----------
    embedder : Embedder
    images : sequence of str, os.PathLike or PIL.Image.Image
    batch_size : int, default 64

    Returns
    -------
    vectors : numpy.ndarray
        float32 ``(len(images), dim)``; NaN rows for the failures.
    failures : list of (int, str)
        ``(position in images, reason)``.
    """
    try:
        return embedder.embed_images(images, batch_size=batch_size), []
    except AddeError:
        pass  # some image in the batch is unreadable: find which, embed the rest
    vectors = np.full((len(images), embedder.dim), np.nan, dtype=np.float32)
    failures: dict[int, str] = {}
    for position, image in enumerate(images):
        try:
            load_rgb(image)
        except AddeError as exc:
            failures[position] = str(exc)
    good = [position for position in range(len(images)) if position not in failures]
    try:
        if good:
            vectors[good] = embedder.embed_images([images[p] for p in good], batch_size=batch_size)
    except AddeError:
        # The embedder refused something load_rgb accepts: fall back to one image at a time.
        for position in good:
            try:
                vectors[position] = embedder.embed_images([images[position]], batch_size=1)[0]
            except AddeError as exc:
                failures[position] = str(exc)
    return vectors, sorted(failures.items())


class CachedEmbedRun:
    """One resumable embed over a cache: the lookup, then batches stored as shards as they arrive.

    Both engines drive it, the in-process loop of :func:`embed_with_cache` and
    the Ray Data job of :mod:`adde_core.embedding.distributed`, so they write
    the same cache and report the same outcome.

    Parameters
    ----------
    cache : EmbeddingCache
    model_key : str
        Key of the embedder that computes the vectors.
    images : sequence
        The inputs; only their number is used here.
    content_keys : sequence of str
        One key per image.
    progress : ProgressCallback, optional
        Called with ``(done, total)`` after every batch; the last call is ``(n, n)``.
    dim : int, optional
        Vector length, when known before the first batch arrives.

    Attributes
    ----------
    compute_rows : list of int
        One row per distinct content key that is not cached: what must be computed.
    """

    def __init__(
        self,
        cache: EmbeddingCache,
        model_key: str,
        images: Sequence[object],
        content_keys: Sequence[str],
        *,
        progress: ProgressCallback | None = None,
        dim: int | None = None,
    ) -> None:
        self._started = time.perf_counter()
        self._total = len(images)
        if len(content_keys) != self._total:
            raise AddeError(f"Got {self._total} images but {len(content_keys)} content keys.")
        self._cache, self._model_key, self._keys, self._progress = cache, model_key, content_keys, progress
        self._vectors, hit_mask = cache.lookup(model_key, content_keys)
        if self._vectors is None and dim is not None:
            self._vectors = np.full((self._total, dim), np.nan, dtype=np.float32)
        self._rows_by_key: dict[str, list[int]] = {}
        for row in np.flatnonzero(~hit_mask).tolist():
            self._rows_by_key.setdefault(content_keys[row], []).append(row)
        self.compute_rows = [rows[0] for rows in self._rows_by_key.values()]
        self.n_cached = self._total - sum(len(rows) for rows in self._rows_by_key.values())
        self.n_computed = 0
        self._failed: dict[int, str] = {}
        self._finished: set[str] = set()
        self._done = self.n_cached
        self._batches = 0
        fault = os.environ.get(FAULT_AFTER_BATCHES_ENV, "")
        self._fault_after = int(fault) if fault.isdigit() else None

    def add(self, rows: Sequence[int], vectors: np.ndarray, failures: Sequence[tuple[int, str]] = ()) -> None:
        """Store one computed batch in the cache and fill it in.

        Parameters
        ----------
        rows : sequence of int
            Rows from :attr:`compute_rows` the batch covers.
        vectors : numpy.ndarray
            ``(len(rows), dim)``; the rows named in ``failures`` are ignored.
        failures : sequence of (int, str)
            ``(row, reason)`` for rows whose image could not be read.
        """
        rows = [int(row) for row in rows]
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(rows):
            raise AddeError(f"Internal error: a batch of {len(rows)} rows came back with vectors of shape "
                            f"{vectors.shape}.")
        if self._vectors is None:
            self._vectors = np.full((self._total, vectors.shape[1]), np.nan, dtype=np.float32)
        failed = dict(failures)
        # A key is finished once; an engine that retried a batch must not count it twice.
        fresh = [index for index, row in enumerate(rows) if self._keys[row] not in self._finished]
        self._finished.update(self._keys[rows[index]] for index in fresh)
        ok = [index for index in fresh if rows[index] not in failed]
        if ok:
            keys = [self._keys[rows[index]] for index in ok]
            self._cache.store(self._model_key, keys, vectors[ok], compact=False)
            for index, key in zip(ok, keys, strict=True):
                self._vectors[self._rows_by_key[key]] = vectors[index]
        for index in fresh:
            if rows[index] in failed:
                for same in self._rows_by_key[self._keys[rows[index]]]:
                    self._failed[same] = failed[rows[index]]
        self.n_computed += len(ok)
        self._done += sum(len(self._rows_by_key[self._keys[rows[index]]]) for index in fresh)
        self._batches += 1
        if self._progress is not None and self._done < self._total:
            self._progress(self._done, self._total)
        if self._fault_after is not None and self._batches >= self._fault_after:
            os.kill(os.getpid(), signal.SIGKILL)  # test hook, see FAULT_AFTER_BATCHES_ENV

    def finish(self) -> EmbedOutcome:
        """Merge the new shards and return the outcome.

        Returns
        -------
        EmbedOutcome

        Raises
        ------
        AddeError
            If some rows to compute never came back (an engine lost them).
        """
        if self.n_computed:
            self._cache.compact(self._model_key)
        if self._progress is not None:
            self._progress(self._total, self._total)
        if self._done != self._total:
            raise AddeError(
                f"Internal error: {self._total - self._done} of {self._total} items came back from neither "
                "the cache nor the model; run the embed again."
            )
        vectors = self._vectors if self._vectors is not None else np.zeros((self._total, 0), dtype=np.float32)
        return EmbedOutcome(
            vectors,
            self._model_key,
            self.n_computed,
            self.n_cached,
            time.perf_counter() - self._started,
            tuple(sorted(self._failed.items())),
        )


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
