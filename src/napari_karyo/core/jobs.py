"""Long jobs are generators: they yield `(stage, done, total)` and return their result, so the CLI, the widgets
(worker thread, progress bar, Cancel) and scripts drive the same code."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any


def run_to_end(steps: Generator[Any, None, Any]) -> Any:
    """The result of a job, its progress ignored (scripts, benchmarks, tests)."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value
