"""Build whole-slide-sized test pyramids from small bundled or shared images (nothing large is committed).

Every stain image is upsampled (bilinear, tile by tile: memory stays small) to `--side` px on its longest side and
written as a tiled, JPEG-compressed pyramid, both as
  <out>/ome/<stain>.ome.tif   OME-TIFF, reduced levels in SubIFDs, and
  <out>/svs/<stain>.svs       an SVS-like TIFF (Aperio description, levels as pages, a thumbnail page),
so `napari-karyo register <out>/ome` reads a multi-stain stack of whole-slide files. Default input: the bundled
multi-stain sample (4 synthetic stains of one section, with true transforms); `--images` takes other files, e.g.
the three stains of pyimsegm_histology's human case.

    python scripts/make_test_pyramids.py --out /tmp/pyramids --side 20000 [--images a.jpg b.jpg ...] [--stains 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

SAMPLE = Path(__file__).resolve().parents[1] / "src/napari_karyo/samples/multistain"
TILE = 512


def tiles(src, shape: tuple[int, int]):
    """Tiles (row-major, TILE x TILE, edge tiles padded) of the PIL image `src` resized to `shape` (bilinear)."""
    from PIL import Image

    k_r, k_c = src.height / shape[0], src.width / shape[1]
    for r0 in range(0, shape[0], TILE):
        for c0 in range(0, shape[1], TILE):
            h, w = min(TILE, shape[0] - r0), min(TILE, shape[1] - c0)
            box = (c0 * k_c, r0 * k_r, min((c0 + w) * k_c, src.width), min((r0 + h) * k_r, src.height))
            tile = np.zeros((TILE, TILE, 3), np.uint8)
            tile[:h, :w] = np.asarray(src.resize((w, h), Image.Resampling.BILINEAR, box=box))
            yield tile


def level_shapes(shape: tuple[int, int], smallest: int = 1024) -> list[tuple[int, int]]:
    out = [shape]
    while max(out[-1]) > 2 * smallest:
        out.append((out[-1][0] // 2, out[-1][1] // 2))
    return out


def write_ome(path: Path, src: np.ndarray, shapes, name: str) -> None:
    import tifffile

    opts = {
        "tile": (TILE, TILE),
        "compression": "jpeg",
        "compressionargs": {"level": 85},
        "photometric": "rgb",
    }
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tw:
        tw.write(
            tiles(src, shapes[0]),
            shape=(*shapes[0], 3),
            dtype=np.uint8,
            subifds=len(shapes) - 1,
            metadata={"axes": "YXS", "Name": name},
            **opts,
        )
        for s in shapes[1:]:
            tw.write(tiles(src, s), shape=(*s, 3), dtype=np.uint8, subfiletype=1, **opts)


def write_svs(path: Path, src: np.ndarray, shapes) -> None:
    """Aperio layout: level 0, a stripped thumbnail, then the reduced levels, each a tiled page."""
    import tifffile

    h, w = shapes[0]
    desc = f"Aperio Image Library v12.0.15 (test pyramid)\n{w}x{h} [0,0 {w}x{h}] ({TILE}x{TILE}) JPEG Q=85|AppMag = 20|MPP = 0.5"
    opts = {
        "tile": (TILE, TILE),
        "compression": "jpeg",
        "compressionargs": {"level": 85},
        "photometric": "rgb",
    }
    thumb = src.copy()
    thumb.thumbnail((768, 768))
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        tw.write(
            tiles(src, shapes[0]),
            shape=(*shapes[0], 3),
            dtype=np.uint8,
            description=desc,
            metadata=None,
            **opts,
        )
        tw.write(
            np.asarray(thumb),
            photometric="rgb",
            metadata=None,
            description=f"Aperio Image Library v12.0.15\n{w}x{h} -> thumbnail",
        )
        for s in shapes[1:]:
            tw.write(
                tiles(src, s),
                shape=(*s, 3),
                dtype=np.uint8,
                description="Aperio Image Library v12.0.15",
                metadata=None,
                **opts,
            )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (gets ome/ and svs/)")
    p.add_argument("--side", type=int, default=20000, help="longest side of level 0 (px)")
    p.add_argument("--images", nargs="*", help="stain images (default: the bundled multi-stain sample)")
    p.add_argument("--stains", type=int, default=3, help="use the first N stains")
    p.add_argument("--formats", nargs="*", default=["ome", "svs"], choices=["ome", "svs"])
    args = p.parse_args(argv)
    from PIL import Image

    files = [Path(f) for f in args.images] if args.images else sorted(SAMPLE.glob("*.jpg"))
    out = Path(args.out)
    for f in files[: args.stains]:
        src = Image.open(f).convert("RGB")
        k = args.side / max(src.height, src.width)
        shapes = level_shapes((round(src.height * k), round(src.width * k)))
        for fmt in args.formats:
            t0 = time.perf_counter()
            (out / fmt).mkdir(parents=True, exist_ok=True)
            stain = f.stem.split("_")[-1]
            target = out / fmt / (f"{stain}.ome.tif" if fmt == "ome" else f"{stain}.svs")
            if fmt == "ome":
                write_ome(target, src, shapes, stain)
            else:
                write_svs(target, src, shapes)
            size = target.stat().st_size / 2**20
            print(
                f"{target}: {shapes[0][0]}x{shapes[0][1]}, {len(shapes)} levels, {size:.0f} MiB, "
                f"{time.perf_counter() - t0:.0f} s",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
