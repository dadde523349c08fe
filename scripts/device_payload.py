"""Build gpu/ (git-ignored): the data a GPU machine that takes at most 64 MiB of files per call needs for
scripts/device_round.sh. Training subsets of ../shared/data (every second BioImLab training image, every third M-FISH
training cell as zlib TIFFs), two validation spreads of each for the prompt timing, and the G-band validation spreads
with their karyogram imports (the truth of gband_spreads.py). runs/gband-trainset travels beside it.

    python scripts/device_payload.py --data ../shared/data --imports runs/gband-imports
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import tifffile

from napari_karyo.core.karyotype.training import datasets

IMPORT_FILES = ("annotations.json", "instances.tif", "karyotype.json")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--imports", required=True, help="the OUT folder of import-karyogram on gband_icbr")
    p.add_argument("--out", default="gpu")
    args = p.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    (out / "data/bioimlab_seg").mkdir(parents=True)
    (out / "data/gband_icbr/spreads").mkdir(parents=True)
    for f in datasets.bioimlab_files(args.data, "train")[::2] + datasets.bioimlab_files(args.data, "val")[:2]:
        shutil.copy(f, out / "data/bioimlab_seg")
    for dapi, kmap in (
        datasets.mfish_files(args.data, "train")[::3] + datasets.mfish_files(args.data, "val")[:2]
    ):
        case = out / "data/mfish" / dapi.parent.name
        case.mkdir(parents=True, exist_ok=True)
        for f in (dapi, kmap):
            tifffile.imwrite(case / f.name, tifffile.imread(f), compression="zlib")
    for f in datasets.gband_files(args.data, "val"):
        shutil.copy(f, out / "data/gband_icbr/spreads")
        cell = Path(args.imports, f.stem)
        if cell.is_dir():
            (out / "imports" / f.stem).mkdir(parents=True)
            for name in IMPORT_FILES:
                shutil.copy(cell / name, out / "imports" / f.stem / name)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"{out}: {size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
