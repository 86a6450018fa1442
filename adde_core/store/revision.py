"""Narrow revision tokens: what part of the store a cached value was read from, so it is rebuilt only when that changes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from adde_core.store.models import EmbeddingSet, Item, Iteration

if TYPE_CHECKING:
    from adde_core.store.database import Store

__all__ = ["items_revision"]


def items_revision(store: "Store", model_key: str | None = None) -> tuple[Any, ...]:
    """A token that changes whenever the item rows or ``model_key``'s embedding set change.

    Without ``model_key`` the token covers the item rows alone (its embedding part is None).

    Items are only ever inserted (``created_at``, count) or rewritten by a fold-in (role and
    label, in the same transaction that opens the next iteration), so the count, the newest
    ``created_at``, the latest iteration, the role counts and the embedding fingerprint cover
    every change to what :func:`adde_core.loop.store_storage.item_arrays` reads. Decisions and
    candidate sets are deliberately left out: they change with every review click, the item
    arrays do not.
    """
    with store.transaction() as s:
        return (
            s.scalar(select(func.count()).select_from(Item)),
            s.scalar(select(func.max(Item.created_at))),
            s.scalar(select(func.max(Iteration.index))),
            None if model_key is None else
            s.scalar(select(EmbeddingSet.fingerprint).where(EmbeddingSet.model_key == model_key)),
            tuple(s.execute(select(Item.role, func.count()).group_by(Item.role).order_by(Item.role)).all()),
        )
