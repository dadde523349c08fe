"""Registration on small procedural tissue images with known transforms; bad input."""

import tracemalloc

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from napari_karyo.core.pathology.registration.register import (
    RegistrationError,
    register_pair,
    register_pair_steps,
    register_stack_steps,
)
from napari_karyo.core.pathology.tissue import downsample
from napari_karyo.core.pathology.transform import Transform


def tissue_slide(seed: int, shape=(220, 260), hue=(0.9, 0.5, 0.8)) -> np.ndarray:
    """A pink irregular tissue section with air spaces and texture on white glass (RGB uint8)."""
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[0 : shape[0], 0 : shape[1]]
    radius = 0.33 * min(shape) * (1 + 0.25 * gaussian_filter(rng.normal(size=shape), 12) * 12)
    body = np.hypot((rr - shape[0] / 2) / 0.8, cc - shape[1] / 2) < radius
    texture = gaussian_filter(rng.normal(size=shape), 2.0)
    holes = gaussian_filter(rng.normal(size=shape), 5.0) > 0.05
    od = body * (0.5 + 4 * texture) * ~holes
    od = np.clip(od, 0, 1.5)
    rgb = 255 * np.exp(-od[..., None] * np.array(hue))
    return rgb.astype(np.uint8)


def rigid(angle_deg, shift, centre) -> Transform:
    a = np.deg2rad(angle_deg)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    m = np.eye(3)
    m[:2, :2] = r
    m[:2, 2] = np.asarray(centre, float) - r @ centre + shift
    return Transform(m)


def make_moving(fixed: np.ndarray, truth: Transform, shape) -> np.ndarray:
    """moving = fixed seen through truth^-1 (truth maps moving -> fixed), white glass outside."""
    return 255 - truth.inverse().warp_image(255 - fixed, shape)


def tissue_points(img: np.ndarray, n=40) -> np.ndarray:
    pts = np.argwhere(img.mean(-1) < 200)
    return pts[np.random.default_rng(0).choice(len(pts), n, replace=False)].astype(float)


@pytest.fixture(scope="module")
def fixed():
    return tissue_slide(1)


def test_rotation_and_translation_recovered(fixed):
    truth = rigid(35, (9, -12), centre=(110, 130))
    moving = make_moving(fixed, truth, fixed.shape[:2])
    gen = register_pair_steps(fixed, moving)
    progress = []
    try:
        while True:
            progress.append(next(gen))
    except StopIteration as stop:
        res = stop.value
    assert [p[0] for p in progress][:2] == ["prepare", "coarse"] and progress[-1][1] == progress[-1][2]
    assert res.ok, res.message
    assert set(res.stages) >= {"coarse", "mid", "fine"}
    moving_pts = truth.inverse().map_points(tissue_points(fixed))
    err = np.linalg.norm(res.transform.map_points(moving_pts) - truth.map_points(moving_pts), axis=1)
    assert np.median(err) < 1.5, np.median(err)
    coarse_err = np.linalg.norm(
        res.stages["coarse"].map_points(moving_pts) - truth.map_points(moving_pts), axis=1
    )
    assert np.median(coarse_err) < 4


def test_half_resolution_flow_matches_the_full_one(fixed):
    """The first mid-stage flow runs on every 2nd pixel: brought back to the working grid it must say the same
    as the full-resolution flow where the tissue is (a known shift: moving -> fixed by (3, -2), so the fixed pixel
    x is found in the moving slide at x - (3, -2))."""
    from napari_karyo.core.pathology.registration.align import _flow
    from napari_karyo.core.pathology.tissue import slide_view

    moving = make_moving(fixed, rigid(0, (3, -2), centre=(0, 0)), fixed.shape[:2])
    fv, mv = slide_view(fixed, 1.0), slide_view(moving, 1.0)
    full, half = _flow(fv, mv, Transform.identity()), _flow(fv, mv, Transform.identity(), step=2)
    assert half.shape == full.shape == (2, *fixed.shape[:2])
    inner = fv.mask & np.roll(fv.mask, (3, -2), (0, 1))
    for flow in (full, half):
        assert np.allclose(np.median(flow[:, inner], axis=1), (-3, 2), atol=0.5)
    assert np.median(np.abs(half - full)[:, inner]) < 0.5


