"""Known answer on real data: the demo's deliberately rare class lands in a detected coverage gap.

The small demo (1,000 real Animal-MNIST silhouettes; zebra has 2 seed images where common
classes have 12) is embedded with the real EfficientNet-Lite0 model, analysed end to end,
and the flagged regions are checked against the pool's hidden oracle labels. Detection
itself only sees what the app sees (``project.items()``, which has no oracle labels).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from adde_core.analysis import analyze_embeddings
from adde_core.project import Project


@pytest.fixture(scope="module")
def analysed(small_demo_embedded_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("analysis_demo") / "project"
    shutil.copytree(small_demo_embedded_dir, root)
    project = Project.open(root)
    summary = project.embed("efficientnet-lite0")  # a cache hit: the fixture embedded it
    assert summary.n_computed == 0
    stored = project.embeddings(summary.model_key)
    items = project.items()
    assert "oracle_label" not in items.columns
    result = analyze_embeddings(stored.vectors, stored.ids, items, model_key=summary.model_key,
                                fingerprint=stored.fingerprint)
    hidden = project.store.items_frame(include_hidden=True).set_index("id")
    demo = project.store.get_meta("demo")
    yield result, hidden, demo, stored
    project.close()


def pool_oracle(region, hidden):
    roles = hidden.loc[region.member_ids, "role"]
    return hidden.loc[roles.index[roles == "pool"], "oracle_label"]


def test_rare_class_is_in_a_top_ranked_coverage_gap(analysed):
    result, hidden, demo, _ = analysed
    assert "zebra" in demo["rare_classes"]
    top = result.regions.regions[:3]
    gaps = [r for r in top if r.kind == "coverage_gap"]
    assert gaps, result.regions.to_frame()[["region_id", "kind", "score", "size"]]
    # Measured: the first region is a coverage gap whose 32 pool members are 100% zebra.
    shares = [(pool_oracle(r, hidden) == "zebra").mean() for r in gaps]
    assert max(shares) >= 0.8, shares
    # And the flagged gaps hold a large part of the pool's zebras (measured 60%).
    in_gaps = set().union(*(set(r.member_ids) for r in result.regions.of_kind("coverage_gap")))
    pool_zebras = hidden.index[(hidden["role"] == "pool") & (hidden["oracle_label"] == "zebra")]
    assert np.mean([i in in_gaps for i in pool_zebras]) >= 0.35


def test_common_classes_are_not_flagged_as_gaps(analysed):
    result, hidden, demo, _ = analysed
    rare = set(demo["rare_classes"])
    sub = demo["rare_subgroup"]
    for region in result.regions.of_kind("coverage_gap"):
        labels = pool_oracle(region, hidden)
        shares = labels.value_counts(normalize=True)
        if len(labels) < 10 or shares.iloc[0] <= 0.5:
            continue  # small or mixed regions make no claim about one class
        top = shares.index[0]
        if top == sub["label"]:
            # The rare subgroup's class may be flagged, but then for its rare subgroup (upright horses).
            members = hidden.loc[labels.index[labels == top], sub["attribute"]]
            assert (members == sub["value"]).mean() > 0.5, (region.region_id, members.value_counts())
        else:
            assert top in rare, (region.region_id, labels.value_counts())


def test_analysis_result_is_consistent(analysed):
    result, hidden, _, stored = analysed
    n = len(stored.ids)
    assert result.coords.shape == (n, 2) and np.isfinite(result.coords).all()
    assert result.map.model_key.startswith("efficientnet-lite0")
    assert result.fingerprint == stored.fingerprint == result.regions.fingerprint == result.clusters.fingerprint
    assert result.cluster_table["size"].sum() == n
    assert result.clusters.n_clusters >= 5
    top = result.regions.regions[0]
    assert top.description and top.centroid_2d is not None and top.nearest_dataset_ids


def test_diversity_summary_on_the_demo(analysed):
    from adde_core.analysis.summary import VENDI_SUBSAMPLE, dataset_mask, summarize_diversity

    result, hidden, demo, stored = analysed
    summary = summarize_diversity(stored.vectors, result, q=2.0, subgroup="pose")
    values = {m.key: m.value for m in summary.metrics}
    assert all(m.meaning for m in summary.metrics)
    assert summary.n_dataset == int(dataset_mask(result.items).sum())
    # Vendi is an effective count: between 1 and the subsample size; q=2 never exceeds q=1.
    n_sub = min(VENDI_SUBSAMPLE, summary.n_dataset)
    assert 1.0 <= values["vendi_q"] <= values["vendi_q1"] <= n_sub
    assert 0.0 <= values["coverage_val"] <= 1.0 and 0.0 <= values["coverage_pool"] <= 1.0
    assert 0.0 <= values["cluster_entropy"] <= 1.0
    # The skewed seed is visibly unbalanced by class: zebra is the rarest label.
    labels = summary.labels
    assert labels["count"].idxmin() == "zebra" and labels.loc["zebra", "ratio"] < 0.5
    assert abs(summary.subgroups["share"].sum() - 1.0) < 1e-9
