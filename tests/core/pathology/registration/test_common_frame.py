"""The same pair on other canvases: padded with white, cropped, rescaled. The landmark error must not grow, and
the non-rigid stage must keep working (it used to break when the moving canvas was larger than the fixed one)."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from test_register import tissue_slide

from napari_karyo.core.pathology.registration.register import register_pair
from napari_karyo.core.pathology.tissue import downsample
from napari_karyo.core.pathology.transform import Transform


def elastic_pair(seed=4, shape=(300, 360)):
    """fixed, moving = fixed seen through a rotation + smooth field (its generator gen: fixed -> moving), points."""
    rng = np.random.default_rng(seed)
    fixed = tissue_slide(seed, shape)
    a = np.deg2rad(25)
    lin = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    aff = np.eye(3)
    aff[:2, :2] = lin
    aff[:2, 2] = np.array(shape) / 2 - lin @ (np.array(shape) / 2) + (8, -6)
    field = np.stack([gaussian_filter(rng.normal(size=(25, 29)), 3) for _ in range(2)])
    field *= 4.0 / np.abs(field).max()  # up to 4 px: a section's uneven stretch
    gen = Transform(aff, field.astype(np.float32), 15.0)
    moving = (255 - gen.warp_image(255 - fixed, shape)).astype(np.uint8)
    pts = np.argwhere(fixed.mean(-1) < 200)
    pts = pts[rng.choice(len(pts), 60, replace=False)].astype(float)
    return fixed, moving, pts, gen.map_points(pts)


def median_error(fixed, moving, fixed_pts, moving_pts):
    res = register_pair(fixed, moving)
    assert res.ok, res.message
    err = np.median(np.linalg.norm(res.transform.map_points(moving_pts) - fixed_pts, axis=1))
    return err, res.transform.displacement is not None


@pytest.fixture(scope="module")
def pair():
    fixed, moving, f_pts, m_pts = elastic_pair()
    return fixed, moving, f_pts, m_pts, median_error(fixed, moving, f_pts, m_pts)


def test_nonrigid_stage_helps_on_the_plain_pair(pair):
    fixed, moving, f_pts, m_pts, (err, kept) = pair
    res = register_pair(fixed, moving)
    affine_err = np.median(np.linalg.norm(res.stages["fine_affine"].map_points(m_pts) - f_pts, axis=1))
    assert kept and err < affine_err, (err, affine_err)
    assert err < 1.5


@pytest.mark.parametrize(
    "variant",
    ["pad white", "pad white one side", "crop", "rescale 0.5", "rescale 2.0"],
)
def test_error_does_not_grow_on_another_canvas(pair, variant):
    fixed, moving, f_pts, m_pts, (err0, kept0) = pair
    if variant == "pad white":  # an exporter's white margin all round: the moving canvas is larger
        moving2, m2 = np.pad(moving, ((70, 70), (70, 70), (0, 0)), constant_values=255), m_pts + 70
    elif variant == "pad white one side":  # another aspect ratio
        moving2, m2 = np.pad(moving, ((0, 0), (0, 200), (0, 0)), constant_values=255), m_pts
    elif variant == "crop":
        moving2, m2 = moving[25:, 30:-20], m_pts - (25, 30)
    else:
        k = float(variant.split()[1])
        moving2 = np.clip(downsample(moving, k) if k < 1 else _upsample(moving, k), 0, 255).astype(np.uint8)
        k_r, k_c = moving2.shape[0] / moving.shape[0], moving2.shape[1] / moving.shape[1]
        m2 = m_pts * (k_r, k_c) + ((k_r - 1) / 2, (k_c - 1) / 2)
    err, kept = median_error(fixed, moving2, f_pts, m2)
    assert err <= 1.5 * err0 + 0.5, (variant, err0, err)
    assert kept == kept0


def _upsample(img, k):
    from skimage.transform import resize

    shape = (round(img.shape[0] * k), round(img.shape[1] * k), 3)
    return resize(img.astype(np.float32), shape, order=1, preserve_range=True)
