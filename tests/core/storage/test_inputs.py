"""Batch inputs and output folders: folders, globs and list files; the same file twice; stems that collide or are
not folder names; the output folder checked before any work; folders left by killed runs cleaned."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from napari_karyo.core.errors import KaryoError
from napari_karyo.core.karyotype.report.exports import write_karyotype_files
from napari_karyo.core.results import SpreadResult
from napari_karyo.core.storage.inputs import (
    check_out_dir,
    check_out_file,
    clean_stale_parts,
    expand_inputs,
    output_names,
    part_prefix,
    split_duplicates,
)
from napari_karyo.core.storage.result_files import write_result


@pytest.fixture
def archive(tmp_path):
    for rel in ("a/x.tif", "a/y.png", "a/notes.txt", "b/x.tif", "b/deep/z.tif"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    return tmp_path


def test_folders_globs_and_list_files(archive):
    assert expand_inputs([str(archive / "a")]) == [archive / "a/x.tif", archive / "a/y.png"]
    assert expand_inputs([str(archive / "b/**/*.tif")]) == [archive / "b/deep/z.tif", archive / "b/x.tif"]
    listing = archive / "list.txt"
    listing.write_text("# spreads of case b\nb/x.tif\n\n" + str(archive / "a/y.png") + "  # absolute\n")
    assert expand_inputs([str(listing)]) == [archive / "b/x.tif", archive / "a/y.png"]
    assert expand_inputs([str(archive / "missing.tif")]) == [archive / "missing.tif"]  # reported by the batch
    with pytest.raises(KaryoError, match="no images match"):
        expand_inputs([str(archive / "*.jpg")])
    with pytest.raises(KaryoError, match="holds no images"):
        expand_inputs([str(_empty(archive))])


def _empty(root):
    (root / "empty").mkdir()
    return root / "empty"


def test_the_same_file_twice_is_kept_once(archive):
    link = archive / "link.tif"
    link.symlink_to(archive / "a/x.tif")
    paths = [archive / "a/x.tif", archive / "a/../a/x.tif", link, archive / "b/x.tif"]
    unique, dupes = split_duplicates(paths)
    assert unique == [archive / "a/x.tif", archive / "b/x.tif"]
    assert set(dupes) == {archive / "a/../a/x.tif", link}


def test_output_names_never_collide_and_are_folder_names(archive):
    names = output_names([archive / "a/x.tif", archive / "b/x.tif", archive / "a/y.png", archive / "..tif"])
    assert names[archive / "a/y.png"] == "y"
    assert names[archive / "a/x.tif"] != names[archive / "b/x.tif"]
    assert all(n.startswith("x-") for p, n in names.items() if p.stem == "x")
    assert names[archive / "..tif"] == "image"
    assert output_names([archive / "a/x.tif"]) == {archive / "a/x.tif": "x"}


@pytest.mark.parametrize("stem", [".", "..", "", "a/b"])
def test_write_result_refuses_names_that_are_not_one_folder(tmp_path, stem):
    with pytest.raises(KaryoError, match="not usable as a folder name"):
        write_result(SpreadResult((40, 40), []), tmp_path / "out", stem)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_output_folder_is_checked_before_any_work(tmp_path):
    with pytest.raises(KaryoError, match="empty"):
        check_out_dir("")
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(KaryoError, match="exists and is not a folder"):
        check_out_dir(afile)
    with pytest.raises(KaryoError, match="is a folder"):
        check_out_file(tmp_path)
    assert check_out_dir(tmp_path / "new" / "deeper").is_dir()
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(KaryoError, match="cannot write here"):
            check_out_dir(locked)


def test_parts_left_by_killed_runs_are_cleaned_but_live_ones_kept(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    mine = tmp_path / f"{part_prefix('x')}abc.part"
    mine.mkdir()
    stale = tmp_path / (part_prefix("y").replace(f"-{os.getpid()}.", f"-{int(dead.stdout)}.") + "abc.part")
    stale.mkdir()
    old = tmp_path / ".z.somewhere-1.abc.part"
    old.mkdir()
    os.utime(old, (0, 0))
    assert clean_stale_parts(tmp_path) == 2
    assert mine.is_dir() and not stale.exists() and not old.exists()


def test_a_result_without_objects_has_a_measurements_header(tmp_path):
    image = np.random.default_rng(0).integers(0, 255, (48, 48)).astype(np.uint8)
    result = SpreadResult((48, 48), [])
    folder = write_result(result, tmp_path, "empty", extras=lambda d: write_karyotype_files(d, image, result))
    assert (folder / "measurements.csv").read_text().startswith("id,class,group,length_px")
