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
from adde_core.memo import Memo
from adde_core.review.oracle import ORACLE_REVIEWER
from adde_core.store import Store
from adde_core.store.database import StoredEmbeddings, data_fingerprint, shown_url, slugify
from adde_core.workspace import Workspace

if TYPE_CHECKING:
    from adde_core.analysis import AnalysisResult, ClusterConfig, MapConfig, RegionConfig
    from adde_core.loop.engine import Engine, IterationSummary, LoopConfig, Plan
    from adde_core.loop.simulation import SimulationData
    from adde_core.loop.stopping import StopDecision, StoppingConfig
    from adde_core.ranking import RankingWeights
    from adde_core.review.oracle import OracleReviewer
    from adde_core.working_set import WorkingSet

PROJECT_FILE = "adde_project.json"
#: Where :meth:`Project.embed` computes vectors: in this process, or as a Ray Data job (a cluster or local Ray).
EMBED_ENGINES = ("local", "ray")
#: Store meta key: the data root recorded by the first project on a shared database.
DATA_ROOT_KEY = "data_root"


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


@dataclass(frozen=True, eq=False)
class AcquisitionResult:
    """A stored candidate set and what happened on the way to it."""

    set_id: int
    mode: str
    candidates: pd.DataFrame
    summary: dict[str, Any]


