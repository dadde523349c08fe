"""Reading spreads: TIFF (tifffile + imagecodecs), PNG, JPEG, BMP; 8/16-bit; grey or RGB.

`read_image` returns the pixels as stored (for display); `to_grey` gives the 2-D array the model sees.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_karyo.core.errors import ImageReadError

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
MAX_PIXELS = 60_000_000  # a metaphase spread is a few megapixels; beyond this it is a slide, not a spread


def read_image(path: str | Path) -> np.ndarray:
    """Read a 2-D grey (Y, X) or colour (Y, X, 3|4) image, or raise ImageReadError saying what to do."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ImageReadError(
            f"{path}: unsupported file type {suffix or '(none)'}; use one of {', '.join(IMAGE_SUFFIXES)}"
        )
    try:
        if suffix in (".tif", ".tiff"):
            import tifffile

            data = tifffile.imread(path)
        else:
            from PIL import Image

            with Image.open(path) as im:
                im.load()
                if im.mode in ("P", "LA", "PA", "CMYK", "YCbCr"):
                    im = im.convert("RGB")
                data = np.asarray(im)
    except ImageReadError:
        raise
    except Exception as exc:  # corrupt or truncated files raise many different errors
        raise ImageReadError(f"{path}: cannot be read as an image ({type(exc).__name__}: {exc})") from exc
    return check_spread(data, path)


def check_spread(data: np.ndarray, path: str | Path = "image") -> np.ndarray:
    """Validate dimensions and content of a spread; squeeze singleton axes."""
    data = np.squeeze(np.asarray(data))
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


def is_spread_with_thumbnails(tif) -> bool:
    """A TIFF (an open `tifffile.TiffFile`) whose first page is one spread-sized image and whose other pages are
    only reduced-resolution copies (NewSubfileType bit 0, or at most half its size each way): thumbnails that
    scanners and viewers add. Such a file is one spread, not a stack of stains."""
    pages = list(tif.pages)
    if len(pages) < 2:
        return False
    first = pages[0]
    rows, cols = first.shape[:2]
    if max(rows, cols) > SPREAD_MAX_SIDE:
        return False
    return all(
        int(p.subfiletype) & 1 or (p.shape[0] <= rows // 2 and p.shape[1] <= cols // 2) for p in pages[1:]
    )
