"""M-FISH colour karyotyping on held-out cells: the full pipeline from the multi-channel cell vs DAPI only.

Cells: the M-FISH validation slides (datasets.VAL_MFISH_SLIDES, split by slide) of the kits with fluor planes,
A02 (kit A, 9 cells) and P10 (kit P, 7 cells); the shipped kit models never saw them (trained with
`--exclude 'A02__*' 'P10__*' 'V16__*' 'V26__*'`). Truth: the K maps' instances and classes (read_mfish_k) and the
case's `Case Info` karyotype. Per cell, three runs of `CellJob` (the job `napari-karyo analyze CELL` runs):
colour (split and added objects by colour), colour without them, DAPI only. Measures: true chromosomes found
(IoU >= 0.5), found ones named right, count exactly right (counted objects = K-map chromosomes; also all
objects), ISCN exactly the Case Info (numerical karyotypes), per-pixel accuracy of the kit model on the K-map
pixels with a class (overlaps excluded; published 82.4%, Karvelis et al. 2008), and seconds per cell (models
loaded, first call excluded).

    OMP_NUM_THREADS=1 python benchmarks/mfish_colour.py --data ../shared/data --json out/bench/mfish_colour.json
"""

from __future__ import annotations

import os
import platform
import sys
import time

import numpy as np

from bench_common import data_missing, parser, report
from napari_karyo.core.iscn import UnsupportedKaryotype, parse_iscn, read_case_info
from napari_karyo.core.jobs import run_to_end
from napari_karyo.core.karyotype.evaluate import metrics
from napari_karyo.core.karyotype.mfish.analyze import CellJob
from napari_karyo.core.karyotype.mfish.kits import plane_order
from napari_karyo.core.karyotype.mfish.pixels import normalise_planes
from napari_karyo.core.karyotype.training import datasets
from napari_karyo.core.storage.annotations import read_mfish_k
from napari_karyo.core.storage.multichannel import is_multichannel, read_cell

VARIANTS = {
    "colour": {},
    "colour, no split/add": {"split": False, "fill": False},
    "DAPI only": {"dapi_only": True},
}


def score_run(result, gt, target) -> dict:
    pairs = metrics.match(result.chromosomes, gt)
    counted = sum(c.class_id > 0 for c in result.chromosomes)
    touches = metrics.intersections(result.chromosomes, gt).sum(1) if gt else np.zeros(result.count)
    return {
        "unlabelled": int(
            (touches == 0).sum()
        ),  # objects on no K-map chromosome (debris, or unlabelled in K)
        "found": len(pairs),
        "named": sum(result.chromosomes[i].class_id == gt[j].class_id for i, j, _ in pairs),
        "objects": result.count,
        "counted": counted,
        "count_exact": counted == len(gt),
        "objects_exact": result.count == len(gt),
        "iscn": result.iscn,
        "iscn_exact": None if target is None else result.iscn == str(target),
    }


def pixel_accuracy(job: CellJob, kmap: np.ndarray) -> tuple[int, int]:
    model = job.model
    norm = normalise_planes(job.cell.planes[plane_order(job.cell.names, model.channels, "cell")])
    lab = (kmap >= 1) & (kmap <= 24)
    pred = model.probabilities(norm, lab).argmax(1) + 1
    return int((pred == kmap[lab]).sum()), int(lab.sum())


