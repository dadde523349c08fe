"""The registration stages' algorithms on working-resolution slide views (see register.py for the hierarchy).

All transforms here act on working pixels; register.py converts them to full resolution.
"""

from __future__ import annotations

import numpy as np

from napari_karyo.core.pathology.tissue import SlideView, downsample
from napari_karyo.core.pathology.transform import Transform

SWEEP_SIDE = 160  # rotation sweep resolution
COARSE_SIDE = 256
SILHOUETTE_SIDE = 128  # silhouette affine fit: the blurred outlines hold no detail finer than this, and the
#   ~450 warps of its search cost 4x less than at COARSE_SIDE
SWEEP_STEP = 5.0  # degrees
DETAIL_SIGMA = 6.0  # working pixels
FIELD_SPACING = 4  # working pixels between displacement nodes
FIELD_SIGMA = 0.03  # Gaussian smoothing of the non-rigid field, share of the working image's longest side


# ---------------------------------------------------------------------------------------------- similarity
def warp(img: np.ndarray, t: Transform, shape) -> np.ndarray:
    from scipy.ndimage import affine_transform

    if t.is_rigid_only():  # fast path: one affine resampling
        inv = np.linalg.inv(t.affine)
        return affine_transform(img, inv[:2, :2], inv[:2, 2], output_shape=tuple(shape), order=1)
    return t.warp_image(img, shape, order=1)


def domain(moving: SlideView, t: Transform, shape) -> np.ndarray:
    """1 where the warped moving image has data, 0 where it falls outside its slide."""
    valid = np.ones(moving.od.shape, np.float32) if moving.valid is None else moving.valid.astype(np.float32)
    return (warp(valid, t, shape) > 0.99).astype(np.float32)


def similarity(fixed: SlideView, moving: SlideView, t: Transform, weight: np.ndarray | None = None) -> float:
    """Correlation of the equalised OD where both slides have data (working pixels)."""
    m = warp(moving.structure, t, fixed.od.shape)
    w = domain(moving, t, fixed.od.shape)
    if weight is not None:
        w = w * weight
    if w.sum() < 16:
        return -1.0
    a, b = fixed.structure, m
    ma, mb = (w * a).sum() / w.sum(), (w * b).sum() / w.sum()
    cov = (w * (a - ma) * (b - mb)).sum()
    den = np.sqrt((w * (a - ma) ** 2).sum() * (w * (b - mb) ** 2).sum())
    return float(cov / den) if den > 0 else -1.0


def detail(fixed: SlideView, moving: SlideView, t: Transform, weight: np.ndarray | None = None) -> float:
    """Correlation of the fine detail (equalised OD minus its blur): near 0 when only the tissue outlines match,
    as between unrelated slides, clearly positive when the structures inside line up."""
    from scipy.ndimage import binary_erosion, gaussian_filter

    m = warp(moving.structure, t, fixed.od.shape)
    # inside both tissues only, away from their outlines: matching outlines alone must not count
    both = fixed.mask & (warp(moving.mask.astype(np.float32), t, fixed.od.shape) > 0.5)
    inner = binary_erosion(both, iterations=int(2 * DETAIL_SIGMA))
    w = domain(moving, t, fixed.od.shape) * inner * (1.0 if weight is None else weight)
    a = (fixed.structure - gaussian_filter(fixed.structure, DETAIL_SIGMA)) * w
    b = (m - gaussian_filter(m, DETAIL_SIGMA)) * w
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def dice(fixed: SlideView, moving: SlideView, t: Transform) -> float:
    m = warp(moving.mask.astype(np.float32), t, fixed.od.shape) > 0.5
    return float(2 * (m & fixed.mask).sum() / max(m.sum() + fixed.mask.sum(), 1))


# ---------------------------------------------------------------------------------------------- coarse
def _rotation_about(angle_deg: float, centre_from, centre_to) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    m = np.eye(3)
    m[:2, :2] = r
    m[:2, 2] = np.asarray(centre_to) - r @ np.asarray(centre_from)
    return m


