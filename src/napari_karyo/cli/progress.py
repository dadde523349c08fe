"""A terminal progress bar over the core's (stage, done, total) generators, and output writes with clear errors."""

from __future__ import annotations

import json
import sys

from napari_karyo.core.errors import KaryoError
from napari_karyo.core.training.harness import figures_of


def run_with_progress(gen, desc: str, quiet: bool = False):
    """Drive a (stage, done, total) generator with a terminal progress bar, printing the validation figures that
    reports carry; return its result."""
    from tqdm import tqdm

    bar = None
    try:
        while True:
            report = next(gen)
            stage, done, total = report
            if quiet:
                continue
            if figures_of(report) is not None:
                tqdm.write(f"{stage} {done}/{total}: {json.dumps(figures_of(report))}", file=sys.stderr)
            if bar is None:
                bar = tqdm(total=total, desc=desc, unit="step", file=sys.stderr, leave=False)
            bar.total = total
            bar.set_postfix_str(stage)
            bar.update(done - bar.n)
    except StopIteration as stop:
        return stop.value
    finally:
        if bar is not None:
            bar.close()


def write_out(path, write) -> None:
    """Run `write` (an atomic write of `path`); an OSError there is a KaryoError naming the path."""
    try:
        write()
    except OSError as exc:
        raise KaryoError(
            f"{path}: cannot be written ({exc.strerror or exc}); free disk space or check the folder's "
            "permissions, or choose another --out"
        ) from exc
