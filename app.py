"""ADDE dashboard: opens the current project (the demo by default) and routes to the pages."""

import streamlit as st

from adde_core.ui.sidebar import render_sidebar
from adde_core.ui.state import current_project, mark_shell_ran, resume_requested_page

st.set_page_config(page_title="ADDE: dataset enhancement workbench", page_icon=":material/explore:", layout="wide")

mark_shell_ran()
project = current_project()
refresh_sidebar = render_sidebar(project)

pages = st.navigation(
    {
        "Dataset": [
            st.Page("pages/data.py", title="Data", icon=":material/folder_open:", default=True),
            st.Page("pages/explore.py", title="Explore", icon=":material/scatter_plot:"),
            st.Page("pages/diversity.py", title="Diversity", icon=":material/insights:"),
            st.Page("pages/review.py", title="Review", icon=":material/fact_check:"),
            st.Page("pages/trends.py", title="Trends", icon=":material/trending_up:"),
            st.Page("pages/simulations.py", title="Simulations", icon=":material/science:"),
        ],
    }
)
resume_requested_page()
try:
    pages.run()
finally:
    refresh_sidebar()  # a page that stepped the loop or ingested leaves the sidebar current, without a rerun
