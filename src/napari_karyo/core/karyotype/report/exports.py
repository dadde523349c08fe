"""A spread's karyotype as files: karyogram PNG, one-page report, measurements CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_karyo.core.karyotype.infer.measure import SpreadMeasurer
from napari_karyo.core.karyotype.report.headline import headline
from napari_karyo.core.karyotype.report.karyogram import build_karyogram
from napari_karyo.core.karyotype.report.measurement_table import measurements_table
from napari_karyo.core.karyotype.report.report import (
    write_karyogram_png,
    write_measurements_csv,
    write_report,
)
from napari_karyo.core.results import SpreadResult
from napari_karyo.core.storage.settings import setting

KARYOGRAM_PNG = "karyogram.png"
REPORT_PDF = "report.pdf"
MEASUREMENTS_CSV = "measurements.csv"


def write_karyotype_files(folder: str | Path, image: np.ndarray, result: SpreadResult) -> list[Path]:
    """karyogram.png, report.pdf and measurements.csv for `result` into `folder` (each written atomically).
    `image` is the spread as the user sees it (original polarity)."""

    folder = Path(folder)
    ms = SpreadMeasurer(image, known=result.measurements).measure(result)  # only what `analyze` did not
    kg = build_karyogram(image, result, ms)
    rows = measurements_table(result, ms)
    line = str(headline(result))
    title = Path(result.source_path).name
    return [
        write_karyogram_png(folder / KARYOGRAM_PNG, kg, title=f"{title}  {line}".strip()),
        write_report(folder / REPORT_PDF, image, result, kg, rows, line, analyst=setting("analyst")),
        write_measurements_csv(folder / MEASUREMENTS_CSV, rows),
    ]
