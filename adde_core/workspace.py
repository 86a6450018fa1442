"""A project's folder and store as plain data: what the stages below the Project façade are given."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adde_core.store.database import Store

__all__ = ["Workspace"]


@dataclass(frozen=True, eq=False)
class Workspace:
    """Where a project's files live (``root``), its database (``store``) and its ``name``.

    Item paths under the data root (``data_root``, by default ``root``) are stored relative to
    it, so the folder can move and teammates sharing one database, each with the shared data
    mounted as their data root, resolve the same files; other paths are stored absolute.
    """

    root: Path
    store: Store
    name: str = ""
    data_root: Path | None = None

    @property
    def base(self) -> Path:
        """The folder item paths are relative to: ``data_root`` when set, else the project folder."""
        return self.data_root or self.root

    @property
    def data_dir(self) -> Path:
        """Where files that belong to the project (the demo's images, generated images) are written."""
        return self.base / "data"

    @property
    def cache_dir(self) -> Path:
        """Caches that can be rebuilt (embedding shards, trained generators)."""
        return self.root / "cache"

    def to_uri(self, path: Path | str) -> str:
        """A path inside the project relative to it, others absolute (POSIX separators)."""
        path = Path(path).resolve()
        try:
            return path.relative_to(self.base).as_posix()
        except ValueError:
            return path.as_posix()

    def resolve_uri(self, uri: str) -> Path:
        """Inverse of :meth:`to_uri`."""
        path = Path(uri)
        return path if path.is_absolute() else self.base / path

    def resolve_uris(self, uris: Iterable[Any]) -> list[str | None]:
        """:meth:`resolve_uri` of each string as a ``str`` (None for anything else), for whole item tables.

        Plain string joins: two ``Path`` objects per item cost 0.3 s per read of the demo's 9,716
        items, and every restart reads them. ``to_uri`` writes clean POSIX paths, so joining is exact.
        """
        base = str(self.base)
        return [(u if u.startswith("/") else f"{base}/{u}") if isinstance(u, str) else None for u in uris]
