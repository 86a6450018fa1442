"""Acquire candidates for a region: pool retrieval (exact and approximate nearest neighbours).

Generation lives in :mod:`adde_core.acquisition.generation` and the quality gate in
:mod:`adde_core.acquisition.quality_gate`; :mod:`adde_core.acquisition.acquire` ties them to a
project (``Project.acquire``). They are not imported here so that this package stays light.
"""

from adde_core.acquisition.retrieval import VectorIndex, exact_knn, recall_at_k, retrieve_for_region

__all__ = ["VectorIndex", "exact_knn", "recall_at_k", "retrieve_for_region"]
