"""Exception types that carry a message meant for the end user."""

from __future__ import annotations


class AddeError(Exception):
    """Base class for errors whose message is shown to the user as is.

    The message must say what went wrong and what to do about it, naming the
    file, row or field involved where there is one.
    """


class WeightsUnavailableError(AddeError):
    """Model weights cannot be found locally and cannot be downloaded."""


class IngestError(AddeError):
    """An input cannot be ingested at all (as opposed to per-row issues)."""
