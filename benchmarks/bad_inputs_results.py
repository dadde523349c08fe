"""The second half of the bad-input corpus (`bad_inputs_corpus`): damaged or edited model files, crops, result
folders, annotations and project journals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from bad_inputs_corpus import SAMPLE, Case


def model_cases(root: Path) -> list[Case]:
    from napari_karyo.core.storage.model_files import BUNDLED_DIR, load_model, save_model

    d = root / "models"
    d.mkdir()

    def copy(name: str, to: str) -> Path:
        for ext in (".safetensors", ".json"):
            shutil.copy(BUNDLED_DIR / f"{name}{ext}", d / f"{to}{ext}")
        return d / f"{to}.safetensors"

    def edit_card(path: Path, **changes) -> None:
        card = json.loads(path.with_suffix(".json").read_text())
        path.with_suffix(".json").write_text(json.dumps({**card, **changes}))

    tampered = copy("chromosome-classifier", "tampered")
    data = bytearray(tampered.read_bytes())
    data[-10] ^= 0xFF
    tampered.write_bytes(bytes(data))
    threshold = copy("chromosome-classifier", "threshold")
    edit_card(threshold, score_threshold=0.1)
    notjson = copy("chromosome-classifier", "notjson")
    notjson.with_suffix(".json").write_text("{")
    nocard = copy("chromosome-classifier", "nocard")
    nocard.with_suffix(".json").unlink()
    config = copy("chromosome-classifier", "config")
    edit_card(config, config={"width": 7})
    state, card = load_model("chromosome-classifier", card_arch("chromosome-classifier"))
    state = {k: v.clone() for k, v in state.items()}
    next(v for v in state.values() if v.is_floating_point()).fill_(float("nan"))
    nan = save_model(state, card, d / "nan")
    (d / "m.safetensors").write_bytes(b"")
    (d / "m.pt").write_bytes(b"pickle")
    s, out = str(SAMPLE), str(root / "out-models")
    cases = [
        Case(f"model: {p.stem}", ["analyze", s, "--out", out, "--classifier", str(p)], "error", p.stem)
        for p in (tampered, threshold, notjson, config, nan)
    ]
    return cases + [
        Case(
            "model: card missing",
            ["analyze", s, "--out", out, "--classifier", str(nocard)],
            "error",
            "nocard.json",
        ),
        Case("model: .pt given", ["analyze", s, "--out", out, "--model", str(d / "m.pt")], "error", "m.pt"),
        Case(
            "model: missing",
            ["analyze", s, "--out", out, "--model", str(d / "gone.safetensors")],
            "error",
            "gone",
        ),
        Case(
            "model: wrong architecture",
            ["analyze", s, "--out", out, "--model", str(BUNDLED_DIR / "chromosome-classifier.safetensors")],
            "error",
            "chromosome-classifier",
        ),
        Case("device: xyz", ["analyze", s, "--out", out, "--device", "xyz"], "error", "xyz"),
        Case("device: cuda:7", ["analyze", s, "--out", out, "--device", "cuda:7"], "error", "cuda"),
    ]


def card_arch(name: str) -> str:
    from napari_karyo.core.storage.model_files import load_card

    return load_card(name)[0]["architecture"]


def crop_cases(root: Path) -> list[Case]:
    d = root / "crops"
    d.mkdir()
    crop = np.pad(np.full((40, 8), 200, np.uint8), 4)
    tifffile.imwrite(d / "crop.tif", crop)
    Image.new("L", (20000, 20000)).save(d / "huge.png")
    csv = root / "crops.csv"

    def classified(_):
        return len(csv.read_text().splitlines()) == 2

    return [
        Case(
            "classify --model NAME",
            ["classify", str(d / "crop.tif"), "--out", str(csv), "--model", "chromosome-classifier"],
            "ok",
            check=classified,
        ),
        Case(
            "classify: a 20000x20000 crop",
            ["classify", str(d / "huge.png"), "--out", str(csv)],
            "error",
            "huge.png",
        ),
        Case(
            "classify: a missing crop",
            ["classify", str(d / "gone.tif"), "--out", str(csv)],
            "error",
            "gone.tif",
        ),
    ]


def result_cases(root: Path, analysed: Path) -> list[Case]:
    """case / export-training on damaged result and project folders (`analysed`: a result folder of SAMPLE)."""
    cases = []
    damages = {
        "no segmentation": lambda doc: doc["objects"][2].pop("segmentation"),
        "non-numeric score": lambda doc: doc["objects"][2].update(score="high"),
        "RLE of 20000x20000": lambda doc: doc["objects"][0]["segmentation"].update(size=[20000, 20000]),
        "shape of 100000x100000": lambda doc: doc.update(image_shape=[100000, 100000]),
        "image_shape text": lambda doc: doc.update(image_shape="big"),
    }
    for i, (what, damage) in enumerate(damages.items()):
        folder = root / "results" / f"r{i}"
        shutil.copytree(analysed, folder)
        doc = json.loads((folder / "annotations.json").read_text())
        damage(doc)
        (folder / "annotations.json").write_text(json.dumps(doc))
        cases.append(
            Case(
                f"case: {what}",
                ["case", str(folder), "--out", str(root / "case.csv")],
                "error",
                "annotations.json",
            )
        )
    bad = root / "results" / "notjson"
    shutil.copytree(analysed, bad)
    (bad / "annotations.json").write_text("{")
    cases.append(
        Case(
            "case: annotations not JSON",
            ["case", str(bad), "--out", str(root / "case.csv")],
            "error",
            "annotations.json",
        )
    )
    empty = root / "results" / "empty"
    empty.mkdir()
    cases.append(
        Case("case: an empty folder", ["case", str(empty), "--out", str(root / "case.csv")], "error", "empty")
    )
    for i, source in enumerate(("/etc/passwd", str(root / "images" / "tiny.tif"), str(root / "variants"))):
        folder = root / "results" / f"src{i}"
        shutil.copytree(analysed, folder)
        doc = json.loads((folder / "annotations.json").read_text())
        doc.update(source_path=source, status="accepted")
        (folder / "annotations.json").write_text(json.dumps(doc))
        cases.append(
            Case(
                f"export-training: source_path {Path(source).name}",
                ["export-training", str(folder), "--out", str(root / f"set{i}")],
                "error",
                Path(source).name,
            )
        )
    return cases + journal_cases(root, analysed)


def journal_cases(root: Path, analysed: Path) -> list[Case]:
    """Damaged project journals, read by export-training (and `recover` where there is nothing to recover)."""
    from napari_karyo.core.karyotype.edit.project import Project
    from napari_karyo.core.storage.result_files import read_result

    cases = []
    for damage in ("emptied", "duplicated", "dropped", "changed"):
        image = root / "projects" / damage / "cell.tif"
        image.parent.mkdir(parents=True)
        shutil.copy(SAMPLE, image)
        p = Project.start(image, read_result(analysed))
        for k in range(25):
            p.session.relabel([1 + k % 5], 1 + k % 20)
        lines = p.journal_path.read_bytes().splitlines(keepends=True)
        lines = {
            "emptied": [],
            "duplicated": lines + lines[-1:],
            "dropped": lines[:3] + lines[4:],
            "changed": [lines[0].replace(b'"class_id":1}', b'"class_id":2}')] + lines[1:],
        }[damage]
        p.journal_path.write_bytes(b"".join(lines))
        cases.append(
            Case(
                f"journal: {damage}",
                ["export-training", str(p.folder), "--out", str(root / "jset")],
                "error",
                "journal.jsonl",
            )
        )
    cases.append(Case("recover: no project", ["recover", str(SAMPLE)], "error", "no checkpoint"))
    return cases
