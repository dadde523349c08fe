"""The folders napari-karyo keeps per user (platformdirs: ~/.cache/napari-karyo and ~/.local/share/napari-karyo on
Linux, the platform's own places elsewhere). Environment variables override them for tests and shared setups."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "napari-karyo"


def cache_dir(name: str) -> Path:
    """A cache that may be deleted at any time (prepared crops, objects): `<user cache>/napari-karyo/<name>`."""
    return platformdirs.user_cache_path(APP) / name


def data_dir(name: str, env: str | None = None) -> Path:
    """Data the user keeps (projects, trained models): `<user data>/napari-karyo/<name>`, or `$env` when set."""
    override = os.environ.get(env) if env else None
    return Path(override) if override else platformdirs.user_data_path(APP) / name