def _best_shift(f_fft: np.ndarray, moving_canvas: np.ndarray, shape) -> tuple[float, np.ndarray]:
    """Peak of the circular cross-correlation (normalised) and its sub-pixel shift."""
    cc = np.fft.irfft2(f_fft * np.conj(np.fft.rfft2(moving_canvas)), s=shape)
    peak = np.unravel_index(np.argmax(cc), cc.shape)
    shift = np.array(peak, float)
    for ax in range(2):  # parabola through the peak and its neighbours
        idx = list(peak)
        idx[ax] = (peak[ax] - 1) % shape[ax]
        lo = cc[tuple(idx)]
        idx[ax] = (peak[ax] + 1) % shape[ax]
        hi = cc[tuple(idx)]
        den = lo - 2 * cc[peak] + hi
        if den < 0:
            shift[ax] += 0.5 * (lo - hi) / den
    shift = np.where(shift > np.array(shape) / 2, shift - np.array(shape), shift)
    norm = np.linalg.norm(moving_canvas) + 1e-9
    return float(cc[peak] / norm), shift


def _rotation_search(fixed: np.ndarray, moving: np.ndarray, angles) -> tuple[float, Transform]:
    """Best (score, transform moving->fixed) over `angles`: each rotates moving about its centre, FFT gives shift."""
    from scipy.fft import next_fast_len
    from scipy.ndimage import affine_transform, gaussian_filter

    diag = max(np.hypot(*fixed.shape), np.hypot(*moving.shape))
    side = next_fast_len(int(1.25 * diag) + 2)
    shape = (side, side)
    centre = np.array(shape) / 2
    f_off = (centre - np.array(fixed.shape) / 2).round()
    canvas = np.zeros(shape, np.float32)
    canvas[int(f_off[0]) : int(f_off[0]) + fixed.shape[0], int(f_off[1]) : int(f_off[1]) + fixed.shape[1]] = (
        fixed
    )
    f_fft = np.fft.rfft2(gaussian_filter(canvas, 1.0))
    m_centre = (np.array(moving.shape) - 1) / 2
    best = (-np.inf, None)
    for angle in angles:
        rot = _rotation_about(angle, m_centre, centre)
        inv = np.linalg.inv(rot)
        mc = affine_transform(moving, inv[:2, :2], inv[:2, 2], output_shape=shape, order=1)
        score, shift = _best_shift(f_fft, gaussian_filter(mc, 1.0), shape)
        if score > best[0]:
            to_fixed = np.eye(3)
            to_fixed[:2, 2] = shift - f_off
            best = (score, Transform(to_fixed @ rot))
    return best


def coarse_rotation(fixed: SlideView, moving: SlideView) -> Transform:
    """Rotation sweep at SWEEP_SIDE, then a 1-degree refinement of the best angles at COARSE_SIDE (work coords)."""
    side = max(*fixed.od.shape, *moving.od.shape)
    results = []
    k = SWEEP_SIDE / side
    fs, ms = downsample(fixed.silhouette, k), downsample(moving.silhouette, k)
    for angle in np.arange(0, 360, SWEEP_STEP):
        score, _ = _rotation_search(fs, ms, [angle])
        results.append((score, angle))
    results.sort(reverse=True)
    k = COARSE_SIDE / side
    fs, ms = downsample(fixed.silhouette, k), downsample(moving.silhouette, k)
    best = (-np.inf, None)
    for _, angle in results[:3]:
        cand = _rotation_search(fs, ms, angle + np.arange(-SWEEP_STEP + 1, SWEEP_STEP, 1.0))
        if cand[0] > best[0]:
            best = cand
    return best[1].rescaled(1 / k)


