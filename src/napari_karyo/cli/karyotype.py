"""`napari-karyo analyze | classify | case | export-training`: chromosome jobs in a terminal."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

from napari_karyo.cli.mfish import add_analyze_options
from napari_karyo.cli.progress import run_with_progress, write_out
from napari_karyo.core.classes import IDS_BY_NAME
from napari_karyo.core.errors import ImageReadError
from napari_karyo.core.karyotype.batch import Options, run_batch
from napari_karyo.core.karyotype.edit.project import Project, read_any_result
from napari_karyo.core.karyotype.edit.training_export import export_corrections
from napari_karyo.core.karyotype.infer.assign import assign_spread
from napari_karyo.core.karyotype.infer.classifier import classify_files, load_classifier
from napari_karyo.core.karyotype.infer.predict import analyze_steps
from napari_karyo.core.karyotype.report.case import case_iscn, case_table, rank_spreads, write_case_csv
from napari_karyo.core.storage.atomic import write_text
from napari_karyo.core.storage.images import IMAGE_SUFFIXES, read_image
from napari_karyo.core.storage.inputs import check_out_dir, check_out_file
from napari_karyo.core.storage.project_files import is_project
from napari_karyo.core.storage.result_files import ANNOTATIONS


def cmd_analyze(args) -> int:
    """A batch: every input is one row of OUT/manifest.csv; failures are listed at the end and set exit 2."""
    opts = Options(
        out=args.out,
        model=args.model,
        classifier=args.classifier,
        clusters=args.clusters,
        device=args.device,
        overwrite=args.overwrite,
        report=args.report,
        threads=args.threads,
        kit=args.kit,
        kit_model=args.kit_model,
        dapi_only=args.dapi_only,
        colour_split=not args.no_colour_split,
        keep_ringed=args.keep_ringed,
        spreads_per_pass=args.spreads_per_pass,
    )
    out = Path(args.out)
    rows, manifest = run_batch(
        args.images,
        opts,
        workers=args.workers,
        scheduler=args.scheduler,
        redo=args.redo,
        on_row=lambda row: _show(row, out),
    )
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "skipped", "failed")}
    done_before = sum(r["status"] == "skipped" and r["error"].startswith("done before") for r in rows)
    if done_before:
        print(f"{done_before} input(s) skipped: done before by the same models (--redo analyses them again)")
    failed = [r for r in rows if r["status"] == "failed"]
    if failed and len(rows) > 1:
        print(f"{len(failed)} input(s) failed:", file=sys.stderr)
        for r in failed:
            print(f"  {r['error']}", file=sys.stderr)
    print(f"{counts['ok']} analysed, {counts['skipped']} skipped, {counts['failed']} failed -> {manifest}")
    return 2 if failed else 0


def _show(row: dict, out: Path) -> None:
    """One finished input, as it finishes."""
    if row["status"] == "failed":
        print(f"error: {row['error']}", file=sys.stderr)
    if row["status"] != "ok":
        return
    classes = " ".join(f"{k}:{v}" for k, v in sorted(row["classes"].items(), key=lambda kv: _order(kv[0])))
    print(
        f"{Path(row['path']).name}: {row['headline']} ({row['count']} objects) in {row['seconds']:.2f} s on "
        f"{row['device']} -> {out / row['output']}\n  {classes}"
    )
    for warning in filter(None, row["warnings"].split(" | ")):
        print(f"  warning: {warning}", file=sys.stderr)


def _order(name: str) -> int:

    return IDS_BY_NAME.get(name, 99)


def cmd_classify(args) -> int:
    check_out_file(args.out)
    model = load_classifier(args.model, device=args.device) if args.model or args.device else None
    rows = classify_files(args.crops, model=model, group_by=args.group_by)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "class", "score"])
    for path, name, score in rows:
        writer.writerow([path, name, f"{score:.4f}"])
    write_out(args.out, lambda: write_text(args.out, buf.getvalue()))
    print(f"{len(rows)} crops classified -> {args.out}")
    return 0


def _is_result(folder: Path) -> bool:
    """A result folder of `analyze`, or an image's project folder (its latest corrections are the result)."""
    return (folder / ANNOTATIONS).is_file() or is_project(folder)


