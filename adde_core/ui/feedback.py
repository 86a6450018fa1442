"""Progress bars and error display that keep tracebacks out of the UI."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

from adde_core.errors import AddeError
from adde_core.ui.text import md

T = TypeVar("T")
log = logging.getLogger("adde")


def progress_bar(label: str) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback that drives an ``st.progress`` bar."""
    bar = st.progress(0.0, text=label)

    def update(done: int, total: int) -> None:
        bar.progress(min(done / total, 1.0) if total else 1.0, text=f"{label}: {done:,}/{total:,}")

    return update


def run_action(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """Run a user-triggered action; show errors as one readable line, never as a traceback.

    ``AddeError`` messages are written for users and shown as they are, as text: they quote
    file names, ids and labels, which must not render as Markdown. Anything else is a bug:
    the traceback goes to the server log and the user gets its one-line summary.
    """
    try:
        return fn(*args, **kwargs)
    except AddeError as exc:
        st.error(md(exc))
    except Exception as exc:  # noqa: BLE001 - the UI must survive any failure of an action
        log.exception("action %s failed", getattr(fn, "__name__", fn))
        st.error(f"{type(exc).__name__}: {md(exc)} (details in the server log)")
    return None
