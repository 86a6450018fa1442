"""Acquisition for a region over the loop's working set: retrieve from the pool or generate, gate, and rank.

These stages take plain arguments (a :class:`~adde_core.working_set.WorkingSet`, the head,
an index) and return a :class:`Proposal`: ranked candidates with the whole ranking result,
ready to be stored by whatever storage the loop runs on (the project's database, or memory in a
simulation). The app's Retrieve/Generate buttons, oracle stepping and every simulation call them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from adde_core.analysis.density import fit_sample
from adde_core.errors import AddeError

if TYPE_CHECKING:
    from adde_core.acquisition.generation.base import GeneratedBatch, RegionTarget  # noqa: F401 (RegisterFn)
    from adde_core.analysis.regions import SparseRegion
    from adde_core.embedding.base import ProgressCallback
    from adde_core.working_set import WorkingSet
    from adde_core.model import LinearHead
    from adde_core.ranking import RankedCandidates, RankingWeights

#: Nearest labelled items listed beside each candidate in the review grid.
N_NEAREST = 3
#: Largest pool a whole-pool ranking sees in full. The set-based strategies (herding, coreset,
#: TypiClust, ProbCover, BADGE) and the failure weights compare every candidate with every other
#: (or with every val item), so their cost grows with n^2: UHerding plus the local val error took
#: 230 s for one oracle iteration at 10^5 items on 2 cores and would take hours at 10^6. Past this
#: size they rank a uniform random sample of the pool of this many items (uniform, so the sample
#: keeps the pool's density, which is what these strategies cover). The per-item strategies
#: (margin, entropy, random) always rank the whole pool. The demo's 7,786-item pool is unchanged.
POOL_RANK_MAX = 20_000
#: Strategies whose cost is linear in the pool (each item scored on its own).
PER_ITEM_STRATEGIES = frozenset({"margin", "entropy", "random"})
#: ``register(batch, kept_rows, vectors, provenance) -> ids``: stores generated items; returns their ids.
RegisterFn = Callable[["GeneratedBatch", np.ndarray, np.ndarray, list[dict[str, Any]]], list[str]]
#: ``embed_images(images) -> (n, d) float32``: embeds generated images (uint8 arrays) in the data's space.
EmbedFn = Callable[[Sequence[np.ndarray]], np.ndarray]


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

    @classmethod
    def coerce(cls, region: Any) -> "RegionSpec":
        """A RegionSpec from a RegionSpec, a SparseRegion or a list of selected ids."""
        if isinstance(region, RegionSpec):
            return region
        if isinstance(region, (list, tuple)):
            return cls.from_selection(list(region))
        return cls.from_sparse(region)

    def as_dict(self) -> dict[str, Any]:
        """What is stored with a candidate set (member ids capped so the row stays small)."""
        return {"region_id": self.region_id, "kind": self.kind, "size": len(self.member_ids),
                "member_ids": list(self.member_ids[:500]), "description": self.description}


@dataclass(frozen=True, eq=False)
class Proposal:
    """Ranked candidates from one acquisition, before they are stored.

    Attributes
    ----------
    mode : str
        ``retrieve`` (pool items for a region), ``pool`` (a ranking of the whole pool),
        ``generate`` (generated items), ``pseudo`` (pool items labelled by the head, no review) or
        ``augment`` (label-preserving augmentations, no review).
    region : dict
        :meth:`RegionSpec.as_dict`, or ``{}``.
    frame : pandas.DataFrame
        ``id``, ``rank``, ``score``, the breakdown columns, ``suggested_label``, ``via`` ...
    ranking : dict
        The whole ranking result that ordered the frame: strategy, the weights that acted,
        uncertainty, criterion, region weight, random state, input fingerprint, notes.
    params : dict
    summary : dict
    """

    mode: str
    region: Mapping[str, Any]
    frame: pd.DataFrame
    ranking: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    summary: Mapping[str, Any] = field(default_factory=dict)

    @property
    def strategy(self) -> str:
        return str(self.ranking.get("strategy", ""))

    @property
    def weights(self) -> dict[str, float]:
        """The (α, β, γ) that actually ranked the candidates."""
        w = self.ranking.get("weights") or (0.0, 0.0, 0.0)
        return {"alpha": float(w[0]), "beta": float(w[1]), "gamma": float(w[2])}

    def head(self, n: int) -> "Proposal":
        """The top ``n`` candidates only (what a budgeted reviewer is shown)."""
        return Proposal(self.mode, self.region, self.frame.head(n).reset_index(drop=True), self.ranking,
                        self.params, {**self.summary, "n_shown": int(min(n, len(self.frame)))})


def ranking_record(ranked: "RankedCandidates") -> dict[str, Any]:
    """The ranking result minus the frame, JSON-ready: stored with each candidate set."""
    rs = ranked.random_state
    return {"strategy": ranked.strategy, "weights": [float(w) for w in ranked.weights],
            "uncertainty": ranked.uncertainty, "criterion": ranked.criterion,
            "region_weight": float(ranked.region_weight),
            "random_state": rs if rs is None or isinstance(rs, int) else "generator",
            "input_fingerprint": ranked.input_fingerprint, "notes": list(ranked.notes)}


def region_rows(ws: "WorkingSet", region: RegionSpec) -> np.ndarray:
    """Rows of the region's members that have an embedding in ``ws``."""
    rows = ws.rows(region.member_ids)
    if len(rows) == 0:
        raise AddeError(f"region {region.region_id!r}: none of its items has an embedding under {ws.model_key!r}")
    return rows


