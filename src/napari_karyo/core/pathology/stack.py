"""A multi-stain stack: consecutive sections, one image (pyramid) per stain, a reference stain, transforms.

Readers: a folder of per-stain images (stain name from the file name), a multi-page TIFF (one stain per page or
series, named by PageName), an OME-TIFF (one stain per Image, or per Channel of one grey Image, named from the OME
metadata), and pyramidal whole-slide files (SVS, pyramidal TIFF with SubIFDs or series levels). Levels larger
than `LAZY_BYTES` are dask arrays that decode only the TIFF tiles/strips a view needs, so memory stays bounded.
Coordinates are (row, col) pixels of level 0 (full resolution), as in `transform.Transform`.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_karyo.core.errors import KaryoError
from napari_karyo.core.pathology.tissue import downsample
from napari_karyo.core.pathology.transform import Transform, load_transforms, save_transforms

STACK_SUFFIXES = (".tif", ".tiff", ".svs", ".png", ".jpg", ".jpeg", ".bmp")
TRANSFORMS_NAME = "transforms.json"  # beside the stack: <folder>/transforms.json or <file>.transforms.json
LAZY_BYTES = 256 << 20  # levels bigger than this are read tile by tile, on demand
CHUNK = 1024  # dask chunk side (px) of lazy levels
MIN_LEVEL_SIDE = 512  # napari multiscale: coarser levels are added (lazily) down to about this side
_SEP = "_ ."  # stain names are cut from file names at these; '-' is kept ("AB-PAS")


class StackError(KaryoError):
    """A file or folder that is not a readable multi-stain stack."""


@dataclass
class Stain:
    name: str
    levels: list  # level 0 first: numpy or dask arrays, (h, w) grey or (h, w, 3) RGB
    source: str = ""

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(int(s) for s in self.levels[0].shape[:2])

    @property
    def rgb(self) -> bool:
        return self.levels[0].ndim == 3

    def downsamples(self) -> list[float]:
        return [self.shape[0] / level.shape[0] for level in self.levels]

    def at_factor(self, factor: float) -> np.ndarray:
        """A float32 numpy image at `factor` of full resolution, read from the cheapest level that suffices."""

        ds = self.downsamples()
        k = max((i for i, d in enumerate(ds) if d <= 1 / factor + 1e-6), default=0)
        level = self.levels[k]
        target = (round(self.shape[0] * factor), round(self.shape[1] * factor))
        if tuple(level.shape[:2]) == target:
            return np.asarray(level, dtype=np.float32)
        return downsample(np.asarray(level), target[0] / level.shape[0])


@dataclass
class StainStack:
    stains: list[Stain]
    reference: str
    transforms: dict[str, Transform] = field(default_factory=dict)
    path: Path | None = None

    def __post_init__(self):
        names = self.names
        if not names:
            raise StackError(f"{self.path or 'stack'}: no stain images found")
        if len(set(names)) != len(names):
            raise StackError(f"{self.path}: two stains share a name ({names}); rename the files")
        if self.reference not in names:
            self.reference = default_reference(names)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.stains]

    def __getitem__(self, name: str) -> Stain:
        for s in self.stains:
            if s.name == name:
                return s
        raise StackError(f"no stain {name!r} in the stack (stains: {', '.join(self.names)})")

    def set_reference(self, name: str) -> None:
        """The stain the pathologist annotates; transforms map every other stain onto it."""
        if name not in self.names:
            raise StackError(f"no stain {name!r} in the stack (stains: {', '.join(self.names)})")
        if name != self.reference:
            self.transforms = {}  # they pointed at the old reference
        self.reference = name

    def transform(self, name: str) -> Transform:
        return self.transforms.get(name, Transform.identity())

    def images_for_registration(self, max_side: int = 1024) -> tuple[dict[str, np.ndarray], float]:
        """All stains at one common scale (longest side of the largest stain <= max_side), and that scale."""
        longest = max(max(s.shape) for s in self.stains)
        factor = min(1.0, max_side / longest)
        return {s.name: s.at_factor(factor) for s in self.stains}, factor

    def transforms_path(self) -> Path | None:
        if self.path is None:
            return None
        return (
            self.path / TRANSFORMS_NAME
            if self.path.is_dir()
            else self.path.with_name(f"{self.path.name.split('.')[0]}.{TRANSFORMS_NAME}")
        )


def default_reference(names: list[str]) -> str:
    """HE (or H&E) when present: that is where pathologists annotate; else the first stain."""
    for n in names:
        if re.sub(r"[^a-z]", "", n.lower()) in ("he", "hande", "hematoxylineosin", "haematoxylineosin"):
            return n
    return names[0]


def stain_names(stems: list[str]) -> list[str]:
    """Stain names from file names: the part that differs ('case7_HE_5pc', 'case7_AB-PAS_5pc' -> HE, AB-PAS)."""
    if len(stems) < 2:
        return list(stems)

    def common(strings: list[str]) -> int:
        n = 0
        while all(len(s) > n for s in strings) and len({s[n] for s in strings}) == 1:
            n += 1
        while n and strings[0][n - 1] not in _SEP:  # back to a separator: never cut inside a word
            n -= 1
        return n

    pre = common(stems)
    rest = [s[pre:] for s in stems]
    post = common([r[::-1] for r in rest])
    names = [r[: len(r) - post] if post else r for r in rest]
    names = [n.strip(_SEP) for n in names]
    return names if all(names) and len(set(names)) == len(names) else list(stems)


# ---- lazy TIFF levels ----------------------------------------------------------------------------------------


class _TiffLevel:
    """A numpy-like view of one TIFF page that decodes only the tiles/strips a slice touches (for dask)."""

    def __init__(self, path: Path, series: int, level: int, page: int):
        import tifffile

        self.path = path
        self._where = (series, level, page)
        self._tif = tifffile.TiffFile(path)
        self._lock = threading.Lock()
        p = self._tif.series[series].levels[level].pages[page]
        self.page = p.aspage() if hasattr(p, "aspage") else p
        self.shape = tuple(self.page.shape)
        self.dtype = self.page.dtype
        self.ndim = len(self.shape)
        tiled = self.page.is_tiled
        self.seg_h = self.page.tilelength if tiled else self.page.rowsperstrip
        self.seg_w = self.page.tilewidth if tiled else self.shape[1]

    def __reduce__(self):  # dask.distributed ships levels to worker processes: they reopen the file there
        return (_TiffLevel, (self.path, *self._where))

    @staticmethod
    def supported(page) -> bool:
        return page.planarconfig == 1 and getattr(page, "tiledepth", 1) == 1 and page.imagedepth == 1

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        (r0, r1, rs), (c0, c1, cs) = (k.indices(n) for k, n in zip(key[:2], self.shape[:2], strict=True))
        out = np.zeros((r1 - r0, c1 - c0, *self.shape[2:]), self.dtype)
        page, ncols = self.page, -(-self.shape[1] // self.seg_w)
        fh = self._tif.filehandle
        for tr in range(r0 // self.seg_h, -(-r1 // self.seg_h)):
            for tc in range(c0 // self.seg_w, -(-c1 // self.seg_w)):
                index = tr * ncols + tc
                with self._lock:
                    fh.seek(page.dataoffsets[index])
                    data = fh.read(page.databytecounts[index])
                seg, (_, _, y, x, _), _ = page.decode(
                    data or None, index, jpegtables=page.jpegtables, jpegheader=page.jpegheader
                )
                if seg is None:
                    continue
                seg = seg[0] if self.ndim == 3 else seg[0, ..., 0]
                ys, xs = max(r0, y), max(c0, x)
                ye, xe = min(r1, y + seg.shape[0], self.shape[0]), min(c1, x + seg.shape[1], self.shape[1])
                if ye > ys and xe > xs:
                    out[ys - r0 : ye - r0, xs - c0 : xe - c0] = seg[ys - y : ye - y, xs - x : xe - x]
        out = out[::rs, ::cs]
        return out[(slice(None), slice(None), *key[2:])] if len(key) > 2 else out


def _level_array(tif, path: Path, series: int, level: int, page: int | None):
    """numpy for small levels, a tile-reading dask array for big ones. `page` None: the whole level."""
    lvl = tif.series[series].levels[level]
    pages = lvl.pages if page is None else [lvl.pages[page]]
    first = pages[0].aspage() if hasattr(pages[0], "aspage") else pages[0]
    nbytes = int(np.prod(first.shape)) * first.dtype.itemsize
    if nbytes <= LAZY_BYTES or not _TiffLevel.supported(first):
        arr = lvl.asarray() if page is None else first.asarray()
        return arr.reshape([d for d in arr.shape if d != 1]) if arr.ndim > 3 else arr
    import dask.array as da

    view = _TiffLevel(path, series, level, 0 if page is None else page)
    chunks = (CHUNK, CHUNK, *view.shape[2:])
    key = f"karyo-{path.resolve()}-{path.stat().st_mtime_ns}-{series}-{level}-{page}"  # dask's cache key
    return da.from_array(view, chunks=chunks, asarray=False, fancy=False, name=key)


def tiff_levels(path: Path) -> list:
    """Every level of a TIFF's first image (numpy when small, else read tile by tile): a written pyramid."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        return [_level_array(tif, Path(path), 0, k, None) for k in range(len(tif.series[0].levels))]


