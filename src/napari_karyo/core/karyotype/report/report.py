"""Exports of an analysed cell: karyogram PNG (publication quality), a one-page report (PNG or PDF) and the
measurements CSV. matplotlib runs on its Agg canvas only (no pyplot, no Qt), so this works in the CLI, in
tests and inside napari alike. Every file is written atomically.
"""

from __future__ import annotations

import csv
import io
import math
from datetime import date
from pathlib import Path

import numpy as np

from napari_karyo import __version__
from napari_karyo.core import classes
from napari_karyo.core.karyotype.report.karyogram import Karyogram
from napari_karyo.core.karyotype.report.measurement_table import TABLE_COLUMNS
from napari_karyo.core.results import SpreadResult
from napari_karyo.core.storage.atomic import atomic_path, write_text

A4_INCHES = (8.27, 11.69)
RESEARCH_USE = "For research use only. Not for diagnostic use."


def header_lines(result: SpreadResult, analyst: str = "") -> list[str]:
    """The report's header block: what was analysed, when, by whom and with which models, and its status."""
    source = Path(result.source_path) if result.source_path else None
    status = result.status if result.status == "accepted" else f"{result.status} (not signed off)"
    return [
        f"image: {source.name if source else '–'}    case: {source.parent.name if source else '–'}    "
        f"date: {date.today().isoformat()}    analyst: {analyst or '–'}",
        f"status: {status}    corrections: {result.corrections}    "
        f"models: {result.model or '–'}    napari-karyo {__version__}",
    ]


def write_measurements_csv(path: str | Path, rows: list[dict]) -> Path:
    """`measurement_table.measurements_table` rows as CSV; a spread without objects still gets the header."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else TABLE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return write_text(path, buf.getvalue())


def write_karyogram_png(
    path: str | Path, kg: Karyogram, dpi: int = 300, title: str = "", scale: float = 4.0
) -> Path:
    """The karyogram with class labels and group letters; `scale` output pixels per karyogram pixel."""
    from matplotlib.figure import Figure

    h, w = kg.labels.shape
    top = 0.35 if title else 0.0  # inches for the title
    fig = Figure(figsize=(w * scale / dpi, h * scale / dpi + top), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, h * scale / dpi / (h * scale / dpi + top)))
    _draw_karyogram(ax, kg, points_per_px=scale / dpi * 72)
    if title:
        fig.suptitle(title, fontsize=10, y=0.995, va="top")
    return _save(fig, path, dpi)


def write_report(
    path: str | Path,
    image: np.ndarray,
    result: SpreadResult,
    kg: Karyogram,
    rows: list[dict],
    iscn: str,
    title: str = "",
    dpi: int = 200,
    analyst: str = "",
) -> Path:
    """One A4 page: a header (image, case, date, analyst, status, corrections, models, "for research use"),
    ISCN and counts, the spread with class-coloured outlines, the karyogram and the measurements
    table (`measurement_table.measurements_table` rows). PDF when `path` ends in .pdf, PNG otherwise."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=A4_INCHES, dpi=dpi)
    fig.text(0.04, 0.985, title or Path(result.source_path).name or "metaphase spread", fontsize=11, va="top")
    fig.text(0.96, 0.985, RESEARCH_USE, fontsize=7, va="top", ha="right", style="italic")
    fig.text(0.04, 0.965, "\n".join(header_lines(result, analyst)), fontsize=6.5, va="top", linespacing=1.4)
    fig.text(0.04, 0.935, iscn, fontsize=14, weight="bold", va="top")
    fig.text(0.04, 0.915, _counts_line(result), fontsize=7, va="top", wrap=True)

    ax_img = fig.add_axes((0.03, 0.52, 0.45, 0.38))
    _draw_spread(ax_img, image, result)
    ax_kg = fig.add_axes((0.52, 0.52, 0.45, 0.38))
    kh, kw = kg.labels.shape
    box_pts = min(0.45 * A4_INCHES[0] / kw, 0.38 * A4_INCHES[1] / kh) * 72  # points per karyogram px
    _draw_karyogram(ax_kg, kg, points_per_px=box_pts)

    columns = [
        "id",
        "class",
        "length_px",
        "relative_length",
        "relative_length_iscn",
        "centromeric_index",
        "centromeric_index_iscn",
    ]
    header = ["id", "class", "length px", "rel. len %\nmeasured", "rel. len %\nISCN ref.", "CI %\nmeasured",
              "CI %\nISCN ref."]  # fmt: skip
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    halves = [cells[: math.ceil(len(cells) / 2)], cells[math.ceil(len(cells) / 2) :]]
    for k, part in enumerate(halves):
        ax = fig.add_axes((0.03 + 0.485 * k, 0.03, 0.455, 0.46))
        ax.axis("off")
        if part:
            table = ax.table(cellText=part, colLabels=header, loc="upper center", cellLoc="right")
            table.auto_set_font_size(False)
            table.set_fontsize(6)
            table.scale(1, min(1.0, 46 / len(cells)))  # more rows than a normal cell: shrink them to fit
            for j in range(len(header)):  # two-line column names (measured / ISCN reference)
                table[0, j].set_height(table[0, j].get_height() * 1.8)
    return _save(fig, path, dpi)


