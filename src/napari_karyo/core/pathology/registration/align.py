"""The registration stages' algorithms on working-resolution slide views (see register.py for the hierarchy).

All transforms here act on working pixels; register.py converts them to full resolution.
"""

from __future__ import annotations

import numpy as np

from napari_karyo.core.pathology.tissue import SlideView, downsample
from napari_karyo.core.pathology.transform import Transform

SWEEP_SIDE = 160  # rotation sweep resolution
COARSE_SIDE = 256
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
    return (warp(np.ones(moving.od.shape, np.float32), t, shape) > 0.99).astype(np.float32)


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

    k = COARSE_SIDE / max(*fixed.od.shape, *moving.od.shape)
    fs = gaussian_filter(downsample(fixed.silhouette, k), 2.0)
    ms = gaussian_filter(warp(downsample(moving.silhouette, k), t.rescaled(k), fs.shape), 2.0)
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


def _feature_correction(fixed: np.ndarray, warped: np.ndarray, radius: float) -> Transform | None:
    """Affine from ORB matches between the fixed and the pre-aligned moving image (both equalised OD).

    Matches further apart than `radius` are dropped: after the previous stage true ones are close.
    """
    from skimage.feature import ORB, match_descriptors
    from skimage.measure import ransac
    from skimage.transform import AffineTransform

    pts, descs = [], []
    for img in (fixed, warped):
        orb = ORB(n_keypoints=800, fast_threshold=0.05, downscale=1.3, n_scales=4)
        try:
            orb.detect_and_extract(img)
        except (RuntimeError, ValueError):  # too few keypoints in a near-empty image
            return None
        pts.append(orb.keypoints)
        descs.append(orb.descriptors)
    matches = match_descriptors(descs[0], descs[1], cross_check=True, max_ratio=0.9)
    src, dst = pts[1][matches[:, 1]], pts[0][matches[:, 0]]
    close = np.linalg.norm(src - dst, axis=1) < radius
    if close.sum() < 12:
        return None
    model, inliers = ransac(
        (src[close][:, ::-1], dst[close][:, ::-1]),
        AffineTransform,
        min_samples=3,
        residual_threshold=2.0,
        max_trials=500,
        rng=0,
    )
    if model is None or inliers.sum() < 10:
        return None
    xy = model.params  # acts on (x, y) = (col, row): swap to (row, col)
    swap = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1.0]])
    return Transform(swap @ xy @ swap)


def refine_with_features(fixed: SlideView, moving: SlideView, t: Transform, radius: float) -> Transform:
    warped = warp(moving.structure, t, fixed.od.shape)
    corr = _feature_correction(fixed.structure, warped, radius)
    if corr is None:
        return t
    cand = corr.compose(t)
    return cand if similarity(fixed, moving, cand) > similarity(fixed, moving, t) else t


# ---------------------------------------------------------------------------------------------- fine
def _flow(fixed: SlideView, moving: SlideView, t: Transform) -> np.ndarray:
    """TV-L1 optical flow (2, h, w): fixed pixel x matches the warped moving image at x + flow(x)."""
    from scipy.ndimage import gaussian_filter
    from skimage.registration import optical_flow_tvl1

    warped = warp(moving.structure, t, fixed.od.shape)
    return optical_flow_tvl1(
        gaussian_filter(fixed.structure, 1.0),
        gaussian_filter(warped, 1.0),
        attachment=10,
        tightness=0.3,
        num_warp=3,
        num_iter=10,
        tol=1e-3,
    )


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


def fine_affine(fixed: SlideView, moving: SlideView, t: Transform, region) -> Transform:
    best, best_score = t, similarity(fixed, moving, t)
    for _ in range(2):
        corr = _fit_affine(_flow(fixed, moving, best), _overlap_weight(fixed, moving, best, region))
        if corr is None:
            break
        cand = corr.compose(best)
        score = similarity(fixed, moving, cand)
        if score <= best_score:
            break
        best, best_score = cand, score
    return best


def nonrigid(fixed: SlideView, moving: SlideView, t: Transform, region) -> Transform:
    """The smoothed residual flow as a forward displacement field on a FIELD_SPACING grid (work coords)."""
    from scipy.ndimage import gaussian_filter, map_coordinates

    flow = _flow(fixed, moving, t)
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
