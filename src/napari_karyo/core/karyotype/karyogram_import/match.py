"""Find where each karyogram cut-out lies in the spread.

The spread is turned into ink (0 white .. 1 black); pixels of burnt-in annotation drawings (anything not exactly
grey) are filled from the nearest genuine pixel, and objects an annotator ringed in red (debris) are blanked.
Each cut-out is searched over rotation and flip at a quarter of the resolution, the best few places are then
refined at full resolution over a finer angle and a small scale range. The score is the normalised
cross-correlation of the ink under the cut-out's mask grown by a small margin, so both the banding and the
outline must agree (Padfield's masked NCC, computed with FFTs).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft
from scipy import ndimage as ndi

from napari_karyo.core.karyotype.infer.lab_marks import red_rings
from napari_karyo.core.karyotype.karyogram_import.cutouts import Cutout

COARSE = 4  # downsampling of the coarse search
COARSE_STEP = 12  # degrees between coarse rotations
FINE_ANGLES = (-8, -4, 0, 4, 8)  # degrees around the coarse angle
SCALES = (0.95, 1.05)  # tried around 1 at the best fine angle
PEAKS = 10  # places per cut-out kept from the coarse search
KEEP_BELOW_BEST = 0.25  # coarse places this far below the cut-out's best are dropped
SHIFT = 8  # pixels searched around each coarse place at full resolution
TRY_FLIP_BELOW = 0.8  # cut-outs matching worse than this unflipped are searched mirrored too
SEARCH_THREADS = 2  # cut-outs searched at once (`search_many`)
MARGIN = 2  # pixels the cut-out's mask grows for the score, so the outline (white around it) counts too


@dataclass
class Placement:
    cutout: int  # index into the cut-out list
    flip: bool
    angle: float  # degrees, counter-clockwise (scipy.ndimage.rotate)
    scale: float
    cy: float  # centre in the spread, pixels
    cx: float
    score: float = 0.0
    mask: np.ndarray | None = None  # bool crop of the placed cut-out
    offset: tuple[int, int] = (0, 0)


def spread_ink(rgb: np.ndarray) -> np.ndarray:
    """Ink of the spread's genuine grey pixels; drawings inpainted, red-ringed debris blanked."""
    a = rgb.astype(np.int16)
    coloured = (a.max(axis=2) - a.min(axis=2)) > 0
    grey = rgb[..., 1].astype(np.float32)
    if coloured.any():
        idx = ndi.distance_transform_edt(coloured, return_distances=False, return_indices=True)
        grey = grey[idx[0], idx[1]]
        grey[red_rings(rgb)] = 255.0
    return ((255.0 - grey) / 255.0).astype(np.float32)


