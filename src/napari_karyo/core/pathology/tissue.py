"""Stain-agnostic views of a slide for registration: bounded-memory downsampling, optical density, tissue mask.

Different stains colour the same tissue differently, but in all of them tissue absorbs light and the glass does
not: optical density (OD) summed over channels, and the tissue mask thresholded on it, look alike across stains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_BAND_BYTES = 16 << 20  # rows of a huge image are reduced this many input bytes at a time
MIN_TISSUE_FRACTION = 0.005  # below this share of the slide there is no tissue to register
MIN_OD_CONTRAST = 0.03  # OD spread (tissue percentile - glass percentile) of a blank slide is below this


def downsample(image: np.ndarray, factor: float) -> np.ndarray:
    """float32 copy of `image` (h, w[, c]) resized by `factor` <= 1, never holding a full-size float copy.

    Integer block means in bands of rows bring it within 2x of the target, skimage's anti-aliased resize
    does the rest (pixel centres aligned: x_small = factor * x + (factor - 1) / 2).
    """
    from skimage.transform import resize

    image = np.asarray(image)
    h, w = image.shape[:2]
    out_shape = (max(1, round(h * factor)), max(1, round(w * factor)))
    block = max(1, int(1 / factor) // 2) if factor < 1 else 1
    if block > 1:
        hb, wb = h // block, w // block
        per_row = max(1, w * image.itemsize * (image.shape[2] if image.ndim == 3 else 1))
        rows = max(block, (_BAND_BYTES // per_row) // block * block)
        parts = []
        for r0 in range(0, hb * block, rows):
            band = image[r0 : min(r0 + rows, hb * block), : wb * block]
            nb = band.shape[0] // block
            blocks = band.reshape(nb, block, wb, block, *band.shape[2:])
            parts.append(blocks.mean(axis=(1, 3), dtype=np.float32))  # no float copy of the band
        small = np.concatenate(parts, axis=0)
    else:
        small = image.astype(np.float32)
    return resize(
        small, out_shape + small.shape[2:], order=1, anti_aliasing=block < 1 / factor, preserve_range=True
    ).astype(np.float32)


def padding_free(image: np.ndarray, top: float) -> np.ndarray:
    """Boolean: where the image shows the slide, False on uniform pure-white or black fill touching its border
    (what exporters and scanners pad a section's bounding box with: no glass colour, no data)."""
    from scipy import ndimage as ndi

    img = image if image.ndim == 3 else image[..., None]
    fill = (img.min(-1) >= top - 0.5) | (img.max(-1) <= 0.5)
    if not fill.any():
        return np.ones(fill.shape, bool)
    labels, _ = ndi.label(fill)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return ~np.isin(labels, edge[edge > 0])


def optical_density(image: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """OD (h, w) float32 from a grey or RGB(A) float image: -log(I / glass), glass = the bright background.

    A dark-background image (fluorescence) is used as it is, scaled to [0, 1]: there the signal is the light.
    `valid` (optional): where the image shows the slide; padding outside it is left out of every statistic.
    """
    from scipy.ndimage import binary_erosion

    img = image[..., :3] if image.ndim == 3 else image[..., None]
    if valid is None or not valid.any():
        valid = np.ones(img.shape[:2], bool)
    data = img[valid]
    glass = np.percentile(data, 99.0, axis=0).astype(np.float32)
    rim = valid & ~binary_erosion(valid, border_value=0)  # the outline of the slide's data
    if np.median(img[rim]) < np.median(data) * 0.8:  # dark background: not brightfield
        grey = img.mean(-1)
        lo, hi = np.percentile(grey[valid], [1, 99.5])
        return np.clip((grey - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32) * valid
    od = -np.log(np.clip((img + 1.0) / (glass + 1.0), 1e-3, 1.0))
    return od.mean(-1).astype(np.float32) * valid


def tissue_mask(od: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Boolean tissue mask: Otsu on smoothed OD, holes filled, small specks and debris removed."""
    from scipy import ndimage as ndi
    from skimage.filters import threshold_li, threshold_otsu

    valid = np.ones(od.shape, bool) if valid is None else valid
    smooth = ndi.gaussian_filter(od, max(1.0, min(od.shape) / 200))
    data = smooth[valid]
    if data.size < 16:
        return np.zeros(od.shape, bool)
    lo, hi = np.percentile(data, [2, 99.5])
    if hi - lo < MIN_OD_CONTRAST:
        return np.zeros(od.shape, bool)
    # Otsu splits faint IHC tissue into its stained and unstained parts; Li's threshold sits nearer the glass
    mask = (smooth > min(threshold_otsu(data), threshold_li(data))) & valid
    radius = max(1, round(min(od.shape) / 150))
    mask = ndi.binary_opening(mask, iterations=radius)
    mask = ndi.binary_closing(mask, iterations=radius)
    labels, n = ndi.label(mask)
    if n:
        sizes = ndi.sum(mask, labels, np.arange(1, n + 1))
        keep = np.flatnonzero(sizes >= max(sizes.max() * 0.02, 16)) + 1
        mask = np.isin(labels, keep)
    return ndi.binary_fill_holes(mask)


@dataclass
class SlideView:
    """A slide at the working resolution: OD, tissue mask and the contrast-equalised image registration uses."""

    od: np.ndarray
    mask: np.ndarray
    structure: np.ndarray  # smoothed OD mapped through its rank to [0, 1]: comparable across stains
    silhouette: (
        np.ndarray
    )  # OD ranked inside the tissue to [0.2, 1], 0 outside: the shape the coarse search matches
    factor: float  # working pixels per input pixel
    valid: np.ndarray | None = None  # where the image shows the slide (False on padding); None: everywhere

    @property
    def tissue_fraction(self) -> float:
        return float(self.mask.mean())


def slide_view(image: np.ndarray, factor: float, mask: np.ndarray | None = None) -> SlideView:
    """Downsample by `factor`, compute OD and tissue; `mask` (input grid, optional) overrides the tissue mask."""
    image = np.asarray(image)
    small = downsample(image, factor)
    top = float(np.iinfo(image.dtype).max) if np.issubdtype(image.dtype, np.integer) else float(small.max())
    valid = padding_free(small, top)
    od = optical_density(small, valid)
    if mask is not None:  # a caller's mask may be pixel-noisy: make it a solid section like tissue_mask's
        from scipy import ndimage as ndi

        tissue = downsample(np.asarray(mask, np.uint8), factor) > 0.5
        tissue = ndi.binary_fill_holes(
            ndi.binary_closing(tissue, iterations=max(1, round(min(od.shape) / 150)))
        )
    else:
        tissue = tissue_mask(od, valid)
    return SlideView(od, tissue, equalise(od, valid), silhouette(od, tissue), factor, valid)


def silhouette(od: np.ndarray, tissue: np.ndarray) -> np.ndarray:
    """The tissue as a bright shape on black with its OD ranks as texture: beyond the slide's edge is also
    black, so the image border does not look like a tissue edge to the rotation search."""
    out = np.zeros(od.shape, np.float32)
    values = od[tissue]
    if values.size:
        order = np.sort(values)
        out[tissue] = 0.2 + 0.8 * np.searchsorted(order, values) / max(len(order) - 1, 1)
    return out


def equalise(od: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Lightly smoothed OD mapped through its rank (among the `valid` pixels) to [0, 1], 0 outside them: stains
    differ in how dark they make the same tissue, rarely in which parts are darker (dense lesion, walls) and which
    lighter (air spaces, lumens, glass)."""
    from scipy.ndimage import gaussian_filter

    smooth = gaussian_filter(od, 1.0)
    valid = np.ones(od.shape, bool) if valid is None else valid
    order = np.sort(smooth[valid])
    out = np.zeros(od.shape, np.float32)  # ties share a rank: flat areas stay flat
    out[valid] = np.searchsorted(order, smooth[valid]) / max(order.size - 1, 1)
    return out
