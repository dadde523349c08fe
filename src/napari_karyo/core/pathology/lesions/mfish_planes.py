"""The M-FISH fluor planes as a real multi-channel classification task of the fusion network's shape.

ADIR M-FISH cells of the A (ASI) and P (PSI/Cytocell) probe sets carry five fluor planes plus DAPI, one 8-bit
TIFF per plane (last letter of the file name), and a K map: 0 background, 1-24 class (23 = X, 24 = Y), 255 overlap.
Each plane is one "stain" (grey, C = 1). A sample is a window centred on a chromosome pixel, its label the K value
there minus 1. The two probe sets label the classes with different fluor combinations, so each is its own task.

Planes are normalised per plane per cell (M-FISH intensities vary strongly between cells and exposures): the
median (the background: chromosomes cover a few % of a spread) maps to 0 and the 99.7th percentile to 1.

Split by slide, never by cell or crop (`SPLITS`): train, validation (early stopping), test (reported).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_karyo.core.errors import KaryoError
from napari_karyo.core.pathology.lesions.patches import windows_at

PLANES = {"A": ("5", "C", "G", "O", "T", "D"), "P": ("3", "6", "C", "E", "I", "D")}
CLASSES = tuple([str(i) for i in range(1, 23)] + ["X", "Y"])
SPLITS = {
    "A": {"train": ("A01", "A03", "A05", "A21"), "val": ("A22",), "test": ("A02", "A23")},
    "P": {"train": ("P09", "P10"), "val": ("P12",), "test": ("P11",)},
}


@dataclass
class MfishCell:
    key: str  # file stem without the plane letter, e.g. A0101XY
    slide: str
    planes: np.ndarray  # (n_planes, 1, H, W) float32 in [0, 1]
    kmap: np.ndarray  # (H, W) uint8


def plane_names(probe: str) -> tuple[str, ...]:
    return tuple("DAPI" if p == "D" else f"fluor {p}" for p in PLANES[probe])


def normalise_plane(plane: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(plane, (50, 99.7))
    return np.clip((plane.astype(np.float32) - lo) / max(hi - lo, 1.0), 0, 1)


def list_cells(data: str | Path, probe: str, slides: tuple[str, ...] | None = None) -> list[tuple[str, Path]]:
    """(key, folder) of every cell of `probe` with a K map and all planes, optionally only some slides."""
    root = Path(data) / "mfish"
    if probe not in PLANES:
        raise KaryoError(f"M-FISH probe set {probe!r} has no fluor planes here; use one of {tuple(PLANES)}")
    if not root.is_dir():
        raise KaryoError(f"{root}: M-FISH folder not found; pass --data pointing at the shared data folder")
    cells = []
    for folder in sorted(root.glob(f"{probe}*__*")):
        if slides is not None and folder.name[:3] not in slides:
            continue
        for k in sorted(folder.glob("*K.tif")):
            key = k.name[:-5]
            if all((folder / f"{key}{p}.tif").exists() for p in PLANES[probe]):
                cells.append((key, folder))
    return cells


def load_cell(key: str, folder: Path, probe: str) -> MfishCell:
    import tifffile

    planes = np.stack([normalise_plane(tifffile.imread(folder / f"{key}{p}.tif")) for p in PLANES[probe]])
    kmap = tifffile.imread(folder / f"{key}K.tif").astype(np.uint8)
    return MfishCell(key, folder.name[:3], planes[:, None], kmap)


def load_part(data: str | Path, probe: str, part: str) -> list[MfishCell]:
    return [load_cell(k, f, probe) for k, f in list_cells(data, probe, SPLITS[probe][part])]


def chromosome_pixels(kmap: np.ndarray) -> np.ndarray:
    """(N, 2) pixels with a class (1-24); overlaps (255) are excluded: they have two true classes."""
    return np.argwhere((kmap >= 1) & (kmap <= 24))


def sample_windows(cells: list[MfishCell], per_cell: int, size: int, seed: int = 0):
    """Windows centred on up to `per_cell` random chromosome pixels per cell: x uint8 (N, planes, 1, size, size),
    labels (N,) 0-23, cell index (N,). Stored as uint8 (x 255) to keep tens of thousands of windows small."""
    rng = np.random.default_rng(seed)
    xs, ys, cs = [], [], []
    for i, cell in enumerate(cells):
        pix = chromosome_pixels(cell.kmap)
        pix = pix[rng.permutation(len(pix))[:per_cell]]
        xs.append(np.round(windows_at(cell.planes, pix, size) * 255).astype(np.uint8))
        ys.append(cell.kmap[pix[:, 0], pix[:, 1]].astype(np.int64) - 1)
        cs.append(np.full(len(pix), i))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(cs)


def load_task(
    data: str | Path,
    probe: str,
    *,
    per_cell: int = 2000,
    val_per_cell: int | None = None,
    size: int = 28,
    seed: int = 0,
) -> dict:
    """Train and validation windows of one probe set plus the test cells (whole, for per-pixel evaluation)."""
    parts = {part: load_part(data, probe, part) for part in ("train", "val", "test")}
    for part, cells in parts.items():
        if not cells:
            raise KaryoError(
                f"{data}: no M-FISH cells of slides {SPLITS[probe][part]} ({part}); check --data"
            )
    out = {
        "stains": plane_names(probe),
        "classes": CLASSES,
        "test_cells": parts["test"],
        "split": {part: list(SPLITS[probe][part]) for part in parts},
    }
    for k, part in enumerate(("train", "val")):
        n = per_cell if part == "train" or val_per_cell is None else val_per_cell
        x, y, _ = sample_windows(parts[part], n, size, seed + k)
        out[part] = (x, y)
    out["split"]["cells"] = {part: [c.key for c in cells] for part, cells in parts.items()}
    return out
