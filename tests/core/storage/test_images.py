"""Reading spreads: every supported format and bit depth, and clear errors for everything else."""

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_karyo.core.errors import ImageReadError
from napari_karyo.core.karyotype.infer.preprocess import normalise_intensity, scale_factor
from napari_karyo.core.storage.images import read_image, to_grey


def _spread(dtype=np.uint8, dark_on_bright=False, shape=(200, 240)):
    rng = np.random.default_rng(0)
    img = rng.normal(20, 3, shape)
    for k in range(12):
        r, c = 20 + (k // 4) * 55, 20 + (k % 4) * 55
        img[r : r + 30, c : c + 12] = 200
    img = np.clip(img, 0, 255)
    if dark_on_bright:
        img = 255 - img
    scale = 257 if dtype == np.uint16 else 1
    return (img * scale).astype(dtype)


@pytest.mark.parametrize("suffix", [".tif", ".png", ".bmp", ".jpg"])
def test_reads_8bit_formats(tmp_path, suffix):
    data = _spread()
    path = tmp_path / f"s{suffix}"
    if suffix == ".tif":
        tifffile.imwrite(path, data, compression="lzw")
    else:
        Image.fromarray(data).save(path)
    out = read_image(path)
    assert out.shape == data.shape
    tolerance = 12 if suffix == ".jpg" else 0
    assert np.abs(out.astype(int) - data.astype(int)).mean() <= tolerance


def test_reads_16bit_and_rgb_and_planar(tmp_path):
    data16 = _spread(np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", data16)
    assert read_image(tmp_path / "a.tif").dtype == np.uint16
    rgb = np.stack([_spread()] * 3, axis=-1)
    Image.fromarray(rgb).save(tmp_path / "b.png")
    assert read_image(tmp_path / "b.png").shape == rgb.shape
    tifffile.imwrite(tmp_path / "c.tif", np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate")
    assert read_image(tmp_path / "c.tif").shape == rgb.shape


def test_polarity_normalised_for_gband_and_dapi():
    bright, inv1 = normalise_intensity(_spread())
    dark, inv2 = normalise_intensity(_spread(dark_on_bright=True))
    assert (inv1, inv2) == (False, True)
    assert np.allclose(bright, dark, atol=0.02)  # both end up bright chromosomes on dark
    assert bright.min() >= 0 and bright.max() <= 1


def test_scale_factor_brings_wide_chromosomes_to_training_width():
    img = np.zeros((600, 600), np.float32)
    for k in range(16):  # objects 26 px wide: twice the training width
        r, c = 20 + (k // 4) * 140, 20 + (k % 4) * 140
        img[r : r + 100, c : c + 26] = 1
    assert 0.4 < scale_factor(img) < 0.6


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b"not an image at all"), "cannot be read"),
        (lambda p: tifffile.imwrite(p, np.zeros((100, 100), np.uint8)), "blank"),
        (
            lambda p: tifffile.imwrite(p, np.random.default_rng(0).integers(0, 255, (5, 100, 100), np.uint8)),
            "holds 5 images",
        ),
        (lambda p: tifffile.imwrite(p, np.ones((10, 10), np.uint8)), "too small"),
    ],
    ids=["corrupt", "blank", "3-D", "tiny"],
)
def test_bad_images_get_clear_errors(tmp_path, make, message):
    path = tmp_path / "bad.tif"
    make(path)
    with pytest.raises(ImageReadError, match=message) as err:
        read_image(path)
    assert str(path) in str(err.value)


def test_truncated_png_and_unsupported_suffix(tmp_path):
    good = tmp_path / "g.png"
    Image.fromarray(_spread()).save(good)
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:300])
    with pytest.raises(ImageReadError, match="cut.png"):
        read_image(cut)
    other = tmp_path / "x.gif"
    other.write_bytes(b"GIF89a")
    with pytest.raises(ImageReadError, match="unsupported"):
        read_image(other)
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "missing.tif")


def test_huge_image_refused_before_work(monkeypatch, tmp_path):
    from napari_karyo.core.storage import images

    monkeypatch.setattr(images, "MAX_PIXELS", 10_000)
    tifffile.imwrite(tmp_path / "big.tif", _spread())
    with pytest.raises(ImageReadError, match="too large"):
        read_image(tmp_path / "big.tif")


def test_grey_from_rgb_weights():
    rgb = np.zeros((40, 40, 3), np.uint8)
    rgb[..., 1] = 100
    assert np.allclose(to_grey(rgb), 58.7)


def _bomb(path, side):
    """A TIFF of side x side zero pixels written tile by tile: a few MB on disk."""
    tile = np.zeros((512, 512), np.uint8)
    with tifffile.TiffWriter(path) as tw:
        tw.write(
            (tile for _ in range((side // 512) ** 2)),
            shape=(side, side),
            dtype=np.uint8,
            tile=(512, 512),
            compression="zlib",
        )


def test_decompression_bombs_are_refused_from_the_header(tmp_path):
    import resource

    bomb = tmp_path / "bomb.tif"
    _bomb(bomb, 20480)  # 419 MP, ~0.5 MB
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ImageReadError, match=r"20480x20480 pixels is too large"):
        read_image(bomb)
    png = tmp_path / "bomb.png"
    Image.new("L", (9000, 9000)).save(png)
    with pytest.raises(ImageReadError, match=r"9000x9000 pixels is too large"):
        read_image(png)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # kB: nothing was decoded


def test_a_second_image_in_a_tiff_is_not_silently_dropped(tmp_path):
    path = tmp_path / "two.tif"
    tifffile.imwrite(path, _spread())
    tifffile.imwrite(path, _spread()[::-1], append=True)  # a second plane of the same size: a stack
    with pytest.raises(ImageReadError, match="holds 2 images"):
        read_image(path)
    thumb = tmp_path / "thumb.tif"  # a spread with a small preview page is one spread
    tifffile.imwrite(thumb, _spread())
    tifffile.imwrite(thumb, _spread()[::4, ::4], append=True)
    assert read_image(thumb).shape == _spread().shape
    # a small second image of other content is a second series, not a preview
    two = tmp_path / "two_series.tif"
    tifffile.imwrite(two, _spread())
    tifffile.imwrite(two, _spread()[:40, :40], append=True)
    with pytest.raises(ImageReadError, match="holds 2 images"):
        read_image(two)


def test_what_a_path_is_instead_of_an_image(tmp_path):
    import os

    with pytest.raises(ImageReadError, match="is a folder"):
        read_image(tmp_path)
    fifo = tmp_path / "pipe.tif"
    os.mkfifo(fifo)
    with pytest.raises(ImageReadError, match="not a regular file"):
        read_image(fifo)
    loop = tmp_path / "loop.tif"
    loop.symlink_to(loop)
    with pytest.raises(ImageReadError, match="symbolic link that leads nowhere"):
        read_image(loop)
    one = tmp_path / "one.png"
    Image.new("L", (1, 1)).save(one)
    with pytest.raises(ImageReadError, match=r"shape \(1, 1\) is too small"):
        read_image(one)
