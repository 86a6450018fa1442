"""The analysis shown on Explore and Diversity, computed once per embedding set and kept in memory."""

from __future__ import annotations

import streamlit as st

from adde_core.analysis import AnalysisResult
from adde_core.project import Project
from adde_core.ui.feedback import progress_bar

_STEPS = ("latent map", "clusters", "sparse regions", "cluster statistics")


@st.cache_resource(show_spinner=False, max_entries=4)
def _analysis(root: str, model_key: str, fingerprint: str, refit_token: int, _project: Project) -> AnalysisResult:
    # Keyed by the embedding fingerprint: new items or a new model give a new analysis,
    # and a cached one is never stale. The UMAP model inside stays in memory with it.
    bar = progress_bar("Analysing")

    def progress(done: int, total: int) -> None:
        bar(done, total)

    return _project.analyze(model_key, refit=refit_token > 0, progress=progress)


def current_analysis(project: Project, model_key: str, *, refit_token: int = 0) -> AnalysisResult:
    """The analysis of ``model_key``'s embeddings, computing it (with a progress bar) on first use."""
    stored = project.embeddings(model_key)
    with st.spinner(f"Mapping and clustering {len(stored.ids):,} items ({', '.join(_STEPS)})…"):
        return _analysis(str(project.root), model_key, stored.fingerprint, refit_token, project)
