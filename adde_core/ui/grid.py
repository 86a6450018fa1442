"""An image grid with captions, used to browse items wherever the app shows them."""

from __future__ import annotations

import pandas as pd
import streamlit as st


def image_grid(frame: pd.DataFrame, *, columns: int = 10, caption_fields: tuple[str, ...] = ("label",),
               width: int = 96) -> None:
    """Show the items of ``frame`` (needs ``id`` and ``path``) as a grid of images with short captions.

    Items without an image file (embedding-only items) show their id instead.
    """
    cols = st.columns(columns)
    for k, row in enumerate(frame.itertuples(index=False)):
        parts = [str(getattr(row, f)) for f in caption_fields if isinstance(getattr(row, f, None), str)]
        caption = " · ".join([row.id, *parts]) if parts else row.id
        with cols[k % columns]:
            if isinstance(row.path, str):
                st.image(row.path, caption=caption, width=width)
            else:
                st.caption(f"{caption} (no image)")
