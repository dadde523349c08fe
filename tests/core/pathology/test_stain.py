"""Stain separation and normalisation on synthetic images made from known stain matrices (scikit-image's)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_karyo.core.pathology import stain as S

skcolor = pytest.importorskip("skimage.color")
MATRICES = ["rgb_from_hed", "rgb_from_hdx", "rgb_from_ahx", "rgb_from_fgx"]


@pytest.mark.parametrize("name", MATRICES)
@pytest.mark.parametrize("method", S.METHODS)
def test_recovers_known_stain_vectors(name, method):
    truth = getattr(skcolor, name)[:2]
    img = S.synthetic_stained(truth, (192, 192), seed=7)
    est = S.stain_matrix(img, method)
    assert est.shape == (2, 3)
    assert np.allclose(np.linalg.norm(est, axis=1), 1, atol=1e-6)
    assert S.angular_error_deg(est, truth).max() <= 3.0


def test_vahadane_is_deterministic():
    img = S.synthetic_stained(skcolor.rgb_from_hed[:2], (128, 128), seed=3)
    assert np.array_equal(S.vahadane_matrix(img), S.vahadane_matrix(img))


def test_haematoxylin_comes_first():
    img = S.synthetic_stained(skcolor.rgb_from_hed[[1, 0]], (128, 128), seed=1)  # eosin given first
    est = S.macenko_matrix(img)
    truth_h = skcolor.rgb_from_hed[0] / np.linalg.norm(skcolor.rgb_from_hed[0])
    assert np.degrees(np.arccos(est[0] @ truth_h)) < 3.0


def test_blank_slide_is_a_clear_error():
    blank = np.full((64, 64, 3), 238, np.uint8)
    for method in S.METHODS:
        with pytest.raises(S.StainError, match="too little stained tissue"):
            S.stain_matrix(blank, method, what="blank.png")


def test_grey_image_is_refused():
    with pytest.raises(S.StainError, match="RGB"):
        S.optical_density(np.zeros((8, 8), np.uint8))


def test_normalisation_moves_a_shifted_stain_towards_the_reference():
    he = skcolor.rgb_from_hed[:2]
    ref_img = S.synthetic_stained(he, (160, 160), seed=2)
    ref = S.fit_reference(ref_img, "macenko", source="reference")
    shifted = he.copy()
    shifted[1] = shifted[1] + np.array([0.3, -0.2, 0.3])  # a bluer, differently fixed eosin
    src = S.synthetic_stained(shifted, (160, 160), seed=5)
    for method in S.METHODS:
        out = S.normalise(src, ref, method)
        assert out.shape == src.shape and out.dtype == np.uint8
        before = S.angular_error_deg(S.macenko_matrix(src), ref.matrix).max()
        after = S.angular_error_deg(S.macenko_matrix(out), ref.matrix).max()
        assert after < 2.0 < before
        colour = [_tissue_colour(im) for im in (ref_img, src, out)]
        assert np.abs(colour[2] - colour[0]).max() < np.abs(colour[1] - colour[0]).max() / 2


def _tissue_colour(img):
    return img[S.optical_density(img).sum(-1) > 0.3].mean(axis=0)


def test_bundled_references_and_channels():
    he, hdab = S.bundled_reference("H&E"), S.bundled_reference("H-DAB")
    assert he.names == ("H", "E") and hdab.names == ("H", "DAB")
    # both references' haematoxylin vectors are the same dye: within a few degrees of each other
    assert np.degrees(np.arccos(he.matrix[0] @ hdab.matrix[0])) < 15
    with pytest.raises(S.StainError, match="unknown stain reference"):
        S.bundled_reference("Masson")
    img = S.synthetic_stained(skcolor.rgb_from_hdx[:2], (96, 96), seed=4)
    ch = S.stain_channels(img, "macenko", ("H", "DAB"))
    assert set(ch) == {"OD", "H", "DAB"}
    assert all(v.shape == (96, 96) and v.dtype == np.float32 and v.min() >= 0 for v in ch.values())
    back = S.render(S.concentrations(img, S.macenko_matrix(img)), S.macenko_matrix(img))
    assert np.abs(back.astype(int) - img.astype(int)).mean() < 4  # two stains explain the image
