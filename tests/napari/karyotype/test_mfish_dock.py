"""An M-FISH cell in napari: the reader opens every plane (pseudo-colour composite), the Karyotype dock names it
by colour with the shipped kit model and adds the per-pixel class map as a hidden Labels layer."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
from widget_helpers import PLUGIN, run_and_wait


@pytest.mark.gui
def test_cell_opens_as_composite_and_is_named_by_colour(make_napari_viewer, qtbot, screenshot_dir):
    viewer = make_napari_viewer(show=True)
    layers = viewer.open_sample(PLUGIN, "mfish_cell")
    names = [layer.name for layer in layers]
    assert names[0] == "mfish_A02_cell DAPI" and len(names) == 6
    assert {layer.blending for layer in layers[1:]} == {"additive"}
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Karyotype")
    widget.image_combo.setCurrentText(names[0])
    widget.device_combo.setCurrentText("cpu")
    run_and_wait(qtbot, widget)
    labels = viewer.layers["mfish_A02_cell DAPI chromosomes"]
    assert 40 <= len(labels.features) <= 52 and labels.features["colour_vote"].str.len().min() > 0
    classes = viewer.layers["mfish_A02_cell DAPI colour classes"]
    assert not classes.visible and classes.data.shape == (517, 645) and 0 < np.max(classes.data) <= 24
    assert "naming: colour, kit A" in widget.last_result.model
    viewer.screenshot(str(screenshot_dir / "mfish_cell.png"), canvas_only=False)


def test_cell_of_finds_the_cell_behind_a_plane_or_a_multichannel_layer():
    from types import SimpleNamespace

    from napari_karyo._napari.karyotype.mfish_layers import CELL_KEY, cell_of
    from napari_karyo._napari.sample_data import CELL, DAPI

    def layer(path, meta=None):
        return SimpleNamespace(metadata=meta or {}, source=SimpleNamespace(path=path))

    assert cell_of(layer(None, {CELL_KEY: str(CELL)})) == str(CELL)
    assert cell_of(layer(str(CELL))) == str(CELL)  # e.g. opened whole by napari's own TIFF reader
    assert cell_of(layer(str(DAPI))) is None and cell_of(layer(None)) is None
