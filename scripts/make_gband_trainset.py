"""The G-band segmenter training set: the karyogram imports of gband_icbr's training cells, named objects only.

Validation cells (`is_val_case("gband_icbr", cell)`, the split benchmarks/gband_spreads.py reports on) never go in.
Cells the import refused have no result folder; cells where more than `--max-unplaced` cut-outs found no place are
left out too (their chromosomes would be taught as background).

    napari-karyo import-karyogram --spreads ../shared/data/gband_icbr/spreads \
        --karyograms ../shared/data/gband_icbr/karyograms --out runs/gband-imports
    python scripts/make_gband_trainset.py --imports runs/gband-imports --out runs/gband-trainset
    napari-karyo train --config configs/maskrcnn-gband.yaml
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from napari_karyo.core.karyotype.training.crop_sets import is_val_case
from napari_karyo.core.storage.training_set import export_training_set, import_training_set


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--imports", required=True, help="OUT folder of `napari-karyo import-karyogram` (batch)")
    p.add_argument("--out", required=True, help="training set folder to write")
    p.add_argument("--max-unplaced", type=int, default=2, help="leave out cells with more unplaced cut-outs")
    args = p.parse_args()
    chosen, skipped = [], []
    for folder in sorted(Path(args.imports).iterdir(), key=lambda f: f.name):
        summary_file = folder / "karyotype.json"
        if not summary_file.is_file() or is_val_case("gband_icbr", folder.name):
            continue
        summary = json.loads(summary_file.read_text()).get("karyogram_import", {})
        if len(summary.get("unmatched", [])) > args.max_unplaced:
            skipped.append(folder.name)
        else:
            chosen.append(folder)
    out = export_training_set(
        chosen, args.out, case_of=lambda image: image.stem, val_fraction=0.0, named_only=True
    )
    items = import_training_set(out)
    print(
        f"{len(items)} training cells, {sum(r.count for _, r, _ in items)} chromosomes -> {out}; "
        f"left out (> {args.max_unplaced} cut-outs unplaced): {', '.join(skipped) or 'none'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
