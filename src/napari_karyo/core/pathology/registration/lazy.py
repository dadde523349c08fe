"""Registered stains at every pyramid level, lazily: dask arrays whose chunks are warped when first looked at.

A chunk of the reference's level k is filled by pulling each of its pixels back through the stain's transform
(`Transform.inverse_map_points`, full-resolution coordinates) into the finest level of the moving stain that is
not coarser than level k, reading only the window of that level the chunk needs. Memory per chunk is a few times
the chunk; nothing is computed until napari (or a writer) asks for a chunk.
"""

from __future__ import annotations

import numpy as np

from napari_karyo.core.pathology.transform import Transform

CHUNK = 1024  # output chunk side (px)


def _level_scale(full_shape, level_shape) -> np.ndarray:
    """Full-resolution pixels per level pixel along (row, col)."""
    return np.asarray(full_shape[:2], float) / np.asarray(level_shape[:2], float)


def _read_window(level, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    window = level[r0:r1, c0:c1]
    if hasattr(window, "compute"):  # a dask level: read it here, inside this chunk's task
        window = window.compute(scheduler="synchronous")
    return np.asarray(window)


def warp_chunk(
    moving_level,
    transform: Transform,
    moving_full,
    fixed_full,
    fixed_level_shape,
    rows,
    cols,
    order: int = 1,
    fill: float = 0.0,
) -> np.ndarray:
    """The fixed level's pixels rows x cols (two (start, stop)) of the stain warped onto the reference; `fill`
    where the moving slide has no pixels (white for bright-field, so the glass stays glass)."""
    from scipy.ndimage import map_coordinates

    fs = _level_scale(fixed_full, fixed_level_shape)
    ms = _level_scale(moving_full, moving_level.shape)
    rr, cc = np.mgrid[rows[0] : rows[1], cols[0] : cols[1]]
    # pixel centres: full = (level + 0.5) * scale - 0.5, as the pyramid's block means place them
    x = np.stack([(rr.ravel() + 0.5) * fs[0] - 0.5, (cc.ravel() + 0.5) * fs[1] - 0.5], 1)
    src = (transform.inverse_map_points(x) + 0.5) / ms - 0.5
    extra = tuple(moving_level.shape[2:])
    out = np.full((rows[1] - rows[0], cols[1] - cols[0], *extra), fill, moving_level.dtype)
    lo = np.floor(src.min(0)).astype(int) - 1
    hi = np.ceil(src.max(0)).astype(int) + 2
    lo, hi = np.maximum(lo, 0), np.minimum(hi, moving_level.shape[:2])
    if np.any(hi <= lo):  # the chunk lies wholly outside the moving slide
        return out
    window = _read_window(moving_level, lo[0], hi[0], lo[1], hi[1])
    coords = (src - lo).T
    planes = [window] if window.ndim == 2 else [window[..., k] for k in range(window.shape[2])]
    for k, plane in enumerate(planes):
        vals = map_coordinates(plane.astype(np.float32), coords, order=order, mode="constant", cval=fill)
        if np.issubdtype(out.dtype, np.integer):
            info = np.iinfo(out.dtype)
            vals = np.clip(np.rint(vals), info.min, info.max)
        vals = vals.reshape(out.shape[:2]).astype(out.dtype)
        if out.ndim == 2:
            out[:] = vals
        else:
            out[..., k] = vals
    return out


def warped_level(
    moving_levels, transform: Transform, moving_full, fixed_full, level_shape, chunk=CHUNK, fill=0.0
):
    """A dask array of shape `level_shape` (+ channels): the stain on this reference level, warped on demand."""
    import dask.array as da

    src = moving_levels[source_level(moving_levels, moving_full, _level_scale(fixed_full, level_shape).min())]
    if transform.displacement is not None:
        transform.inverse_displacement()  # invert once, before the transform is shipped to every chunk
    extra = tuple(src.shape[2:])
    chunks = (chunk, chunk, *extra)
    template = da.zeros((*level_shape[:2], *extra), dtype=src.dtype, chunks=chunks)

    def block(_, block_info=None):
        (r0, r1), (c0, c1) = block_info[0]["array-location"][:2]
        return warp_chunk(src, transform, moving_full, fixed_full, level_shape, (r0, r1), (c0, c1), fill=fill)

    return template.map_blocks(block, dtype=src.dtype, meta=np.empty((0,) * template.ndim, src.dtype))


def source_level(moving_levels, moving_full, scale: float) -> int:
    """The finest moving level whose pixels are no bigger than `scale` full-resolution pixels (no aliasing,
    least reading)."""
    return max(
        (
            i
            for i, lv in enumerate(moving_levels)
            if _level_scale(moving_full, lv.shape).max() <= scale * 1.01
        ),
        default=0,
    )


def warped_pyramid(
    moving_levels, transform: Transform, fixed_levels, chunk: int = CHUNK, fill: float = 0.0
) -> list:
    """One lazy warped array per reference level (level 0 = full resolution): a napari multiscale layer."""
    moving_full = tuple(moving_levels[0].shape[:2])
    fixed_full = tuple(fixed_levels[0].shape[:2])
    return [
        warped_level(moving_levels, transform, moving_full, fixed_full, tuple(lv.shape[:2]), chunk, fill)
        for lv in fixed_levels
    ]
