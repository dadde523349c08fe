"""Cell-level naming and ISCN on held-out M-FISH spreads (validation slides A02, P10, V16, V26; DAPI plane only).

(1) per-chromosome naming accuracy, per-chromosome argmax vs the cell-level assignment (core/karyotype/infer/assign.py):
    on the true (K-map) instances (classification only) and on the full pipeline (`analyze`, objects matched to
    the true ones at IoU >= 0.5);
(2) ISCN exact-match rate per cell against its case's `Case Info` karyotype (numerical karyotypes only; cells of
    cases with structural changes are skipped and counted), for both variants;
(3) count and sex complement right per cell.

`--calibrate` instead grid-searches the assignment penalties on the M-FISH *training* slides (the classifier trained
on their crops, so its probabilities there are more confident than on new cells) and prints the best settings.

    python benchmarks/cell_naming.py --data ../shared/data --json bench_results/cell_naming.json
    python benchmarks/cell_naming.py --data ../shared/data --calibrate --json bench_results/cell_naming_calibration.json

The classifier and pipeline outputs per cell are cached in out/bench/ (refreshed when the model files change).
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

from bench_common import data_missing, parser, report
from napari_karyo.core.iscn import UnsupportedKaryotype, iscn, parse_iscn, read_case_info
from napari_karyo.core.karyotype.evaluate import metrics
from napari_karyo.core.karyotype.infer.assign import DEFAULT_PENALTIES, Penalties, assign_cell
from napari_karyo.core.karyotype.training import datasets

CACHE_VERSION = 2


def collect(data: str, split: str, device: str = "cpu", cache_dir: str = "out/bench") -> list[dict]:
    """Per cell: case, Case Info, K-map classes, classifier probabilities on the true instances, pipeline
    probabilities with each predicted object's matched true instance (-1: none), and the cell's analysability score
    from `rank_spreads` over the cells of its case (after cell-level assignment, as `napari-karyo case` does)."""
    from napari_karyo.core.karyotype.infer.assign import assign_spread
    from napari_karyo.core.karyotype.infer.classifier import load_classifier
    from napari_karyo.core.karyotype.infer.predict import analyze
    from napari_karyo.core.karyotype.infer.preprocess import normalise_intensity
    from napari_karyo.core.karyotype.report.case import rank_spreads
    from napari_karyo.core.storage.annotations import read_mfish_k
    from napari_karyo.core.storage.images import read_image
    from napari_karyo.core.storage.model_files import resolve

    stamp = {
        name: Path(resolve(name)).stat().st_mtime for name in ("chromosome-maskrcnn", "chromosome-classifier")
    }
    cache = Path(cache_dir) / f"cell_naming_cells_{split}.json"
    if cache.exists():
        doc = json.loads(cache.read_text())
        if doc.get("models") == stamp and doc.get("version") == CACHE_VERSION:
            return doc["cells"]
    namer = load_classifier(None, device=device)
    cells, by_case = [], {}
    for dapi, kfile in datasets.mfish_files(data, split):
        t = time.perf_counter()
        gt = read_mfish_k(kfile)
        image = read_image(dapi)
        norm, _ = normalise_intensity(image)
        res = analyze(image, device=device)
        gt_of = [-1] * res.count
        for i, j, _ in metrics.match(res.chromosomes, gt):
            gt_of[i] = j
        cells.append(
            {
                "key": dapi.stem[:-1],
                "case": dapi.parent.name,
                "slide": datasets.mfish_slide(dapi),
                "case_info": read_case_info(dapi.parent),
                "gt_classes": [int(c.class_id) for c in gt],
                "gt_probs": np.round(namer.predict_spread(norm, gt), 6).tolist() if gt else [],
                "pred_probs": [np.round(c.probs, 6).tolist() for c in res.chromosomes],
                "pred_gt": gt_of,
            }
        )
        by_case.setdefault(dapi.parent.name, []).append((len(cells) - 1, res))
        print(
            f"  {cells[-1]['key']}: {len(gt)} true, {res.count} found, {time.perf_counter() - t:.1f} s",
            file=sys.stderr,
            flush=True,
        )
    for members in by_case.values():
        for _, res in members:
            assign_spread(res)
        for pos, score, reasons in rank_spreads([res for _, res in members]):
            cells[members[pos][0]].update(rank_score=score, rank_reasons=reasons)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"models": stamp, "version": CACHE_VERSION, "cells": cells}))
    return cells


def ranking_quality(cells: list[dict], rows: list[dict]) -> dict:
    """Does a higher analysability score go with a better cell? Pairs of cells within a case, pooled: share of
    pairs ordered like (a) the pipeline's count error (smaller first) and (b) the share of true chromosomes found
    and named right; score ties count half. Plus how often the top-ranked cell has the case's smallest count error."""
    by_case: dict[str, list[int]] = {}
    for k, cell in enumerate(cells):
        by_case.setdefault(cell["case"], []).append(k)
    quality = {
        "count": [-abs(r["objects"] - len(c["gt_classes"])) for r, c in zip(rows, cells, strict=True)],
        "named": [
            r["pipe_found_named"] / max(len(c["gt_classes"]), 1) for r, c in zip(rows, cells, strict=True)
        ],
    }
    out: dict = {"cases": sum(len(m) >= 2 for m in by_case.values())}
    for name, q in quality.items():
        agree, pairs = 0.0, 0
        for members in by_case.values():
            for a, b in itertools.combinations(members, 2):
                if q[a] == q[b]:
                    continue
                pairs += 1
                ds = cells[a]["rank_score"] - cells[b]["rank_score"]
                agree += 0.5 if ds == 0 else float((ds > 0) == (q[a] > q[b]))
        out[f"pairs_{name}"], out[f"concordance_{name}"] = pairs, agree / max(pairs, 1)
    tops = [max(m, key=lambda k: cells[k]["rank_score"]) for m in by_case.values() if len(m) >= 2]
    best = [max(quality["count"][k] for k in m) for m in by_case.values() if len(m) >= 2]
    out["top_has_best_count"] = float(
        np.mean([quality["count"][t] == b for t, b in zip(tops, best, strict=True)])
    )
    return out


