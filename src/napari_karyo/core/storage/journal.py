"""The edit journal of a project: one JSON line per edit, `{"seq", "time", "action", "args", "crc"}`.

`seq` counts 1, 2, 3 ... without gaps; `crc` is the CRC-32 of the line's JSON without the `crc` key, so a line
that was changed, duplicated, dropped or reordered is found before it is replayed. Lines written before the CRC
existed (no `crc` key) are checked for continuity only. A torn last line (a crash mid-write) is cut off; every
other problem is a `JournalError` that names the line: the edits after a bad line depend on it, so none is
skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import zlib
from pathlib import Path

from napari_karyo.core.errors import KaryoError


class JournalError(KaryoError):
    """The journal cannot be replayed as it is; `line` is the 1-based line number of the first problem."""

    def __init__(self, path: Path, line: int, reason: str) -> None:
        super().__init__(f"{path}: line {line} {reason}")
        self.path, self.line, self.reason = path, line, reason


def _crc(record: dict) -> int:
    body = {k: v for k, v in record.items() if k != "crc"}
    return zlib.crc32(json.dumps(body, separators=(",", ":")).encode("utf-8"))


def encode(seq: int, time: str, entry: dict) -> bytes:
    """One journal line for edit number `seq` (from 1)."""
    record = {"seq": seq, "time": time, **entry}
    record["crc"] = _crc(record)
    return (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")


def read(path: Path) -> tuple[list[dict], list[int]]:
    """Entries and their line numbers, checked (JSON, CRC, seq 1..n without gaps or repeats). A torn last line is
    cut off the file so the next edit starts cleanly."""
    if not path.exists():
        return [], []
    data = path.read_bytes()
    entries, lines, good_end, start = [], [], 0, 0
    for number, raw in enumerate(data.split(b"\n"), 1):
        end = start + len(raw)
        last = end >= len(data)  # no newline after it: a write the crash may have cut short
        if raw.strip():
            try:
                entry = _parse(raw)
            except ValueError as exc:
                if last:
                    break
                raise JournalError(path, number, f"is damaged ({exc})") from exc
            _check_seq(path, number, entry, entries, lines)
            entries.append(entry)
            lines.append(number)
            good_end = end if last else end + 1
        elif not last:
            good_end = end + 1
        start = end + 1
    if good_end != len(data) or (data and not data.endswith(b"\n")):
        _cut(path, data, good_end)
    return entries, lines


def _parse(raw: bytes) -> dict:
    entry = json.loads(raw)
    if not isinstance(entry, dict) or "action" not in entry:
        raise ValueError("not an edit entry")
    if "crc" in entry and entry["crc"] != _crc(entry):
        raise ValueError("its checksum does not match: the line was changed")
    if not isinstance(entry.get("seq"), int) or isinstance(entry.get("seq"), bool):
        raise ValueError("no edit number (seq)")
    return entry


def _check_seq(path: Path, number: int, entry: dict, entries: list[dict], lines: list[int]) -> None:
    seq, want = entry["seq"], len(entries) + 1
    if seq == want:
        return
    if entries and seq <= entries[-1]["seq"]:
        twin = next((k for k, e in enumerate(entries) if e["seq"] == seq), len(entries) - 1)
        what = "is a copy of" if entries[twin] == entry else "reuses the edit number of"
        raise JournalError(
            path, number, f"{what} line {lines[twin]} (edit {seq}): a duplicated or out-of-order line"
        )
    missing = f"edit {want}" if seq == want + 1 else f"edits {want} to {seq - 1}"
    raise JournalError(
        path, number, f"is edit {seq}, but {missing} before it are missing (lines were dropped)"
    )


def _cut(path: Path, data: bytes, good_end: int) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(good_end)
        if good_end and not data[:good_end].endswith(b"\n"):
            fh.seek(good_end)
            fh.write(b"\n")
        fh.flush()
        os.fsync(fh.fileno())


def append(path: Path, data: bytes, expected_size: int | None = None) -> int:
    """Append, flush and fsync one line; return the new file size. When the file is not `expected_size` bytes
    long, another program wrote to it since: refuse rather than interleave two histories. A failed write is cut
    back off so no half line is left for the next edit to be glued to."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        start = os.fstat(fd).st_size
        if expected_size is not None and start != expected_size:
            raise KaryoError(
                f"{path}: changed by another program since this project was opened ({start} bytes, expected "
                f"{expected_size}); the edit was not made. Close the image and open it again"
            )
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise
        return start + len(data)
    finally:
        os.close(fd)
