"""Review flags: how many objects a person is asked to check per cell, and how many of the wrong objects are
among them; with `--fit`, fit the review-risk model (core/karyotype/infer/review_risk.py) on training cells.

Cells: G-band (gband_icbr, truth from the karyogram imports, `--truth`), M-FISH DAPI planes (K maps), BioImLab
spreads (polygons, no classes) and M-FISH cells with fluor planes named by colour (K maps), of the split `--cells` names (train or val; split by cell, slide or case as
everywhere). An object is an error when it matches no true chromosome at IoU >= 0.5, is misnamed, or covers >= 50%
of a true chromosome nothing matches (two merged: it needs a split).

Each cell is analysed once with the risk left out (every object with a reason flagged: the rule before the risk
model), recording the model's raw features; the risk rule (a reason that always flags, or risk >= the modality's
threshold) is then applied to those features, which gives what `analyze` flags.

    OMP_NUM_THREADS=1 python review_flags.py --truth IMPORTS --cells train --fit ../src/napari_karyo/models/review-risk
    OMP_NUM_THREADS=1 python review_flags.py --truth IMPORTS --cells val --json ../bench_results/review_flags.json
"""

from __future__ import annotations

import hashlib
import platform
import sys
import time

import numpy as np

from bench_common import ColourCell, data_missing, parser, report, truth_missing
from napari_karyo.core.jobs import run_to_end
from napari_karyo.core.karyotype.evaluate import metrics
from napari_karyo.core.karyotype.infer import predict
from napari_karyo.core.karyotype.infer.review import is_doubt
from napari_karyo.core.karyotype.infer.review_risk import (
    ARCH,
    FEATURES,
    MODALITIES,
    RAW,
    design,
    load_risk_model,
    raw_features,
)
from napari_karyo.core.karyotype.mfish.analyze import CellJob
from napari_karyo.core.karyotype.training import datasets
from napari_karyo.core.storage.annotations import read_mfish_k
from napari_karyo.core.storage.multichannel import is_multichannel, read_cell

SETS = {"gband": "brightfield", "mfish": "fluorescence", "bioimlab": "fluorescence", "mfish-colour": "colour"}
THRESHOLDS = (0.01, 0.0125, 0.015, 0.0175, 0.02, 0.025, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25)  # fmt: skip
CATCH_SLACK = 0.02  # a fitted threshold may catch at most this share fewer errors than flagging every reason
FOLDS = 5


def _cells(data: str, name: str, split: str, truth: str | None, limit: int | None):
    if name == "gband":
        return datasets.load_gband_import(data, truth, split)[:limit]
    if name == "mfish-colour":  # the cells with fluor planes, analysed as a user does (DAPI + colour)
        pairs = [(d, k) for d, k in datasets.mfish_files(data, split) if is_multichannel(d)][:limit]
        return [ColourCell(f"mfish/{d.stem[:-1]}", None, read_mfish_k(k), path=d) for d, k in pairs]
    return {"mfish": datasets.load_mfish, "bioimlab": datasets.load_bioimlab}[name](data, split)[:limit]


def _analyze(cell):
    if isinstance(cell, ColourCell):
        return run_to_end(CellJob(read_cell(cell.path)).steps(device="cpu"))
    return predict.analyze(cell.image, device="cpu")


def _errors(pred, truth) -> np.ndarray:
    """Per predicted object: unmatched, misnamed (where the truth has classes: not BioImLab's polygons), or the
    host of a missed true chromosome."""
    named = any(c.class_id for c in truth)
    truth = [c for c in truth if c.class_id or not named]
    if not pred or not truth:
        return np.ones(len(pred), bool)
    shared = metrics.intersections(pred, truth).astype(float)
    iou = metrics.iou_matrix(pred, truth)
    best = iou.argmax(1)
    wrong = iou.max(1) < 0.5
    if named:
        wrong |= np.array([truth[j].class_id for j in best]) != [c.class_id for c in pred]
    cover = shared / np.array([t.area for t in truth], float)[None, :]
    for k in np.flatnonzero(iou.max(0) < 0.5):
        if cover[:, k].max() >= 0.5:
            wrong[int(cover[:, k].argmax())] = True
    return wrong


