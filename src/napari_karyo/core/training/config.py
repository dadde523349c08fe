"""One config style for every trainer: a dataclass of settings, loaded from a YAML or JSON file and overridden by
command-line flags that are built from the dataclass fields (`add_flags`), so no trainer keeps a hand-written flag
list that can drift from its settings.

A field's `metadata` may carry `help`, `choices`, `flag` (False: file-only, e.g. nested dicts) and `metavar`.
"""

from __future__ import annotations

import argparse
import json
import types
import typing
from dataclasses import MISSING, field, fields
from pathlib import Path

from napari_karyo.core.errors import KaryoError

# help for the settings most trainers share, unless a field says otherwise
COMMON_HELP = {
    "device": "cuda, cuda:N, mps or cpu (default: the best available)",
    "threads": "CPU threads torch may use",
    "seed": "seed of every random draw (data, augmentation, initial weights)",
    "max_minutes": "wall-clock budget of the run",
}


def setting(default=MISSING, *, help: str = "", choices=None, flag: bool = True, default_factory=MISSING):
    """A dataclass field with what its command-line flag needs."""
    meta = {"help": help, "choices": tuple(choices) if choices else None, "flag": flag}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def read_settings(path: str | Path) -> dict:
    """The mapping in a YAML or JSON settings file; an unreadable file is a KaryoError naming it."""
    import yaml

    try:
        text = Path(path).read_text()
        values = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise KaryoError(f"{path}: cannot read the training settings ({exc})") from exc
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise KaryoError(f"{path}: training settings must be a mapping of names to values")
    return values


class Settings:
    """Mixin for a trainer's settings dataclass: `load(path, **overrides)` and a `check` hook."""

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides):
        """Defaults, then the file's values, then `overrides` that are not None (flags not given)."""
        values = read_settings(path) if path else {}
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise KaryoError(f"{path}: unknown training settings {sorted(unknown)}; known: {sorted(known)}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        cfg = cls(**values)
        cfg.check()
        return cfg

    def check(self) -> None:
        """Raise a KaryoError for settings that do not go together (none by default)."""


def _flag_type(hint) -> tuple[type, object] | None:
    """(element type, nargs) of a field's type hint, or None when it has no flag (dicts, untyped lists)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _flag_type(inner[0]) if len(inner) == 1 else None
    if hint in (int, float, str, bool):
        return hint, None
    if origin is list and args and args[0] in (int, float, str):
        return args[0], "+"
    if origin is tuple and args and all(a == args[0] for a in args if a is not Ellipsis):
        return args[0], "+" if Ellipsis in args else len(args)
    return None


def flag_fields(cls) -> list:
    """The fields of `cls` that get a command-line flag, with their (type, nargs)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):
        kind = _flag_type(hints[f.name]) if f.metadata.get("flag", True) else None
        if kind is not None:
            out.append((f, kind))
    return out


def add_flags(parser: argparse.ArgumentParser, cls, skip: tuple[str, ...] = ()) -> None:
    """One `--name-with-dashes` flag per field of settings dataclass `cls` (default None: not given), booleans as
    `--x/--no-x`; help text and choices from the field's metadata, the field default shown."""
    for f, (kind, nargs) in flag_fields(cls):
        if f.name in skip:
            continue
        default = f.default if f.default is not MISSING else f.default_factory()
        text = f.metadata.get("help") or COMMON_HELP.get(f.name, "")
        if default is not None:
            text = f"{text} (default {default})" if text else f"default {default}"
        options: dict = {"dest": f.name, "default": None, "help": text.replace("%", "%%")}
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        else:
            options.update(type=kind, nargs=nargs, choices=f.metadata.get("choices"))
        parser.add_argument("--" + f.name.replace("_", "-"), **options)


def flag_values(args: argparse.Namespace, cls) -> dict:
    """The flags of `cls`'s fields as given on the command line (None where not given)."""
    return {f.name: getattr(args, f.name, None) for f, _ in flag_fields(cls)}
