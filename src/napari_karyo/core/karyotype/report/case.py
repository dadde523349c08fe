"""Counting mode for a case (the clinical rule: count 20 cells, analyse 5): a table with one row per cell, the case
karyotype in ISCN `[n]` notation, and a ranking of the spreads by how well they can be analysed.

Case karyotype rule (ISCN 2020, clones): cells with an identical karyotype form a clone when there are at least two
of them with a gain, or at least three with a loss (a cell with both needs three). Abnormal clones are listed
first, largest first; normal cells (46,XX / 46,XY) last, e.g. `47,XY,+21[2]/46,XY[18]`. Cells that belong to no
clone are non-clonal: they stay in the table but not in the string. When no cell qualifies (e.g. a single cell
counted), the most frequent karyotype is listed so a result is never empty.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_karyo.core.iscn import Karyotype, UnsupportedKaryotype, karyotype_of, parse_iscn
from napari_karyo.core.results import SpreadResult
from napari_karyo.core.storage.atomic import write_text

# ranking weights (points off 100 per unit): a wrong count or a cluster costs the user a split/join each
COUNT_POINTS = 5.0
CLUSTER_POINTS = 4.0
UNNAMED_POINTS = 2.0
DEBRIS_POINTS = 2.0
NUCLEUS_POINTS = 3.0
LENGTH_POINTS = 10.0  # per halving/doubling of mean length against the case median (condensation)
CLUSTER_AREA = 2.2  # x median object area: above chromosome 1 (~1.9x), so likely two or more touching
DEBRIS_AREA = 0.3  # x median object area: below the Y chromosome (~0.45x)


@dataclass
class CellRow:
    index: int  # position in the case's list of spreads
    image: str
    objects: int  # objects found
    count: int  # chromosomes counted (named objects)
    sex: str
    iscn: str
    analysed: bool
    unnamed: int


def cell_karyotype(result: SpreadResult) -> Karyotype:
    """The karyotype of one spread from its chromosomes' current classes (0 = not counted)."""
    return karyotype_of([c.class_id for c in result.chromosomes])


def case_table(results: Sequence[SpreadResult], analysed: set[int] | None = None) -> list[CellRow]:
    """One row per spread, in input order. `analysed`: indices of the cells analysed in full (None: all)."""
    rows = []
    for i, res in enumerate(results):
        kt = cell_karyotype(res)
        rows.append(
            CellRow(
                index=i,
                image=Path(res.source_path).name if res.source_path else f"cell {i + 1}",
                objects=res.count,
                count=kt.count,
                sex=kt.sex,
                iscn=str(kt),
                analysed=analysed is None or i in analysed,
                unnamed=sum(c.class_id == 0 for c in res.chromosomes),
            )
        )
    return rows


def _clonal(kt: Karyotype | None, cells: int) -> bool:
    if kt is None:  # a string we cannot read: identical ones still make a clone, by the stricter rule
        return cells >= 3
    if kt.losses or len(kt.sex) < 2:
        return cells >= 3
    return cells >= 2


def case_iscn(cell_iscns: Sequence[str]) -> str:
    """Case karyotype with cell counts, e.g. `47,XY,+21[2]/46,XY[18]` (rule in the module docstring)."""
    groups = Counter(s for s in cell_iscns if s)
    if not groups:
        return ""
    parsed: dict[str, Karyotype | None] = {}
    for s in groups:
        try:
            parsed[s] = parse_iscn(s)
        except UnsupportedKaryotype:
            parsed[s] = None
    order = {s: i for i, s in reversed(list(enumerate(cell_iscns)))}  # first appearance breaks ties
    by_size = sorted(groups, key=lambda s: (-groups[s], order[s]))
    normal = [s for s in by_size if parsed[s] is not None and parsed[s].is_normal]
    abnormal = [s for s in by_size if s not in normal and _clonal(parsed[s], groups[s])]
    listed = abnormal + normal[:1] + [s for s in normal[1:] if groups[s] >= 2]
    if not listed:
        listed = by_size[:1]
    return "/".join(f"{s}[{groups[s]}]" for s in listed)


# ----------------------------------------------------------------------------------------------------- ranking
def _length(mask: np.ndarray) -> float:
    """Major axis of the equivalent ellipse, from second moments (no scikit-image import)."""
    rows, cols = np.nonzero(mask)
    if rows.size < 2:
        return float(rows.size)
    cov = np.cov(np.stack([rows, cols]).astype(np.float64))
    return 4.0 * float(np.sqrt(max(np.linalg.eigvalsh(cov)[-1], 0.0)))


