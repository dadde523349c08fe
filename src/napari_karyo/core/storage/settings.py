"""The user's napari-karyo settings: one small JSON file in the per-user data folder (`$NAPARI_KARYO_SETTINGS`
overrides its path), shared by the docks and the CLI. Unknown or unreadable content falls back to the defaults."""

from __future__ import annotations

import json
from pathlib import Path

from napari_karyo.core.storage.atomic import write_text
from napari_karyo.core.user_folders import data_dir

DEFAULTS = {
    "projects_beside_images": False,  # autosaved projects in the per-user projects folder, not beside the images
    "analyst": "",  # printed in the report header
    "stain_normalisation": "none",  # none | macenko | vahadane: chosen in either pathology dock, used by both
    "sam_checkpoint": "",  # prompts from this SAM / micro-sam checkpoint; "" = the bundled Mask R-CNN
    "keep_ringed": False,  # the Karyotype dock keeps objects the lab ringed in red (the CLI: --keep-ringed)
}


def settings_path() -> Path:
    return data_dir("settings.json", env="NAPARI_KARYO_SETTINGS")


def read_settings() -> dict:
    try:
        doc = json.loads(settings_path().read_text())
    except (OSError, ValueError):
        doc = {}
    if not isinstance(doc, dict):
        doc = {}
    return {k: type(v)(doc.get(k, v)) for k, v in DEFAULTS.items()}


def setting(name: str):
    return read_settings()[name]


def change_setting(name: str, value) -> None:
    """Store one setting (atomically)."""
    if name not in DEFAULTS:
        raise KeyError(f"unknown setting {name!r}; known: {', '.join(DEFAULTS)}")
    doc = {**read_settings(), name: type(DEFAULTS[name])(value)}
    settings_path().parent.mkdir(parents=True, exist_ok=True)
    write_text(settings_path(), json.dumps(doc, indent=1))
