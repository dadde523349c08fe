"""`napari-karyo analyze | classify` end to end, and every way a user can hand it something bad."""

import argparse
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_karyo import __version__
from napari_karyo.cli import build_parser, main
from napari_karyo.core.storage.model_files import BUNDLED_DIR

SAMPLE = Path(__file__).resolve().parents[2] / "src/napari_karyo/samples/mfish_V26_dapi.tif"


@pytest.fixture(scope="module")
def analyzed(tmp_path_factory):
    out = tmp_path_factory.mktemp("analyze")
    assert main(["-q", "analyze", str(SAMPLE), "--out", str(out), "--device", "cpu", "--report"]) == 0
    return out / SAMPLE.stem


def test_analyze_sample_writes_the_output_contract(analyzed):
    summary = json.loads((analyzed / "karyotype.json").read_text())
    assert 35 <= summary["count"] <= 60  # a human metaphase: 46 chromosomes, give or take fragments
    labels = tifffile.imread(analyzed / "instances.tif")
    assert labels.dtype == np.uint16 and labels.shape == (517, 645)
    assert len(np.unique(labels)) - 1 == summary["count"]
    doc = json.loads((analyzed / "annotations.json").read_text())
    objects = doc["objects"]
    assert len(objects) == summary["count"]
    assert all(0 <= o["category_id"] <= 24 and 0 < o["score"] <= 1 for o in objects)  # 0: not counted
    assert sum(o["category_id"] > 0 for o in objects) >= 0.9 * len(objects)
    assert all(o["segmentation"]["size"] == [517, 645] for o in objects)
    # cell-level karyotype, cluster types, review flags and measurements travel with every object
    assert re.fullmatch(r"\d{2},[XY?]+(,[+-]\w+)*", summary["iscn"]), summary["iscn"]
    assert {o["cluster_type"] for o in objects} <= {
        "single",
        "touching",
        "overlapping",
        "touching+overlapping",
    }
    assert all(o["length"] > 5 and 0 <= o["centromeric_index"] <= 50 for o in objects)


def test_analyze_writes_karyogram_report_and_measurements(analyzed):
    from PIL import Image

    with Image.open(analyzed / "karyogram.png") as im:
        assert im.size[0] > 1000 and im.size[1] > 1000
    assert (analyzed / "report.pdf").read_bytes()[:5] == b"%PDF-"
    rows = (analyzed / "measurements.csv").read_text().splitlines()
    assert rows[0].startswith("id,class,group,length_px") and len(rows) - 1 == len(
        json.loads((analyzed / "annotations.json").read_text())["objects"]
    )


def test_analyze_finds_the_true_chromosomes_of_the_sample(analyzed):
    """Against the sample's ground-truth K map: most chromosomes found at IoU >= 0.5."""
    from napari_karyo.core.karyotype.evaluate.metrics import spread_scores
    from napari_karyo.core.storage.annotations import read_mfish_k
    from napari_karyo.core.storage.result_files import read_result

    truth = read_mfish_k(SAMPLE.with_name("mfish_V26_K.tif"))
    scores = spread_scores(read_result(analyzed).chromosomes, truth)
    assert scores["found"] >= 0.7 * scores["true"]


def test_classify_crops_to_csv(tmp_path, analyzed):
    from napari_karyo.core.karyotype.infer.preprocess import normalise_intensity
    from napari_karyo.core.storage.result_files import read_result

    norm, _ = normalise_intensity(tifffile.imread(SAMPLE))
    crops = []
    for i, ch in enumerate(read_result(analyzed).chromosomes[:3]):
        r0, c0, r1, c1 = ch.bbox
        path = tmp_path / f"crop{i}.tif"
        tifffile.imwrite(path, (norm[r0:r1, c0:c1] * ch.mask * 255).astype(np.uint8))
        crops.append(str(path))
    assert main(["classify", *crops, "--out", str(tmp_path / "p.csv")]) == 0
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0] == "path,class,score" and len(lines) == 4
    names = {str(i) for i in range(1, 23)} | {"X", "Y"}
    assert all(line.split(",")[1] in names for line in lines[1:])


