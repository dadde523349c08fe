"""Benchmark multi-stain registration against expert and exact landmarks.

- derived_benchmark: 14 cross-stain pairs at 5 % scale with real expert landmarks (all of them are the test set;
  the method's constants were set on these pairs and on birl_anhir: see BENCHMARKS.md).
- birl_anhir: 3 synthetic warps (rigid, affine, elastic) of one image with exact landmarks.
- random warps: a ~6.7 %-scale lung section (pyimsegm_histology) warped by random affine + smooth elastic fields,
  with exact ground truth on a grid of tissue points.
Per pair: median rTRE (TRE / target diagonal) after each stage, robustness (share of landmarks that moved closer),
seconds. Side by side in the same run: SimpleITK (centred moments init, affine then B-spline, Mattes MI), when
installed (`pip install napari-karyo[bench]`).

    OMP_NUM_THREADS=1 python benchmarks/registration.py --data ../shared/data --json out/bench/registration.json
"""

from __future__ import annotations

import csv
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from bench_common import parser
from napari_karyo.core.pathology.registration.register import STAGES, register_pair
from napari_karyo.core.pathology.transform import Transform
from napari_karyo.core.storage.atomic import write_json


def read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def read_landmarks_rc(path: Path) -> np.ndarray:
    """ANHIR CSV (` ,X,Y`, x = column) -> (n, 2) (row, col)."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    return np.array([[float(r[2]), float(r[1])] for r in rows if r])


def scores(t: Transform, fixed_rc, moving_rc, diagonal: float) -> dict:
    n = min(len(fixed_rc), len(moving_rc))
    f, m = fixed_rc[:n], moving_rc[:n]
    before = np.linalg.norm(m - f, axis=1)
    after = np.linalg.norm(t.map_points(m) - f, axis=1)
    return {"rtre_median": float(np.median(after) / diagonal), "robustness": float(np.mean(after < before))}


def run_ours(fixed, moving, f_rc, m_rc, diagonal) -> dict:
    cpu = time.process_time()
    res = register_pair(fixed, moving)
    out = {
        "seconds": res.seconds,
        "cpu_seconds": time.process_time() - cpu,
        "ok": res.ok,
        "quality": res.quality,
        "nonrigid": res.transform.displacement is not None,
    }
    for stage in (*STAGES, "fine_affine"):
        out[stage] = scores(res.stages[stage], f_rc, m_rc, diagonal)
    out["final"] = scores(res.transform, f_rc, m_rc, diagonal)
    return out


def run_sitk(fixed, moving, f_rc, m_rc, diagonal) -> dict:
    """SimpleITK reference: grey images at the same ~512 px working size, affine + B-spline, Mattes MI."""
    import SimpleITK as sitk

    from napari_karyo.core.pathology.tissue import downsample

    t0, cpu = time.perf_counter(), time.process_time()
    k = min(1.0, 512 / max(*fixed.shape[:2], *moving.shape[:2]))

    def img(a):
        grey = 255.0 - downsample(a, k).mean(-1)  # tissue bright on dark, as MI-based methods expect
        im = sitk.GetImageFromArray(grey.astype(np.float32))
        im.SetSpacing((1 / k, 1 / k))  # physical units = input pixels
        return im

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)  # the same one core as ours
    fi, mi = img(fixed), img(moving)
    init = sitk.CenteredTransformInitializer(
        fi, mi, sitk.AffineTransform(2), sitk.CenteredTransformInitializerFilter.MOMENTS
    )
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.2, seed=0)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(2.0, 1e-4, 200)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([4, 2, 1])
    reg.SetSmoothingSigmasPerLevel([2, 1, 0])
    reg.SetInitialTransform(init, inPlace=False)
    affine = reg.Execute(fi, mi)
    t_aff = time.perf_counter() - t0
    bs = sitk.BSplineTransformInitializer(fi, [8, 8])
    reg2 = sitk.ImageRegistrationMethod()
    reg2.SetMetricAsMattesMutualInformation(32)
    reg2.SetMetricSamplingStrategy(reg2.RANDOM)
    reg2.SetMetricSamplingPercentage(0.2, seed=0)
    reg2.SetInterpolator(sitk.sitkLinear)
    reg2.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=50)
    reg2.SetShrinkFactorsPerLevel([2, 1])
    reg2.SetSmoothingSigmasPerLevel([1, 0])
    reg2.SetMovingInitialTransform(affine)
    reg2.SetInitialTransform(bs, inPlace=True)
    reg2.Execute(fi, mi)
    seconds = time.perf_counter() - t0
    # SimpleITK transforms map FIXED physical points (x, y) to MOVING ones: score landmarks in that direction
    composite = sitk.CompositeTransform([affine, bs])

    def tre(tx):
        n = min(len(f_rc), len(m_rc))
        mapped = np.array([tx.TransformPoint((float(c), float(r)))[::-1] for r, c in f_rc[:n]])
        after = np.linalg.norm(mapped - m_rc[:n], axis=1)
        before = np.linalg.norm(f_rc[:n] - m_rc[:n], axis=1)
        return {
            "rtre_median": float(np.median(after) / diagonal),
            "robustness": float(np.mean(after < before)),
        }

    return {
        "seconds": seconds,
        "cpu_seconds": time.process_time() - cpu,
        "affine_seconds": t_aff,
        "affine": tre(affine),
        "final": tre(composite),
    }


def real_pairs(data: Path):
    root = data / "pathology" / "derived_benchmark"
    with open(root / "pairs.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            yield {
                "name": f"{row['Target image'].split('/')[0]}:{Path(row['Target image']).stem}<-"
                f"{Path(row['Source image']).stem}",
                "fixed": read_rgb(root / row["Target image"]),
                "moving": read_rgb(root / row["Source image"]),
                "fixed_rc": read_landmarks_rc(root / row["Target landmarks"]),
                "moving_rc": read_landmarks_rc(root / row["Source landmarks"]),
                "diagonal": float(row["Image diagonal [pixels]"]),
            }


def synthetic_pairs(data: Path):
    root = data / "pathology" / "birl_anhir" / "data-images"
    fixed = read_rgb(root / "images/artificial_reference.jpg")
    f_rc = read_landmarks_rc(root / "landmarks/artificial_reference.csv")
    for kind in ("rigid", "affine", "elastic"):
        yield {
            "name": f"birl_anhir:{kind}",
            "fixed": fixed,
            "moving": read_rgb(root / f"images/artificial_moving-{kind}.jpg"),
            "fixed_rc": f_rc,
            "moving_rc": read_landmarks_rc(root / f"landmarks/artificial_moving-{kind}.csv"),
            "diagonal": float(np.hypot(*fixed.shape[:2])),
        }


def random_warps(data: Path, n: int, seed: int = 0):
    """Random affine (rotation +-30 deg, scale 0.9-1.1, shear, shift) + smooth elastic warps with exact GT."""
    from scipy.ndimage import gaussian_filter

    from napari_karyo.core.pathology.tissue import optical_density, tissue_mask

    path = data / "pathology/pyimsegm_histology/data-images/histology_CIMA/29-041-Izd2-w35-He-les1.jpg"
    fixed = read_rgb(path)
    h, w = fixed.shape[:2]
    mask = tissue_mask(optical_density(fixed.astype(np.float32)))
    rng = np.random.default_rng(seed)
    tissue_rc = np.argwhere(mask)
    for i in range(n):
        a = np.deg2rad(rng.uniform(-30, 30))
        s = rng.uniform(0.9, 1.1)
        sh = rng.uniform(-0.05, 0.05)
        lin = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) @ np.array([[1, sh], [0, 1]])
        centre = np.array([h, w]) / 2
        aff = np.eye(3)
        aff[:2, :2] = lin
        aff[:2, 2] = centre - lin @ centre + rng.uniform(-0.05, 0.05, 2) * [h, w]
        spacing = 16.0
        gh, gw = int(np.ceil(h / spacing)) + 1, int(np.ceil(w / spacing)) + 1
        field = np.stack([gaussian_filter(rng.normal(0, 1, (gh, gw)), 4) for _ in range(2)])
        field *= 0.01 * np.hypot(h, w) / np.abs(field).max()  # up to 1 % of the diagonal
        # ground truth moving -> fixed is the inverse of the generating fixed -> moving warp `gen`
        gen = Transform(np.linalg.inv(aff), field.astype(np.float32), spacing)
        moving = 255 - gen.warp_image(
            255 - fixed, (h, w)
        )  # moving(y) = fixed(gen^-1(y)), white glass outside
        f_rc = tissue_rc[rng.choice(len(tissue_rc), 100, replace=False)].astype(float)
        yield {
            "name": f"random_warp:{i}",
            "fixed": fixed,
            "moving": moving,
            "fixed_rc": f_rc,
            "moving_rc": gen.map_points(f_rc),
            "diagonal": float(np.hypot(h, w)),
        }


def summarise(rows: list[dict], method: str, stages) -> dict:
    out = {}
    for stage in stages:
        vals = [r[method][stage]["rtre_median"] for r in rows if method in r]
        if vals:
            out[stage] = {
                "MMrTRE": float(np.median(vals)),
                "AMrTRE": float(np.mean(vals)),
                "max_rTRE": float(np.max(vals)),
                "pairs_below_0.02": int(np.sum(np.array(vals) < 0.02)),
                "robustness_mean": float(np.mean([r[method][stage]["robustness"] for r in rows])),
            }
    for key in ("seconds", "cpu_seconds"):
        secs = [r[method][key] for r in rows if method in r]
        if secs:
            out[f"{key}_median"] = float(np.median(secs))
            out[f"{key}_max"] = float(np.max(secs))
    return out


def main(argv=None) -> int:
    p = parser(__doc__, "registration")
    p.add_argument("--random-warps", type=int, default=4)
    p.add_argument("--no-sitk", action="store_true")
    args = p.parse_args(argv)
    data = Path(args.data)
    try:
        import SimpleITK  # noqa: F401

        sitk_ok = not args.no_sitk
    except ImportError:
        sitk_ok = False
    report = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "threads": os.environ.get("OMP_NUM_THREADS", "default"),
        "sets": {},
    }
    sets = {
        "derived_benchmark": real_pairs(data),
        "birl_anhir": synthetic_pairs(data),
        "random_warps": random_warps(data, args.random_warps),
    }
    for set_name, pairs in sets.items():
        rows = []
        print(f"\n== {set_name}")
        print(
            f"{'pair':38s} {'ident':>7s} {'coarse':>7s} {'mid':>7s} {'f-aff':>7s} {'fine':>7s} {'rob':>5s} {'cpu s':>5s}"
            + (f" | {'sitk-aff':>8s} {'sitk-bs':>8s} {'s':>5s}" if sitk_ok else "")
        )
        for pair in pairs:
            ident = scores(Transform.identity(), pair["fixed_rc"], pair["moving_rc"], pair["diagonal"])
            row = {"pair": pair["name"], "identity": ident}
            args_ = (pair["fixed"], pair["moving"], pair["fixed_rc"], pair["moving_rc"], pair["diagonal"])
            row["ours"] = run_ours(*args_)
            if sitk_ok:
                row["sitk"] = run_sitk(*args_)
            rows.append(row)
            o = row["ours"]
            line = (
                f"{pair['name']:38s} {ident['rtre_median']:7.4f} {o['coarse']['rtre_median']:7.4f} "
                f"{o['mid']['rtre_median']:7.4f} {o['fine_affine']['rtre_median']:7.4f} {o['fine']['rtre_median']:7.4f} "
                f"{o['fine']['robustness']:5.2f} {o['cpu_seconds']:5.2f}" + ("" if o["ok"] else " FAILED")
            )
            if sitk_ok:
                s = row["sitk"]
                line += f" | {s['affine']['rtre_median']:8.4f} {s['final']['rtre_median']:8.4f} {s['cpu_seconds']:5.2f}"
            print(line, flush=True)
        summary = {
            "ours": summarise(rows, "ours", ("coarse", "mid", "fine_affine", "fine")),
            "identity": float(np.median([r["identity"]["rtre_median"] for r in rows])),
        }
        if sitk_ok:
            summary["sitk"] = summarise(rows, "sitk", ("affine", "final"))
        print(json.dumps(summary, indent=1))
        report["sets"][set_name] = {"summary": summary, "pairs": rows}
    write_json(args.json, report)
    print(f"-> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
