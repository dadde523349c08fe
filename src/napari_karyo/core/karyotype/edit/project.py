"""An image's project folder (`project_files.project_dir`: the per-user projects folder, or beside the image
when the user chose so), so corrections are never lost:

- `proposal/`      the model's result the editing started from (`write_result` folder),
- `journal.jsonl`  one line per edit (`{"seq", "time", "action", "args", "crc"}`, see `edit.journal`), each fsynced
                   before the edit counts,
- `working/`       a checkpoint of the corrected result (on `save()`: accept, close, every SAVE_EVERY edits) that
                   other tools read without replaying,
- `state.json`     image, status, corrections, last journal seq and the checkpoint's seq: what a folder queue
                   reads (`read_status`).

The journal is the truth: `Project.open` replays it onto the proposal, so a crash loses at most the edit being
written. A torn last line (the crash came mid-write) is dropped; a damaged, duplicated or missing line, or a
journal that ends before the edit state.json recorded, is an error naming the file and the way back (a backup of
the journal, or `Project.recover` from the checkpoint), never skipped: the edits after it depend on it. A newer
state.json is never replaced by an older session's.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
import warnings
from datetime import UTC, datetime
from pathlib import Path

from napari_karyo.core.errors import KaryoError
from napari_karyo.core.karyotype.edit.session import EditSession, ReplayError
from napari_karyo.core.karyotype.infer.measure import SpreadMeasurer
from napari_karyo.core.results import SpreadResult
from napari_karyo.core.storage import atomic, journal
from napari_karyo.core.storage.project_files import (
    JOURNAL,
    PROPOSAL,
    STATE,
    WORKING,
    holds_work,
    is_project,
    now,
    project_dir,
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
        self._journal_size = 0  # bytes this session has seen in the journal: more means another writer
        self._checkpoint_seq = 0

    @property
    def journal_path(self) -> Path:
        return self.folder / JOURNAL

    @staticmethod
    def check_start(image_path: str | os.PathLike, overwrite: bool = False) -> bool:
        """Whether the image's project holds corrections; KaryoError when it does and `overwrite` is not given
        (callers check first when they write something else before starting the project)."""
        folder = project_dir(image_path)
        work = folder.exists() and holds_work(folder)
        if work and not overwrite:
            raise KaryoError(
                f"{folder}: holds corrections of {Path(image_path).name}; open the spread to go on from them, "
                "or start over with overwrite (--overwrite on the command line; the old folder is kept aside)"
            )
        return work

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
        work = cls.check_start(image_path, overwrite)
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
        has no project. A journal that does not continue up to the edit state.json recorded is refused, and
        nothing in the folder is changed."""
        folder = project_dir(image_path)
        if not folder.is_dir():
            return None
        if not (folder / PROPOSAL / ANNOTATIONS).is_file():
            raise KaryoError(
                f"{folder}: {PROPOSAL}/ is missing, so the edits in {JOURNAL} cannot be replayed. "
                + _recovery(folder, image_path)
            )
        entries, lines, state = _checked_journal(folder, image_path)
        project = cls(image_path, seq=entries[-1]["seq"] if entries else 0)
        project._checkpoint_seq = int(state.get("checkpoint_seq", 0))
        try:
            project.session = EditSession.replay(
                read_result(folder / PROPOSAL), entries, journal=project._append, measurer=measurer
            )
        except ReplayError as exc:
            raise KaryoError(
                f"{folder / JOURNAL}: line {lines[exc.index]}: {exc.reason}; the edits from there on "
                "cannot be replayed. " + _recovery(folder, image_path)
            ) from exc
        project._journal_size = (folder / JOURNAL).stat().st_size if (folder / JOURNAL).exists() else 0
        try:
            project._write_state()
        except OSError as exc:
            raise KaryoError(
                f"{folder}: cannot write {STATE} ({exc}); edits cannot be saved here: check the "
                "folder's permissions or copy the image and its .karyo folder somewhere writable"
            ) from exc
        return project

    @classmethod
    def recover(cls, image_path: str | os.PathLike) -> tuple[Project, Path]:
        """Go on from the last checkpoint (working/) when the journal cannot be replayed: the damaged folder is
        moved aside to `<stem>.karyo.old-<time>` (never deleted) and a new project starts from the checkpoint,
        its corrections kept. Returns (project, the folder moved aside)."""
        folder = project_dir(image_path)
        if not (folder / WORKING / ANNOTATIONS).is_file():
            raise KaryoError(
                f"{folder}: no checkpoint ({WORKING}/) to recover from; move the folder aside and run "
                "the model on the image again"
            )
        checkpoint = read_result(folder / WORKING)
        aside = folder.with_name(f"{folder.name}.old-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}")
        try:
            os.replace(folder, aside)
        except OSError as exc:
            raise KaryoError(
                f"{folder}: cannot move it aside ({exc}); check the folder's permissions"
            ) from exc
        try:
            return cls.start(image_path, checkpoint), aside
        except BaseException:
            os.replace(aside, folder)
            raise

    def save(self) -> Path:
        """Checkpoint the corrected result into working/ and state.json; returns the working/ folder."""
        self._check_newest()
        try:
            folder = write_result(self.session.result, self.folder, WORKING, overwrite=True)
            self._checkpoint_seq = self._seq
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
        line = journal.encode(self._seq + 1, now(), entry)
        try:
            self._journal_size = journal.append(self.journal_path, line, self._journal_size)
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

    def _check_newest(self) -> None:
        """Never replace a newer state with an older one (another window or program editing this project)."""
        seen = read_state(self.folder) or {}
        if int(seen.get("seq", 0)) > self._seq:
            raise KaryoError(
                f"{self.folder / STATE}: records edit {seen['seq']}, newer than this session's edit "
                f"{self._seq}: another window or program is editing this image. Close this one and "
                "open the image again"
            )

    def _write_state(self, folder: Path | None = None) -> None:
        if folder is None:
            self._check_newest()
        result = self.session.result
        atomic.write_json(
            (folder or self.folder) / STATE,
            {
                "image": os.path.abspath(self.image_path),
                "status": result.status,
                "corrections": int(result.corrections),
                "seq": self._seq,
                "checkpoint_seq": self._checkpoint_seq,
                "updated": now(),
            },
        )
        self._state_status = result.status