def test_corrupt_image_fails_cleanly_and_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "spread.tif"
    bad.write_bytes(b"II*\x00garbage")
    out = tmp_path / "out"
    assert main(["-q", "analyze", str(bad), "--out", str(out)]) == 2
    assert "spread.tif" in capsys.readouterr().err
    assert not (out / "spread").exists()


def test_one_bad_file_does_not_stop_the_others(tmp_path, capsys):
    blank = tmp_path / "blank.tif"
    tifffile.imwrite(blank, np.zeros((100, 100), np.uint8))
    out = tmp_path / "out"
    assert main(["-q", "analyze", str(blank), str(SAMPLE), "--out", str(out)]) == 2
    assert "blank" in capsys.readouterr().err
    assert (out / SAMPLE.stem / "karyotype.json").exists()


@pytest.mark.parametrize("damage", ["tamper", "missing", "no_card"])
def test_bad_model_file_is_refused(tmp_path, capsys, damage):
    model = tmp_path / "m.safetensors"
    shutil.copy(BUNDLED_DIR / "chromosome-maskrcnn.safetensors", model)
    shutil.copy(BUNDLED_DIR / "chromosome-maskrcnn.json", tmp_path / "m.json")
    if damage == "tamper":
        data = bytearray(model.read_bytes())
        data[-10] ^= 0xFF
        model.write_bytes(bytes(data))
    elif damage == "missing":
        model.unlink()
    else:
        (tmp_path / "m.json").unlink()
    code = main(["-q", "analyze", str(SAMPLE), "--out", str(tmp_path / "out"), "--model", str(model)])
    err = capsys.readouterr().err
    assert code == 2
    assert {"tamper": "sha256", "missing": "not found", "no_card": "card is missing"}[damage] in err
    assert not (tmp_path / "out" / SAMPLE.stem).exists()


