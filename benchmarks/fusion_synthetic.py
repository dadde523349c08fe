"""Do the SE weights find the stains that carry the class? Synthetic multi-stain stacks with known stain matrices.

Each synthetic patient is one 112x112 tissue block cut into four regions, each of a random lesion type (3 types),
rendered as four consecutive "sections" through scikit-image's stain matrices (Beer-Lambert, `combine_stains`):

| stain | matrix | second component |
|---|---|---|
| H-DAB | hdx | DAB: high in lesion type 1 (informative) |
| AB-H | ahx | alcian blue: high in lesion type 2 (informative) |
| H&E | hed | eosin: random per region, any type (uninformative) |
| Azan | bro | red/orange: random per region, any type (uninformative) |

All four share the hematoxylin nuclei pattern (consecutive sections) and a per-patient stain strength. Lesion
type 0 is "neither DAB nor alcian blue", so telling the three apart needs both informative stains. The full
pipeline runs: extract_patches -> grouped_stratified_split by patient (60/20/20) -> augment (train only) ->
train_fusion_steps (SE) -> test patches and predict_stack_steps on one test patient. Reported on the test
patients: accuracy and the mean SE weight per stain; pass = both informative stains rank above both others.

    OMP_NUM_THREADS=1 python benchmarks/fusion_synthetic.py --json out/bench/fusion_synthetic.json
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from bench_common import parser, report
from napari_karyo.core.jobs import run_to_end
from napari_karyo.core.pathology.lesions.fusion import load_fusion_model
from napari_karyo.core.pathology.lesions.patches import extract_patches, grouped_stratified_split, split_masks
from napari_karyo.core.pathology.lesions.predict import (
    predict_batches,
    predict_stack_steps,
    se_weights_per_region,
)
from napari_karyo.core.pathology.lesions.train import FusionTrainConfig, train_fusion_steps

STAINS = {"H-DAB": ("hdx", 1), "AB-H": ("ahx", 2), "H&E": ("hed", None), "Azan": ("bro", None)}
INFORMATIVE = ("H-DAB", "AB-H")
CLASSES = ("neither", "DAB-positive", "mucin-rich")


def smooth_noise(rng, shape, sigma):
    from scipy.ndimage import gaussian_filter

    f = gaussian_filter(rng.normal(size=shape), sigma)
    return (f - f.min()) / (np.ptp(f) + 1e-9)


def synthetic_patient(seed: int, side: int = 112):
    """{stain: RGB float image}, region label image (1-4) and the lesion type (0-2) of each region."""
    from skimage import color

    rng = np.random.default_rng(seed)
    regions = np.ones((side, side), np.uint8)
    half = side // 2
    regions[:half, half:], regions[half:, :half], regions[half:, half:] = 2, 3, 4
    types = rng.integers(0, 3, 4)
    nuclei = (smooth_noise(rng, (side, side), 1.5) > 0.6).astype(float)  # shared by all sections
    strength = rng.uniform(0.7, 1.3)
    stains = {}
    for name, (matrix, positive_type) in STAINS.items():
        second = np.zeros((side, side))
        for r, t in enumerate(types, start=1):
            level = (
                (0.9 if t == positive_type else 0.15) if positive_type is not None else rng.uniform(0.15, 0.9)
            )
            second[regions == r] = level
        second *= 0.5 + smooth_noise(rng, (side, side), 3)  # texture, so the signal is noisy per patch
        conc = np.stack([nuclei * 1.2 + 0.1, second, np.zeros_like(second)], -1) * strength
        rgb = color.combine_stains(conc, getattr(color, f"rgb_from_{matrix}"))
        stains[name] = np.clip(rgb + rng.normal(0, 0.02, rgb.shape), 0, 1).astype(np.float32)
    return stains, regions, types


def run(args) -> dict:
    xs, ys, groups, patients = [], [], [], {}
    for p in range(args.patients):
        stains, regions, types = synthetic_patient(args.seed * 1000 + p)
        ps = extract_patches(stains, regions, size=args.size, stride=args.stride)
        xs.append(ps.x)
        ys.append(types[ps.labels - 1])
        groups += [f"patient {p}"] * len(ps.labels)
        patients[f"patient {p}"] = (stains, regions, types)
    x, y, groups = np.concatenate(xs), np.concatenate(ys), np.array(groups)
    out = Path(args.runs)
    split = grouped_stratified_split(groups, y, seed=args.seed, path=out / "split.json")
    m = split_masks(split, groups)
    data = {
        "stains": tuple(STAINS),
        "classes": CLASSES,
        "split": split,
        **{part: (x[m[part]], y[m[part]]) for part in ("train", "val", "test")},
    }
    cfg = FusionTrainConfig(
        out=str(out),
        dataset="synthetic",
        size=args.size,
        epochs=args.epochs,
        epoch_steps=args.epoch_steps,
        batch=args.batch,
        patience=args.epochs,
        seed=args.seed,
        threads=args.threads,
        augment="source",
    )
    t = time.perf_counter()
    model = load_fusion_model(run_to_end(train_fusion_steps(cfg, data)), "cpu")
    probs, weights = predict_batches(model.net, data["test"][0], model.device)
    mean_w = dict(zip(STAINS, weights.mean(0).round(3).tolist(), strict=True))
    ranking = sorted(mean_w, key=mean_w.get, reverse=True)
    first = split["groups"]["test"][0]
    stains, regions, types = patients[first]
    class_map = run_to_end(predict_stack_steps(model, stains, stride=args.stride // 2 or 1))
    rows = se_weights_per_region(class_map, regions)
    for row in rows:
        row["true class"] = CLASSES[types[row["region"] - 1]]
    return {
        "command": " ".join(sys.argv),
        "args": vars(args),
        "split": split["groups"],
        "patches": {part: int(v.sum()) for part, v in m.items()},
        "test_accuracy": round(float((probs.argmax(1) == data["test"][1]).mean()), 4),
        "mean_se_weights_test": mean_w,
        "ranking": ranking,
        "informative": list(INFORMATIVE),
        "informative_ranked_first": set(ranking[: len(INFORMATIVE)]) == set(INFORMATIVE),
        "regions_of_" + first.replace(" ", "_"): rows,
        "seconds": round(time.perf_counter() - t, 1),
        "card_metrics": model.card["metrics"],
        "train_patches_per_s": model.card["training"]["train_patches_per_s"],
    }


def table(r: dict) -> str:
    lines = [
        f"split (by patient): {r['patches']} patches; test accuracy {r['test_accuracy']:.1%}",
        "",
        "| stain | informative | mean SE weight (test) | rank |",
        "|---|---|---|---|",
    ]
    for rank, s in enumerate(r["ranking"], start=1):
        lines.append(
            f"| {s} | {'yes' if s in r['informative'] else 'no'} | {r['mean_se_weights_test'][s]:.3f} | {rank} |"
        )
    lines.append(f"\ninformative stains ranked first: {r['informative_ranked_first']}")
    return "\n".join(lines)


def main() -> int:
    p = parser(__doc__, "fusion_synthetic")  # --data is unused: the stacks are synthetic
    p.add_argument("--runs", default="out/bench/fusion_synthetic", help="folder for the model and split")
    p.add_argument("--patients", type=int, default=20)
    p.add_argument("--size", type=int, default=20)
    p.add_argument("--stride", type=int, default=6)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--epoch-steps", type=int, default=60)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    result = run(args)
    return report(result, table(result), args.json)


if __name__ == "__main__":
    sys.exit(main())
