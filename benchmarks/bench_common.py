"""What every benchmark script shares: the standard arguments, the validation cells of the correction benchmarks
(M-FISH or G-band), and printing the table + writing the JSON."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from napari_karyo.core.jobs import run_to_end
from napari_karyo.core.karyotype.infer.predict import analyze
from napari_karyo.core.karyotype.mfish.analyze import CellJob
from napari_karyo.core.karyotype.training import datasets
from napari_karyo.core.storage.annotations import read_mfish_k
from napari_karyo.core.storage.images import read_image
from napari_karyo.core.storage.multichannel import is_multichannel, read_cell

MFISH_SPLIT = (
    "validation: mfish slides "
    + ", ".join(datasets.VAL_MFISH_SLIDES)
    + " (DAPI plane; K-map instances as truth)"
)
MFISH_COLOUR_SPLIT = (
    "validation: mfish slides "
    + ", ".join(s for s in datasets.VAL_MFISH_SLIDES if s[0] in "AP")
    + " (the cells with fluor planes: the whole M-FISH pipeline, DAPI + colour; K-map instances as truth)"
)
GBAND_SPLIT = (
    "validation: gband_icbr cells with is_val_case('gband_icbr', '<N>') (real clinical G-band spreads, never trained "
    "on); truth: karyotype from the lab's karyogram, masks and classes from the karyogram import (import-derived, not "
    "hand-drawn)"
)


def parser(doc: str, name: str) -> argparse.ArgumentParser:
    """An argument parser with `--data` (default ../shared/data) and `--json` (default out/bench/<name>.json)."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data", help="the shared data folder")
    p.add_argument("--json", default=f"out/bench/{name}.json", help="where the figures are written")
    return p


def add_cells(p: argparse.ArgumentParser) -> None:
    """`--cells mfish|gband`, `--truth` (the G-band truth) and `--limit`."""
    p.add_argument("--cells", choices=("mfish", "mfish-colour", "gband"), default="mfish",
                   help="validation cells: M-FISH (DAPI plane), M-FISH cells with their fluor planes analysed as "
                   "a user analyses them (DAPI + colour), or the real G-band spreads of gband_icbr")  # fmt: skip
    p.add_argument(
        "--truth", help="with --cells gband: the folder of `napari-karyo import-karyogram` results <N>/"
    )
    p.add_argument("--limit", type=int, help="only the first N cells (quick look)")


def run_on_cells(doc: str, name: str, model_help: str, evaluate, table, targets: dict) -> int:
    """The `main` of a benchmark over `add_cells`' validation cells: `evaluate(split, spreads, model, target)`
    on one torch thread, then `table` printed and the JSON written (exit 2 when the data or truth is missing)."""
    p = parser(doc, name)
    p.add_argument("--model", help=model_help)
    add_cells(p)
    args = p.parse_args()
    if data_missing(args.data) or (args.cells == "gband" and truth_missing(args.truth)):
        return 2
    import torch

    torch.set_num_threads(1)
    split, spreads = val_cells(args.data, args.cells, args.truth, args.limit)
    result = evaluate(split, spreads, args.model, targets[args.cells])
    return report(result, table(result), args.json)


def truth_missing(truth: str | None) -> bool:
    """The G-band truth folder (`--truth`) is not there: say so."""
    if truth and Path(truth).is_dir():
        return False
    print(f"error: G-band cells need --truth FOLDER of imported karyograms (got {truth})", file=sys.stderr)
    return True


@dataclass
class ColourCell(datasets.Spread):
    """An M-FISH validation cell with its fluor planes: `image` is its DAPI plane (what prompts see)."""

    path: Path | None = None


def val_cells(data: str, cells: str, truth: str | None = None, limit: int | None = None):
    """(what the split is, the validation cells with truth) of `add_cells`' choices; G-band cells the import
    refused have no masks and are left out."""
    if cells == "gband":
        return GBAND_SPLIT, datasets.load_gband_import(data, truth, "val")[:limit]
    if cells == "mfish-colour":
        pairs = [(d, k) for d, k in datasets.mfish_files(data, "val") if is_multichannel(d)][:limit]
        return MFISH_COLOUR_SPLIT, [
            ColourCell(f"mfish/{d.stem[:-1]}", read_image(d), read_mfish_k(k), path=d) for d, k in pairs
        ]
    return MFISH_SPLIT, datasets.load_mfish(data, "val")[:limit]


def proposal(s: datasets.Spread, model: str | None = None):
    """The chromosomes the product proposes for cell `s`, as a user runs it: `analyze` on a grey spread, the
    M-FISH pipeline (`napari-karyo analyze CELL`) on a cell with fluor planes."""
    if isinstance(s, ColourCell):
        return run_to_end(CellJob(read_cell(s.path)).steps(model=model, device="cpu")).chromosomes
    return analyze(s.image, model=model, device="cpu").chromosomes


def data_missing(path: str) -> bool:
    if Path(path).is_dir():
        return False
    print(f"error: data folder {path} not found (pass --data)", file=sys.stderr)
    return True


def report(result: dict, table: str, json_path: str) -> int:
    """Print the table, write the figures as JSON; the script's exit code."""
    print(table)
    Path(json_path).parent.mkdir(parents=True, exist_ok=True)
    Path(json_path).write_text(json.dumps(result, indent=1))
    return 0


def main(doc: str, name: str, run, table) -> int:
    """The whole script for a benchmark with only the standard arguments: `run(data)` -> figures, `table(figures)`."""
    args = parser(doc, name).parse_args()
    if data_missing(args.data):
        return 2
    result = run(args.data)
    return report(result, table(result), args.json)
