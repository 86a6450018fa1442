"""The panel that describes a selection of items: counts, label and subgroup mix, images, actions."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from adde_core.ui.grid import image_grid
from adde_core.ui.text import md, md_columns, md_table


def selection_panel(items: pd.DataFrame, ids: list[str], *, subgroup: str | None, title: str = "Selection") -> None:
    """Describe the selected items; ``items`` needs ``id``, ``role``, ``label`` and ``path`` columns.

    Labels, ids and attribute values are data: ``st.table`` cells and image captions are
    Markdown, so they go through :mod:`adde_core.ui.text` first.
    """
    chosen = items[items["id"].isin(ids)]
    st.subheader(f"{title}: {len(chosen):,} items")
    if chosen.empty:
        st.caption("Box- or lasso-select points on the map, click one, or pick a region from the list.")
        return
    c1, c2, c3 = st.columns(3)
    c1.markdown("**By role**")
    c1.table(md_table(chosen["role"].value_counts().rename("n")))
    c2.markdown("**Label mix** (labelled items)")
    labels = chosen["label"].dropna().value_counts().rename("n")
    c2.table(md_table(labels)) if not labels.empty else c2.caption("No labelled items: pool labels are unknown.")
    if subgroup and subgroup in chosen:
        c3.markdown(f"**{md(subgroup)} mix**")
        c3.table(md_table(chosen[subgroup].fillna("(none)").astype(str).value_counts().rename("n")))
    st.markdown("**Selected ids**")
    st.code(" ".join(chosen["id"].head(200)) + (" …" if len(chosen) > 200 else ""), language=None, wrap_lines=True)
    image_grid(md_columns(chosen.head(40), ("id", "label", "role")), columns=10, caption_fields=("label", "role"))
