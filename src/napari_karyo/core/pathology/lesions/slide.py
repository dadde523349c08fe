"""Lesion classification over a whole slide (or a region of it), tile by tile: memory is bounded by the tile size.

The classifier works on a grid: the reference stain at `factor` of full resolution (default: the working grid of
`grid.py`, the scale the models are trained at; `factor` 1 classifies at full resolution). For each TILE x TILE
tile of that grid, every stain's pixels (the tile plus a halo of half a patch) are warped straight from the finest
sufficient level of its pyramid through its registration transform (`registration.lazy.warp_chunk`), colour-
normalised with a normaliser fitted once per stain on a low level, and classified by `predict_stack_steps` over
the tissue of the tile. Tiles line up with the stride grid, so the result is the one the whole grid would give.

Each finished tile goes to `<out>/tiles/<row>_<col>.npz` (class labels, probabilities x 255 as uint8, per-class
pixel counts and SE-weight sums): a job may classify any subset of tile rows (a band), jobs may run on different
workers, and a rerun skips the tiles already there. `slide_outputs.py` turns the tiles into pyramids.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from napari_karyo.core.errors import LesionError
from napari_karyo.core.jobs import run_to_end
from napari_karyo.core.pathology.lesions.fusion import FusionModel, load_fusion_model
from napari_karyo.core.pathology.lesions.grid import work_factor
from napari_karyo.core.pathology.lesions.jobs import model_normalisation
from napari_karyo.core.pathology.lesions.predict import predict_stack_steps
from napari_karyo.core.pathology.reference_frame import use_transforms, white
from napari_karyo.core.pathology.registration.lazy import source_level, warp_chunk
from napari_karyo.core.pathology.stack import StainStack, load_stack
from napari_karyo.core.pathology.stain import fitted_normaliser
from napari_karyo.core.pathology.tissue import optical_density, tissue_mask
from napari_karyo.core.storage.atomic import write_json, write_with
from napari_karyo.core.storage.model_files import sha256

TILE = 512  # grid pixels per tile side (rounded down to a multiple of the stride)
MASK_SIDE = 2048  # the tissue mask and the colour normalisers are fitted on a level about this large
TILES = "tiles"


@dataclass(frozen=True)
class SlidePlan:
    """Everything a worker needs to classify tiles of one stack (plain data: it travels to dask workers)."""

    stack: str
    transforms: str | None
    model: str
    model_sha256: str
    out: str  # this stack's output folder
    factor: float  # grid = reference at this factor of full resolution
    shape: tuple[int, int]  # grid shape
    tile: int
    stride: int
    region: tuple[int, int, int, int] | None  # (r0, r1, c0, c1) full-resolution reference pixels, or all
    device: str | None = None

    @property
    def tile_rows(self) -> int:
        return -(-self.shape[0] // self.tile)

    @property
    def tile_cols(self) -> int:
        return -(-self.shape[1] // self.tile)

    def tile_path(self, r: int, c: int) -> Path:
        return Path(self.out) / TILES / f"{r}_{c}.npz"


def open_stack(path: str, transforms: str | None) -> StainStack:
    stack = load_stack(path)
    if transforms:
        use_transforms(stack, transforms)
    return stack


def make_plan(
    stack_path, transforms, model_path, out, *, scale=None, tile=TILE, stride=8, region=None, device=None
):
    """The plan of one stack: grid at `scale` (default: the working grid), tiles aligned with the stride grid."""
    stack = open_stack(str(stack_path), transforms)
    factor = float(scale) if scale else work_factor(stack)
    if not 0 < factor <= 1:
        raise LesionError(f"--scale {factor} must lie in (0, 1]: a factor of the reference's full resolution")
    h, w = stack[stack.reference].shape
    tile = max(stride, tile // stride * stride)
    if region is not None:
        r0, r1, c0, c1 = (int(v) for v in region)
        if not (0 <= r0 < r1 <= h and 0 <= c0 < c1 <= w):
            raise LesionError(f"region {region} lies outside {stack_path}'s reference stain ({h} x {w} px)")
        region = (r0, r1, c0, c1)
    return SlidePlan(
        str(stack_path),
        None if transforms is None else str(transforms),
        str(model_path),
        sha256(model_path),
        str(out),
        factor,
        (round(h * factor), round(w * factor)),
        tile,
        stride,
        region,
        device,
    )


class TileSource:
    """A stack's stains on a plan's grid, one window at a time, as the model takes them."""

    def __init__(self, plan: SlidePlan, model: FusionModel):
        self.plan = plan
        self.stack = open_stack(plan.stack, plan.transforms)
        self.names = [n for n in model.stains if n in self.stack.names]
        if not self.names:
            raise LesionError(
                f"{plan.model}: the model knows stains {list(model.stains)}, {plan.stack} has "
                f"{self.stack.names}; rename the stain files or train on this stack"
            )
        method = model_normalisation(model.card)
        ref = self.stack[self.stack.reference]
        low = min(1.0, MASK_SIDE / max(ref.shape))
        self.mask_factor = low
        self.mask = tissue_mask(optical_density(ref.at_factor(low)))
        if not self.mask.any():  # no tissue found: classify everything, as the working-grid prediction does
            self.mask[:] = True
        self.normalisers = {}
        for n in self.names:
            stain = self.stack[n]
            if stain.rgb and method != "none":
                small = stain.at_factor(min(1.0, MASK_SIDE / max(stain.shape)))
                rgb = np.clip(small * (255.0 / white(stain.levels[0].dtype)), 0, 255).astype(np.uint8)
                self.normalisers[n] = fitted_normaliser(
                    rgb, "H&E", method, what=f"stain {n!r} of {plan.stack}"
                )

    def stain(self, name: str, rows, cols) -> np.ndarray:
        """Stain `name` warped onto grid rows x cols ((start, stop) each), uint8 for bright-field."""
        stain, ref = self.stack[name], self.stack[self.stack.reference]
        dtype = stain.levels[0].dtype
        k = source_level(stain.levels, stain.shape, 1 / self.plan.factor)
        img = warp_chunk(
            stain.levels[k],
            self.stack.transform(name),
            stain.shape,
            ref.shape,
            self.plan.shape,
            rows,
            cols,
            fill=white(dtype) if stain.rgb else 0.0,
        )
        if stain.rgb and dtype != np.uint8:
            img = np.clip(np.rint(img * (255.0 / white(dtype))), 0, 255).astype(np.uint8)
        if name in self.normalisers:
            img = self.normalisers[name](img[..., :3])
        return img

    def tissue(self, rows, cols) -> np.ndarray:
        """The reference's tissue (and the region, if any) on grid rows x cols, from the low-level mask."""
        f, m = self.plan.factor, self.mask_factor
        rr = (np.arange(*rows) + 0.5) / f  # full-resolution coordinates of the grid pixels' centres
        cc = (np.arange(*cols) + 0.5) / f
        mr = np.clip((rr * m).astype(int), 0, self.mask.shape[0] - 1)
        mc = np.clip((cc * m).astype(int), 0, self.mask.shape[1] - 1)
        out = self.mask[np.ix_(mr, mc)]
        if self.plan.region is not None:
            r0, r1, c0, c1 = self.plan.region
            out = out & ((rr >= r0) & (rr < r1))[:, None] & ((cc >= c0) & (cc < c1))[None, :]
        return out


