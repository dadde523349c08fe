"""Prompt speed and first-gesture quality: `napari_karyo.prompt.Prompter` on validation spreads never trained on.

For every spread (M-FISH validation slides A02, P10, V16, V26, DAPI plane, K-map instances as truth; BioImLab
validation images numbered 5k, polygons as truth) the Prompter computes the image features once (timed: "features"),
then for every true chromosome, as a person would prompt it:
- box: the true bounding box grown by 2 px;
- click: one click at the pixel deepest inside the chromosome (away from pixels it shares with another);
- click again at the same place (the next alternative, when there is one);
- refine: that click positive, a click on the nearest other chromosome negative;
- separate: for every pair of true chromosomes that share pixels (a crossing), one click on each.
Each prompt is timed alone (heads + pasting the mask at image size) and its mask compared with the truth (IoU).
Target: <= 50 ms per prompt on the 2-core CPU once the features are computed.

    OMP_NUM_THREADS=1 python benchmarks/prompt_speed.py --data ../shared/data --json bench_results/prompt_speed.json
        [--sam CHECKPOINT]  (your SAM / micro-sam checkpoint answers the prompts instead of the bundled model)
        [--device cuda]  (the features and heads on a GPU)
"""

from __future__ import annotations

import os
import platform
import sys
import time

import numpy as np

from bench_common import data_missing, parser, report
from napari_karyo.core.device import describe, pick_device
from napari_karyo.core.errors import KaryoError
from napari_karyo.core.karyotype.evaluate.prompt_actions import click_point, loose_box, mask_iou
from napari_karyo.core.karyotype.infer.prompt import open_prompter
from napari_karyo.core.karyotype.training import datasets

SPLIT = (
    "validation: mfish slides " + ", ".join(datasets.VAL_MFISH_SLIDES) + " (DAPI; K-map instances); "
    "bioimlab_seg images numbered 5k (polygons)"
)
TARGET_MS = 50.0
KINDS = ("box", "click", "click again", "refine", "separate")


def _timed(func, *args):
    """(result or None when the prompt was refused, (wall ms, CPU ms of this process))."""
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        out = func(*args)
    except KaryoError:
        out = None
    return out, (1000 * (time.perf_counter() - t0), 1000 * (time.process_time() - c0))


def _spread(p, truth: list, times: dict, ious: dict) -> None:
    """Every prompt kind on every true chromosome of one spread (`p`: a Prompter or SamPrompter)."""
    full = [g.full_mask(p.shape) for g in truth]
    clicks = [click_point(g, truth[:j] + truth[j + 1 :]) for j, g in enumerate(truth)]
    for j, g in enumerate(truth):
        others = [k for k in range(len(truth)) if k != j]
        nearest = min(others, key=lambda k: np.hypot(*np.subtract(clicks[k], clicks[j])), default=None)
        prompts = [
            ("box", p.box, loose_box(g, p.shape)),
            ("click", p.point, clicks[j]),
            ("click again", p.point, clicks[j]),
        ]
        if nearest is not None:
            prompts.append(("refine", p.refine, ([clicks[j]], [clicks[nearest]])))
        for kind, func, args in prompts:
            mask, ms = _timed(func, *args)
            times[kind].append(ms)
            if kind != "click again":  # the second click is judged by the user, not against this truth
                ious[kind].append(0.0 if mask is None else mask_iou(mask, full[j]))
        for k in range(j + 1, len(truth)):
            if (full[j] & full[k]).any():
                masks, ms = _timed(p.separate, [clicks[j], clicks[k]])
                times["separate"].append(ms)
                for m, t in zip(masks or [None, None], (full[j], full[k]), strict=True):
                    ious["separate"].append(0.0 if m is None else mask_iou(m, t))


