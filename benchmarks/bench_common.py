"""What every benchmark script shares: the standard arguments and printing the table + writing the JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def parser(doc: str, name: str) -> argparse.ArgumentParser:
    """An argument parser with `--data` (default ../shared/data) and `--json` (default out/bench/<name>.json)."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data", help="the shared data folder")
    p.add_argument("--json", default=f"out/bench/{name}.json", help="where the figures are written")
    return p


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
