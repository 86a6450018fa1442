"""The sidebar every page shares: project, counts by role and source, current iteration."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from adde_core.project import Project
from adde_core.ui.text import md, md_table


def render_sidebar(project: Project) -> Callable[[], None]:
    """Show the open project and its counts in the sidebar; return a refresh to call after the page ran.

    app.py draws the sidebar before the page runs (so it shows at once), which leaves it a
    step behind when the page moves the loop on or ingests. The returned function redraws
    it in place, and only when the iteration or the counts changed, so no rerun is needed
    and the page's own messages stay on screen.
    """
    slot = st.sidebar.empty()
    shown = _snapshot(project)
    _draw(project, slot, *shown)

    def refresh() -> None:
        nonlocal shown
        now = _snapshot(project)
        if now[0] != shown[0] or not now[1].equals(shown[1]):
            shown = now
            _draw(project, slot, *now)

    return refresh


def _snapshot(project: Project) -> tuple[int, pd.DataFrame]:
    return project.current_iteration, project.counts()


def _draw(project: Project, slot, iteration: int, counts: pd.DataFrame) -> None:
    with slot.container():
        st.markdown(f"**Project:** {md(project.name)}")
        st.caption(md(project.root))
        st.metric("Iteration", iteration, help="Turns of the refinement loop completed so far.")
        if counts.empty:
            st.caption("No items yet: ingest data on the Data page.")
            return
        table = counts.pivot_table(index="role", columns="source", values="n", aggfunc="sum", fill_value=0)
        table["total"] = table.sum(axis=1)
        table = table.rename(columns={"synthetic": "synth"})  # five columns must fit the sidebar
        # st.table renders real HTML (st.dataframe draws on a canvas), so counts are readable and testable.
        st.table(md_table(table))  # its cells are Markdown
