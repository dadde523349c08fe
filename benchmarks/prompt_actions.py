"""Correction effort with the prompt tools: actions per cell before (the rules of `evaluate/actions.py` alone) and
after (a simulated user prompts first, see `evaluate/prompt_actions.py` for its rules), on validation cells never
trained on: `--cells mfish` (default; slides A02, P10, V16, V26; DAPI plane; K-map instances as truth), `--cells
mfish-colour` (the cells of A02 and P10 with fluor planes, analysed with colour as `napari-karyo analyze CELL` does;
prompts on the DAPI plane) or `--cells gband --truth FOLDER` (the G-band validation cells of gband_icbr; the karyogram import's placed chromosomes as truth).

Two users: "greedy" tries click, click again, box (badly cut ones: box, click) and pays for every gesture, failed ones
too; "oracle" makes only the gesture that works (the lower bound). Reported: actions per cell (median, mean),
segmentation edits (everything but relabels and swaps), chromosomes still drawn by hand, and the share of prompted
chromosomes right (IoU >= 0.8, >= 0.5) at the first gesture. Targets (issue 15): median <= 4 actions per M-FISH
cell, <= 8 per G-band cell.

    OMP_NUM_THREADS=1 python benchmarks/prompt_actions.py --data ../shared/data --json bench_results/prompt_actions.json
    OMP_NUM_THREADS=1 python benchmarks/prompt_actions.py --cells gband --truth IMPORTED [--model M] \
        --json bench_results/prompt_actions_gband.json
"""

from __future__ import annotations

import sys
import time

from bench_common import proposal, run_on_cells
from napari_karyo.core.karyotype.evaluate.prompt_actions import prompted_correction, summarise
from napari_karyo.prompt import Prompter

USERS = ("greedy", "oracle")
TARGET = {
    "mfish": "median <= 4 actions per M-FISH cell",
    "mfish-colour": "median <= 4 actions per M-FISH cell",
    "gband": "median <= 8 actions per G-band cell",
}


def evaluate(split: str, spreads: list, model: str | None = None, target: str = TARGET["mfish"]) -> dict:
    """Both users on `spreads`; `model` segments and prompts (default: the bundled segmenter)."""
    runs = {u: [] for u in USERS}
    cells = []
    t0 = time.perf_counter()
    for s in spreads:
        found = proposal(s, model)
        prompter = Prompter(s.image, model=model, device="cpu")
        row = {"cell": s.key}
        for user in USERS:
            run = prompted_correction(found, s.chromosomes, prompter, oracle=user == "oracle")
            runs[user].append(run)
            row[user] = {
                "before": run.before,
                "after": run.after,
                "gestures": run.gestures,
                "hand_drawn": [run.hand_drawn_before, run.hand_drawn_after],
            }
        cells.append(row)
    return {
        "split": split,
        "model": model or "bundled chromosome-maskrcnn",
        "target": target,
        **{u: summarise(runs[u]) for u in USERS},
        "seconds": round(time.perf_counter() - t0, 1),
        "per_cell": cells,
    }


def table(r: dict) -> str:
    lines = [
        f"split: {r['split']}; model: {r['model']}",
        "",
        "| cell | before | greedy after (gestures) | oracle after (gestures) | hand-drawn before / greedy / oracle |",
        "|---|---|---|---|---|",
    ]
    for c in r["per_cell"]:
        g, o = c["greedy"], c["oracle"]
        lines.append(
            f"| {c['cell']} | {g['before']} | {g['after']} ({g['gestures']}) | {o['after']} ({o['gestures']})"
            f" | {g['hand_drawn'][0]} / {g['hand_drawn'][1]} / {o['hand_drawn'][1]} |"
        )
    g, o = r["greedy"], r["oracle"]

    def pair(key):
        return (
            f"{g[key + '_before']['median']:.1f} / {g[key + '_before']['mean']:.2f} | "
            f"{g[key + '_after']['median']:.1f} / {g[key + '_after']['mean']:.2f} | "
            f"{o[key + '_after']['median']:.1f} / {o[key + '_after']['mean']:.2f}"
        )

    lines += [
        "",
        f"{g['cells']} cells; median / mean per cell",
        "",
        "| measure | before (rules alone) | greedy user with prompts | oracle user with prompts |",
        "|---|---|---|---|",
        f"| actions | {pair('actions')} |",
        f"| segmentation edits (no relabels) | {pair('segmentation')} |",
        f"| chromosomes drawn by hand | {pair('hand_drawn')} |",
        f"| prompt gestures | | {g['gestures_per_cell']['median']:.1f} / {g['gestures_per_cell']['mean']:.2f} | "
        f"{o['gestures_per_cell']['median']:.1f} / {o['gestures_per_cell']['mean']:.2f} |",
        f"| prompted chromosomes / made right by a prompt | | {g['prompted_chromosomes']} / {g['applied']} | "
        f"{o['prompted_chromosomes']} / {o['applied']} |",
        f"| first gesture IoU >= 0.8 / >= 0.5 | | {g['first_gesture_iou_0_8']:.1%} / {g['first_gesture_iou_0_5']:.1%} | |",
        "",
        f"target: {r['target']}",
    ]
    return "\n".join(lines)


def main() -> int:
    return run_on_cells(
        __doc__,
        "prompt_actions",
        "segmentation model file, also the prompts' (default: the bundled one)",
        evaluate,
        table,
        TARGET,
    )


if __name__ == "__main__":
    sys.exit(main())
