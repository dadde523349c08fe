"""Files of an image's project folder, `<projects folder>/<image stem>-<path hash>.karyo/` or, when the user chose
so, `<image dir>/<image stem>.karyo/` (see `project_dir`; the editing layer,
`karyotype/edit/project.py`, owns what they mean):

- `proposal/`      the model's result the editing started from (`write_result` folder),
- `journal.jsonl`  one line per edit (`{"seq", "time", "action", "args", "crc"}`: `storage.journal`), each fsynced
                   before the edit counts,
- `working/`       a checkpoint of the corrected result that other tools read without replaying,
- `state.json`     image, status, corrections, last journal seq and the checkpoint's seq: what a folder queue reads
                   (`read_status`).
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path

from napari_karyo.core.errors import KaryoError
from napari_karyo.core.storage.result_files import ANNOTATIONS
from napari_karyo.core.storage.settings import setting
from napari_karyo.core.user_folders import data_dir

PROPOSAL = "proposal"
WORKING = "working"
JOURNAL = "journal.jsonl"
STATE = "state.json"
STATUSES = ("not started", "proposed", "corrected", "accepted")


def project_dir(image_path: str | os.PathLike) -> Path:
    """Where the project of an image lives. By default in the per-user projects folder
    (`$NAPARI_KARYO_PROJECTS` overrides it), named by the image's stem and a hash of its full path so two
    `spread1.tif` in different folders do not meet; beside the image only when the user chose so
    (`projects_beside_images`) or a project is already there (an older version put it there)."""
    image_path = Path(image_path)
    beside = image_path.parent / f"{image_path.stem}.karyo"
    if beside.is_dir() or setting("projects_beside_images"):
        return beside
    digest = hashlib.sha1(str(image_path.resolve()).encode()).hexdigest()[:8]
    return projects_root() / f"{image_path.stem}-{digest}.karyo"


def projects_root() -> Path:
    return data_dir("projects", env="NAPARI_KARYO_PROJECTS")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def is_project(folder: str | os.PathLike) -> bool:
    return (Path(folder) / PROPOSAL / ANNOTATIONS).is_file()


def read_status(image_path: str | os.PathLike) -> str:
    """ "not started" | "proposed" | "corrected" | "accepted", from state.json alone (cheap for a whole folder)."""
    path = project_dir(image_path) / STATE
    if not path.is_file():
        return "not started"
    try:
        status = json.loads(path.read_text(encoding="utf-8"))["status"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KaryoError(f"{path}: unreadable ({exc}); open the image to rewrite it") from exc
    if status not in STATUSES[1:]:
        raise KaryoError(f"{path}: unknown status {status!r}; open the image to rewrite it")
    return status


def read_state(folder: Path) -> dict | None:
    """state.json, or None when it is missing or unreadable."""
    try:
        state = json.loads((folder / STATE).read_text(encoding="utf-8"))
        int(state.get("seq", 0)), int(state.get("corrections", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    return state


def holds_work(folder: Path) -> bool:
    """Corrections a person made: by state.json, or journal lines it has not seen (or cannot be read)."""
    state = read_state(folder) or {"status": "proposed"}
    if state.get("status") != "proposed" or int(state.get("corrections", 0)) > 0:
        return True
    seen = int(state.get("seq", 0))
    try:
        return count_lines(folder / JOURNAL) > seen
    except OSError:
        return False


def count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())