def nearest_labelled(ws: "WorkingSet", vectors: np.ndarray) -> list[list[str]]:
    """The ``N_NEAREST`` items of D_t ∪ D_valid nearest each vector (shown beside each candidate)."""
    from adde_core.acquisition.retrieval import exact_knn

    rows, _ = ws.dataset_and_pending
    if len(rows) == 0 or len(vectors) == 0:
        return [[] for _ in range(len(vectors))]
    _, idx = exact_knn(ws.X[rows], vectors, min(N_NEAREST, len(rows)))
    return [[str(ws.ids[rows[j]]) for j in row] for row in idx]


def rank(ws: "WorkingSet", ids: Sequence[str], vectors: np.ndarray, probs: np.ndarray | None,
         quality: np.ndarray | None, centroid: np.ndarray | None, *, strategy: str,
         weights: "RankingWeights | None", k: int | None, random_state: int,
         importance: np.ndarray | None = None) -> "RankedCandidates":
    """Rank candidates against D_t ∪ D_valid (so a second acquisition does not fetch what was just accepted)."""
    from adde_core.ranking import RankingInput, RankingWeights, rank_candidates

    rows, labels = ws.dataset_and_pending
    return rank_candidates(
        RankingInput(ids=list(ids), vectors=vectors, probs=probs, quality=quality, labelled_vectors=ws.X[rows],
                     region_centroid=centroid, labelled_labels=labels, importance=importance),
        strategy=strategy, k=k, weights=weights or RankingWeights(), random_state=random_state,
    )


