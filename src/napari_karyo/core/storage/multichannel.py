"""Reading one multi-channel cell (M-FISH: DAPI + fluor planes) with its channel names.

Three layouts:
- OME-TIFF, channels first, names from the OME metadata (`Channel Name`);
- multi-page / ImageJ TIFF, channels first, names from the ImageJ `Labels` or each page's `PageName`;
- the ADIR layout: one 8-bit TIFF per plane, `<cell><letter>.tif` (letter = the probe, `D` = DAPI); opening any
  plane of the cell (usually the DAPI one) reads the whole cell. `K` (the label map) is never a plane.

Names are returned as stored; which probe kit they make is the karyotype layer's business (karyotype/mfish/kits).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_karyo.core.errors import ImageReadError
from napari_karyo.core.storage.atomic import write_with

# The ADIR README's plane letters (the 8th character of a plane's file name).
ADIR_LETTERS = {
    "3": "532",
    "5": "Cy 5.5",
    "6": "568",
    "A": "S. Aqua",
    "C": "Cy 5",
    "D": "DAPI",
    "E": "DEAC",
    "F": "Far Red",
    "G": "S. Green",
    "I": "FITC",
    "O": "S. Orange",
    "R": "S. Red",
    "T": "Texas Red",
    "Y": "S. Gold",
}
LABEL_LETTER = "K"  # the ADIR per-pixel karyotype, not an image plane


@dataclass
class CellImage:
    planes: np.ndarray  # (C, H, W), as stored (any integer or float type)
    names: tuple[str, ...]  # one per plane
    path: Path  # the file the user opened
    files: tuple[Path, ...] = ()  # every file read (ADIR: one per plane)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.planes.shape[1:])


def adir_planes(path: str | Path) -> dict[str, Path]:
    """ADIR layout: {letter: file} of every plane beside `path` (`<cell><letter>.tif`); {} when `path` is not one."""
    path = Path(path)
    stem, suffix = path.stem, path.suffix
    if len(stem) < 2 or suffix.lower() not in (".tif", ".tiff") or stem[-1].upper() not in ADIR_LETTERS:
        return {}
    cell = stem[:-1]
    found = {}
    for letter in ADIR_LETTERS:
        for case in (letter, letter.lower()):
            f = path.with_name(f"{cell}{case}{suffix}")
            if f.is_file():
                found[letter] = f
    return found if len(found) > 1 and "D" in found else {}


def is_multichannel(path: str | Path) -> bool:
    """True for an ADIR plane with sibling planes, or a TIFF holding more than one grey (non-RGB) channel."""
    path = Path(path)
    if adir_planes(path):
        return True
    if path.suffix.lower() not in (".tif", ".tiff") or not path.is_file():
        return False
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            s = tif.series[0]
            shape = tuple(d for d in s.shape if d != 1)
            return len(shape) == 3 and shape[-1] not in (3, 4) and "S" not in s.axes
    except Exception:  # unreadable files are reported by whichever reader the caller picks next
        return False


def is_cell_with_dapi(path: str | Path) -> bool:
    """A multi-channel cell with a plane named DAPI (the M-FISH counterstain): cheap, from names only."""
    if adir_planes(path):
        return True
    return is_multichannel(path) and any("".join(n.split()).lower() == "dapi" for n in cell_names(path))


def cell_names(path: str | Path) -> tuple[str, ...]:
    """A multi-channel cell's channel names, read from its metadata only (no pixels); () when unreadable."""
    path = Path(path)
    planes = adir_planes(path)
    if planes:
        return tuple(ADIR_LETTERS[letter] for letter in planes)
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return tuple(_ome_names(tif.ome_metadata) if tif.is_ome else _imagej_names(tif))
    except Exception:  # unreadable: the reader that opens it says why
        return ()


def result_name(path: Path) -> str:
    """A cell's name: ADIR without the plane letter, other files without their suffixes (.ome.tif)."""
    return path.stem[:-1] if adir_planes(path) else path.name.split(".")[0]


