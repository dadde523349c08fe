"""Model files are data: `<name>.safetensors` + `<name>.json` (the card). No pickle anywhere.

The card records the architecture and its arguments, the classes, training data, metrics, how to reproduce the
model and the sha256 of the weights file. Loading checks the hash and refuses unknown architectures.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from napari_karyo.core.errors import ModelFileError
from napari_karyo.core.storage.atomic import write_json, write_with

BUNDLED_DIR = Path(__file__).resolve().parents[2] / "models"


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_model(state_dict: dict, card: dict, path: str | Path) -> Path:
    """Write weights (atomically) and a card with their sha256. `path` may end in .safetensors or not."""
    from safetensors.torch import save_file

    path = Path(path).with_suffix(".safetensors")
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    write_with(path, lambda tmp: save_file(tensors, str(tmp)))
    card = dict(card, weights_file=path.name, sha256=sha256(path))
    write_json(path.with_suffix(".json"), card)
    return path


def resolve(name_or_path: str | Path) -> Path:
    """A model path, or the name of a bundled model (e.g. 'chromosome-maskrcnn')."""
    p = Path(name_or_path)
    if p.suffix == ".json":
        p = p.with_suffix(".safetensors")
    if p.suffix != ".safetensors":
        p = p.with_suffix(".safetensors")
    if not p.exists() and not p.is_absolute() and (BUNDLED_DIR / p.name).exists():
        p = BUNDLED_DIR / p.name
    return p


def load_card(name_or_path: str | Path) -> tuple[dict, Path]:
    path = resolve(name_or_path)
    card_path = path.with_suffix(".json")
    if not path.exists():
        raise ModelFileError(f"{path}: model weights not found; pass an existing .safetensors file")
    if not card_path.exists():
        raise ModelFileError(
            f"{card_path}: the model card is missing; a model needs its .json card beside it"
        )
    try:
        card = json.loads(card_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{card_path}: the model card is not valid JSON ({exc})") from exc
    return card, path


def load_model(name_or_path: str | Path, expected_arch: str | tuple[str, ...]) -> tuple[dict, dict]:
    """Return (state_dict, card) after checking the sha256 and the architecture."""
    from safetensors.torch import load_file

    card, path = load_card(name_or_path)
    expected = (expected_arch,) if isinstance(expected_arch, str) else expected_arch
    if card.get("architecture") not in expected:
        raise ModelFileError(
            f"{path}: architecture {card.get('architecture')!r} is not one of {expected}; "
            "this file is for a different model"
        )
    digest = sha256(path)
    if digest != card.get("sha256"):
        raise ModelFileError(
            f"{path}: sha256 {digest[:12]}... does not match its card ({str(card.get('sha256'))[:12]}...); "
            "the file is damaged or was changed. Re-install the package or re-train the model."
        )
    try:
        state = load_file(str(path))
    except Exception as exc:
        raise ModelFileError(f"{path}: cannot be read as safetensors ({exc})") from exc
    return state, card
