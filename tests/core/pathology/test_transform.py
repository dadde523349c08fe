"""Transform algebra and application: points, images, labels, JSON, landmarks."""

import json

import numpy as np
import pytest

from napari_karyo.core.pathology.transform import (
    Transform,
    TransformError,
    load_transforms,
    save_transforms,
)


def rigid(angle_deg, shift, centre=(50.0, 60.0)) -> Transform:
    a = np.deg2rad(angle_deg)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    m = np.eye(3)
    m[:2, :2] = r
    m[:2, 2] = np.asarray(centre) - r @ centre + shift
    return Transform(m)


def with_field(t: Transform, amp=3.0, shape=(30, 30), spacing=5.0) -> Transform:
    rr, cc = np.mgrid[0 : shape[0], 0 : shape[1]]
    field = amp * np.stack([np.sin(rr / 6.0), np.cos(cc / 7.0)]).astype(np.float32)
    return Transform(t.affine, field, spacing)


PTS = np.array([[10.0, 20.0], [40.5, 70.25], [90.0, 5.0], [60.0, 60.0]])


def test_identity_and_napari_affine():
    t = Transform.identity()
    np.testing.assert_allclose(t.map_points(PTS), PTS)
    assert t.is_rigid_only()
    r = rigid(30, (5, -3))
    np.testing.assert_allclose(r.napari_affine(), r.affine)
    assert not with_field(r).is_rigid_only()


@pytest.mark.parametrize("kind", ["affine", "similarity", "rigid"])
def test_from_landmarks_exact_on_noiseless_points(kind):
    truth = rigid(-40, (12, 7))
    if kind != "rigid":
        truth.affine[:2, :2] *= 1.2
    if kind == "affine":
        truth.affine[0, 1] += 0.1
    fixed = truth.map_points(PTS)
    fitted = Transform.from_landmarks(fixed, PTS, kind=kind)
    np.testing.assert_allclose(fitted.affine, truth.affine, atol=1e-9)


def test_from_landmarks_rejects_bad_input():
    with pytest.raises(TransformError, match="at least 3"):
        Transform.from_landmarks(PTS[:2], PTS[:2])
    with pytest.raises(TransformError, match="pairs"):
        Transform.from_landmarks(PTS, PTS[:3])
    with pytest.raises(TransformError, match="line"):
        line = np.array([[0.0, 0], [1, 1], [2, 2], [3, 3]])
        Transform.from_landmarks(line, line)


def test_compose_is_self_after_other():
    a, b = rigid(20, (3, 4)), rigid(-55, (-10, 2))
    np.testing.assert_allclose(a.compose(b).map_points(PTS), a.map_points(b.map_points(PTS)), atol=1e-9)
    fa, fb = with_field(a), with_field(b, amp=2.0)
    inner = np.array(
        [[40.0, 50.0], [55.5, 70.25], [62.0, 45.0], [50.0, 60.0]]
    )  # stay inside the fields' grids
    for first, second in ((fa, b), (a, fb), (fa, fb)):
        expect = first.map_points(second.map_points(inner))
        np.testing.assert_allclose(first.compose(second).map_points(inner), expect, atol=0.05)


def test_inverse_and_inverse_map_points():
    t = rigid(33, (7, -5))
    np.testing.assert_allclose(t.inverse().map_points(t.map_points(PTS)), PTS, atol=1e-9)
    f = with_field(t)
    np.testing.assert_allclose(f.inverse_map_points(f.map_points(PTS)), PTS, atol=1e-3)
    with pytest.raises(TransformError):
        f.inverse()


def test_rescaled_matches_resized_coordinates():
    t = with_field(rigid(15, (4, 2)))
    k = 0.25
    small = t.rescaled(k)
    np.testing.assert_allclose(
        small.map_points(k * PTS + (k - 1) / 2), k * t.map_points(PTS) + (k - 1) / 2, atol=0.02
    )


def blob_image(centre, shape=(120, 140)):
    rr, cc = np.mgrid[0 : shape[0], 0 : shape[1]]
    return np.exp(-((rr - centre[0]) ** 2 + (cc - centre[1]) ** 2) / 20.0).astype(np.float32)


@pytest.mark.parametrize("field", [False, True])
def test_warp_image_moves_content_where_map_points_says(field):
    t = rigid(25, (6, -4))
    if field:
        t = with_field(t, amp=2.0)
    moving = blob_image((50, 70))
    warped = t.warp_image(moving, (120, 140))
    peak = np.unravel_index(np.argmax(warped), warped.shape)
    np.testing.assert_allclose(peak, t.map_points(np.array([[50.0, 70.0]]))[0], atol=1.0)
    rgb = np.stack([(moving * 255).astype(np.uint8)] * 3, -1)
    warped_rgb = t.warp_image(rgb, (100, 90))
    assert warped_rgb.shape == (100, 90, 3) and warped_rgb.dtype == np.uint8


def test_warp_labels_keeps_ids_and_dtype():
    labels = np.zeros((80, 80), np.uint32)
    labels[10:30, 10:30] = 7
    labels[40:70, 45:60] = 70000
    out = rigid(90, (0, 0), centre=(40, 40)).warp_labels(labels, (80, 80))
    assert out.dtype == np.uint32
    assert set(np.unique(out)) == {0, 7, 70000}
    assert (out == 7).sum() == (labels == 7).sum()
    mask = rigid(10, (2, 2)).warp_labels(labels > 0, (50, 60))
    assert mask.dtype == bool and mask.shape == (50, 60)


def test_dict_and_file_round_trip(tmp_path):
    ts = {"HE": Transform.identity(), "CD31": with_field(rigid(12, (3, 1)))}
    for t in ts.values():
        back = Transform.from_dict(json.loads(json.dumps(t.to_dict())))
        np.testing.assert_allclose(back.map_points(PTS), t.map_points(PTS), atol=1e-6)
    path = tmp_path / "transforms.json"
    save_transforms(path, ts, {"reference": "HE"})
    loaded, meta = load_transforms(path)
    assert meta == {"reference": "HE"} and set(loaded) == {"HE", "CD31"}
    np.testing.assert_array_equal(loaded["CD31"].displacement, ts["CD31"].displacement)
    assert "pickle" not in path.read_text()


def test_bad_files_raise_transform_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(TransformError, match="bad.json"):
        load_transforms(bad)
    bad.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(TransformError, match="not a napari-karyo"):
        load_transforms(bad)
    with pytest.raises(TransformError):
        load_transforms(tmp_path / "missing.json")
