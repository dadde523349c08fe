"""The project folder beside an image: journal, checkpoints, status, recovery after a hard kill, damaged files."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_karyo.core.errors import KaryoError
from napari_karyo.core.karyotype.edit import project as project_mod
from napari_karyo.core.karyotype.edit.project import Project
from napari_karyo.core.karyotype.edit.session import EditSession
from napari_karyo.core.results import Chromosome, SpreadResult
from napari_karyo.core.storage.project_files import project_dir, read_status
from napari_karyo.core.storage.result_files import read_result
from napari_karyo.core.storage.settings import change_setting

SHAPE = (60, 90)


def edit(s: EditSession) -> None:
    """The edits of the recovery tests: run in a subprocess that is killed, and again in the test process."""
    s.split_at(1, (30, 37))
    s.relabel([2], 9)
    m = np.zeros(SHAPE, bool)
    m[2:9, 60:70] = True
    s.draw(m, 4)
    s.swap(1, 3)
    s.join([1, 4])
    s.undo()
    m = np.zeros(SHAPE, bool)
    m[5:25, 75:81] = True
    s.redraw(2, m)


def proposal() -> SpreadResult:
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    dumbbell = ((yy - 30) ** 2 + (xx - 20) ** 2 <= 81) | ((yy - 30) ** 2 + (xx - 55) ** 2 <= 81)
    dumbbell |= (abs(yy - 30) <= 2) & (xx >= 20) & (xx <= 55)
    bar = np.zeros(SHAPE, bool)
    bar[5:55, 75:81] = True
    chs = [
        Chromosome.from_full_mask(dumbbell, class_id=3, score=0.75, probs=np.linspace(0, 1, 24)),
        Chromosome.from_full_mask(bar, class_id=5, score=0.5, review="low score", length=30.0),
    ]
    return SpreadResult(SHAPE, chs, source_path="cell.tif", model="test", device="cpu", seconds=0.5)


def assert_same(a: SpreadResult, b: SpreadResult) -> None:
    """Classes, masks (in image pixels), every per-object field, status and corrections."""
    assert (a.image_shape, a.count, a.status, a.corrections) == (
        b.image_shape,
        b.count,
        b.status,
        b.corrections,
    )
    for x, y in zip(a.chromosomes, b.chromosomes, strict=True):
        assert np.array_equal(x.full_mask(a.image_shape), y.full_mask(b.image_shape))
        assert (x.class_id, x.class_score, x.score, x.source, x.edited) == (
            y.class_id,
            y.class_score,
            y.score,
            y.source,
            y.edited,
        )
        for name in x.extra_fields():
            u, v = getattr(x, name), getattr(y, name)
            assert u == v or (isinstance(u, float) and math.isnan(u) and math.isnan(v)), name
        assert (x.probs is None) == (y.probs is None)
        if x.probs is not None:
            assert np.array_equal(x.probs, y.probs)


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "cell 1.tif"
    path.write_bytes(b"")  # the project only needs the image's name and folder
    return path


def journal(image) -> list[dict]:
    return [json.loads(line) for line in (project_dir(image) / "journal.jsonl").read_text().splitlines()]


def state(image) -> dict:
    return json.loads((project_dir(image) / "state.json").read_text())


def test_projects_go_to_the_user_folder_unless_the_user_chose_beside(image, user_folders_in_tmp):
    folder = Project.start(image, proposal()).folder
    assert folder.parent == user_folders_in_tmp and folder.name.startswith("cell 1-")
    assert not any(p.name.endswith(".karyo") for p in image.parent.iterdir())  # nothing beside the image
    other = image.parent / "elsewhere" / image.name  # the same file name in another folder: its own project
    assert project_dir(other) != folder
    change_setting("projects_beside_images", True)
    assert project_dir(other) == other.parent / "cell 1.karyo"


def test_a_project_already_beside_the_image_is_kept_there(image):
    beside = image.parent / "cell 1.karyo"
    beside.mkdir()
    assert project_dir(image) == beside
    assert Project.start(image, proposal(), overwrite=True).folder == beside


def test_start_writes_the_folder(image):
    change_setting("projects_beside_images", True)
    assert project_dir(image) == image.parent / "cell 1.karyo"
    assert read_status(image) == "not started" and Project.open(image) is None
    p = Project.start(image, proposal())
    folder = project_dir(image)
    assert sorted(x.name for x in folder.iterdir()) == ["journal.jsonl", "proposal", "state.json", "working"]
    assert_same(read_result(folder / "proposal"), proposal())
    assert_same(read_result(folder / "working"), proposal())
    assert read_status(image) == "proposed" and journal(image) == []
    assert state(image)["image"] == str(image) and state(image)["corrections"] == 0
    assert p.session.result.count == 2


def test_edits_are_journalled_and_the_status_follows(image):
    p = Project.start(image, proposal())
    p.session.relabel([2], 7)
    assert read_status(image) == "corrected"  # written when the status changes, not only on save
    (entry,) = journal(image)
    assert (
        entry["seq"] == 1
        and entry["action"] == "relabel"
        and entry["args"] == {"label_ids": [2], "class_id": 7}
    )
    assert "T" in entry["time"]
    p.session.undo()
    assert read_status(image) == "proposed" and journal(image)[-1]["action"] == "undo"
    p.session.redo()
    p.session.accept()  # accepting saves the checkpoint
    assert read_status(image) == "accepted"
    working = read_result(project_dir(image) / "working")
    assert (working.status, working.corrections, working.chromosomes[1].class_id) == ("accepted", 1, 7)
    assert [e["seq"] for e in journal(image)] == [1, 2, 3, 4] and state(image)["seq"] == 4


def test_checkpoint_every_20_edits(image):
    p = Project.start(image, proposal())
    for k in range(19):
        p.session.relabel([1], k % 24 + 1)
    assert read_result(project_dir(image) / "working").corrections == 0
    p.session.relabel([1], 22)
    assert read_result(project_dir(image) / "working").corrections == 20
    assert state(image)["corrections"] == 20


def test_open_restores_the_session_and_continues_the_journal(image):
    p = Project.start(image, proposal())
    edit(p.session)
    again = Project.open(image)
    assert_same(again.session.result, p.session.result)
    assert again.session.history_names == p.session.history_names
    again.session.delete([1])
    assert journal(image)[-1]["seq"] == len(journal(image))


def test_a_hard_kill_loses_no_edit(image):
    Project.start(image, proposal())
    script = (
        "import sys, time\nsys.path.insert(0, sys.argv[2])\nfrom test_project import edit\n"
        "from napari_karyo.core.karyotype.edit.project import Project\n"
        "edit(Project.open(sys.argv[1]).session)\nprint('edited', flush=True)\ntime.sleep(60)\n"
    )
    here = str(Path(__file__).parent)
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(image), here],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        assert proc.stdout.readline().strip() == "edited"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert read_result(project_dir(image) / "working").corrections == 0  # killed before any checkpoint
    expected = EditSession(read_result(project_dir(image) / "proposal"))
    edit(expected)
    restored = Project.open(image)
    assert_same(restored.session.result, expected.result)
    assert restored.session.result.corrections == 5 and read_status(image) == "corrected"
    assert restored.session.undo() and expected.undo()
    assert_same(restored.session.result, expected.result)


def test_a_torn_last_line_is_dropped(image):
    p = Project.start(image, proposal())
    p.session.relabel([1], 4)
    p.session.relabel([2], 6)
    path = project_dir(image) / "journal.jsonl"
    with open(path, "ab") as fh:
        fh.write(b'{"seq": 3, "time": "2026-01-01T00:00:00", "action": "rel')  # the crash came mid-write
    again = Project.open(image)
    assert [c.class_id for c in again.session.result.chromosomes] == [4, 6]
    again.session.relabel([1], 8)  # the next edit starts on a clean line
    assert [e["seq"] for e in journal(image)] == [1, 2, 3]
    assert [c.class_id for c in Project.open(image).session.result.chromosomes] == [8, 6]
    with open(path, "ab") as fh:  # a whole line whose newline did not make it: kept
        fh.write(
            b'{"seq": 4, "time": "2026-01-01T00:00:00", "action": "relabel", '
            b'"args": {"label_ids": [2], "class_id": 1}}'
        )
    again = Project.open(image)
    assert [c.class_id for c in again.session.result.chromosomes] == [8, 1]
    again.session.undo()
    assert [e["seq"] for e in journal(image)] == [1, 2, 3, 4, 5]


def test_a_damaged_line_in_the_middle_is_an_error(image):
    p = Project.start(image, proposal())
    for k in (4, 5, 6):
        p.session.relabel([1], k)
    path = project_dir(image) / "journal.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + '{"seq": 2, "act\n' + lines[2])
    with pytest.raises(KaryoError, match=r"journal\.jsonl: line 2 is damaged"):
        Project.open(image)
    path.write_text(lines[0] + '{"seq": 2, "action": "relabel", "args": {"label_ids": [9], "class_id": 1}}\n')
    with pytest.raises(KaryoError, match=r"journal\.jsonl: line 2: .*no chromosome 9"):
        Project.open(image)


def test_a_missing_proposal_or_journal_is_an_error(image):
    p = Project.start(image, proposal())
    p.session.relabel([1], 9)
    p.save()
    os.rename(project_dir(image) / "journal.jsonl", project_dir(image) / "journal.old")
    with pytest.raises(KaryoError, match=r"journal\.jsonl: missing, but state\.json recorded edit 1"):
        Project.open(image)
    os.rename(project_dir(image) / "proposal", project_dir(image) / "elsewhere")
    with pytest.raises(KaryoError, match="proposal/ is missing"):
        Project.open(image)


def test_start_keeps_a_project_holding_corrections(image):
    Project.start(image, proposal()).session.relabel([1], 9)
    with pytest.raises(KaryoError, match="holds corrections"):
        Project.start(image, proposal())
    assert read_status(image) == "corrected"
    p = Project.start(image, proposal(), overwrite=True)
    assert read_status(image) == "proposed" and p.session.result.corrections == 0
    folder = project_dir(image)
    (old,) = folder.parent.glob(f"{folder.name}.old-*")
    assert json.loads((old / "state.json").read_text())["status"] == "corrected"
    Project.start(image, proposal())  # an untouched project is simply replaced
    assert len(list(folder.parent.glob(f"{folder.name}*"))) == 2


def test_a_journal_that_cannot_be_written_undoes_the_edit(image, monkeypatch):
    p = Project.start(image, proposal())

    def disk_full(path, data, expected_size=None):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(project_mod.journal, "append", disk_full)
    with pytest.raises(KaryoError, match="cannot record the edit"):
        p.session.relabel([1], 9)
    assert_same(p.session.result, proposal())
    assert not p.session.can_undo
    assert read_status(image) == "proposed"


def test_read_status_rejects_a_damaged_state(image):
    Project.start(image, proposal())
    (project_dir(image) / "state.json").write_text("{")
    with pytest.raises(KaryoError, match="state.json: unreadable"):
        read_status(image)
