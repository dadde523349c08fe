"""A stack's stains in the reference stain's frame: resampled through their transforms (the working grids of the
lesion classifier, the resampled views and checkerboards of the GUI), a bright-field stain as uint8 RGB at a bounded
size, a transform refitted from landmark pairs (the user's fix of a bad registration), and the transforms of a
file matched to a stack's stains."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_karyo.core.pathology.stack import StainStack
from napari_karyo.core.pathology.stain import StainError
from napari_karyo.core.pathology.transform import Transform, TransformError, load_transforms

NORMALISE_SIDE = 4096  # stains are normalised at most this large (the level that fits): memory stays bounded


def white(dtype) -> float:
    """The brightest value of an image type (glass in bright-field images)."""
    return float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0


def warped_to_reference(stack: StainStack, name: str, factor: float) -> np.ndarray:
    """Stain `name` resampled into the reference frame at `factor` of full resolution (float32).

    RGB (bright-field) stains are warped as optical absorbance (white - image) so that what lies outside the
    moving section comes out as glass (white), not black."""
    stain = stack[name]
    ref_shape = stack[stack.reference].shape
    small_shape = (round(ref_shape[0] * factor), round(ref_shape[1] * factor))
    moving = stain.at_factor(factor)
    t = stack.transform(name).rescaled(factor)
    if not stain.rgb:
        return t.warp_image(moving, small_shape, order=1)
    top = white(stain.levels[0].dtype)
    return top - t.warp_image(top - moving, small_shape, order=1)


def stain_rgb(stack: StainStack, name: str, max_side: int = NORMALISE_SIDE) -> tuple[np.ndarray, float]:
    """uint8 RGB of a bright-field stain at <= max_side (its own pixels), and its factor of full resolution."""
    stain = stack[name]
    if not stain.rgb:
        raise StainError(f"stain {name!r} is grey: stain separation needs bright-field RGB images")
    factor = min(1.0, max_side / max(stain.shape))
    return np.clip(stain.at_factor(factor), 0, 255).astype(np.uint8), factor


def refit_from_landmarks(stack: StainStack, name: str, fixed_rc, moving_rc) -> Transform:
    """Replace stain `name`'s transform by the least-squares fit of the landmark pairs (affine with >= 3 pairs,
    rigid with 2)."""
    fixed_rc, moving_rc = np.asarray(fixed_rc)[:, -2:], np.asarray(moving_rc)[:, -2:]
    kind = "affine" if min(len(fixed_rc), len(moving_rc)) >= 3 else "rigid"
    t = Transform.from_landmarks(fixed_rc, moving_rc, kind=kind)
    stack.transforms[name] = t
    return t


def _file_stem(stain) -> str:
    return Path(stain.source.split("#")[0]).name.split(".")[0] if stain.source else ""


def use_transforms(stack: StainStack, path: str | Path) -> None:
    """Give the stack the transforms of a file (`napari-karyo register --out`, or saved by the napari widget).

    Entries are matched to stains by stain name, else by the stain's file stem (what `register` names them by);
    the file's reference becomes the stack's. An entry matching no stain is an error naming the file."""
    transforms, meta = load_transforms(path)
    by_key = {}
    for key in transforms:
        found = [s.name for s in stack.stains if s.name == key] or [
            s.name for s in stack.stains if _file_stem(s) == key
        ]
        if len(found) != 1:
            raise TransformError(
                f"{path}: transform {key!r} matches {'no' if not found else 'more than one'} stain of "
                f"{stack.path or 'the stack'} (stains {', '.join(stack.names)}); register this stack's images"
            )
        by_key[key] = found[0]
    reference = meta.get("reference")
    if reference is not None:
        if reference not in by_key:
            raise TransformError(f"{path}: its reference stain {reference!r} has no entry in the file")
        stack.set_reference(by_key[reference])
    stack.transforms = {by_key[k]: t for k, t in transforms.items()}
