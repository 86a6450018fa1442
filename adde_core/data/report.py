"""What an ingest loaded and what it rejected, file by file and row by row."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import pandas as pd

# Lone surrogates (undecodable bytes of a file name or cell) and NUL cannot be stored as JSON text on every
# database, so a report shows them escaped; printable text is left exactly as it was.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def printable(text: str) -> str:
    """``text`` with NUL and undecodable bytes written as ``\\x00`` / ``\\xe9`` escapes, so that it can be stored."""
    if not _UNSTORABLE.search(text):
        return text
    return _UNSTORABLE.sub(lambda m: f"\\x{ord(m.group()) & 0xFF:02x}", text)


@dataclass(frozen=True)
class IngestIssue:
    """One problem found in the input.

    Attributes
    ----------
    file
        The file the problem is in: an image, a manifest or an embeddings file.
    reason
        What is wrong, in words a user can act on.
    row
        1-based data row of the manifest or embeddings file (row 1 is the first row under the
        header), when the problem is in one row.
    field
        The column involved, when there is one.
    severity
        ``"error"``: the item (or whole file) was not loaded. ``"warning"``: it was loaded anyway.

    NUL and undecodable bytes in ``file``, ``reason`` and ``field`` are stored escaped
    (``\\x00``), so that every database can hold the report.
    """

    file: str
    reason: str
    row: int | None = None
    field: str | None = None
    severity: Literal["error", "warning"] = "error"

    def __post_init__(self) -> None:
        for name in ("file", "reason", "field"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, printable(str(value)))


@dataclass
class IngestReport:
    """Summary of one ingest: counts loaded by role, and every issue found."""

    source: str
    n_loaded: int = 0
    loaded_by_role: dict[str, int] = field(default_factory=dict)
    issues: list[IngestIssue] = field(default_factory=list)
    embeddings: dict[str, Any] | None = None

    @property
    def n_rejected(self) -> int:
        """Number of issues that kept an item or file from loading."""
        return sum(1 for i in self.issues if i.severity == "error")

    def to_frame(self) -> pd.DataFrame:
        """Issues as a table with columns file, row, field, severity, reason."""
        cols = ["file", "row", "field", "severity", "reason"]
        return pd.DataFrame([asdict(i) for i in self.issues], columns=cols).astype({"row": "Int64"})

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form, stored with the ingest run so the UI can show it later."""
        return {
            "source": self.source,
            "n_loaded": self.n_loaded,
            "loaded_by_role": self.loaded_by_role,
            "issues": [asdict(i) for i in self.issues],
            "embeddings": self.embeddings,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "IngestReport":
        """Inverse of :meth:`to_dict`."""
        return cls(
            source=data["source"],
            n_loaded=data["n_loaded"],
            loaded_by_role=dict(data.get("loaded_by_role", {})),
            issues=[IngestIssue(**i) for i in data.get("issues", [])],
            embeddings=data.get("embeddings"),
        )