def test_asking_for_a_gpu_that_is_absent(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")  # the GPU path is exercised by the benchmarks on the device
    assert main(["-q", "analyze", str(SAMPLE), "--out", str(tmp_path), "--device", "cuda"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_results_with_user_corrections_are_not_overwritten(tmp_path, analyzed, capsys):
    out = tmp_path / "out"
    shutil.copytree(analyzed, out / SAMPLE.stem)
    doc = json.loads((out / SAMPLE.stem / "annotations.json").read_text())
    doc["objects"][0]["source"] = "user"
    (out / SAMPLE.stem / "annotations.json").write_text(json.dumps(doc))
    assert main(["-q", "analyze", str(SAMPLE), "--out", str(out)]) == 0  # complete: skipped, untouched
    assert "skipped: done before by the same models" in capsys.readouterr().out
    assert main(["-q", "analyze", str(SAMPLE), "--out", str(out), "--redo"]) == 2
    assert "overwrite" in capsys.readouterr().err
    assert json.loads((out / SAMPLE.stem / "annotations.json").read_text())["objects"][0]["source"] == "user"


def test_classify_takes_a_model_name_or_file(tmp_path, analyzed):
    crop = tmp_path / "c.tif"
    tifffile.imwrite(crop, (np.pad(np.ones((40, 8)), 4) * 200).astype(np.uint8))
    for model in ("chromosome-classifier", str(BUNDLED_DIR / "chromosome-classifier.safetensors")):
        assert main(["classify", str(crop), "--out", str(tmp_path / "p.csv"), "--model", model]) == 0
        assert len((tmp_path / "p.csv").read_text().splitlines()) == 2


@pytest.mark.parametrize("command", ["analyze", "classify", "case", "register", "export-training"])
def test_a_bad_output_is_refused_before_any_work(tmp_path, capsys, command):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = {"analyze": blocker, "export-training": blocker}.get(
        command, tmp_path
    )  # a file for folders, and back
    args = {"register": [str(SAMPLE), str(SAMPLE)], "export-training": [str(tmp_path)]}.get(
        command, [str(SAMPLE)]
    )
    assert main(["-q", command, *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and ("not a folder" in err or "is a folder" in err), err
    assert main(["-q", command, *args, "--out", ""]) == 2
    assert "empty" in capsys.readouterr().err


def test_write_errors_are_reported_and_the_batch_goes_on(tmp_path, capsys, monkeypatch):
    from napari_karyo.core.karyotype import batch

    real = batch.write_result

    def disk_full_for_a(result, out, name, **kw):
        if name == "a":
            raise OSError(28, "No space left on device")
        return real(result, out, name, **kw)

    monkeypatch.setattr(batch, "write_result", disk_full_for_a)
    for stem in ("a", "b"):
        shutil.copy(SAMPLE, tmp_path / f"{stem}.tif")
    out = tmp_path / "out"
    assert main(["-q", "analyze", str(tmp_path / "a.tif"), str(tmp_path / "b.tif"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out / 'a'}: cannot write the results (No space left on device)" in err
    assert (out / "b" / "annotations.json").is_file() and not (out / "a").exists()
    assert "Traceback" not in err


def test_bad_devices_and_pickle_models_are_clear_errors(tmp_path, capsys):
    assert main(["-q", "analyze", str(SAMPLE), "--out", str(tmp_path), "--device", "xyz"]) == 2
    assert "unknown device 'xyz'" in capsys.readouterr().err
    (tmp_path / "m.pt").write_bytes(b"x")
    shutil.copy(BUNDLED_DIR / "chromosome-maskrcnn.safetensors", tmp_path / "m.safetensors")
    assert (
        main(["-q", "analyze", str(SAMPLE), "--out", str(tmp_path), "--model", str(tmp_path / "m.pt")]) == 2
    )
    assert "not a napari-karyo model file" in capsys.readouterr().err


def test_case_refuses_malformed_annotations(tmp_path, analyzed, capsys):
    for damage in ("segmentation", "score"):
        folder = tmp_path / damage
        shutil.copytree(analyzed, folder)
        doc = json.loads((folder / "annotations.json").read_text())
        if damage == "segmentation":
            del doc["objects"][3]["segmentation"]
        else:
            doc["objects"][3]["score"] = "high"
        (folder / "annotations.json").write_text(json.dumps(doc))
        assert main(["-q", "case", str(folder), "--out", str(tmp_path / "case.csv")]) == 2
        err = capsys.readouterr().err
        assert "annotations.json: object 4 is malformed" in err and "Traceback" not in err


def test_case_refuses_a_mask_larger_than_its_image(tmp_path, analyzed, capsys):
    folder = tmp_path / "bomb"
    shutil.copytree(analyzed, folder)
    doc = json.loads((folder / "annotations.json").read_text())
    doc["objects"][0]["segmentation"]["size"] = [20000, 20000]
    (folder / "annotations.json").write_text(json.dumps(doc))
    assert main(["-q", "case", str(folder), "--out", str(tmp_path / "case.csv")]) == 2
    assert "mask size [20000, 20000] is not the image's" in capsys.readouterr().err


def test_recover_command(tmp_path, capsys):
    from napari_karyo.core.karyotype.edit.project import Project

    image = tmp_path / "cell.tif"
    image.write_bytes(b"")
    p = Project.start(image, _tiny())
    p.session.relabel([1], 7)
    p.save()
    (p.folder / "journal.jsonl").write_bytes(b"")
    assert main(["-q", "recover", str(image)]) == 0
    assert "restarted from the last checkpoint (1 corrections" in capsys.readouterr().out
    assert Project.open(image).session.result.chromosomes[0].class_id == 7


def _tiny():
    from napari_karyo.core.results import Chromosome, SpreadResult

    m = np.zeros((40, 40), bool)
    m[5:30, 10:15] = True
    return SpreadResult((40, 40), [Chromosome.from_full_mask(m, class_id=1)])


def test_summary_line_is_a_proposal_and_quiet_works_after_the_subcommand(tmp_path, capsys):
    assert main(["analyze", str(SAMPLE), "--out", str(tmp_path), "--device", "cpu", "-q"]) == 0
    out, err = capsys.readouterr()
    assert f"{SAMPLE.name}: proposed: " in out  # never a bare karyotype before a person accepts the cell
    assert "\r" not in err and "%" not in err  # -q after the subcommand silenced the progress bar


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"napari-karyo {__version__}"


def test_every_flag_has_help_text():
    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, [*path, name])
            elif not action.help:
                yield " ".join([*path, *(action.option_strings or [action.dest])])

    assert list(walk(build_parser(), [])) == []