def _checked_journal(folder: Path, image_path) -> tuple[list[dict], list[int], dict]:
    """(entries, line numbers, state) once the journal is whole: every line intact and in order, and reaching
    the edit state.json recorded (a journal emptied, cut short or restored from an older copy would silently
    replay to an older result)."""
    try:
        entries, lines = journal.read(folder / JOURNAL)
    except journal.JournalError as exc:
        raise KaryoError(
            f"{exc}; the journal cannot be replayed past it. {_recovery(folder, image_path)}"
        ) from exc
    state = read_state(folder) or {}
    last = entries[-1]["seq"] if entries else 0
    recorded = max(int(state.get("seq", 0)), int(state.get("checkpoint_seq", 0)))
    if last < recorded:
        raise KaryoError(
            f"{folder / JOURNAL}: {'ends at edit ' + str(last) if (folder / JOURNAL).exists() else 'missing'}, but "
            f"{STATE} recorded edit {recorded}: the journal lost lines (emptied, cut short or restored from an older "
            f"copy). {_recovery(folder, image_path)}"
        )
    return entries, lines, state


def _recovery(folder: Path, image_path) -> str:
    """How to get the work back: the journal from a backup, or the last checkpoint."""
    try:
        doc = json.loads((folder / WORKING / ANNOTATIONS).read_text(encoding="utf-8"))
        checkpoint = f"the last checkpoint in {WORKING}/ ({int(doc.get('corrections', 0))} corrections)"
    except (OSError, ValueError, TypeError, AttributeError):
        return (
            "Nothing was changed. Restore the folder from a backup, or move it aside and run the model on "
            "the image again"
        )
    return (
        f"Nothing was changed. Restore {JOURNAL} from a backup, or go on from {checkpoint} with "
        f"`napari-karyo recover {shlex.quote(str(image_path))}` (the folder is kept aside; later edits and undo history are lost)"
    )


def read_project_result(folder: str | os.PathLike) -> SpreadResult:
    """The latest corrected result of a project folder (proposal + journal replayed), read-only: for exports."""
    folder = Path(folder)
    if not is_project(folder):
        raise KaryoError(f"{folder}: not a napari-karyo project folder (no {PROPOSAL}/{ANNOTATIONS})")
    image = (read_state(folder) or {}).get("image") or folder.with_suffix("")
    entries, lines, _ = _checked_journal(folder, image)
    try:
        return EditSession.replay(read_result(folder / PROPOSAL), entries).result
    except ReplayError as exc:
        raise KaryoError(f"{folder / JOURNAL}: line {lines[exc.index]}: {exc.reason}") from exc


def read_any_result(folder: str | os.PathLike) -> SpreadResult:
    """A project folder's latest corrected result, or a plain result folder's result."""
    return read_project_result(folder) if is_project(folder) else read_result(folder)
