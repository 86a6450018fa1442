"""The Ray Data engine on a local 2-CPU Ray on loopback: same vectors and cache as in-process, clear failures."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adde_core.embedding import EfficientNetLite0Embedder, EmbeddingCache, embed_with_cache, file_sha1
from adde_core.errors import AddeError

ray = pytest.importorskip("ray", reason="the Ray engine tests need `pip install ray==2.60.0`")
distributed = pytest.importorskip("adde_core.embedding.distributed")

ROOT = Path(__file__).resolve().parents[2]
NAME, PARAMS = "efficientnet-lite0", {"image_size": 32, "device": "cpu"}  # a tiny input: plumbing, not quality
BATCH = 8
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    """24 real Animal-MNIST PNGs, plus one truncated file in the middle."""
    folder = tmp_path_factory.mktemp("ray-images")
    with np.load(ROOT / "assets" / "animal_mnist" / "animal_mnist.npz", allow_pickle=False) as data:
        arrays = data["images"][:24]
    paths = []
    for index, array in enumerate(arrays):
        path = folder / f"animal_{index:02d}.png"
        Image.fromarray(array).save(path)
        paths.append(path)
    broken = folder / "broken.png"
    broken.write_bytes(paths[0].read_bytes()[:50])
    return [*paths[:12], broken, *paths[12:]]


@pytest.fixture(scope="module")
def embedder() -> EfficientNetLite0Embedder:
    return EfficientNetLite0Embedder(**PARAMS)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# These run before the local instance below starts: an initialised Ray would be reused as it is.
@pytest.mark.parametrize("form", ["ray://127.0.0.1:{port}", "127.0.0.1:{port}"])
def test_unreachable_address_fails_fast_and_names_it(form, images, tmp_path):
    assert not ray.is_initialized()
    address = form.format(port=_closed_port())
    started = time.perf_counter()
    with pytest.raises(AddeError, match=rf"Cannot reach the Ray cluster at '{re.escape(address)}': connection refused"):
        distributed.embed_with_ray(NAME, PARAMS, images, [file_sha1(p) for p in images], EmbeddingCache(tmp_path),
                                   address=address)
    assert time.perf_counter() - started < 5
    assert not ray.is_initialized()


def _project(folder: Path, images: list[Path]):
    """A project of the readable images (ingest rejects the broken one), labelled by parity."""
    import pandas as pd

    from adde_core.project import Project

    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"path": str(p), "label": "even" if k % 2 == 0 else "odd", "role": "seed"}
            for k, p in enumerate(images) if p.name != "broken.png"]
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    project = Project.create(folder / "project")
    report = project.ingest_manifest(folder / "manifest.csv", data_root=images[0].parent)
    assert report.n_loaded == 24, report.issues
    return project


def _cli_args(root: Path, *extra: str) -> list[str]:
    return ["embed", "--project", str(root), "--param", "image_size=32", "--param", "device=cpu", *extra]


# Like the test above, these need Ray not initialised in this process yet.
def test_cli_engine_ray_with_an_unreachable_address_fails_fast_and_records_nothing(images, tmp_path, capsys):
    from adde_core.cli import main

    project = _project(tmp_path, images)
    root = project.root
    project.close()
    address = f"ray://127.0.0.1:{_closed_port()}"
    started = time.perf_counter()
    assert main(_cli_args(root, "--engine", "ray", "--address", address)) == 2
    assert time.perf_counter() - started < 10
    err = capsys.readouterr().err
    assert f"\nerror: Cannot reach the Ray cluster at '{address}': connection refused." in err
    assert "Traceback" not in err and not ray.is_initialized()
    assert main(_cli_args(root, "--address", address)) == 2  # an address without --engine ray
    assert "--address and --ray-cpus need --engine ray" in capsys.readouterr().err
    from adde_core.project import Project

    project = Project.open(root)
    try:
        assert project.store.runs("embed") == [] and project.embedding_sets().empty
    finally:
        project.close()


def test_engine_ray_without_ray_installed_says_what_to_install(images, tmp_path, monkeypatch):
    import sys

    project = _project(tmp_path, images)
    try:
        monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
        with pytest.raises(AddeError, match=r"needs Ray: run `pip install ray==2\.60\.0`"):
            project.embed(params=PARAMS, engine="ray")
        with pytest.raises(AddeError, match="unknown embedding engine 'spark'; choose one of local, ray"):
            project.embed(params=PARAMS, engine="spark")
        assert project.store.runs("embed") == []
    finally:
        project.close()


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the jobs below, started the way embed_with_ray starts one (2 CPUs, loopback)."""
    assert distributed._connect(ray, None, local_cpus=2)
    yield
    ray.shutdown()


