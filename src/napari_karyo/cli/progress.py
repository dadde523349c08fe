"""A terminal progress bar over the core's (stage, done, total) generators, and output writes with clear errors."""

from __future__ import annotations

import sys

from napari_karyo.core.errors import KaryoError


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


def write_out(path, write) -> None:
    """Run `write` (an atomic write of `path`); an OSError there is a KaryoError naming the path."""
    try:
        write()
    except OSError as exc:
        raise KaryoError(
            f"{path}: cannot be written ({exc.strerror or exc}); free disk space or check the folder's "
            "permissions, or choose another --out"
        ) from exc
