"""ADDE core library: data store, ingest, embeddings, analysis and the refinement loop.

Importing this package is cheap on purpose: heavy dependencies (torch, open_clip,
umap, hdbscan) are imported lazily inside the functions that need them, and
streamlit is never imported outside ``adde_core.ui``.
"""

from adde_core.errors import AddeError

__all__ = ["AddeError", "__version__"]
__version__ = "0.1.0"