def _case_inputs(items: list[str]) -> list[Path]:
    """Result folders and image files of one case, in the order given; a folder of images or of result folders
    is expanded (sorted)."""

    out: list[Path] = []
    for item in map(Path, items):
        if item.is_dir() and not _is_result(item):
            inner = sorted(
                p
                for p in item.iterdir()
                if _is_result(p) or (p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            )
            if not inner:
                raise ImageReadError(f"{item}: holds no spread images and no result folders")
            out += inner
        elif item.exists():
            out.append(item)
        else:
            raise ImageReadError(f"{item}: no such file or folder")
    return out


def cmd_case(args) -> int:
    check_out_file(args.out)
    results = []
    for path in _case_inputs(args.inputs):
        if path.is_dir():
            result = read_any_result(path)
        else:
            result = run_with_progress(
                analyze_steps(
                    read_image(path),
                    model=args.model,
                    classifier=args.classifier,
                    device=args.device,
                    source_path=str(path),
                    keep_ringed=args.keep_ringed,
                ),
                path.name,
                args.quiet,
            )
        if not args.keep_classes:
            assign_spread(result)
        results.append(result)
    ranking = rank_spreads(results)
    analysed = {idx for idx, _, _ in ranking[: args.analyse]}
    rows = case_table(results, analysed)
    karyotype = case_iscn([r.iscn for r in rows])
    write_out(args.out, lambda: write_case_csv(args.out, rows, ranking, karyotype))
    by_index = {r.index: r for r in rows}
    print("rank  score  cell                          objects  count  karyotype               analyse  notes")
    for pos, (idx, score, reasons) in enumerate(ranking, 1):
        r = by_index[idx]
        print(
            f"{pos:>4}  {score:>5.1f}  {r.image[:28]:<28}  {r.objects:>7}  {r.count:>5}  {r.iscn[:22]:<22}  "
            f"{'yes' if r.analysed else 'no':<7}  {'; '.join(reasons)}"
        )
    print(f"case: {karyotype} ({len(rows)} cells) -> {args.out}")
    return 0


def cmd_export_training(args) -> int:
    """The image's parent folder names its case (one folder per case), so a case never straddles the split."""
    check_out_dir(args.out)
    _, summary = export_corrections(
        args.folders, args.out, val_fraction=args.val_fraction, seed=args.seed, case_by=args.case_by,
        include_model_only=args.include_model_only,
        named_only=args.named_only,
    )  # fmt: skip
    print(summary)
    return 0


def cmd_recover(args) -> int:
    project, aside = Project.recover(args.image)
    result = project.session.result
    print(
        f"{project.folder}: restarted from the last checkpoint ({result.corrections} corrections, status "
        f"{result.status}); the damaged folder is kept as {aside}"
    )
    return 0


def add_commands(sub) -> None:
    a = sub.add_parser("analyze", help="segment and name the chromosomes of metaphase spreads (a batch)")
    a.add_argument(
        "images",
        nargs="+",
        metavar="INPUT",
        help="spread images (TIFF, PNG, JPEG, BMP) or M-FISH cells (OME-TIFF, ADIR plane), folders of them, glob patterns ('archive/**/*.tif') or list "
        "files (.txt/.lst: one path a line)",
    )
    a.add_argument(
        "--out", required=True, help="output folder: OUT/<image stem>/ per input, and OUT/manifest.csv"
    )
    a.add_argument(
        "--report",
        action="store_true",
        help="also render karyogram.png, report.pdf and measurements.csv (they take longer than the analysis)",
    )
    a.add_argument("--workers", type=int, default=1, help="analyse N spreads at once in local processes (1)")
    a.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on a dask.distributed cluster, e.g. tcp://10.0.0.5:8786 (the workers must see the inputs and "
        "OUT at the same paths)",
    )
    a.add_argument("--threads", type=int, help="torch threads per worker (default: torch's choice)")
    a.add_argument(
        "--spreads-per-pass",
        type=int,
        metavar="N",
        help="grey spreads the detector takes in one forward pass (default: 4 on a GPU, 1 on the CPU, where "
        "batching gains nothing); results are the same as one at a time",
    )
    _add_keep_ringed(a)
    a.add_argument("--redo", action="store_true", help="analyse again inputs whose outputs are complete")
    a.add_argument(
        "--model",
        help="segmentation model file (default: the bundled one; chromosome-maskrcnn-colour for M-FISH cells "
        "named by colour)",
    )
    a.add_argument("--classifier", help="chromosome classifier model file (default: the bundled one)")
    a.add_argument("--clusters", help="cluster-type model file (default: the bundled one)")
    a.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    a.add_argument("--overwrite", action="store_true", help="replace results that hold user corrections")
    add_analyze_options(a)
    a.set_defaults(func=cmd_analyze)

    c = sub.add_parser("classify", help="name single-chromosome crops")
    c.add_argument("crops", nargs="+", help="crop images, one chromosome each (a folder's crops: one cell)")
    c.add_argument("--out", required=True, help="CSV with columns path,class,score")
    c.add_argument("--model", help="classifier model file or bundled name (default: the bundled one)")
    c.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    c.add_argument(
        "--group-by",
        choices=["parent", "none"],
        default="parent",
        help="crops in one folder are one cell (relative sizes help naming)",
    )
    c.set_defaults(func=cmd_classify)

    k = sub.add_parser(
        "case", help="counting mode: rank a case's spreads, count each cell, case karyotype (ISCN)"
    )
    k.add_argument(
        "inputs",
        nargs="+",
        metavar="FOLDER_OR_IMAGES",
        help="spread images, result folders of `analyze`, or folders holding either",
    )
    k.add_argument(
        "--out", required=True, help="CSV table: one row per cell (rank, count, sex, ISCN), then the case"
    )
    k.add_argument(
        "--analyse", type=int, default=5, help="mark the N best-ranked cells for full analysis (5)"
    )
    k.add_argument(
        "--keep-classes",
        action="store_true",
        help="use the stored classes as they are (default: cell-level assignment; user edits are kept)",
    )
    _add_keep_ringed(k)
    k.add_argument("--model", help="segmentation model file (default: the bundled one)")
    k.add_argument("--classifier", help="chromosome classifier model file (default: the bundled one)")
    k.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    k.set_defaults(func=cmd_case)

    e = sub.add_parser(
        "export-training", help="export corrected results as a training set (COCO, TIFFs, CSV, splits)"
    )
    e.add_argument(
        "folders",
        nargs="*",
        help="spread images or folders of them (their projects are found in the per-user projects folder or "
        "beside them), result folders of `analyze`, or project folders; none: every project in the per-user "
        "projects folder",
    )
    e.add_argument("--out", required=True, help="training set folder")
    e.add_argument("--val-fraction", type=float, default=0.2, help="share of cases for validation (0.2)")
    e.add_argument("--seed", type=int, default=0, help="seed of the split by case")
    e.add_argument(
        "--case-by",
        choices=["folder", "stem"],
        default="folder",
        help="what names an image's case: its parent folder (default), or its own name (one cell per case, "
        "e.g. an imported karyogram archive in one folder)",
    )
    e.add_argument(
        "--include-model-only", action="store_true", help="also results nobody corrected or accepted"
    )
    e.add_argument(
        "--named-only",
        action="store_true",
        help="leave out objects without a class (for karyogram imports: nuclei, debris and chromosomes the lab "
        "left out), so a segmenter learns them as background",
    )
    e.set_defaults(func=cmd_export_training)

    rc = sub.add_parser(
        "recover",
        help="restart an image's corrections from their last checkpoint when the journal cannot be replayed "
        "(the damaged project folder is kept aside)",
    )
    rc.add_argument("image", help="the spread image whose <stem>.karyo folder to recover")
    rc.set_defaults(func=cmd_recover)


def _add_keep_ringed(parser) -> None:
    parser.add_argument(
        "--keep-ringed",
        action="store_true",
        help="keep objects inside red contours drawn on an exported spread (by default they are left out as the "
        "lab's debris, with a warning)",
    )