def silhouette_affine(fixed: SlideView, moving: SlideView, t: Transform) -> Transform:
    """Affine correction (scale, shear: sections shrink unevenly) maximising the overlap of the blurred tissue
    silhouettes at the coarse size; the rotation search cannot see scale. Kept only if the similarity rises."""
    from scipy.ndimage import affine_transform, gaussian_filter
    from scipy.optimize import minimize

    k = SILHOUETTE_SIDE / max(*fixed.od.shape, *moving.od.shape)
    blur = 2.0 * SILHOUETTE_SIDE / COARSE_SIDE
    fs = gaussian_filter(downsample(fixed.silhouette, k), blur)
    ms = gaussian_filter(warp(downsample(moving.silhouette, k), t.rescaled(k), fs.shape), blur)
    centre = (np.array(fs.shape) - 1) / 2
    side = max(fs.shape)
    f0 = fs - fs.mean()

    def correction(p) -> np.ndarray:
        lin = np.eye(2) + p[2:].reshape(2, 2) / 10
        m = np.eye(3)
        m[:2, :2] = lin
        m[:2, 2] = centre - lin @ centre + p[:2] * side / 10
        return m

    def cost(p) -> float:
        inv = np.linalg.inv(correction(p))
        w = affine_transform(ms, inv[:2, :2], inv[:2, 2], order=1)
        w = w - w.mean()
        return -float((f0 * w).sum() / (np.linalg.norm(f0) * np.linalg.norm(w) + 1e-9))

    p = minimize(cost, np.zeros(6), method="Powell", options={"xtol": 1e-3, "ftol": 1e-5, "maxfev": 600}).x
    c = Transform(correction(p)).rescaled(1 / k)
    cand = c.compose(t)
    return cand if similarity(fixed, moving, cand) > similarity(fixed, moving, t) else t


# ---------------------------------------------------------------------------------------------- fine
def _flow(fixed: SlideView, moving: SlideView, t: Transform, step: int = 1) -> np.ndarray:
    """TV-L1 optical flow (2, h, w): fixed pixel x matches the warped moving image at x + flow(x).

    Both images are ranked over the same pixels (where both slides have data, in the fixed frame): ranks taken
    over each whole image differ wherever the two show different amounts of glass or padding, and the flow would
    chase those intensity differences. `step` > 1 computes the flow on every step-th pixel (step^2 times cheaper)
    and interpolates it back to the working grid.
    """
    from scipy.ndimage import gaussian_filter, map_coordinates
    from skimage.registration import optical_flow_tvl1

    both = domain(moving, t, fixed.od.shape) > 0
    if fixed.valid is not None:
        both &= fixed.valid
    a, b = (gaussian_filter(r, 1.0) for r in common_ranks(fixed.od, warp(moving.od, t, fixed.od.shape), both))
    flow = optical_flow_tvl1(
        a[::step, ::step], b[::step, ::step], attachment=10, tightness=0.3, num_warp=3, num_iter=10, tol=1e-3
    )
    if step == 1:
        return flow
    at = np.mgrid[0 : a.shape[0], 0 : a.shape[1]].astype(np.float32) / step
    return np.stack([step * map_coordinates(f, at, order=1, mode="nearest") for f in flow]).astype(np.float32)


def common_ranks(fixed_od: np.ndarray, moving_od: np.ndarray, where: np.ndarray) -> list[np.ndarray]:
    """Both (lightly smoothed) ODs mapped through their ranks among the same pixels `where`, 0 elsewhere."""
    from scipy.ndimage import gaussian_filter

    out = []
    for od in (fixed_od, moving_od):
        smooth = gaussian_filter(od, 1.0)[where]
        ranked = np.zeros(od.shape, np.float32)
        ranked[where] = np.searchsorted(np.sort(smooth), smooth) / max(smooth.size - 1, 1)
        out.append(ranked)
    return out


