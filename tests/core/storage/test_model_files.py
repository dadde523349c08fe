"""Model files: the card is sealed with the weights, edits are refused until deliberately sealed, configs that do
not fit the tensors, non-finite weights and pickle suffixes are clear ModelFileErrors."""

from __future__ import annotations

import json
import shutil

import pytest

from napari_karyo.core.errors import ModelFileError
from napari_karyo.core.storage.model_files import BUNDLED_DIR, CARD_HASH, load_card, resolve, save_model, seal


@pytest.fixture
def model(tmp_path):
    """A copy of the bundled classifier (small) in a temporary folder."""
    for ext in (".safetensors", ".json"):
        shutil.copyfile(BUNDLED_DIR / f"chromosome-classifier{ext}", tmp_path / f"m{ext}")
    return tmp_path / "m.safetensors"


def edit_card(model, **changes):
    card = json.loads(model.with_suffix(".json").read_text())
    card.update(changes)
    model.with_suffix(".json").write_text(json.dumps(card))


def test_bundled_cards_are_sealed():
    for name in ("chromosome-maskrcnn", "chromosome-classifier", "cluster-types"):
        card, _ = load_card(name)
        assert card[CARD_HASH]


def test_an_edited_card_is_refused_until_sealed(model):
    from napari_karyo.core.karyotype.infer.classifier import load_classifier

    edit_card(model, note="threshold changed by hand")
    with pytest.raises(ModelFileError, match=r"card was changed after it was written.*seal-model"):
        load_classifier(model, device="cpu")
    seal(model)
    assert load_classifier(model, device="cpu").card["note"] == "threshold changed by hand"


def test_a_card_without_seal_is_refused(model):
    card = json.loads(model.with_suffix(".json").read_text())
    del card[CARD_HASH]
    model.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelFileError, match=f"carries no {CARD_HASH}"):
        load_card(model)


def test_a_config_that_does_not_fit_the_weights_is_a_model_file_error(model):
    from napari_karyo.core.karyotype.infer.classifier import load_classifier

    card = json.loads(model.with_suffix(".json").read_text())
    edit_card(model, config=dict(card["config"], width=card["config"].get("width", 32) * 2))
    seal(model)  # even a deliberately sealed card must fit its tensors
    with pytest.raises(ModelFileError, match="config does not fit the weights"):
        load_classifier(model, device="cpu")
    edit_card(model, config=dict(card["config"], bogus=1))
    seal(model)
    with pytest.raises(ModelFileError, match=r"config does not fit the weights \(TypeError"):
        load_classifier(model, device="cpu")


def test_a_pickle_suffix_is_refused_not_swapped(model):
    pt = model.with_suffix(".pt")
    pt.write_bytes(b"not loaded")
    with pytest.raises(ModelFileError, match=r"m\.pt: not a napari-karyo model file"):
        resolve(pt)
    assert resolve(model.with_suffix(".json")) == model and resolve(model.with_suffix("")) == model


def test_non_finite_weights_are_refused(tmp_path):
    import torch

    from napari_karyo.core.storage.model_files import load_model

    path = save_model(
        {"w": torch.tensor([1.0, float("nan")])}, {"architecture": "x", "config": {}}, tmp_path / "n"
    )
    with pytest.raises(ModelFileError, match="NaN or infinite"):
        load_model(path, "x")
