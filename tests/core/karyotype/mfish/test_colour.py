"""A kit model trained on synthetic colour-coded cells names objects by their colour vote, cuts a touching pair
of two colours apart, keeps a crossing's shared pixels out of the vote, and round-trips through its model file."""

import numpy as np
import pytest

from napari_karyo.core.classes import RELATIVE_LENGTH
from napari_karyo.core.errors import ModelFileError
from napari_karyo.core.jobs import run_to_end
from napari_karyo.core.karyotype.mfish.colour import ColourNamer
from napari_karyo.core.karyotype.mfish.kits import KITS
from napari_karyo.core.karyotype.mfish.pixels import load_kit_model, normalise_planes
from napari_karyo.core.karyotype.mfish.train import KitTrainConfig, LabelledCell, train_kit_steps
from napari_karyo.core.results import Chromosome
from napari_karyo.core.storage.multichannel import CellImage

CLASSES = (1, 2, 3, 5, 7, 9, 12, 16, 18, 20)
SHAPE = (150, 170)


def code(c: int) -> list[bool]:
    return [bool(c >> b & 1) for b in range(5)]  # 24 distinct non-zero 5-bit codes


def synthetic_cell(seed: int, touching: tuple[int, int] | None = None) -> tuple[CellImage, np.ndarray]:
    """Horizontal bars, one per class, length by relative length; `touching` puts two of them end to end."""
    rng = np.random.default_rng(seed)
    planes = rng.normal(20, 3, (6, *SHAPE))
    labels = np.zeros(SHAPE, np.uint8)
    row = 6
    pending = list(CLASSES)
    while pending:
        group = [pending.pop(0)]
        if touching and group[0] == touching[0]:
            pending.remove(touching[1])
            group.append(touching[1])
        col = 5 + int(rng.integers(0, 8))
        for c in group:
            length = int(7 * RELATIVE_LENGTH[c])
            labels[row : row + 7, col : col + length] = c
            col += length
        row += 14
    for c in CLASSES:
        m = labels == c
        gain = rng.uniform(0.8, 1.2)
        for b, on in enumerate(code(c)):
            planes[b][m] += gain * (170 if on else 5)
        planes[5][m] += 180
    names = KITS["A"]
    return CellImage(np.clip(planes, 0, 255).astype(np.uint8), names, path=f"synthetic{seed}"), labels


@pytest.fixture(scope="module")
def kit_model(tmp_path_factory):
    cells = [LabelledCell(*synthetic_cell(s), source=f"s{s}") for s in range(3)]
    cfg = KitTrainConfig(
        out=str(tmp_path_factory.mktemp("kit") / "kit.safetensors"),
        per_cell=4000,
        epochs=8,
        notes={"data": "synthetic"},
    )
    path = run_to_end(train_kit_steps(cfg, cells))
    return load_kit_model(path)


def objects(labels: np.ndarray) -> list[Chromosome]:
    from scipy import ndimage as ndi

    comps, n = ndi.label(labels > 0)
    return [Chromosome.from_full_mask(comps == i) for i in range(1, n + 1)]


def test_card_names_kit_and_channels(kit_model):
    assert kit_model.kit == "A" and kit_model.channels == KITS["A"]
    assert kit_model.card["training"]["data"] == "synthetic"


def test_vote_names_every_object(kit_model):
    cell, labels = synthetic_cell(10)
    namer = ColourNamer(kit_model, normalise_planes(cell.planes), split=False, fill=False)
    chroms = objects(labels)
    probs = namer.predict_spread(np.zeros(SHAPE), chroms)
    truth = [int(np.bincount(labels[c.full_mask(SHAPE)]).argmax()) for c in chroms]
    assert list(probs.argmax(1) + 1) == truth
    assert chroms[0].colour_vote.startswith(f"{truth[0]} ")


def test_touching_pair_of_two_colours_is_split_along_the_boundary(kit_model):
    cell, labels = synthetic_cell(11, touching=(3, 9))
    namer = ColourNamer(kit_model, normalise_planes(cell.planes), fill=False)
    before = objects(labels)
    after = namer.refine(before, SHAPE)
    assert len(before) == len(CLASSES) - 1 and len(after) == len(CLASSES) and namer.split_count == 1
    pieces = [c for c in after if id(c) in namer.notes]
    named = sorted(int(p.argmax()) + 1 for p in namer.predict_spread(np.zeros(SHAPE), pieces))
    assert named == [3, 9]
    for piece, c in zip(sorted(pieces, key=lambda p: p.offset[1]), (3, 9), strict=True):
        assert (labels[piece.full_mask(SHAPE)] == c).mean() > 0.9  # cut at the colour boundary


def test_single_colour_objects_are_left_whole(kit_model):
    cell, labels = synthetic_cell(12)
    namer = ColourNamer(kit_model, normalise_planes(cell.planes), fill=False)
    assert len(namer.refine(objects(labels), SHAPE)) == len(CLASSES) and namer.split_count == 0


def test_crossing_pixels_stay_out_of_the_vote(kit_model):
    cell, labels = synthetic_cell(13)
    namer = ColourNamer(kit_model, normalise_planes(cell.planes), split=False, fill=False)
    chroms = objects(labels)
    a = chroms[0]
    # a second object that shares a third of chromosome a's pixels: the shared pixels carry a's colour only,
    # so the other object's vote must come from the pixels it owns
    other = next(c for c in chroms[1:] if c.area > a.area / 3)
    shared = a.full_mask(SHAPE) & (np.cumsum(a.full_mask(SHAPE), 1) <= a.mask.shape[1] // 3)
    merged = Chromosome.from_full_mask(other.full_mask(SHAPE) | shared)
    probs = namer.vote([a, merged], SHAPE)
    assert probs[1].argmax() == namer.vote([other], SHAPE)[0].argmax()


def test_damaged_kit_model_is_refused(kit_model, tmp_path):
    import shutil

    path = tmp_path / "kit.safetensors"
    shutil.copy(kit_model.path, path)
    shutil.copy(kit_model.path.replace(".safetensors", ".json"), tmp_path / "kit.json")
    path.write_bytes(path.read_bytes()[:-8] + b"12345678")
    with pytest.raises(ModelFileError, match="sha256"):
        load_kit_model(path)
