"""Streamlit glue shared by the pages: the open project, the sidebar, progress bars and error display.

This is the only part of ``adde_core`` allowed to import streamlit.
"""
