"""Whole-slide paths: lazy multiscale warping, tiled warped output, many stacks with a resumable manifest."""

import json

import numpy as np
import pytest
from PIL import Image
from test_register import make_moving, rigid, tissue_slide

from napari_karyo.core.pathology.registration import batch
from napari_karyo.core.pathology.registration.lazy import warped_pyramid
from napari_karyo.core.pathology.stack import load_stack
from napari_karyo.core.pathology.transform import Transform, load_transforms


class CountingLevel:
    """A numpy level that counts how many pixels were read from it."""

    def __init__(self, a):
        self.a, self.shape, self.dtype, self.ndim, self.read = a, a.shape, a.dtype, a.ndim, 0

    def __getitem__(self, key):
        out = self.a[key]
        self.read += out.shape[0] * out.shape[1]
        return out


def test_lazy_pyramid_matches_the_eager_warp_and_reads_only_what_is_shown():
    moving = tissue_slide(2, (240, 280))
    field = np.stack([np.full((9, 10), 1.5), np.linspace(-2, 2, 90).reshape(9, 10)]).astype(np.float32)
    t = Transform(rigid(12, (6, -4), centre=(120, 140)).affine, field, 30.0)
    fixed_levels = [np.zeros((250, 270, 3), np.uint8), np.zeros((125, 135, 3), np.uint8)]
    level0 = CountingLevel(moving)
    levels = warped_pyramid([level0, moving[::2, ::2]], t, fixed_levels, chunk=64)
    assert [lv.shape for lv in levels] == [(250, 270, 3), (125, 135, 3)]
    assert level0.read == 0  # nothing computed yet
    eager = t.warp_image(moving, (250, 270))
    lazy = levels[0].compute(scheduler="synchronous")
    assert np.abs(lazy.astype(int) - eager).max() <= 1
    level0.read = 0
    levels[0][:64, :64].compute(scheduler="synchronous")  # one chunk: a window of the source, not all of it
    assert 0 < level0.read < moving.shape[0] * moving.shape[1] / 4
    assert levels[1].compute(scheduler="synchronous").shape == (125, 135, 3)


@pytest.fixture()
def stack_folder(tmp_path):
    fixed = tissue_slide(1)
    truth = rigid(-15, (6, 4), centre=(110, 130))
    folder = tmp_path / "case1"
    folder.mkdir()
    Image.fromarray(fixed).save(folder / "case1_HE.png")
    Image.fromarray(make_moving(fixed, truth, (230, 250))).save(folder / "case1_CD31.png")
    return folder, truth


def test_batch_registers_writes_warped_stains_and_resumes(stack_folder, tmp_path, monkeypatch):
    folder, truth = stack_folder
    out = tmp_path / "out"
    manifest = batch.run_batch([folder], out, workers=0, low_side=200, mid_side=260, progress=lambda _: None)
    entry = manifest["stacks"][str(folder)]
    assert entry["reference"] == "HE" and entry["stains"]["CD31"]["status"] == "done"
    assert "refined" in entry["stains"]["CD31"]["quality"]  # estimated at 200 px, refined at 260 px
    transforms, meta = load_transforms(entry["transforms"])
    pts = np.array([[100.0, 120.0], [80.0, 150.0]])
    moving_pts = truth.inverse().map_points(pts)
    assert np.abs(transforms["CD31"].map_points(moving_pts) - pts).max() < 3
    warped = load_stack(entry["stains"]["CD31"]["warped"])
    assert warped.stains[0].shape == load_stack(folder)["HE"].shape
    assert (
        json.loads((out / "manifest.json").read_text())["stacks"][str(folder)]["stains"]["CD31"]["status"]
        == "done"
    )

    def must_not_run(*a):
        raise AssertionError("a finished job ran again")

    monkeypatch.setattr(batch, "register_job", must_not_run)
    again = batch.run_batch([folder], out, workers=0, progress=lambda _: None)
    assert again["stacks"][str(folder)]["stains"]["CD31"]["status"] == "done"


def test_cli_register_many_stacks(stack_folder, tmp_path, capsys):
    from napari_karyo.cli import main

    folder, _ = stack_folder
    out = tmp_path / "cli"
    args = ["register", "--stacks", str(folder), "--out-dir", str(out), "--workers", "0", "--low-side", "256"]
    assert main([*args, "--no-warp", "--mid-side", "256"]) == 0
    assert "1 of 1 stains registered in 1 stacks" in capsys.readouterr().out
    assert (out / "case1" / "transforms.json").is_file() and (out / "manifest.json").is_file()
    assert main(["register", "--stacks", str(tmp_path / "nothing"), "--out-dir", str(out)]) == 2
    assert "no such file" in capsys.readouterr().err


def test_a_stain_without_tissue_fails_alone(stack_folder, tmp_path):
    folder, _ = stack_folder
    glass = 240 + np.random.default_rng(0).integers(0, 4, (200, 220, 3))
    Image.fromarray(glass.astype(np.uint8)).save(folder / "case1_Ki67.png")
    manifest = batch.run_batch(
        [folder], tmp_path / "o", workers=0, warp=False, low_side=256, mid_side=256, progress=lambda _: None
    )
    stains = manifest["stacks"][str(folder)]["stains"]
    assert stains["CD31"]["status"] == "done"
    assert stains["Ki67"]["status"] == "failed" and "no tissue" in stains["Ki67"]["message"]
    transforms, meta = load_transforms(manifest["stacks"][str(folder)]["transforms"])
    assert set(transforms) == {"HE", "CD31"} and "Ki67" in meta["failed"]
