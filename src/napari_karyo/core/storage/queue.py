"""A folder of spreads as a labelling queue: which images there are, in what order, and how far each one is.

The status of an image comes from its project folder (`<stem>.karyo/state.json`, `project.read_status`), so
the queue keeps no state of its own: any tool that saves a project moves the queue on; `refresh()` re-scans.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from napari_karyo.core.errors import KaryoError
from napari_karyo.core.storage.images import IMAGE_SUFFIXES
from napari_karyo.core.storage.project_files import STATE, project_dir, read_status
from napari_karyo.core.storage.result_files import ANNOTATIONS

STATUSES = ("not started", "proposed", "corrected", "accepted")
UNREADABLE = "unreadable"  # a damaged state.json: listed (and counted) rather than hiding the whole queue
PROJECT_SUFFIX = ".karyo"
MAX_DEPTH = 3  # folder levels below the chosen one: case/slide/cell layouts, without walking a whole disk
# ADIR M-FISH cells: `<cell>D.tif` is the DAPI plane the model reads, `<cell>K.tif` the ground truth, and five
# fluor planes whose letters depend on the vendor (5 C G O T on the A slides, 3 6 C E I on the P slides)
MFISH_PLANES = frozenset("356CEGIOT")
MIN_FLUOR_PLANES = 4
K_VALUES = frozenset(range(25)) | {255}  # M-FISH ground truth: 0 background, 1-24 classes, 255 overlap


def natural_key(text: str) -> tuple:
    """Sort key that orders digit runs by value ("spread2" before "spread10"), ignoring case."""
    return tuple(int(part) if part.isdigit() else part.casefold() for part in re.split(r"(\d+)", text))


@dataclass(frozen=True)
class QueueProgress:
    counts: dict[str, int]  # every status in STATUSES, zero included
    total: int

    @classmethod
    def from_statuses(cls, statuses: Iterable[str]) -> QueueProgress:
        counts = dict.fromkeys(STATUSES, 0)
        for status in statuses:
            counts[status] = counts.get(status, 0) + 1
        return cls(counts, sum(counts.values()))

    @property
    def accepted(self) -> int:
        return self.counts["accepted"]

    @property
    def fraction(self) -> float:
        """Done fraction: accepted / total (0 for an empty queue)."""
        return self.accepted / self.total if self.total else 0.0

    def __str__(self) -> str:
        rest = [f"{self.counts[s]} {s}" for s in ("corrected", "proposed", "not started")]
        rest += [f"{n} {s}" for s, n in self.counts.items() if s not in STATUSES and n]
        return " · ".join([f"{self.accepted}/{self.total} accepted", *rest])


class SpreadQueue:
    """The spread images under `folder` (subfolders too, up to MAX_DEPTH), sorted naturally by relative path.
    Statuses are read from the projects whenever asked for, never cached.

    Skipped: hidden files and folders, `*.karyo` project folders (and old ones set aside), napari-karyo result
    folders (they hold an annotations.json), M-FISH `*K.tif` ground-truth maps and the fluor planes of a cell
    whose DAPI plane is listed.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder).expanduser().absolute()
        self._paths: list[Path] = []
        self._kmaps: dict[
            Path, tuple[int, int, bool]
        ] = {}  # path -> (mtime, size, is a K map): refresh re-reads none
        self.refresh()

    # ---- listing ------------------------------------------------------------------------------------------

    def refresh(self) -> bool:
        """Re-scan the folder; True when the list of images changed. KaryoError if it is gone or empty."""

        if not self.folder.is_dir():
            what = "is not a folder" if self.folder.exists() else "no such folder"
            raise KaryoError(f"{self.folder}: {what}; choose the folder that holds the spread images")
        paths = sorted(self._scan(self.folder, 0), key=self._key)
        if not paths:
            raise KaryoError(
                f"{self.folder}: holds no spread images (looked for {', '.join(IMAGE_SUFFIXES)} files in it "
                f"and {MAX_DEPTH} levels of subfolders, skipping hidden files, *{PROJECT_SUFFIX} project "
                "folders, result folders and M-FISH *K.tif maps); choose the folder of the images themselves"
            )
        changed = paths != self._paths
        self._paths = paths
        return changed

    def _scan(self, folder: Path, depth: int) -> Iterator[Path]:

        try:
            entries = [e for e in os.scandir(folder) if not e.name.startswith(".")]
        except OSError:  # an unreadable subfolder is not the user's question here: leave it out
            return
        names = {e.name for e in entries}
        for entry in entries:
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                if depth < MAX_DEPTH and not _is_project(path.name) and not (path / ANNOTATIONS).is_file():
                    yield from self._scan(path, depth + 1)
            elif (
                entry.is_file()
                and path.suffix.lower() in IMAGE_SUFFIXES
                and not _is_mfish_plane(path, names)
                and not self._is_kmap(path, entry.stat())
            ):
                yield path

    def _is_kmap(self, path: Path, stat: os.stat_result) -> bool:
        known = self._kmaps.get(path)
        if known is None or known[:2] != (stat.st_mtime_ns, stat.st_size):
            known = self._kmaps[path] = (stat.st_mtime_ns, stat.st_size, _is_kmap(path))
        return known[2]

    def watch_paths(self) -> list[Path]:
        """What to watch for changes of the queue: the chosen folder, the folders holding images, the images'
        existing project folders (a save renames a new state.json into place) and their state files (an edit
        in place)."""

        paths = {self.folder} | {p.parent for p in self._paths}
        for image in self._paths:
            project = project_dir(image)
            if project.parent.is_dir():  # the projects folder: a new project appears there
                paths.add(project.parent)
            if project.is_dir():
                paths.add(project)
                if (project / STATE).is_file():
                    paths.add(project / STATE)
        return sorted(paths)

    def _key(self, path: Path) -> tuple:
        return tuple(natural_key(part) for part in path.relative_to(self.folder).parts)

    @property
    def paths(self) -> list[Path]:
        return list(self._paths)

    def __len__(self) -> int:
        return len(self._paths)

    def __iter__(self) -> Iterator[Path]:
        return iter(list(self._paths))

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str | os.PathLike) and self.absolute(path) in self._paths

    def absolute(self, path: str | os.PathLike) -> Path:
        """`path` as the queue lists it: relative paths are taken from the queue's folder."""
        path = Path(path).expanduser()
        return path if path.is_absolute() else (self.folder / path).absolute()

    # ---- status -------------------------------------------------------------------------------------------

    def status(self, path: str | os.PathLike) -> str:
        """ "not started" | "proposed" | "corrected" | "accepted", read from the image's project now.
        KaryoError (naming the state file) when that file is damaged."""

        return read_status(self.absolute(path))

    def statuses(self) -> dict[Path, str]:
        """Every listed image's status; a damaged project reads as UNREADABLE instead of failing the queue."""
        return {path: self._status_or_unreadable(path) for path in self._paths}

    def _status_or_unreadable(self, path: Path) -> str:
        try:
            return self.status(path)
        except KaryoError:
            return UNREADABLE

    def progress(self) -> QueueProgress:
        return QueueProgress.from_statuses(self.statuses().values())

    # ---- stepping -----------------------------------------------------------------------------------------

    def next(self, after: str | os.PathLike | None = None, skip_accepted: bool = True) -> Path | None:
        """The first image after `after` (from the start when None), skipping accepted ones unless told
        not to; None at the end. `after` need not be listed any more (it may have been moved away)."""
        candidates = (
            self._paths if after is None else [p for p in self._paths if self._key(p) > self._pos(after)]
        )
        return next(
            (p for p in candidates if not skip_accepted or self._status_or_unreadable(p) != "accepted"), None
        )

    def previous(self, before: str | os.PathLike | None = None, skip_accepted: bool = False) -> Path | None:
        """The last image before `before` (from the end when None); None at the start."""
        candidates = (
            self._paths if before is None else [p for p in self._paths if self._key(p) < self._pos(before)]
        )
        return next(
            (
                p
                for p in reversed(candidates)
                if not skip_accepted or self._status_or_unreadable(p) != "accepted"
            ),
            None,
        )

    def _pos(self, path: str | os.PathLike) -> tuple:
        path = self.absolute(path)
        if not path.is_relative_to(self.folder):
            raise KaryoError(
                f"{path}: is not in the queue's folder {self.folder}; open that folder as a queue"
            )
        return self._key(path)


