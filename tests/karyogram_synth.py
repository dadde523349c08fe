"""Synthetic spread + karyogram pairs: banded rods scattered over a white spread, and the same rods upright above
green class labels in the standard four rows (what karyogram software prints)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage as ndi

from napari_karyo.core.karyotype.karyogram_import.layout import STANDARD_ROWS

# (class name, length in pixels): two homologues each, one X pair
CELL = [("1", 86), ("1", 84), ("2", 80), ("2", 78), ("6", 64), ("6", 62), ("9", 58), ("13", 50), ("13", 48),
        ("19", 34), ("20", 36), ("X", 60), ("X", 58)]  # fmt: skip
WIDTH = 14
KARYOGRAM = (480, 640)  # rows, cols
LABEL_ROWS = (120, 235, 345, 450)  # label baselines


def rod(length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(ink 0..1, mask) of an upright banded chromosome: distinct random bands, rounded ends, a slight bend."""
    h, w = length + 4, WIDTH + 10
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    bend = 3.0 * np.sin(np.pi * yy / h)
    r = WIDTH / 2
    core = np.clip(yy, 2 + r, h - 3 - r)
    mask = (xx - w / 2 - bend) ** 2 + (yy - core) ** 2 <= r**2
    bands = np.repeat(rng.uniform(0.25, 0.95, size=length // 5 + 2), 5)[:h]
    ink = ndi.gaussian_filter(bands[:, None] * np.ones((1, w)), 1.0) * mask
    return ink.astype(np.float32), mask


def _to_rgb(ink: np.ndarray) -> np.ndarray:
    grey = np.clip(255 - 255 * ink, 0, 255).astype(np.uint8)
    return np.stack([grey] * 3, axis=-1)


def karyogram(rods, names, hide: tuple[str, ...] = (), labels: bool = True) -> np.ndarray:
    """Rods upright over their labels; `hide` leaves those labels unprinted (as if covered)."""
    ink = np.zeros(KARYOGRAM, np.float32)
    label_x = {}
    for row in STANDARD_ROWS:
        step = KARYOGRAM[1] / len(row)
        label_x |= {n: (i + 0.5) * step for i, n in enumerate(row)}
    label_y = {n: y for row, y in zip(STANDARD_ROWS, LABEL_ROWS, strict=True) for n in row}
    seen: dict[str, int] = {}
    for (rink, rmask), name in zip(rods, names, strict=True):
        k = seen.get(name, 0)
        seen[name] = k + 1
        h, w = rmask.shape
        x0 = int(label_x[name] + (-w - 2 if k == 0 else 2))
        y0 = label_y[name] - 10 - h
        region = ink[y0 : y0 + h, x0 : x0 + w]
        region[rmask] = rink[rmask]
    im = Image.fromarray(_to_rgb(ink))
    if labels:
        draw = ImageDraw.Draw(im)
        font = ImageFont.load_default(size=14)
        for name, x in label_x.items():
            if name not in hide:
                draw.text((x, label_y[name]), name, fill=(0, 160, 0), font=font, anchor="mm")
    return np.asarray(im)


def spread(rods, shape=(420, 420), seed: int = 0, drawing: bool = True):
    """Rods rotated at random and scattered without touching; returns (rgb, list of true masks)."""
    rng = np.random.default_rng(seed)
    ink = np.zeros(shape, np.float32)
    taken = np.zeros(shape, bool)
    truth = []
    for rink, rmask in rods:
        for _ in range(500):
            angle = rng.uniform(0, 360)
            ti = ndi.rotate(rink, angle, order=1)
            tm = ndi.rotate(rmask.astype(np.float32), angle, order=1) > 0.5
            y, x = rng.integers(0, shape[0] - tm.shape[0]), rng.integers(0, shape[1] - tm.shape[1])
            box = (slice(y, y + tm.shape[0]), slice(x, x + tm.shape[1]))
            if not (ndi.binary_dilation(tm, iterations=4) & taken[box]).any():
                break
        full = np.zeros(shape, bool)
        full[box] = tm
        taken |= full
        ink[box][tm] = ti[tm]
        truth.append(full)
    rgb = _to_rgb(ink)
    if drawing:  # a burnt-in green box around the first chromosome, as on the lab's spreads
        rr, cc = np.nonzero(truth[0])
        im = Image.fromarray(rgb)
        ImageDraw.Draw(im).rectangle(
            [cc.min() - 3, rr.min() - 3, cc.max() + 3, rr.max() + 3], outline=(0, 160, 0)
        )
        rgb = np.asarray(im)
    return rgb, truth


def cell(seed: int = 0, cell_spec=CELL):
    """(spread rgb, karyogram rgb, true masks, class names) of one synthetic cell."""
    rng = np.random.default_rng(seed)
    rods = [rod(length, rng) for _, length in cell_spec]
    names = [n for n, _ in cell_spec]
    rgb, truth = spread(rods, seed=seed)
    return rgb, karyogram(rods, names), truth, names


def save(path, rgb: np.ndarray) -> str:
    Image.fromarray(rgb).save(path)
    return str(path)
