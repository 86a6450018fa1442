"""Persistence for ADDE projects: SQLAlchemy tables plus array files for embeddings."""

from adde_core.store.database import Store
from adde_core.store.models import ITEM_ROLES, ITEM_SOURCES, ItemRecord

__all__ = ["ITEM_ROLES", "ITEM_SOURCES", "ItemRecord", "Store"]