def retrieve_candidates(ws: "WorkingSet", head: "LinearHead", region: RegionSpec, *, k: int = 50,
                        strategy: str = "adde", weights: "RankingWeights | None" = None,
                        uncertain_share: float = 0.2, index: Any = None, random_state: int = 0) -> Proposal:
    """Retrieve pool items for a region and rank them.

    Pool items someone already decided on are skipped. Suggested labels are the head's
    predictions; the quality term is 1 for real pool items.

    Parameters
    ----------
    ws, head
        The working set and the head trained on its D_t.
    region
    k
        Candidates to retrieve and rank.
    strategy, weights
        See :func:`adde_core.ranking.rank_candidates`.
    uncertain_share
        Share of ``k`` filled with the most uncertain pool items near the region.
    index
        A :class:`~adde_core.acquisition.retrieval.VectorIndex` over the real pool (rows where
        ``role == "pool"`` and the source is not synthetic), built once per pool.
    """
    from adde_core.acquisition.retrieval import retrieve_for_region

    started = time.perf_counter()
    members = region_rows(ws, region)
    member_vectors = ws.X[members]
    centroid = member_vectors.mean(axis=0)
    pool_rows = np.flatnonzero((ws.role == "pool") & (ws.source != "synthetic"))
    if not ws.available.any():
        raise AddeError("the pool is empty (or every pool item has been decided); ingest more unlabelled items")
    probs = head.predict_proba(ws.X[pool_rows])
    hits = retrieve_for_region(ws.X[pool_rows], ws.ids[pool_rows], centroid=centroid, member_vectors=member_vectors,
                               k=k, probs=probs, uncertain_share=uncertain_share, exclude_ids=set(ws.decided),
                               index=index, random_state=random_state)
    ids = [str(i) for i in hits["id"]]
    local = pd.Index(ws.ids[pool_rows]).get_indexer(ids)
    vectors, cand_probs = ws.X[pool_rows[local]], probs[local]
    ranked = rank(ws, ids, vectors, cand_probs, None, centroid, strategy=strategy, weights=weights, k=None,
                  random_state=random_state)
    order = pd.Index(ids).get_indexer(ranked.frame["id"])
    by_id = hits.set_index("id")
    frame = ranked.frame.assign(suggested_label=head.classes_[np.argmax(cand_probs[order], axis=1)],
                                confidence=cand_probs[order].max(axis=1),
                                via=by_id.loc[ranked.frame["id"], "via"].to_numpy(),
                                similarity=by_id.loc[ranked.frame["id"], "similarity"].to_numpy())
    summary = {"n_pool": int(ws.available.sum()), "n_candidates": int(len(frame)),
               "nearest": dict(zip(frame["id"], nearest_labelled(ws, vectors[order]))),
               "seconds": round(time.perf_counter() - started, 3)}
    return Proposal("retrieve", region.as_dict(), frame, ranking_record(ranked),
                    {"k": k, "uncertain_share": uncertain_share, "model_key": ws.model_key}, summary)


def rank_pool(ws: "WorkingSet", head: "LinearHead", *, k: int, strategy: str, weights: "RankingWeights | None" = None,
              random_state: int = 0, target_failures: bool = False, max_pool: int | None = POOL_RANK_MAX) -> Proposal:
    """Rank the whole available pool with one registry strategy and keep the top ``k`` (the baselines' acquisition).

    ``target_failures`` (ADDE's coverage arm) weights every pool item by ``1 + λ × local val error``
    (:func:`adde_core.acquisition.targeting.failure_importance`) for the strategies that take an
    importance (the herding ones), and ranks with the head's probabilities at the val-fitted
    temperature (:func:`adde_core.acquisition.targeting.calibrated_proba`). Past ``max_pool``
    available items, a strategy not in :data:`PER_ITEM_STRATEGIES` ranks a uniform sample of
    ``max_pool`` of them (:data:`POOL_RANK_MAX`; None ranks every item); the summary's
    ``n_ranked`` says how many were ranked.
    """
    rows = np.flatnonzero(ws.available)
    if len(rows) == 0:
        raise AddeError("the pool is empty (or every pool item has been decided); ingest more unlabelled items")
    n_pool = len(rows)
    if max_pool is not None and n_pool > max(max_pool, k) and strategy not in PER_ITEM_STRATEGIES:
        rows = rows[fit_sample(n_pool, max(max_pool, k), random_state)]
    probs = head.predict_proba(ws.X[rows])
    importance = None
    if target_failures:
        from adde_core.acquisition.targeting import calibrated_proba, failure_importance

        importance = failure_importance(ws, head, rows)
        calibrated = calibrated_proba(ws, head, rows)
        probs = probs if calibrated is None else calibrated
    ranked = rank(ws, ws.ids[rows], ws.X[rows], probs, None, None, strategy=strategy, weights=weights,
                  k=min(k, len(rows)), random_state=random_state, importance=importance)
    pos = ranked.frame["position"].to_numpy()
    frame = ranked.frame.assign(suggested_label=head.classes_[np.argmax(probs[pos], axis=1)],
                                confidence=probs[pos].max(axis=1), via=strategy)
    return Proposal("pool", {}, frame, ranking_record(ranked), {"k": k, "model_key": ws.model_key},
                    {"n_pool": int(n_pool), "n_ranked": int(len(rows)), "n_candidates": int(len(frame))})


