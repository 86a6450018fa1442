"""A fingerprint of the installed ``adde_core`` source, for results stored on disk that code changes can invalidate."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

__all__ = ["code_fingerprint"]


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """SHA-1 over every ``.py`` file of the package (relative path and bytes), computed once per process.

    A stored plan is a function of the data *and* of the code that ranked it (region detection,
    failure scores, the adaptive state's reading). Keying it by a format number alone relies on
    someone remembering to bump it; hashing the source (about 200 files, a few ms) makes any
    edit or upgrade recompute it.
    """
    root = Path(__file__).resolve().parent
    h = hashlib.sha1()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()
