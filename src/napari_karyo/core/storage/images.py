"""Reading spreads: TIFF (tifffile + imagecodecs), PNG, JPEG, BMP; 8/16-bit; grey or RGB.

`read_image` returns the pixels as stored (for display); `to_grey` gives the 2-D array the model sees.
"""

from __future__ import annotations

import functools
import os
import stat
from pathlib import Path

import numpy as np

from napari_karyo.core.errors import ImageReadError

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
MAX_PIXELS = 60_000_000  # a metaphase spread is a few megapixels; beyond this it is a slide, not a spread


def read_image(path: str | Path) -> np.ndarray:
    """Read a 2-D grey (Y, X) or colour (Y, X, 3|4) image, or raise ImageReadError saying what to do. The size
    is read from the file's header and checked before any pixel is decoded (a small compressed file can hold a
    huge image)."""
    path = Path(path)
    check_file(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ImageReadError(
            f"{path}: unsupported file type {suffix or '(none)'}; use one of {', '.join(IMAGE_SUFFIXES)}"
        )
    return check_spread(decode(path, MAX_PIXELS, "a metaphase spread"), path)


def check_file(path: Path) -> None:
    """A readable regular file, or an ImageReadError that says what `path` is instead."""
    try:
        info = path.stat()
    except OSError as exc:  # a missing file, a broken link or a link loop
        what = (
            "a symbolic link that leads nowhere (broken or looping)" if path.is_symlink() else "no such file"
        )
        raise ImageReadError(f"{path}: {what} ({exc.strerror}); check the path") from exc
    if stat.S_ISDIR(info.st_mode):
        raise ImageReadError(f"{path}: is a folder, not an image file; pass the image files inside it")
    if not stat.S_ISREG(info.st_mode):
        raise ImageReadError(
            f"{path}: not a regular file (a pipe, socket or device); copy the image to a file"
        )
    if not os.access(path, os.R_OK):
        raise ImageReadError(f"{path}: not readable (permission denied); check the file's permissions")


def decode(path: Path, max_pixels: int, what: str) -> np.ndarray:
    """The pixels of an image file whose header says it has at most `max_pixels` pixels and one image."""
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            return _decode_tiff(path, max_pixels, what)
        from PIL import Image

        with Image.open(path) as im:
            _check_size(path, im.size[1], im.size[0], max_pixels, what)
            if getattr(im, "n_frames", 1) > 1:
                raise ImageReadError(f"{path}: holds {im.n_frames} frames; save the single image to analyse")
            im.load()
            if im.mode in ("P", "LA", "PA", "CMYK", "YCbCr"):
                im = im.convert("RGB")
            return np.asarray(im)
    except ImageReadError:
        raise
    except Exception as exc:  # corrupt or truncated files raise many different errors
        raise ImageReadError(
            f"{path}: cannot be read as an image ({type(exc).__name__}: {exc}); "
            "re-export it from the microscope software"
        ) from exc


def _decode_tiff(path: Path, max_pixels: int, what: str) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        pages = [p for p in tif.pages if not getattr(p, "is_reduced", False)]  # pyramid levels are views
        if not pages:
            raise ImageReadError(
                f"{path}: cannot be read as an image (no image in it: damaged or not a TIFF); re-export it"
            )
        page = pages[0]
        _check_size(path, page.imagelength, page.imagewidth, max_pixels, what)
        if len(pages) > 1 and not is_spread_with_thumbnails(tif):  # thumbnails: the first page is the spread
            raise ImageReadError(
                f"{path}: holds {len(pages)} images (a stack or several series); save the one "
                "plane to analyse as its own file (e.g. the DAPI channel)"
            )
        return page.asarray()


def _check_size(path: Path, height: int, width: int, max_pixels: int, what: str) -> None:
    if int(height) * int(width) > max_pixels:
        raise ImageReadError(
            f"{path}: {width}x{height} pixels is too large for {what} (limit {max_pixels / 1e6:g} MP); "
            "crop or downsample the image first"
        )


def check_spread(data: np.ndarray, path: str | Path = "image") -> np.ndarray:
    """Validate dimensions and content of a spread; squeeze singleton axes."""
    shape = np.shape(data)
    data = np.squeeze(np.asarray(data))
    if data.ndim < 2:
        raise ImageReadError(f"{path}: image of shape {shape} is too small to hold a metaphase spread")
    if data.ndim == 3 and data.shape[-1] not in (3, 4) and data.shape[0] in (3, 4):
        data = np.moveaxis(data, 0, -1)  # planar RGB TIFF
    if data.ndim == 3 and data.shape[-1] in (3, 4):
        pass
    elif data.ndim != 2:
        raise ImageReadError(
            f"{path}: has shape {data.shape}; a spread must be one 2-D grey or RGB image. "
            "Save a single plane (e.g. the DAPI channel) or open stacks plane by plane."
        )
    if data.size == 0 or min(data.shape[:2]) < 32:
        raise ImageReadError(f"{path}: image of shape {data.shape} is too small to hold a metaphase spread")
    if data.shape[0] * data.shape[1] > MAX_PIXELS:
        raise ImageReadError(
            f"{path}: {data.shape[1]}x{data.shape[0]} pixels is too large for a metaphase spread "
            f"(limit {MAX_PIXELS // 1_000_000} MP); crop the spread or downsample the image first"
        )
    if data.dtype == bool or not (
        np.issubdtype(data.dtype, np.integer) or np.issubdtype(data.dtype, np.floating)
    ):
        raise ImageReadError(f"{path}: pixel type {data.dtype} is not an intensity image")
    grey = to_grey(data)
    if not np.isfinite(grey).all():
        raise ImageReadError(f"{path}: contains NaN or infinite pixels")
    if float(grey.max() - grey.min()) <= 0:
        raise ImageReadError(
            f"{path}: the image is blank (every pixel has the same value); nothing to analyse"
        )
    return data


def to_grey(data: np.ndarray) -> np.ndarray:
    """float32 grey image from grey/RGB(A) pixels of any integer or float type."""
    data = np.asarray(data)
    if data.ndim == 3:
        rgb = data[..., :3].astype(np.float32)
        return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return data.astype(np.float32)


SPREAD_MAX_SIDE = 8192  # larger single images are slides (pathology), read as pyramids by the stack reader


THUMBNAIL_LIKENESS = 0.7  # correlation of an unflagged small page with the first page shrunk to its size


def is_spread_with_thumbnails(tif) -> bool:
    """A TIFF (an open `tifffile.TiffFile`) whose first page is one spread-sized image and whose other pages are
    only reduced-resolution copies (NewSubfileType bit 0, or at most half its size each way and the same picture):
    thumbnails that scanners and viewers add. Such a file is one spread, not a stack of stains. A small page of
    other content (a second series) is not a thumbnail: the file then holds two images."""
    pages = list(tif.pages)
    if len(pages) < 2:
        return False
    first = pages[0]
    rows, cols = first.shape[:2]
    if max(rows, cols) > SPREAD_MAX_SIDE:
        return False
    first_grey = functools.cache(lambda: to_grey(first.asarray()))  # decoded once, for any number of pages
    return all(
        int(p.subfiletype) & 1
        or (p.shape[0] <= rows // 2 and p.shape[1] <= cols // 2 and _is_reduced_copy(first_grey, p))
        for p in pages[1:]
    )


def _is_reduced_copy(first_grey, page) -> bool:
    """Whether a small TIFF page shows the first page's picture (`first_grey()`: grey levels correlate once the
    first is shrunk)."""
    from skimage.transform import resize

    small = to_grey(page.asarray())
    if small.ndim != 2 or min(small.shape) < 2:
        return False
    shrunk = resize(first_grey(), small.shape, anti_aliasing=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        likeness = np.corrcoef(shrunk.ravel(), small.ravel())[0, 1]
    return bool(likeness >= THUMBNAIL_LIKENESS)