def read_cell(path: str | Path) -> CellImage:
    """Read a multi-channel cell, or raise ImageReadError saying what is wrong and what to do."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    planes = adir_planes(path)
    cell = _read_adir(path, planes) if planes else _read_tiff(path)
    _check(cell)
    return cell


def _read_adir(path: Path, planes: dict[str, Path]) -> CellImage:
    import tifffile

    arrays = []
    for letter, f in planes.items():
        try:
            a = np.squeeze(tifffile.imread(f))
        except Exception as exc:
            raise ImageReadError(
                f"{f}: cannot be read as a TIFF plane ({type(exc).__name__}: {exc})"
            ) from exc
        if a.ndim != 2:
            raise ImageReadError(
                f"{f}: plane {ADIR_LETTERS[letter]!r} has shape {a.shape}; a plane must be 2-D grey"
            )
        arrays.append((f, a))
    sizes = {a.shape for _, a in arrays}
    if len(sizes) > 1:
        detail = ", ".join(f"{f.name} {a.shape[1]}x{a.shape[0]}" for f, a in arrays)
        raise ImageReadError(
            f"{path}: the planes of this cell differ in size ({detail}); all planes must match"
        )
    names = tuple(ADIR_LETTERS[letter] for letter in planes)
    return CellImage(np.stack([a for _, a in arrays]), names, path, tuple(planes.values()))


def _read_tiff(path: Path) -> CellImage:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            names = _ome_names(tif.ome_metadata) if tif.is_ome else _imagej_names(tif)
            data = np.squeeze(tif.series[0].asarray())
            if data.ndim == 2 and len(tif.pages) > 1:  # plain multi-page TIFF: one page per plane
                data = np.stack([p.asarray() for p in tif.pages])
    except Exception as exc:
        raise ImageReadError(f"{path}: cannot be read as a TIFF ({type(exc).__name__}: {exc})") from exc
    if data.ndim != 3 or data.shape[-1] in (3, 4):
        raise ImageReadError(
            f"{path}: has shape {data.shape}; a multi-channel cell is (channels, height, width), one grey plane "
            "per channel (an RGB picture cannot carry the fluor planes)"
        )
    if not names or len(names) != data.shape[0] or not all(names):
        raise ImageReadError(
            f"{path}: {data.shape[0]} planes but channel names {list(names) or 'missing'}; store one name per "
            "plane (OME Channel Name or ImageJ labels, e.g. DAPI, Cy 5.5, Cy 5, S. Green, S. Orange, Texas Red)"
        )
    return CellImage(data, tuple(names), path, (path,))


def _ome_names(xml: str | None) -> list[str]:
    if not xml:
        return []
    root = ET.fromstring(xml)
    image = next((e for e in root.iter() if e.tag.endswith("Image")), None)
    if image is None:
        return []
    return [c.get("Name") or "" for c in image.iter() if c.tag.endswith("}Channel") or c.tag == "Channel"]


def _imagej_names(tif) -> list[str]:
    meta = tif.imagej_metadata or {}
    labels = meta.get("Labels")
    if labels:
        return [str(x) for x in labels]
    names = []
    for page in tif.pages:
        tag = page.tags.get("PageName")
        names.append(str(tag.value) if tag else "")
    return names if any(names) else []


def _check(cell: CellImage) -> None:
    p = cell.planes
    if p.dtype == bool or not (np.issubdtype(p.dtype, np.integer) or np.issubdtype(p.dtype, np.floating)):
        raise ImageReadError(f"{cell.path}: pixel type {p.dtype} is not an intensity image")
    if min(p.shape[1:]) < 32:
        raise ImageReadError(
            f"{cell.path}: planes of {p.shape[2]}x{p.shape[1]} are too small for a metaphase spread"
        )
    if not np.isfinite(p).all():
        raise ImageReadError(f"{cell.path}: contains NaN or infinite pixels")
    if len(set(n.strip().lower() for n in cell.names)) != len(cell.names):
        raise ImageReadError(
            f"{cell.path}: channel names repeat ({', '.join(cell.names)}); each plane needs its own"
        )


def write_ome_cell(path: str | Path, planes: np.ndarray, names: list[str] | tuple[str, ...]) -> Path:
    """Write a cell as an OME-TIFF (channels first, names in the metadata), atomically."""
    import tifffile

    path = Path(path)
    meta = {"axes": "CYX", "Channel": {"Name": list(names)}}
    write_with(path, lambda tmp: tifffile.imwrite(tmp, np.asarray(planes), ome=True, metadata=meta))
    return path