def halo(size: int, stride: int) -> int:
    """Grid pixels read beyond a tile: a whole patch, rounded up to the stride so windows keep the grid's phase."""
    return -(-size // stride) * stride


def classify_tile(source: TileSource, model: FusionModel, r: int, c: int) -> dict | None:
    """Labels, probabilities and SE-weight sums of tile (r, c); None where the tile holds no tissue."""
    p = source.plan
    h, w = p.shape
    top, left = r * p.tile, c * p.tile
    bottom, right = min(top + p.tile, h), min(left + p.tile, w)
    pad = halo(model.size, p.stride)
    rows, cols = (max(0, top - pad), min(h, bottom + pad)), (max(0, left - pad), min(w, right + pad))
    inside = np.zeros((rows[1] - rows[0], cols[1] - cols[0]), bool)
    sl = (slice(top - rows[0], bottom - rows[0]), slice(left - cols[0], right - cols[0]))
    inside[sl] = source.tissue((top, bottom), (left, right))
    if not inside.any():
        return None
    stains = {n: source.stain(n, rows, cols) for n in source.names}
    if len({a.ndim for a in stains.values()}) > 1:  # grey and RGB stains mixed: grey ones repeated to RGB
        stains = {n: a if a.ndim == 3 else np.repeat(a[..., None], 3, -1) for n, a in stains.items()}
    cm = run_to_end(predict_stack_steps(model, stains, inside, stride=p.stride))
    labels = cm.labels[sl]
    n_classes = len(cm.classes)
    counts = np.bincount(labels.ravel(), minlength=n_classes + 1)[1:]
    wsum = np.stack([cm.weights[:, sl[0], sl[1]][:, labels == k + 1].sum(1) for k in range(n_classes)])
    return {
        "labels": labels.astype(np.uint8 if n_classes < 255 else np.uint16),
        "probs": np.rint(cm.probs[:, sl[0], sl[1]] * 255).astype(np.uint8),
        "counts": counts.astype(np.int64),
        "weight_sums": wsum.astype(np.float64),
    }


def save_tile(path: Path, result: dict | None) -> None:
    """One finished tile, written atomically (an empty file: no tissue there)."""

    def write(tmp):
        buf = io.BytesIO()
        if result is not None:
            np.savez_compressed(buf, **result)
        Path(tmp).write_bytes(buf.getvalue())

    write_with(path, write)


def load_tile(path: Path) -> dict | None:
    if path.stat().st_size == 0:
        return None
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def check_tiles(plan: SlidePlan) -> None:
    """A tiles folder made with other settings (model, grid, stride, region) is emptied before any tile is added."""
    folder = Path(plan.out) / TILES
    settings = folder / "plan.json"
    mine = json.loads(json.dumps(asdict(plan)))
    mine.pop("device")
    if settings.is_file() and json.loads(settings.read_text()) != mine:
        for f in folder.glob("*.npz"):
            f.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    write_json(settings, mine)


def classify_band(plan: SlidePlan, first_row: int, last_row: int, progress=None) -> dict:
    """Classify tile rows first_row..last_row - 1 (skipping tiles already saved); runs on any worker."""
    import time

    t0, cpu = time.perf_counter(), time.process_time()
    model = load_fusion_model(plan.model, plan.device)
    source = TileSource(plan, model)
    done = 0
    for r in range(first_row, last_row):
        for c in range(plan.tile_cols):
            path = plan.tile_path(r, c)
            if not path.is_file():
                save_tile(path, classify_tile(source, model, r, c))
                done += 1
            if progress is not None:
                progress((r - first_row) * plan.tile_cols + c + 1, (last_row - first_row) * plan.tile_cols)
    return {
        "rows": [first_row, last_row],
        "tiles_classified": done,
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - cpu,
    }


def bands(plan: SlidePlan, n: int) -> list[tuple[int, int]]:
    """Tile rows cut into at most n contiguous bands (jobs of one stack that can run side by side)."""
    edges = np.linspace(0, plan.tile_rows, min(n, plan.tile_rows) + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]
