"""Acquisition end to end on the small real demo: retrieve for a rare-class region, review, export."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from adde_core.errors import AddeError


@pytest.fixture(scope="module")
def analysed(small_demo_embedded_dir, tmp_path_factory):
    from adde_core.project import Project

    root = tmp_path_factory.mktemp("acq") / "p"
    shutil.copytree(small_demo_embedded_dir, root)
    project = Project.open(root)
    result = project.analyze()
    yield project, result
    project.close()


@pytest.fixture()
def project(analysed, tmp_path):
    from adde_core.project import Project

    root = tmp_path / "p"
    shutil.copytree(analysed[0].root, root)
    p = Project.open(root)
    yield p
    p.close()


def _truth(project) -> pd.Series:
    items = project.store.items_frame(include_hidden=True).set_index("id")
    return items["oracle_label"].fillna(items["label"])


def test_retrieval_for_rare_class_region_beats_random(analysed, project):
    _, result = analysed
    truth = _truth(project)
    pool = project.items(roles=["pool"])["id"]
    # The flagged region holding the most zebras (the demo's rarest class in the seed set).
    region = max(result.regions.regions, key=lambda r: (truth.reindex(r.member_ids) == "zebra").sum())
    got = project.acquire(region, mode="retrieve", k=20)
    ids = list(got.candidates["id"])
    assert len(ids) == 20 == len(set(ids)) and set(ids) <= set(pool)
    precision = (truth[ids] == "zebra").mean()
    base_rate = (truth[pool] == "zebra").mean()
    assert precision >= 0.5 and precision >= 3 * base_rate, (precision, base_rate)
    # The breakdown adds up, and the set is stored with it.
    c = got.candidates
    assert np.allclose(c["alpha_U"] + c["beta_Div"] + c["gamma_Q"], c["score"])
    from adde_core.review import candidates_frame

    stored = candidates_frame(project.store, got.set_id)
    assert list(stored["item_id"]) == ids and np.allclose(stored["score"], c["score"])


def test_decided_items_are_not_retrieved_again(project):
    from adde_core.review import DecisionRequest, record_decision

    ids = list(project.items(roles=["pool"])["id"][:30])
    first = project.acquire(ids, mode="retrieve", k=10)
    for item_id in first.candidates["id"]:
        record_decision(project.store, DecisionRequest(item_id, "reject", "ann"))
    second = project.acquire(ids, mode="retrieve", k=10)
    assert not set(first.candidates["id"]) & set(second.candidates["id"])


def test_oracle_accepts_true_labels_and_relabels_wrong_ones(project):
    from adde_core.review import ORACLE_REVIEWER, record_decisions, valid_items

    got = project.acquire(list(project.items(roles=["pool"])["id"][:20]), mode="retrieve", k=15)
    cands = got.candidates.rename(columns={"id": "item_id"})
    requests = project.oracle().decide(cands, project.working_set(), candidate_set_id=got.set_id)
    truth = _truth(project)
    for req, suggested in zip(requests, cands["suggested_label"]):
        assert req.reviewer == ORACLE_REVIEWER and req.label == truth[req.item_id]
        assert req.action == ("accept" if suggested == truth[req.item_id] else "relabel")
    record_decisions(project.store, requests)
    valid = valid_items(project.store).set_index("item_id")
    assert len(valid) == 15 and (valid["label"] == truth[valid.index]).all()


def test_export_round_trip(project, tmp_path):
    from adde_core.project import Project
    from adde_core.review import DecisionRequest, export_dataset, record_decision

    seed = project.items(roles=["seed"])
    got = project.acquire(list(project.items(roles=["pool"])["id"][:20]), mode="retrieve", k=3)
    a, b, c = got.candidates["id"]
    record_decision(project.store, DecisionRequest(a, "accept", "ann", label="cat"))
    record_decision(project.store, DecisionRequest(b, "relabel", "bob", label="dog", flags=("edge case",),
                                                   critique="looks like a fox"))
    record_decision(project.store, DecisionRequest(c, "reject", "ann"))
    summary = export_dataset(project, tmp_path / "out", fmt="csv")
    manifest = pd.read_csv(summary.manifest)
    assert len(manifest) == len(seed) + 2 == summary.n_items == summary.n_images
    rows = manifest.set_index("id")
    assert rows.loc[a, "label"] == "cat" and rows.loc[a, "decision"] == "accept" and rows.loc[a, "source"] == "pool"
    assert rows.loc[b, "flags"] == "edge case" and rows.loc[b, "critique"] == "looks like a fox"
    assert c not in rows.index
    assert len(pd.read_csv(summary.decisions)) == 3
    # The manifest is ingestable: a new project built from it has the same items and labels.
    fresh = Project.create(tmp_path / "fresh")
    report = fresh.ingest_manifest(summary.manifest)
    assert report.n_loaded == len(manifest) and report.n_rejected == 0
    again = fresh.items().set_index("id")
    assert (again.loc[manifest["id"], "label"].to_numpy() == manifest["label"].to_numpy()).all()
    fresh.close()


def test_bad_region_and_mode_are_named(project):
    with pytest.raises(AddeError, match="no members"):
        project.acquire([], mode="retrieve")
    with pytest.raises(AddeError, match="unknown acquisition mode"):
        project.acquire(["x"], mode="teleport")


def test_generation_stores_gated_candidates_with_provenance(project):
    from adde_core.review import candidates_frame, provenance_frame

    seed = project.items(roles=["seed"])
    horses = list(seed.loc[seed["label"] == "horse", "id"])
    got = project.acquire(horses, mode="generate", generator="augment", n=16, seed=3)
    s = got.summary
    assert s["n_generated"] == 16 and sum(s["gate"].values()) == 16 and s["n_kept"] == s["gate"]["kept"]
    assert s["n_kept"] + len(s["dropped"]) == 16
    kept = list(got.candidates["id"])
    assert len(kept) == s["n_kept"] > 0
    items = project.items().set_index("id")
    assert (items.loc[kept, "role"] == "candidate").all() and (items.loc[kept, "source"] == "synthetic").all()
    prov = provenance_frame(project.store, kept).set_index("item_id")
    assert (prov.loc[kept, "intended_label"] == "horse").all() and (prov["generator"] == "augment").all()
    assert prov["target_region"].map(lambda r: r["region_id"]).eq(f"selection/{len(horses)}-items").all()
    assert list(candidates_frame(project.store, got.set_id)["item_id"]) == kept
    # Generated items are embedded into the same set (so they land on the map) but stay out of the pool.
    stored = project.embeddings(project.default_model_key())
    assert set(kept) <= set(stored.ids)
    again = project.acquire(horses, mode="retrieve", k=10)
    assert not set(again.candidates["id"]) & set(kept)


def test_zero_shot_attribute_words_pick_the_closest_texts():
    from adde_core.acquisition.acquire import zero_shot_attribute_words

    class TextTower:
        def embed_texts(self, texts):
            # One axis per word: "a w image" for vocabulary word i is e_i.
            return np.eye(len(texts), dtype=np.float32)

    vocab = ("dark", "bright", "small", "large")
    centroid = np.array([0.1, 0.9, 0.0, 0.5], dtype=np.float32)
    assert zero_shot_attribute_words(TextTower(), centroid, vocabulary=vocab, top=2) == ["bright", "large"]
    assert zero_shot_attribute_words(object(), centroid, vocabulary=vocab) == []


def test_suggested_prompt_describes_the_region(analysed, project):
    seed = project.items(roles=["seed"])
    prompt = project.suggest_prompt(list(seed.loc[seed["label"] == "horse", "id"]))
    assert "horse" in prompt
