"""A small thread-safe memo for fitted models, indexes and arrays, keyed by the fingerprints they were built from."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["Memo"]


class Memo:
    """Values by (kind, key); each kind keeps its ``per_kind`` most recent entries.

    A key must contain the fingerprint of every input the value was built from (the embedding
    set, D_t's ids and labels, the pool's ids, the store revision), so a value built from other
    data is never returned: changed data means a new key, and the old entry ages out.

    Parameters
    ----------
    per_kind : int, default 2
    """

    def __init__(self, per_kind: int = 2) -> None:
        self.per_kind = per_kind
        self._entries: dict[str, OrderedDict[Hashable, Any]] = {}
        self._lock = threading.RLock()
        self.builds: dict[str, int] = {}

    def get(self, kind: str, key: Hashable, build: Callable[[], T]) -> T:
        """The value for ``(kind, key)``, built (under the lock, once) when missing."""
        with self._lock:
            entries = self._entries.setdefault(kind, OrderedDict())
            if key in entries:
                entries.move_to_end(key)
                return entries[key]
            value = build()
            entries[key] = value
            self.builds[kind] = self.builds.get(kind, 0) + 1
            while len(entries) > self.per_kind:
                entries.popitem(last=False)
            return value

    def put(self, kind: str, key: Hashable, value: Any) -> None:
        """Store ``value`` under ``(kind, key)``, replacing what was there."""
        with self._lock:
            entries = self._entries.setdefault(kind, OrderedDict())
            entries[key] = value
            entries.move_to_end(key)
            while len(entries) > self.per_kind:
                entries.popitem(last=False)

    def peek(self, kind: str, key: Hashable) -> Any:
        """The cached value or None, without building."""
        with self._lock:
            return self._entries.get(kind, {}).get(key)

    def clear(self) -> None:
        """Forget everything (e.g. after the project folder was replaced)."""
        with self._lock:
            self._entries.clear()
