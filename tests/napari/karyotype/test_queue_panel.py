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
