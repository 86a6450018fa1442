"""Generation on SQLite and PostgreSQL: generated candidates (role "candidate", VARCHAR(8) on schema 2) are stored,
embedded into the shared set, reviewed and folded in."""

from __future__ import annotations

import numpy as np
from PIL import Image

from adde_core.project import Project
from adde_core.review import DecisionRequest, provenance_frame, record_decision
from tests.unit.store.test_store_processes import REPO


def test_generate_review_and_fold_in(tmp_path, database_url):
    folder = tmp_path / "images"
    with np.load(REPO / "assets" / "animal_mnist" / "animal_mnist.npz", allow_pickle=False) as data:
        images, labels, classes = data["images"], data["labels"], [str(c) for c in data["classes"]]
    for name in ("cat", "dog", "horse"):
        rows = np.flatnonzero(labels == classes.index(name))[:10]
        (folder / name).mkdir(parents=True)
        for k in rows:
            Image.fromarray(images[k]).save(folder / name / f"{name}{k}.png")
    project = Project.create(tmp_path / "p", database_url=database_url)
    assert project.ingest_folder(folder).n_loaded == 30
    project.embed("efficientnet-lite0", params={"image_size": 32, "device": "cpu"}, batch_size=16)
    horses = list(project.items().query("label == 'horse'")["id"])
    got = project.acquire(horses, mode="generate", generator="augment", n=8, seed=1)
    kept = list(got.candidates["id"])
    assert got.summary["n_generated"] == 8 and kept
    items = project.items().set_index("id")
    assert (items.loc[kept, "role"] == "candidate").all()
    assert set(kept) <= set(map(str, project.embeddings(project.default_model_key()).ids))
    assert (provenance_frame(project.store, kept)["generator"] == "augment").all()
    record_decision(project.store, DecisionRequest(kept[0], "accept", "ann", label="horse", expected_seq=0))
    summary = project.next_iteration(reviewer="ann")
    assert summary.added == {"synthetic": 1}
    after = project.items().set_index("id")
    assert after.loc[kept[0], "role"] == "seed" and after.loc[kept[0], "label"] == "horse"
    project.close()