def analyse(data: str, name: str, split: str, truth: str | None, limit: int | None) -> list[dict]:
    """Per cell: raw features, errors, and which objects have a reason that always flags / any reason."""
    captured = {}

    def capture(result, objects, type_probs, modality):
        captured["raw"] = raw_features(result, objects, type_probs)
        return None  # every object with a reason is flagged: the rule before the risk model

    predict.object_risk, real = capture, predict.object_risk
    rows = []
    try:
        for cell in _cells(data, name, split, truth, limit):
            t0 = time.process_time()
            result = _analyze(cell)
            reasons = [[r.strip() for r in c.review.split(";") if r.strip()] for c in result.chromosomes]
            rows.append(
                {
                    "cell": cell.key,
                    "raw": captured.pop("raw", np.zeros((0, len(RAW)))),
                    "error": _errors(result.chromosomes, cell.chromosomes),
                    "always": np.array([not all(map(is_doubt, r)) for r in reasons], bool),
                    "reason": np.array([bool(r) for r in reasons], bool),
                    "cpu_s": time.process_time() - t0,
                }
            )
    finally:
        predict.object_risk = real
    return rows


def _fold(cell: str) -> int:
    return int(hashlib.md5(cell.encode()).hexdigest(), 16) % FOLDS


def _expected(rows: list[dict]) -> np.ndarray:
    """(24, 2): median area and length over the cell's medians of each class's right objects (1 where unseen)."""
    raw = np.concatenate([r["raw"][~r["error"]] for r in rows])
    cls = raw[:, RAW.index("class_id")].astype(int)
    out = np.ones((24, 2))
    for c in range(1, 25):
        if (cls == c).any():
            out[c - 1] = np.median(raw[cls == c][:, [RAW.index("area"), RAW.index("length")]], axis=0)
    return out


