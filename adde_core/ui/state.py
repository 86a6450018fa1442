"""Which project the app has open, kept across reruns and page switches."""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from adde_core.cli import DEFAULT_DEMO_PROJECT
from adde_core.project import PROJECT_FILE, Project
from adde_core.ui.feedback import progress_bar

_KEY = "project_path"
_SHELL = "_adde_shell_ran"
_NEXT = "_adde_next_page"


def mark_shell_ran() -> None:
    """Called by app.py on every run: the pages know the shell (sidebar, navigation) is in place."""
    st.session_state[_SHELL] = True


def require_shell(page: str) -> None:
    """Make a page opened by direct URL go through app.py first.

    Streamlit treats an app with a ``pages/`` folder as an old-style multipage app until
    app.py has called ``st.navigation`` once; a first visit straight to ``/explore``
    would run the page alone, without the sidebar or the open project. We route such a
    visit through app.py, which then switches back to the requested page.
    """
    if not st.session_state.get(_SHELL):
        st.session_state[_NEXT] = page
        st.switch_page("app.py")


def resume_requested_page() -> None:
    """In app.py, after ``st.navigation``: continue to the page a direct-URL visit asked for."""
    page = st.session_state.pop(_NEXT, None)
    if page:
        st.switch_page(page)


def default_project_path() -> Path:
    """``$ADDE_PROJECT`` if set, else the demo project folder."""
    return Path(os.environ.get("ADDE_PROJECT", DEFAULT_DEMO_PROJECT)).resolve()


@st.cache_resource(show_spinner=False)
def _open(path: str) -> Project:
    # One Project (one connection pool) per folder, shared by all sessions: the
    # database, not this object, holds the state, so sharing it is safe.
    return Project.open(path)


def current_project() -> Project:
    """The project this session works on; builds the demo on first launch if it is missing."""
    path = Path(st.session_state.get(_KEY) or default_project_path())
    if not (path / PROJECT_FILE).exists() and path == default_project_path():

        with st.status("Building the Animal-MNIST demo project (first launch only)…", expanded=True) as status:
            project, report = Project.create_demo(path, progress=progress_bar("Writing and validating images"))
            project.close()
            status.update(label=f"Demo project ready: {report.n_loaded} items", state="complete", expanded=False)
    st.session_state[_KEY] = str(path)
    return _open(str(path))


def switch_project(path: Path | str, *, create: bool = False) -> Project:
    """Open (or create) the project at ``path`` and make it this session's project."""
    project = Project.create(path) if create else Project.open(path)
    project.close()
    st.session_state[_KEY] = str(Path(path).resolve())
    return _open(str(Path(path).resolve()))
