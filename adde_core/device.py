"""Resolve a user's device preference ("auto", "cpu", "cuda") to a torch device."""

from __future__ import annotations

from typing import TYPE_CHECKING

from adde_core.errors import AddeError

if TYPE_CHECKING:
    import torch

_CHOICES = "'auto', 'cpu', 'cuda' or 'cuda:<index>'"


def resolve_device(preference: str = "auto") -> torch.device:
    """Return the torch device to run models on.

    Parameters
    ----------
    preference : str, default "auto"
        ``"auto"`` picks the first CUDA GPU when one is usable and the CPU
        otherwise; ``"cpu"``, ``"cuda"`` and ``"cuda:<index>"`` are explicit.

    Returns
    -------
    torch.device

    Raises
    ------
    AddeError
        If the preference is not recognised, or CUDA is requested on a machine
        where torch cannot use a GPU.
    """
    import torch

    choice = str(preference).strip().lower()
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cpu":
        return torch.device("cpu")
    if choice == "cuda" or choice.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise AddeError(
                f"Device {preference!r} was requested but torch cannot use a CUDA GPU on this "
                f"machine (torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}). "
                "Use device='cpu' or device='auto'."
            )
        try:
            device = torch.device(choice)
        except RuntimeError as exc:
            raise AddeError(f"Invalid device {preference!r}: use {_CHOICES}.") from exc
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise AddeError(
                f"Device {preference!r} was requested but only {torch.cuda.device_count()} CUDA GPU(s) are visible."
            )
        return device
    raise AddeError(f"Unknown device {preference!r}: use {_CHOICES}.")
