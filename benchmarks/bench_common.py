"""What every benchmark script shares: the standard arguments, the validation cells of the correction benchmarks
(M-FISH or G-band), and printing the table + writing the JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from napari_karyo.core.karyotype.training import datasets

MFISH_SPLIT = (
    "validation: mfish slides "
    + ", ".join(datasets.VAL_MFISH_SLIDES)
    + " (DAPI plane; K-map instances as truth)"
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
    p.add_argument("--cells", choices=("mfish", "gband"), default="mfish",
                   help="validation cells: M-FISH (DAPI plane) or the real G-band spreads of gband_icbr")  # fmt: skip
    p.add_argument(
        "--truth", help="with --cells gband: the folder of `napari-karyo import-karyogram` results <N>/"
    )
    p.add_argument("--limit", type=int, help="only the first N cells (quick look)")


def truth_missing(truth: str | None) -> bool:
    """The G-band truth folder (`--truth`) is not there: say so."""
    if truth and Path(truth).is_dir():
        return False
    print(f"error: G-band cells need --truth FOLDER of imported karyograms (got {truth})", file=sys.stderr)
    return True


def val_cells(data: str, cells: str, truth: str | None = None, limit: int | None = None):
    """(what the split is, the validation cells with truth) of `add_cells`' choices; G-band cells the import
    refused have no masks and are left out."""
    if cells == "gband":
        return GBAND_SPLIT, datasets.load_gband_import(data, truth, "val")[:limit]
    return MFISH_SPLIT, datasets.load_mfish(data, "val")[:limit]


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
