"""Per-pixel class probabilities from the M-FISH planes: a small MLP on each pixel's normalised plane intensities
at a few Gaussian scales (the colour code is a per-pixel on/off pattern of the five fluors; the scales add a few
pixels of context and damp the planes' slight misregistration).

Measured on the validation slides (benchmarks/mfish_colour.py, BENCHMARKS.md) it matches the fusion CNN of the
pathology side per pixel and costs a fraction of it: analyze must stay near 2 s per cell on a 2-core CPU.
Planes are normalised per plane per cell (the median, i.e. the background, -> 0; the 99.7th percentile -> 1):
exposures and hybridisation strength differ between cells.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_karyo.core.classes import NAMES
from napari_karyo.core.errors import ModelFileError
from napari_karyo.core.storage.model_files import load_model, save_model

ARCH = "napari-karyo/mfish-pixel-mlp-v1"
SIGMAS = (0.0, 1.0, 2.0, 4.0, 8.0)
HIDDEN = 128


def normalise_planes(planes: np.ndarray) -> np.ndarray:
    """(C, H, W) any type -> float32, per plane: median -> 0, 99.7th percentile -> 1, clipped to [0, 1.5]."""
    out = np.empty(planes.shape, np.float32)
    for i, p in enumerate(planes):
        lo, hi = np.percentile(p, (50, 99.7))
        out[i] = np.clip((p.astype(np.float32) - np.float32(lo)) / np.float32(max(hi - lo, 1e-6)), 0, 1.5)
    return out


def pixel_features(norm: np.ndarray, where: np.ndarray, sigmas=SIGMAS) -> np.ndarray:
    """(N, C * len(sigmas)) float32 features of the pixels `where` (bool (H, W)); smoothing is done on the
    bounding box of `where` plus a margin, not the whole image."""
    from scipy import ndimage as ndi

    rows, cols = np.nonzero(where)
    n_feat = norm.shape[0] * len(sigmas)
    if rows.size == 0:
        return np.zeros((0, n_feat), np.float32)
    m = int(4 * max(sigmas)) + 1
    r0, r1 = max(rows.min() - m, 0), min(rows.max() + 1 + m, where.shape[0])
    c0, c1 = max(cols.min() - m, 0), min(cols.max() + 1 + m, where.shape[1])
    box, inside = norm[:, r0:r1, c0:c1], where[r0:r1, c0:c1]
    out = np.empty((rows.size, n_feat), np.float32)
    k = 0
    for plane in box:
        for s in sigmas:
            out[:, k] = (ndi.gaussian_filter(plane, s) if s else plane)[inside]
            k += 1
    return out


def build_pixel_net(n_in: int, hidden: int = HIDDEN, n_classes: int = 24):
    from torch import nn

    return nn.Sequential(
        nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_classes)
    )


@dataclass
class KitModel:
    net: object  # torch module in eval mode (CPU: a few ms per cell)
    card: dict
    path: str = ""

    @property
    def kit(self) -> str:
        return str(self.card["kit"])

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self.card["channels"])

    @property
    def sigmas(self) -> tuple[float, ...]:
        return tuple(self.card["config"]["sigmas"])

    def probabilities(self, norm: np.ndarray, where: np.ndarray) -> np.ndarray:
        """(N, 24) class probabilities of the pixels `where`; `norm` = normalised planes in `channels` order."""
        import torch

        x = torch.from_numpy(pixel_features(norm, where, self.sigmas))
        with torch.inference_mode():
            return torch.softmax(self.net(x), 1).numpy()


def save_kit_model(net, card: dict, path: str | Path) -> Path:
    """Weights + card; the card must name the kit and its channels in the order the net reads them."""
    for k in ("kit", "channels", "config"):
        if k not in card:
            raise ValueError(f"the kit model card needs {k!r}")
    return save_model(
        net.state_dict(), dict(card, architecture=ARCH, classes=[NAMES[i] for i in range(1, 25)]), path
    )


def load_kit_model(path: str | Path) -> KitModel:
    """Load a kit model (sha256 and architecture checked by model_files)."""
    state, card = load_model(path, ARCH)
    try:
        cfg = card["config"]
        net = build_pixel_net(len(card["channels"]) * len(cfg["sigmas"]), int(cfg["hidden"]))
        net.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelFileError(
            f"{path}: weights do not match the card's network ({exc}); re-train the kit model"
        ) from exc
    return KitModel(net.eval(), card, str(path))
