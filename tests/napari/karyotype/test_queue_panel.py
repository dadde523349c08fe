"""The queue panel (Xvfb): images listed with their status and colour, progress line, Next / Previous /
double-click call on_open with the right path, refresh (by hand and by watching the folder), errors shown
plainly."""

from __future__ import annotations

import pytest

pytest.importorskip("qtpy")
from qtpy.QtCore import Qt
from qtpy.QtGui import QColor

from factories import set_status
from napari_karyo._napari.karyotype.queue_panel import STATUS_COLOURS, QueuePanel
from napari_karyo.core.errors import KaryoError

pytestmark = pytest.mark.gui

NAMES = ["spread10.tif", "spread2.tif", "spread1.tif", "spread3.png"]


@pytest.fixture
def folder(tmp_path):
    for name in NAMES:
        (tmp_path / name).write_bytes(b"")
    set_status(tmp_path / "spread1.tif", "accepted", 3)
    set_status(tmp_path / "spread2.tif", "corrected", 2)
    set_status(tmp_path / "spread3.png", "proposed")
    return tmp_path


@pytest.fixture
def panel(qtbot, folder):
    opened = []
    widget = QueuePanel(opened.append, folder)
    qtbot.addWidget(widget)
    widget.show()
    return widget, opened


def rows(widget):
    return [widget.list.item(i).text() for i in range(widget.list.count())]


def test_lists_images_with_status_and_colour(panel):
    widget, _ = panel
    assert rows(widget) == [
        "spread1.tif  ·  accepted",
        "spread2.tif  ·  corrected",
        "spread3.png  ·  proposed",
        "spread10.tif  ·  not started",
    ]
    assert widget.progress_label.text() == "1/4 accepted · 1 corrected · 1 proposed · 1 not started"
    icon = widget.list.item(0).icon().pixmap(12, 12).toImage()
    assert icon.pixelColor(6, 6) == QColor(STATUS_COLOURS["accepted"])
    assert widget.list.item(1).foreground().color() == QColor(STATUS_COLOURS["corrected"])


