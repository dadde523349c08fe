"""Journal continuity: a journal emptied, cut short, with a line dropped, duplicated or changed is refused (naming
the file and how to recover) and never replayed into an older or different result; state.json is never rolled
back; recovery from the checkpoint keeps the corrections."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_karyo.core.errors import KaryoError
from napari_karyo.core.karyotype.edit.project import SAVE_EVERY, Project, project_dir
from napari_karyo.core.results import Chromosome, SpreadResult

SHAPE = (60, 90)


def proposal() -> SpreadResult:
    chs = []
    for k in range(3):
        m = np.zeros(SHAPE, bool)
        m[5:50, 10 + 20 * k : 16 + 20 * k] = True
        chs.append(Chromosome.from_full_mask(m, class_id=k + 1, score=0.9))
    return SpreadResult(SHAPE, chs, source_path="cell.tif")


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "cell.tif"
    path.write_bytes(b"")
    return path


def edited(image, n: int) -> Project:
    """A project with n relabels then a drawn object (so a checkpoint exists past SAVE_EVERY)."""
    p = Project.start(image, proposal())
    for i in range(n):
        p.session.relabel([1], i % 20 + 1)
    m = np.zeros(SHAPE, bool)
    m[52:58, 5:40] = True
    p.session.draw(m, 4)
    return p


def lines(image) -> list[bytes]:
    return (project_dir(image) / "journal.jsonl").read_bytes().splitlines(keepends=True)


def write(image, parts: list[bytes]) -> None:
    (project_dir(image) / "journal.jsonl").write_bytes(b"".join(parts))


def test_an_emptied_journal_is_refused_and_the_state_is_not_rolled_back(image):
    edited(image, SAVE_EVERY + 5)
    state = (project_dir(image) / "state.json").read_bytes()
    assert json.loads(state)["seq"] >= SAVE_EVERY
    write(image, [])
    with pytest.raises(
        KaryoError, match=r"journal\.jsonl: ends at edit 0, but state\.json recorded edit"
    ) as err:
        Project.open(image)
    assert "napari-karyo recover" in str(err.value) and "Nothing was changed" in str(err.value)
    assert (project_dir(image) / "state.json").read_bytes() == state  # never overwritten with seq 0


def test_recover_goes_on_from_the_checkpoint_and_keeps_the_folder_aside(image):
    p = edited(image, SAVE_EVERY + 5)
    p.save()
    want = [c.class_id for c in p.session.result.chromosomes]
    write(image, lines(image)[:3])  # cut short: ends before the state's edit
    with pytest.raises(KaryoError, match="lost lines"):
        Project.open(image)
    project, aside = Project.recover(image)
    assert [c.class_id for c in project.session.result.chromosomes] == want
    assert project.session.result.corrections == p.session.result.corrections
    assert aside.is_dir() and (aside / "journal.jsonl").is_file()
    reopened = Project.open(image)
    assert [c.class_id for c in reopened.session.result.chromosomes] == want


def test_a_duplicated_line_is_refused(image):
    edited(image, 3)
    parts = lines(image)
    write(image, parts + [parts[-1]])  # the draw twice
    with pytest.raises(KaryoError, match=r"line 5 is a copy of line 4"):
        Project.open(image)


def test_a_dropped_line_is_refused(image):
    edited(image, 5)
    parts = lines(image)
    write(image, parts[:2] + parts[3:])
    with pytest.raises(KaryoError, match=r"line 3 is edit 4, but edit 3 before it are missing"):
        Project.open(image)


def test_a_changed_line_fails_its_checksum(image):
    edited(image, 3)
    parts = lines(image)
    parts[1] = parts[1].replace(b'"class_id":2', b'"class_id":7')
    write(image, parts)
    with pytest.raises(KaryoError, match=r"line 2 is damaged \(its checksum does not match"):
        Project.open(image)


def test_lines_without_checksum_from_older_versions_still_replay(image):
    p = edited(image, 3)
    want = [c.class_id for c in p.session.result.chromosomes]
    old = [
        json.dumps({k: v for k, v in json.loads(x).items() if k != "crc"}).encode() + b"\n"
        for x in lines(image)
    ]
    write(image, old)
    assert [c.class_id for c in Project.open(image).session.result.chromosomes] == want


def test_two_sessions_on_one_project_do_not_interleave(image):
    first = edited(image, 2)
    second = Project.open(image)
    second.session.relabel([2], 9)
    with pytest.raises(KaryoError, match="changed by another program"):
        first.session.relabel([3], 9)
    assert first.session.result.chromosomes[2].class_id == 3  # the refused edit was undone
    second.save()
    with pytest.raises(KaryoError, match=r"state\.json: records edit 4, newer than this session's edit 3"):
        first.save()
    assert json.loads((project_dir(image) / "state.json").read_text())["seq"] == 4