def test_different_sizes_and_scale(fixed):
    truth = rigid(-20, (20, 15), centre=(0, 0))
    moving = make_moving(fixed, truth, (260, 300))  # a bigger slide, tissue elsewhere on it
    res = register_pair(fixed, moving, stages=("coarse", "mid"))
    assert res.ok, res.message
    moving_pts = truth.inverse().map_points(tissue_points(fixed))
    err = np.linalg.norm(res.transform.map_points(moving_pts) - truth.map_points(moving_pts), axis=1)
    assert np.median(err) < 2.5
    # the same pair handed over at half resolution: the transform still speaks full-resolution pixels
    half = register_pair(
        downsample(fixed, 0.5).astype(np.uint8),
        downsample(moving, 0.5).astype(np.uint8),
        stages=("coarse", "mid"),
        scale=0.5,
    )
    err = np.linalg.norm(half.transform.map_points(moving_pts) - truth.map_points(moving_pts), axis=1)
    assert np.median(err) < 4


def test_region_and_noisy_fixed_mask(fixed):
    truth = rigid(20, (5, 5), centre=(110, 130))
    region = np.zeros(fixed.shape[:2], bool)
    region[60:160, 80:200] = True
    res = register_pair(
        fixed, make_moving(fixed, truth, fixed.shape[:2]), region_mask=region, fixed_mask=fixed.mean(-1) < 230
    )  # pixel-noisy, full of holes
    assert res.ok, res.message
    moving_pts = truth.inverse().map_points(tissue_points(fixed))
    err = np.linalg.norm(res.transform.map_points(moving_pts) - truth.map_points(moving_pts), axis=1)
    assert np.median(err) < 1.5


def test_blank_slide_raises(fixed):
    blank = np.full_like(fixed, 245)
    with pytest.raises(RegistrationError, match="no tissue"):
        register_pair(fixed, blank)
    with pytest.raises(RegistrationError, match="no tissue"):
        register_pair(blank, fixed)


def scrambled(img: np.ndarray, block=20) -> np.ndarray:
    """Same stain, same slide size, content cut into blocks and shuffled: nothing in it corresponds."""
    h, w = (s // block * block for s in img.shape[:2])
    tiles = (
        img[:h, :w]
        .reshape(h // block, block, w // block, block, 3)
        .swapaxes(1, 2)
        .reshape(-1, block, block, 3)
    )
    tiles = tiles[np.random.default_rng(3).permutation(len(tiles))]
    return tiles.reshape(h // block, w // block, block, block, 3).swapaxes(1, 2).reshape(h, w, 3)


def test_unrelated_slides_are_reported_not_returned_as_success(fixed):
    res = register_pair(fixed, scrambled(fixed), stages=("coarse", "mid"))
    assert not res.ok
    assert "could not register" in res.message


def test_stack_gives_reference_identity(fixed):
    truth = rigid(10, (5, 5), centre=(110, 130))
    images = {"HE": fixed, "CD31": make_moving(fixed, truth, fixed.shape[:2])}
    gen = register_stack_steps(images, "HE", stages=("coarse",))
    try:
        while True:
            _, done, total = next(gen)
            assert 0 <= done <= total
    except StopIteration as stop:
        results = stop.value
    np.testing.assert_array_equal(results["HE"].transform.affine, np.eye(3))
    assert results["CD31"].ok
    with pytest.raises(RegistrationError, match="reference"):
        next(register_stack_steps(images, "Ki67"))


def test_downsample_of_a_huge_level_stays_bounded():
    big = np.full((3000, 3000, 3), 230, np.uint8)  # 27 MB; a float64 copy would be 216 MB
    tracemalloc.start()
    small = downsample(big, 0.1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert small.shape == (300, 300, 3) and small.dtype == np.float32
    assert peak < 100e6, peak


def test_cli_register_writes_loadable_transforms(fixed, tmp_path, capsys):
    from PIL import Image

    from napari_karyo.cli import main
    from napari_karyo.core.pathology.transform import load_transforms

    truth = rigid(-15, (6, 4), centre=(110, 130))
    Image.fromarray(fixed).save(tmp_path / "HE.png")
    Image.fromarray(make_moving(fixed, truth, fixed.shape[:2])).save(tmp_path / "CD31.png")
    glass = 240 + np.random.default_rng(0).integers(0, 4, fixed.shape)  # empty glass with sensor noise
    Image.fromarray(glass.astype(np.uint8)).save(tmp_path / "blank.png")
    out = tmp_path / "t.json"
    assert (
        main(["-q", "register", str(tmp_path / "HE.png"), str(tmp_path / "CD31.png"), "--out", str(out)]) == 0
    )
    assert "CD31: ok" in capsys.readouterr().out
    transforms, meta = load_transforms(out)
    assert meta["reference"] == "HE" and set(transforms) == {"HE", "CD31"}
    assert (
        main(["-q", "register", str(tmp_path / "HE.png"), str(tmp_path / "blank.png"), "--out", str(out)])
        == 2
    )
    assert "no tissue" in capsys.readouterr().err