def _target(cell: dict):
    try:
        return parse_iscn(cell["case_info"])
    except UnsupportedKaryotype:
        return None


def evaluate(cells: list[dict], penalties: Penalties = DEFAULT_PENALTIES) -> dict:
    out: dict = {"per_cell": []}
    acc = {k: [0, 0] for k in ("gt_argmax", "gt_assign", "pipe_argmax", "pipe_assign")}  # [right, of]
    pipe_true = [0, 0, 0]  # true chromosomes, found and named right by argmax, by assignment
    for cell in cells:
        gt = np.array(cell["gt_classes"], dtype=int)
        gp = np.array(cell["gt_probs"]).reshape(-1, 24)
        pp = np.array(cell["pred_probs"]).reshape(-1, 24)
        pred_gt = np.array(cell["pred_gt"], dtype=int)
        g_arg, g_asn = gp.argmax(1) + 1, assign_cell(gp, penalties=penalties)
        p_arg, p_asn = pp.argmax(1) + 1, assign_cell(pp, penalties=penalties)
        acc["gt_argmax"][0] += int((g_arg == gt).sum())
        acc["gt_assign"][0] += int((g_asn.class_ids == gt).sum())
        acc["gt_argmax"][1] += len(gt)
        acc["gt_assign"][1] += len(gt)
        found = pred_gt >= 0
        truth = gt[pred_gt[found]]
        acc["pipe_argmax"][0] += int((p_arg[found] == truth).sum())
        acc["pipe_assign"][0] += int((p_asn.class_ids[found] == truth).sum())
        acc["pipe_argmax"][1] += int(found.sum())
        acc["pipe_assign"][1] += int(found.sum())
        pipe_true[0] += len(gt)
        pipe_true[1] += int((p_arg[found] == truth).sum())
        pipe_true[2] += int((p_asn.class_ids[found] == truth).sum())
        target = _target(cell)
        row = {
            "cell": cell["key"],
            "case_info": cell["case_info"],
            "supported": target is not None,
            "kmap": iscn(gt),
            "gt_argmax": iscn(g_arg),
            "gt_assign": g_asn.iscn,
            "pipe_argmax": iscn(p_arg),
            "pipe_assign": p_asn.iscn,
            "objects": len(pp),
            "pipe_found_named": int((p_asn.class_ids[found] == truth).sum()),
        }
        if target is not None:
            for name in ("kmap", "gt_argmax", "gt_assign", "pipe_argmax", "pipe_assign"):
                kt = parse_iscn(row[name]) if "?" not in row[name] else None
                row[f"{name}_exact"] = row[name] == str(target)
                row[f"{name}_count"] = kt is not None and kt.count == target.count
                row[f"{name}_sex"] = kt is not None and kt.sex == target.sex
        out["per_cell"].append(row)
    rows = [r for r in out["per_cell"] if r["supported"]]
    out["cells"] = len(cells)
    out["cells_numerical"] = len(rows)
    out["cells_structural_skipped"] = len(cells) - len(rows)
    out["accuracy"] = {k: v[0] / max(v[1], 1) for k, v in acc.items()}
    out["accuracy"]["pipe_of_true_argmax"] = pipe_true[1] / max(pipe_true[0], 1)
    out["accuracy"]["pipe_of_true_assign"] = pipe_true[2] / max(pipe_true[0], 1)
    if all("rank_score" in c for c in cells):
        out["ranking"] = ranking_quality(cells, out["per_cell"])
    normal = [r for r in rows if parse_iscn(r["case_info"]).is_normal]
    abnormal = [r for r in rows if not parse_iscn(r["case_info"]).is_normal]
    out["cells_normal"], out["cells_abnormal"] = len(normal), len(abnormal)
    for name in ("kmap", "gt_argmax", "gt_assign", "pipe_argmax", "pipe_assign"):
        for what in ("exact", "count", "sex"):
            out.setdefault(what, {})[name] = (
                float(np.mean([r[f"{name}_{what}"] for r in rows])) if rows else 0.0
            )
        for what, group in (("exact_normal", normal), ("exact_abnormal", abnormal)):
            out.setdefault(what, {})[name] = (
                float(np.mean([r[f"{name}_exact"] for r in group])) if group else 0.0
            )
    return out


