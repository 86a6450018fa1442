"""Importing adde_core.metrics stays light: no torch, streamlit, umap or hdbscan (nor sklearn, pandas)."""

from __future__ import annotations

import subprocess
import sys


def test_import_does_not_pull_heavy_packages():
    code = (
        "import sys, adde_core.metrics\n"
        "heavy = ('torch', 'streamlit', 'umap', 'hdbscan', 'sklearn', 'pandas')\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