def _fit_affine(flow: np.ndarray, weight: np.ndarray) -> Transform | None:
    """Weighted robust affine C with C(x + flow(x)) ~ x: maps warped-moving pixels onto fixed ones."""
    rr, cc = np.mgrid[0 : flow.shape[1] : 2, 0 : flow.shape[2] : 2]
    w = weight[rr, cc].ravel().astype(np.float64)
    x = np.stack([rr.ravel(), cc.ravel()], 1).astype(np.float64)
    y = x + np.stack([flow[0][rr, cc].ravel(), flow[1][rr, cc].ravel()], 1)
    keep = w > 0
    if keep.sum() < 50:
        return None
    x, y, w = x[keep], y[keep], w[keep]
    design = np.hstack([y, np.ones((len(y), 1))])
    for _ in range(3):  # reweighting drops the flow's outliers (tears, folds, missing tissue)
        sw = np.sqrt(w)[:, None]
        sol, *_ = np.linalg.lstsq(design * sw, x * sw, rcond=None)
        res = np.linalg.norm(design @ sol - x, axis=1)
        w = w * (res < max(3 * np.median(res), 1.0))
    return Transform.from_matrix_2x3(sol.T)


def _overlap_weight(
    fixed: SlideView, moving: SlideView, t: Transform, region: np.ndarray | None
) -> np.ndarray:
    """Where the flow means something: textured parts of the fixed slide that the moving slide covers."""
    from scipy.ndimage import gaussian_filter, gaussian_gradient_magnitude

    w = gaussian_filter(gaussian_gradient_magnitude(fixed.structure, 1.5), 3.0) * domain(
        moving, t, fixed.od.shape
    )
    if region is not None:
        w = w * (1.0 + 4.0 * region)
    return w


def fine_affine(fixed: SlideView, moving: SlideView, t: Transform, region) -> tuple[Transform, np.ndarray]:
    """Flow-fitted affine corrections of `t` (at most 2, each kept only if the similarity rises), and the residual
    pull-back flow left after the kept one, the non-rigid stage's input (saves computing the flow again).

    The first flow is computed at half the working resolution: it only has to bring the affine close (the same
    accuracy on the benchmark pairs, for a quarter of its cost); the second, whose residual feeds the non-rigid
    field, at full working resolution."""
    best, best_score = t, similarity(fixed, moving, t)
    residual = None
    for step in (2, 1):
        flow = _flow(fixed, moving, best, step)
        corr = _fit_affine(flow, _overlap_weight(fixed, moving, best, region))
        residual = flow
        if corr is None:
            break
        cand = corr.compose(best)
        score = similarity(fixed, moving, cand)
        if score <= best_score:
            break
        best, best_score = cand, score
        # warped moving W'(z) = W(C^-1 z): fixed x matches W' at C(x + flow(x))
        grid = np.mgrid[0 : flow.shape[1], 0 : flow.shape[2]].astype(np.float64)
        moved = np.einsum("ij,jhw->ihw", corr.affine[:2, :2], grid + flow) + corr.affine[:2, 2, None, None]
        residual = (moved - grid).astype(np.float32)
    return best, residual


def nonrigid(fixed: SlideView, moving: SlideView, t: Transform, region, flow: np.ndarray) -> Transform:
    """The smoothed residual pull-back `flow` (after `t`) as a forward displacement field on a FIELD_SPACING grid
    (work coords)."""
    from scipy.ndimage import gaussian_filter, map_coordinates

    w = _overlap_weight(fixed, moving, t, region)
    sigma = FIELD_SIGMA * max(fixed.od.shape)
    den = gaussian_filter(w, sigma) + 1e-3
    smooth = np.stack([gaussian_filter(f * w, sigma) / den for f in flow])  # normalised convolution
    h, w_ = fixed.od.shape
    grid = np.stack(
        np.meshgrid(
            np.arange(0, h + FIELD_SPACING, FIELD_SPACING),
            np.arange(0, w_ + FIELD_SPACING, FIELD_SPACING),
            indexing="ij",
        )
    ).astype(float)
    d = np.zeros_like(grid)
    for _ in range(6):  # invert the pull-back flow: d(y) = -flow(y + d(y))
        pos = grid + d
        d = -np.stack([map_coordinates(s, pos, order=1, mode="nearest") for s in smooth])
    return Transform(t.affine, d.astype(np.float32), float(FIELD_SPACING))
