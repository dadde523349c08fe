"""Files of a project folder beside an image, `<image dir>/<image stem>.karyo/` (the editing layer,
`karyotype/edit/project.py`, owns what they mean):

- `proposal/`      the model's result the editing started from (`write_result` folder),
- `journal.jsonl`  one line per edit (`{"seq", "time", "action", "args", "crc"}`: `storage.journal`), each fsynced
                   before the edit counts,
- `working/`       a checkpoint of the corrected result that other tools read without replaying,
- `state.json`     image, status, corrections, last journal seq and the checkpoint's seq: what a folder queue reads
                   (`read_status`).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from napari_karyo.core.errors import KaryoError
from napari_karyo.core.storage.result_files import ANNOTATIONS

PROPOSAL = "proposal"
WORKING = "working"
JOURNAL = "journal.jsonl"
STATE = "state.json"
STATUSES = ("not started", "proposed", "corrected", "accepted")


def project_dir(image_path: str | os.PathLike) -> Path:
    image_path = Path(image_path)
    return image_path.parent / f"{image_path.stem}.karyo"


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
