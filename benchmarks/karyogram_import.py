"""Karyogram import on the 84 real G-band cells of gband_icbr (spreads/N.png + karyograms/Nk.png).

Per cell: the import's per-class counts equal to the karyogram's (the cut-outs' classes), the share of cut-outs
placed in the spread, unexplained spread objects, seconds (wall and CPU). Then foreign pairs (each spread with the
karyogram of another cell of the same resolution) must be refused. No training is involved: every cell is new to
the method (parameters were tuned by eye on cells 1, 10, 100, 193, then on 1, 9, 12, 16, 21, 27, 29, 40, 42, 50, 53,
128 and 177, kept off the segmenter's G-band validation cells 7, 20, 35, 43, 108, 112, 116, 132, 135, 137, 141, 155,
157, 160, 176, 180, 188; validation cell 20 was run once among the diagnostics by mistake, nothing was set on it).

    python benchmarks/karyogram_import.py --data ../shared/data --json out/bench/karyogram_import.json \
        --overlays out/bench/karyogram_overlays --results out/bench/karyogram_results

`--overlays` draws each cell's placed outlines and class names for checking by eye; `--results` writes the
ordinary result folders (to open in napari and correct).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from bench_common import data_missing, parser, report
from napari_karyo.core.errors import KaryoError
from napari_karyo.core.jobs import run_to_end
from napari_karyo.core.karyotype.karyogram_import.importer import (
    NORMAL_KARYOTYPES,
    import_steps,
    read_rgb,
    write_import,
)

FOREIGN_PAIRS = 10


def overlay(path: Path, spread: Path, imp) -> None:
    from PIL import Image, ImageDraw
    from scipy import ndimage as ndi

    rgb = read_rgb(spread).astype(np.float32) * 0.75 + 50
    rng = np.random.default_rng(0)
    shape = imp.result.image_shape
    for ch in imp.result.chromosomes:
        m = ch.full_mask(shape)
        rgb[m & ~ndi.binary_erosion(m)] = (255, 0, 255) if ch.class_id == 0 else rng.integers(0, 190, 3)
    im = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for ch in imp.result.chromosomes:
        rr, cc = np.nonzero(ch.mask)
        y, x = rr.mean() + ch.offset[0], cc.mean() + ch.offset[1]
        draw.text((x - 5, y - 7), ch.name if ch.class_id else "?", fill=(255, 0, 0))
        if ch.class_id:
            draw.text((x - 9, y + 4), f"{ch.score:.2f}", fill=(0, 0, 200))
    draw.text((4, 4), f"not found: {' '.join(u['class'] for u in imp.unmatched) or '-'}", fill=(255, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


def one_cell(spread: Path, karyogram: Path, args) -> dict:
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        imp = run_to_end(import_steps(spread, karyogram))
    except KaryoError as exc:
        return {"cell": spread.stem, "error": str(exc), "seconds": time.perf_counter() - wall}
    row = {
        "cell": spread.stem,
        "seconds": time.perf_counter() - wall,
        "cpu_seconds": time.process_time() - cpu,
        "karyogram": imp.karyogram_iscn,
        "cutouts": imp.cutouts,
        "placed": imp.placed,
        "not_found": [u["class"] for u in imp.unmatched],
        "unexplained": imp.unexplained,
        "hidden_labels": imp.hidden_labels,
        "to_review": sum(bool(c.review) for c in imp.result.chromosomes if c.class_id),
        "median_score": float(np.median([c.score for c in imp.result.chromosomes if c.class_id])),
    }
    got = {k: v for k, v in imp.result.class_counts().items() if k in imp.karyogram_counts}
    row["counts_equal"] = got == imp.karyogram_counts
    if args.overlays:
        overlay(Path(args.overlays) / f"{spread.stem}.png", spread, imp)
    if args.results:
        write_import(imp, args.results, overwrite=True)
    return row


def foreign(pairs: list[tuple[Path, Path]], n: int) -> list[dict]:
    """Spread i with the karyogram of the next cell of the same size: the import must refuse it."""
    from PIL import Image

    sizes = [Image.open(s).size for s, _ in pairs]
    out = []
    for i, (spread, _) in enumerate(pairs):
        if len(out) >= n:
            break
        j = next((j for j in range(i + 1, len(pairs)) if sizes[j] == sizes[i]), None)
        if j is None:
            continue
        try:
            run_to_end(import_steps(spread, pairs[j][1]))
            out.append({"spread": spread.name, "karyogram": pairs[j][1].name, "refused": False})
        except KaryoError as exc:
            out.append(
                {"spread": spread.name, "karyogram": pairs[j][1].name, "refused": True, "why": str(exc)}
            )
    return out


def main() -> int:
    p = parser(__doc__, "karyogram_import")
    p.add_argument("--cells", nargs="*", help="only these cell numbers")
    p.add_argument("--overlays", help="folder for overlay PNGs")
    p.add_argument("--results", help="folder for the result folders")
    p.add_argument("--foreign", type=int, default=FOREIGN_PAIRS, help="foreign pairs to try (10)")
    args = p.parse_args()
    if data_missing(args.data):
        return 2
    root = Path(args.data) / "gband_icbr"
    spreads = sorted((root / "spreads").glob("*.png"), key=lambda q: int(q.stem))
    if args.cells:
        spreads = [s for s in spreads if s.stem in set(args.cells)]
    pairs = [(s, root / "karyograms" / f"{s.stem}k.png") for s in spreads]
    rows = []
    for spread, karyogram in pairs:
        rows.append(one_cell(spread, karyogram, args))
        r = rows[-1]
        print(f"{r['cell']}: " + (f"ERROR {r['error']}" if "error" in r else
              f"{r['placed']}/{r['cutouts']} placed, counts equal {r['counts_equal']}, {r['unexplained']} "
              f"unexplained, {r['seconds']:.1f} s ({r['cpu_seconds']:.1f} s CPU)"), file=sys.stderr, flush=True)  # fmt: skip
    ok = [r for r in rows if "error" not in r]
    foreign_rows = foreign(pairs, args.foreign)
    result = {
        "cells": len(rows),
        "refused": len(rows) - len(ok),
        "counts_equal_pct": 100.0 * sum(r["counts_equal"] for r in ok) / max(len(rows), 1),
        "placed_pct": 100.0 * sum(r["placed"] for r in ok) / max(sum(r["cutouts"] for r in ok), 1),
        "cutouts": sum(r["cutouts"] for r in ok),
        "unexplained_per_cell": float(np.mean([r["unexplained"] for r in ok])) if ok else 0.0,
        "seconds_median": float(np.median([r["seconds"] for r in rows])),
        "seconds_max": float(np.max([r["seconds"] for r in rows])),
        "cpu_seconds_median": float(np.median([r["cpu_seconds"] for r in ok])) if ok else 0.0,
        "foreign_refused": f"{sum(f['refused'] for f in foreign_rows)}/{len(foreign_rows)}",
        # counts are compared with the karyogram as read: a misread label shows up here, not in counts_equal
        "not_normal_readings": [
            f"{r['cell']} {r['karyogram']}" for r in ok if r["karyogram"] not in NORMAL_KARYOTYPES
        ],
        "per_cell": rows,
        "foreign": foreign_rows,
    }
    table = (
        f"cells {result['cells']} (refused {result['refused']})\n"
        f"per-class counts equal to the karyogram: {result['counts_equal_pct']:.1f}% of cells\n"
        f"cut-outs placed: {result['placed_pct']:.1f}% of {result['cutouts']}\n"
        f"unexplained spread objects per cell: {result['unexplained_per_cell']:.1f}\n"
        f"seconds per cell: median {result['seconds_median']:.1f} wall ({result['cpu_seconds_median']:.1f} CPU), "
        f"max {result['seconds_max']:.1f}\n"
        f"foreign karyograms refused: {result['foreign_refused']}\n"
        f"karyograms not read as 46,XX/XY (abnormal cells or misread labels; check by eye): "
        f"{', '.join(result['not_normal_readings']) or 'none'}"
    )
    return report(result, table, args.json)


if __name__ == "__main__":
    sys.exit(main())
