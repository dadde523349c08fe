"""The inputs and the output folder of a batch: folders, glob patterns and list files expanded to image paths,
the same file named twice found, output names that never collide, and an output folder checked before any work.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import socket
import tempfile
import time
from pathlib import Path

from napari_karyo.core.errors import KaryoError
from napari_karyo.core.storage.images import IMAGE_SUFFIXES

LIST_SUFFIXES = (".txt", ".lst", ".list")  # a file naming one image per line
STALE_PART_SECONDS = 3600  # a hidden .part folder this old was left by a killed run


def expand_inputs(items: list[str]) -> list[Path]:
    """Image paths in the order given: a folder gives its images (sorted, not recursive), a glob pattern its
    matches (sorted; ** descends), a list file (.txt/.lst/.list) the paths it names one per line ('#' starts a
    comment; relative paths are relative to the list). Anything else is kept as a path (it may be missing: the
    batch reports it)."""
    out: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p
                for p in path.iterdir()
                if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith(".")
            )
            if not found:
                raise KaryoError(f"{path}: holds no images ({', '.join(IMAGE_SUFFIXES)})")
            out += found
        elif path.suffix.lower() in LIST_SUFFIXES and path.is_file():
            out += _read_list(path)
        elif not path.exists() and glob.has_magic(item):
            found = sorted(
                Path(p) for p in glob.glob(item, recursive=True) if Path(p).suffix.lower() in IMAGE_SUFFIXES
            )
            if not found:
                raise KaryoError(f"{item}: no images match this pattern")
            out += found
        else:
            out.append(path)
    return out


def _read_list(path: Path) -> list[Path]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KaryoError(
            f"{path}: cannot read this list of images ({exc}); it must be UTF-8 text, one path a line"
        ) from exc
    lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
    return [p if p.is_absolute() else path.parent / p for p in map(Path, filter(None, lines))]


def split_duplicates(paths: list[Path]) -> tuple[list[Path], dict[Path, Path]]:
    """(first occurrences, {later duplicate: the first path of the same file}); links and relative paths to one
    file are the same file."""
    seen: dict[str, Path] = {}
    unique, dupes = [], {}
    for p in paths:
        key = os.path.realpath(p)
        if key in seen:
            dupes[p] = seen[key]
        else:
            seen[key] = p
            unique.append(p)
    return unique, dupes


def output_names(paths: list[Path]) -> dict[Path, str]:
    """A folder name per input: its file stem, made safe ('..tif' has stem '.'), and where two inputs share a
    stem both get a short hash of their full path, so neither overwrites the other's results."""
    safe = {p: _safe_stem(p) for p in paths}
    counts: dict[str, int] = {}
    for name in safe.values():
        counts[name.lower()] = counts.get(name.lower(), 0) + 1
    return {p: name if counts[name.lower()] == 1 else f"{name}-{_short_hash(p)}" for p, name in safe.items()}


def _safe_stem(path: Path) -> str:
    stem = re.sub(r"[\x00-\x1f/\\]", "_", path.stem).strip().lstrip(".")
    return stem or "image"


def _short_hash(path: Path) -> str:
    return hashlib.sha1(os.path.realpath(path).encode("utf-8", "surrogateescape")).hexdigest()[:8]


def check_out_dir(out: str | os.PathLike) -> Path:
    """The output folder, made if missing and proven writable, before any work: a problem here costs nothing."""
    if str(out).strip() == "":
        raise KaryoError("the output folder is empty (--out ''); name a folder, e.g. --out results")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise KaryoError(f"{path}: exists and is not a folder; choose another --out")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise KaryoError(
            f"{path}: cannot write here ({exc.strerror or exc}); check the permissions and free space, "
            "or choose another --out"
        ) from exc
    return path


def check_out_file(out: str | os.PathLike) -> Path:
    """An output file path whose folder exists (made if missing) and takes a new file, checked before any work."""
    if str(out).strip() == "":
        raise KaryoError("the output file name is empty (--out ''); name a file")
    path = Path(out)
    if path.is_dir():
        raise KaryoError(f"{path}: is a folder; --out names the file to write (e.g. {path / 'out.csv'})")
    check_out_dir(path.parent if str(path.parent) else ".")
    return path


def part_prefix(name: str) -> str:
    """Prefix of the hidden folder a result is built in: it names the host and process, so a later run can tell
    a folder left by a killed run from one still being written."""
    return f".{name}.{_host()}-{os.getpid()}."


def clean_stale_parts(folder: Path) -> int:
    """Remove `.part` folders and files left by killed runs (dead process on this host, or older than an hour);
    returns how many."""
    import shutil

    host, removed = _host(), 0
    for p in folder.glob(".*.part"):
        m = re.search(r"\.([^.]+)-(\d+)\.[^.]*\.part$", p.name)
        try:
            dead = m is not None and m.group(1) == host and not _alive(int(m.group(2)))
            if dead or time.time() - p.lstat().st_mtime > STALE_PART_SECONDS:
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
                removed += 1
        except OSError:
            continue
    return removed


def _host() -> str:
    return socket.gethostname().replace(".", "_") or "host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