def run(data: str, device: str, limit: int | None, variants: list[str], edges: str = "default") -> dict:
    stage = {} if edges == "default" else {"edges": edges == "on"}
    cells = [(d, k) for d, k in datasets.mfish_files(data, "val") if is_multichannel(d)][:limit]
    rows = []
    for n, (dapi, kfile) in enumerate(cells):
        cell = read_cell(dapi)
        gt = read_mfish_k(kfile)
        try:
            target = parse_iscn(read_case_info(dapi.parent))
        except UnsupportedKaryotype:
            target = None
        row = {"cell": dapi.stem[:-1], "kit": dapi.name[0], "true": len(gt), "case_info": str(target or "")}
        for name in variants:
            job = CellJob(cell, **VARIANTS[name])
            if n == 0:
                run_to_end(job.steps(device=device, **stage))  # warm-up: loads the models
            t, c = time.perf_counter(), time.process_time()
            result = run_to_end(job.steps(device=device, **stage))
            # CPU time: on a shared machine closer to a quiet run than wall time
            seconds = {"seconds": time.perf_counter() - t, "cpu_seconds": time.process_time() - c}
            row[name] = {**score_run(result, gt, target), **seconds}
            if name == "colour":
                row[name].update(split=job.namer.split_count, added=job.namer.added_count)
                row["pixels_right"], row["pixels"] = pixel_accuracy(job, np.asarray(_kmap(kfile)))
        rows.append(row)
        print(
            f"  {row['cell']}: " + "; ".join(f"{v} {row[v]['iscn']}" for v in variants),
            file=sys.stderr,
            flush=True,
        )
    out = {
        "split": "validation slides " + ", ".join(s for s in datasets.VAL_MFISH_SLIDES if s[0] in "AP"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, 1 thread",
        "device": device,
        "edges": edges,
        "per_cell": rows,
        "summary": {},
    }
    for kit in ("A", "P", "all"):
        sel = [r for r in rows if kit == "all" or r["kit"] == kit]
        if sel:
            out["summary"][kit] = {v: _summary(sel, v) for v in variants}
            if "colour" in variants:
                right, total = sum(r["pixels_right"] for r in sel), sum(r["pixels"] for r in sel)
                out["summary"][kit]["pixel_accuracy"] = right / total
    return out


def _kmap(path):
    import tifffile

    return tifffile.imread(path)


def _summary(rows: list[dict], v: str) -> dict:
    true = sum(r["true"] for r in rows)
    found = sum(r[v]["found"] for r in rows)
    iscn = [r[v]["iscn_exact"] for r in rows if r[v]["iscn_exact"] is not None]
    return {
        "cells": len(rows),
        "true": true,
        "found_share": found / true,
        "named_share": sum(r[v]["named"] for r in rows) / max(found, 1),
        "count_exact_share": float(np.mean([r[v]["count_exact"] for r in rows])),
        "objects_exact_share": float(np.mean([r[v]["objects_exact"] for r in rows])),
        "iscn_exact_share": float(np.mean(iscn)) if iscn else 0.0,
        "iscn_cells": len(iscn),
        "unlabelled_per_cell": float(np.mean([r[v]["unlabelled"] for r in rows])),
        "split": sum(r[v].get("split", 0) for r in rows),
        "added": sum(r[v].get("added", 0) for r in rows),
        "seconds_median": float(np.median([r[v]["seconds"] for r in rows])),
        "cpu_seconds_median": float(np.median([r[v]["cpu_seconds"] for r in rows])),
    }


def table(r: dict) -> str:
    lines = [
        f"split: {r['split']}; {r['machine']}",
        "",
        "| kit | naming | cells | found (IoU>=0.5) | named right of found | count exact | objects = true | "
        "ISCN exact (cells) | objects on no K chromosome, per cell | split / added by colour | s per cell, wall / CPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kit, s in r["summary"].items():
        for v in [v for v in VARIANTS if v in s]:
            m = s[v]
            lines.append(
                f"| {kit} | {v} | {m['cells']} | {m['found_share']:.1%} ({m['true']}) | {m['named_share']:.1%} | "
                f"{m['count_exact_share']:.1%} | {m['objects_exact_share']:.1%} | {m['iscn_exact_share']:.1%} "
                f"({m['iscn_cells']}) | {m['unlabelled_per_cell']:.1f} | {m['split']} / {m['added']} | "
                f"{m['seconds_median']:.2f} / {m['cpu_seconds_median']:.2f} |"
            )
    lines.append("")
    lines += [
        f"per-pixel accuracy, kit {k}: {s['pixel_accuracy']:.1%} (published 82.4%)"
        for k, s in r["summary"].items()
        if "pixel_accuracy" in s
    ]
    return "\n".join(lines)


def main() -> int:
    p = parser(__doc__, "mfish_colour")
    p.add_argument("--device", default="cpu")
    p.add_argument("--limit", type=int, help="only the first N cells (quick look)")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument(
        "--edges",
        choices=("default", "on", "off"),
        default="default",
        help="outlines moved onto the edges (shipped: off with a kit model, on for DAPI-only naming)",
    )
    args = p.parse_args()
    if data_missing(args.data):
        return 2
    import torch

    torch.set_num_threads(1)
    result = run(args.data, args.device, args.limit, args.variants, args.edges)
    result["command"] = " ".join(sys.argv)
    return report(result, table(result), args.json)


if __name__ == "__main__":
    sys.exit(main())