def test_worker_death_resume_and_agreement_with_in_process(local_ray, images, embedder, monkeypatch, tmp_path):
    # One story, to keep Ray start-ups few: a worker dies mid-job, the re-run resumes, and the result is
    # what the in-process engine computes, in one shared cache.
    keys = [file_sha1(p) for p in images]
    cache = EmbeddingCache(tmp_path / "cache")
    monkeypatch.setenv(distributed.FAULT_WORKER_EXIT_ENV, "1")  # the actor exits at its 2nd batch
    monkeypatch.setattr(distributed, "WORKER_RESTARTS", 0)  # so the death is final
    with pytest.raises(AddeError, match=r"a Ray worker died mid-job .*run the same embed again") as info:
        distributed.embed_with_ray(NAME, PARAMS, images, keys, cache, batch_size=BATCH, concurrency=1)
    kept = int(re.search(r"(\d+) of 25 new vectors were computed", str(info.value)).group(1))
    # Whole batches, not all of them (a batch finished just before the death may not reach the driver).
    assert kept in (0, 7, 8)  # the first batch holds the broken file, so it stores 7 vectors
    assert cache.lookup(embedder.key, keys)[1].sum() == kept

    monkeypatch.delenv(distributed.FAULT_WORKER_EXIT_ENV)
    calls = []
    by_ray = distributed.embed_with_ray(NAME, PARAMS, images, keys, cache, batch_size=BATCH,
                                        progress=lambda done, total: calls.append((done, total)))
    assert (by_ray.model_key, by_ray.n_cached, by_ray.n_computed + kept) == (embedder.key, kept, 24)
    assert [row for row, _ in by_ray.failed] == [12] and "broken.png" in by_ray.failed[0][1]
    assert calls[-1] == (25, 25) and len(calls) == 4 - (kept > 0)  # one call per batch of 8 that came back

    reference = embed_with_cache(embedder, images, keys, EmbeddingCache(tmp_path / "fresh"), batch_size=BATCH)
    assert reference.failed == by_ray.failed
    np.testing.assert_allclose(by_ray.vectors[by_ray.ok], reference.vectors[reference.ok], atol=1e-5, rtol=0)
    assert np.isnan(by_ray.vectors[12]).all()

    again = embed_with_cache(embedder, images, keys, cache, batch_size=BATCH)  # the in-process engine, same cache
    assert (again.n_computed, again.n_cached) == (0, 24)
    np.testing.assert_array_equal(again.vectors[again.ok], by_ray.vectors[by_ray.ok])


def test_an_actor_that_cannot_build_the_embedder_gives_its_reason(local_ray, images, tmp_path):
    expected = r"could not build embedder 'efficientnet-lite0': .* has key 'efficientnet-lite0@32', but the job files"
    with pytest.raises(AddeError, match=expected):
        distributed.embed_with_ray(NAME, PARAMS, images[:3], ["a", "b", "c"], EmbeddingCache(tmp_path),
                                   model_key="wrong", concurrency=1)


def test_project_and_cli_engine_ray_save_the_in_process_embedding_set(local_ray, images, tmp_path, capsys):
    from adde_core.cli import main

    local = _project(tmp_path / "local", images)
    by_ray = _project(tmp_path / "ray", images)
    by_cli = _project(tmp_path / "cli", images)
    try:
        expected = local.embed(params=PARAMS, batch_size=BATCH)
        got = by_ray.embed(params=PARAMS, batch_size=BATCH, engine="ray")
        assert (got.model_key, got.n, got.n_computed, got.fingerprint) == \
            (expected.model_key, 24, 24, expected.fingerprint)
        root = by_cli.root
        by_cli.close()
        assert main(_cli_args(root, "--engine", "ray")) == 0
        assert f"embeddings {expected.model_key}: 24 computed, 0 from cache" in capsys.readouterr().out
        from adde_core.project import Project

        by_cli = Project.open(root)
        reference = local.store.load_embeddings(expected.model_key)
        for project in (by_ray, by_cli):
            stored = project.store.load_embeddings(expected.model_key)
            assert list(stored.ids) == list(reference.ids) and stored.fingerprint == reference.fingerprint
            np.testing.assert_allclose(stored.vectors, reference.vectors, atol=1e-5, rtol=0)
            assert project.store.runs("embed")[0]["params"]["engine"] == "ray"
        # The in-process engine reads what Ray wrote: nothing to recompute.
        again = by_ray.embed(params=PARAMS, batch_size=BATCH)
        assert (again.n_computed, again.n_cached) == (0, 24)
    finally:
        for project in (local, by_ray, by_cli):
            project.close()


def test_project_embed_with_ray_resumes_after_a_worker_dies(local_ray, images, embedder, monkeypatch, tmp_path):
    project = _project(tmp_path, images)
    try:
        monkeypatch.setenv(distributed.FAULT_WORKER_EXIT_ENV, "1")  # every actor exits at its 2nd batch
        monkeypatch.setattr(distributed, "WORKER_RESTARTS", 0)
        with pytest.raises(AddeError, match=r"a Ray worker died mid-job .*run the same embed again") as info:
            project.embed(params=PARAMS, batch_size=BATCH, engine="ray")
        kept = int(re.search(r"(\d+) of 24 new vectors were computed", str(info.value)).group(1))
        assert kept in (0, 8, 16)  # whole batches of 8 (two actors, one batch each before they die)
        [run] = project.interrupted_runs()
        assert run["kind"] == "embed" and "a Ray worker died mid-job" in run["summary"]["interrupted"]
        assert project.embedding_sets().empty  # no half set: only a finished embed saves one

        monkeypatch.delenv(distributed.FAULT_WORKER_EXIT_ENV)
        resumed = project.embed(params=PARAMS, batch_size=BATCH, engine="ray")
        assert (resumed.n_cached, resumed.n_computed, resumed.n) == (kept, 24 - kept, 24)
        reference = embed_with_cache(embedder, [project.resolve_uri(u) for u in project.store.items_frame()["uri"]],
                                     list(project.store.items_frame()["content_hash"]),
                                     EmbeddingCache(tmp_path / "fresh"), batch_size=BATCH)
        stored = project.store.load_embeddings(resumed.model_key)
        np.testing.assert_allclose(stored.vectors, reference.vectors, atol=1e-5, rtol=0)
    finally:
        project.close()