def _fit(rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(weights, expected) of a logistic model of `error` (L2 on all weights but the bias)."""
    from scipy.optimize import minimize

    expected = _expected(rows)
    x = np.concatenate([design(r["raw"], expected) for r in rows])
    y = np.concatenate([r["error"] for r in rows]).astype(float)

    def loss(w):
        z = x @ w
        p = 1 / (1 + np.exp(-z))
        grad = x.T @ (p - y) / len(y) + np.r_[0.0, 2e-3 * w[1:]]
        return float(np.mean(np.logaddexp(0, z) - y * z) + 1e-3 * np.sum(w[1:] ** 2)), grad

    return minimize(loss, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B").x, expected


def _cross_validated_risk(rows: list[dict]) -> None:
    """Each cell's risk from a model fitted on the other folds (into row['cv_risk'])."""
    for k in range(FOLDS):
        w, expected = _fit([r for r in rows if _fold(r["cell"]) != k])
        for r in rows:
            if _fold(r["cell"]) == k:
                r["cv_risk"] = 1 / (1 + np.exp(-(design(r["raw"], expected) @ w)))


def figures(rows: list[dict], risk_key: str | None, threshold: float = 0.0) -> dict:
    """Flags per cell, errors caught, flag precision: every object with a reason (risk_key None) or the risk rule."""
    flagged = [r["reason"] if risk_key is None else r["always"] | (r[risk_key] >= threshold) for r in rows]
    errors = np.concatenate([r["error"] for r in rows])
    flags = np.concatenate(flagged)
    return {
        "cells": len(rows),
        "objects": int(len(flags)),
        "errors": int(errors.sum()),
        "flags_per_cell": float(flags.sum() / max(len(rows), 1)),
        "errors_caught": float((flags & errors).sum() / max(errors.sum(), 1)),
        "flag_precision": float((flags & errors).sum() / max(flags.sum(), 1)),
    }


def fit_model(by_set: dict[str, list[dict]], out: str) -> dict:
    """Fit each modality on its sets, choose its threshold by cross-validation (the largest that catches at most
    CATCH_SLACK fewer errors than flagging every reason, on every set of the modality), write the model."""
    import torch

    from napari_karyo.core.storage.model_files import save_model

    state, thresholds, chosen = {}, {}, {}
    for modality in MODALITIES:
        sets = {n: rows for n, rows in by_set.items() if SETS[n] == modality}
        rows = [r for rs in sets.values() for r in rs]
        _cross_validated_risk(rows)
        ok = [
            t for t in THRESHOLDS
            if all(figures(rs, "cv_risk", t)["errors_caught"] >= figures(rs, None)["errors_caught"] - CATCH_SLACK
                   for rs in sets.values())
        ]  # fmt: skip
        thresholds[modality] = max(ok) if ok else THRESHOLDS[0]
        w, expected = _fit(rows)
        state[f"{modality}.weights"] = torch.tensor(w, dtype=torch.float64)
        state[f"{modality}.expected"] = torch.tensor(expected, dtype=torch.float64)
        chosen[modality] = {n: figures(rs, "cv_risk", thresholds[modality]) for n, rs in sets.items()}
    card = {
        "architecture": ARCH,
        "task": "probability that an object of `analyze` is wrong (misnamed, no chromosome, or merged); the review "
        "flags objects at or above the modality's threshold",
        "config": {"features": list(FEATURES), "thresholds": thresholds},
        "made": "benchmarks/review_flags.py --cells train --fit: logistic regression (L2 2e-3, scipy L-BFGS) per "
        "modality on the training cells below, analysed by the bundled models; threshold chosen by 5-fold "
        "cross-validation by cell",
        "data": {n: [r["cell"] for r in rows] for n, rows in by_set.items()},
        "cross_validated": chosen,
    }
    save_model(state, card, out)
    load_risk_model.cache_clear()
    return {"thresholds": thresholds, "cross_validated": chosen}


def run(args) -> dict:
    import torch

    torch.set_num_threads(1)
    by_set = {n: analyse(args.data, n, args.cells, args.truth, args.limit) for n in args.sets}
    out = {"split": args.cells, "machine": f"{platform.machine()} {torch.get_num_threads()} thread(s)"}
    if args.fit:
        out["fit"] = fit_model(by_set, args.fit)
    model = load_risk_model(args.fit or "review-risk")
    out["model_sha256"] = model.card.get("sha256", "")
    for name, rows in by_set.items():
        modality = SETS[name]
        for r in rows:
            r["risk"] = model.risk(design(r["raw"], model.expected[modality]), modality)
        out[name] = {
            "every reason flags": figures(rows, None),
            "risk rule": figures(rows, "risk", model.thresholds[modality]),
            "threshold": model.thresholds[modality],
            "cpu_s_per_cell": float(np.median([r["cpu_s"] for r in rows])),
        }
    return out


def table(r: dict) -> str:
    lines = [
        f"split: {r['split']} cells; machine: {r['machine']}; model {r['model_sha256'][:12]}",
        "",
        "| set | rule | cells | flags per cell | errors caught | flag precision |",
        "|---|---|---|---|---|---|",
    ]
    cross_validated = {
        n: f for fits in r.get("fit", {}).get("cross_validated", {}).values() for n, f in fits.items()
    }
    for name in SETS:
        if name not in r:
            continue
        rows = [("every reason flags", r[name]["every reason flags"])]
        rows.append((f"risk >= {r[name]['threshold']:g}", r[name]["risk rule"]))
        if name in cross_validated:  # the fitted model's own cells: its figures by 5-fold cross-validation
            rows.append((f"risk >= {r[name]['threshold']:g}, cross-validated", cross_validated[name]))
        for label, f in rows:
            lines.append(
                f"| {name} | {label} | {f['cells']} | {f['flags_per_cell']:.2f} | "
                f"{100 * f['errors_caught']:.1f}% of {f['errors']} | {100 * f['flag_precision']:.1f}% |"
            )
    return "\n".join(lines)


def main() -> int:
    p = parser(__doc__, "review_flags")
    p.add_argument(
        "--truth", help="folder of `napari-karyo import-karyogram` results <N>/ (the G-band truth)"
    )
    p.add_argument("--cells", choices=("train", "val"), default="val")
    p.add_argument("--sets", nargs="+", choices=tuple(SETS), default=list(SETS))
    p.add_argument(
        "--fit", help="fit the review-risk model on these cells and write it here (.safetensors + card)"
    )
    p.add_argument("--limit", type=int, help="only the first N cells of each set (quick look)")
    args = p.parse_args()
    if data_missing(args.data) or ("gband" in args.sets and truth_missing(args.truth)):
        return 2
    if args.fit and set(args.sets) != set(SETS):
        print(
            "error: --fit needs every set (each modality's model is fitted on all of its sets)",
            file=sys.stderr,
        )
        return 2
    r = run(args)
    return report(r, table(r), args.json)


if __name__ == "__main__":
    raise SystemExit(main())
