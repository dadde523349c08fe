"""The editing core without a GUI: how fast each EditSession action and its undo are, and how well one click
(`split_at`) separates two touching chromosomes.

Data: BioImLab validation images (768×576, numbers that are multiples of 5) with their traced chromosomes.
- Speed (first 5 spreads, traced chromosomes as the proposal; the cost depends on the masks, not on who drew them):
  split and split_at across the longest object at its middle, join of the two pieces, draw of a disc, redraw of a
  dilated object, delete, relabel, swap, accept; each timed with its undo. Also a relabel inside a Project (its
  journal line fsynced; every 20th edit writes the working/ checkpoint). Target: action + undo well under 30 ms.
- Touching pairs (all validation spreads): two traced chromosomes that touch without overlapping are united into
  one object, `split_at` is clicked at the centre of their contact, and each traced chromosome is compared with
  the best-matching piece (IoU).

    OMP_NUM_THREADS=1 python benchmarks/editing_core.py --json out/bench/editing_core.json
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_common import data_missing, parser, report
from napari_karyo.core.errors import KaryoError
from napari_karyo.core.karyotype.edit.project import Project
from napari_karyo.core.karyotype.edit.session import EditSession
from napari_karyo.core.karyotype.training import datasets
from napari_karyo.core.results import Chromosome, SpreadResult
from napari_karyo.core.storage.annotations import read_labelme

SPLIT = "validation: bioimlab_seg images numbered 5k (traced chromosomes)"
ACTIONS = ("split", "split_at", "join", "delete", "draw", "redraw", "relabel", "swap", "accept")


def _script(s: EditSession, shape: tuple[int, int]):
    """(name, untimed setup or None, timed call) per action; undoing the call (and the setup) restores the spread."""
    longest = 1 + int(np.argmax([max(c.mask.shape) for c in s.result.chromosomes]))
    ch = s.result.chromosomes[longest - 1]
    rows, cols = np.nonzero(ch.mask)
    centre = np.array([rows.mean(), cols.mean()]) + ch.offset
    axis = np.linalg.eigh(np.cov(np.stack([rows, cols])))[1][:, -1]  # along the chromosome
    across = np.array([-axis[1], axis[0]]) * 20
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    disc = (yy - 20) ** 2 + (xx - 20) ** 2 <= 64
    from scipy import ndimage as ndi

    grown = ndi.binary_dilation(s.result.chromosomes[0].full_mask(shape), iterations=2)
    return [
        ("split", None, lambda: s.split(longest, [centre - across, centre + across])),
        ("split_at", None, lambda: s.split_at(longest, tuple(centre))),
        ("join", lambda: s.split_at(longest, tuple(centre)), lambda: s.join([longest, s.result.count])),
        ("delete", None, lambda: s.delete([2])),
        ("draw", None, lambda: s.draw(disc, 5)),
        ("redraw", None, lambda: s.redraw(1, grown)),
        ("relabel", None, lambda: s.relabel([1, 2], 7)),
        ("swap", None, lambda: s.swap(1, 3)),
        ("accept", None, s.accept),
    ]


def _time_session(proposal: SpreadResult, repeats: int) -> dict[str, list[float]]:
    """ms per action and per undo: every action is applied then undone, `repeats` times."""
    out: dict[str, list[float]] = {f"{a}{suffix}": [] for a in ACTIONS for suffix in ("", " undo")}
    s = EditSession(proposal)
    for _ in range(repeats):
        for name, setup, call in _script(s, proposal.image_shape):
            if setup is not None:
                setup()
            t = time.perf_counter()
            call()
            out[name].append(1000 * (time.perf_counter() - t))
            t = time.perf_counter()
            s.undo()
            out[f"{name} undo"].append(1000 * (time.perf_counter() - t))
            if setup is not None:
                s.undo()
    return out


def _time_project(proposal: SpreadResult, repeats: int) -> list[float]:
    """ms per journalled action (relabel, with its fsynced journal line) inside a Project."""
    with tempfile.TemporaryDirectory() as tmp:
        p = Project.start(Path(tmp) / "spread.tif", proposal)
        times = []
        for k in range(repeats):
            t = time.perf_counter()
            p.session.relabel([1], k % 24 + 1)
            times.append(1000 * (time.perf_counter() - t))
        return times


def _touching_pairs(files: list[Path]) -> dict:
    """split_at at the contact of every touching (not overlapping) pair of traced chromosomes."""
    from scipy import ndimage as ndi

    refused, worst = 0, []
    for f in files:
        image, chromosomes = read_labelme(f)
        shape = image.shape[:2]
        masks = [c.full_mask(shape) for c in chromosomes]
        for i, a in enumerate(masks):
            grown = ndi.binary_dilation(a)
            for b in masks[i + 1 :]:
                contact = grown & b
                if (a & b).any() or not contact.any():
                    continue
                s = EditSession(SpreadResult(shape, [Chromosome.from_full_mask(a | b)]))
                try:
                    ids = s.split_at(1, tuple(np.argwhere(contact).mean(0)))
                except KaryoError:
                    refused += 1
                    continue
                pieces = [s.result.chromosomes[k - 1].full_mask(shape) for k in ids]
                worst.append(min(max((p & t).sum() / (p | t).sum() for p in pieces) for t in (a, b)))
    w = np.asarray(worst)
    return {
        "pairs": refused + len(w),
        "refused": refused,
        "median_worse_iou": float(np.median(w)),
        "both_iou_0.8": int((w >= 0.8).sum()),
        "both_iou_0.5": int((w >= 0.5).sum()),
    }


def main() -> int:
    args = parser(__doc__, "editing_core").parse_args()
    if data_missing(args.data):
        return 2
    all_files = datasets.bioimlab_files(args.data, "val")
    files = all_files[:5]
    rng = np.random.default_rng(0)
    per_action: dict[str, list[float]] = {}
    journal_ms: list[float] = []
    counts = []
    for f in files:
        image, chromosomes = read_labelme(f)
        for c in chromosomes:
            c.class_id = int(rng.integers(1, 25))
        proposal = SpreadResult(image.shape[:2], chromosomes)
        counts.append(proposal.count)
        for k, v in _time_session(proposal, repeats=5).items():
            per_action.setdefault(k, []).extend(v)
        journal_ms += _time_project(proposal, repeats=45)  # 45: two checkpoints of working/ included
    stats = {k: {"median_ms": float(np.median(v)), "max_ms": float(np.max(v))} for k, v in per_action.items()}
    journal = {
        "median_ms": float(np.median(journal_ms)),
        "p95_ms": float(np.percentile(journal_ms, 95)),
        "max_ms": float(np.max(journal_ms)),
    }
    pairs = _touching_pairs(all_files)
    result = {
        "split": SPLIT,
        "spreads": [f.name for f in files],
        "objects": counts,
        "actions": stats,
        "project_relabel": journal,
        "touching_pairs": pairs,
    }
    lines = [
        f"{SPLIT}; {len(files)} spreads, {min(counts)}-{max(counts)} objects",
        "",
        f"{'action':<16}{'median ms':>10}{'max ms':>10}",
    ]
    lines += [f"{k:<16}{v['median_ms']:>10.2f}{v['max_ms']:>10.2f}" for k, v in stats.items()]
    lines.append(
        f"{'project relabel':<16}{journal['median_ms']:>10.2f}{journal['max_ms']:>10.2f}"
        f"   (journal fsync; p95 {journal['p95_ms']:.1f} ms; max = a working/ checkpoint)"
    )
    lines += [
        "",
        (
            f"split_at on touching pairs ({len(all_files)} spreads): {pairs['pairs']} pairs, "
            f"{pairs['refused']} refused; both chromosomes IoU >= 0.8 in {pairs['both_iou_0.8']}, >= 0.5 in "
            f"{pairs['both_iou_0.5']}; median of the worse IoU {pairs['median_worse_iou']:.3f}"
        ),
    ]
    return report(result, "\n".join(lines), args.json)


if __name__ == "__main__":
    sys.exit(main())
