"""The bad-input corpus of `bad_inputs.py`, generated into a folder (nothing large is committed: the bombs are a
few MB of zlib-compressed zeros). Each case is an argv for `napari-karyo`, what it must give ("error": exit 2
and a message naming `token`; "ok": exit 0 and `check(folder)` true) and optional limits."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

SAMPLE = Path(__file__).resolve().parents[1] / "src/napari_karyo/samples/mfish_V26_dapi.tif"


@dataclass
class Case:
    name: str
    argv: list[str]
    expect: str  # "error" | "ok"
    token: str = ""  # an error message must name this (a file, a folder, a flag)
    check: Callable[[Path], bool] | None = None
    file_limit: int | None = None  # RLIMIT_FSIZE in bytes while the command runs (a full disk)
    tags: list[str] = field(default_factory=list)


def _tiff_bomb(path: Path, side: int) -> Path:
    tile = np.zeros((512, 512), np.uint8)
    with tifffile.TiffWriter(path) as tw:
        tw.write(
            (tile for _ in range((side // 512) ** 2)),
            shape=(side, side),
            dtype=np.uint8,
            tile=(512, 512),
            compression="zlib",
        )
    return path


def _karyotype(out: Path, name: str) -> dict:
    return json.loads((out / name / "karyotype.json").read_text())


def _spread_ok(out: Path, name: str) -> bool:
    doc = _karyotype(out, name)
    return 35 <= doc["count"] <= 60 and bool(doc["iscn"])


def _not_a_karyotype(out: Path, name: str) -> bool:
    doc = _karyotype(out, name)
    return doc["iscn"] == "" and bool(doc["warnings"])


def image_cases(root: Path) -> list[Case]:
    d = root / "images"
    d.mkdir()
    spread = tifffile.imread(SAMPLE)
    rng = np.random.default_rng(0)
    files: dict[str, Callable[[Path], object]] = {
        "corrupt.tif": lambda p: p.write_bytes(b"II*\x00" + rng.bytes(200)),
        "truncated.png": lambda p: p.write_bytes(_png_bytes(spread)[:400]),
        "empty.tif": lambda p: p.write_bytes(b""),
        "text.tif": lambda p: p.write_text("not an image"),
        "image.gif": lambda p: Image.fromarray(spread).save(p),
        "noext": lambda p: p.write_bytes(SAMPLE.read_bytes()),
        "one.png": lambda p: Image.new("L", (1, 1)).save(p),
        "tiny.tif": lambda p: tifffile.imwrite(p, rng.integers(0, 255, (10, 10), np.uint8)),
        "blank.tif": lambda p: tifffile.imwrite(p, np.zeros((200, 200), np.uint8)),
        "nan.tif": lambda p: tifffile.imwrite(p, np.where(spread > 100, np.nan, spread).astype(np.float32)),
        "inf.tif": lambda p: tifffile.imwrite(p, np.where(spread > 100, np.inf, spread).astype(np.float32)),
        "bool.tif": lambda p: tifffile.imwrite(p, spread > 100),
        "complex.tif": lambda p: tifffile.imwrite(p, spread.astype(np.complex64)),
        "stack.tif": lambda p: tifffile.imwrite(p, np.stack([spread] * 5)),
        "twoseries.tif": lambda p: (
            tifffile.imwrite(p, spread),
            tifffile.imwrite(p, spread[:100, :100], append=True),
        ),
        "bomb.tif": lambda p: _tiff_bomb(p, 40960),
        "bomb.png": lambda p: Image.new("L", (20000, 20000)).save(p),
        "frames.png": lambda p: Image.fromarray(spread).save(
            p, save_all=True, append_images=[Image.fromarray(spread)]
        ),
        "huge_strip.tif": lambda p: tifffile.imwrite(p, np.zeros((8, 100000), np.uint8)),
    }
    cases = []
    for name, make in files.items():
        make(d / name)
        cases.append(
            Case(f"image: {name}", ["analyze", str(d / name), "--out", str(root / "out")], "error", name)
        )
    os.mkfifo(d / "pipe.tif")
    (d / "loop.tif").symlink_to(d / "loop.tif")
    (d / "dangling.tif").symlink_to(d / "gone.tif")
    (d / "folder.tif").mkdir()
    for name in ("pipe.tif", "loop.tif", "dangling.tif", "missing.tif", "folder.tif"):
        cases.append(
            Case(f"path: {name}", ["analyze", str(d / name), "--out", str(root / "out")], "error", name)
        )
    return cases


def _png_bytes(a: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def variant_cases(root: Path) -> list[Case]:
    """Valid spreads in other formats, and non-spreads that must not get a confident karyotype."""
    d = root / "variants"
    d.mkdir()
    spread = tifffile.imread(SAMPLE)
    rgb = np.stack([spread] * 3, -1)
    rng = np.random.default_rng(1)
    strips = np.zeros((576, 768), np.uint8)
    strips[:, ::6] = 200
    files = {
        "u16.tif": lambda p: tifffile.imwrite(p, spread.astype(np.uint16) * 257),
        "float.tif": lambda p: tifffile.imwrite(p, spread.astype(np.float32) / 255),
        "rgb.png": lambda p: Image.fromarray(rgb).save(p),
        "rgba.png": lambda p: Image.fromarray(np.dstack([rgb, np.full(spread.shape, 255, np.uint8)])).save(p),
        "planar.tif": lambda p: tifffile.imwrite(p, np.moveaxis(rgb, -1, 0), photometric="rgb"),
        "spread.jpg": lambda p: Image.fromarray(spread).save(p, quality=95),
        "spread.bmp": lambda p: Image.fromarray(spread).save(p),
        "..tif": lambda p: shutil.copy(SAMPLE, p),
    }
    cases = []
    for name, make in files.items():
        make(d / name)
        out = root / f"out-{name}"
        folder = "image" if name == "..tif" else Path(name).stem
        cases.append(
            Case(
                f"valid: {name}",
                ["analyze", str(d / name), "--out", str(out)],
                "ok",
                check=lambda o, out=out, f=folder: _spread_ok(out, f),
            )
        )
    non = {
        "noise32.tif": rng.integers(0, 255, (32, 32), np.uint8),
        "noise512.tif": rng.integers(0, 255, (512, 512), np.uint8),
        "strips.tif": strips,
    }
    for name, pixels in non.items():
        tifffile.imwrite(d / name, pixels)
        out = root / f"out-{name}"
        cases.append(
            Case(
                f"non-spread: {name}",
                ["analyze", str(d / name), "--out", str(out)],
                "ok",
                check=lambda o, out=out, f=Path(name).stem: _not_a_karyotype(out, f),
            )
        )
    return cases


def batch_cases(root: Path) -> list[Case]:
    d = root / "batch"
    for sub in ("a", "b"):
        (d / sub).mkdir(parents=True)
        shutil.copy(SAMPLE, d / sub / "cell.tif")
    out1, out2 = root / "out-stems", root / "out-twice"

    def stems_ok(_):
        return sorted(p.name.split("-")[0] for p in out1.iterdir() if p.is_dir()) == ["cell", "cell"]

    def twice_ok(_):
        rows = (out2 / "manifest.csv").read_text().splitlines()[1:]
        return sorted(r.split(",")[2] for r in rows) == ["ok", "skipped"]

    return [
        Case(
            "batch: same stem in two folders",
            ["analyze", str(d / "a" / "cell.tif"), str(d / "b" / "cell.tif"), "--out", str(out1)],
            "ok",
            check=stems_ok,
        ),
        Case(
            "batch: the same file twice",
            ["analyze", str(d / "a" / "cell.tif"), str(d / "a" / "cell.tif"), "--out", str(out2)],
            "ok",
            check=twice_ok,
        ),
        Case(
            "batch: one corrupt among good",
            ["analyze", str(root / "images" / "corrupt.tif"), str(SAMPLE), "--out", str(root / "out-mixed")],
            "error",
            "corrupt.tif",
        ),
    ]


def output_cases(root: Path) -> list[Case]:
    afile = root / "a-file"
    afile.write_text("x")
    s = str(SAMPLE)
    return [
        Case("out: a file", ["analyze", s, "--out", str(afile)], "error", str(afile)),
        Case("out: empty", ["analyze", s, "--out", ""], "error", "--out ''"),
        Case("out: below a file", ["analyze", s, "--out", str(afile / "sub")], "error", "a-file"),
        Case(
            "out: disk full (ulimit -f)",
            ["analyze", s, "--out", str(root / "out-full"), "--report"],
            "error",
            "out-full",
            file_limit=20_000,
        ),
        Case("classify --out a folder", ["classify", s, "--out", str(root)], "error", str(root)),
        Case("case --out a folder", ["case", s, "--out", str(root)], "error", str(root)),
        Case("register --out a folder", ["register", s, s, "--out", str(root)], "error", str(root)),
        Case(
            "export-training --out a file",
            ["export-training", str(root), "--out", str(afile)],
            "error",
            str(afile),
        ),
        Case(
            "register: missing image",
            ["register", s, str(root / "gone.tif"), "--out", str(root / "t.json")],
            "error",
            "gone.tif",
        ),
    ]
