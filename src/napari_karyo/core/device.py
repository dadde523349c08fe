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
    if req.startswith("cuda") and not torch.cuda.is_available():
        raise KaryoError("no CUDA GPU is available on this machine; use --device cpu (or auto)")
    if req == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise KaryoError("Apple MPS is not available on this machine; use --device cpu (or auto)")
    return torch.device(req)


def describe(device) -> str:
    """Human-readable device name, e.g. 'cuda:0 (NVIDIA H100)' or 'cpu (2 threads)'."""
    import torch

    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)
