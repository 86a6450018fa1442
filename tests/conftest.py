"""Shared fixtures: offline settings and small real projects built from the demo asset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never touch the network: named hub weights must fail fast, as they will for offline users.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".cache" / "numba"))

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def small_demo_spec():
    """A scaled-down demo split (1,000 real images) with the same structure as the shipped one."""
    from adde_core.data.demo import DemoSpec

    return DemoSpec(n_per_class=100, val_per_class=10, ood_per_class=6, seed_per_class=12,
                    rare_classes={"zebra": 2, "cat": 3}, rare_subgroup=("horse", "pose", "upright", 1))


@pytest.fixture(scope="session")
def small_demo_dir(tmp_path_factory, small_demo_spec) -> Path:
    """Folder of a built small demo project; tests that write must copy it first."""
    from adde_core.project import Project

    root = tmp_path_factory.mktemp("demo") / "project"
    project, report = Project.create_demo(root, small_demo_spec)
    assert report.n_rejected == 0
    project.close()
    return root


@pytest.fixture(scope="session")
def small_demo_embedded_dir(small_demo_dir, tmp_path_factory) -> Path:
    """The small demo with real EfficientNet-Lite0 embeddings (computed once per test session)."""
    import shutil

    from adde_core.project import Project

    root = tmp_path_factory.mktemp("demo_embedded") / "project"
    shutil.copytree(small_demo_dir, root)
    project = Project.open(root)
    project.embed("efficientnet-lite0")
    project.close()
    return root


@pytest.fixture()
def embedded_project(small_demo_embedded_dir, tmp_path):
    """A private, writable copy of the small embedded demo, opened as a Project."""
    import shutil

    from adde_core.project import Project

    root = tmp_path / "project"
    shutil.copytree(small_demo_embedded_dir, root)
    project = Project.open(root)
    yield project
    project.close()
