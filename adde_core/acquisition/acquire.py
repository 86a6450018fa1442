"""Acquisition for a region: retrieve from the pool or generate, gate, rank, and store the candidate set."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from adde_core.errors import AddeError
from adde_core.review.candidates import save_candidate_set, save_provenance
from adde_core.review.decisions import decision_states, valid_items

if TYPE_CHECKING:
    from adde_core.analysis.regions import SparseRegion
    from adde_core.embedding.base import ProgressCallback
    from adde_core.model import LinearHead
    from adde_core.project import Project
    from adde_core.ranking import RankingWeights

#: Nearest labelled items listed beside each candidate in the review grid.
N_NEAREST = 3


@dataclass(frozen=True)
class RegionSpec:
    """The region a user asked to fill: a detected sparse region or their own map selection.

    Attributes
    ----------
    region_id : str
        ``"coverage_gap/cluster-3"`` for a detected region, ``"selection/<n>-items"`` for a selection.
    kind : str
        The sparse-region kind, or ``"selection"``.
    member_ids : tuple of str
    description : str
    """

    region_id: str
    kind: str
    member_ids: tuple[str, ...]
    description: str = ""

    def __post_init__(self) -> None:
        if not self.member_ids:
            raise AddeError(f"region {self.region_id!r} has no members; select at least one point")

    @classmethod
    def from_sparse(cls, region: "SparseRegion") -> "RegionSpec":
        """Wrap a region found by :func:`adde_core.analysis.find_sparse_regions`."""
        return cls(region.region_id, region.kind, tuple(str(i) for i in region.member_ids), region.description)

    @classmethod
    def from_selection(cls, ids: list[str]) -> "RegionSpec":
        """Wrap a box, lasso or click selection on the map."""
        return cls(f"selection/{len(ids)}-items", "selection", tuple(str(i) for i in ids),
                   f"Map selection of {len(ids)} items.")

    def as_dict(self) -> dict[str, Any]:
        """What is stored with a candidate set (member ids capped so the row stays small)."""
        return {"region_id": self.region_id, "kind": self.kind, "size": len(self.member_ids),
                "member_ids": list(self.member_ids[:500]), "description": self.description}


@dataclass(frozen=True, eq=False)
class AcquisitionResult:
    """A stored candidate set and what happened on the way to it."""

    set_id: int
    mode: str
    candidates: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class LoopState:
    """Everything acquisition needs about the current iteration, rows aligned with ``ids``.

    ``labelled`` marks D_t ∪ D_valid (the seed-role dataset plus items accepted in this
    iteration) and ``labels`` holds their labels; the head is trained on D_t only, the
    model of the iteration, while diversity is measured against D_t ∪ D_valid so a
    second acquisition does not fetch what was just accepted.
    """

    model_key: str
    ids: np.ndarray
    vectors: np.ndarray
    items: pd.DataFrame
    labelled: np.ndarray
    labels: np.ndarray
    decided: set[str]
    head: "LinearHead"

    def rows(self, ids: list[str] | np.ndarray) -> np.ndarray:
        """Row indices of ``ids`` (all must be present)."""
        index = pd.Index(self.ids)
        rows = index.get_indexer(list(ids))
        if (rows < 0).any():
            missing = [i for i, r in zip(ids, rows) if r < 0][:5]
            raise AddeError(f"items {missing} have no embedding under {self.model_key!r}; embed the project first")
        return rows


def loop_state(project: "Project", model_key: str | None = None) -> LoopState:
    """Collect embeddings, D_t, D_valid and the current head for ``model_key``."""
    model_key = model_key or project.default_model_key()
    stored = project.embeddings(model_key)
    items = project.items().set_index("id", drop=False).reindex(stored.ids)
    labelled = np.array((items["role"] == "seed") & items["label"].notna(), dtype=bool)
    labels = np.array(items["label"], dtype=object)
    head = project.head(model_key)
    valid = valid_items(project.store)
    rows = pd.Index(stored.ids).get_indexer(valid["item_id"])
    ok = rows >= 0
    labelled[rows[ok]] = True
    labels[rows[ok]] = valid["label"].to_numpy()[ok]
    decided = set(decision_states(project.store).dropna(subset=["action"])["item_id"])
    return LoopState(model_key, stored.ids, stored.vectors, items.reset_index(drop=True), labelled, labels, decided,
                     head)


def _region_vectors(state: LoopState, region: RegionSpec) -> tuple[np.ndarray, np.ndarray]:
    members = [i for i in region.member_ids if i in set(state.ids)]
    if not members:
        raise AddeError(f"region {region.region_id!r}: none of its items has an embedding under {state.model_key!r}")
    member_vectors = state.vectors[state.rows(members)]
    return member_vectors.mean(axis=0), member_vectors


def _nearest_labelled(state: LoopState, vectors: np.ndarray) -> list[list[str]]:
    from adde_core.acquisition.retrieval import exact_knn

    pool = np.flatnonzero(state.labelled)
    if len(pool) == 0 or len(vectors) == 0:
        return [[] for _ in range(len(vectors))]
    _, idx = exact_knn(state.vectors[pool], vectors, min(N_NEAREST, len(pool)))
    return [[str(state.ids[pool[j]]) for j in row] for row in idx]


def _rank(state: LoopState, ids: list[str], vectors: np.ndarray, probs: np.ndarray, quality: np.ndarray,
          centroid: np.ndarray, *, strategy: str, weights: "RankingWeights | None", k: int | None,
          random_state: int) -> pd.DataFrame:
    from adde_core.ranking import RankingInput, RankingWeights, rank_candidates

    ranked = rank_candidates(
        RankingInput(ids=ids, vectors=vectors, probs=probs, quality=quality,
                     labelled_vectors=state.vectors[state.labelled], region_centroid=centroid),
        strategy=strategy, k=k, weights=weights or RankingWeights(), random_state=random_state,
    )
    return ranked.frame


def _pool_index(project: "Project", state: LoopState, pool_rows: np.ndarray) -> Any:
    """A search index over the pool, built once per embedding set and kept with the project.

    Below :class:`~adde_core.acquisition.retrieval.VectorIndex`'s ANN threshold (200k items)
    it is exact and cheap; above it, a FAISS IVF index whose build (tens of seconds at
    10^6) is worth keeping across acquisitions.
    """
    from adde_core.acquisition.retrieval import VectorIndex

    key = ("pool-index", state.model_key, project.embeddings(state.model_key).fingerprint)
    if key not in project._indexes:
        project._indexes = {key: VectorIndex().fit(state.vectors[pool_rows], ids=state.ids[pool_rows])}
    return project._indexes[key]


def acquire_from_pool(project: "Project", region: RegionSpec, *, model_key: str | None = None, k: int = 50,
                      strategy: str = "adde", weights: "RankingWeights | None" = None, uncertain_share: float = 0.2,
                      random_state: int = 0) -> AcquisitionResult:
    """Retrieve pool items for a region, rank them, and store them as a candidate set.

    Pool items already decided on are skipped. Suggested labels are the current head's
    predictions; the quality term is 1 for real pool items.

    Parameters
    ----------
    project, region
    model_key
        Embedding set to search in (default: the project's default).
    k
        Candidates to retrieve and rank.
    strategy, weights
        See :func:`adde_core.ranking.rank_candidates`.
    uncertain_share
        Share of ``k`` filled with the most uncertain pool items near the region.
    """
    from adde_core.acquisition.retrieval import retrieve_for_region

    started = time.perf_counter()
    state = loop_state(project, model_key)
    centroid, member_vectors = _region_vectors(state, region)
    pool = np.array((state.items["role"] == "pool") & (state.items["source"] != "synthetic"), dtype=bool)
    pool_rows = np.flatnonzero(pool)
    if len(pool_rows) == 0 or not (set(state.ids[pool_rows]) - state.decided):
        raise AddeError("the pool is empty (or every pool item has been decided); ingest more unlabelled items")
    probs = state.head.predict_proba(state.vectors[pool_rows])
    hits = retrieve_for_region(state.vectors[pool_rows], state.ids[pool_rows], centroid=centroid,
                               member_vectors=member_vectors, k=k, probs=probs, uncertain_share=uncertain_share,
                               exclude_ids=state.decided, index=_pool_index(project, state, pool_rows))
    ids = [str(i) for i in hits["id"]]
    local = pd.Index(state.ids[pool_rows]).get_indexer(ids)
    vectors, cand_probs = state.vectors[pool_rows[local]], probs[local]
    ranked = _rank(state, ids, vectors, cand_probs, np.ones(len(ids)), centroid, strategy=strategy,
                   weights=weights, k=None, random_state=random_state)
    order = pd.Index(ids).get_indexer(ranked["id"])
    ranked = ranked.assign(suggested_label=state.head.classes_[np.argmax(cand_probs[order], axis=1)],
                           confidence=cand_probs[order].max(axis=1),
                           via=hits.set_index("id").loc[ranked["id"], "via"].to_numpy(),
                           similarity=hits.set_index("id").loc[ranked["id"], "similarity"].to_numpy())
    summary = {"n_pool": int(len(pool_rows)), "n_candidates": int(len(ranked)),
               "nearest": dict(zip(ranked["id"], _nearest_labelled(state, vectors[order]))),
               "seconds": round(time.perf_counter() - started, 3)}
    set_id = save_candidate_set(
        project.store, iteration=project.current_iteration, mode="retrieve", region=region.as_dict(),
        strategy=strategy, weights=_weights_dict(weights), params={"k": k, "uncertain_share": uncertain_share,
                                                                   "model_key": state.model_key},
        ranked=ranked, summary=summary)
    return AcquisitionResult(set_id, "retrieve", ranked, summary)


def _weights_dict(weights: "RankingWeights | None") -> dict[str, float]:
    from dataclasses import asdict

    from adde_core.ranking import RankingWeights

    return asdict(weights or RankingWeights())


def _region_target(state: LoopState, region: RegionSpec, centroid: np.ndarray, *, max_images: int = 64,
                   random_state: int = 0) -> Any:
    """A generator's view of the region: member images (labelled first), labels, vectors, nearest examples."""
    from adde_core.acquisition.generation.base import RegionTarget, load_image_array

    rows = state.rows([i for i in region.member_ids if i in set(state.ids)])
    # Only dataset and pool images feed a generator: val/OOD pixels must never leak into training data.
    usable = state.items["path"].notna() & state.items["role"].isin(("seed", "pool"))
    rows = rows[usable.to_numpy()[rows]]
    known = rows[state.labelled[rows]]
    rng = np.random.default_rng(random_state)
    rest = rng.permutation(rows[~state.labelled[rows]])
    chosen = np.concatenate([rng.permutation(known), rest])[:max_images].astype(int)
    labels = [state.labels[r] for r in chosen]
    counts = pd.Series([lab for lab in state.labels[known]]).value_counts()
    nearest = _nearest_labelled(state, centroid[None, :])[0]
    label_of = dict(zip(state.ids, state.labels))
    return RegionTarget(
        region_id=region.region_id, centroid=centroid, member_ids=tuple(region.member_ids),
        member_images=tuple(load_image_array(state.items["path"].iloc[r]) for r in chosen),
        member_labels=tuple(labels), member_vectors=state.vectors[chosen],
        label_counts={str(k): int(v) for k, v in counts.items()}, description=region.description,
        nearest_example_ids=tuple(nearest), nearest_example_labels=tuple(label_of.get(i) for i in nearest),
    )


#: Words CLIP scores against a region's centre to describe it in a generation prompt.
ATTRIBUTE_VOCABULARY: tuple[str, ...] = (
    "photo", "drawing", "silhouette", "sketch", "close-up", "far away", "small", "large", "standing", "lying down",
    "running", "upright", "sideways", "grayscale", "colorful", "dark", "bright", "outdoors", "indoors", "blurry",
)


def zero_shot_attribute_words(embedder: Any, centroid: np.ndarray, *, vocabulary: tuple[str, ...] =
                              ATTRIBUTE_VOCABULARY, top: int = 3) -> list[str]:
    """The ``top`` vocabulary words whose CLIP text embedding is closest to the region's centre.

    Only embedders with a text tower (``embed_texts``, i.e. OpenCLIP) can do this; others
    return an empty list, and the prompt is then built from labels and examples alone.
    """
    if not hasattr(embedder, "embed_texts"):
        return []
    texts = np.asarray(embedder.embed_texts([f"a {w} image" for w in vocabulary]), dtype=np.float32)
    c = np.asarray(centroid, dtype=np.float32)
    sims = (texts / np.linalg.norm(texts, axis=1, keepdims=True)) @ (c / (np.linalg.norm(c) or 1.0))
    return [vocabulary[i] for i in np.argsort(-sims, kind="stable")[:top]]


def suggest_prompt(project: "Project", region: RegionSpec, *, model_key: str | None = None) -> str:
    """A text-to-image prompt describing the region: its labels, nearest examples and, with CLIP, attribute words."""
    from adde_core.acquisition.generation.diffusion import describe_region_prompt

    state = loop_state(project, model_key)
    centroid, _ = _region_vectors(state, region)
    words = zero_shot_attribute_words(project.embedder_for(state.model_key), centroid)
    return describe_region_prompt(_region_target(state, region, centroid, max_images=0), attribute_words=words)


def trained_generator(project: "Project", state: LoopState, name: str, params: dict[str, Any] | None = None,
                      progress: "ProgressCallback | None" = None) -> Any:
    """The generator ``name`` fitted on the real items of D_t ∪ D_valid, trained once per dataset state.

    Trained generators are kept in memory and, where the generator can save itself,
    on disk under ``cache/generators/`` so a restart does not retrain.
    """
    import hashlib

    from adde_core.acquisition.generation import create_generator

    params = dict(params or {})
    real = state.labelled & (state.items["source"] != "synthetic").to_numpy() & state.items["path"].notna().to_numpy()
    rows = np.flatnonzero(real)
    if len(rows) == 0:
        raise AddeError("no labelled images to train a generator on; label some items first")
    generator = create_generator(name, **params)
    digest = hashlib.sha1(repr((generator.key, sorted(params.items()), state.model_key)).encode())
    for i, lab in zip(state.ids[rows], state.labels[rows]):
        digest.update(f"{i}\t{lab}\n".encode())
    cache_key = digest.hexdigest()[:16]
    if cache_key in project._generators:
        return project._generators[cache_key]
    path = project.cache_dir / "generators" / f"{name}-{cache_key}.safetensors"
    if path.exists() and hasattr(type(generator), "load"):
        generator = type(generator).load(path)
    else:
        from adde_core.acquisition.generation.base import load_image_array

        images = [load_image_array(p) for p in state.items["path"].iloc[rows]]
        generator.fit(images, [str(x) for x in state.labels[rows]], conditions=state.vectors[rows], progress=progress)
        if hasattr(generator, "save"):
            path.parent.mkdir(parents=True, exist_ok=True)
            generator.save(path)
    project._generators = {cache_key: generator}
    return generator


def acquire_by_generation(project: "Project", region: RegionSpec, *, model_key: str | None = None,
                          generator: str = "cvae", n: int = 48, label: str | None = None, prompt: str | None = None,
                          generator_params: dict[str, Any] | None = None, gate_config: Any = None,
                          strategy: str = "adde", weights: "RankingWeights | None" = None, seed: int = 0,
                          progress: "ProgressCallback | None" = None) -> AcquisitionResult:
    """Generate images aimed at a region, gate them, store the kept ones as candidates, and rank them.

    Kept images become items with role ``candidate`` and source ``synthetic`` whose
    provenance (generator, parameters, prompt, seed, target region, gate verdict) is
    stored; dropped images are kept on disk under ``dropped/`` and listed with their
    reason in the candidate set's summary, so the user can see what the gate removed.

    Parameters
    ----------
    generator
        A key of :data:`adde_core.acquisition.generation.GENERATORS`.
    n
        Images to generate before the gate.
    label
        Label to generate (default: the region's dominant label).
    prompt
        For prompt-driven generators: the (user-edited) prompt.
    progress
        ``progress(done, total)`` while the generator trains.
    """
    from adde_core.acquisition.quality_gate import GateConfig, gate_candidates, region_radius
    from adde_core.embedding import EmbeddingCache, embed_with_cache, file_sha1
    from adde_core.store.models import ItemRecord

    started = time.perf_counter()
    state = loop_state(project, model_key)
    embedder = project.embedder_for(state.model_key)
    centroid, member_vectors = _region_vectors(state, region)
    target = _region_target(state, region, centroid, random_state=seed)
    gen = trained_generator(project, state, generator, generator_params, progress)
    kwargs: dict[str, Any] = {"label": label, "seed": seed}
    if prompt is not None:
        kwargs["prompt"] = prompt
    batch = gen.generate(target, n, **kwargs)
    token = f"{project.current_iteration}-{int(time.time() * 1000):x}"
    folder = project.data_dir / "synthetic" / token
    paths = batch.save_pngs(folder, prefix="syn")
    hashes = [file_sha1(p) for p in paths]
    vectors = embed_with_cache(embedder, [str(p) for p in paths], hashes,
                               EmbeddingCache(project.cache_dir / "embeddings")).vectors
    real = (state.items["source"] != "synthetic").to_numpy()
    report = gate_candidates(
        vectors, batch.labels, centroid=centroid, radius=region_radius(member_vectors, centroid),
        reference_vectors=state.vectors[real], probs=state.head.predict_proba(vectors),
        classes=state.head.classes_, config=gate_config or GateConfig(),
    )
    kept = np.asarray(report.kept, dtype=bool)
    ids = [f"syn-{token}-{i:03d}" for i in range(len(paths))]
    dropped = []
    for i in np.flatnonzero(~kept):
        moved = folder / "dropped" / paths[i].name
        moved.parent.mkdir(exist_ok=True)
        paths[i].rename(moved)
        dropped.append({"uri": project.to_uri(moved), "reason": report.reasons[i]})
    region_info = {k: v for k, v in region.as_dict().items() if k != "member_ids"}
    records = [ItemRecord(id=ids[i], role="candidate", uri=project.to_uri(paths[i]), source="synthetic",
                          iteration_added=project.current_iteration, content_hash=hashes[i])
               for i in np.flatnonzero(kept)]
    run_id = project.store.start_run("generate", {"generator": gen.key, "region": region_info, "n": n})
    project.store.add_items(records, run_id=run_id)
    save_provenance(project.store, [
        {"item_id": ids[i], "generator": batch.generator or gen.key, "params": batch.params, "prompt": batch.prompt,
         "seed": batch.seeds[i], "target_region": region_info, "intended_label": batch.labels[i],
         "gate": {"reason": report.reasons[i], "score": float(report.gate_score[i])}}
        for i in np.flatnonzero(kept)
    ])
    summary: dict[str, Any] = {"n_generated": len(paths), "n_kept": int(kept.sum()), "gate": report.summary(),
                               "dropped": dropped, "prompt": batch.prompt, "generator": gen.key,
                               "label": batch.labels[0] if batch.labels else label}
    if kept.any():
        name, params = project.embed_params(state.model_key)
        project.embed(name, params=params)
        kept_rows = np.flatnonzero(kept)
        kept_vectors = vectors[kept_rows]
        probs = state.head.predict_proba(kept_vectors)
        ranked = _rank(state, [ids[i] for i in kept_rows], kept_vectors, probs,
                       np.asarray(report.gate_score, dtype=float)[kept_rows], centroid,
                       strategy=strategy, weights=weights, k=None, random_state=seed)
        intended = dict(zip(ids, batch.labels))
        order = pd.Index([ids[i] for i in kept_rows]).get_indexer(ranked["id"])
        ranked = ranked.assign(suggested_label=[intended[i] for i in ranked["id"]],
                               confidence=probs[order].max(axis=1), via=generator)
        summary["nearest"] = dict(zip(ranked["id"], _nearest_labelled(state, kept_vectors[order])))
    else:
        ranked = pd.DataFrame(columns=["id", "rank", "score", "suggested_label", "via"])
    summary["seconds"] = round(time.perf_counter() - started, 3)
    project.store.finish_run(run_id, summary={k: v for k, v in summary.items() if k not in ("nearest", "dropped")})
    set_id = save_candidate_set(
        project.store, iteration=project.current_iteration, mode="generate", region=region.as_dict(),
        strategy=strategy, weights=_weights_dict(weights),
        params={"generator": generator, "generator_params": generator_params or {}, "n": n, "label": label,
                "seed": seed, "model_key": state.model_key}, ranked=ranked, summary=summary)
    return AcquisitionResult(set_id, "generate", ranked, summary)

