"""Prompts from a SAM checkpoint (optional backend): the loader reads the network's size from the file, the
prompts answer like the bundled Prompter's, and bad files get a clear error. On a tiny randomly initialised SAM
built here (never downloaded weights): its masks mean nothing, so the tests check shapes, clicks and errors."""

from __future__ import annotations

import numpy as np
import pytest

from factories import TINY_SAM, rods_image, tiny_sam_checkpoint
from napari_karyo.core.errors import ModelFileError
from napari_karyo.core.karyotype.infer.sam_prompt import config_of
from napari_karyo.prompt import PromptError, SamPrompter

torch = pytest.importorskip("torch")
pytest.importorskip("segment_anything")

SHAPE = (120, 160)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_sam_checkpoint(tmp_path_factory.mktemp("sam") / "tiny_sam.pth")


@pytest.fixture(scope="module")
def prompter(checkpoint):
    image, _ = rods_image(SHAPE, [((20, 30), (90, 60)), ((30, 100), (100, 130))])
    return SamPrompter(image, checkpoint, device="cpu")


def test_the_networks_size_is_read_from_its_weights(checkpoint):
    state = torch.load(checkpoint, weights_only=True)
    assert config_of(state) == TINY_SAM


def test_micro_sam_trainer_checkpoints_load_too(checkpoint, tmp_path):
    state = torch.load(checkpoint, weights_only=True)
    wrapped = tmp_path / "micro_sam.pt"
    torch.save({"model_state": {f"sam.{k}": v for k, v in state.items()}, "epoch": 3}, wrapped)
    image, _ = rods_image(SHAPE, [((20, 30), (90, 60))])
    assert SamPrompter(image, wrapped, device="cpu").shape == SHAPE


def test_sam_prompts_give_full_image_masks_holding_the_clicks(prompter):
    box = prompter.box(10, 20, 100, 70)
    assert box.dtype == bool and box.shape == SHAPE and box.any()
    alternatives = prompter.alternatives(50, 45)
    assert alternatives and all(m.shape == SHAPE and m[50, 45] for m in alternatives)
    first, again = (
        prompter.point(50, 45),
        prompter.point(51, 45),
    )  # the same place again: the next alternative
    assert np.array_equal(first, alternatives[0])
    assert np.array_equal(again, alternatives[1 % len(alternatives)])
    assert prompter.refine([(50, 45)], [(60, 110)]).shape == SHAPE
    a, b = prompter.separate([(50, 45), (60, 115)])
    assert a.shape == b.shape == SHAPE


@pytest.mark.parametrize(
    "call",
    [
        lambda p: p.box(50, 50, 40, 60),  # empty
        lambda p: p.point(-1, 5),  # outside
        lambda p: p.separate([(50, 45)]),  # one chromosome only
        lambda p: p.refine([], []),  # no positive click
    ],
)
def test_bad_sam_prompts_raise_a_clear_error(prompter, call):
    with pytest.raises(PromptError):
        call(prompter)


def test_bad_checkpoints_are_refused_with_the_files_name(checkpoint, tmp_path):
    image, _ = rods_image(SHAPE, [((20, 30), (90, 60))])
    damaged = tmp_path / "damaged.pth"
    damaged.write_bytes(checkpoint.read_bytes()[:5000])
    not_sam = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3, 3)}, not_sam)
    code = tmp_path / "code.pth"
    torch.save({"model": object()}, code)  # would need unpickling code: refused, never run
    for path in (tmp_path / "missing.pth", damaged, not_sam, code):
        with pytest.raises(ModelFileError, match=path.name):
            SamPrompter(image, path, device="cpu")
