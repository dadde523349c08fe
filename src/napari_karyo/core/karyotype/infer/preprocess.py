"""Bring any spread to what the model was trained on: grey, bright chromosomes on a dark background,
intensities in [0, 1], chromosomes about `TARGET_WIDTH` pixels wide.

G-banded spreads (dark on bright) are inverted; DAPI and Q-band (bright on dark) are kept. Annotation drawings
burnt into an exported grey spread (coloured boxes and contours) are painted over first.
"""

from __future__ import annotations

import numpy as np

from napari_karyo.core.storage.images import to_grey

TARGET_WIDTH = 13.0  # median chromosome width (px) in the training data (BioImLab 13-16, M-FISH 12)
# A pixel whose channels differ by more than this (of 255) is a drawing when the rest of the image is grey; the
# drawings of clinical exports cover < 2% of a spread, so more than DRAWING_MAX_SHARE means a colour image.
DRAWING_CHROMA = 24
DRAWING_MAX_SHARE = 0.05


def drawn_pixels(image: np.ndarray) -> np.ndarray | None:
    """The coloured pixels of annotation drawings (boxes, contours, text) a karyotyping station burnt into a grey
    spread; None for images without any: grey ones, true-colour ones (too many coloured pixels) and pseudo-colour
    ones (the grey pixels are only the background, not the chromosomes)."""
    if image.ndim != 3 or image.shape[-1] < 3:
        return None
    rgb = image[..., :3]
    top = float(np.iinfo(rgb.dtype).max) if rgb.dtype.kind in "ui" else float(max(rgb.max(), 1.0))
    chroma = (rgb.max(-1).astype(np.float32) - rgb.min(-1)) * (255.0 / top)
    drawn = chroma > DRAWING_CHROMA
    if not drawn.any() or drawn.mean() > DRAWING_MAX_SHARE:
        return None
    genuine = rgb[..., 0][~drawn].astype(np.float32)
    lo, hi = np.percentile(genuine, (1, 99))
    return drawn if hi - lo >= 0.25 * top else None


def without_drawings(image: np.ndarray) -> np.ndarray:
    """An RGB(A) spread whose genuine pixels are grey, with the drawn pixels (`drawn_pixels`) replaced by their
    nearest grey pixel. Images without drawings come back as they are."""
    drawn = drawn_pixels(image)
    if drawn is None:
        return image
    from scipy import ndimage as ndi

    drawn = ndi.binary_dilation(drawn)  # the anti-aliased rim of a line is tinted too
    nearest = ndi.distance_transform_edt(drawn, return_distances=False, return_indices=True)
    return image[..., :3][tuple(nearest)]


def normalise_intensity(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """Grey float32 in [0, 1], bright objects on dark background. Returns (image, inverted)."""
    grey = to_grey(without_drawings(image))
    lo, hi = np.percentile(grey, (0.5, 99.8))
    if hi <= lo:
        lo, hi = float(grey.min()), float(grey.max())
    out = np.clip((grey - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)
    # The background is most of a spread: if the typical pixel is bright, objects are dark (G-band).
    inverted = bool(np.median(out) > 0.5)
    if inverted:
        out = 1.0 - out
    return out, inverted


def estimate_width(norm: np.ndarray) -> float | None:
    """Median width (px) of chromosome-like objects: twice the peak of the distance transform per object."""
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu

    fg = norm > threshold_otsu(norm)
    fg = ndi.binary_opening(fg, iterations=1)
    labels, n = ndi.label(fg)
    if n == 0:
        return None
    dist = ndi.distance_transform_edt(fg)
    idx = np.arange(1, n + 1)
    areas = ndi.sum(fg, labels, idx)
    widths = 2 * ndi.maximum(dist, labels, idx)
    keep = (areas >= 30) & (areas <= np.percentile(areas, 90) * 3)
    if keep.sum() < 5:
        return None
    return float(np.median(widths[keep]))


def scale_factor(norm: np.ndarray) -> float:
    """Factor that brings chromosomes to the training width; 1 when close enough or unknown."""
    width = estimate_width(norm)
    if width is None:
        return 1.0
    factor = TARGET_WIDTH / width
    if 0.8 <= factor <= 1.25:
        return 1.0
    return float(np.clip(factor, 0.2, 4.0))


def rescale(image: np.ndarray, factor: float) -> np.ndarray:
    if factor == 1.0:
        return image
    from skimage.transform import rescale as sk_rescale

    return sk_rescale(image, factor, order=1, anti_aliasing=factor < 1, preserve_range=True).astype(
        np.float32
    )


def to_image_scale(mask: np.ndarray, offset, factor: float, shape) -> tuple[np.ndarray, tuple[int, int]]:
    """Map a cropped mask found at `factor` x the image scale back to image pixels."""
    if factor == 1.0:
        return mask, offset
    import torch
    import torch.nn.functional as F

    r0, c0 = int(np.floor(offset[0] / factor)), int(np.floor(offset[1] / factor))
    r1 = min(int(np.ceil((offset[0] + mask.shape[0]) / factor)), shape[0])
    c1 = min(int(np.ceil((offset[1] + mask.shape[1]) / factor)), shape[1])
    t = torch.from_numpy(mask.astype(np.float32))[None, None]
    out = F.interpolate(t, size=(max(r1 - r0, 1), max(c1 - c0, 1)), mode="bilinear", align_corners=False)
    return out[0, 0].numpy() > 0.5, (r0, c0)
