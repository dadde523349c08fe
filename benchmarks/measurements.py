"""Benchmark the chromosome measurements (core/karyotype/infer/measure.py) against the ISCN standard values.

Nothing in the measurements is trained; the few rule constants of the centromere search (width profile only,
smoothing, tip margin) were chosen on the M-FISH training slides, so the M-FISH validation slides and the
BioImLab crops are the held-out figures; all M-FISH cells are reported too:
- M-FISH: all cells with a K map; instances and classes from the K map, measured on the DAPI plane normalised by
  `preprocess.normalise_intensity`, as `analyze` would.
- BioImLab crops (Q-band): every karyotype folder is one cell; the mask is the largest Otsu component of the
  crop; relative lengths are per folder.
Per class: median and IQR of the centromeric index (CI) and the relative length (RL, % of the haploid autosome
length) next to the ISCN value, and the mean absolute deviation of the class medians over the 24 classes.
Synthetic bent chromosomes (arcs of known length and centromere) give the straightening accuracy; the M-FISH
cells give the time per cell.

    python benchmarks/measurements.py --data ../shared/data --json out/bench/measurements.json
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict

import numpy as np

from bench_common import main as bench_main
from napari_karyo.core import classes
from napari_karyo.core.karyotype.infer import measure
from napari_karyo.core.karyotype.infer.preprocess import normalise_intensity
from napari_karyo.core.karyotype.training import datasets
from napari_karyo.core.karyotype.training.crop_sets import bioimlab_items
from napari_karyo.core.results import Chromosome, SpreadResult
from napari_karyo.core.storage.annotations import read_mfish_k
from napari_karyo.core.storage.images import read_image


def mfish(data: str, split: str) -> tuple[dict, list[float]]:
    values: dict[str, dict[int, list[float]]] = {"ci": defaultdict(list), "rl": defaultdict(list)}
    times = []
    for k, (dapi, kmap) in enumerate(datasets.mfish_files(data, split)):
        norm, _ = normalise_intensity(read_image(dapi))
        result = SpreadResult(norm.shape, read_mfish_k(kmap))
        if k == 0:
            measure.measure_spread(norm, result)  # warm-up: first-call imports are not per-cell time
        t = time.perf_counter()
        ms = measure.measure_spread(norm, result)
        times.append(time.perf_counter() - t)
        _collect(values, ms)
    return values, times


def bioimlab_crops(data: str) -> dict:
    from PIL import Image
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu

    values: dict[str, dict[int, list[float]]] = {"ci": defaultdict(list), "rl": defaultdict(list)}
    cells: dict[str, list] = defaultdict(list)
    for item in bioimlab_items(data):
        cells[item.cell].append(item)
    for items in cells.values():
        ms = []
        for k, item in enumerate(items):
            with Image.open(item.path) as im:
                crop = np.asarray(im.convert("L"), dtype=np.float32) / 255
            fg = crop > threshold_otsu(crop) if crop.max() > crop.min() else crop > 0
            lab, n = ndi.label(fg)
            if n == 0:
                continue
            mask = ndi.binary_fill_holes(lab == 1 + int(np.argmax(ndi.sum(fg, lab, range(1, n + 1)))))
            ms.append(
                measure.measure_chromosome(crop, Chromosome.from_full_mask(mask, class_id=item.class_id), k)
            )
        _collect(values, measure.fill_relative_lengths(ms))
    return values


def _collect(values: dict, ms: list[measure.Measurement]) -> None:
    for m in ms:
        values["ci"][m.class_id].append(m.centromeric_index)
        values["rl"][m.class_id].append(m.relative_length)


def per_class(values: dict) -> dict:
    rows, dev_ci, dev_rl, each_ci = {}, [], [], []
    for cid in classes.CLASS_IDS:
        ci, rl = np.asarray(values["ci"].get(cid, [])), np.asarray(values["rl"].get(cid, []))
        if ci.size == 0:
            continue
        row = {"n": int(ci.size)}
        for key, arr, ref in (
            ("ci", ci, classes.CENTROMERIC_INDEX[cid]),
            ("rl", rl, classes.RELATIVE_LENGTH[cid]),
        ):
            q1, med, q3 = np.percentile(arr, (25, 50, 75))
            row[key] = {
                "median": float(med),
                "q25": float(q1),
                "q75": float(q3),
                "iscn": ref,
                "deviation": float(med - ref),
                "iscn_in_iqr": bool(q1 <= ref <= q3),
            }
        rows[classes.name(cid)] = row
        dev_ci.append(abs(row["ci"]["deviation"]))
        each_ci.extend(np.abs(ci - classes.CENTROMERIC_INDEX[cid]).tolist())
        dev_rl.append(abs(row["rl"]["deviation"]))
    return {
        "classes": rows,
        "ci_mean_abs_deviation": float(np.mean(dev_ci)) if dev_ci else float("nan"),
        "rl_mean_abs_deviation": float(np.mean(dev_rl)) if dev_rl else float("nan"),
        "ci_abs_deviation_per_chromosome_median": float(np.median(each_ci)) if each_ci else float("nan"),
        "ci_iscn_in_iqr": int(sum(r["ci"]["iscn_in_iqr"] for r in rows.values())),
        "rl_iscn_in_iqr": int(sum(r["rl"]["iscn_in_iqr"] for r in rows.values())),
        "chromosomes": int(sum(r["n"] for r in rows.values())),
    }


def synthetic_arc(
    radius: float, span_deg: float, half_width: float, cen_frac: float, rotate_deg: float, seed: int
):
    """A thick arc with round caps and a constriction (width and intensity dip) at a known fraction of its
    tip-to-tip length. Returns (image, mask, length, p fraction from the first end)."""
    a0, span = np.deg2rad(rotate_deg - span_deg / 2), np.deg2rad(span_deg)
    arc = radius * np.stack([np.sin(a0 + np.linspace(0, span, 200)), np.cos(a0 + np.linspace(0, span, 200))])
    lo = np.floor(arc.min(1) - half_width - 8)  # image frame: just around the arc, whatever its radius
    size = np.ceil(arc.max(1) + half_width + 8 - lo).astype(int)
    rr, cc = np.mgrid[: size[0], : size[1]].astype(float)
    centre = -lo
    t = np.mod(np.arctan2(rr - centre[0], cc - centre[1]) - a0, 2 * np.pi)
    t = np.where(t > span + (2 * np.pi - span) / 2, 0, np.minimum(t, span))
    dist = np.hypot(rr - centre[0] - radius * np.sin(a0 + t), cc - centre[1] - radius * np.cos(a0 + t))
    length = radius * span + 2 * half_width
    dip = np.exp(-((t * radius - (cen_frac * length - half_width)) ** 2) / (2 * (0.2 * half_width) ** 2))
    mask = dist <= half_width * (1 - 0.45 * dip)
    rng = np.random.default_rng(seed)
    image = np.clip(mask * (0.8 - 0.3 * dip) + rng.normal(0, 0.03, mask.shape), 0, 1).astype(np.float32)
    return image, mask, length, cen_frac


def synthetic(n: int = 200, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    len_err, ci_err = [], []
    for k in range(n):
        half_width = rng.uniform(4, 9)
        length = rng.uniform(4, 14) * 2 * half_width  # 4-14 widths long, like chromosomes 21 to 1
        span = rng.uniform(10, 170)
        radius = (length - 2 * half_width) / np.deg2rad(span)
        frac = rng.uniform(0.2, 0.5) if k % 2 else rng.uniform(0.5, 0.8)
        image, mask, true_len, frac = synthetic_arc(radius, span, half_width, frac, rng.uniform(0, 360), k)
        m = measure.measure_chromosome(image, Chromosome.from_full_mask(mask))
        len_err.append((m.length_px - true_len) / true_len)
        ci_err.append(m.centromeric_index - 100 * min(frac, 1 - frac))
    le, ce = np.abs(len_err), np.abs(ci_err)
    return {
        "arcs": n,
        "length_rel_error_mean_abs": float(le.mean()),
        "length_rel_error_p95": float(np.percentile(le, 95)),
        "length_rel_error_signed_mean": float(np.mean(len_err)),
        "ci_abs_error_median": float(np.median(ce)),
        "ci_abs_error_p95": float(np.percentile(ce, 95)),
    }


def run(data: str) -> dict:
    all_values, times = mfish(data, "all")
    val_values, _ = mfish(data, "val")
    return {
        "split": "all M-FISH cells with a K map (nothing is trained); also the validation slides "
        + ", ".join(datasets.VAL_MFISH_SLIDES)
        + " alone; all bioimlab_crops karyotypes",
        "mfish": {"cells": len(times), **per_class(all_values)},
        "mfish_val": per_class(val_values),
        "bioimlab_crops": per_class(bioimlab_crops(data)),
        "synthetic": synthetic(),
        "speed": {"mfish_cell_s_median": float(np.median(times)), "mfish_cell_s_max": float(np.max(times))},
    }


def table(r: dict) -> str:
    m, b, v, s = r["mfish"], r["bioimlab_crops"], r["mfish_val"], r["synthetic"]
    lines = [
        f"split: {r['split']}",
        "",
        (
            "| class | ISCN CI | M-FISH CI median [IQR] | dev | BioImLab CI median [IQR] | dev | ISCN RL "
            "| M-FISH RL median [IQR] | dev | BioImLab RL median [IQR] | dev |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in (classes.name(c) for c in classes.CLASS_IDS):
        cells = []
        for key in ("ci", "rl"):
            ref = None
            parts = []
            for src in (m, b):
                row = src["classes"].get(name)
                if row is None:
                    parts += ["–", "–"]
                    continue
                q = row[key]
                ref = q["iscn"]
                parts += [f"{q['median']:.1f} [{q['q25']:.1f}–{q['q75']:.1f}]", f"{q['deviation']:+.1f}"]
            cells += [f"{ref:.2f}" if ref is not None else "–", *parts]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| summary | M-FISH all | M-FISH val slides | BioImLab crops |",
        "|---|---|---|---|",
        f"| chromosomes | {m['chromosomes']} ({m['cells']} cells) | {v['chromosomes']} | {b['chromosomes']} |",
        (
            f"| CI: mean abs deviation of class medians | {m['ci_mean_abs_deviation']:.2f} | "
            f"{v['ci_mean_abs_deviation']:.2f} | {b['ci_mean_abs_deviation']:.2f} |"
        ),
        (
            f"| CI: median abs deviation per chromosome | {m['ci_abs_deviation_per_chromosome_median']:.2f} | "
            f"{v['ci_abs_deviation_per_chromosome_median']:.2f} | {b['ci_abs_deviation_per_chromosome_median']:.2f} |"
        ),
        (
            f"| CI: classes whose ISCN value is inside the IQR | {m['ci_iscn_in_iqr']}/24 | {v['ci_iscn_in_iqr']}/24 | "
            f"{b['ci_iscn_in_iqr']}/24 |"
        ),
        (
            f"| RL: mean abs deviation of class medians | {m['rl_mean_abs_deviation']:.2f} | "
            f"{v['rl_mean_abs_deviation']:.2f} | {b['rl_mean_abs_deviation']:.2f} |"
        ),
        (
            f"| RL: classes whose ISCN value is inside the IQR | {m['rl_iscn_in_iqr']}/24 | {v['rl_iscn_in_iqr']}/24 | "
            f"{b['rl_iscn_in_iqr']}/24 |"
        ),
        "",
        (
            f"synthetic bent chromosomes ({s['arcs']} arcs): length error mean {s['length_rel_error_mean_abs']:.2%}, "
            f"95th percentile {s['length_rel_error_p95']:.2%} (signed mean {s['length_rel_error_signed_mean']:+.2%}); "
            f"CI error median {s['ci_abs_error_median']:.1f}, 95th percentile {s['ci_abs_error_p95']:.1f} points"
        ),
        (
            f"time per M-FISH cell (measure_spread): median {r['speed']['mfish_cell_s_median']:.3f} s, "
            f"max {r['speed']['mfish_cell_s_max']:.3f} s"
        ),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(bench_main(__doc__, "measurements", run, table))
