"""Propose every spread of a labelling queue that is not started yet: one project per image, made in the
background while a person corrects another one.

A generator (`propose_not_started`) yielding (stage, done, total) like every long job, so the Labelling queue dock
runs it in a worker with a progress bar and Cancel (honoured between reports: a spread whose model run was
cancelled gets no project), and tests run it inline. Each spread is analysed as the Karyotype dock would (an
M-FISH cell named by colour, a grey or RGB spread by the model alone) and saved with `Project.start`, so the queue
lists it as "proposed" and opening it later restores the proposal at once. An image started meanwhile (opened
in the dock) is left alone; one that cannot be read is reported, and the others go on.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

from napari_karyo.core.errors import KaryoError, ModelFileError
from napari_karyo.core.karyotype.edit.project import Project
from napari_karyo.core.karyotype.infer.predict import analyze_steps
from napari_karyo.core.karyotype.mfish.analyze import CellJob
from napari_karyo.core.storage.images import read_image
from napari_karyo.core.storage.multichannel import is_cell_with_dapi, read_cell
from napari_karyo.core.storage.project_files import read_status
from napari_karyo.core.storage.queue import SpreadQueue

STEPS = 100  # progress units per spread


@dataclass
class QueueRun:
    proposed: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # started meanwhile by someone else
    failed: dict[Path, str] = field(default_factory=dict)  # path -> why

    def __str__(self) -> str:
        parts = [f"{len(self.proposed)} proposed"]
        if self.skipped:
            parts.append(f"{len(self.skipped)} already started")
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        return " · ".join(parts)


def not_started(queue: SpreadQueue) -> list[Path]:
    return [path for path, status in queue.statuses().items() if status == "not started"]


def _steps(path: Path, model: str | None, device: str | None, keep_ringed: bool):
    if is_cell_with_dapi(path):
        return CellJob(read_cell(path)).steps(model=model, device=device, source_path=str(path))
    return analyze_steps(read_image(path), model=model, device=device, source_path=str(path),
                         keep_ringed=keep_ringed)  # fmt: skip


def propose_not_started(
    paths: list[Path], model: str | None = None, device: str | None = None, keep_ringed: bool = False
) -> Generator[tuple[str, int, int], None, QueueRun]:
    """Analyse each image of `paths` (`not_started(queue)`) and save its project; the QueueRun says what
    happened to each. A model that cannot be loaded stops the run (KaryoError): every spread would fail.
    `keep_ringed`: keep the objects the lab ringed in red on grey spreads (as `analyze_steps`)."""
    run = QueueRun()
    total = len(paths) * STEPS
    for k, path in enumerate(paths):
        where = f"{k + 1}/{len(paths)} {path.name}"
        yield (where, k * STEPS, total)
        try:
            if read_status(path) != "not started":  # opened in the dock since the list was made
                run.skipped.append(path)
                continue
            steps = _steps(path, model, device, keep_ringed)
            while True:
                try:
                    stage, done, of = next(steps)
                except StopIteration as stop:
                    result = stop.value
                    break
                yield (f"{where}: {stage}", k * STEPS + (int(STEPS * done / of) if of else 0), total)
            if read_status(path) != "not started":  # opened and run in the dock while this one was analysed
                run.skipped.append(path)
                continue
            Project.start(path, result)
        except ModelFileError:  # nothing else would work either
            raise
        except KaryoError as exc:  # an unreadable image or state file, a folder that cannot be written
            run.failed[path] = str(exc)
            continue
        run.proposed.append(path)
    yield ("done", total, total)
    return run