def rank_spreads(
    results: Sequence[SpreadResult], measurements: Sequence[dict | None] | None = None
) -> list[tuple[int, float, list[str]]]:
    """Spreads best first as (index, score 0-100, reasons). Points come off for a count away from 46, clusters,
    unnamed objects, debris and nuclei, and short (condensed) chromosomes relative to the case's other spreads.

    `measurements[i]` may give `clusters`, `debris`, `nuclei` (counts) and `mean_length` (pixels) from other steps;
    what is missing is estimated from the masks (objects far above / below the median area)."""
    measurements = list(measurements) if measurements is not None else []
    stats = []
    for i, res in enumerate(results):
        m = dict(measurements[i] or {}) if i < len(measurements) else {}
        areas = np.array([c.area for c in res.chromosomes], dtype=float)
        median = float(np.median(areas)) if areas.size else 0.0
        if "clusters" not in m:
            m["clusters"] = int((areas > CLUSTER_AREA * median).sum()) if median else 0
        if "debris" not in m:
            m["debris"] = int((areas < DEBRIS_AREA * median).sum()) if median else 0
        if "mean_length" not in m and areas.size:
            m["mean_length"] = float(np.mean([_length(c.mask) for c in res.chromosomes]))
        stats.append(m)
    lengths = [s["mean_length"] for s in stats if s.get("mean_length")]
    ref = float(np.median(lengths)) if lengths else 0.0
    ranked = []
    for i, (res, m) in enumerate(zip(results, stats, strict=True)):
        if res.count == 0:
            ranked.append((i, 0.0, ["no chromosomes found"]))
            continue
        score, reasons = 100.0, []
        named = sum(c.class_id != 0 for c in res.chromosomes)
        off = abs(res.count - 46)
        if off:
            score -= COUNT_POINTS * min(off, 10)
            reasons.append(f"{res.count} objects ({res.count - 46:+d} from 46)")
        for key, points, text in (
            ("clusters", CLUSTER_POINTS, "likely cluster(s) to split"),
            ("debris", DEBRIS_POINTS, "small fragment(s) or debris"),
            ("nuclei", NUCLEUS_POINTS, "interphase nucleus/nuclei"),
        ):
            n = int(m.get(key) or 0)
            if n:
                score -= points * n
                reasons.append(f"{n} {text}")
        if res.count - named:
            score -= UNNAMED_POINTS * (res.count - named)
            reasons.append(f"{res.count - named} unnamed")
        if ref and m.get("mean_length"):
            rel = float(np.log2(m["mean_length"] / ref))
            score += LENGTH_POINTS * float(np.clip(rel, -1.0, 1.0))
            if rel <= -0.25:
                reasons.append("short chromosomes (condensed)")
            elif rel >= 0.25:
                reasons.append("long chromosomes (less condensed)")
        ranked.append((i, round(float(np.clip(score, 0.0, 100.0)), 1), reasons or ["count 46, no clusters"]))
    ranked.sort(key=lambda r: (-r[1], r[0]))
    return ranked


# --------------------------------------------------------------------------------------------------------- CSV
CSV_COLUMNS = ("cell", "image", "rank", "score", "objects", "count", "sex", "iscn", "analysed", "notes")


def case_csv(
    rows: Sequence[CellRow], ranking: Sequence[tuple[int, float, list[str]]] = (), case_karyotype: str = ""
) -> str:
    """CSV text: one line per cell in rank order (input order without a ranking), then a `case` line."""
    rank = {idx: (pos + 1, score, reasons) for pos, (idx, score, reasons) in enumerate(ranking)}
    ordered = sorted(rows, key=lambda r: rank.get(r.index, (len(rows) + r.index + 1,))[0])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in ordered:
        pos, score, reasons = rank.get(r.index, ("", "", []))
        writer.writerow(
            [
                r.index + 1,
                r.image,
                pos,
                score,
                r.objects,
                r.count,
                r.sex,
                r.iscn,
                "yes" if r.analysed else "no",
                "; ".join(reasons),
            ]
        )
    counts = Counter(r.count for r in rows)
    modal = max(counts, key=lambda c: (counts[c], -abs(c - 46))) if counts else ""
    writer.writerow(
        ["case", f"{len(rows)} cells", "", "", "", modal, "", case_karyotype, "", "count = modal count"]
    )
    return buf.getvalue()


def write_case_csv(
    path: str | os.PathLike,
    rows: Sequence[CellRow],
    ranking: Sequence[tuple[int, float, list[str]]] = (),
    case_karyotype: str = "",
) -> Path:
    """Write `case_csv` atomically to `path`."""
    return write_text(path, case_csv(rows, ranking, case_karyotype))
