"""Spread preprocessing: polarity and annotation drawings burnt into exported G-band spreads."""

import numpy as np

from napari_karyo.core.karyotype.infer.preprocess import normalise_intensity, without_drawings


def _gband_spread() -> np.ndarray:
    """A white RGB spread with two dark grey chromosomes, every pixel exactly grey."""
    grey = np.full((80, 100), 240, np.uint8)
    grey[20:60, 20:28] = 60
    grey[30:70, 60:68] = 90
    return np.repeat(grey[..., None], 3, axis=2)


def test_drawings_are_painted_over_with_the_nearest_grey_pixels():
    clean = _gband_spread()
    drawn = clean.copy()
    drawn[15, 15:35] = (0, 255, 0)  # a green box edge on the background
    drawn[40, 18:30] = (255, 0, 0)  # a red contour across the first chromosome
    out = without_drawings(drawn)
    assert (out.max(-1) == out.min(-1)).all(), "coloured pixels remain"
    assert (out[15, 15:35] == 240).all()
    # across the chromosome the line takes the chromosome's grey, so it is not cut in two
    assert (out[40, 20:28] == 60).all()
    np.testing.assert_array_equal(normalise_intensity(drawn)[0][50:], normalise_intensity(clean)[0][50:])


def test_images_without_drawings_are_kept_as_they_are():
    clean = _gband_spread()
    assert without_drawings(clean) is clean
    grey = clean[..., 0]
    assert without_drawings(grey) is grey
    # a true-colour image: most pixels are coloured
    colour = np.random.default_rng(0).integers(0, 255, (40, 40, 3)).astype(np.uint8)
    assert without_drawings(colour) is colour
    # a pseudo-colour DAPI image: blue chromosomes on black, the grey pixels are only the background
    dapi = np.zeros((80, 100, 3), np.uint8)
    dapi[30:33, 40:48, 2] = 200
    assert without_drawings(dapi) is dapi


def test_gband_polarity_is_inverted():
    norm, inverted = normalise_intensity(_gband_spread())
    assert inverted and norm[40, 24] > 0.9 and norm[5, 5] < 0.1
