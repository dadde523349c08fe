"""The labelling queue: which files of a folder are spreads, their order, statuses from project state files,
progress, stepping with and without accepted images, refresh and errors."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from factories import set_status
from napari_karyo.core.errors import KaryoError
from napari_karyo.core.storage.queue import UNREADABLE, SpreadQueue, natural_key


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


@pytest.fixture
def spreads(tmp_path):
    names = ["spread10.tif", "spread2.png", "Spread1.jpg", "spread3.TIFF", "cell.bmp", "spread20.jpeg"]
    return tmp_path, [touch(tmp_path / n) for n in names]


def test_natural_order(spreads):
    folder, _ = spreads
    q = SpreadQueue(folder)
    assert [p.name for p in q] == [
        "cell.bmp",
        "Spread1.jpg",
        "spread2.png",
        "spread3.TIFF",
        "spread10.tif",
        "spread20.jpeg",
    ]
    assert natural_key("a2b") < natural_key("a10b") < natural_key("B1")
    assert all(p.is_absolute() for p in q) and len(q) == 6 and folder / "spread2.png" in q


def test_skip_rules(tmp_path):
    touch(tmp_path / "s1.tif")
    touch(tmp_path / "notes.txt")
    touch(tmp_path / ".hidden.tif")
    touch(tmp_path / ".cache" / "x.tif")
    touch(tmp_path / "s1.karyo" / "working" / "s1" / "karyogram.png")  # project folder
    touch(tmp_path / "s1.karyo.old-20261122T080000Z" / "x.png")  # an old project set aside
    touch(tmp_path / "results" / "s1" / "karyogram.png")  # result folder (annotations.json beside it)
    touch(tmp_path / "results" / "s1" / "annotations.json")
    touch(tmp_path / "results" / "s1" / "instances.tif")
    # an ADIR M-FISH cell: the DAPI plane is the spread; K map and fluor planes are not
    for letter in "5CDGKOT":
        touch(tmp_path / "A01__XY" / f"A0101XY{letter}.tif")
    for letter in "36CDEIK":  # the P slides' vendor letters
        touch(tmp_path / "P10__31" / f"P100131{letter}.tif")
    for letter in "ABCD":  # a user's own naming is not mistaken for M-FISH planes
        touch(tmp_path / "mine" / f"spread{letter}.png")
    # a lone K map (the bundled sample's naming) is recognised by its class values
    kmap = np.zeros((40, 40), np.uint8)
    kmap[5:20, 5:9] = 7
    kmap[10:12, 5:30] = 255
    tifffile.imwrite(tmp_path / "mfish_V26_K.tif", kmap)
    tifffile.imwrite(tmp_path / "blocK.tif", np.arange(1600, dtype=np.uint16).reshape(40, 40))  # not a K map
    touch(tmp_path / "a" / "b" / "c" / "deep.png")  # 3 levels down: listed
    touch(tmp_path / "a" / "b" / "c" / "d" / "deeper.png")  # 4 levels down: beyond MAX_DEPTH
    q = SpreadQueue(tmp_path)
    assert [str(p.relative_to(tmp_path)) for p in q] == [
        "a/b/c/deep.png",
        "A01__XY/A0101XYD.tif",
        "blocK.tif",
        "mine/spreadA.png",
        "mine/spreadB.png",
        "mine/spreadC.png",
        "mine/spreadD.png",
        "P10__31/P100131D.tif",
        "s1.tif",
    ]


def test_statuses_and_progress(spreads):
    folder, _ = spreads
    q = SpreadQueue(folder)
    assert set(q.statuses().values()) == {"not started"}
    set_status(folder / "spread2.png", "accepted", 4)
    set_status(folder / "spread3.TIFF", "corrected", 2)
    set_status(folder / "spread10.tif", "proposed")
    set_status(folder / "cell.bmp", "accepted")
    assert q.status(folder / "spread2.png") == "accepted"
    assert q.status("spread3.TIFF") == "corrected"  # relative to the queue's folder
    progress = q.progress()
    assert progress.counts == {"not started": 2, "proposed": 1, "corrected": 1, "accepted": 2}
    assert progress.total == 6 and progress.fraction == pytest.approx(2 / 6)
    assert str(progress) == "2/6 accepted · 1 corrected · 1 proposed · 2 not started"


def test_a_damaged_project_does_not_hide_the_queue(spreads):
    folder, _ = spreads
    set_status(folder / "spread2.png", "accepted")
    (folder / "spread3.karyo").mkdir()
    (folder / "spread3.karyo" / "state.json").write_text('{"status": "acc')  # torn by hand
    q = SpreadQueue(folder)
    with pytest.raises(KaryoError, match=r"spread3\.karyo/state\.json"):
        q.status(folder / "spread3.TIFF")
    assert q.statuses()[folder / "spread3.TIFF"] == UNREADABLE
    progress = q.progress()
    assert progress.counts[UNREADABLE] == 1 and progress.total == 6
    assert str(progress) == "1/6 accepted · 0 corrected · 0 proposed · 4 not started · 1 unreadable"
    assert q.next(after=folder / "Spread1.jpg").name == "spread3.TIFF"  # not accepted: Next stops there


def test_watch_paths(spreads):
    folder, _ = spreads
    (folder / "sub").mkdir()
    touch(folder / "sub" / "s.png")
    set_status(folder / "spread2.png", "proposed")
    (folder / "cell.karyo").mkdir()  # a project folder without a state file yet
    q = SpreadQueue(folder)
    assert q.watch_paths() == sorted(
        [
            folder,
            folder / "sub",
            folder / "spread2.karyo",
            folder / "spread2.karyo" / "state.json",
            folder / "cell.karyo",
        ]
    )


def test_next_and_previous(spreads):
    folder, _ = spreads
    q = SpreadQueue(folder)
    set_status(folder / "cell.bmp", "accepted")
    set_status(folder / "spread2.png", "accepted")
    set_status(folder / "spread3.TIFF", "corrected")
    assert q.next().name == "Spread1.jpg"  # from the start, the accepted first one skipped
    assert q.next(skip_accepted=False).name == "cell.bmp"
    assert q.next(after=folder / "Spread1.jpg").name == "spread3.TIFF"  # spread2 accepted: skipped
    assert q.next(after=folder / "Spread1.jpg", skip_accepted=False).name == "spread2.png"
    assert q.next(after=folder / "spread20.jpeg") is None
    assert q.previous(before=folder / "spread3.TIFF").name == "spread2.png"
    assert q.previous(before=folder / "spread3.TIFF", skip_accepted=True).name == "Spread1.jpg"
    assert q.previous(before=folder / "cell.bmp") is None
    assert q.previous().name == "spread20.jpeg"
    # an image moved away still has a place in the order
    (folder / "spread3.TIFF").unlink()
    q.refresh()
    assert q.next(after=folder / "spread3.TIFF").name == "spread10.tif"
    with pytest.raises(KaryoError, match="not in the queue's folder"):
        q.next(after=folder.parent / "elsewhere.tif")


def test_refresh_sees_new_files_and_states(spreads):
    folder, _ = spreads
    q = SpreadQueue(folder)
    assert not q.refresh()
    touch(folder / "spread4.tif")
    assert q.refresh() and [p.name for p in q][4] == "spread4.tif"
    set_status(folder / "spread4.tif", "proposed")
    assert q.status(folder / "spread4.tif") == "proposed"  # statuses are read when asked, never cached
    assert q.progress().counts["proposed"] == 1


def test_errors_name_the_folder(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(KaryoError, match="nowhere: no such folder"):
        SpreadQueue(missing)
    file = touch(tmp_path / "one.tif")
    with pytest.raises(KaryoError, match="one.tif: is not a folder"):
        SpreadQueue(file)
    empty = tmp_path / "empty"
    touch(empty / "readme.txt")
    touch(empty / "x.karyo" / "proposal.png")
    with pytest.raises(KaryoError, match=r"empty: holds no spread images \(looked for \.tif"):
        SpreadQueue(empty)
    q = SpreadQueue(tmp_path)
    file.unlink()
    with pytest.raises(KaryoError, match="holds no spread images"):
        q.refresh()


def test_status_follows_a_real_project(tmp_path):
    from napari_karyo.core.karyotype.edit.project import Project
    from napari_karyo.core.results import Chromosome, SpreadResult

    image = touch(tmp_path / "spread1.tif")
    touch(tmp_path / "spread2.tif")
    mask = np.zeros((40, 40), bool)
    mask[5:30, 10:15] = True
    proposal = SpreadResult(
        (40, 40), [Chromosome.from_full_mask(mask, class_id=1, score=0.9, source="model")]
    )
    q = SpreadQueue(tmp_path)
    project = Project.start(image, proposal)
    assert q.status(image) == "proposed" and [p.name for p in q] == ["spread1.tif", "spread2.tif"]
    project.session.relabel([1], 2)
    project.save()
    assert q.status(image) == "corrected"
    project.session.accept()
    project.save()
    assert q.progress().counts == {"not started": 1, "proposed": 0, "corrected": 0, "accepted": 1}
    assert q.next().name == "spread2.tif"
