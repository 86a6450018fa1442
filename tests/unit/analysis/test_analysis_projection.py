"""The latent map: exact stability under extend, Procrustes alignment, persistence without pickle, determinism."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from adde_core.analysis import (
    Alignment,
    LatentMap,
    MapConfig,
    PCAProjector,
    UMAPProjector,
    align_procrustes,
    fit_map,
)
from adde_core.analysis.density import fit_pca, knn


def blobs(n_per: int = 150, centers: int = 3, dim: int = 64, seed: int = 0, spread: float = 8.0):
    rng = np.random.default_rng(seed)
    mus = rng.normal(size=(centers, dim)) * spread
    labels = np.repeat(np.arange(centers), n_per)
    X = mus[labels] + rng.normal(size=(len(labels), dim))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), labels


@pytest.fixture(scope="module")
def data():
    X, labels = blobs()
    ids = np.array([f"it-{i:04d}" for i in range(len(X))])
    perm = np.random.default_rng(1).permutation(len(X))
    return X[perm], ids[perm], labels[perm]


@pytest.fixture(scope="module")
def fitted(data):
    X, ids, _ = data
    return fit_map(X[:350], ids[:350], model_key="test-model")


def test_import_is_light():
    heavy = ("umap", "hdbscan", "sklearn", "torch", "streamlit", "pynndescent")
    code = f"import sys, adde_core.analysis\nprint([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


# ------------------------------------------------------------------ Procrustes
@pytest.mark.parametrize("reflect", [False, True])
def test_procrustes_recovers_known_similarity(reflect):
    rng = np.random.default_rng(3)
    src = rng.normal(size=(200, 2))
    theta = 0.7
    rot = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    if reflect:
        rot = rot @ np.array([[1.0, 0.0], [0.0, -1.0]])
    tgt = 2.5 * src @ rot + np.array([3.0, -1.0])
    al = align_procrustes(src, tgt)
    assert al.scale == pytest.approx(2.5, rel=1e-10)
    np.testing.assert_allclose(al.rotation, rot, atol=1e-10)
    np.testing.assert_allclose(al.translation, [3.0, -1.0], atol=1e-10)
    np.testing.assert_allclose(al.apply(src), tgt, atol=1e-5)


def test_procrustes_without_reflection_keeps_orientation():
    src = np.random.default_rng(4).normal(size=(50, 2))
    al = align_procrustes(src, src * np.array([1.0, -1.0]), allow_reflection=False)
    assert np.linalg.det(al.rotation) == pytest.approx(1.0)


def test_alignment_composition_and_round_trip():
    a = Alignment(rotation=np.array([[0.0, 1.0], [-1.0, 0.0]]), scale=2.0, translation=np.array([1.0, 2.0]))
    b = Alignment(rotation=np.array([[1.0, 0.0], [0.0, -1.0]]), scale=0.5, translation=np.array([-3.0, 0.0]))
    pts = np.random.default_rng(5).normal(size=(10, 2))
    np.testing.assert_allclose(a.then(b).apply(pts), b.apply(a.apply(pts)), atol=1e-5)
    c = Alignment.from_array(a.to_array())
    np.testing.assert_array_equal(c.rotation, a.rotation)
    assert c.scale == a.scale


# ------------------------------------------------------------------ the estimator contract
def test_projectors_follow_estimator_contract(data):
    from sklearn.base import clone

    X = data[0]
    proj = UMAPProjector(n_neighbors=7, pca_components=10, random_state=3)
    assert proj.get_params()["n_neighbors"] == 7 and not hasattr(proj, "umap_")
    twin = clone(proj)
    assert twin.get_params() == proj.get_params() and twin is not proj
    with pytest.raises(ValueError, match="no parameter"):
        proj.set_params(bogus=1)
    assert proj.fit(X[:120]) is proj
    assert proj.embedding_.shape == (120, 2) and proj.reference_.shape == (120, 10)
    pca = PCAProjector(n_components=5)
    assert pca.fit(X) is pca and pca.transform(X).shape == (len(X), 5)
    assert pca.explained_variance_ratio_[0] >= pca.explained_variance_ratio_[-1]


def test_fit_pca_matches_sklearn(data):
    from sklearn.decomposition import PCA

    X = data[0].astype(np.float64)
    mean, comps, ratio = fit_pca(X, 4)
    ref = PCA(4, svd_solver="full").fit(X)
    np.testing.assert_allclose(np.abs(comps), np.abs(ref.components_), atol=1e-4)
    np.testing.assert_allclose(ratio, ref.explained_variance_ratio_, rtol=1e-3)


def test_exact_knn_matches_brute_force():
    rng = np.random.default_rng(6)
    A, B = rng.normal(size=(300, 8)).astype(np.float32), rng.normal(size=(250, 8)).astype(np.float32)
    dist, idx = knn(A, B, 5, chunk=64)
    full = np.sqrt(((A[:, None] - B[None]) ** 2).sum(-1))
    ref = np.argsort(full, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(idx, ref)
    np.testing.assert_allclose(dist, np.take_along_axis(full, ref, axis=1), atol=1e-4)
    _, own = knn(A, A, 3, exclude_self=True, chunk=64)
    assert not (own == np.arange(len(A))[:, None]).any()


def test_map_config_validates():
    with pytest.raises(ValueError, match="n_neighbors"):
        MapConfig(n_neighbors=1)
    with pytest.raises(ValueError, match="metric"):
        MapConfig(metric="manhattan")
    with pytest.raises(ValueError, match="knn_method"):
        MapConfig(knn_method="fast")


# ------------------------------------------------------------------ stability
@pytest.mark.parametrize("method", ["umap", "knn"])
def test_extend_keeps_every_earlier_coordinate_bitwise(data, fitted, method):
    X, ids, _ = data
    grown = fitted.extend(X[350:], ids[350:], method=method)
    assert len(grown) == len(X)
    assert np.array_equal(grown.coords[:350], fitted.coords)  # exact, not approximate
    assert np.array_equal(grown.ids[:350], fitted.ids)
    assert set(grown.placement[350:]) == {method}
    assert np.isfinite(grown.coords).all()
    # A second extension keeps the first one's positions too, and known ids are skipped.
    again = grown.extend(X, ids, method=method)
    assert again is grown
    assert grown.fingerprint != fitted.fingerprint and grown.fit_fingerprint == fitted.fit_fingerprint


def test_extended_points_land_near_their_cluster(data, fitted):
    X, ids, labels = data
    grown = fitted.extend(X[350:], ids[350:])
    for c in range(3):
        old = grown.coords[:350][labels[:350] == c]
        new = grown.coords[350:][labels[350:] == c]
        centres = np.stack([grown.coords[:350][labels[:350] == k].mean(0) for k in range(3)])
        nearest = np.argmin(((new[:, None] - centres[None]) ** 2).sum(-1), axis=1)
        assert (nearest == c).mean() > 0.95, (c, old.mean(0))


def test_extend_rejects_bad_input(fitted, data):
    X, ids, _ = data
    with pytest.raises(ValueError, match="ids"):
        fitted.extend(X[350:360], ids[350:355])
    with pytest.raises(ValueError, match="duplicate"):
        fitted.extend(X[350:352], [ids[350], ids[350]])


def test_fit_is_deterministic(data, fitted):
    X, ids, _ = data
    again = fit_map(X[:350], ids[:350], model_key="test-model")
    assert np.array_equal(again.coords, fitted.coords)
    assert again.fingerprint == fitted.fingerprint


def test_refit_is_aligned_to_the_old_map(data, fitted):
    X, ids, _ = data
    # Pretend the map on screen is a rotated, mirrored, scaled and shifted copy of the fit;
    # a refit on the same data must come back in that frame.
    shown = Alignment(rotation=np.array([[0.0, -1.0], [-1.0, 0.0]]), scale=3.0, translation=np.array([10.0, -4.0]))
    from dataclasses import replace

    on_screen = replace(fitted, coords=shown.apply(fitted.coords))
    refitted = on_screen.refit(X[:350], ids[:350])
    np.testing.assert_allclose(refitted.coords, on_screen.coords, atol=1e-3)
    # New items placed by UMAP after the refit land in the same frame as kNN placements.
    grown = refitted.extend(X[350:], ids[350:], method="umap")
    knn_placed = refitted.extend(X[350:], ids[350:], method="knn")
    spread = np.ptp(on_screen.coords, axis=0).max()
    assert np.median(np.linalg.norm(grown.coords[350:] - knn_placed.coords[350:], axis=1)) < 0.1 * spread


# ------------------------------------------------------------------ persistence
def test_save_load_round_trip_without_pickle(tmp_path, data, fitted):
    X, ids, _ = data
    grown = fitted.extend(X[350:400], ids[350:400])
    path = grown.save(tmp_path / "maps" / "map.npz")
    with np.load(path, allow_pickle=False) as z:  # readable with pickle disabled
        assert set(z.files) >= {"ids", "coords", "placement", "reference", "meta"}
    loaded = LatentMap.load(path)
    assert np.array_equal(loaded.coords, grown.coords) and np.array_equal(loaded.ids, grown.ids)
    assert loaded.config == grown.config and loaded.model_key == "test-model"
    assert loaded.fingerprint == grown.fingerprint and not loaded.can_transform
    # After a restart: kNN placement works at once and keeps every position.
    later = loaded.extend(X[400:], ids[400:])
    assert set(later.placement[400:]) == {"knn"}
    assert np.array_equal(later.coords[:400], grown.coords)
    # Restoring the UMAP model by a deterministic refit reproduces the fit exactly.
    restored = loaded.restore_projector(X[::-1], ids[::-1])  # any order; rows are matched by id
    assert restored.can_transform and restored.alignment.scale == 1.0
    with pytest.raises(KeyError, match="missing"):
        loaded.restore_projector(X[10:], ids[10:])
    np.testing.assert_array_equal(restored.extend(X[400:], ids[400:], method="umap").coords,
                                  grown.extend(X[400:], ids[400:], method="umap").coords)


def test_load_reports_unreadable_file(tmp_path):
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="broken.npz"):
        LatentMap.load(bad)
