"""Correction effort: editing actions per cell from the model's proposal to the truth, simulated.

For each validation cell `analyze` proposes chromosomes and `core/karyotype/evaluate/actions.py` counts the splits,
joins, deletes, draws and relabels a user needs (its docstring states the rules). Also run on the truth itself: 0
actions is the sanity check. Besides, the found share / precision / named share / exact count of the same cells, so
fine-tuned models compare on one table (benchmarks/finetune_corrections.py). Cells:
- `--cells mfish` (default): slides A02, P10, V16, V26; DAPI plane only; the K map's instances are the truth.
- `--cells mfish-colour`: the cells of those slides with fluor planes (A02, P10), analysed as a user analyses an
  M-FISH cell (`napari-karyo analyze CELL`: DAPI segmentation, colour naming, colour split/add); same truth.
  Target: median <= 3 actions per cell.
- `--cells gband --truth FOLDER`: the G-band validation cells of gband_icbr; the truth is the karyogram import's
  placed chromosomes (FOLDER/<N>/, cells the import refused are left out). Target (issue 13): median <= 6.

    OMP_NUM_THREADS=1 python benchmarks/correction_actions.py --data ../shared/data --json bench_results/correction_actions.json
    OMP_NUM_THREADS=1 python benchmarks/correction_actions.py --cells gband --truth IMPORTED [--model M] \
        --json bench_results/correction_actions_gband.json
"""

from __future__ import annotations

import sys
import time

import numpy as np

from bench_common import proposal, run_on_cells
from napari_karyo.core.karyotype.evaluate import metrics
from napari_karyo.core.karyotype.evaluate.actions import ACTION_TYPES, correction_actions, summarise

TARGET = {"mfish": "<= 3", "mfish-colour": "<= 3", "gband": "<= 6 (issue 13)"}


def evaluate(split: str, spreads: list, model: str | None = None, target: str = TARGET["mfish"]) -> dict:
    """Actions per cell and detection figures of segmentation `model` (default: the bundled one) on `spreads`."""
    cells, acts, with_swaps, truth_acts = [], [], [], []
    t0 = time.perf_counter()
    for s in spreads:
        found = proposal(s, model)
        a = correction_actions(found, s.chromosomes)
        acts.append(a)
        with_swaps.append(correction_actions(found, s.chromosomes, swaps=True))
        truth_acts.append(correction_actions(s.chromosomes, s.chromosomes))
        cells.append(
            {
                "cell": s.key,
                "actions": a.total,
                **a.counts(),
                **metrics.spread_scores(found, s.chromosomes),
            }
        )
    true = sum(c["true"] for c in cells)
    found = sum(c["found"] for c in cells)
    return {
        "model": model or "bundled chromosome-maskrcnn",
        "split": split,
        "target": target,
        "actions": summarise(acts),
        "actions_with_swap_tool": summarise(with_swaps),
        "truth_as_proposal": summarise(truth_acts),
        "found_share": found / max(true, 1),
        "precision": found / max(sum(c["predicted"] for c in cells), 1),
        "named_share": sum(c["named_correctly"] for c in cells) / max(found, 1),
        "count_exact_share": float(np.mean([c["count_error"] == 0 for c in cells])) if cells else 0.0,
        "seconds": round(time.perf_counter() - t0, 1),
        "per_cell": cells,
    }


def table(r: dict) -> str:
    a, w = r["actions"], r["actions_with_swap_tool"]
    lines = [
        f"split: {r['split']}; model: {r['model']}",
        "",
        "| cell | actions | " + " | ".join(ACTION_TYPES[:-1]) + " |",
        "|---|---|" + "---|" * (len(ACTION_TYPES) - 1),
    ]
    lines += [
        f"| {c['cell']} | {c['actions']} | " + " | ".join(str(c[t]) for t in ACTION_TYPES[:-1]) + " |"
        for c in r["per_cell"]
    ]
    lines += [
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| actions per cell, median ({a['cells']} cells) | {a['median']:.1f} | {r['target']} |",
        f"| actions per cell, mean | {a['mean']:.2f} | |",
        (
            f"| segmentation edits only (no relabels), median / mean | {a['median_without_naming']:.1f} / "
            f"{a['mean_without_naming']:.2f} | |"
        ),
        *(
            f"| {t}s per cell (mean) | {a['by_type_per_cell'][t]:.2f} | |"
            for t in ACTION_TYPES
            if t != "swap"
        ),
        (
            f"| with the swap tool: median / mean (swaps per cell) | {w['median']:.1f} / {w['mean']:.2f} "
            f"({w['by_type_per_cell']['swap']:.2f}) | |"
        ),
        f"| truth as proposal: actions per cell, mean (sanity) | {r['truth_as_proposal']['mean']:.2f} | 0 |",
        f"| true chromosomes found (IoU >= 0.5) | {r['found_share']:.1%} | |",
        f"| precision | {r['precision']:.1%} | |",
        f"| found ones named correctly | {r['named_share']:.1%} | |",
        f"| count exactly right | {r['count_exact_share']:.1%} | |",
    ]
    return "\n".join(lines)


def main() -> int:
    return run_on_cells(
        __doc__,
        "correction_actions",
        "segmentation model file (default: the bundled one)",
        evaluate,
        table,
        TARGET,
    )


if __name__ == "__main__":
    sys.exit(main())
