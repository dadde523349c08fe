"""Batch analysis: manifest rows for every input, failures isolated, same stems kept apart, the same file once,
resume on complete outputs of the same models, non-spreads flagged, and the same results from a local pool and a
dask.distributed cluster (scheduler and two workers on 127.0.0.1) as from one process."""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_karyo.core.karyotype import batch
from napari_karyo.core.karyotype.batch import MANIFEST, Options, run_batch
from napari_karyo.core.loopback_cluster import loopback_cluster

SAMPLE = Path(__file__).resolve().parents[3] / "src/napari_karyo/samples/mfish_V26_dapi.tif"


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("archive")
    (root / "a").mkdir()
    (root / "b").mkdir()
    shutil.copy(SAMPLE, root / "a" / "cell.tif")
    tifffile.imwrite(root / "b" / "cell.tif", np.fliplr(tifffile.imread(SAMPLE)))  # same stem, other spread
    (root / "a" / "broken.tif").write_bytes(b"II*\x00garbage")
    noise = np.random.default_rng(0).integers(0, 255, (256, 256)).astype(np.uint8)
    tifffile.imwrite(root / "a" / "noise.tif", noise)
    (root / "list.txt").write_text("b/cell.tif\n")
    return root


@pytest.fixture(scope="module")
def first(archive):
    out = archive / "out"
    items = [str(archive / "a"), str(archive / "list.txt"), str(archive / "a" / "cell.tif")]
    rows, manifest = run_batch(items, Options(out=str(out), threads=1))
    return items, out, rows, manifest


def by_name(rows):
    return {f"{Path(r['path']).parent.name}/{Path(r['path']).name}": r for r in rows}


def test_every_input_is_a_manifest_row(first):
    _, out, rows, manifest = first
    assert manifest == out / MANIFEST
    with open(manifest, newline="") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == [
        "path",
        "output",
        "status",
        "count",
        "iscn",
        "review",
        "warnings",
        "seconds",
        "error",
    ]
    assert len(table) == 5
    statuses = sorted((Path(r["path"]).name, r["status"]) for r in table)
    assert statuses == [
        ("broken.tif", "failed"),
        ("cell.tif", "ok"),
        ("cell.tif", "ok"),
        ("cell.tif", "skipped"),
        ("noise.tif", "ok"),
    ]
    rows = by_name(rows)
    assert "broken.tif: cannot be read as an image" in rows["a/broken.tif"]["error"]


def test_same_stems_get_their_own_folders_and_the_same_file_is_analysed_once(first):
    _, out, rows, _ = first
    cells = [r for r in rows if Path(r["path"]).name == "cell.tif" and r["status"] == "ok"]
    names = {r["output"] for r in cells}
    assert len(names) == 2 and all(n.startswith("cell-") for n in names)
    sources = {json.loads((out / n / "annotations.json").read_text())["source_path"] for n in names}
    assert len(sources) == 2
    dup = next(r for r in rows if r["status"] == "skipped")
    assert "the same file as" in dup["error"]


def test_non_spreads_get_no_karyotype_and_a_warning(first):
    noise = by_name(first[2])["a/noise.tif"]
    assert noise["iscn"] == "" and "too few for a metaphase spread" in noise["warnings"]
    doc = json.loads((first[1] / noise["output"] / "karyotype.json").read_text())
    assert doc["iscn"] == "" and doc["warnings"]


def test_a_rerun_skips_complete_outputs_of_the_same_models(first, tmp_path):
    items, out, rows, _ = first
    t0 = time.perf_counter()
    again, _ = run_batch(items, Options(out=str(out), threads=1))
    assert time.perf_counter() - t0 < 20  # nothing analysed again (one spread takes seconds)
    assert sorted(r["status"] for r in again) == ["failed", "skipped", "skipped", "skipped", "skipped"]
    assert all(
        r["error"] == "done before by the same models"
        for r in again
        if r["status"] == "skipped" and "same file" not in r["error"]
    )
    ok = next(r for r in rows if r["status"] == "ok" and r["iscn"])
    other = tmp_path / "out"
    alone = other / Path(ok["path"]).stem  # its folder when analysed on its own
    shutil.copytree(out / ok["output"], alone)
    doc = json.loads((alone / "annotations.json").read_text())
    assert " | review: review-risk.safetensors@" in doc["model"]  # the result says which model flagged it
    doc["model"] = doc["model"].split(" | ")[0] + " | review: review-risk.safetensors@000000000000"
    (alone / "annotations.json").write_text(json.dumps(doc))
    again, _ = run_batch([ok["path"]], Options(out=str(other), threads=1))
    assert again[0]["status"] == "skipped"  # other review flags alone: counts and names are the same
    doc["model"] = doc["model"].replace("@", "@0")  # made by other weights: analysed again
    (alone / "annotations.json").write_text(json.dumps(doc))
    again, _ = run_batch([ok["path"]], Options(out=str(other), threads=1))
    assert again[0]["status"] == "ok"