def region_target(ws: "WorkingSet", region: RegionSpec, *, max_images: int = 64, random_state: int = 0) -> "RegionTarget":
    """A generator's view of the region: member images (labelled first), labels, vectors, nearest examples."""
    from adde_core.acquisition.generation.base import RegionTarget, load_image_array

    rows = region_rows(ws, region)
    centroid = ws.X[rows].mean(axis=0)
    data_rows, data_labels = ws.dataset_and_pending
    label_of = {int(r): str(lab) for r, lab in zip(data_rows, data_labels)}
    # Only dataset and pool images feed a generator: val/OOD pixels must never leak into training data.
    usable = rows[np.isin(ws.role[rows], ("seed", "pool"))]
    if ws.paths is not None:
        usable = usable[[ws.paths[r] is not None for r in usable]] if len(usable) else usable
    else:
        usable = usable[:0]
    known = np.asarray([r for r in usable if int(r) in label_of], dtype=np.int64)
    rest = np.asarray([r for r in usable if int(r) not in label_of], dtype=np.int64)
    rng = np.random.default_rng(random_state)
    chosen = np.concatenate([rng.permutation(known), rng.permutation(rest)])[:max_images].astype(int)
    counts = pd.Series([label_of[int(r)] for r in known]).value_counts()
    nearest = nearest_labelled(ws, centroid[None, :])[0]
    all_labels = dict(zip(map(str, ws.ids[data_rows]), data_labels))
    return RegionTarget(
        region_id=region.region_id, centroid=centroid, member_ids=tuple(region.member_ids),
        member_images=tuple(load_image_array(ws.paths[r]) for r in chosen),
        member_labels=tuple(label_of.get(int(r)) for r in chosen), member_vectors=ws.X[chosen],
        label_counts={str(k): int(v) for k, v in counts.items()}, description=region.description,
        nearest_example_ids=tuple(nearest), nearest_example_labels=tuple(all_labels.get(i) for i in nearest),
    )


def generator_training_rows(ws: "WorkingSet") -> tuple[np.ndarray, np.ndarray]:
    """Rows and labels a generator trains on: the real images of D_t ∪ D_valid."""
    rows, labels = ws.dataset_and_pending
    if ws.paths is None:
        return rows[:0], labels[:0]
    keep = np.array([ws.source[r] != "synthetic" and ws.paths[r] is not None for r in rows], dtype=bool)
    return rows[keep], labels[keep]


def train_generator(ws: "WorkingSet", name: str, params: Mapping[str, Any] | None = None, *,
                    random_state: int = 0, progress: "ProgressCallback | None" = None) -> Any:
    """Fit generator ``name`` on the real images of D_t ∪ D_valid (callers cache it by :func:`generator_key`)."""
    from adde_core.acquisition.generation import create_generator
    from adde_core.acquisition.generation.base import load_image_array

    rows, labels = generator_training_rows(ws)
    if len(rows) == 0:
        raise AddeError("no labelled images to train a generator on: the data has no image files, or nothing is "
                        "labelled yet")
    params = dict(params or {})
    if "random_state" in _accepted(name) and "random_state" not in params:
        params["random_state"] = random_state
    generator = create_generator(name, **params)
    generator.fit([load_image_array(ws.paths[r]) for r in rows], [str(x) for x in labels], conditions=ws.X[rows],
                  progress=progress)
    return generator


def _accepted(name: str) -> set[str]:
    import inspect

    from adde_core.acquisition.generation import GENERATORS

    factory = GENERATORS.get(name)
    return set(inspect.signature(factory).parameters) if factory is not None else set()


def generator_key(ws: "WorkingSet", name: str, params: Mapping[str, Any] | None = None, *,
                  random_state: int = 0) -> str:
    """Identifies a trained generator: its name, parameters, seed and the exact images and labels it learnt from."""
    import hashlib

    rows, labels = generator_training_rows(ws)
    h = hashlib.sha1(repr((name, sorted((params or {}).items()), ws.model_key, random_state)).encode())
    for i, lab in zip(ws.ids[rows], labels):
        h.update(f"{i}\t{lab}\n".encode())
    return h.hexdigest()[:16]


