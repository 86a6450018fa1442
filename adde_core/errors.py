"""Exception types that carry a message meant for the end user."""

from __future__ import annotations


class AddeError(ValueError):
    """Base class for errors whose message is shown to the user as is.

    It subclasses ValueError so that code catching bad values (and scikit-learn-style
    callers) sees user mistakes as what they are.

    The message must say what went wrong and what to do about it, naming the
    file, row or field involved where there is one.
    """


class WeightsUnavailableError(AddeError):
    """Model weights cannot be found locally and cannot be downloaded."""


class IngestError(AddeError):
    """An input cannot be ingested at all (as opposed to per-row issues)."""


class IterationClosed(AddeError):
    """The iteration a caller meant to close was closed (or is being closed) by someone else."""
