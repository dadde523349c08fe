"""A non-rigidly registered whole-slide stain in napari (Xvfb): a multiscale layer at full resolution whose tiles
are warped when shown, opened by the stack reader and kept by the multi-stain dock."""

from __future__ import annotations

import numpy as np
import pytest

from factories import slide_pyramids

pytest.importorskip("napari")

from napari_karyo._napari.sample_data import MULTISTAIN
from napari_karyo.core.pathology.transform import Transform, load_transforms, save_transforms

PLUGIN = "napari-karyo"
SIDE = 2048


def non_rigid(shift_cols: float) -> Transform:
    """The sample's true IHC -> HE affine at SIDE px, plus a smooth field (rows bend, cols shift)."""
    truth = load_transforms(MULTISTAIN / "true_transforms.json")[0]["IHC"].rescaled(SIDE / 512)
    field = np.zeros((2, 9, 9), np.float32)
    field[0] = 6 * np.sin(np.linspace(0, np.pi, 9))[None, :]
    field[1] = shift_cols
    return Transform(truth.affine, field, SIDE / 8)


def shown_tile(viewer, layer, qtbot, centre, region):
    """Zoom in on `centre` until the layer shows the full-resolution pixels of `region` (r0, r1, c0, c1): napari
    loads whole chunks of a dask level, one 1024 px chunk here. The displayed pixels."""
    viewer.camera.center = centre
    viewer.camera.zoom = 3.0

    def shown():
        (r0, c0), (r1, c1) = np.asarray(layer.corner_pixels)[:, :2]
        raw = layer._slice.image.raw
        return layer.data_level == 0 and (r0, r1 + 1, c0, c1 + 1) == region and raw.shape[:2] == (1024, 1024)

    qtbot.waitUntil(shown, timeout=30_000)
    return np.asarray(layer._slice.image.raw)


def expected(stack, name: str, t: Transform) -> np.ndarray:
    """The stain warped onto the reference directly: the whole full-resolution level at once, glass white."""
    moving = np.asarray(stack[name].levels[0])
    return 255 - t.warp_image(255 - moving, stack[stack.reference].shape)


@pytest.mark.gui
def test_registered_stain_is_a_full_resolution_multiscale_layer(make_napari_viewer, qtbot, tmp_path):
    folder = slide_pyramids(tmp_path / "slide", SIDE)
    t = non_rigid(4.0)
    save_transforms(folder / "transforms.json", {"HE": Transform.identity(), "IHC": t}, {"reference": "HE"})
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1000, 800)
    viewer.open(str(folder), plugin=PLUGIN)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Multi-stain stack")
    stack = widget.stack
    assert stack is not None and stack.names == ["HE", "IHC"] and not stack.transform("IHC").is_rigid_only()

    layer = viewer.layers["IHC registered"]
    assert layer.multiscale and not viewer.layers["IHC"].visible
    ref_shapes = [tuple(lv.shape) for lv in stack["HE"].levels]
    assert (
        [tuple(lv.shape) for lv in layer.data] == ref_shapes == [(SIDE, SIDE, 3), (SIDE // 2, SIDE // 2, 3)]
    )
    assert layer.data[0].dtype == np.uint8 and hasattr(layer.data[0], "dask")  # lazy: warped when shown

    r0, r1, c0, c1 = region = (SIDE // 2, SIDE, 0, SIDE // 2)
    tile = shown_tile(viewer, layer, qtbot, (1400, 600), region)
    truth = expected(stack, "IHC", t)[r0:r1, c0:c1]
    assert np.abs(tile.astype(int) - truth).max() <= 1
    assert (tile.max(-1) < 200).mean() > 0.1  # tissue in this tile, not only glass

    stack.transforms["IHC"] = t2 = non_rigid(-5.0)  # the dock replaces the data of the view it made
    widget._show(stack)
    assert viewer.layers["IHC registered"] is layer and layer.multiscale
    r0, r1, c0, c1 = region = (0, SIDE // 2, SIDE // 2, SIDE)
    tile = shown_tile(viewer, layer, qtbot, (600, 1500), region)
    assert np.abs(tile.astype(int) - expected(stack, "IHC", t2)[r0:r1, c0:c1]).max() <= 1


def test_reader_shows_a_slide_prediction_as_multiscale_layers(tmp_path):
    """A `lesions predict --tiles` folder opens as a multiscale class map (named by lesion type) and hidden
    probability layers, placed over the reference's full-resolution pixels."""
    from napari.components import ViewerModel

    from napari_karyo._napari.pathology.stack_reader import get_stack_reader
    from napari_karyo.core.pathology.lesions.slide import SlidePlan, save_tile
    from napari_karyo.core.pathology.lesions.slide_outputs import assemble

    plan = SlidePlan("case", None, "m", "0", str(tmp_path / "case"), 0.25, (300, 200), 128, 4, None)
    rng = np.random.default_rng(0)
    for r in range(plan.tile_rows):
        for c in range(plan.tile_cols):
            h, w = min(128, 300 - 128 * r), min(128, 200 - 128 * c)
            labels = rng.integers(0, 3, (h, w)).astype(np.uint8)
            tile = {"labels": labels, "probs": rng.integers(0, 256, (2, h, w)).astype(np.uint8)}
            tile |= {"counts": np.bincount(labels.ravel(), minlength=3)[1:], "weight_sums": np.ones((2, 2))}
            save_tile(plan.tile_path(r, c), None if (r, c) == (0, 1) else tile)
    assemble(plan, ["normal", "tumour"], ["HE", "IHC"])
    reader = get_stack_reader(str(tmp_path / "case"))
    assert reader is not None
    viewer = ViewerModel()
    for data, kwargs, kind in reader(str(tmp_path / "case")):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    assert [ly.name for ly in viewer.layers] == ["case class map", "case p(normal)", "case p(tumour)"]
    classes = viewer.layers["case class map"]
    assert classes.multiscale and [tuple(s) for s in classes.level_shapes] == [
        (300, 200),
        (150, 100),
        (75, 50),
    ]
    assert np.allclose(classes.scale, 4) and classes.features["lesion"].tolist() == [
        "none",
        "normal",
        "tumour",
    ]
    assert np.asarray(classes.data[0])[:128, 128:].max() == 0  # the empty tile
    assert not viewer.layers["case p(tumour)"].visible and viewer.layers["case p(tumour)"].multiscale
