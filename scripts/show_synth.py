"""Save a PNG with one synthetic scatter image and one touching image (outlines of the labelled chromosomes in
colour), optionally beside a real spread, to check by eye that the generator looks like real data.

    python scripts/show_synth.py out.png [--data ../shared/data] [--real mfish/A01__XY/A0101XYD.tif] [--seed 0]

Without --data the procedural crop bank is used (no data needed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def outlined(image: np.ndarray, chromosomes) -> np.ndarray:
    from skimage.segmentation import find_boundaries

    from napari_karyo.core import classes

    rgb = np.repeat(image[..., None], 3, axis=2)
    for ch in chromosomes:
        full = ch.full_mask(image.shape)
        edge = find_boundaries(full, mode="inner")
        rgb[edge] = classes.colour(ch.class_id)[:3] if ch.class_id else (0.2, 1.0, 0.2)
    return rgb


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="PNG path")
    ap.add_argument("--data", default=None, help="data root (../shared/data); procedural crops when omitted")
    ap.add_argument(
        "--real", default=None, help="a real spread (relative to --data or absolute) shown beside"
    )
    ap.add_argument("--max-per-source", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-outlines", action="store_true")
    args = ap.parse_args(argv)

    from PIL import Image

    from napari_karyo.core.karyotype.training.crop_bank import CropBank
    from napari_karyo.core.karyotype.training.synth import synthesize

    if args.data:
        bank = CropBank.from_data(args.data, max_per_source=args.max_per_source, seed=args.seed)
    else:
        bank = CropBank.procedural(seed=args.seed)
    rng = np.random.default_rng(args.seed)
    panels = []
    for mode in ("scatter", "touching"):
        image, chromosomes = synthesize(bank, rng, mode=mode)
        panels.append(np.repeat(image[..., None], 3, 2))
        if not args.no_outlines:
            panels.append(outlined(image, chromosomes))
        print(f"{mode}: {len(chromosomes)} chromosomes")
    if args.real:
        from skimage.transform import resize

        from napari_karyo.core.karyotype.infer.preprocess import normalise_intensity
        from napari_karyo.core.storage.images import read_image

        path = Path(args.real) if Path(args.real).exists() or not args.data else Path(args.data, args.real)
        real, _ = normalise_intensity(read_image(path))
        real = real[:512, :512] if min(real.shape) >= 512 else resize(real, (512, 512))
        real = np.pad(real, ((0, 512 - real.shape[0]), (0, 512 - real.shape[1])))
        panels.insert(0, np.repeat(real[..., None], 3, 2))
    sep = np.ones((512, 4, 3), np.float32)
    row = np.concatenate([x for p in panels for x in (p, sep)][:-1], axis=1)
    Image.fromarray((np.clip(row, 0, 1) * 255).astype(np.uint8)).save(args.out)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
