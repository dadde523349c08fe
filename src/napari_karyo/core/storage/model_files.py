"""Model files are data: `<name>.safetensors` + `<name>.json` (the card). No pickle anywhere.

The card records the architecture and its arguments, the classes, training data, metrics, how to reproduce the
model and the sha256 of the weights file; `card_sha256` seals the card's own content (which includes the weights'
hash), so a changed threshold or config is found as surely as changed weights. Loading checks both hashes, refuses
unknown architectures, non-finite weights and a config that does not fit the tensors (`build_checked`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from napari_karyo.core.errors import ModelFileError
from napari_karyo.core.storage.atomic import write_json, write_with

BUNDLED_DIR = Path(__file__).resolve().parents[2] / "models"
CARD_HASH = "card_sha256"


def bundled_segmenters() -> list[str]:
    """Names of the bundled segmentation models (their cards read as JSON: no torch import)."""
    names = []
    for card in sorted(BUNDLED_DIR.glob("*.json")) if BUNDLED_DIR.is_dir() else []:
        try:
            arch = json.loads(card.read_text()).get("architecture", "")
        except (OSError, ValueError):
            continue
        if str(arch).startswith("maskrcnn") and card.with_suffix(".safetensors").exists():
            names.append(card.stem)
    return names


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
    write_card(path, dict(card, weights_file=path.name, sha256=sha256(path)))
    return path


def card_digest(card: dict) -> str:
    """sha256 of the card's content without its own seal (key order and spacing do not matter)."""
    body = {k: v for k, v in card.items() if k != CARD_HASH}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def write_card(weights: str | Path, card: dict) -> Path:
    """Seal and write the card of `weights` (a deliberate change to a card goes through here, or `seal`)."""
    return write_json(Path(weights).with_suffix(".json"), dict(card, **{CARD_HASH: card_digest(card)}))


def seal(name_or_path: str | Path) -> Path:
    """Accept a card as it is now (after a deliberate, checked edit): record the weights' and the card's hashes."""
    card, path = read_card(resolve(name_or_path))
    return write_card(path, dict(card, sha256=sha256(path)))


def resolve(name_or_path: str | Path) -> Path:
    """A model path (.safetensors, its .json card, or without suffix), or the name of a bundled model (e.g.
    'chromosome-maskrcnn'). Another suffix (a .pt or .pth file) is refused, never swapped for a .safetensors."""
    p = Path(name_or_path)
    if p.suffix in ("", ".json"):
        p = p.with_suffix(".safetensors")
    elif p.suffix != ".safetensors":
        if not p.with_name(p.name + ".safetensors").exists():
            raise ModelFileError(
                f"{p}: not a napari-karyo model file; give a .safetensors file with its .json card (PyTorch "
                "pickles such as .pt/.pth are not loaded: they can run code)"
            )
        p = p.with_name(p.name + ".safetensors")
    if not p.exists() and not p.is_absolute() and (BUNDLED_DIR / p.name).exists():
        p = BUNDLED_DIR / p.name
    return p


def load_card(name_or_path: str | Path) -> tuple[dict, Path]:
    """(card, weights path) once the card is known unchanged since it was written."""
    card, path = read_card(resolve(name_or_path))
    if card.get(CARD_HASH) is None:
        raise ModelFileError(
            f"{path.with_suffix('.json')}: the card carries no {CARD_HASH} (written by an older napari-karyo or by "
            f"hand); check it, then accept it with `napari-karyo seal-model {path}`"
        )
    if card_digest(card) != card[CARD_HASH]:
        raise ModelFileError(
            f"{path.with_suffix('.json')}: the card was changed after it was written (its {CARD_HASH} does not "
            "match), and settings in it change results. Undo the edit (re-install the package or restore the "
            f"card), or if the change is deliberate, accept it with `napari-karyo seal-model {path}`"
        )
    return card, path


def read_card(path: Path) -> tuple[dict, Path]:
    """(card, weights path) as they are on disk, the seal not checked (for tools that re-seal)."""
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
        raise ModelFileError(f"{card_path}: the model card is not valid JSON ({exc}); restore it") from exc
    if not isinstance(card, dict):
        raise ModelFileError(f"{card_path}: the model card is not a JSON object; restore it")
    return card, path


def load_model(name_or_path: str | Path, expected_arch: str | tuple[str, ...]) -> tuple[dict, dict]:
    """Return (state_dict, card) after checking the sha256 and the architecture."""
    import torch
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
        raise ModelFileError(
            f"{path}: cannot be read as safetensors ({exc}); re-install or re-train it"
        ) from exc
    bad = [k for k, t in state.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise ModelFileError(
            f"{path}: {len(bad)} weight tensors hold NaN or infinite values (e.g. {bad[0]}): "
            "the training diverged; re-train with a lower learning rate or use another model"
        )
    return state, card


def build_checked(build: Callable[[dict], object], card: dict, state: dict, path: str | Path):
    """The network `build(card['config'])` with `state` loaded; a config that does not fit the tensors (an edited
    card, or the card of another model) is a ModelFileError, not a crash deep in torch."""
    try:
        net = build(card["config"])
        net.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        reason = str(exc).splitlines()[0][:200]
        raise ModelFileError(
            f"{path}: the card's config does not fit the weights ({type(exc).__name__}: {reason}); "
            "restore the card that came with this file, or re-train"
        ) from exc
    return net
