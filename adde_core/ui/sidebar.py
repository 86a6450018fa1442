"""The sidebar every page shares: project, counts by role and source, current iteration."""

from __future__ import annotations

import streamlit as st

from adde_core.project import Project


def render_sidebar(project: Project) -> None:
    """Show the open project and its counts in the sidebar."""
    with st.sidebar:
        st.markdown(f"**Project:** {project.name}")
        st.caption(str(project.root))
        st.metric("Iteration", project.current_iteration, help="Turns of the refinement loop completed so far.")
        counts = project.counts()
        if counts.empty:
            st.caption("No items yet: ingest data on the Data page.")
            return
        table = counts.pivot_table(index="role", columns="source", values="n", aggfunc="sum", fill_value=0)
        table["total"] = table.sum(axis=1)
        table = table.rename(columns={"synthetic": "synth"})  # five columns must fit the sidebar
        # st.table renders real HTML (st.dataframe draws on a canvas), so counts are readable and testable.
        st.table(table)