def _is_project(name: str) -> bool:
    """A project folder, or one `Project.start(overwrite=True)` moved aside (`<stem>.karyo.old-<time>`)."""
    return name.endswith(PROJECT_SUFFIX) or f"{PROJECT_SUFFIX}.old-" in name


def _is_mfish_plane(path: Path, names: set[str]) -> bool:
    """A plane other than DAPI of an ADIR M-FISH cell: `<cell>D.tif` beside at least MIN_FLUOR_PLANES of the
    vendor's fluor planes `<cell>C.tif` … (a user's spreadA … spreadD is not mistaken for one)."""
    stem, suffix = path.stem, path.suffix
    if len(stem) < 2 or stem[-1] == "D" or f"{stem[:-1]}D{suffix}" not in names:
        return False
    return sum(f"{stem[:-1]}{letter}{suffix}" in names for letter in MFISH_PLANES) >= MIN_FLUOR_PLANES


def _is_kmap(path: Path) -> bool:
    """An M-FISH ground-truth map `*K.tif` outside an ADIR cell (e.g. the bundled sample): a 2-D integer
    image of class values, the napari reader's rule."""
    if path.suffix.lower() not in (".tif", ".tiff") or not path.stem.upper().endswith("K"):
        return False
    import numpy as np
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            if len([s for s in series.shape if s != 1]) != 2 or not np.issubdtype(series.dtype, np.integer):
                return False
            return set(np.unique(series.asarray()).tolist()) <= K_VALUES
    except Exception:  # noqa: BLE001 - a corrupt file is listed; opening it then says what is wrong
        return False
