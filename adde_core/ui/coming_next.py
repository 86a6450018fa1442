"""Placeholder body for pages whose features are planned but not built yet (no numbers shown)."""

from __future__ import annotations

import streamlit as st


def coming_next(title: str, what: list[str], issue: int) -> None:
    """Say plainly that the page is not built yet and what it will do."""
    st.title(title)
    st.info(f"**Coming next** (issue #{issue}). Nothing on this page is computed yet, so it shows no numbers.")
    st.markdown("This page will:\n" + "\n".join(f"- {w}" for w in what))
