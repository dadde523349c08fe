"""Marks a karyotyping station burnt into an exported spread: red contours around debris.

Clinical exports (the ICBR G-band archive among them) carry the lab's drawings in colour over the grey spread:
green boxes and polygons around chromosomes, red contours around debris and bodies that are not part of the
metaphase. The drawings are painted over before the models see the spread (preprocess.py); here an object lying
mostly inside a red contour is left out of the result, and the result says how many were. Stations draw the
contour of a body cut by the image's edge along that edge or stop it there: the frame closes such contours.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from napari_karyo.core.karyotype.infer.preprocess import drawn_pixels
from napari_karyo.core.results import Chromosome

RED = 60  # a pixel is drawn in red when its red channel exceeds green and blue by this much (of 255)
INSIDE = 0.5  # an object with this share of its area inside a red contour is what the lab ringed
# red contours holding more than this share of the objects mark something else (the cell to analyse, say): kept.
# On the 84 ICBR spreads the rings (closed by the frame too) hold at most 8 of 53 objects (cell 166).
MAX_RINGED = 0.25


def red_rings(rgb: np.ndarray) -> np.ndarray:
    """Pixels enclosed by red contours, the contours included (a small gap in a contour is closed). A contour
    that runs off the image is closed by the image's frame: every region the contours cut off from the one
    along most of the frame (the image's background) is enclosed."""
    top = float(np.iinfo(rgb.dtype).max) if rgb.dtype.kind in "ui" else float(max(rgb.max(), 1.0))
    a = rgb[..., :3].astype(np.float32) * (255.0 / top)
    red = (a[..., 0] > a[..., 1] + RED) & (a[..., 0] > a[..., 2] + RED)
    out = np.zeros(red.shape, bool)
    if red.any():  # closed on the drawings' box only (edges repeated, so contours still reach the frame)
        rr, cc = np.nonzero(red)
        box = np.s_[max(rr.min() - 3, 0) : rr.max() + 4, max(cc.min() - 3, 0) : cc.max() + 4]
        out[box] = ndi.binary_closing(np.pad(red[box], 3, mode="edge"), iterations=2)[3:-3, 3:-3]
        regions, n = ndi.label(~out)
        along = np.bincount(
            np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]]), minlength=n + 1
        )
        background = np.argmax(along[1:]) + 1 if along[1:].any() else 0
        out |= (regions > 0) & (regions != background)
    return out


def without_ringed(image: np.ndarray, chromosomes: list[Chromosome]) -> tuple[list[Chromosome], str]:
    """The objects not ringed in red by the lab, and a warning saying how many were left out ("" when none).
    Images without drawings keep every object."""
    ringed = red_rings(image) if image.ndim == 3 and image.shape[-1] >= 3 else None
    if ringed is None or not ringed.any():
        return chromosomes, ""
    keep = []
    for c in chromosomes:
        r0, c0, r1, c1 = c.bbox
        if ringed[r0:r1, c0:c1][c.mask[: r1 - r0, : c1 - c0]].mean() < INSIDE:
            keep.append(c)
    left_out = len(chromosomes) - len(keep)
    # the drawings test (a full-image pass, also made by preprocessing) only when it would change the result
    if not left_out or drawn_pixels(image) is None:
        return chromosomes, ""
    if left_out > MAX_RINGED * len(chromosomes):
        return chromosomes, (
            f"red contours drawn on the image hold {left_out} of the {len(chromosomes)} objects: too many to be "
            "debris, so all were kept; check what the red marks mean"
        )
    return keep, (
        f"{left_out} object(s) inside red contours drawn on the image were left out (the lab's mark for debris); "
        "to keep them, tick 'keep objects the lab ringed in red' in the Karyotype dock, or analyse with --keep-ringed"
    )
