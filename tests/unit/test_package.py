"""Package hygiene: import cost and the streamlit boundary."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "adde_core"
HEAVY = ("torch", "torchvision", "open_clip", "streamlit", "umap", "hdbscan", "sklearn")


def test_import_adde_core_is_light():
    code = (
        "import sys, adde_core, adde_core.project, adde_core.cli, adde_core.data.ingest, adde_core.data.demo, "
        "adde_core.embedding, adde_core.metrics\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"heavy modules imported at package import: {out}"


def test_streamlit_is_imported_only_in_ui():
    offenders = []
    for path in CORE.rglob("*.py"):
        if "ui" in path.relative_to(CORE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "streamlit" or n.startswith("streamlit.") for n in names):
                offenders.append(str(path))
    assert offenders == []


def test_no_unsafe_unpickling_in_core():
    for path in CORE.rglob("*.py"):
        text = path.read_text()
        assert "pickle.load" not in text, path
        assert "allow_pickle=True" not in text, path
