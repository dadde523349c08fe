"""Loading torch inside napari's GUI process."""

from __future__ import annotations


def import_backends() -> None:
    """Import torch and torchvision's detection ops (on the GUI's main thread, before a worker needs them).

    In napari's process torch must not load triton: triton's bundled LLVM crashes the process when Mesa's OpenGL
    (llvmpipe, also what Xvfb uses) has loaded its own LLVM first, as napari's canvas has by then. napari-karyo
    never uses triton (it serves torch.compile on GPUs); with `import triton` failing, torch runs without it.
    """
    import sys

    if "torch" not in sys.modules and "triton" not in sys.modules:
        sys.modules["triton"] = None  # makes `import triton` raise ImportError
    import torchvision.models.detection
    import torchvision.ops  # noqa: F401