def _down(a: np.ndarray, f: int) -> np.ndarray:
    h, w = a.shape[0] // f * f, a.shape[1] // f * f
    return a[:h, :w].reshape(h // f, f, w // f, f).mean(axis=(1, 3))


def transformed(ink: np.ndarray, mask: np.ndarray, flip: bool, angle: float, scale: float):
    """(ink, mask) of a cut-out flipped left-right, scaled, then rotated; the box grows to hold it."""
    if flip:
        ink, mask = ink[:, ::-1], mask[:, ::-1]
    both = np.stack([ink, mask.astype(np.float32)])
    if scale != 1.0:
        both = ndi.zoom(both, (1, scale, scale), order=1)
    both = ndi.rotate(
        both, angle, axes=(2, 1), order=1
    )  # one call for both: the calls dominate, not the pixels
    return both[0], both[1] > 0.5


def _templates(ink, mask, poses, size: int, margin: int):
    """Stack of centred (ink, grown mask) templates of side `size`, one per (flip, angle, scale) pose."""
    if (
        margin
    ):  # grow once before turning (not once per pose): the same mask to a pixel, a fraction of the cost
        ink = np.pad(ink, margin)
        mask = ndi.binary_dilation(np.pad(mask, margin), iterations=margin)
    t = np.zeros((len(poses), size, size), np.float32)
    m = np.zeros_like(t)
    for k, (flip, angle, scale) in enumerate(poses):
        ti, tm = transformed(ink, mask, flip, angle, scale)
        h, w = min(ti.shape[0], size), min(ti.shape[1], size)
        y0, x0 = (size - h) // 2, (size - w) // 2
        t[k, y0 : y0 + h, x0 : x0 + w] = ti[:h, :w] * tm[:h, :w]
        m[k, y0 : y0 + h, x0 : x0 + w] = tm[:h, :w]
    return t, m


def _spectra(t: np.ndarray, m: np.ndarray, shape: tuple[int, int]) -> tuple:
    """What the NCC needs of a template stack for images of FFT size `shape`."""
    fm, ft, ft2 = (np.conj(sfft.rfft2(x, shape)) for x in (m, t, t * t))
    n = np.maximum(m.sum(axis=(1, 2)), 1.0)[:, None, None]
    return fm, ft, ft2, n, t.sum(axis=(1, 2))[:, None, None], (t * t).sum(axis=(1, 2))[:, None, None]


def _fft_shape(image: np.ndarray) -> tuple[int, int]:
    return tuple(sfft.next_fast_len(s, real=True) for s in image.shape)


def _ncc(image: np.ndarray, spectra: tuple, d: int, valid: np.ndarray | None = None) -> np.ndarray:
    """Masked NCC; with `valid`, image pixels outside it (blanked, or off the image) are left out of both the
    image's and the template's sums (Padfield's form), and places with under half the template valid score 0."""
    fm, ft, ft2, n, tsum, t2 = spectra
    shape = _fft_shape(image)
    if valid is not None:
        image = image * valid
    fs, fs2 = sfft.rfft2(image, shape), sfft.rfft2(image * image, shape)
    s1, s2, st = (sfft.irfft2(x, shape) for x in (fs * fm, fs2 * fm, fs * ft))
    if valid is not None:
        fv = sfft.rfft2(valid.astype(np.float32), shape)
        full = n
        n, tsum, t2 = (sfft.irfft2(fv * x, shape) for x in (fm, ft, ft2))
        n = np.maximum(n, 1.0)
    var_s = np.clip(s2 - s1 * s1 / n, 1e-6, None)
    var_t = np.clip(t2 - tsum * tsum / n, 1e-6, None)
    ncc = (st - s1 * tsum / n) / np.sqrt(var_s * var_t)
    if valid is not None:
        ncc[n < 0.5 * full] = 0.0
    return ncc[:, : image.shape[0] - d + 1, : image.shape[1] - d + 1]


def masked_ncc(
    image: np.ndarray, t: np.ndarray, m: np.ndarray, valid: np.ndarray | None = None
) -> np.ndarray:
    """NCC of each template over `image` under its mask: (n, H - D + 1, W - D + 1), index = template top-left."""
    return _ncc(image, _spectra(t, m, _fft_shape(image)), t.shape[1], valid)


class _Bank:
    """Template spectra of one cut-out for the full-resolution windows, by pose: the coarse places of a cut-out
    share angles (multiples of the fine step), so each pose is turned and transformed once, not once per place."""

    def __init__(self, cut: Cutout, d: int, window: int):
        self.cut, self.d, self.shape = cut, d, _fft_shape(np.empty((window, window)))
        self.cache: dict[tuple, tuple] = {}

    def spectra(self, poses: list[tuple]) -> tuple:
        keys = [(f, round(a % 360, 3), s) for f, a, s in poses]
        todo = list(dict.fromkeys(k for k in keys if k not in self.cache))
        if todo:
            t, m = _templates(self.cut.ink, self.cut.mask, todo, self.d, MARGIN)
            fresh = _spectra(t, m, self.shape)
            for i, k in enumerate(todo):
                self.cache[k] = tuple(x[i] for x in fresh)
        return tuple(np.stack([self.cache[k][j] for k in keys]) for j in range(6))


def coarse_places(
    ink_small: np.ndarray, cut: Cutout, index: int, flip: bool = False, valid: np.ndarray | None = None
) -> list[Placement]:
    """Best few (angle, centre) of one cut-out at the coarse resolution; its centre must lie in the spread."""
    from skimage.feature import peak_local_max

    ci = _down(cut.ink, COARSE)
    cm = _down(cut.mask.astype(np.float32), COARSE) > 0.4
    if not cm.any():
        return []
    d = int(np.ceil(np.hypot(*cm.shape))) + 4
    poses = [(flip, float(a), 1.0) for a in range(0, 360, COARSE_STEP)]
    t, m = _templates(ci, cm, poses, d, MARGIN)
    pad = d // 2
    ncc = masked_ncc(np.pad(ink_small, pad), t, m, None if valid is None else np.pad(valid, pad))
    best, arg = ncc.max(axis=0), ncc.argmax(axis=0)
    peaks = peak_local_max(best, min_distance=2, num_peaks=PEAKS, threshold_abs=0.1, exclude_border=False)
    out = []
    for y, x in peaks:
        flip, angle, _ = poses[arg[y, x]]
        cy = (y - pad + d / 2) * COARSE + (COARSE - 1) / 2  # template top-left y - pad in the unpadded image
        cx = (x - pad + d / 2) * COARSE + (COARSE - 1) / 2
        out.append(Placement(index, flip, angle, 1.0, cy, cx, float(best[y, x])))
    top = max((p.score for p in out), default=0.0)
    return [p for p in out if p.score >= top - KEEP_BELOW_BEST]


def _window(ink: np.ndarray, y0: int, x0: int, size: int) -> np.ndarray:
    win = np.zeros((size, size), np.float32)
    ys, xs = max(0, y0), max(0, x0)
    ye, xe = min(ink.shape[0], y0 + size), min(ink.shape[1], x0 + size)
    if ye > ys and xe > xs:
        win[ys - y0 : ye - y0, xs - x0 : xe - x0] = ink[ys:ye, xs:xe]
    return win


def refine(ink: np.ndarray, bank: _Bank, p: Placement, valid: np.ndarray | None = None) -> Placement:
    """Full-resolution angle, scale and shift around a coarse place; the placed mask is attached."""
    cut, d = bank.cut, bank.d
    y0, x0 = int(round(p.cy - d / 2)) - SHIFT, int(round(p.cx - d / 2)) - SHIFT
    win = _window(ink, y0, x0, d + 2 * SHIFT)
    vwin = None if valid is None else _window(valid, y0, x0, d + 2 * SHIFT)
    # the coarse search cannot see the bands of a small chromosome, so it may have it upside down
    poses = [(p.flip, p.angle + turn + da, 1.0) for turn in (0, 180) for da in FINE_ANGLES]
    ncc = _ncc(win, bank.spectra(poses), d, vwin)
    angle = poses[int(np.argmax(ncc.reshape(len(poses), -1).max(axis=1)))][1]
    poses = [(p.flip, angle, 1.0), (p.flip, angle - 2, 1.0), (p.flip, angle + 2, 1.0)]
    poses += [(p.flip, angle, s) for s in SCALES]
    ncc = _ncc(win, bank.spectra(poses), d, vwin)
    k, yy, xx = np.unravel_index(int(np.argmax(ncc)), ncc.shape)
    flip, angle, scale = poses[k]
    cy, cx = y0 + yy + d / 2, x0 + xx + d / 2
    _, tm = transformed(np.pad(cut.ink, MARGIN), np.pad(cut.mask, MARGIN), flip, angle, scale)
    h, w = tm.shape
    # same box and centring as the template (padded by the margin): its top-left sat (d - h) // 2 in the d-box
    oy, ox = y0 + yy + (d - h) // 2, x0 + xx + (d - w) // 2
    return Placement(p.cutout, flip, angle, scale, cy, cx, float(ncc[k, yy, xx]), tm, (oy, ox))


def search(
    ink: np.ndarray, cut: Cutout, index: int, small: np.ndarray, valid: np.ndarray | None = None
) -> list[Placement]:
    """Refined candidate places of one cut-out (`small`: the ink at the coarse resolution; `valid`: the pixels
    that count, None for all); mirrored places are searched only when no unmirrored one fits well (the cut-outs
    are rarely mirrored, and it halves the time)."""
    vsmall = None if valid is None else _down(valid.astype(np.float32), COARSE) > 0.5
    d = int(np.ceil(np.hypot(*cut.mask.shape) * max(SCALES))) + 6
    bank = _Bank(cut, d, d + 2 * SHIFT)
    out = [refine(ink, bank, p, valid) for p in coarse_places(small, cut, index, valid=vsmall)]
    if max((p.score for p in out), default=0.0) < TRY_FLIP_BELOW:
        out += [refine(ink, bank, p, valid) for p in coarse_places(small, cut, index, True, vsmall)]
    return out


def search_many(
    ink: np.ndarray, jobs: list[tuple[int, Cutout]], small: np.ndarray, valid: np.ndarray | None = None
):
    """`search` of each (index, cut-out) job, yielded in order, SEARCH_THREADS at a time: the FFTs, rotations and
    array arithmetic run outside Python's lock, so two searches use both cores of a 2-core CPU (one search with
    two FFT threads left the second core mostly idle: a large spread took 26 s instead of ~16). Stopping early
    (a cancelled job) waits only for the searches already running."""
    pool = ThreadPoolExecutor(max_workers=SEARCH_THREADS)
    try:
        yield from pool.map(lambda job: search(ink, job[1], job[0], small, valid), jobs)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def coarse_ink(ink: np.ndarray) -> np.ndarray:
    return _down(ink, COARSE)
