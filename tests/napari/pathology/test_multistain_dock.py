"""The multi-stain widget in a real napari window (Xvfb): sample stack -> Register (real core, coarse stage) ->
checkerboard -> landmark fix -> normalisation; and the stack reader's choice of files."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")

from napari_karyo._napari.pathology.stack_reader import get_stack_reader
from napari_karyo._napari.sample_data import MULTISTAIN
from napari_karyo.core.pathology.transform import load_transforms

PLUGIN = "napari-karyo"
STAINS = ["HE", "IHC", "Masson", "VG"]
CORNERS = np.array([[60.0, 60.0], [60.0, 450.0], [450.0, 60.0], [450.0, 450.0]])


def test_reader_takes_stacks_and_leaves_plain_tiffs(tmp_path):
    import tifffile

    plain = tmp_path / "spread.tif"
    tifffile.imwrite(plain, np.zeros((32, 32), np.uint8))
    pages = tmp_path / "pages.tif"
    with tifffile.TiffWriter(pages) as tif:
        tif.write(np.zeros((32, 32, 3), np.uint8), photometric="rgb")
        tif.write(np.zeros((30, 32, 3), np.uint8), photometric="rgb")
    ome = tmp_path / "one.ome.tif"
    tifffile.imwrite(ome, np.zeros((32, 32, 3), np.uint8), photometric="rgb", metadata={"Name": "HE"})
    assert get_stack_reader(str(plain)) is None
    assert get_stack_reader(str(tmp_path / "spread.png")) is None
    assert get_stack_reader(str(pages)) is not None and get_stack_reader(str(ome)) is not None
    assert get_stack_reader(str(MULTISTAIN)) is not None
    layers = get_stack_reader(str(MULTISTAIN))(str(MULTISTAIN))
    assert [kw["name"] for _, kw, _ in layers] == STAINS
    assert all(kw["metadata"]["stain"] == kw["name"] and kw["rgb"] for _, kw, _ in layers)


@pytest.fixture
def stack_viewer(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1200, 800)
    layers = viewer.open_sample(PLUGIN, "multistain_ihc")
    assert [layer.name for layer in layers] == STAINS
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Multi-stain stack")
    return viewer, widget


def colourful_fraction(shot: np.ndarray) -> float:
    rgb = shot[..., :3].astype(int)
    return float(((rgb.max(-1) - rgb.min(-1)) > 40).mean())


@pytest.mark.gui
def test_register_check_and_fix(stack_viewer, qtbot, screenshot_dir):
    viewer, widget = stack_viewer
    truth, _ = load_transforms(MULTISTAIN / "true_transforms.json")
    stack = widget.stack
    assert stack is not None and widget.reference_combo.currentText() == "HE"
    assert {layer.metadata["karyo_stack"] is stack for layer in viewer.layers} == {True}

    stack.stains = [s for s in stack.stains if s.name != "Masson"]  # two pairs are enough here: faster
    widget.register(stages=("coarse", "mid"))  # coarse alone is the rough guess; mid fits the affine
    assert widget.job.running and "cpu" in widget.job.device_label.text()
    qtbot.waitUntil(lambda: not widget.job.running, timeout=400_000)  # load-tolerant: mid adds two flows
    assert widget.job.progress.format() == "done", widget.status_label.text()
    for name in ("IHC", "VG"):
        err = np.linalg.norm(
            stack.transform(name).map_points(CORNERS) - truth[name].map_points(CORNERS), axis=1
        )
        assert err.max() < 4.0, (name, err)
        assert np.allclose(viewer.layers[name].affine.affine_matrix, stack.transform(name).affine)
    # a verdict per stain with the number behind it, and the blend of the stain most worth a look shown at once
    lines = widget.status_label.text().splitlines()
    assert [line.split(":")[0] for line in lines] == ["IHC", "VG"]
    assert all(widget.verdicts[n].word in ("good", "check") for n in ("IHC", "VG"))
    assert all(f"{widget.verdicts[n].word}: detail {widget.verdicts[n].detail:.3f}" in line
               for n, line in zip(("IHC", "VG"), lines, strict=True))  # fmt: skip
    shown = widget.pair_combo.currentText()
    other = "VG" if shown == "IHC" else "IHC"
    assert (
        viewer.layers["HE"].visible and viewer.layers[shown].visible and viewer.layers[shown].opacity == 0.5
    )
    assert not viewer.layers[other].visible

    widget.pair_combo.setCurrentText("VG")
    widget.blend()
    assert viewer.layers["VG"].opacity == 0.5 and not viewer.layers["IHC"].visible
    widget.show_checkerboard()
    board = viewer.layers["checkerboard HE | VG"]
    assert board.data.shape == (512, 512, 3)
    viewer.reset_view()
    canvas = viewer.screenshot(canvas_only=True)
    assert canvas.std() > 10 and colourful_fraction(canvas) > 0.05
    viewer.screenshot(str(screenshot_dir / "multistain_checkerboard.png"), canvas_only=False)

    # a bad pair fixed by hand: 4 landmark pairs placed where the truth puts them
    stack.transforms["VG"] = truth["VG"].compose(
        type(truth["VG"])(np.array([[1, 0, 40], [0, 1, -30], [0, 0, 1]]))
    )
    widget.add_landmarks()
    fixed, moving = viewer.layers["HE landmarks for VG"], viewer.layers["VG landmarks"]
    moving.data = CORNERS
    fixed.data = truth["VG"].map_points(CORNERS)
    widget.refit()
    assert np.allclose(stack.transform("VG").affine, truth["VG"].affine, atol=1e-6)
    assert np.allclose(viewer.layers["VG"].affine.affine_matrix, truth["VG"].affine, atol=1e-6)
    assert np.allclose(moving.affine.affine_matrix, truth["VG"].affine, atol=1e-6)

    widget.target_combo.setCurrentText("H&E")
    widget.pair_combo.setCurrentText("IHC")
    widget.normalise()
    widget.stain_channels()
    assert viewer.layers["IHC normalised"].data.shape == (500, 530, 3)
    assert {"IHC OD", "IHC stain 1", "IHC stain 2"} <= {layer.name for layer in viewer.layers}
    viewer.screenshot(str(screenshot_dir / "multistain_widget.png"), canvas_only=False)


@pytest.mark.gui
def test_blank_stain_is_reported(stack_viewer, qtbot, monkeypatch):
    from napari.utils import notifications

    shown = []
    monkeypatch.setattr(notifications, "show_error", shown.append)
    _, widget = stack_viewer
    stack = widget.stack
    stack.stains = [s for s in stack.stains if s.name in ("HE", "Masson")]
    stain = stack["Masson"]
    stain.levels = [np.full_like(np.asarray(stain.levels[0]), 240)]
    widget.register(stages=("coarse", "mid"))  # coarse alone is the rough guess; mid fits the affine
    qtbot.waitUntil(lambda: not widget.job.running, timeout=120_000)
    assert widget.job.progress.format() == "failed"
    assert len(shown) == 1 and "Masson" in shown[0] and "no tissue" in shown[0], shown
    widget.pair_combo.setCurrentText("Masson")
    widget.normalise()
    assert "too little stained tissue" in shown[-1]


def test_non_rigid_transforms_resample_images_and_annotations():
    from napari.components import ViewerModel

    from napari_karyo._napari.pathology import stack_layers as pl
    from napari_karyo.core.pathology.stack import load_stack
    from napari_karyo.core.pathology.transform import Transform

    stack = load_stack(MULTISTAIN)
    truth, _ = load_transforms(MULTISTAIN / "true_transforms.json")
    viewer = ViewerModel()
    for data, kwargs, kind in pl.stack_to_layer_data(stack):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    points = viewer.add_points(CORNERS, name="VG cells")  # a stain's annotation, by name
    labels = viewer.add_labels(np.zeros((520, 520), np.uint8), name="lesions", metadata={"stain": "VG"})
    labels.data[100:140, 200:260] = 3
    shift = np.zeros((2, 9, 9), np.float32)
    shift[1] = 4.0  # 4 px to the right everywhere, on top of the affine
    stack.transforms["VG"] = Transform(truth["VG"].affine, shift, 64.0)
    for data, kwargs, kind in pl.apply_transforms(viewer.layers, stack):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    assert "VG registered" in viewer.layers and not viewer.layers["VG"].visible
    registered = viewer.layers["VG registered"]
    assert registered.data.shape == (512, 512, 3) and registered.data.dtype == np.uint8
    assert registered.data[0, 0].min() > 200  # outside the section: glass, not black
    assert np.allclose(points.data, truth["VG"].map_points(CORNERS) + [0, 4], atol=1e-3)
    assert labels.data.shape == (512, 512) and set(np.unique(labels.data)) == {0, 3}
    stack.transforms["VG"] = truth["VG"]  # back to rigid: annotations start again from their originals
    pl.apply_transforms(viewer.layers, stack)
    assert np.allclose(points.data, CORNERS) and np.allclose(points.affine.affine_matrix, truth["VG"].affine)
    assert not viewer.layers["VG registered"].visible and viewer.layers["VG"].visible


@pytest.mark.gui
def test_the_normalisation_chosen_in_one_pathology_dock_is_used_by_the_other(stack_viewer):
    from napari_karyo.core.storage.settings import setting

    viewer, widget = stack_viewer
    _, lesions = viewer.window.add_plugin_dock_widget(PLUGIN, "Lesion classifier")
    widget.method_combo.setCurrentText("vahadane")
    assert lesions.norm_combo.currentText() == "vahadane" == setting("stain_normalisation")
    lesions.norm_combo.setCurrentText("macenko")
    assert widget.method_combo.currentText() == "macenko"
    lesions.norm_combo.setCurrentText("none")  # no method in the Multi-stain dock: it keeps its own
    assert widget.method_combo.currentText() == "macenko" and setting("stain_normalisation") == "none"
    _, again = viewer.window.add_plugin_dock_widget(PLUGIN, "Lesion classifier", tabify=True)
    assert again.norm_combo.currentText() == "none"  # a dock opened later starts from the choice