class Project:
    """An ADDE project stored in a folder.

    Use :meth:`create`, :meth:`open` or :meth:`open_or_create` rather than the constructor.
    The folder holds ``adde_project.json`` (name, database URL, data root), ``adde.db`` (SQLite,
    unless the config points at another database: a team shares one PostgreSQL database, each
    member with their own folder), ``maps/`` and ``cache/``. Embedding arrays live in the database.
    """

    def __init__(self, root: Path, config: dict[str, Any]) -> None:
        self.root = Path(root).resolve()
        self.config = config
        url = config.get("database_url") or f"sqlite:///{self.root / 'adde.db'}"
        self.store = Store(url, array_root=self.root)
        data_root = config.get("data_root") or (self.store.get_meta(DATA_ROOT_KEY) if config.get("database_url")
                                                else None)
        self.workspace = Workspace(self.root, self.store, str(config.get("name") or self.root.name),
                                   Path(data_root).resolve() if data_root else None)
        # The one working-set cache: working sets by store revision, heads by D_t, indexes by pool,
        # generators by training set, analyses by embedding fingerprint and configs. Every key holds
        # the fingerprint of what the value was built from, so nothing outlives its data.
        self.memo = Memo(per_kind=4)

    # ------------------------------------------------------------- lifecycle
    @classmethod
    def create(cls, root: Path | str, *, name: str | None = None, database_url: str | None = None,
               data_root: Path | str | None = None) -> "Project":
        """Create a new project folder (it may exist but must not already hold a project).

        Parameters
        ----------
        database_url
            An SQLAlchemy URL of a shared database, e.g. ``postgresql+psycopg://user:pw@host/adde``:
            teammates who create their folders on the same URL see the same items, embeddings,
            maps, candidates and decisions. Default: SQLite inside the folder.
        data_root
            The folder item paths are stored relative to (default: the project folder; on a
            shared database, the data root its first project recorded).

        Raises
        ------
        AddeError
            When the database cannot be used (unreachable, driver missing); nothing is left behind.
        """
        root = Path(root)
        if (root / PROJECT_FILE).exists():
            raise AddeError(f"{root}: already holds an ADDE project; open it instead")
        database_url = (database_url or "").strip() or None
        config: dict[str, Any] = {"name": name or root.resolve().name, "database_url": database_url, "format": 1}
        if data_root:
            config["data_root"] = str(Path(data_root).resolve())
        # The top-most folder this call creates (None: root exists), so a failure removes exactly what it made.
        made = next((p for p in [*reversed(root.absolute().parents), root.absolute()] if not p.exists()), None)
        before = set(root.iterdir()) if made is None else set()
        root.mkdir(parents=True, exist_ok=True)
        project = None
        try:
            project = cls(root, config)
            if database_url and project.store.get_meta(DATA_ROOT_KEY) is None:
                project.store.set_meta(DATA_ROOT_KEY, str(project.workspace.base))
            tmp = root / f".{PROJECT_FILE}.tmp"
            tmp.write_text(json.dumps(config, indent=2))
            tmp.replace(root / PROJECT_FILE)  # the folder is a project only once everything above worked
        except BaseException:
            import shutil

            if project is not None:
                project.close()
            for path in ([made] if made is not None else set(root.iterdir()) - before):
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            raise
        return project

    @classmethod
    def create_demo(cls, root: Path | str, spec: Any = None, progress: ProgressCallback | None = None, *,
                    database_url: str | None = None) -> tuple["Project", IngestReport]:
        """Create the Animal-MNIST demo project in ``root`` (see :mod:`adde_core.data.demo`)."""
        from adde_core.data.demo import DemoSpec, write_demo

        project = cls.create(root, name="Animal-MNIST demo", database_url=database_url)
        return project, write_demo(project.workspace, spec or DemoSpec(), progress)

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
        """Open ``root`` if it holds a project, else create one there (``kwargs`` go to :meth:`create`).

        A ``database_url`` different from the one an existing project uses is an error, not ignored.
        """
        if not (Path(root) / PROJECT_FILE).exists():
            return cls.create(root, **kwargs)
        project = cls.open(root)
        wanted = (kwargs.get("database_url") or "").strip()
        if wanted and wanted != (project.config.get("database_url") or ""):
            project.close()
            raise AddeError(f"{root}: this project already uses "
                            f"{shown_url(project.config.get('database_url') or 'its own SQLite file')}, not "
                            f"{shown_url(wanted)}; create a new folder for the other database")
        return project

    def interrupted_runs(self) -> list[dict[str, Any]]:
        """Runs (ingest, embed, ...) whose process died before they finished, newest first.

        A run left "running" by a dead process is marked ``interrupted`` when the project is opened.
        """
        return self.store.interrupted_runs()

    def close(self) -> None:
        """Release database connections."""
        self.store.close()

    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.root.name)

    @property
    def data_dir(self) -> Path:
        """Where files that belong to the project (e.g. the demo's images) are written."""
        return self.workspace.data_dir

    @property
    def cache_dir(self) -> Path:
        return self.workspace.cache_dir

    # ------------------------------------------------------------- paths
    def to_uri(self, path: Path) -> str:
        """Store paths inside the project relative to it (so the folder can move), others absolute."""
        return self.workspace.to_uri(path)

    def resolve_uri(self, uri: str) -> Path:
        """Inverse of :meth:`to_uri`."""
        return self.workspace.resolve_uri(uri)

    # ------------------------------------------------------------- data
    def ingest_folder(self, root: Path | str, *, role: str = "seed", progress: ProgressCallback | None = None) -> IngestReport:
        """Ingest an image folder with one sub-folder per class. See :func:`adde_core.data.ingest.ingest_folder`."""
        return ingest_folder(self.workspace, Path(root), role=role, progress=progress)

    def ingest_manifest(self, manifest: Path | str, *, subgroup: str | None = None, **kwargs: Any) -> IngestReport:
        """Ingest a CSV/Parquet manifest. See :func:`adde_core.data.ingest.ingest_manifest`.

        ``subgroup`` names a manifest column to use as the subgroup attribute (fairness,
        worst-group accuracy, colour-by); it is checked after the ingest (:meth:`set_subgroup`).
        """
        report = ingest_manifest(self.workspace, Path(manifest), **kwargs)
        if subgroup:
            self.set_subgroup(subgroup)
        return report

    def last_ingest_report(self) -> IngestReport | None:
        """The report of the most recent ingest, as stored with its run."""
        run = self.store.last_run("ingest")
        if run is None or "source" not in run["summary"]:
            return None
        return IngestReport.from_dict(run["summary"])

    def items(self, *, roles: list[str] | None = None) -> pd.DataFrame:
        """Items as a DataFrame (oracle labels excluded), with a ``path`` column resolved to disk.

        Read once per item revision (a page asks for it several times per rerun, and every review
        click reruns the page: ~1 s each on the demo); each caller gets its own copy.
        """
        from adde_core.store.revision import items_revision

        def read() -> pd.DataFrame:
            frame = self.store.items_frame(roles=roles)
            frame["path"] = self.workspace.resolve_uris(frame["uri"])
            return frame

        key = (str(self.root), None if roles is None else tuple(roles), items_revision(self.store))
        return self.memo.get("items", key, read).copy()

    def counts(self) -> pd.DataFrame:
        """Item counts by role and source."""
        return self.store.counts()

    @property
    def current_iteration(self) -> int:
        return self.store.current_iteration()

    @property
    def subgroup_attribute(self) -> str | None:
        """The attribute used for subgroup (fairness) analysis, if one is set."""
        from adde_core.loop.store_storage import SUBGROUP_KEY

        return self.store.get_meta(SUBGROUP_KEY)

    #: Shown as the reviewer of every oracle decision, so the audit log marks it as simulated.
    ORACLE_REVIEWER = ORACLE_REVIEWER

    @staticmethod
    def embedder_choices() -> tuple[list[str], str]:
        """The embedders the Data page offers, and the default (the offline EfficientNet-Lite0)."""
        from adde_core.embedding import DEFAULT_EMBEDDER, EMBEDDERS

        return list(EMBEDDERS), DEFAULT_EMBEDDER

    def embedding_sets(self) -> pd.DataFrame:
        """One row per stored embedding set: model, dimension, count, fingerprint, date."""
        return self.store.embedding_sets()

    def labels(self, roles: tuple[str, ...] = ("seed", "val")) -> list[str]:
        """The distinct labels known on items with these roles, sorted (the choices for relabelling)."""
        return sorted(set().union(*(self.store.labels(r) for r in roles)))

    def attribute_names(self) -> list[str]:
        """Item attribute columns (candidates for the subgroup)."""
        return self.store.attribute_names()

    def set_subgroup(self, column: str | None) -> None:
        """Make an item attribute the subgroup (None: no subgroup); an unknown name is an error naming the choices."""
        from adde_core.loop.store_storage import SUBGROUP_KEY

        if column is not None:
            names = self.store.attribute_names()
            if column not in names:
                raise AddeError(f"subgroup column {column!r} is not an attribute of this project's items; "
                                f"choose one of: {', '.join(names) or '(none: ingest a manifest with attribute columns)'}")
        self.store.set_meta(SUBGROUP_KEY, column)

    # ------------------------------------------------------------- embeddings
    def embed(self, name: str | None = None, *, params: dict[str, Any] | None = None, batch_size: int = 64,
              progress: ProgressCallback | None = None, engine: str = "local", address: str | None = None,
              ray_cpus: int | None = None) -> EmbeddingSummary:
        """Embed every item that has an image, computing only what the cache lacks.

        Both engines fill the same cache and save the same embedding set, so everything
        downstream is unchanged and a job that stopped (either engine) resumes from the
        cache under the other one too.

        Parameters
        ----------
        name
            An embedder from :data:`adde_core.embedding.EMBEDDERS` (default: the offline
            EfficientNet-Lite0), or ``"precomputed"`` to use vectors supplied at ingest
            (``params={"name": ...}`` picks the set when there are several).
        params
            Keyword arguments for the embedder (e.g. ``image_size``, ``model_name``, ``pretrained``).
        batch_size
            Images per forward pass and per cache shard.
        progress
            Called as ``progress(done, total)`` after each batch.
        engine
            One of :data:`EMBED_ENGINES`: ``"local"`` (default) embeds in this process;
            ``"ray"`` runs a Ray Data job with one model actor per CPU or GPU
            (:func:`adde_core.embedding.embed_with_ray`). Every Ray worker must see the
            item files at the same paths.
        address
            With ``engine="ray"``: the cluster, ``"ray://head:10001"`` (Ray Client),
            ``"head:6379"`` or ``"auto"``; None starts a local Ray instance on loopback for
            this call.
        ray_cpus
            With ``engine="ray"`` and no ``address``: CPUs of the local instance (default 2).

        Raises
        ------
        AddeError
            For an unknown engine; with ``engine="ray"``, when Ray is not installed, the
            address cannot be reached or a worker died mid-job. The run is then recorded as
            interrupted, every batch that finished is in the cache, and the same call again
            computes only the rest.
        """
        from adde_core.embedding import DEFAULT_EMBEDDER, EmbeddingCache, create_embedder, embed_with_cache

        if engine not in EMBED_ENGINES:
            raise AddeError(f"unknown embedding engine {engine!r}; choose one of {', '.join(EMBED_ENGINES)}")
        if engine != "ray" and (address is not None or ray_cpus is not None):
            raise AddeError("a Ray address or CPU count needs engine='ray' (`--engine ray` on the command line)")
        name = name or DEFAULT_EMBEDDER
        params = dict(params or {})
        if name == "precomputed":
            return self._precomputed_summary(params.get("name"))
        if engine == "ray":
            from adde_core.embedding.distributed import check_address, require_ray

            # Before building the model or recording a run: a missing package or a wrong address is
            # said in seconds, and leaves no interrupted run behind.
            require_ray()
            check_address(address)
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
        run_id = self.store.start_run("embed", {"embedder": name, "params": params, "model_key": embedder.key,
                                                "engine": engine})
        start = time.perf_counter()
        paths, keys = [self.resolve_uri(u) for u in frame["uri"]], list(frame["content_hash"])
        cache = EmbeddingCache(self.cache_dir / "embeddings")
        try:
            if engine == "ray":
                from adde_core.embedding import embed_with_ray

                outcome = embed_with_ray(name, self._resolve_params(params), paths, keys, cache,
                                         model_key=embedder.key, address=address, batch_size=batch_size,
                                         progress=progress, **({"local_cpus": ray_cpus} if ray_cpus else {}))
            else:
                outcome = embed_with_cache(embedder, paths, keys, cache, batch_size=batch_size, progress=progress)
        except AddeError as exc:
            # Shown as interrupted (project info, the next open) with the reason; the cache keeps every
            # finished batch, so the same call resumes. A kill -9 is caught by mark_interrupted_runs instead.
            self.store.finish_run(run_id, status="interrupted", summary={"interrupted": str(exc)})
            raise
        seconds = time.perf_counter() - start
        ok = getattr(outcome, "ok", None)
        if ok is not None and not ok.all():
            # Unreadable images are reported and left out; the rest of the set is saved.
            frame = frame[ok]
            fingerprint = data_fingerprint(embedder.key, list(zip(frame["id"], frame["content_hash"])))
        vectors = outcome.vectors if ok is None else outcome.vectors[ok]
        self.store.save_embeddings(embedder.key, list(frame["id"]), vectors, fingerprint, run_id=run_id)
        summary = EmbeddingSummary(embedder.key, len(frame), vectors.shape[1], fingerprint,
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
        """Where the latent map for ``model_key`` is kept, so later iterations extend the same map.

        The map is also stored in the database: a teammate's newer map (same shared database)
        replaces this folder's copy here, so everyone sees the same coordinates.
        """
        path = self.root / "maps" / f"{slugify(model_key)}.npz"
        self.store.fetch_file(f"maps/{model_key}", path)
        return path

    def analyze(self, model_key: str | None = None, *, refit: bool = False,
                map_config: "MapConfig | None" = None, cluster_config: "ClusterConfig | None" = None,
                region_config: "RegionConfig | None" = None,
                progress: ProgressCallback | None = None) -> "AnalysisResult":
        """Map, cluster and find sparse regions for one embedding set, stored with the project.

        Reused before computed: the project's memo in this process, then the stored analysis
        (``analysis/`` and ``maps/``, keyed by the embedding fingerprint, the item metadata and
        the configs), so a restart, a second tab or the CLI pays nothing. When items were added,
        the stored map is extended, never moved (items already on it keep their exact
        coordinates) and only clusters and regions are recomputed. ``refit=True`` fits a new map
        once and aligns it to the old one; later analyses extend the refitted map. Hidden oracle
        labels are never passed in. ``progress(done, 4)`` is called only when something is computed.
        """
        import threading

        from adde_core.analysis import ClusterConfig, MapConfig, RegionConfig
        from adde_core.analysis.persist import AnalysisStore, analyze_stored, config_hash

        model_key = model_key or self.default_model_key()
        sets = self.store.embedding_sets()
        row = sets[sets["model"] == model_key]
        if row.empty:
            self.embeddings(model_key)  # raises the error naming the sets that exist
        fingerprint = str(row["fingerprint"].iloc[0])
        configs = (map_config or MapConfig(), cluster_config or ClusterConfig(), region_config or RegionConfig())
        path = self.map_path(model_key)
        # In process, the store revision stands for the item metadata (reading the items takes ~1 s
        # at 10k); the stored analysis is keyed by the metadata itself, so it holds across processes.
        revision = self.store.revision()

        def key() -> tuple:
            stat = path.stat() if path.exists() else None
            return (model_key, fingerprint, revision, config_hash(*configs),
                    None if stat is None else (stat.st_mtime_ns, stat.st_size))

        def vectors() -> tuple[Any, Any]:
            stored = self.embeddings(model_key)
            return stored.ids, stored.vectors

        lock = self.memo.get("analysis_lock", model_key, threading.Lock)
        with lock:  # a second tab waits for the first one's analysis instead of computing it again
            before = key()
            if not refit and (hit := self.memo.peek("analysis", before)) is not None:
                return hit
            result = analyze_stored(AnalysisStore(self.root / "analysis"), path, model_key=model_key,
                                    fingerprint=fingerprint, load_vectors=vectors, items=self.items(),
                                    map_config=configs[0], cluster_config=configs[1], region_config=configs[2],
                                    refit=refit, progress=progress)
            if "map" not in result.reused:
                self.store.share_file(f"maps/{model_key}", path)
            return self.memo.get("analysis", key(), lambda: result)

    def embed_params(self, model_key: str) -> tuple[str, dict[str, Any]]:
        """The embedder name and parameters that produced ``model_key``, from its embed run."""
        return self.store.embed_params(model_key)

    def finetune_backbone(self, **kwargs: Any) -> Any:
        """Fine-tune EfficientNet-Lite0 on D_t and re-embed the project under a new key.

        See :func:`adde_core.model.finetune.finetune_backbone` for the keyword arguments; returns
        its :class:`~adde_core.model.finetune.FinetuneResult`.
        """
        from adde_core.model.finetune import finetune_backbone

        def embed(name: str, params: dict[str, Any], progress: ProgressCallback | None) -> str:
            return self.embed(name, params=params, progress=progress).model_key

        return finetune_backbone(self.workspace, embed=embed, **kwargs)

    @staticmethod
    def finetune_note() -> str:
        """What fine-tuning costs on a CPU (measured) and where it is worth running, for the UI."""
        from adde_core.model.finetune import FINETUNE_NOTE

        return FINETUNE_NOTE

    def export(self, folder: Path | str, *, fmt: str = "parquet") -> Any:
        """Write D_t (labels, provenance, decisions) to ``folder``; see :func:`adde_core.review.export.export_dataset`."""
        from adde_core.review.export import export_dataset

        return export_dataset(self.workspace, folder, fmt=fmt)

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

    # ------------------------------------------------------------- review
    def candidate_sets(self) -> pd.DataFrame:
        """All candidate sets, newest first, with their candidate counts."""
        from adde_core.store.candidates import candidate_sets

        return candidate_sets(self.store)

    def candidate_set(self, set_id: int) -> dict[str, Any]:
        """One candidate set's fields (mode, region, strategy, the weights that ranked it, summary)."""
        from adde_core.store.candidates import candidate_set

        return candidate_set(self.store, set_id)

    def candidates(self, set_id: int) -> pd.DataFrame:
        """The candidates of one set in rank order, with the score breakdown."""
        from adde_core.store.candidates import candidates_frame

        return candidates_frame(self.store, set_id)

    def decision_states(self, item_ids: Any = None) -> pd.DataFrame:
        """The standing decision per item (after undos) and its ``n_decisions`` (the ``expected_seq`` to pass back)."""
        from adde_core.store.decisions import decision_states

        return decision_states(self.store, item_ids)

    def valid_items(self) -> pd.DataFrame:
        """D_valid: what the next iteration will add, with the labels to use."""
        from adde_core.store.decisions import valid_items

        return valid_items(self.store)

    def record_decisions(self, requests: Any) -> tuple[list[dict[str, Any]], list[Any]]:
        """Store decisions now (each in its own transaction); returns (stored, conflicts)."""
        from adde_core.store.decisions import record_decisions

        return record_decisions(self.store, requests)

    def decision_log(self) -> pd.DataFrame:
        """Every decision ever made, oldest first: the audit log."""
        from adde_core.store.decisions import decision_log

        return decision_log(self.store)

    def review_cards(self, set_id: int) -> pd.DataFrame:
        """One set's candidates in rank order with ``path``, ``source`` and ``near_paths``: what a review card shows.

        Reads only the set's rows (a review click redraws the grid; reading every item costs ~0.4 s on the demo).
        """
        from adde_core.store.claims import item_uris, review_cards

        frame = review_cards(self.store, set_id)
        frame["path"] = [str(self.resolve_uri(u)) if isinstance(u, str) else None for u in frame["uri"]]
        # The nearest labelled items shown beside each card (kept with the set when it was acquired).
        nearest = (self.candidate_set(set_id)["summary"] or {}).get("nearest", {})
        uris = item_uris(self.store, sorted({i for ids in nearest.values() for i in ids}))
        frame["near_paths"] = [[str(self.resolve_uri(uris[i])) for i in nearest.get(c, []) if isinstance(uris.get(i), str)]
                               for c in frame["item_id"]]
        return frame

    def claim_review_items(self, set_id: int, holder: str, reviewer: str, *, want: int,
                           keep: tuple[str, ...] = ()) -> Any:
        """Renew a reviewing page's claims on ``set_id`` and top them up to its fair share.

        See :func:`adde_core.store.claims.claim_items`; returns its
        :class:`~adde_core.store.claims.ClaimView` (this page's items, others' claims).
        """
        from adde_core.store.claims import claim_items

        return claim_items(self.store, set_id, holder, reviewer, want=want, keep=keep)

    def release_review_claims(self, holder: str, item_ids: list[str] | None = None) -> int:
        """Let go of a page's claims (all, or ``item_ids``), so other reviewers are offered those items."""
        from adde_core.store.claims import release_claims

        return release_claims(self.store, holder, item_ids)

    def suggested_labels(self, set_id: int) -> pd.DataFrame:
        """A label per candidate of ``set_id`` and the evidence it rests on (the head, or the nearest labelled items).

        Generated items keep the label they were generated for. Memoised per (set, iteration,
        embeddings): a review decision does not change D_t, so it never recomputes this.
        See :func:`adde_core.review.suggest.suggest_labels`.
        """
        from adde_core.review.suggest import suggest_labels

        info = self.candidate_set(set_id)
        model_key = (info.get("params") or {}).get("model_key") or self.default_model_key()
        sets = self.store.embedding_sets().set_index("model")
        fingerprint = sets["fingerprint"].get(model_key)
        key = (set_id, self.current_iteration, model_key, fingerprint)

        def build() -> pd.DataFrame:
            cands = self.candidates(set_id)
            ctx = self.engine(model_key).context()
            ws, head = ctx.ws, ctx.head
            rows = ws.rows(cands["item_id"])
            ids = [str(i) for i in ws.ids[rows]]
            out = suggest_labels(ids, ws.X[rows], head.predict_proba(ws.X[rows]), head.classes_,
                                 ws.X[ws.in_dataset], ws.label[ws.in_dataset])
            synthetic = set(map(str, ws.ids[rows][ws.source[rows] == "synthetic"]))
            stored = cands.set_index("item_id")["suggested_label"]
            generated = out["item_id"].isin(synthetic) & out["item_id"].map(stored).notna()
            out.loc[generated, "suggested_label"] = out.loc[generated, "item_id"].map(stored)
            out.loc[generated, "basis"] = "generator"
            out.loc[generated, "why"] = "the label it was generated for"
            return out.set_index("item_id")

        return self.memo.get("suggested_labels", key, build)

    # ------------------------------------------------------------- the loop
    def working_set(self, model_key: str | None = None) -> "WorkingSet":
        """The loop's working set for ``model_key``, memoised by store revision."""
        return self.engine(model_key).storage.working_set()

    def engine(self, model_key: str | None = None, *, config: "LoopConfig | None" = None,
               reviewer: str = "") -> "Engine":
        """The loop engine on this project's store, in ``model_key``'s space (generation where it can embed)."""
        from adde_core.loop.engine import Engine
        from adde_core.loop.simulation.data import embedder_fn
        from adde_core.loop.store_storage import StoreStorage

        model_key = model_key or self.default_model_key()

        def embed_images(images: Any) -> Any:
            # The embedder is rebuilt once per model key, on first use (generation), not on every call.
            fn = self.memo.get("embedder", model_key, lambda: embedder_fn(self.embedder_for(model_key)))
            return fn(images)

        # Precomputed vectors: new images cannot be placed in that space, so nothing is generated.
        embed = None if model_key.startswith(PRECOMPUTED_PREFIX) else embed_images
        storage = StoreStorage(self.workspace, model_key, self.memo, reviewer=reviewer)
        return Engine(storage, memo=self.memo, embed_images=embed, config=config or self.loop_config())

    def loop_config(self) -> "LoopConfig":
        """The loop settings kept with the project (defaults until changed)."""
        from adde_core.loop.engine import LoopConfig

        return LoopConfig(**(self.store.get_meta("loop_config") or {}))

    def head(self, model_key: str | None = None) -> Any:
        """f_θ's head for this iteration: fitted on D_t, refitted exactly when D_t or the embeddings change."""
        return self.engine(model_key).context().head

    def recommended_regions(self, model_key: str | None = None, *, map_coords: pd.DataFrame | None = None) -> "Plan":
        """The engine's plan: regions in the order the loop recommends, with why, and the learned weights.

        ``map_coords`` (``id, x, y``) places each region at its centre member on the map. The plan
        is memoised and stored with the project (:mod:`adde_core.loop.plan_store`), keyed by the
        store revision, subgroup, adaptive state, loop settings and code, so a restarted server
        or the CLI reuses it instead of refitting and re-detecting.
        """
        from adde_core.loop.plan_store import load_plan, place_plan, plan_key, save_plan

        engine = self.engine(model_key)
        storage = engine.storage
        key = plan_key(model_key=storage.model_key, revision=self.store.revision(), subgroup=storage.subgroup,
                       state=engine.state().to_dict(), config=engine.config)

        def stored_or_computed() -> "Plan":
            plan = load_plan(storage.fitted, key, lambda _: None)
            if plan is None:
                plan = engine.plan()
                save_plan(storage.fitted, key, plan)
            return plan

        plan = self.memo.get("plan", key, stored_or_computed)
        if map_coords is None:
            return plan
        # Only the centre members are looked up: the frame may hold every item of a large project.
        centres = {r.centre_id for r in plan.regions if r.centre_id is not None}
        rows = map_coords[map_coords["id"].astype(str).isin(centres)]
        placed = {str(i): (float(x), float(y)) for i, x, y in rows[["id", "x", "y"]].itertuples(index=False)}
        return place_plan(plan, placed.get)

    def learned_weights(self) -> "RankingWeights":
        """The α, β, γ the loop has learned so far (the defaults before any iteration)."""
        if self.store.embedding_sets().empty:
            return self.loop_config().initial_state().weights
        return self.engine().state().weights

    def acquire(self, region: Any, *, mode: str = "retrieve", model_key: str | None = None,
                progress: ProgressCallback | None = None, **kwargs: Any) -> "AcquisitionResult":
        """Fill a region: ``mode="retrieve"`` searches the pool, ``"generate"`` runs a generator.

        ``region`` is a :class:`~adde_core.acquisition.acquire.RegionSpec`, a detected
        :class:`~adde_core.analysis.SparseRegion`, or a list of selected item ids. The candidate set
        is stored with the whole ranking result. Keyword arguments go to
        :meth:`~adde_core.loop.engine.Engine.retrieve` (``k``, ``strategy``, ``weights``,
        ``uncertain_share``) or :meth:`~adde_core.loop.engine.Engine.generate` (``generator``, ``n``,
        ``label``, ``prompt``, ``generator_params``, ``strategy``, ``weights``).
        """
        from adde_core.acquisition.acquire import RegionSpec

        spec = RegionSpec.coerce(region)
        engine = self.engine(model_key)
        if mode == "retrieve":
            set_id, proposal = engine.retrieve(spec, **kwargs)
        elif mode == "generate":
            set_id, proposal = engine.generate(spec, progress=progress, **kwargs)
        else:
            raise AddeError(f"unknown acquisition mode {mode!r}: use 'retrieve' or 'generate'")
        return AcquisitionResult(set_id, mode, proposal.frame, dict(proposal.summary))

    def suggest_prompt(self, region: Any, model_key: str | None = None) -> str:
        """A text-to-image prompt describing the region (labels, nearest examples, CLIP attribute words)."""
        from adde_core.acquisition.acquire import RegionSpec, suggest_prompt

        engine = self.engine(model_key)
        ws = engine.storage.working_set()
        return suggest_prompt(ws, RegionSpec.coerce(region), self.embedder_for(ws.model_key))

    def oracle_review(self, set_id: int, model_key: str | None = None) -> tuple[list[dict[str, Any]], list[Any]]:
        """Let the oracle decide every undecided candidate of a set; returns (stored, conflicts)."""
        cands = self.candidates(set_id)
        decided = set(self.decision_states(list(cands["item_id"])).dropna(subset=["action"])["item_id"])
        todo = cands[~cands["item_id"].isin(decided)]
        return self.record_decisions(self.oracle(model_key).decide(todo, self.working_set(model_key),
                                                                    candidate_set_id=set_id))

    def diversity_summary(self, analysis: "AnalysisResult", *, q: float = 2.0) -> Any:
        """Metric cards, label and subgroup shares, and per-cluster statistics for the Diversity page."""
        from adde_core.analysis.summary import summarize_diversity

        stored = self.embeddings(analysis.map.model_key)
        return summarize_diversity(stored.vectors, analysis, q=q, subgroup=self.subgroup_attribute)

    def map_coordinates(self, model_key: str | None = None) -> pd.DataFrame | None:
        """The stored latent map as ``id, x, y`` (None before Explore first computed it)."""
        from adde_core.analysis import LatentMap

        path = self.map_path(model_key or self.default_model_key())
        if not path.exists():
            return None
        latent = LatentMap.load(path)
        return pd.DataFrame({"id": latent.ids, "x": latent.coords[:, 0], "y": latent.coords[:, 1]})

    def oracle(self, model_key: str | None = None) -> "OracleReviewer":
        """The simulated reviewer: hidden pool labels, and a reference head for generated items.

        The hidden labels are read once per item revision (not once per oracle step), and the
        reference head (a fit on every real item, tens of seconds on a CPU) is stored with the
        project like the loop's head, so a restarted server does not fit it again.
        """
        from adde_core.review.oracle import OracleReviewer
        from adde_core.store.revision import items_revision

        model_key = model_key or self.default_model_key()
        revision = items_revision(self.store, model_key)
        truth = self.memo.get("oracle_truth", (str(self.root), revision), self._oracle_truth)
        fingerprint = revision[3]
        return OracleReviewer(truth, lambda: self.memo.get(
            "oracle_reference", (model_key, fingerprint, len(truth)),
            lambda: self._oracle_reference_head(model_key, truth)))

    def _oracle_truth(self) -> dict[str, str]:
        items = self.store.items_frame(include_hidden=True)
        real = items[items["source"] != "synthetic"]
        truth = real["oracle_label"].fillna(real["label"]).set_axis(real["id"]).dropna()
        return {str(k): str(v) for k, v in truth.items()}

    def _oracle_reference_head(self, model_key: str, truth: dict[str, str]) -> Any:
        """The oracle's judge of generated items, from the project's stored fits when it was fitted on this data."""
        import hashlib

        from adde_core.model.head import HEAD_MAX_ITER, LinearHead
        from adde_core.review.oracle import reference_head

        storage = self.engine(model_key).storage
        ws = storage.working_set()
        h = hashlib.sha1(f"{ws.fingerprint}:max_iter={HEAD_MAX_ITER}".encode())
        for item_id in sorted(truth):
            h.update(f"{item_id}\t{truth[item_id]}\n".encode())
        key, fitted = h.hexdigest(), storage.fitted
        arrays = fitted.load("oracle-reference", key) if fitted is not None else None
        if arrays is not None:
            return LinearHead.from_arrays(arrays)
        head = reference_head(ws, truth)
        if fitted is not None:
            fitted.save("oracle-reference", key, head.to_arrays())
        return head

    def next_iteration(self, *, model_key: str | None = None, reviewer: str = "") -> "IterationSummary":
        """Close the iteration with the decisions made so far: fold D_valid in, retrain, measure, adapt, stop?"""
        return self.engine(model_key, reviewer=reviewer).close()

    def run_oracle_iteration(self, *, budget: int = 40, n_regions: int = 2, generate: bool = True,
                             model_key: str | None = None, progress: ProgressCallback | None = None
                             ) -> "IterationSummary":
        """One whole ADDE iteration with the oracle reviewer (a simulation, labelled as such in the store)."""
        from dataclasses import replace

        from adde_core.loop.policies import AddePolicy

        config = replace(self.loop_config(), budget=budget, n_regions=n_regions, generate=generate)
        engine = self.engine(model_key, config=config, reviewer=ORACLE_REVIEWER)
        return engine.step(AddePolicy(), self.oracle(model_key), progress=progress)

    def measure(self, model_key: str | None = None) -> dict[str, Any]:
        """Record the current iteration's metrics (the baseline before any iteration)."""
        return self.engine(model_key).measure()

    def metrics_history(self) -> pd.DataFrame:
        """Every iteration's recorded metrics, one row per iteration."""
        from adde_core.loop.storage import history_frame
        from adde_core.store.iterations import iteration_rows

        return history_frame(iteration_rows(self.store))

    def has_metrics(self) -> bool:
        """Whether any iteration's quality was measured (iteration 0's row exists before it is)."""
        history = self.metrics_history()
        return "val_accuracy" in history and bool(history["val_accuracy"].notna().any())

    def stopping_config(self) -> "StoppingConfig":
        """The user's stopping rules (label budget, plateau, target accuracy, max iterations)."""
        from adde_core.loop.engine import STOPPING_KEY
        from adde_core.loop.stopping import StoppingConfig

        return StoppingConfig(**(self.store.get_meta(STOPPING_KEY) or {}))

    def set_stopping_config(self, config: "StoppingConfig") -> None:
        """Store the stopping rules with the project."""
        from adde_core.loop.engine import STOPPING_KEY

        self.store.set_meta(STOPPING_KEY, {k: getattr(config, k) for k in config.__dataclass_fields__})

    def check_stop(self, model_key: str | None = None) -> "StopDecision":
        """The stopping rules applied to the recorded history."""
        return self.engine(model_key).check_stop()

    def simulation_data_unsplit(self, roles_for: Any, model_key: str | None = None) -> "SimulationData":
        """Every real labelled item with its true label, split by ``roles_for(labels) -> roles``."""
        from adde_core.loop.simulation import SimulationData

        engine = self.engine(model_key)
        ws = engine.storage.working_set()
        items = self.store.items_frame(include_hidden=True).set_index("id").reindex(ws.ids)
        truth = items["oracle_label"].where(items["oracle_label"].notna(), items["label"])
        keep = (ws.source != "synthetic") & truth.notna().to_numpy()
        labels = truth.to_numpy()[keep]
        return SimulationData(ws.X[keep], roles_for(labels), labels, ws.ids[keep],
                              None if ws.groups is None else ws.groups[keep], self.subgroup_attribute,
                              None if ws.paths is None else list(ws.paths[keep]), engine.embed_images, self.name)

    def simulation_data(self, model_key: str | None = None) -> "SimulationData":
        """This project as simulation data (hidden pool labels become the oracle's), in ``model_key``'s space."""
        from adde_core.loop.simulation import SimulationData

        engine = self.engine(model_key)
        return SimulationData.from_workspace(self.workspace, engine.storage.model_key,  # type: ignore[attr-defined]
                                             embed_images=engine.embed_images, name=self.name)

    def embeddings(self, model_key: str) -> StoredEmbeddings:
        """The stored embedding set for ``model_key``; raises AddeError naming what exists when absent."""
        stored = self.store.load_embeddings(model_key)
        if stored is None:
            have = ", ".join(self.store.embedding_sets()["model"]) or "none"
            raise AddeError(f"no embeddings for {model_key!r} in this project (have: {have}); run embed first")
        return stored