def evaluate(data: str, limit: int | None = None, sam: str = "", device: str = "cpu") -> dict:
    """`sam`: a SAM / micro-sam checkpoint answers the prompts instead of the bundled model."""
    spreads = datasets.load_mfish(data, "val")[:limit] + datasets.load_bioimlab(data, "val")[:limit]
    open_prompter(spreads[0].image, sam, device)  # model load and first-call warm-up, not counted
    out = {}
    for source in ("mfish", "bioimlab"):
        times = {k: [] for k in KINDS}
        ious = {k: [] for k in KINDS if k != "click again"}
        features = []
        for s in (s for s in spreads if s.key.startswith(source)):
            p, ms = _timed(open_prompter, s.image, sam, device)
            features.append(ms)
            _spread(p, s.chromosomes, times, ious)
        out[source] = {
            "spreads": len(features),
            "features_s_median": float(np.median([w for w, _ in features])) / 1000,
            "features_cpu_s_median": float(np.median([c for _, c in features])) / 1000,
            "ms": {k: _stats(v) for k, v in times.items()},
            "iou": {k: _quality(v) for k, v in ious.items()},
        }
    machine = f"{platform.machine()} {os.cpu_count()} cores, 1 thread, {describe(pick_device(device))}"
    return {"split": SPLIT, "machine": machine, "prompts": sam or "bundled chromosome-maskrcnn", **out}


def _stats(ms: list[tuple[float, float]]) -> dict:
    """Wall and CPU milliseconds of one prompt kind."""
    if not ms:
        return {"n": 0}
    wall, cpu = np.array(ms, dtype=float).T
    return {
        "n": int(wall.size),
        "median": float(np.median(wall)),
        "p95": float(np.percentile(wall, 95)),
        "max": float(wall.max()),
        "cpu_median": float(np.median(cpu)),
        "cpu_p95": float(np.percentile(cpu, 95)),
    }


def _quality(ious: list[float]) -> dict:
    if not ious:
        return {"n": 0}
    a = np.array(ious)
    return {
        "n": a.size,
        "median": float(np.median(a)),
        "share_0_8": float((a >= 0.8).mean()),
        "share_0_5": float((a >= 0.5).mean()),
    }


def table(r: dict) -> str:
    lines = [f"split: {r['split']}; machine: {r['machine']}", ""]
    for source in ("mfish", "bioimlab"):
        s = r[source]
        lines += [
            f"{source}: {s['spreads']} spreads, features {s['features_s_median']:.2f} s per spread (median; "
            f"{s['features_cpu_s_median']:.2f} s CPU time)",
            "",
            "| prompt | n | ms median | ms p95 | ms max | CPU ms median / p95 | IoU median | IoU >= 0.8 | IoU >= 0.5 |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for k in KINDS:
            t, q = s["ms"][k], s["iou"].get(k, {})
            if not t["n"]:
                continue
            quality = (
                f"{q['median']:.3f} | {q['share_0_8']:.1%} | {q['share_0_5']:.1%}"
                if q.get("n")
                else "- | - | -"
            )
            lines.append(
                f"| {k} | {t['n']} | {t['median']:.1f} | {t['p95']:.1f} | {t['max']:.1f} | "
                f"{t['cpu_median']:.1f} / {t['cpu_p95']:.1f} | {quality} |"
            )
        lines.append("")
    lines.append(
        f"target: <= {TARGET_MS:.0f} ms per prompt once the features are computed. Wall ms include waiting for the "
        "shared CPUs; CPU ms are this process's own (one thread)"
    )
    return "\n".join(lines)


def main() -> int:
    p = parser(__doc__, "prompt_speed")
    p.add_argument("--limit", type=int, help="only the first N spreads of each source (quick look)")
    p.add_argument(
        "--sam", default="", help="a SAM / micro-sam checkpoint to prompt instead of the bundled model"
    )
    p.add_argument(
        "--device", default="cpu", help="cpu (default), cuda or mps: where the features and prompts run"
    )
    args = p.parse_args()
    if data_missing(args.data):
        return 2
    import torch

    torch.set_num_threads(1)
    result = evaluate(args.data, args.limit, args.sam, args.device)
    return report(result, table(result), args.json)


if __name__ == "__main__":
    sys.exit(main())
