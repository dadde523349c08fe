"""`napari-karyo import-karyogram`: a lab's finished karyograms matched back to their spreads, as results."""

from __future__ import annotations

import sys
from pathlib import Path

from napari_karyo.cli.progress import run_with_progress
from napari_karyo.core.errors import KaryoError
from napari_karyo.core.karyotype.edit.project import Project
from napari_karyo.core.karyotype.karyogram_import.importer import import_steps, pair_files, write_import
from napari_karyo.core.karyotype.karyogram_import.layout import Layout, load_layout


def _pairs(args) -> list[tuple[Path, Path]]:
    single = args.spread is not None or args.karyogram is not None
    batch = args.spreads is not None or args.karyograms is not None
    if (
        single == batch
        or (single and args.karyogram is None)
        or (batch and None in (args.spreads, args.karyograms))
    ):
        raise KaryoError(
            "give either SPREAD KARYOGRAM, or --spreads DIR --karyograms DIR [--pattern '{stem}k']"
        )
    if single:
        return [(Path(args.spread), Path(args.karyogram))]
    return pair_files(args.spreads, args.karyograms, args.pattern)


def cmd_import_karyogram(args) -> int:
    layout = load_layout(args.layout) if args.layout else Layout()
    failures = 0
    for spread, karyogram in _pairs(args):
        try:
            if args.project:  # refused before anything is written, not after the result
                Project.check_start(spread, overwrite=args.overwrite)
            imp = run_with_progress(import_steps(spread, karyogram, layout), spread.name, args.quiet)
            folder = write_import(imp, args.out, overwrite=args.overwrite)
            if args.project:  # opening the spread in napari then goes on from the import, journalled
                Project.start(spread, imp.result, overwrite=args.overwrite)
        except KaryoError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failures += 1
            continue
        review = sum(bool(c.review) for c in imp.result.chromosomes)
        lost = " ".join(u["class"] for u in imp.unmatched)
        print(
            f"{spread.name}: karyogram {imp.karyogram_iscn}, {imp.placed} of {imp.cutouts} chromosomes placed"
            f"{f' (not found: {lost})' if lost else ''}, {imp.unexplained} spread objects unexplained, "
            f"{review} to review, {imp.result.seconds:.1f} s -> {folder}"
        )
        if imp.reading_note:
            print(f"{spread.name}: note: {imp.reading_note}")
    return 2 if failures else 0


def add_commands(sub) -> None:
    k = sub.add_parser(
        "import-karyogram",
        help="match the chromosomes of finished karyograms back to their spreads: masks + classes as results",
    )
    k.add_argument("spread", nargs="?", help="spread image")
    k.add_argument("karyogram", nargs="?", help="the karyogram made from that spread")
    k.add_argument("--spreads", help="batch: folder of spread images")
    k.add_argument("--karyograms", help="batch: folder of karyograms")
    k.add_argument(
        "--pattern",
        default="{stem}k",
        help="batch: karyogram name for spread <stem> ('{stem}k': 12.png -> 12k.png)",
    )
    k.add_argument(
        "--layout", help="layout file (JSON/YAML) of another station's karyograms (default: 4 rows)"
    )
    k.add_argument("--out", required=True, help="output folder; results go to OUT/<spread stem>/")
    k.add_argument(
        "--project",
        action="store_true",
        help="also start the spread's correction project from the import: opening the spread in napari "
        "(Karyotype dock, Labelling queue) goes on from it, every edit journalled; a project that holds "
        "corrections is kept unless --overwrite (then it is set aside, never deleted)",
    )
    k.add_argument(
        "--overwrite",
        action="store_true",
        help="replace results that hold user corrections (with --project, a project holding corrections is set aside)",
    )
    k.set_defaults(func=cmd_import_karyogram)
