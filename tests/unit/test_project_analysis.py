"""Project.analyze: stored with the project and reused (restart, second tab, CLI), extended when items are added."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="module")
def analysed_dir(small_demo_embedded_dir, tmp_path_factory):
    """The small embedded demo with its analysis computed and stored once."""
    from adde_core.project import Project

    root = tmp_path_factory.mktemp("analysed") / "p"
    shutil.copytree(small_demo_embedded_dir, root)
    project = Project.open(root)
    calls: list[tuple[int, int]] = []
    result = project.analyze(progress=lambda d, n: calls.append((d, n)))
    assert calls[0] == (0, 4) and calls[-1] == (4, 4)
    assert result.reused == ()
    project.close()
    return root


@pytest.fixture()
def project(analysed_dir, tmp_path):
    from adde_core.project import Project

    root = tmp_path / "p"
    shutil.copytree(analysed_dir, root)
    p = Project.open(root)
    yield p
    p.close()


def _same(a, b) -> None:
    assert np.array_equal(a.coords, b.coords)
    assert np.array_equal(a.clusters.labels, b.clusters.labels)
    assert [r.region_id for r in a.regions] == [r.region_id for r in b.regions]
    assert [r.centroid_2d for r in a.regions] == [r.centroid_2d for r in b.regions]
    assert all(np.array_equal(x.member_ids, y.member_ids) for x, y in zip(a.regions, b.regions))
    assert np.array_equal(a.regions.knn_distance, b.regions.knn_distance, equal_nan=True)
    pd.testing.assert_frame_equal(a.cluster_table, b.cluster_table, check_dtype=False)


def test_a_reopened_project_reuses_the_stored_analysis(project, analysed_dir):
    """A restart (new Project, empty memo) computes nothing: no progress, every step from the store."""
    from adde_core.project import Project

    calls: list[tuple[int, int]] = []
    first = project.analyze(progress=lambda d, n: calls.append((d, n)))
    assert calls == []
    assert set(first.reused) == {"map", "clusters", "regions", "stats"}
    assert project.analyze() is first  # memoised in the process
    other = Project.open(project.root)  # a second process, the CLI, a restarted server
    try:
        _same(other.analyze(), first)
    finally:
        other.close()
    assert not any(p.suffix == ".pkl" for p in (project.root / "analysis").rglob("*"))


def test_stored_analysis_matches_a_fresh_computation(project):
    from adde_core.analysis import analyze_embeddings

    stored = project.embeddings(project.default_model_key())
    fresh = analyze_embeddings(stored.vectors, stored.ids, project.items(), model_key=stored.model_key,
                               fingerprint=stored.fingerprint)
    loaded = project.analyze()
    assert np.array_equal(loaded.clusters.labels, fresh.clusters.labels)
    assert [r.region_id for r in loaded.regions] == [r.region_id for r in fresh.regions]
    assert [r.score for r in loaded.regions] == pytest.approx([r.score for r in fresh.regions])


def test_refit_is_one_shot_and_later_items_extend_the_refitted_map(project):
    before = project.analyze()
    refitted = project.analyze(refit=True)
    assert "map" not in refitted.reused  # a new layout was fitted...
    assert np.array_equal(refitted.clusters.labels, before.clusters.labels)  # ...clusters are kept
    seeds = project.items(roles=["seed"])["id"].head(4).tolist()
    project.acquire(seeds, mode="generate", generator="augment", n=8)
    after = project.analyze()
    old = pd.Index(after.items["id"]).get_indexer(refitted.items["id"])
    assert (old >= 0).all() and len(after.items) > len(refitted.items)
    assert np.array_equal(after.coords[old], refitted.coords)  # bitwise: nobody moved
    assert "cluster space (extended)" in after.reused
    assert "regions" not in after.reused  # recomputed for the new items
    again = project.analyze()
    assert np.array_equal(again.coords, after.coords)


def test_changed_labels_recompute_regions_but_keep_clusters(project, tmp_path):
    from adde_core.analysis import ClusterConfig, MapConfig, RegionConfig
    from adde_core.analysis.persist import AnalysisStore, analyze_stored

    stored = project.embeddings(project.default_model_key())
    items = project.items()
    args = dict(model_key=stored.model_key, fingerprint=stored.fingerprint,
                load_vectors=lambda: (stored.ids, stored.vectors), map_config=MapConfig(),
                cluster_config=ClusterConfig(), region_config=RegionConfig())
    store = AnalysisStore(project.root / "analysis")
    path = project.map_path(stored.model_key)
    same = analyze_stored(store, path, items=items, **args)
    assert set(same.reused) == {"map", "clusters", "regions", "stats"}
    pool = items.index[items["role"] == "pool"][:30]
    changed = items.copy()
    changed.loc[pool, ["role", "label"]] = ["seed", "cat"]
    redo = analyze_stored(store, path, items=changed, **args)
    assert "clusters" in redo.reused and "regions" not in redo.reused
    assert int(redo.cluster_table["n_seed"].sum()) == int(same.cluster_table["n_seed"].sum()) + 30


def test_an_unreadable_stored_file_is_recomputed(project):
    from adde_core.project import Project

    for path in (project.root / "analysis").rglob("regions-*.npz"):
        path.write_bytes(b"not an npz")
    other = Project.open(project.root)
    try:
        result = other.analyze()
        assert "regions" not in result.reused and len(result.regions) > 0
    finally:
        other.close()


def test_cluster_quality_note(project):
    from adde_core.ui.cluster_note import cluster_quality_text

    text = cluster_quality_text(project.analyze())
    assert "clusters" in text and "largest C0 holds" in text
    assert "noise" in text or "k-means" in text


def test_diversity_cards_are_kept_with_the_stored_analysis(project, monkeypatch):
    from adde_core.analysis import summary

    result = project.analyze()
    X = project.embeddings(project.default_model_key()).vectors
    first = summary.summarize_diversity(X, result, q=2.0)
    assert (project.root / "analysis").rglob(summary._CARDS_FILE)
    summary._CARDS.clear()  # a restarted server: only the file is left

    def recompute(*args, **kwargs):
        raise AssertionError("the cards should come from the stored file")

    monkeypatch.setattr(summary, "_cards", recompute)
    again = summary.summarize_diversity(X, result, q=2.0)
    assert [(m.key, m.value) for m in again.metrics] == [(m.key, m.value) for m in first.metrics]
    other_q = summary.summarize_diversity(X, result, q=0.5)  # only Vendi at q is computed
    assert [m.key for m in other_q.metrics] == [m.key for m in first.metrics]
    assert next(m for m in other_q.metrics if m.key == "vendi_q").label.startswith("Vendi (q=0.5")