def generate_candidates(ws: "WorkingSet", head: "LinearHead", region: RegionSpec, *, generator: Any,
                        embed_images: EmbedFn, register: RegisterFn, n: int = 48, label: str | None = None,
                        prompt: str | None = None, gate_config: Any = None, strategy: str = "adde",
                        weights: "RankingWeights | None" = None, seed: int = 0,
                        generator_name: str = "") -> Proposal:
    """Generate images aimed at a region, gate them, register the kept ones, and rank them.

    Kept images are handed to ``register`` (which stores them as ``candidate`` items with their
    provenance and returns their ids); the dropped ones are listed with their reasons in the
    proposal's summary. Candidates are ranked by the same strategy as retrieved ones, with the
    gate score as Q.
    """
    from adde_core.acquisition.quality_gate import GateConfig, gate_candidates, region_radius

    started = time.perf_counter()
    members = region_rows(ws, region)
    centroid = ws.X[members].mean(axis=0)
    target = region_target(ws, region, random_state=seed)
    kwargs: dict[str, Any] = {"label": label, "seed": seed}
    if prompt is not None:
        kwargs["prompt"] = prompt
    batch = generator.generate(target, n, **kwargs)
    vectors = np.asarray(embed_images(batch.images), dtype=np.float32) if len(batch.images) else \
        np.zeros((0, ws.X.shape[1]), np.float32)
    real = ws.source != "synthetic"
    report = gate_candidates(vectors, batch.labels, centroid=centroid,
                             radius=region_radius(ws.X[members], centroid), reference_vectors=ws.X[real],
                             probs=head.predict_proba(vectors) if len(vectors) else None, classes=head.classes_,
                             config=gate_config or GateConfig())
    kept = np.flatnonzero(np.asarray(report.kept, dtype=bool))
    region_info = {k: v for k, v in region.as_dict().items() if k != "member_ids"}
    provenance = [{"generator": batch.generator or getattr(generator, "key", generator_name), "params": batch.params,
                   "prompt": batch.prompt, "seed": batch.seeds[i], "target_region": region_info,
                   "intended_label": batch.labels[i],
                   "gate": {"reason": report.reasons[i], "score": float(report.gate_score[i])}} for i in kept]
    ids = register(batch, kept, vectors[kept], provenance) if len(kept) else []
    summary: dict[str, Any] = {"n_generated": len(batch.images), "n_kept": int(len(kept)), "gate": report.summary(),
                               "dropped": [{"index": int(i), "reason": report.reasons[i]}
                                           for i in np.flatnonzero(~np.asarray(report.kept, dtype=bool))],
                               "prompt": batch.prompt, "generator": getattr(generator, "key", generator_name),
                               "label": batch.labels[0] if batch.labels else label}
    if len(kept):
        kept_vectors = vectors[kept]
        probs = head.predict_proba(kept_vectors)
        ranked = rank(ws, ids, kept_vectors, probs, np.asarray(report.gate_score, dtype=float)[kept], centroid,
                      strategy=strategy, weights=weights, k=None, random_state=seed)
        intended = dict(zip(ids, [batch.labels[i] for i in kept]))
        order = pd.Index(ids).get_indexer(ranked.frame["id"])
        frame = ranked.frame.assign(suggested_label=[intended[i] for i in ranked.frame["id"]],
                                    confidence=probs[order].max(axis=1), via=generator_name or "generator")
        summary["nearest"] = dict(zip(frame["id"], nearest_labelled(ws, kept_vectors[order])))
        record = ranking_record(ranked)
    else:
        frame = pd.DataFrame(columns=["id", "rank", "score", "suggested_label", "via"])
        from adde_core.ranking import RankingWeights

        w = (weights or RankingWeights()).normalized()
        record = {"strategy": strategy, "weights": [float(x) for x in w], "input_fingerprint": ""}
    summary["seconds"] = round(time.perf_counter() - started, 3)
    return Proposal("generate", region.as_dict(), frame, record,
                    {"generator": generator_name, "n": n, "label": label, "seed": seed, "model_key": ws.model_key},
                    summary)


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


def suggest_prompt(ws: "WorkingSet", region: RegionSpec, embedder: Any) -> str:
    """A text-to-image prompt describing the region: its labels, nearest examples and, with CLIP, attribute words."""
    from adde_core.acquisition.generation.diffusion import describe_region_prompt

    target = region_target(ws, region, max_images=0)
    words = zero_shot_attribute_words(embedder, target.centroid)
    return describe_region_prompt(target, attribute_words=words)