def _with_coarse_levels(levels: list) -> list:
    """Add 2x-coarsened (lazy when the base is lazy) levels until the smallest is near MIN_LEVEL_SIDE."""
    while max(levels[-1].shape[:2]) > 2 * MIN_LEVEL_SIDE:
        last = levels[-1]
        h, w = (s // 2 * 2 for s in last.shape[:2])
        src = last[:h, :w]
        if isinstance(src, np.ndarray):
            nxt = src.reshape(h // 2, 2, w // 2, 2, *src.shape[2:]).mean(axis=(1, 3)).astype(last.dtype)
        else:
            import dask.array as da

            axes = {0: 2, 1: 2} | ({2: 1} if src.ndim == 3 else {})
            nxt = da.coarsen(np.mean, src, axes, trim_excess=True).astype(last.dtype)
        levels.append(nxt)
    return levels


def _rgb_or_grey(arr):
    if arr.ndim == 3 and arr.shape[-1] == 4:
        return arr[..., :3]
    if arr.ndim == 3 and arr.shape[-1] not in (3,) and arr.shape[0] in (3, 4):
        return arr[:3].transpose(1, 2, 0)
    if arr.ndim not in (2, 3):
        raise StackError(f"image of shape {arr.shape} is neither grey (h, w) nor RGB (h, w, 3)")
    return arr


# ---- readers --------------------------------------------------------------------------------------------------


def _read_plain(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "RGB", "I;16", "I"):
                im = im.convert("RGB")
            return np.asarray(im)
    except Image.DecompressionBombError as exc:
        raise StackError(
            f"{path}: {exc}. A whole slide this large must be a tiled, pyramidal TIFF/SVS to be read in parts"
        ) from exc
    except OSError as exc:
        raise StackError(f"{path}: cannot be read as an image ({exc})") from exc


def _tiff_stains(path: Path) -> list[Stain]:
    """One or more stains from a TIFF/SVS/OME-TIFF file."""
    import tifffile

    try:
        tif = tifffile.TiffFile(path)
    except Exception as exc:  # corrupt files fail in many ways
        raise StackError(f"{path}: not a readable TIFF ({type(exc).__name__}: {exc})") from exc
    with tif:
        if tif.is_ome:
            return _ome_stains(tif, path)
        out = []
        for k, s in enumerate(tif.series):
            if s.name in ("Thumbnail", "Label", "Macro"):  # SVS side images, not sections
                continue
            shape = tuple(d for d in s.shape if d != 1)
            if len(shape) == 2 or (len(shape) == 3 and shape[-1] in (3, 4)):  # one image, maybe a pyramid
                planes = [None]
            else:  # (n, h, w[, 3]): a page per stain
                planes = list(range(len(s.pages)))
            for j in planes:
                levels = [_rgb_or_grey(_level_array(tif, path, k, lev, j)) for lev in range(len(s.levels))]
                tag = s.pages[j or 0].tags.get("PageName")
                name = str(tag.value) if tag else f"stain {len(out) + 1}"
                out.append(Stain(name, _with_coarse_levels(levels), f"{path}#{k}" + (f":{j}" if j else "")))
        if len(out) == 1 and out[0].name == "stain 1":
            out[0].name = path.name.split(".")[0]
        return out


def _ome_stains(tif, path: Path) -> list[Stain]:
    """OME-TIFF: RGB Images are stains named by Image Name; a grey multi-channel Image gives one per Channel."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(tif.ome_metadata)
    ns = {"ome": root.tag.split("}")[0].strip("{")} if root.tag.startswith("{") else {}
    images = root.findall("ome:Image", ns) if ns else root.findall("Image")
    out = []
    for k, s in enumerate(tif.series):
        img = images[k] if k < len(images) else None
        chans = [c.get("Name") for c in img.iter() if c.tag.endswith("Channel")] if img is not None else []
        image_name = (img.get("Name") if img is not None else None) or f"stain {k + 1}"
        axes = s.axes
        if "S" in axes or "C" not in axes or s.shape[axes.index("C")] == 1:
            levels = [
                _rgb_or_grey(np.squeeze(_level_array(tif, path, k, j, None))) for j in range(len(s.levels))
            ]
            out.append(Stain(image_name, _with_coarse_levels(levels), f"{path}#{k}"))
            continue
        for c in range(s.shape[axes.index("C")]):  # grey channels, one page each
            levels = [_level_array(tif, path, k, j, c) for j in range(len(s.levels))]
            name = chans[c] if c < len(chans) and chans[c] else f"{image_name} {c + 1}"
            out.append(Stain(name, _with_coarse_levels(levels), f"{path}#{k}:{c}"))
    return out


def _folder_stains(path: Path) -> list[Stain]:
    files = sorted(
        p
        for p in path.iterdir()
        if p.is_file() and p.suffix.lower() in STACK_SUFFIXES and not p.name.startswith(".")
    )
    if not files:
        raise StackError(f"{path}: no stain images ({', '.join(STACK_SUFFIXES)}) in this folder")
    stains = []
    for name, f in zip(stain_names([f.name.split(".")[0] for f in files]), files, strict=True):
        if f.suffix.lower() in (".tif", ".tiff", ".svs"):
            found = _tiff_stains(f)
            if len(found) != 1:
                raise StackError(f"{f}: holds {len(found)} images; a stack folder needs one stain per file")
            found[0].name = name
            stains.extend(found)
        else:
            stains.append(Stain(name, _with_coarse_levels([_rgb_or_grey(_read_plain(f))]), str(f)))
    return stains


def load_stack(path: str | Path, reference: str | None = None) -> StainStack:
    """Read a stack from a folder or a file; transforms saved beside it (`transforms.json`) are loaded too."""
    path = Path(path)
    if not path.exists():
        raise StackError(f"{path}: no such file or folder")
    if path.is_dir():
        stains = _folder_stains(path)
    elif path.suffix.lower() in (".tif", ".tiff", ".svs"):
        stains = _tiff_stains(path)
    elif path.suffix.lower() in STACK_SUFFIXES:
        stains = [Stain(path.stem, _with_coarse_levels([_rgb_or_grey(_read_plain(path))]), str(path))]
    else:
        raise StackError(
            f"{path}: unsupported file type; use a folder of images, a (OME-)TIFF or an SVS file"
        )
    stack = StainStack(stains, reference or "", path=path)
    tpath = stack.transforms_path()
    if tpath is not None and tpath.is_file():
        transforms, meta = load_transforms(tpath)
        if reference is None and meta.get("reference") in stack.names:
            stack.reference = meta["reference"]
        if meta.get("reference", stack.reference) == stack.reference:
            stack.transforms = {k: v for k, v in transforms.items() if k in stack.names}
    elif reference is not None:
        stack.set_reference(reference)
    return stack


def save_stack_transforms(
    stack: StainStack, path: str | Path | None = None, meta: dict | None = None
) -> Path:
    """Write the stack's transforms (moving -> reference, full-resolution pixels) as JSON, atomically."""
    target = Path(path) if path is not None else stack.transforms_path()
    if target is None:
        raise StackError("this stack was not read from a file: give a path to save its transforms to")
    info = {
        "reference": stack.reference,
        "stains": stack.names,
        "shapes": {s.name: list(s.shape) for s in stack.stains},
        **(meta or {}),
    }
    save_transforms(target, {n: stack.transform(n) for n in stack.names}, info)
    return target
