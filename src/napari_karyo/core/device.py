"""Pick the compute device: CUDA, then Apple MPS, then CPU. Shown to the user wherever work runs."""

from __future__ import annotations

import os

from napari_karyo.core.errors import KaryoError

DEVICE_CHOICES = ("auto", "cpu", "cuda")  # what the docks offer; the CLI also takes cuda:N and mps


def pick_device(requested: str | None = None):
    """torch.device for `requested` ('cuda', 'cuda:1', 'mps', 'cpu') or the best available one.

    Asking for a GPU that is absent is an error with a fix, not a silent fallback.
    """
    import torch

    req = (requested or os.environ.get("NAPARI_KARYO_DEVICE") or "auto").lower()
    if req == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(req)
    except (RuntimeError, ValueError) as exc:
        raise KaryoError(f"unknown device {requested!r}; use auto, cpu, cuda, cuda:N or mps") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise KaryoError(f"{req}: no CUDA GPU is available on this machine; use --device cpu (or auto)")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise KaryoError(f"{req}: this machine has {torch.cuda.device_count()} CUDA GPU(s), numbered from 0")
    if device.type == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise KaryoError(f"{req}: Apple MPS is not available on this machine; use --device cpu (or auto)")
    if device.type not in ("cpu", "cuda", "mps"):
        raise KaryoError(f"unsupported device {requested!r}; use auto, cpu, cuda, cuda:N or mps")
    return device


def describe(device) -> str:
    """Human-readable device name, e.g. 'cuda:0 (NVIDIA H100)' or 'cpu (2 threads)'."""
    import torch

    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)
