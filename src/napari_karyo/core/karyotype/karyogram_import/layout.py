"""Read a karyogram's layout: where each class's printed label sits.

Karyogram software prints the class names (1-22, X, Y) under each pair with anti-aliased (ClearType) text, so
every label has coloured fringe pixels even when it is printed black, while the chromosomes are exactly grey.
Labels are found as small clusters of coloured pixels, grouped into rows, and matched to the rows of a `Layout`
(class names per row, left to right). A label hidden under a chromosome is placed from its visible row
neighbours by a straight-line fit of position against index; a label is a narrow glyph (one character) or a
wide one (two), which tells which labels of a row the visible ones are.

Other stations' layouts are given by a small JSON or YAML file:

    name: cytovision-4-rows
    rows: [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11, 12], [13, 14, 15, 16, 17, 18], [19, 20, 21, 22, X, Y]]
    optional: [Y]          # may be left out at the end of its row (female cells)
    label_height: [6, 30]  # label glyph height range, pixels
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from napari_karyo.core.classes import IDS_BY_NAME
from napari_karyo.core.errors import KaryogramImportError

# Printed labels are evenly spaced along a row: a choice whose positions stray from a line by a fifth of the
# spacing (squared and summed, in spacings) costs more than a glyph whose width disagrees with its name (1), which
# a label half hidden under a chromosome can show ("1" of a "10" whose "0" is covered)
SPACING_WEIGHT = 10.0

STANDARD_ROWS = (
    ("1", "2", "3", "4", "5"),
    ("6", "7", "8", "9", "10", "11", "12"),
    ("13", "14", "15", "16", "17", "18"),
    ("19", "20", "21", "22", "X", "Y"),
)


@dataclass(frozen=True)
class Layout:
    name: str = "standard-4-rows"
    rows: tuple[tuple[str, ...], ...] = STANDARD_ROWS
    optional: tuple[str, ...] = ("Y",)
    label_height: tuple[int, int] = (6, 30)


@dataclass
class Label:
    name: str  # class name, "1".."22", "X", "Y"
    row: int  # index of the layout row
    y: float  # centre of the label, karyogram pixels
    x: float
    seen: bool = True  # False: hidden under a chromosome, placed from the layout


@dataclass
class _Box:
    y: float
    x: float
    h: int
    w: int
    slices: tuple = field(repr=False)


def load_layout(path: str | Path) -> Layout:
    """A `Layout` from a JSON or YAML file; KaryogramImportError naming the file when it is not one."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
        doc = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        rows = tuple(tuple(str(n) for n in row) for row in doc["rows"])
        optional = tuple(str(n) for n in doc.get("optional", ()))
        lo, hi = (int(v) for v in doc.get("label_height", (6, 30)))
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as exc:
        raise KaryogramImportError(
            f"{path}: not a karyogram layout file ({exc}); see the layout format in the docs"
        ) from exc
    names = [n for row in rows for n in row]
    bad = [n for n in names if n not in IDS_BY_NAME]
    if bad or not rows or len(set(names)) != len(names):
        raise KaryogramImportError(
            f"{path}: layout rows must name each class 1-22, X, Y at most once; got {bad or names}"
        )
    return Layout(name=str(doc.get("name", path.stem)), rows=rows, optional=optional, label_height=(lo, hi))


def text_mask(rgb: np.ndarray) -> np.ndarray:
    """Pixels that are not exactly grey: label text (and its anti-aliased fringe)."""
    a = rgb.astype(np.int16)
    return (a.max(axis=2) - a.min(axis=2)) > 0


def _boxes(rgb: np.ndarray, layout: Layout) -> list[_Box]:
    lab, _ = ndi.label(ndi.binary_dilation(text_mask(rgb), iterations=3))
    lo, hi = layout.label_height
    out = []
    for s in ndi.find_objects(lab):
        h, w = s[0].stop - s[0].start, s[1].stop - s[1].start
        if lo <= h <= hi and 4 <= w <= 2 * hi:
            out.append(_Box((s[0].start + s[0].stop) / 2, (s[1].start + s[1].stop) / 2, h, w, s))
    return out


