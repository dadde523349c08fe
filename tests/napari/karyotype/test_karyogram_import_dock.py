"""The Import-karyogram dock in a real napari window (Xvfb): a synthetic spread + karyogram imported, the result
folder written and opened as layers; a plain error when a field is empty."""

from __future__ import annotations

import pytest

pytest.importorskip("napari")
from widget_helpers import PLUGIN

import karyogram_synth as synth

pytestmark = pytest.mark.gui
WAIT_MS = 180_000


@pytest.fixture
def dock(make_napari_viewer, monkeypatch):
    from napari.utils import notifications

    errors: list[str] = []
    monkeypatch.setattr(notifications, "show_error", errors.append)
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Import karyogram")
    return viewer, widget, errors


def test_import_writes_and_opens_the_result(dock, qtbot, tmp_path):
    viewer, widget, errors = dock
    spread, karyogram, _, names = synth.cell(seed=2)
    widget.spread_edit.setText(synth.save(tmp_path / "5.png", spread))
    widget.karyogram_edit.setText(synth.save(tmp_path / "5k.png", karyogram))
    widget.out_edit.setText(str(tmp_path / "out"))
    widget.job.run_button.click()
    qtbot.waitUntil(lambda: widget.last_import is not None and not widget.job.running, timeout=WAIT_MS)
    assert errors == []
    assert (tmp_path / "out" / "5" / "annotations.json").is_file()
    assert widget.last_import.placed == len(names)
    assert f"{len(names)} of {len(names)} chromosomes placed" in widget.summary_label.text()
    assert any(layer.name.startswith("5") and layer.__class__.__name__ == "Labels" for layer in viewer.layers)


def test_empty_fields_give_a_plain_error(dock, qtbot):
    _, widget, errors = dock
    widget.job.run_button.click()
    qtbot.waitUntil(lambda: not widget.job.running and bool(errors), timeout=WAIT_MS)
    assert "choose a spread" in errors[0]


def test_a_spread_imported_with_its_project_opens_in_the_karyotype_dock_from_the_import(
    make_napari_viewer, tmp_path
):
    from napari_karyo._napari.karyotype.dock import KaryotypeWidget
    from napari_karyo.cli import main

    spread, karyogram, _, names = synth.cell(seed=2)
    s, k = synth.save(tmp_path / "5.png", spread), synth.save(tmp_path / "5k.png", karyogram)
    assert main(["-q", "import-karyogram", s, k, "--out", str(tmp_path / "out"), "--project"]) == 0
    viewer = make_napari_viewer(show=False)
    dock = KaryotypeWidget(viewer)
    viewer.open(s, plugin="napari-karyo")
    session = dock.editor.session  # the dock went on from the import's project, journalled
    assert sum(bool(c.class_id) for c in session.result.chromosomes) == len(names)
    assert session.proposal.count == session.result.count and dock.project is not None
