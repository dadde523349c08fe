"""Small test data, in memory and on disk, shared by core and napari tests (this folder is on sys.path through
conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from napari_karyo.core.karyotype.infer.sam_prompt import SamConfig
from napari_karyo.core.storage.atomic import write_json


def bar_mask(shape: tuple[int, int], rows: slice, cols: slice) -> np.ndarray:
    """A boolean image of `shape` that is True on the rectangle rows x cols."""
    m = np.zeros(shape, bool)
    m[rows, cols] = True
    return m


def bar_spread(folder: Path, case: str, stem: str, seed: int):
    """A dark image with bright, chromosome-wide bars in folder `case`, and its corrected result (one per bar)."""
    import tifffile

    from napari_karyo.core.results import Chromosome, SpreadResult

    rng = np.random.default_rng(seed)
    shape = (96, 128)
    image = rng.normal(20, 4, shape)
    chromosomes = []
    for k in range(5):
        mask = np.zeros(shape, bool)
        r, c = 8 + 16 * k + int(rng.integers(0, 4)), 10 + int(rng.integers(0, 60))
        mask[r : r + 11, c : c + 40 + 4 * k] = True
        image[mask] = 200
        chromosomes.append(Chromosome.from_full_mask(mask, class_id=k + 1, source="user", edited=True))
    path = folder / case / f"{stem}.tif"
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.clip(image, 0, 255).astype(np.uint8))
    return path, SpreadResult(shape, chromosomes, source_path=str(path))


def set_status(image, status, corrections=0, atomic=False):
    """A project state file written by hand, exactly per the project contract (in place, or renamed into place
    as a project save does)."""
    folder = image.parent / f"{image.stem}.karyo"
    folder.mkdir(exist_ok=True)
    state = {
        "image": str(image),
        "status": status,
        "corrections": corrections,
        "seq": corrections,
        "updated": "2026-11-22T08:00:00+00:00",
    }
    if atomic:
        write_json(folder / "state.json", state)
    else:
        (folder / "state.json").write_text(json.dumps(state))


def rods_image(shape, segments, seed: int = 0):
    """A dark uint8 image with bright, banded, chromosome-wide (13 px) rods from (row, col) to (row, col), and the
    rods' true masks; rods may cross (their masks then share pixels)."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image, masks = np.zeros(shape), []
    for p, q in segments:
        p, d = np.asarray(p, float), np.asarray(q, float) - np.asarray(p, float)
        t = np.clip(((yy - p[0]) * d[0] + (xx - p[1]) * d[1]) / (d @ d), 0, 1)
        dist = np.hypot(yy - (p[0] + t * d[0]), xx - (p[1] + t * d[1]))
        masks.append(dist <= 6)
        image = np.maximum(image, np.clip(6.5 - dist, 0, 1) * (0.7 + 0.3 * np.cos(t * 12)))
    image = ndi.gaussian_filter(image, 1) * 200 + rng.normal(10, 3, shape)
    return np.clip(image, 0, 255).astype(np.uint8), masks


def slide_pyramids(folder: Path, side: int, stains=("HE", "IHC")) -> Path:
    """Stains of the bundled multi-stain sample upsampled to `side` px and written as tiled OME-TIFF pyramids
    (2 levels) by scripts/make_test_pyramids.py's own functions; returns the stack folder."""
    import importlib.util

    from PIL import Image

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location(
        "make_test_pyramids", root / "scripts/make_test_pyramids.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    folder.mkdir(parents=True, exist_ok=True)
    for stain in stains:
        src = Image.open(script.SAMPLE / f"{stain}.jpg").convert("RGB")
        k = side / max(src.height, src.width)
        shapes = script.level_shapes((round(src.height * k), round(src.width * k)), smallest=side // 4)
        script.write_ome(folder / f"{stain}.ome.tif", src, shapes, stain)
    return folder


TINY_SAM = SamConfig(  # a SAM small enough for a test: 2 encoder blocks of width 32
    embed_dim=32,
    depth=2,
    num_heads=2,
    patch_size=16,
    mlp_ratio=2.0,
    window_size=14,
    global_attn_indexes=(1,),
    prompt_dim=32,
    mask_in_chans=8,
    decoder_depth=1,
    decoder_mlp_dim=64,
    iou_hidden_dim=32,
    multimask_outputs=3,
)


def tiny_sam_checkpoint(path):
    """A tiny randomly initialised SAM saved as segment-anything ships its checkpoints (a state dict); never
    downloaded weights. A random decoder's masks are noise: this one's cover the image, so a prompt has a mask."""
    import torch

    from napari_karyo.core.karyotype.infer.sam_prompt import build_sam

    torch.manual_seed(0)
    sam = build_sam(TINY_SAM)
    with torch.no_grad():
        sam.mask_decoder.output_upscaling[-2].bias.fill_(5.0)
    torch.save(sam.state_dict(), path)
    return path