def _draw_karyogram(ax, kg: Karyogram, points_per_px: float) -> None:
    shown = _displayable(kg.image)
    ax.imshow(shown, cmap="gray", interpolation="nearest", vmin=0, vmax=1)
    ax.set_axis_off()
    ink = "black" if float(np.mean(shown[:2])) > 0.5 else "white"  # the top rows are background
    size = max(kg.text_height * 0.7 * points_per_px, 3.0)
    for name, (r, c) in kg.texts:
        ax.text(c, r, name, ha="center", va="center", fontsize=size, color=ink)
    for g, (r, c) in kg.groups:
        ax.text(c, r, g, ha="left", va="center", fontsize=size, color=ink, weight="bold")


def _draw_spread(ax, image: np.ndarray, result: SpreadResult) -> None:
    from skimage.measure import find_contours

    ax.imshow(_displayable(image), cmap="gray", interpolation="antialiased", vmin=0, vmax=1)
    ax.set_axis_off()
    for c in result.chromosomes:
        colour = classes.colour(c.class_id)
        for contour in find_contours(np.pad(c.mask, 1).astype(np.float32), 0.5):
            ax.plot(contour[:, 1] - 1 + c.offset[1], contour[:, 0] - 1 + c.offset[0], lw=0.5, color=colour)
        r0, c0, _r1, c1 = c.bbox
        ax.text((c0 + c1) / 2, r0 - 1, c.name, fontsize=4, color=colour, ha="center", va="bottom")


def _counts_line(result: SpreadResult) -> str:
    counts = result.class_counts()
    parts = [f"{classes.name(c)}:{counts.get(classes.name(c), 0)}" for c in classes.CLASS_IDS]
    if counts.get("?"):
        parts.append(f"unnamed:{counts['?']}")
    return f"{result.count} chromosomes    " + "  ".join(parts)


def _displayable(image: np.ndarray) -> np.ndarray:
    """Float in [0, 1] for imshow: integer images by their type's range (8-bit unless values exceed it),
    float images by their own range."""
    img = np.asarray(image)
    if np.issubdtype(img.dtype, np.integer):
        top = 255.0 if img.max() <= 255 else float(np.iinfo(img.dtype).max)
        return img.astype(np.float32) / top
    lo, hi = float(img.min()), float(img.max())
    return (img.astype(np.float32) - lo) / max(hi - lo, 1e-6)


def _fmt(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.1f}"
    return str(value)


def _save(fig, path: str | Path, dpi: int) -> Path:
    path = Path(path)
    fmt = "pdf" if path.suffix.lower() == ".pdf" else "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, facecolor="white")
    return path