def _rows(boxes: list[_Box], n_rows: int) -> list[list[_Box]]:
    """The n_rows fullest groups of boxes sharing a baseline, top to bottom."""
    groups: list[list[_Box]] = []
    for b in sorted(boxes, key=lambda b: b.y):
        if groups and abs(groups[-1][0].y - b.y) < max(4.0, 0.5 * b.h):
            groups[-1].append(b)
        else:
            groups.append([b])
    groups = sorted((g for g in groups if len(g) >= 2), key=len, reverse=True)[:n_rows]
    return [sorted(g, key=lambda b: b.x) for g in sorted(groups, key=lambda g: g[0].y)]


def _fit_row(
    row: list[_Box], names: tuple[str, ...], width: int, optional: tuple[str, ...] = ()
) -> tuple[tuple[int, ...], np.ndarray | None]:
    """Which of the row's names the visible boxes are: the choice whose positions are most evenly spaced
    (SPACING_WEIGHT), with a penalty for each glyph whose width (one or two characters) disagrees with the name,
    and for each hidden label the choice would put off the image (a hidden first label is not a missing last one)."""
    xs = np.array([b.x for b in row])
    h_med = float(np.median([b.h for b in row]))
    wide = [None if b.h < 0.85 * h_med else b.w / b.h > 1.1 for b in row]  # cut-off glyphs: width unknown
    best = (np.inf, tuple(range(len(row))), None)
    for idx in itertools.combinations(range(len(names)), len(row)):
        misfit = sum(w is not None and w != (len(names[i]) == 2) for w, i in zip(wide, idx, strict=True))
        coef = None
        if len(row) >= 2:
            a = np.c_[np.ones(len(row)), idx]
            coef = np.linalg.lstsq(a, xs, rcond=None)[0]
            misfit += SPACING_WEIGHT * float(np.sum((a @ coef - xs) ** 2)) / max(coef[1] ** 2, 1e-6)
            hidden = [
                coef[0] + coef[1] * i for i in range(len(names)) if i not in idx and names[i] not in optional
            ]
            misfit += 10.0 * sum(not 0 <= x < width for x in hidden)
        if misfit < best[0]:
            best = (misfit, idx, coef)
    return best[1], best[2]


def read_labels(rgb: np.ndarray, layout: Layout, path: str | Path = "karyogram") -> list[Label]:
    """Every class label of the karyogram, seen or placed from the layout.

    Raises KaryogramImportError naming `path` when the rows of labels do not fit the layout.
    """
    rows = _rows(_boxes(rgb, layout), len(layout.rows))
    found = sum(len(r) for r in rows)
    total = sum(len(r) for r in layout.rows)
    if len(rows) < len(layout.rows) or found < 0.6 * total:
        raise KaryogramImportError(
            f"{path}: karyogram layout not recognised: found {found} printed class labels in {len(rows)} rows, "
            f"layout '{layout.name}' has {total} in {len(layout.rows)} rows; describe this station's layout in a "
            "layout file (--layout)"
        )
    labels = []
    for r, (row, names) in enumerate(zip(rows, layout.rows, strict=True)):
        if len(row) > len(names):
            raise KaryogramImportError(
                f"{path}: karyogram layout not recognised: row {r + 1} shows {len(row)} labels, layout "
                f"'{layout.name}' has {len(names)}"
            )
        idx, coef = _fit_row(row, names, rgb.shape[1], layout.optional)
        y = float(np.median([b.y for b in row]))
        labels += [Label(names[i], r, y, b.x) for i, b in zip(idx, row, strict=True)]
        if coef is None:
            continue
        for i, name in enumerate(names):
            trailing_optional = name in layout.optional and i > max(idx)
            if i not in idx and not trailing_optional:
                labels.append(Label(name, r, y, float(coef[0] + coef[1] * i), seen=False))
    return labels


def label_boxes(rgb: np.ndarray, layout: Layout) -> np.ndarray:
    """Mask of the label glyphs, so they are not taken for chromosome pixels."""
    out = np.zeros(rgb.shape[:2], dtype=bool)
    for b in _boxes(rgb, layout):
        out[b.slices] = True
    return out
