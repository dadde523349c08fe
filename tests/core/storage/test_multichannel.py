"""Reading multi-channel cells: OME-TIFF, ImageJ / multi-page TIFF and the ADIR one-file-per-plane layout."""

import numpy as np
import pytest
import tifffile

from napari_karyo.core.errors import ImageReadError
from napari_karyo.core.storage.multichannel import is_multichannel, read_cell, write_ome_cell

NAMES = ("Cy 5.5", "Cy 5", "S. Green", "S. Orange", "Texas Red", "DAPI")


def planes(n=6, shape=(40, 48), seed=0):
    return np.random.default_rng(seed).integers(0, 255, (n, *shape), dtype=np.uint8)


def test_ome_round_trip_keeps_planes_and_names(tmp_path):
    p = planes()
    path = write_ome_cell(tmp_path / "cell.ome.tif", p, NAMES)
    assert is_multichannel(path)
    cell = read_cell(path)
    assert cell.names == NAMES and np.array_equal(cell.planes, p) and cell.shape == (40, 48)


def test_imagej_labels_name_the_planes(tmp_path):
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, planes(), imagej=True, metadata={"axes": "CYX", "Labels": list(NAMES)})
    assert read_cell(path).names == NAMES


def test_adir_layout_opens_the_whole_cell_from_the_dapi_file(tmp_path):
    p = planes()
    for letter, plane in zip("5CGOTD", p, strict=True):
        tifffile.imwrite(tmp_path / f"A0101XY{letter}.tif", plane)
    tifffile.imwrite(tmp_path / "A0101XYK.tif", np.zeros((40, 48), np.uint8))  # the label map is not a plane
    cell = read_cell(tmp_path / "A0101XYD.tif")
    assert set(cell.names) == set(NAMES) and len(cell.files) == 6
    assert np.array_equal(cell.planes[cell.names.index("DAPI")], p[5])


def test_adir_planes_of_different_sizes_are_refused_naming_them(tmp_path):
    tifffile.imwrite(tmp_path / "A0101XYD.tif", planes(1)[0])
    tifffile.imwrite(tmp_path / "A0101XYC.tif", planes(1, (41, 48))[0])
    with pytest.raises(ImageReadError, match=r"A0101XYC.tif 48x41.*must match"):
        read_cell(tmp_path / "A0101XYD.tif")


def test_planes_without_names_are_refused(tmp_path):
    path = tmp_path / "pages.tif"
    tifffile.imwrite(path, planes())
    with pytest.raises(ImageReadError, match=r"pages.tif: 6 planes but channel names"):
        read_cell(path)


def test_grey_and_rgb_images_are_not_cells(tmp_path):
    tifffile.imwrite(tmp_path / "grey.tif", planes(1)[0])
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((40, 48, 3), np.uint8), photometric="rgb")
    assert not is_multichannel(tmp_path / "grey.tif") and not is_multichannel(tmp_path / "rgb.tif")
    with pytest.raises(ImageReadError, match="rgb.tif"):
        read_cell(tmp_path / "rgb.tif")


def test_cells_with_dapi_are_told_apart_from_other_stacks(tmp_path):
    from napari_karyo.core.storage.multichannel import is_cell_with_dapi, result_name

    cell = write_ome_cell(tmp_path / "cell.ome.tif", planes(), NAMES)
    stack = write_ome_cell(tmp_path / "he.ome.tif", planes(2), ("HE", "CD31"))
    assert is_cell_with_dapi(cell) and not is_cell_with_dapi(stack)
    assert result_name(cell) == "cell"