# A third copy must stay possible: an extra object goes to a gain slot rather than "unassigned" when
# -log p + gain < unassigned, i.e. p > exp(gain - unassigned); the margin keeps that threshold reachable. The same
# holds for a third sex chromosome (XXY, XYY) and the `sex` cost. The training slides hold no trisomy 21 and no
# XXY/XYY cell, so without this the search would simply switch gains off.
MIN_GAIN_MARGIN = 0.5


def calibrate(cells: list[dict]) -> dict:
    """Grid search on training cells: ISCN exact-match (true instances and pipeline, equally weighted), then
    per-chromosome accuracy of the assignment as a tie-break."""
    trials = []
    grid = itertools.product(
        (0.5, 1.0, 1.5, 2.0, 3.0), (3.0, 4.0, 6.0), (1.5, 2.0, 2.5, 3.0, 4.0), (1.0, 1.5, 2.0, 3.0)
    )
    for gain, loss, unassigned, sex in grid:
        if unassigned - max(gain, sex) < MIN_GAIN_MARGIN:
            continue
        pen = Penalties(gain=gain, loss=loss, unassigned=unassigned, sex=sex)
        ev = evaluate(cells, pen)
        score = (ev["exact"]["gt_assign"] + ev["exact"]["pipe_assign"]) / 2
        tie = (ev["accuracy"]["gt_assign"] + ev["accuracy"]["pipe_assign"]) / 2
        trials.append(
            {
                "penalties": pen.__dict__,
                "exact_gt": ev["exact"]["gt_assign"],
                "exact_pipe": ev["exact"]["pipe_assign"],
                "acc_gt": ev["accuracy"]["gt_assign"],
                "acc_pipe": ev["accuracy"]["pipe_assign"],
                "score": score,
                "tie": tie,
            }
        )
    trials.sort(key=lambda t: (-t["score"], -t["tie"]))
    return {
        "split": "train: M-FISH slides other than " + ", ".join(datasets.VAL_MFISH_SLIDES),
        "cells": len(cells),
        "best": trials[0],
        "top": trials[:10],
        "trials": len(trials),
    }


