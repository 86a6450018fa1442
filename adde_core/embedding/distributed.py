"""The Ray Data embedding engine: one model actor per worker, writing the same resumable cache as the in-process path.

The driver does the cache lookup, sends only the missing distinct items to a
pool of Ray actors that each rebuild the embedder from its registry name and
parameters, and stores every batch that comes back as a cache shard at once,
through :class:`~adde_core.embedding.cache.CachedEmbedRun`. So the vectors,
the cache and the outcome are those of :func:`~adde_core.embedding.embed_with_cache`,
and a job that dies resumes from what it stored.
"""

from __future__ import annotations

import os
import re
import socket
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from adde_core.embedding.base import ProgressCallback, check_batch_size
from adde_core.embedding.cache import CachedEmbedRun, EmbeddingCache, EmbedOutcome, embed_batch
from adde_core.embedding.images import ImageInput
from adde_core.errors import AddeError

RAY_REQUIREMENT = "ray==2.60.0"
CONNECT_TIMEOUT_S = 5.0
"""Longest wait for a cluster address to accept a connection before the job is refused."""

WORKER_RESTARTS = 2
"""How often Ray may restart a dead model actor (and retry its batch) before the job fails.

Ray Data's default is unlimited, which turns a worker that always crashes
(out of memory on every batch, a broken driver) into a job that never ends.
"""

FAULT_WORKER_EXIT_ENV = "ADDE_FAULT_WORKER_EXIT_AFTER_BATCHES"
"""Test hook: when set to N in the driver, every model actor exits abruptly once it has embedded N batches.

Fault-injection tests use it to kill Ray workers mid-job; unset in normal runs.
"""

_CLIENT_PREFIX = "ray://"
_CLIENT_PORT = 10001  # Ray Client's default port
_GCS_PORT = 6379  # the head node's default GCS port


def embed_with_ray(
    name: str,
    params: Mapping[str, Any] | None,
    images: Sequence[ImageInput],
    content_keys: Sequence[str],
    cache: EmbeddingCache,
    *,
    model_key: str | None = None,
    address: str | None = None,
    batch_size: int = 64,
    concurrency: int | tuple[int, int] | None = None,
    num_gpus: float | None = None,
    local_cpus: int = 2,
    progress: ProgressCallback | None = None,
) -> EmbedOutcome:
    """Embed images with a Ray Data job, computing only those whose vectors are not cached yet.

    The contract is that of :func:`~adde_core.embedding.embed_with_cache`: the
    same cache, the same vectors (to float32 rounding), the same outcome, a
    failed image reported in ``outcome.failed`` rather than raised. The embedder
    is rebuilt inside each Ray actor with
    :func:`~adde_core.embedding.create_embedder`, so it is named by registry
    ``name`` and ``params`` rather than passed as an object.

    Parameters
    ----------
    name : str
        A key of :data:`adde_core.embedding.EMBEDDERS`.
    params : mapping, optional
        Keyword arguments for that embedder. Every path in them (fine-tuned
        ``weights``) must exist on the workers.
    images : sequence of str or os.PathLike
        Image files. On a cluster every worker must see them at the same path
        (a shared file system); one that a worker cannot read is reported in
        ``outcome.failed``.
    content_keys : sequence of str
        One key per image, such as :func:`~adde_core.embedding.file_sha1`.
    cache : EmbeddingCache
        Written by the driver, so it only has to be reachable from here.
    model_key : str, optional
        The embedder's ``key`` when the caller has already built the embedder
        (``create_embedder(name, **params).key``); built here otherwise. Each
        actor checks that its embedder has this key, so vectors never land under
        the wrong key.
    address : str, optional
        None starts a local Ray instance on loopback with ``local_cpus`` CPUs for
        this call and stops it afterwards; ``"auto"`` joins the cluster this
        machine is part of (``ray start``); ``"ray://host:port"`` connects through
        Ray Client; ``"host:port"`` joins a cluster's head node. An unreachable
        address fails within :data:`CONNECT_TIMEOUT_S`. When Ray is already
        initialised in this process, that connection is used as it is.
    batch_size : int, default 64
        Images per actor call, forward pass and cache shard.
    concurrency : int or (int, int), optional
        Number of model actors, or a (min, max) range to autoscale over.
        Default: one per GPU when the cluster has GPUs, else one per CPU.
    num_gpus : float, optional
        GPUs per actor; default 1 when the cluster has GPUs, else 0.
    local_cpus : int, default 2
        CPUs of the local instance started when ``address`` is None.
    progress : ProgressCallback, optional
        Called with ``(done, total)`` as batches come back; the last call is
        ``(n, n)``.

    Returns
    -------
    EmbedOutcome

    Raises
    ------
    AddeError
        If Ray is not installed, the address cannot be reached, an image is an
        in-memory image rather than a file, an actor cannot build the embedder,
        or a worker dies mid-job; in the last case every batch finished before
        is in the cache and running the same call again resumes from there.
    """
    check_batch_size(batch_size)
    params = dict(params or {})
    paths = _image_paths(images)
    ray = _import_ray()
    if address is not None and address.strip() != "auto" and not ray.is_initialized():
        _probe(address.strip())  # before anything slow, so a wrong address fails in seconds
    if model_key is None:
        from adde_core.embedding import create_embedder

        model_key = create_embedder(name, **params).key
    run = CachedEmbedRun(cache, model_key, paths, content_keys, progress=progress)
    if not run.compute_rows:
        return run.finish()
    started_here = _connect(ray, address, local_cpus)
    try:
        for rows, vectors, failures in _run_job(
            ray, name, params, model_key, paths, run.compute_rows, batch_size, concurrency, num_gpus
        ):
            run.add(rows, vectors, failures)
    except AddeError:
        raise
    except Exception as exc:
        raise _job_error(ray, name, exc, run.n_computed, len(run.compute_rows)) from exc
    finally:
        if started_here:
            ray.shutdown()
    return run.finish()


