"""Whole slides: registration estimated on a low pyramid level, refined at a middle level, and the registered
stains written at every level of the reference's pyramid, tile by tile (memory stays bounded).

`register_slide_pair` is the one-slide path; `registration.batch` runs it for many stacks (and on a cluster).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from napari_karyo.core.jobs import run_to_end
from napari_karyo.core.pathology.reference_frame import white
from napari_karyo.core.pathology.registration.align import detail, fine_affine, nonrigid, similarity
from napari_karyo.core.pathology.registration.lazy import warp_chunk
from napari_karyo.core.pathology.registration.register import PairResult, register_pair_steps
from napari_karyo.core.pathology.stack import Stain
from napari_karyo.core.pathology.tissue import slide_view
from napari_karyo.core.pathology.transform import Transform

LOW_SIDE = 1024  # longest side (px) of the level the registration is estimated on
MID_SIDE = 2048  # ... and of the level it is refined at
TILE = 512


def refine(fixed: Stain, moving: Stain, result: PairResult, side: int = MID_SIDE) -> PairResult:
    """The affine part of `result` refined by the flow stages at `side` px (a middle level), with a new non-rigid
    field there; each step kept only if the similarity (and for the field, the detail) rises at that level."""
    k = min(1.0, side / max(fixed.shape))
    fv = slide_view(fixed.at_factor(k), 1.0)
    mv = slide_view(moving.at_factor(k), 1.0)
    start = result.stages.get("fine_affine", Transform(result.transform.affine)).rescaled(k)
    before = similarity(fv, mv, Transform(result.transform.affine).rescaled(k))
    t, residual = fine_affine(fv, mv, start, None)
    cand = nonrigid(fv, mv, t, None, residual)
    if similarity(fv, mv, cand) > similarity(fv, mv, t) and detail(fv, mv, cand) > detail(fv, mv, t):
        t = cand
    quality = dict(result.quality, refined=similarity(fv, mv, t), refined_from=before)
    stages = dict(result.stages, refined=t.rescaled(1 / k))
    return PairResult(t.rescaled(1 / k), stages, quality, result.ok, result.message, result.seconds)


def register_slide_pair(fixed: Stain, moving: Stain, *, low_side=LOW_SIDE, mid_side=MID_SIDE) -> PairResult:
    """Estimate on a ~low_side level, refine at a ~mid_side level (skipped when that is no finer)."""
    t0 = time.perf_counter()
    k = min(1.0, low_side / max(*fixed.shape, *moving.shape))
    res = run_to_end(register_pair_steps(fixed.at_factor(k), moving.at_factor(k), scale=k))
    if res.ok and mid_side > low_side and max(fixed.shape) > low_side:
        res = refine(fixed, moving, res, mid_side)
    res.seconds = time.perf_counter() - t0
    return res


def warped_tiles(moving: Stain, transform: Transform, fixed_full, level_shape):
    """Row-major TILE x TILE tiles (edge tiles padded) of the stain warped onto one reference level."""
    scale = max(fixed_full[0] / level_shape[0], fixed_full[1] / level_shape[1])
    ds = moving.downsamples()
    k = max((i for i, d in enumerate(ds) if d <= scale * 1.01), default=0)
    level = moving.levels[k]
    fill = white(level.dtype) if moving.rgb else 0.0  # outside the moving section: glass, as in napari's view
    for r0 in range(0, level_shape[0], TILE):
        for c0 in range(0, level_shape[1], TILE):
            rows, cols = (r0, min(r0 + TILE, level_shape[0])), (c0, min(c0 + TILE, level_shape[1]))
            part = warp_chunk(level, transform, moving.shape, fixed_full, level_shape, rows, cols, fill=fill)
            tile = np.zeros((TILE, TILE, *part.shape[2:]), part.dtype)
            tile[: part.shape[0], : part.shape[1]] = part
            yield tile


def write_warped(path: str | Path, fixed: Stain, moving: Stain, transform: Transform) -> Path:
    """The stain on the reference's grid as a tiled pyramidal OME-TIFF (the reference's level shapes), written
    tile by tile to a temporary name and renamed when complete."""
    import tifffile

    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    shapes = [tuple(int(s) for s in lv.shape[:2]) for lv in fixed.levels]
    extra = tuple(moving.levels[0].shape[2:])
    dtype = moving.levels[0].dtype
    opts = {"tile": (TILE, TILE), "compression": "zlib" if dtype != np.uint8 else "jpeg"}
    if extra == (3,):
        opts["photometric"] = "rgb"
    with tifffile.TiffWriter(tmp, bigtiff=True, ome=True) as tw:
        for i, shape in enumerate(shapes):
            tiles = warped_tiles(moving, transform, fixed.shape, shape)
            kw = (
                {"subifds": len(shapes) - 1, "metadata": {"Name": moving.name}}
                if i == 0
                else {"subfiletype": 1}
            )
            tw.write(tiles, shape=(*shape, *extra), dtype=dtype, **opts, **kw)
    tmp.replace(path)
    return path
