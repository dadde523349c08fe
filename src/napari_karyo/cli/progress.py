"""A terminal progress bar over the core's (stage, done, total) generators."""

from __future__ import annotations

import sys


def run_with_progress(gen, desc: str, quiet: bool = False):
    """Drive a (stage, done, total) generator with a terminal progress bar; return its result."""
    from tqdm import tqdm

    bar = None
    try:
        while True:
            stage, done, total = next(gen)
            if quiet:
                continue
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