def table(r: dict) -> str:
    a, e, c, s = r["accuracy"], r["exact"], r["count"], r["sex"]
    lines = [
        (
            f"split: {r['split']}; {r['cells']} cells, {r['cells_numerical']} with a numerical Case Info karyotype "
            f"({r['cells_structural_skipped']} structural skipped)"
        ),
        "",
        "| measure | argmax | assignment |",
        "|---|---|---|",
        f"| named right, true instances | {a['gt_argmax']:.1%} | {a['gt_assign']:.1%} |",
        f"| named right, pipeline objects matched to a true one | {a['pipe_argmax']:.1%} | {a['pipe_assign']:.1%} |",
        f"| found and named right, of all true chromosomes | {a['pipe_of_true_argmax']:.1%} | {a['pipe_of_true_assign']:.1%} |",
        f"| ISCN exact, true instances | {e['gt_argmax']:.1%} | {e['gt_assign']:.1%} |",
        f"| ISCN exact, pipeline | {e['pipe_argmax']:.1%} | {e['pipe_assign']:.1%} |",
        (
            f"| ISCN exact, true instances: normal / abnormal cells ({r['cells_normal']} / {r['cells_abnormal']}) | "
            f"{r['exact_normal']['gt_argmax']:.1%} / {r['exact_abnormal']['gt_argmax']:.1%} | "
            f"{r['exact_normal']['gt_assign']:.1%} / {r['exact_abnormal']['gt_assign']:.1%} |"
        ),
        (
            f"| ISCN exact, pipeline: normal / abnormal cells | "
            f"{r['exact_normal']['pipe_argmax']:.1%} / {r['exact_abnormal']['pipe_argmax']:.1%} | "
            f"{r['exact_normal']['pipe_assign']:.1%} / {r['exact_abnormal']['pipe_assign']:.1%} |"
        ),
        f"| count right, true instances / pipeline | {c['gt_argmax']:.1%} / {c['pipe_argmax']:.1%} | {c['gt_assign']:.1%} / {c['pipe_assign']:.1%} |",
        f"| sex right, true instances / pipeline | {s['gt_argmax']:.1%} / {s['pipe_argmax']:.1%} | {s['gt_assign']:.1%} / {s['pipe_assign']:.1%} |",
        f"| ceiling: K-map classes' ISCN = Case Info | {e['kmap']:.1%} (count {c['kmap']:.1%}) | |",
    ]
    if "ranking" in r:
        k = r["ranking"]
        lines += [
            "",
            (
                f"ranking ({k['cases']} cases with 2+ cells): score order agrees with count error in "
                f"{k['concordance_count']:.1%} of {k['pairs_count']} pairs, with named-right share in "
                f"{k['concordance_named']:.1%} of {k['pairs_named']}; top cell has the case's best count in "
                f"{k['top_has_best_count']:.1%}"
            ),
        ]
    return "\n".join(lines)


def main() -> int:
    p = parser(__doc__, "cell_naming")
    p.add_argument("--device", default="cpu")
    p.add_argument("--calibrate", action="store_true", help="tune the penalties on the training slides")
    args = p.parse_args()
    if data_missing(args.data):
        return 2
    import torch

    torch.set_num_threads(1)
    if args.calibrate:
        result = calibrate(collect(args.data, "train", args.device))
        for t in result["top"]:
            print(json.dumps(t))
    else:
        result = evaluate(collect(args.data, "val", args.device))
        result["split"] = "validation: M-FISH slides " + ", ".join(datasets.VAL_MFISH_SLIDES)
        result["penalties"] = DEFAULT_PENALTIES.__dict__
        return report(result, table(result), args.json)


if __name__ == "__main__":
    sys.exit(main())
