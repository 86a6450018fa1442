"""Find OpenCLIP pretrained weights in the local Hugging Face cache, or download them with a bounded wait."""

from __future__ import annotations

import os
import threading
from typing import Any

from adde_core.errors import WeightsUnavailableError

# open_clip's default weight file names on the hub (open_clip/constants.py).
_HF_WEIGHTS_NAME = "open_clip_pytorch_model.bin"
_HF_SAFE_WEIGHTS_NAME = "open_clip_model.safetensors"
_TRUE_VALUES = {"1", "ON", "YES", "TRUE"}

PROBE_TIMEOUT_S = 5.0
"""Longest wait for the hub to answer before weights are declared unavailable.

huggingface_hub retries failed requests with back-off for about 25 s (46 s
through open_clip); one short probe without retries fails fast instead.
"""


def hub_offline() -> bool:
    """Return True when Hugging Face hub access is disabled.

    The environment is read at call time, because huggingface_hub reads
    ``HF_HUB_OFFLINE`` only once, when it is first imported.

    Returns
    -------
    bool
    """
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return constants.HF_HUB_OFFLINE or any((flag or "").upper() in _TRUE_VALUES for flag in flags)


def fetch_pretrained(model_name: str, tag: str, cfg: dict[str, Any]) -> str:
    """Return a local checkpoint path for an open_clip pretrained tag.

    The local Hugging Face cache is checked first, without network access.
    On a miss, offline mode fails at once; otherwise one probe request (no
    retries, :data:`PROBE_TIMEOUT_S`) checks that the hub answers before the
    download starts.

    Parameters
    ----------
    model_name : str
        open_clip model name, for messages.
    tag : str
        Pretrained tag, for messages.
    cfg : dict
        The tag's entry from ``open_clip.pretrained.get_pretrained_cfg``.

    Returns
    -------
    str
        Path to the checkpoint file.

    Raises
    ------
    WeightsUnavailableError
        If the weights are not cached and cannot be downloaded now. The
        message says how to supply them locally.
    """
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    hub_path = cfg.get("hf_hub", "")
    if not hub_path:
        raise WeightsUnavailableError(_how_to_supply(model_name, tag, None, "the tag names no hub repository"))
    repo_id, filename = os.path.split(hub_path)
    candidates = _candidate_files(filename or _HF_WEIGHTS_NAME)
    for candidate in candidates:
        cached = try_to_load_from_cache(repo_id, candidate)
        if isinstance(cached, str):
            return cached
    if hub_offline():
        reason = "they are not in the local Hugging Face cache and HF_HUB_OFFLINE is set"
        raise WeightsUnavailableError(_how_to_supply(model_name, tag, repo_id, reason, candidates[0]))
    for candidate in candidates:
        if _probe(repo_id, candidate, model_name, tag):
            return hf_hub_download(repo_id, candidate)
    reason = f"the repository has none of the files {candidates}"
    raise WeightsUnavailableError(_how_to_supply(model_name, tag, repo_id, reason, candidates[0]))


def _candidate_files(filename: str) -> list[str]:
    """List the safetensors alternative first, as open_clip does, then the named file."""
    if filename == _HF_WEIGHTS_NAME:
        return [_HF_SAFE_WEIGHTS_NAME, filename]
    if filename.endswith((".bin", ".pth")):
        return [filename[:-4] + ".safetensors", filename]
    return [filename]


def _probe(repo_id: str, filename: str, model_name: str, tag: str) -> bool:
    """Return whether the hub has the file; raise when the hub does not answer in time."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import EntryNotFoundError

    outcome: dict[str, BaseException | None] = {}

    def ask() -> None:
        try:
            get_hf_file_metadata(hf_hub_url(repo_id, filename), timeout=PROBE_TIMEOUT_S, retry_on_errors=False)
            outcome["error"] = None
        except Exception as exc:  # handed over to the waiting thread
            outcome["error"] = exc

    # A thread bounds the whole probe, DNS resolution included, which socket
    # timeouts do not cover.
    thread = threading.Thread(target=ask, name="adde-hub-probe", daemon=True)
    thread.start()
    thread.join(PROBE_TIMEOUT_S + 1.0)
    if "error" not in outcome:
        reason = f"the Hugging Face hub did not answer within {PROBE_TIMEOUT_S:.0f} s"
        raise WeightsUnavailableError(_how_to_supply(model_name, tag, repo_id, reason, filename))
    error = outcome["error"]
    if error is None:
        return True
    if isinstance(error, EntryNotFoundError):
        return False
    reason = f"the Hugging Face hub cannot be reached ({type(error).__name__}: {error})"
    raise WeightsUnavailableError(_how_to_supply(model_name, tag, repo_id, reason, filename)) from error


def _how_to_supply(model_name: str, tag: str, repo_id: str | None, reason: str, filename: str = "") -> str:
    """Build the user-facing message that says how to provide weights without network access."""
    download = ""
    if repo_id:
        download = (
            f"  2. on a machine with network access run `hf download {repo_id} {filename}` "
            f"(`huggingface-cli download {repo_id} {filename}` with huggingface_hub < 1.0), "
            "copy ~/.cache/huggingface/hub to the same place on this machine and set "
            "HF_HUB_OFFLINE=1; the tag then loads from that cache;\n"
        )
    return (
        f"OpenCLIP weights {model_name!r} / {tag!r} are unavailable: {reason}.\n"
        "Supply them locally in one of these ways:\n"
        "  1. pass pretrained='/path/to/open_clip_model.safetensors' (or a .bin/.pt/.pth "
        f"checkpoint for {model_name}), or pretrained='local-dir:/dir' for a folder holding "
        "open_clip_config.json and the weights;\n"
        f"{download}"
        "  3. or use the offline default embedder 'efficientnet-lite0', which needs no download."
    )
