"""An image's project folder (`project_files.project_dir`: the per-user projects folder, or beside the image
when the user chose so), so corrections are never lost:

- `proposal/`      the model's result the editing started from (`write_result` folder),
- `journal.jsonl`  one line per edit (`{"seq", "time", "action", "args"}`), each fsynced before the edit counts,
- `working/`       a checkpoint of the corrected result (on `save()`: accept, close, every SAVE_EVERY edits) that
                   other tools read without replaying,
- `state.json`     image, status, corrections, last journal seq: what a folder queue reads (`read_status`).

The journal is the truth: `Project.open` replays it onto the proposal, so a crash loses at most the edit being
written. A torn last line (the crash came mid-write) is dropped; a bad line before the end is an error, never
skipped, because the edits after it depend on it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from datetime import UTC, datetime
from pathlib import Path

from napari_karyo.core.errors import KaryoError
from napari_karyo.core.karyotype.edit.session import EditSession, ReplayError
from napari_karyo.core.karyotype.infer.measure import SpreadMeasurer
from napari_karyo.core.results import SpreadResult
from napari_karyo.core.storage import atomic
from napari_karyo.core.storage.project_files import (
    JOURNAL,
    PROPOSAL,
    STATE,
    WORKING,
    append_line,
    holds_work,
    is_project,
    now,
    project_dir,
    read_journal,
    read_state,
)
from napari_karyo.core.storage.result_files import ANNOTATIONS, read_result, write_result

SAVE_EVERY = 20  # edits between checkpoints of working/


class Project:
    """One image's editing project. Make it with `Project.start` (a fresh model result) or `Project.open`."""

    def __init__(self, image_path: str | os.PathLike, seq: int = 0, folder: Path | None = None) -> None:
        self.image_path = Path(image_path)
        self.folder = folder or project_dir(image_path)
        self.session: EditSession
        self.last_save_error: str | None = None  # a failed checkpoint (the journal still holds every edit)
        self._seq = seq
        self._unsaved = 0
        self._state_status = ""

    @property
    def journal_path(self) -> Path:
        return self.folder / JOURNAL

    @classmethod
    def start(
        cls,
        image_path: str | os.PathLike,
        proposal: SpreadResult,
        overwrite: bool = False,
        measurer: SpreadMeasurer | None = None,
    ) -> Project:
        """A new project for a fresh model run. A project holding corrections is kept: KaryoError unless
        `overwrite`, and then it is moved aside to `<stem>.karyo.old-<time>`, never deleted. With a `measurer`
        the session keeps the measurements current after every edit."""
        folder = project_dir(image_path)
        work = folder.exists() and holds_work(folder)
        if work and not overwrite:
            raise KaryoError(
                f"{folder}: holds corrections of {Path(image_path).name}; open it to go on "
                "(Project.open), or start over with overwrite=True (the old folder is kept aside)"
            )
        try:
            if work:
                stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
                os.replace(folder, folder.with_name(f"{folder.name}.old-{stamp}"))
            elif folder.exists():
                shutil.rmtree(folder)
            # built whole in a hidden sibling and renamed: a crash never leaves a project without its proposal
            folder.parent.mkdir(parents=True, exist_ok=True)  # the per-user projects folder, the first time
            tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".part", dir=folder.parent))
        except OSError as exc:
            raise KaryoError(
                f"{folder.parent}: cannot make the project folder here ({exc}); "
                "copy the image to a folder you can write to"
            ) from exc
        project = cls(image_path, folder=folder)  # the old one may have been set aside: keep this place
        project.session = EditSession(proposal, journal=project._append, measurer=measurer)
        tmp.chmod(0o777 & ~atomic.umask())
        try:
            write_result(project.session.proposal, tmp, PROPOSAL)
            write_result(project.session.result, tmp, WORKING)
            (tmp / JOURNAL).touch()
            project._write_state(tmp)
            os.replace(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return project

    @classmethod
    def open(cls, image_path: str | os.PathLike, measurer: SpreadMeasurer | None = None) -> Project | None:
        """Restore a project: the proposal plus every journalled edit, undo stack included; None when the image
        has no project."""
        folder = project_dir(image_path)
        if not folder.is_dir():
            return None
        if not (folder / PROPOSAL / ANNOTATIONS).is_file():
            raise KaryoError(
                f"{folder}: {PROPOSAL}/ is missing, so the edits in {JOURNAL} cannot be replayed; move the "
                "folder aside (its working/ holds the last checkpoint) and run the model on the image again"
            )
        state = read_state(folder) or {}
        if not (folder / JOURNAL).is_file() and int(state.get("seq", 0)) > 0:
            raise KaryoError(
                f"{folder / JOURNAL}: missing, but {STATE} counts {state['seq']} journalled edits; move the folder "
                "aside (its working/ holds the last checkpoint) and run the model on the image again"
            )
        proposal = read_result(folder / PROPOSAL)
        entries, lines = read_journal(folder / JOURNAL)
        project = cls(image_path, seq=int(entries[-1].get("seq", len(entries))) if entries else 0)
        try:
            project.session = EditSession.replay(
                proposal, entries, journal=project._append, measurer=measurer
            )
        except ReplayError as exc:
            raise KaryoError(
                f"{folder / JOURNAL}: line {lines[exc.index]}: {exc.reason}; the edits from there on cannot be "
                "replayed. Remove that line and the ones after it (losing those edits), or move the folder aside"
            ) from exc
        try:
            project._write_state()
        except OSError as exc:
            raise KaryoError(
                f"{folder}: cannot write {STATE} ({exc}); edits cannot be saved here: check the "
                "folder's permissions or copy the image and its .karyo folder somewhere writable"
            ) from exc
        return project

    def save(self) -> Path:
        """Checkpoint the corrected result into working/ and state.json; returns the working/ folder."""
        try:
            folder = write_result(self.session.result, self.folder, WORKING, overwrite=True)
            self._write_state()
        except OSError as exc:
            raise KaryoError(
                f"{self.folder}: cannot save the checkpoint ({exc}); free disk space or check "
                "permissions (every edit is still in the journal)"
            ) from exc
        self._unsaved = 0
        self.last_save_error = None
        return folder

    def _append(self, entry: dict) -> None:
        """The session's journal: the line is on disk before the edit counts (an error here undoes it)."""
        line = json.dumps({"seq": self._seq + 1, "time": now(), **entry}, separators=(",", ":")) + "\n"
        try:
            append_line(self.journal_path, line.encode("utf-8"))
        except OSError as exc:
            raise KaryoError(
                f"{self.journal_path}: cannot record the edit ({exc}), so it was not made; free "
                "disk space or check the folder's permissions"
            ) from exc
        self._seq += 1
        self._unsaved += 1
        # The edit is safe in the journal: a failing checkpoint must not undo it, so it is reported, not raised.
        try:
            if entry.get("action") == "accept" or self._unsaved >= SAVE_EVERY:
                self.save()
            elif self.session.result.status != self._state_status:  # keep the queue's status current
                self._write_state()
        except (OSError, KaryoError) as exc:
            self.last_save_error = str(exc)
            warnings.warn(f"napari-karyo: {exc}", stacklevel=2)

    def _write_state(self, folder: Path | None = None) -> None:
        result = self.session.result
        atomic.write_json(
            (folder or self.folder) / STATE,
            {
                "image": os.path.abspath(self.image_path),
                "status": result.status,
                "corrections": int(result.corrections),
                "seq": self._seq,
                "updated": now(),
            },
        )
        self._state_status = result.status


def read_project_result(folder: str | os.PathLike) -> SpreadResult:
    """The latest corrected result of a project folder (proposal + journal replayed), read-only: for exports."""
    folder = Path(folder)
    if not is_project(folder):
        raise KaryoError(f"{folder}: not a napari-karyo project folder (no {PROPOSAL}/{ANNOTATIONS})")
    entries, lines = read_journal(folder / JOURNAL) if (folder / JOURNAL).is_file() else ([], [])
    try:
        return EditSession.replay(read_result(folder / PROPOSAL), entries).result
    except ReplayError as exc:
        raise KaryoError(f"{folder / JOURNAL}: line {lines[exc.index]}: {exc.reason}") from exc


def read_any_result(folder: str | os.PathLike) -> SpreadResult:
    """A project folder's latest corrected result, or a plain result folder's result."""
    return read_project_result(folder) if is_project(folder) else read_result(folder)
