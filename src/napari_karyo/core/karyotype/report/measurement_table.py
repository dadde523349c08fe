"""Measurements as a table: one row per chromosome, measured next to the ISCN reference values."""

from __future__ import annotations

import numpy as np

from napari_karyo.core import classes
from napari_karyo.core.karyotype.infer.measure import Measurement
from napari_karyo.core.results import SpreadResult

BANDING_SAMPLES = 50  # banding profile resampled to this many points for tables and the CSV


def banding_string(banding: np.ndarray, samples: int = BANDING_SAMPLES) -> str:
    """The banding profile resampled to a fixed number of points (p tip -> q tip), as ';'-joined text."""
    if len(banding) == 0:
        return ""
    x = np.linspace(0, len(banding) - 1, samples)
    return ";".join(f"{v:.3f}" for v in np.interp(x, np.arange(len(banding)), banding))


TABLE_COLUMNS = (
    "id",
    "class",
    "group",
    "length_px",
    "relative_length",
    "relative_length_iscn",
    "centromeric_index",
    "centromeric_index_iscn",
    "p_length_px",
    "q_length_px",
    "centromere_row",
    "centromere_col",
    "flipped",
    "area_px",
    "banding",
)


def measurements_table(result: SpreadResult, measurements: list[Measurement]) -> list[dict]:
    """One row per chromosome for `layer.features` and the CSV; `id` is the Labels id (index + 1)."""
    rows = []
    for m in measurements:
        c = result.chromosomes[m.index]
        rows.append(
            {
                "id": m.index + 1,
                "class": classes.name(c.class_id),
                "group": classes.group(c.class_id),
                "length_px": round(m.length_px, 2),
                "relative_length": round(m.relative_length, 3),
                "relative_length_iscn": classes.RELATIVE_LENGTH.get(c.class_id, float("nan")),
                "centromeric_index": round(m.centromeric_index, 2),
                "centromeric_index_iscn": classes.CENTROMERIC_INDEX.get(c.class_id, float("nan")),
                "p_length_px": round(m.p_length, 2),
                "q_length_px": round(m.q_length, 2),
                "centromere_row": round(m.centromere_rc[0], 2),
                "centromere_col": round(m.centromere_rc[1], 2),
                "flipped": m.flipped,
                "area_px": c.area,
                "banding": banding_string(m.banding),
            }
        )
    return rows
