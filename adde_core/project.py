"""The Project façade: one folder holding a database, embedding arrays and caches, with methods named after the loop's steps."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from adde_core.data.ingest import PRECOMPUTED_PREFIX, ProgressCallback, ingest_folder, ingest_manifest
from adde_core.data.report import IngestReport
from adde_core.errors import AddeError
from adde_core.store import Store
from adde_core.store.database import StoredEmbeddings, slugify, data_fingerprint

if TYPE_CHECKING:
    from adde_core.analysis import AnalysisResult, ClusterConfig, MapConfig, RegionConfig

PROJECT_FILE = "adde_project.json"


@dataclass(frozen=True)
class EmbeddingSummary:
    """What an embedding pass did: which set it produced and how much it had to compute."""

    model_key: str
    n: int
    dim: int
    fingerprint: str
    n_computed: int
    n_cached: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        """Throughput over the items actually computed (0 when all came from the cache)."""
        return self.n_computed / self.seconds if self.n_computed and self.seconds > 0 else 0.0


class Project:
    """An ADDE project stored in a folder.

    Use :meth:`create`, :meth:`open` or :meth:`open_or_create` rather than the constructor.
    The folder holds ``adde_project.json`` (name and database URL), ``adde.db`` (SQLite,
    unless the config points at another database), ``embeddings/`` and ``cache/``.
    """

    def __init__(self, root: Path, config: dict[str, Any]) -> None:
        self.root = Path(root).resolve()
        self.config = config
        url = config.get("database_url") or f"sqlite:///{self.root / 'adde.db'}"
        self.store = Store(url, array_root=self.root)
        # Fitted models are cheap to rebuild but not free; keyed by what they were fitted on.
        self._heads: dict[tuple[str, str], Any] = {}
        self._generators: dict[str, Any] = {}
        self._indexes: dict[tuple[str, ...], Any] = {}

    # ------------------------------------------------------------- lifecycle
    @classmethod
    def create(cls, root: Path | str, *, name: str | None = None, database_url: str | None = None) -> "Project":
        """Create a new project folder (it may exist but must not already hold a project)."""
        root = Path(root)
        if (root / PROJECT_FILE).exists():
            raise AddeError(f"{root}: already holds an ADDE project; open it instead")
        root.mkdir(parents=True, exist_ok=True)
        config = {"name": name or root.resolve().name, "database_url": database_url, "format": 1}
        (root / PROJECT_FILE).write_text(json.dumps(config, indent=2))
        return cls(root, config)

    @classmethod
    def open(cls, root: Path | str) -> "Project":
        """Open an existing project folder, restoring everything stored in it."""
        root = Path(root)
        cfg = root / PROJECT_FILE
        if not cfg.exists():
            raise AddeError(f"{root}: not an ADDE project (no {PROJECT_FILE}); create one first")
        try:
            config = json.loads(cfg.read_text())
        except json.JSONDecodeError as exc:
            raise AddeError(f"{cfg}: not valid JSON ({exc})") from exc
        return cls(root, config)

    @classmethod
    def open_or_create(cls, root: Path | str, **kwargs: Any) -> "Project":
        """Open ``root`` if it holds a project, else create one there."""
        return cls.open(root) if (Path(root) / PROJECT_FILE).exists() else cls.create(root, **kwargs)

    def close(self) -> None:
        """Release database connections."""
        self.store.close()

    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.root.name)

    @property
    def data_dir(self) -> Path:
        """Where files that belong to the project (e.g. the demo's images) are written."""
        return self.root / "data"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    # ------------------------------------------------------------- paths
    def to_uri(self, path: Path) -> str:
        """Store paths inside the project relative to it (so the folder can move), others absolute."""
        path = Path(path).resolve()
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()

    def resolve_uri(self, uri: str) -> Path:
        """Inverse of :meth:`to_uri`."""
        path = Path(uri)
        return path if path.is_absolute() else self.root / path

    # ------------------------------------------------------------- data
    def ingest_folder(self, root: Path | str, *, role: str = "seed", progress: ProgressCallback | None = None) -> IngestReport:
        """Ingest an image folder with one sub-folder per class. See :func:`adde_core.data.ingest.ingest_folder`."""
        return ingest_folder(self, Path(root), role=role, progress=progress)

    def ingest_manifest(self, manifest: Path | str, **kwargs: Any) -> IngestReport:
        """Ingest a CSV/Parquet manifest. See :func:`adde_core.data.ingest.ingest_manifest`."""
        return ingest_manifest(self, Path(manifest), **kwargs)

    def last_ingest_report(self) -> IngestReport | None:
        """The report of the most recent ingest, as stored with its run."""
        run = self.store.last_run("ingest")
        if run is None or "source" not in run["summary"]:
            return None
        return IngestReport.from_dict(run["summary"])

    def items(self, *, roles: list[str] | None = None) -> pd.DataFrame:
        """Items as a DataFrame (oracle labels excluded), with a ``path`` column resolved to disk."""
        frame = self.store.items_frame(roles=roles)
        frame["path"] = [str(self.resolve_uri(u)) if isinstance(u, str) else None for u in frame["uri"]]
        return frame

    def counts(self) -> pd.DataFrame:
        """Item counts by role and source."""
        return self.store.counts()

    @property
    def current_iteration(self) -> int:
        return self.store.current_iteration()

    @property
    def subgroup_attribute(self) -> str | None:
        """The attribute used for subgroup (fairness) analysis, if one is set."""
        return self.store.get_meta("subgroup_attribute")

    # ------------------------------------------------------------- embeddings
    def embed(self, name: str | None = None, *, params: dict[str, Any] | None = None, batch_size: int = 64,
              progress: ProgressCallback | None = None) -> EmbeddingSummary:
        """Embed every item that has an image, computing only what the cache lacks.

        Parameters
        ----------
        name
            An embedder from :data:`adde_core.embedding.EMBEDDERS` (default: the offline
            EfficientNet-Lite0), or ``"precomputed"`` to use vectors supplied at ingest
            (``params={"name": ...}`` picks the set when there are several).
        params
            Keyword arguments for the embedder (e.g. ``image_size``, ``model_name``, ``pretrained``).
        progress
            Called as ``progress(done, total)`` after each batch.
        """
        from adde_core.embedding import DEFAULT_EMBEDDER, EmbeddingCache, create_embedder, embed_with_cache

        name = name or DEFAULT_EMBEDDER
        params = dict(params or {})
        if name == "precomputed":
            return self._precomputed_summary(params.get("name"))
        embedder = create_embedder(name, **self._resolve_params(params))
        frame = self.store.items_frame()
        frame = frame[frame["content_hash"].notna()]
        if frame.empty:
            raise AddeError("no items with images to embed; ingest a folder or manifest first")
        pairs = list(zip(frame["id"], frame["content_hash"]))
        fingerprint = data_fingerprint(embedder.key, pairs)
        stored = self.store.load_embeddings(embedder.key)
        if stored is not None and stored.fingerprint == fingerprint:
            if progress is not None:
                progress(len(frame), len(frame))
            return EmbeddingSummary(embedder.key, len(stored.ids), stored.vectors.shape[1], fingerprint, 0,
                                    len(stored.ids), 0.0)
        run_id = self.store.start_run("embed", {"embedder": name, "params": params, "model_key": embedder.key})
        start = time.perf_counter()
        outcome = embed_with_cache(
            embedder, [self.resolve_uri(u) for u in frame["uri"]], list(frame["content_hash"]),
            EmbeddingCache(self.cache_dir / "embeddings"), batch_size=batch_size, progress=progress,
        )
        seconds = time.perf_counter() - start
        self.store.save_embeddings(embedder.key, list(frame["id"]), outcome.vectors, fingerprint, run_id=run_id)
        summary = EmbeddingSummary(embedder.key, len(frame), outcome.vectors.shape[1], fingerprint,
                                   outcome.n_computed, outcome.n_cached, seconds)
        self.store.finish_run(run_id, summary={**summary.__dict__, "images_per_second": summary.images_per_second})
        return summary

    def _precomputed_summary(self, set_name: str | None) -> EmbeddingSummary:
        sets = [k for k in self.store.embedding_sets()["model"] if k.startswith(PRECOMPUTED_PREFIX)]
        if not sets:
            raise AddeError("this project has no precomputed embeddings; ingest a manifest with an embeddings file")
        key = f"{PRECOMPUTED_PREFIX}{set_name}" if set_name else sets[0]
        stored = self.embeddings(key)
        return EmbeddingSummary(key, len(stored.ids), stored.vectors.shape[1], stored.fingerprint, 0, len(stored.ids), 0.0)

    def default_model_key(self) -> str:
        """The embedding set analyses use unless told otherwise: the default embedder's, else the newest."""
        sets = self.store.embedding_sets()
        if sets.empty:
            raise AddeError("this project has no embeddings yet; embed it on the Data page or with "
                            "`python -m adde_core embed`")
        default = sets[sets["model"].str.startswith("efficientnet-lite0")]
        return str((default if not default.empty else sets).sort_values("created_at")["model"].iloc[-1])

    def map_path(self, model_key: str) -> Path:
        """Where the latent map for ``model_key`` is kept, so later iterations extend the same map."""
        return self.root / "maps" / f"{slugify(model_key)}.npz"

    def analyze(self, model_key: str | None = None, *, refit: bool = False,
                map_config: "MapConfig | None" = None, cluster_config: "ClusterConfig | None" = None,
                region_config: "RegionConfig | None" = None,
                progress: ProgressCallback | None = None) -> "AnalysisResult":
        """Map, cluster and find sparse regions for one embedding set, and keep the map.

        The stored map is extended, never moved: items already on it keep their exact
        coordinates, new items are placed into it. ``refit=True`` fits a new map and
        aligns it to the old one. Hidden oracle labels are never passed in.
        """
        from adde_core.analysis import ClusterConfig, LatentMap, MapConfig, RegionConfig, analyze_embeddings

        model_key = model_key or self.default_model_key()
        stored = self.embeddings(model_key)
        path = self.map_path(model_key)
        previous = LatentMap.load(path) if path.exists() else None
        result = analyze_embeddings(
            stored.vectors, stored.ids, self.items(), model_key=model_key, fingerprint=stored.fingerprint,
            map_config=map_config or MapConfig(), cluster_config=cluster_config or ClusterConfig(),
            region_config=region_config or RegionConfig(), previous_map=previous, refit=refit, progress=progress,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        result.map.save(path)
        return result

    def embed_params(self, model_key: str) -> tuple[str, dict[str, Any]]:
        """The embedder name and parameters that produced ``model_key``, from its embed run."""
        if model_key.startswith(PRECOMPUTED_PREFIX):
            raise AddeError(f"{model_key!r} holds precomputed vectors, so new (generated) images cannot be embedded "
                            "in the same space; embed the project with an image embedder on the Data page first")
        for run in self.store.runs("embed"):
            if run["params"].get("model_key") == model_key:
                return run["params"]["embedder"], dict(run["params"].get("params", {}))
        raise AddeError(f"no embed run recorded for {model_key!r}; embed the project again on the Data page")

    def embedder_for(self, model_key: str) -> Any:
        """Rebuild the embedder that produced ``model_key``, to embed new images in the same space."""
        from adde_core.embedding import create_embedder

        name, params = self.embed_params(model_key)
        return create_embedder(name, **self._resolve_params(params))

    def _resolve_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Embedder parameters with project-relative files (fine-tuned ``weights``) made absolute."""
        if isinstance(params.get("weights"), str):
            return {**params, "weights": str(self.resolve_uri(params["weights"]))}
        return params

    def head(self, model_key: str | None = None) -> Any:
        """f_θ's head for this iteration: a :class:`~adde_core.model.LinearHead` fitted on D_t's labelled items.

        Cached per (embedding set, labelled items and labels), so it is refitted exactly
        when D_t or the embeddings change.
        """
        import hashlib

        from adde_core.model import LinearHead

        model_key = model_key or self.default_model_key()
        stored = self.embeddings(model_key)
        items = self.store.items_frame(roles=["seed"])
        items = items[items["label"].notna() & items["id"].isin(set(stored.ids))]
        key = hashlib.sha1("\n".join(f"{i}\t{lab}" for i, lab in zip(items["id"], items["label"])).encode())
        key.update(stored.fingerprint.encode())
        cache_key = (model_key, key.hexdigest())
        if cache_key not in self._heads:
            rows = pd.Index(stored.ids).get_indexer(items["id"])
            self._heads = {cache_key: LinearHead().fit(stored.vectors[rows], items["label"].to_numpy())}
        return self._heads[cache_key]

    def acquire(self, region: Any, *, mode: str = "retrieve", **kwargs: Any) -> Any:
        """Fill a region: ``mode="retrieve"`` searches the pool, ``"generate"`` runs a generator.

        ``region`` is a :class:`~adde_core.acquisition.RegionSpec`, a detected
        :class:`~adde_core.analysis.SparseRegion`, or a list of selected item ids. Returns an
        :class:`~adde_core.acquisition.acquire.AcquisitionResult` whose candidate set is stored.
        See :func:`~adde_core.acquisition.acquire.acquire_from_pool` and
        :func:`~adde_core.acquisition.acquire.acquire_by_generation` for the keyword arguments.
        """
        from adde_core.acquisition.acquire import RegionSpec, acquire_by_generation, acquire_from_pool

        if isinstance(region, (list, tuple)):
            region = RegionSpec.from_selection(list(region))
        elif not isinstance(region, RegionSpec):
            region = RegionSpec.from_sparse(region)
        if mode == "retrieve":
            return acquire_from_pool(self, region, **kwargs)
        if mode == "generate":
            return acquire_by_generation(self, region, **kwargs)
        raise AddeError(f"unknown acquisition mode {mode!r}: use 'retrieve' or 'generate'")

    # ------------------------------------------------------------- the loop
    def next_iteration(self, *, model_key: str | None = None) -> Any:
        """Close the iteration: D_{t+1} = D_t ∪ D_valid, retrain, measure, adapt weights, check stopping.

        See :func:`adde_core.loop.runner.advance`; returns an
        :class:`~adde_core.loop.iteration.IterationSummary`.
        """
        from adde_core.loop.runner import advance

        return advance(self, model_key=model_key)

    def metrics_history(self) -> pd.DataFrame:
        """Every iteration's recorded metrics, one row per iteration."""
        from adde_core.loop.iteration import metrics_history

        return metrics_history(self)

    def embeddings(self, model_key: str) -> StoredEmbeddings:
        """The stored embedding set for ``model_key``; raises AddeError naming what exists when absent."""
        stored = self.store.load_embeddings(model_key)
        if stored is None:
            have = ", ".join(self.store.embedding_sets()["model"]) or "none"
            raise AddeError(f"no embeddings for {model_key!r} in this project (have: {have}); run embed first")
        return stored
