"""napari-only fixtures. GUI tests need a real display (Xvfb): offscreen Qt cannot draw napari's canvas."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from widget_helpers import IMAGE, PLUGIN, fake_steps, run_and_wait


def pytest_collection_modifyitems(config, items):
    # Locally a missing display skips GUI tests; in CI (CI=true) they must run, so a broken Xvfb fails loudly.
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and not os.environ.get("CI"):
        skip = pytest.mark.skip(reason='needs a display: run under xvfb-run -a -s "-screen 0 1280x1024x24"')
        for item in items:
            if "gui" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def screenshot_dir(tmp_path):
    """Where GUI tests save screenshots: $KARYO_SCREENSHOTS if set (to look at them), else tmp_path."""
    path = os.environ.get("KARYO_SCREENSHOTS")
    if path:
        os.makedirs(path, exist_ok=True)
        return Path(path)
    return tmp_path


# ---- the karyotype widget on the bundled sample (helpers in widget_helpers.py) ----------------------------


@pytest.fixture
def karyo(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1200, 800)
    layers = viewer.open_sample(PLUGIN, "mfish_dapi")
    assert [layer.name for layer in layers] == [IMAGE]
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Karyotype")
    assert widget.image_combo.currentText() == IMAGE
    return viewer, widget


@pytest.fixture
def analysed(karyo, qtbot, fake):
    """The widget after a (fake) run: (viewer, widget, karyogram view)."""
    viewer, widget = karyo
    fake()
    run_and_wait(qtbot, widget)
    widget.questions = []  # yes/no questions the dock asked (answered yes; a modal dialog would block the test)
    widget.confirm = lambda question: widget.questions.append(question) or True
    return viewer, widget, widget.karyogram_view


@pytest.fixture
def fake(monkeypatch):
    from napari_karyo._napari.karyotype import dock

    def use(**kw):
        monkeypatch.setattr(dock, "analyze_steps", fake_steps(**kw))

    return use


@pytest.fixture(autouse=True)
def projects_in_tmp(tmp_path, monkeypatch):
    """Autosaved projects of images without a file (the sample) go to the test's folder, not the user's."""
    monkeypatch.setenv("NAPARI_KARYO_PROJECTS", str(tmp_path / "projects"))
    return tmp_path / "projects"