def test_hitting_the_detection_cap_is_a_warning(tmp_path, monkeypatch):
    from napari_karyo.core.karyotype.infer.predict import load_segmenter

    seg = load_segmenter(device="cpu")
    monkeypatch.setattr(seg.model.roi_heads, "detections_per_img", 8)
    rows, _ = run_batch([str(SAMPLE)], Options(out=str(tmp_path), device="cpu", threads=1))
    assert rows[0]["status"] == "ok" and "limit of 8 objects was reached" in rows[0]["warnings"]
    assert rows[0]["iscn"] == "" and 0 < rows[0]["review"] == rows[0]["count"] <= 8  # every object flagged


def _same_outputs(a: Path, b: Path, names) -> None:
    for name in names:
        x, y = (json.loads((d / name / "annotations.json").read_text()) for d in (a, b))
        for doc in (x, y):
            doc.pop("seconds"), doc.pop("device")
        assert x == y, name
        assert (a / name / "instances.tif").read_bytes() == (b / name / "instances.tif").read_bytes()


def _cells(first):
    """The two spreads of the archive (same stem, two folders) and their single-process output names."""
    _, out, rows, _ = first
    cells = [r for r in rows if r["status"] == "ok" and r["iscn"]]
    assert len(cells) == 2
    return [r["path"] for r in cells], out, [r["output"] for r in cells]


def test_a_local_pool_gives_the_single_process_results(first, tmp_path, monkeypatch):
    paths, out, names = _cells(first)
    monkeypatch.setattr(batch, "SPREADS_PER_WORKER", 1)  # fresh workers after every 2 spreads: nothing lost
    noise = str(Path(paths[0]).parent / "noise.tif")
    pooled, _ = run_batch([*paths, noise], Options(out=str(tmp_path), threads=1), workers=2)
    assert [r["status"] for r in pooled] == ["ok", "ok", "ok"] and pooled[2]["path"] == noise
    _same_outputs(out, tmp_path, names)


def test_spreads_in_one_detector_pass_give_the_one_at_a_time_results(first, tmp_path, monkeypatch):
    """A GPU's batch, run on the CPU: the two spreads of one size go through the detector together (one pass),
    the unreadable file is still its own failed row, the rest is unchanged."""
    from napari_karyo.core.karyotype.infer import predict

    items, out, rows, _ = first
    passes = []
    segment_many = predict.segment_many
    monkeypatch.setattr(
        predict, "segment_many", lambda seg, xs, s: passes.append(len(xs)) or segment_many(seg, xs, s)
    )
    batched, _ = run_batch(items, Options(out=str(tmp_path), threads=1, spreads_per_pass=4))
    assert [(r["path"], r["status"], r["error"]) for r in batched] == [
        (r["path"], r["status"], r["error"]) for r in rows
    ]
    assert 2 in passes  # the two spreads of the sample's size, in one pass
    _same_outputs(out, tmp_path, _cells(first)[2])


@pytest.fixture
def cluster(tmp_path):
    """A dask scheduler and two single-threaded workers on the loopback address, started with dask's own
    commands; the workers import this checkout (PYTHONPATH)."""
    with loopback_cluster(tmp_path, workers=2) as (address, _):
        yield address


def test_a_dask_cluster_gives_the_single_process_results(first, cluster, tmp_path):
    paths, out, names = _cells(first)
    remote, _ = run_batch(paths, Options(out=str(tmp_path), threads=1), scheduler=cluster)
    assert [r["status"] for r in remote] == ["ok", "ok"]
    _same_outputs(out, tmp_path, names)


def test_batch_processes_run_without_the_onednn_primitive_cache_unless_the_user_set_one(first, monkeypatch):
    """oneDNN's cache keeps each convolution per input shape: a worker grew ~15 MB per spread without this."""
    items, _, _, _ = first
    job = batch.Job(items[2], "cell")
    monkeypatch.delenv(batch.PRIMITIVE_CACHE, raising=False)
    monkeypatch.setattr(batch, "_analyze", lambda *a: (_ for _ in ()).throw(batch.KaryoError("stop")))
    assert batch.analyze_one(job, Options(out="unused"))["status"] == "failed"
    assert os.environ[batch.PRIMITIVE_CACHE] == "0"
    monkeypatch.setenv(batch.PRIMITIVE_CACHE, "64")
    batch.analyze_one(job, Options(out="unused"))
    assert os.environ[batch.PRIMITIVE_CACHE] == "64"


def test_a_rerun_skips_an_mfish_cell_named_by_its_kit_model_but_not_with_other_naming(tmp_path):
    cell = SAMPLE.with_name("mfish_A02_cell.ome.tif")  # kit A planes: its own segmenter and kit model
    first, _ = run_batch([str(cell)], Options(out=str(tmp_path), threads=1))
    assert first[0]["status"] == "ok"
    doc = json.loads((tmp_path / first[0]["output"] / "annotations.json").read_text())
    assert "mfish-kit-A" in doc["model"] and "| naming: colour, kit A" in doc["model"]
    again, _ = run_batch([str(cell)], Options(out=str(tmp_path), threads=1))
    assert again[0]["status"] == "skipped" and again[0]["count"] == first[0]["count"]
    named_by_dapi, _ = run_batch([str(cell)], Options(out=str(tmp_path), threads=1, dapi_only=True))
    assert named_by_dapi[0]["status"] == "ok"  # other models: analysed again
    unknown, _ = run_batch([str(cell)], Options(out=str(tmp_path), threads=1, kit="V"))
    assert unknown[0]["status"] == "failed" and "kit V" in unknown[0]["error"]