class ModelActor:
    """A Ray Data callable class: builds the embedder once per actor, then embeds batches of image paths.

    Parameters
    ----------
    name : str
        Embedder registry name.
    params : dict
        Embedder parameters.
    model_key : str
        The key the driver files the vectors under; the embedder built here must have it.
    batch_size : int
        Images per forward pass.
    exit_after_batches : int, optional
        Test hook (:data:`FAULT_WORKER_EXIT_ENV`): exit the worker process after this many batches.
    """

    def __init__(
        self,
        name: str,
        params: dict[str, Any],
        model_key: str,
        batch_size: int,
        exit_after_batches: int | None = None,
    ) -> None:
        from adde_core.embedding import create_embedder

        self.embedder = create_embedder(name, **params)
        if self.embedder.key != model_key:
            raise AddeError(
                f"The embedder built on Ray worker {socket.gethostname()} has key {self.embedder.key!r}, "
                f"but the job files its vectors under {model_key!r}: the worker's device or libraries differ "
                "from the driver's (OpenCLIP on a GPU adds '+fp16'). Pass params that pin them, such as "
                "precision='fp32' or device='cpu', or compute model_key where the workers run."
            )
        self.batch_size = batch_size
        self.exit_after_batches = exit_after_batches
        self.batches = 0

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Embed one batch: ``{"row", "path"}`` in, ``{"row", "vector", "error"}`` out ("" where it worked)."""
        if self.exit_after_batches is not None and self.batches >= self.exit_after_batches:
            os._exit(1)  # test hook, see FAULT_WORKER_EXIT_ENV
        paths = [str(path) for path in batch["path"]]
        vectors, failures = embed_batch(self.embedder, paths, batch_size=self.batch_size)
        errors = np.full(len(paths), "", dtype=object)
        for position, reason in failures:
            errors[position] = reason
        self.batches += 1
        return {"row": np.asarray(batch["row"], dtype=np.int64), "vector": vectors, "error": errors}


def _run_job(
    ray: ModuleType,
    name: str,
    params: dict[str, Any],
    model_key: str,
    paths: list[str],
    rows: list[int],
    batch_size: int,
    concurrency: int | tuple[int, int] | None,
    num_gpus: float | None,
) -> Iterator[tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]]:
    """Stream ``(rows, vectors, failures)`` back from the actor pool, one batch at a time, in any order."""
    import pandas as pd
    import ray.data

    # One input block per batch, so every actor call returns one block and the driver caches every
    # batch as it arrives (from_items splits evenly, and map_batches then bundles two blocks per call).
    chunks = [rows[start : start + batch_size] for start in range(0, len(rows), batch_size)]
    blocks = [pd.DataFrame({"row": chunk, "path": [paths[row] for row in chunk]}) for chunk in chunks]
    resources = ray.cluster_resources()
    if num_gpus is None:
        num_gpus = 1 if resources.get("GPU", 0) >= 1 and str(params.get("device", "auto")) != "cpu" else 0
    if concurrency is None:
        slots = int(resources.get("GPU", 0) // num_gpus) if num_gpus else int(resources.get("CPU", 1))
        concurrency = max(1, min(slots, len(chunks)))  # more actors than batches would only start up
    if isinstance(concurrency, tuple):
        compute = ray.data.ActorPoolStrategy(min_size=concurrency[0], max_size=concurrency[1])
    else:
        compute = ray.data.ActorPoolStrategy(size=concurrency)
    fault = os.environ.get(FAULT_WORKER_EXIT_ENV, "")
    with warnings.catch_warnings():
        # max_restarts/max_task_retries have no named parameter in Ray 2.60 and warn as deprecated
        # "ray_remote_args"; without them a worker that always crashes is restarted forever.
        warnings.simplefilter("ignore", DeprecationWarning)
        dataset = ray.data.from_pandas(blocks).map_batches(
            ModelActor,
            fn_constructor_kwargs={
                "name": name,
                "params": params,
                "model_key": model_key,
                "batch_size": batch_size,
                "exit_after_batches": int(fault) if fault.isdigit() else None,
            },
            batch_size=batch_size,
            batch_format="numpy",
            compute=compute,
            num_cpus=1,
            num_gpus=num_gpus,
            max_restarts=WORKER_RESTARTS,
            max_task_retries=WORKER_RESTARTS,
        )
    context = ray.data.DataContext.get_current()
    bars, context.enable_progress_bars = context.enable_progress_bars, False  # progress goes through the callback
    try:
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            failures = [(int(row), str(err)) for row, err in zip(batch["row"], batch["error"], strict=True) if err]
            yield batch["row"], batch["vector"], failures
    finally:
        context.enable_progress_bars = bars


def _image_paths(images: Sequence[ImageInput]) -> list[str]:
    """Absolute paths of the images: the actors open the files themselves."""
    paths = []
    for row, image in enumerate(images):
        if not isinstance(image, (str, os.PathLike)):
            raise AddeError(
                f"The Ray engine embeds image files, but item {row} is an in-memory {type(image).__name__}; "
                "save in-memory images to files first, or use the in-process engine."
            )
        paths.append(os.path.abspath(os.fspath(image)))
    return paths


def require_ray() -> ModuleType:
    """Import Ray (and Ray Data), or raise an :class:`~adde_core.errors.AddeError` that names what to install.

    Returns
    -------
    module
        The ``ray`` module.
    """
    return _import_ray()


def check_address(address: str | None) -> None:
    """Fail within :data:`CONNECT_TIMEOUT_S`, naming ``address``, when no Ray cluster can be reached there.

    None (a local instance), ``"auto"`` and a process where Ray is already initialised
    (that connection is used) pass without a check.

    Raises
    ------
    AddeError
        If the address is malformed or nothing accepts a TCP connection there.
    """
    if address is None or address.strip() == "auto":
        return
    if not _import_ray().is_initialized():
        _probe(address.strip())


def _import_ray() -> ModuleType:
    """Import Ray, naming the package to install when it is missing."""
    try:
        import ray
        import ray.data  # noqa: F401  (Ray Data needs pyarrow and pandas, both requirements)
    except ModuleNotFoundError as exc:
        raise AddeError(
            f"The Ray embedding engine needs Ray: run `pip install {RAY_REQUIREMENT}` (see requirements.txt), "
            f"or use the in-process engine. ({exc})"
        ) from exc
    return ray


def _connect(ray: ModuleType, address: str | None, local_cpus: int) -> bool:
    """Connect to ``address`` or start a local instance; return True when this call started one."""
    if ray.is_initialized():
        return False
    # Ships this adde_core to the workers, so they run the driver's code even where it is not installed.
    runtime_env = {"py_modules": [str(Path(__file__).resolve().parents[1])], "excludes": ["__pycache__"]}
    if address is None:
        ray.init(
            num_cpus=local_cpus,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",  # loopback only: nothing outside this machine can join or submit
            logging_level="warning",
            runtime_env=runtime_env,
        )
        return True
    address = address.strip()
    try:
        ray.init(address=address, logging_level="warning", runtime_env=runtime_env)
    except Exception as exc:  # ConnectionError, grpc errors, version mismatches
        raise AddeError(
            f"Cannot connect to the Ray cluster at {address!r}: {type(exc).__name__}: {str(exc)[:300].rstrip('.')}. "
            f"{_ADDRESS_HELP}"
        ) from exc
    return False


_ADDRESS_HELP = (
    "Check that the cluster is up (`ray status` on its head node) and that this machine runs the same Ray and "
    "Python versions; pass 'ray://<head>:10001' for Ray Client, '<head>:6379' from a node of the cluster, "
    "'auto' on a node started with `ray start`, or no address to run on a local Ray instance."
)


def _probe(address: str) -> None:
    """Fail fast, naming the address, when nothing accepts a TCP connection there."""
    client = address.startswith(_CLIENT_PREFIX)
    host_port = address[len(_CLIENT_PREFIX) :] if client else address
    host, _, port_text = host_port.rpartition(":")
    if not host:
        host, port_text = host_port, str(_CLIENT_PORT if client else _GCS_PORT)
    host = host.strip("[]")  # an IPv6 literal
    if not host or not port_text.isdigit():
        raise AddeError(f"Ray address {address!r} is not of the form 'ray://host:port', 'host:port' or 'auto'.")
    try:
        socket.create_connection((host, int(port_text)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        if isinstance(exc, TimeoutError):
            reason = f"no answer within {CONNECT_TIMEOUT_S:g} s"
        else:
            reason = (exc.strerror or str(exc)).lower()
        raise AddeError(f"Cannot reach the Ray cluster at {address!r}: {reason}. {_ADDRESS_HELP}") from exc


def _job_error(ray: ModuleType, name: str, exc: BaseException, n_stored: int, n_todo: int) -> AddeError:
    """Turn an exception out of the Ray job into a message that says what happened and how to resume."""
    chain = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = getattr(current, "cause", None) or current.__cause__ or current.__context__
    for error in chain:
        if isinstance(error, AddeError):
            return AddeError(str(error))
        if getattr(error, "actor_init_failed", False):
            # Ray passes an actor's constructor error on only as text; the AddeError in it says what to do.
            text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
            found = re.search(r"AddeError: (.+)", text, re.DOTALL)
            reason = found.group(1).strip() if found else text.strip().splitlines()[-1]
            return AddeError(f"The Ray workers could not build embedder {name!r}: {reason}")
    exceptions = ray.exceptions
    died = (exceptions.ActorDiedError, exceptions.WorkerCrashedError, exceptions.NodeDiedError,
            exceptions.ObjectLostError, exceptions.ActorUnavailableError)
    what = (
        "a Ray worker died mid-job"
        if any(isinstance(error, died) for error in chain) or "died" in str(exc).lower()
        else "the Ray job failed"
    )
    detail = (str(exc).strip().splitlines() or [""])[0][:300].rstrip(".")
    return AddeError(
        f"Embedding with Ray stopped: {what} ({type(exc).__name__}: {detail}). {n_stored} of {n_todo} new "
        "vectors were computed and are kept in the cache; run the same embed again to compute only the rest "
        "(the in-process engine resumes from the same cache too)."
    )