def test_next_previous_and_double_click_open(panel, qtbot, folder):
    widget, opened = panel
    qtbot.mouseClick(widget.next_button, Qt.MouseButton.LeftButton)
    assert opened == [folder / "spread2.tif"]  # spread1 is accepted: skipped
    qtbot.mouseClick(widget.next_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(widget.next_button, Qt.MouseButton.LeftButton)
    assert opened[1:] == [folder / "spread3.png", folder / "spread10.tif"]
    assert widget.selected() == folder / "spread10.tif"
    qtbot.mouseClick(
        widget.next_button, Qt.MouseButton.LeftButton
    )  # past the end: back to the first open one
    assert opened[-1] == folder / "spread2.tif"
    qtbot.mouseClick(
        widget.previous_button, Qt.MouseButton.LeftButton
    )  # Previous does not skip accepted ones
    assert opened[-1] == folder / "spread1.tif"
    qtbot.mouseClick(widget.previous_button, Qt.MouseButton.LeftButton)
    assert len(opened) == 5 and widget.message_label.text() == "This is the first image."
    qtbot.waitExposed(widget)
    rect = widget.list.visualItemRect(widget.list.item(3))
    assert rect.height() > 0, rect
    qtbot.mouseClick(widget.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(widget.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert opened[-1] == folder / "spread10.tif"
    widget.select(folder / "spread3.png")  # highlights without opening
    assert widget.selected() == folder / "spread3.png" and len(opened) == 6


def test_all_accepted(panel, qtbot, folder):
    widget, opened = panel
    for name in NAMES:
        set_status(folder / name, "accepted")
    widget.refresh()
    qtbot.mouseClick(widget.next_button, Qt.MouseButton.LeftButton)
    assert opened == [] and widget.message_label.text() == "All 4 images are accepted."


def test_refresh_picks_up_new_states_and_images(panel, qtbot, folder):
    widget, _ = panel
    widget.select(folder / "spread3.png")
    set_status(folder / "spread10.tif", "corrected", 1)
    widget.refresh()
    assert rows(widget)[3] == "spread10.tif  ·  corrected"
    assert widget.progress_label.text() == "1/4 accepted · 2 corrected · 1 proposed · 0 not started"
    assert widget.selected() == folder / "spread3.png"  # selection kept
    # the folder is watched: a new image and a project saved elsewhere appear without pressing anything
    (folder / "spread4.tif").write_bytes(b"")
    qtbot.waitUntil(lambda: "spread4.tif  ·  not started" in rows(widget), timeout=5000)
    set_status(folder / "spread3.png", "accepted", 2)
    qtbot.waitUntil(lambda: "spread3.png  ·  accepted" in rows(widget), timeout=5000)
    assert widget.progress_label.text() == "2/5 accepted · 2 corrected · 0 proposed · 1 not started"
    set_status(folder / "spread4.tif", "proposed", atomic=True)  # a new project folder, saved by renaming
    qtbot.waitUntil(lambda: "spread4.tif  ·  proposed" in rows(widget), timeout=5000)
    set_status(folder / "spread4.tif", "corrected", 1, atomic=True)
    qtbot.waitUntil(lambda: "spread4.tif  ·  corrected" in rows(widget), timeout=5000)


def test_a_real_project_save_moves_the_queue_on(panel, qtbot, folder):
    import numpy as np

    from napari_karyo.core.karyotype.edit.project import Project
    from napari_karyo.core.results import Chromosome, SpreadResult

    widget, _ = panel
    mask = np.zeros((40, 40), bool)
    mask[5:30, 10:15] = True
    proposal = SpreadResult(
        (40, 40), [Chromosome.from_full_mask(mask, class_id=1, score=0.9, source="model")]
    )
    project = Project.start(folder / "spread10.tif", proposal)
    qtbot.waitUntil(lambda: rows(widget)[3] == "spread10.tif  ·  proposed", timeout=5000)
    project.session.relabel([1], 2)
    project.save()
    qtbot.waitUntil(lambda: rows(widget)[3] == "spread10.tif  ·  corrected", timeout=5000)
    project.session.accept()
    project.save()
    qtbot.waitUntil(lambda: widget.progress_label.text().startswith("2/4 accepted"), timeout=5000)


def test_damaged_project_listed_as_unreadable(panel, folder):
    widget, _ = panel
    (folder / "spread10.karyo").mkdir()
    (folder / "spread10.karyo" / "state.json").write_text("{")
    widget.refresh()
    item = widget.list.item(3)
    assert item.text() == "spread10.tif  ·  unreadable" and "state.json" in item.toolTip()
    assert widget.progress_label.text().endswith("0 not started · 1 unreadable")


def test_errors_are_shown_in_the_panel(qtbot, tmp_path):
    def refuse(path):
        raise KaryoError(f"{path}: cannot be read")

    widget = QueuePanel(refuse)
    qtbot.addWidget(widget)
    assert not widget.next_button.isEnabled() and widget.list.count() == 0
    assert not widget.set_folder(tmp_path / "nowhere")
    assert "nowhere: no such folder" in widget.message_label.text()
    (tmp_path / "a.tif").write_bytes(b"")
    assert widget.set_folder(tmp_path) and widget.message_label.text() == ""
    qtbot.mouseClick(widget.next_button, Qt.MouseButton.LeftButton)
    assert widget.message_label.text() == f"{tmp_path / 'a.tif'}: cannot be read"
    (tmp_path / "a.tif").unlink()
    widget.refresh()
    assert widget.list.count() == 0 and "holds no spread images" in widget.message_label.text()
    assert not widget.next_button.isEnabled()


def test_propose_all_not_started_runs_in_the_background_with_progress_and_cancel(
    qtbot, tmp_path, monkeypatch
):
    import shutil

    from widget_helpers import fake_steps

    from napari_karyo._napari.sample_data import DAPI
    from napari_karyo.core.karyotype import queue_run
    from napari_karyo.core.karyotype.edit.project import Project

    for name in ("a.tif", "b.tif", "c.tif"):
        shutil.copy(DAPI, tmp_path / name)
    set_status(tmp_path / "c.tif", "accepted", 1)
    monkeypatch.setattr(queue_run, "analyze_steps", fake_steps(delay=0.01))
    widget = QueuePanel(lambda path: None, tmp_path)
    qtbot.addWidget(widget)
    widget.show()
    seen = []
    widget.job.progress.valueChanged.connect(seen.append)
    qtbot.mouseClick(widget.job.run_button, Qt.MouseButton.LeftButton)
    assert widget.job.running and not widget.job.run_button.isEnabled()  # a worker: the panel stays usable
    qtbot.waitUntil(lambda: not widget.job.running, timeout=60_000)
    assert rows(widget) == ["a.tif  ·  proposed", "b.tif  ·  proposed", "c.tif  ·  accepted"]
    assert max(seen) > 0 and widget.job.progress.format() == "2 proposed"
    assert Project.open(tmp_path / "a.tif").session.result.count == 46  # a real project: opens at once

    # Cancel stops it between two reports: what was proposed stays, the rest is still not started
    for name in ("d.tif", "e.tif"):
        shutil.copy(DAPI, tmp_path / name)
    widget.refresh()
    monkeypatch.setattr(queue_run, "analyze_steps", fake_steps(delay=0.1))
    qtbot.mouseClick(widget.job.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: widget.job.progress.value() > 0, timeout=30_000)
    widget.job.cancel_button.click()
    qtbot.waitUntil(lambda: not widget.job.running, timeout=30_000)
    statuses = [row.split("  ·  ")[1] for row in rows(widget)[3:]]
    assert "not started" in statuses and "cancelled" in widget.message_label.text()
    widget.propose_not_started()  # and nothing left to do says so
    qtbot.waitUntil(lambda: not widget.job.running, timeout=60_000)
    widget.propose_not_started()
    assert widget.message_label.text() == "Every spread of the queue is started already."
