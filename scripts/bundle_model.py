"""Copy a trained model into the package (src/napari_karyo/models/<name>.*) and complete its card.

    python scripts/bundle_model.py runs/maskrcnn-default/model.safetensors chromosome-maskrcnn \
        --reproduce "napari-karyo train --config configs/maskrcnn-default.yaml" \
        --metrics bench_results/spreads.json

The weights are copied unchanged (their sha256 is checked against the run's card); the card gains `reproduce`,
`metrics` (the benchmark JSON, minus per-item rows) and the new file name.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from napari_karyo.core.storage.atomic import write_with
from napari_karyo.core.storage.model_files import (
    BUNDLED_DIR,
    read_card,
    resolve,
    sha256,
    write_card,
)


def _summary(metrics: dict) -> dict:
    """Benchmark JSON without long per-item lists."""
    return {
        k: _summary(v) if isinstance(v, dict) else v for k, v in metrics.items() if not isinstance(v, list)
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="trained .safetensors with its .json card beside it")
    p.add_argument("name", help="bundled name, e.g. chromosome-maskrcnn")
    p.add_argument("--reproduce", required=True, help="the command that trained it")
    p.add_argument("--metrics", nargs="*", default=[], help="benchmark JSON files to record in the card")
    args = p.parse_args()
    card, path = read_card(resolve(args.model))  # a run's card may predate card seals
    if sha256(path) != card["sha256"]:
        print(f"error: {path} does not match its card", file=sys.stderr)
        return 2
    card["reproduce"] = args.reproduce
    card["metrics"] = {Path(m).stem: _summary(json.loads(Path(m).read_text())) for m in args.metrics}
    target = BUNDLED_DIR / f"{args.name}.safetensors"
    write_with(target, lambda tmp: shutil.copyfile(path, tmp))
    card["weights_file"] = target.name
    write_card(target, card)
    print(f"{target} ({target.stat().st_size / 1e6:.1f} MB), card {target.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
