"""Training a kit model (the per-pixel colour classifier) from labelled cells.

A labelled cell is a multi-channel cell plus a per-pixel class map, from either
- a K-style label map beside the cell: ADIR `<cell>K.tif` (0 background, 1-24 class, 23 = X, 24 = Y, other values
  such as 255 = overlap are ignored), or `<stem>_K.tif` beside an OME/multi-page TIFF; or
- a result folder of `analyze` (corrected by hand): its classes painted per pixel, pixels two objects share
  ignored; the cell is the folder's source image.
Pixels are sampled per cell (seeded) so every cell weighs alike; training is Adam with a one-cycle schedule, one
thread by default, within a wall-clock budget.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_karyo.core.errors import KaryoError
from napari_karyo.core.karyotype.mfish.kits import KITS, plane_order, recognise_kit
from napari_karyo.core.karyotype.mfish.pixels import (
    HIDDEN,
    SIGMAS,
    build_pixel_net,
    normalise_planes,
    pixel_features,
    save_kit_model,
)
from napari_karyo.core.storage.multichannel import ADIR_LETTERS, CellImage, adir_planes, read_cell
from napari_karyo.core.storage.result_files import ANNOTATIONS, read_result


@dataclass
class LabelledCell:
    cell: CellImage
    labels: np.ndarray  # (H, W) uint8, 1-24 = class, anything else ignored
    source: str


def label_map_path(path: Path) -> Path | None:
    planes = adir_planes(path)
    if planes:
        d = planes["D"]
        k = d.with_name(d.stem[:-1] + "K" + d.suffix)
        return k if k.is_file() else None
    stem = path.name.split(".")[0]
    k = path.with_name(f"{stem}_K.tif")
    return k if k.is_file() else None


def _from_result(folder: Path) -> LabelledCell:
    result = read_result(folder)
    if not result.source_path or not Path(result.source_path).is_file():
        raise KaryoError(
            f"{folder}: its source image {result.source_path!r} is not there; a result folder trains a "
            "kit model only beside its multi-channel cell"
        )
    cover = np.zeros(result.image_shape, np.uint8)
    labels = np.zeros(result.image_shape, np.uint8)
    for ch in result.chromosomes:
        if ch.class_id:
            full = ch.full_mask(result.image_shape)
            cover += full
            labels[full] = ch.class_id
    labels[cover > 1] = 0
    return LabelledCell(read_cell(result.source_path), labels, str(folder))


def find_labelled(
    paths: list[str | Path], kit: str | None = None, exclude: tuple[str, ...] = ()
) -> list[LabelledCell]:
    """Labelled cells from result folders, cell files with a label map beside them, or folders holding either
    (searched recursively for ADIR K maps; there, cells of another kit than `kit` and cells whose case folder
    matches a glob in `exclude` are skipped)."""
    import tifffile

    out: list[LabelledCell] = []
    for p in map(Path, paths):
        if p.is_dir() and (p / ANNOTATIONS).is_file():
            out.append(_from_result(p))
        elif p.is_dir():
            dapis = sorted(k.with_name(k.stem[:-1] + "D" + k.suffix) for k in p.rglob("*K.tif"))
            for d in dapis:
                planes = adir_planes(d)
                if not planes or any(d.parent.match(g) for g in exclude):
                    continue
                if kit is None or _is_kit(tuple(ADIR_LETTERS[x] for x in planes), kit):
                    out += find_labelled([d])
        elif p.is_file():
            k = label_map_path(p)
            if k is None:
                raise KaryoError(
                    f"{p}: no label map beside it (ADIR <cell>K.tif, or {p.name.split('.')[0]}_K.tif)"
                )
            out.append(LabelledCell(read_cell(p), np.asarray(tifffile.imread(k)).astype(np.uint8), str(k)))
        else:
            raise KaryoError(f"{p}: no such file or folder")
    return out


def _short(source: str) -> str:
    """A cell's name in the card: its folder and file, not this machine's absolute path."""
    p = Path(source)
    return f"{p.parent.name}/{p.name}"


def _is_kit(names: tuple[str, ...], kit: str) -> bool:
    try:
        return recognise_kit(names) == kit
    except KaryoError:
        return False


@dataclass
class KitTrainConfig:
    out: str
    kit: str | None = None  # None: recognised from the first cell's channel names
    channels: tuple[str, ...] = ()  # a kit of your own: its plane names (DAPI last is usual)
    per_cell: int = 40000  # labelled pixels sampled per cell
    epochs: float = 6.0
    batch: int = 512
    lr: float = 3e-3
    seed: int = 0
    threads: int = 1
    max_minutes: float = 15.0
    sigmas: tuple[float, ...] = SIGMAS
    hidden: int = HIDDEN
    notes: dict = field(default_factory=dict)  # provenance written into the card (data, split rule)


def _pixels(cells: list[LabelledCell], channels, sigmas, per_cell: int, seed: int):
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for lc in cells:
        if lc.labels.shape != lc.cell.shape:
            raise KaryoError(
                f"{lc.source}: label map {lc.labels.shape} does not match the cell's planes {lc.cell.shape}"
            )
        norm = normalise_planes(lc.cell.planes[plane_order(lc.cell.names, channels, str(lc.cell.path))])
        where = (lc.labels >= 1) & (lc.labels <= 24)
        keep = np.zeros(where.shape, bool)
        idx = np.flatnonzero(where)
        keep.flat[rng.permutation(idx)[:per_cell]] = True
        xs.append(pixel_features(norm, keep, sigmas))
        ys.append(lc.labels[keep].astype(np.int64) - 1)
    return np.concatenate(xs), np.concatenate(ys)


def train_kit_steps(
    cfg: KitTrainConfig, cells: list[LabelledCell], val: list[LabelledCell] = ()
) -> Generator[tuple[str, int, int], None, Path]:
    """Yield (stage, done, total); return the model path. `val`: held-out labelled cells, scored per pixel (every
    labelled pixel) into the card, never trained on."""
    import torch

    if not cells:
        raise KaryoError("no labelled cells to train on; pass result folders or cells with label maps")
    kit = cfg.kit or ("custom" if cfg.channels else recognise_kit(cells[0].cell.names, cells[0].source))
    channels = tuple(cfg.channels) or KITS[kit]
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    yield ("reading labelled pixels", 0, 1)
    x, y = _pixels(cells, channels, cfg.sigmas, cfg.per_cell, cfg.seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    net = build_pixel_net(x.shape[1], cfg.hidden)
    steps = max(1, int(cfg.epochs * len(y) / cfg.batch))
    opt = torch.optim.Adam(net.parameters(), cfg.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    done = 0
    for done in range(1, steps + 1):
        i = torch.randint(0, len(yt), (cfg.batch,), generator=gen)
        loss = torch.nn.functional.cross_entropy(net(xt[i]), yt[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if done % 200 == 0:
            yield (f"training (loss {loss.item():.3f})", done, steps)
        if time.perf_counter() - t0 > 60 * cfg.max_minutes:
            break
    net.eval()
    with torch.inference_mode():
        train_acc = float((net(xt[:100000]).argmax(1) == yt[:100000]).float().mean())
    metrics = {}
    if val:
        yield ("scoring the validation cells", steps, steps)
        xv, yv = _pixels(val, channels, cfg.sigmas, 10**9, cfg.seed)
        with torch.inference_mode():
            right = int((net(torch.from_numpy(xv)).argmax(1).numpy() == yv).sum())
        metrics = {"val_pixel_accuracy": round(right / max(len(yv), 1), 4), "val_pixels": len(yv),
                   "val_cells": [_short(lc.source) for lc in val]}  # fmt: skip
    card = {
        "kit": kit,
        "metrics": metrics,
        "channels": list(channels),
        "config": {"sigmas": list(cfg.sigmas), "hidden": cfg.hidden},
        "training": {
            "cells": [_short(lc.source) for lc in cells],
            "pixels": len(y),
            "steps": done,
            "of_steps": steps,
            "seconds": round(time.perf_counter() - t0, 1),
            "seed": cfg.seed,
            "threads": cfg.threads,
            "train_pixel_accuracy": round(train_acc, 4),
            **cfg.notes,
        },
    }
    path = save_kit_model(net, card, cfg.out)
    yield ("saved", steps, steps)
    return path
