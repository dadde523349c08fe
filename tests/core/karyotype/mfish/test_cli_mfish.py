"""`napari-karyo analyze CELL.ome.tif` (colour naming with the shipped kit A model), `--dapi-only`, `train-kit`,
and the refusals: unknown channel names, a kit without a model."""

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_karyo.cli import main
from napari_karyo.core.karyotype.evaluate.metrics import match
from napari_karyo.core.karyotype.infer.review_risk import load_risk_model
from napari_karyo.core.karyotype.mfish.kits import KITS
from napari_karyo.core.results import Chromosome, SpreadResult
from napari_karyo.core.storage.annotations import read_mfish_k
from napari_karyo.core.storage.multichannel import write_ome_cell
from napari_karyo.core.storage.result_files import read_result, write_result

SAMPLES = Path(__file__).resolve().parents[4] / "src/napari_karyo/samples"
CELL = SAMPLES / "mfish_A02_cell.ome.tif"


@pytest.fixture(scope="module")
def analyzed(tmp_path_factory):
    out = tmp_path_factory.mktemp("mfish")
    assert main(["-q", "analyze", str(CELL), "--out", str(out), "--device", "cpu"]) == 0
    return out / "mfish_A02_cell"


def test_cell_is_named_by_colour_and_writes_the_output_contract(analyzed):
    summary = json.loads((analyzed / "karyotype.json").read_text())
    assert "naming: colour, kit A (mfish-kit-A.safetensors)" in summary["model"]
    # segmented by the model the colour rules were chosen with, not the G-band default
    assert summary["model"].startswith("chromosome-maskrcnn-colour.safetensors@")
    assert summary["iscn"].startswith(("44", "45", "46", "47"))
    objects = json.loads((analyzed / "annotations.json").read_text())["objects"]
    assert all(o["colour_vote"] for o in objects)
    # rated by the colour model of the review risk: doubts flag only the risky objects
    assert all(0 <= o["doubt"] <= 1 for o in objects)
    threshold = load_risk_model().thresholds["colour"]
    assert all(o["review"] or o["doubt"] < threshold for o in objects)
    classes = tifffile.imread(analyzed / "colour_classes.tif")
    assert classes.shape == (517, 645) and classes.max() <= 24 and (classes > 0).mean() > 0.03


def test_validation_cell_is_named_right(analyzed):
    """A02 is a validation slide: the shipped model never saw it. The benchmark's figure is ~98%; allow slack."""
    result = read_result(analyzed)
    truth = read_mfish_k(SAMPLES / "mfish_A02_cell_K.tif")
    pairs = match(result.chromosomes, truth)
    assert len(pairs) >= 0.9 * len(truth)
    right = sum(result.chromosomes[i].class_id == truth[j].class_id for i, j, _ in pairs)
    assert right >= 0.9 * len(pairs)


def test_dapi_only_is_said(tmp_path):
    assert main(["-q", "analyze", str(CELL), "--out", str(tmp_path), "--dapi-only", "--device", "cpu"]) == 0
    summary = json.loads((tmp_path / "mfish_A02_cell" / "karyotype.json").read_text())
    assert "naming: DAPI only (as asked)" in summary["model"]
    # the DAPI plane alone is a grey spread: the default segmenter
    assert summary["model"].startswith("chromosome-maskrcnn.safetensors@")
    assert not (tmp_path / "mfish_A02_cell" / "colour_classes.tif").exists()


def small_cell(path, names, seed=0):
    planes = np.random.default_rng(seed).integers(0, 50, (len(names), 64, 80), dtype=np.uint8)
    planes[:, 20:28, 10:60] += 150
    return write_ome_cell(path, planes, names)


def test_kit_without_a_model_says_what_to_do(tmp_path, capsys):
    cell = small_cell(tmp_path / "v.ome.tif", KITS["V"])
    assert main(["-q", "analyze", str(cell), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert (
        "v.ome.tif: probe kit V has no bundled model" in err and "--kit-model" in err and "--dapi-only" in err
    )
    assert not (tmp_path / "out" / "v").exists()


def test_unknown_channel_names_are_refused(tmp_path, capsys):
    cell = small_cell(tmp_path / "u.ome.tif", ("DAPI", "Alexa 488", "Alexa 647"))
    assert main(["-q", "analyze", str(cell), "--out", str(tmp_path / "out")]) == 2
    assert (
        "u.ome.tif: channel names DAPI, Alexa 488, Alexa 647 match no known probe kit"
        in capsys.readouterr().err
    )


def test_train_kit_from_k_maps_and_from_corrected_results(tmp_path, capsys):
    cells = []
    for s in range(2):
        cell = small_cell(tmp_path / f"c{s}.ome.tif", KITS["P"], seed=s)
        k = np.zeros((64, 80), np.uint8)
        k[20:28, 10:35], k[20:28, 35:60] = 3, 7
        tifffile.imwrite(tmp_path / f"c{s}_K.tif", k)
        cells.append((cell, k))
    out = tmp_path / "kit.safetensors"
    assert (
        main(["-q", "train-kit", str(cells[0][0]), str(cells[1][0]), "--out", str(out), "--epochs", "1"]) == 0
    )
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["kit"] == "P" and card["channels"] == list(KITS["P"]) and len(card["sha256"]) == 64
    # a corrected result folder of the first cell trains a model too
    chroms = [Chromosome.from_full_mask(cells[0][1] == c, class_id=c, source="user") for c in (3, 7)]
    folder = write_result(
        SpreadResult((64, 80), chroms, source_path=str(cells[0][0])), tmp_path / "res", "c0"
    )
    assert main(["-q", "train-kit", str(folder), "--out", str(tmp_path / "k2"), "--epochs", "1"]) == 0
    assert "from 1 labelled cells" in capsys.readouterr().out
