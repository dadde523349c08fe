"""The lesion classifier's working grid: one per stack, the reference stain at `work_factor` of full resolution (at
most `WORK_SIDE` px), so whole slides stay in memory. Annotations, class maps and probability maps all live on it;
`registered_stains` puts every stain there (warped through its transform, optionally colour-normalised)."""

from __future__ import annotations

import numpy as np

from napari_karyo.core.errors import LesionError
from napari_karyo.core.pathology.reference_frame import warped_to_reference
from napari_karyo.core.pathology.stack import StainStack
from napari_karyo.core.pathology.stain import normalise
from napari_karyo.core.pathology.tissue import optical_density, tissue_mask

WORK_SIDE = 4096
NORMALISATIONS = ("none", "macenko", "vahadane")


def stack_label(stack: StainStack) -> str:
    """The stack's short name: its file or folder name without suffixes."""
    return stack.path.name.split(".")[0] if stack.path else "stack"


def work_factor(stack: StainStack) -> float:
    return min(1.0, WORK_SIDE / max(stack[stack.reference].shape))


def work_shape(stack: StainStack) -> tuple[int, int]:
    f = work_factor(stack)
    h, w = stack[stack.reference].shape
    return round(h * f), round(w * f)


def _as_patch_dtype(img: np.ndarray, dtype, rgb: bool) -> np.ndarray:
    """uint8 (RGB and 8-bit grey), uint16 kept, float scaled to [0, 1]: what the classifier's input expects."""
    if rgb or dtype == np.uint8:
        top = float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0
        return np.clip(np.rint(img * (255.0 / top)), 0, 255).astype(np.uint8)
    if dtype == np.uint16:
        return np.clip(np.rint(img), 0, 65535).astype(np.uint16)
    lo, hi = float(np.min(img)), float(np.max(img))
    return ((img - lo) / max(hi - lo, 1e-6)).astype(np.float32)


def registered_stains(stack: StainStack, normalisation: str = "none") -> dict[str, np.ndarray]:
    """Every stain warped onto the working grid (its registration transform), RGB stains colour-normalised
    (Macenko or Vahadane, each to the bundled H&E target so one stain looks alike across patients) when asked.
    A stain without a transform is taken as already aligned."""
    if normalisation not in NORMALISATIONS:
        raise LesionError(f"normalisation {normalisation!r} must be one of {NORMALISATIONS}")
    f = work_factor(stack)
    out = {}
    for name in stack.names:
        stain = stack[name]
        img = _as_patch_dtype(warped_to_reference(stack, name, f), stain.levels[0].dtype, stain.rgb)
        if stain.rgb and normalisation != "none":
            img = normalise(
                img[..., :3], "H&E", normalisation, what=f"stain {name!r} of {stack_label(stack)}"
            )
        out[name] = img
    if len({a.ndim for a in out.values()}) > 1:  # grey and RGB stains mixed: grey ones repeated to RGB
        out = {n: a if a.ndim == 3 else np.repeat(a[..., None], 3, -1) for n, a in out.items()}
    return out


def tissue(stains: dict[str, np.ndarray], reference: str) -> np.ndarray | None:
    """Tissue mask of the reference stain (None when none is found: then the whole image is classified)."""
    mask = tissue_mask(optical_density(np.asarray(stains[reference], np.float32)))
    return mask if mask.any() else None
