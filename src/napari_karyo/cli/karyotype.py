"""`napari-karyo analyze | classify | case | export-training`: chromosome jobs in a terminal."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

from napari_karyo.cli.progress import run_with_progress
from napari_karyo.core.classes import IDS_BY_NAME
from napari_karyo.core.errors import ImageReadError, KaryoError
from napari_karyo.core.karyotype.edit.project import read_any_result
from napari_karyo.core.karyotype.infer.assign import assign_spread
from napari_karyo.core.karyotype.infer.classifier import classify_files
from napari_karyo.core.karyotype.infer.predict import analyze_steps
from napari_karyo.core.karyotype.report.case import case_iscn, case_table, rank_spreads, write_case_csv
from napari_karyo.core.karyotype.report.exports import write_karyotype_files
from napari_karyo.core.karyotype.report.headline import headline
from napari_karyo.core.storage.atomic import write_text
from napari_karyo.core.storage.images import IMAGE_SUFFIXES, read_image
from napari_karyo.core.storage.result_files import ANNOTATIONS, read_result, write_result
from napari_karyo.core.storage.training_set import export_training_set, import_training_set


def cmd_analyze(args) -> int:

    failures = 0
    for path in args.images:
        path = Path(path)
        try:
            image = read_image(path)
            result = run_with_progress(
                analyze_steps(
                    image,
                    model=args.model,
                    classifier=args.classifier,
                    cluster_model=args.clusters,
                    device=args.device,
                    source_path=str(path),
                ),
                path.name,
                args.quiet,
            )
            folder = write_result(
                result,
                Path(args.out),
                path.stem,
                overwrite=args.overwrite,
                extras=lambda d, image=image, result=result: write_karyotype_files(d, image, result),
            )
        except KaryoError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failures += 1
            continue
        summary = result.summary()
        classes = " ".join(
            f"{k}:{v}" for k, v in sorted(summary["classes"].items(), key=lambda kv: _order(kv[0]))
        )
        print(
            f"{path.name}: {headline(result)} ({summary['count']} objects) in "
            f"{summary['seconds']:.2f} s on {summary['device']} -> {folder}\n  {classes}"
        )
    return 2 if failures else 0


def _order(name: str) -> int:

    return IDS_BY_NAME.get(name, 99)


def cmd_classify(args) -> int:

    rows = classify_files(args.crops, model=args.model, group_by=args.group_by)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "class", "score"])
    for path, name, score in rows:
        writer.writerow([path, name, f"{score:.4f}"])
    write_text(args.out, buf.getvalue())
    print(f"{len(rows)} crops classified -> {args.out}")
    return 0


def _case_inputs(items: list[str]) -> list[Path]:
    """Result folders and image files of one case, in the order given; a folder of images or of result folders
    is expanded (sorted)."""

    out: list[Path] = []
    for item in map(Path, items):
        if item.is_dir() and not (item / ANNOTATIONS).is_file():
            inner = sorted(
                p
                for p in item.iterdir()
                if (p / ANNOTATIONS).is_file() or (p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
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

    results = []
    for path in _case_inputs(args.inputs):
        if path.is_dir():
            result = read_result(path)
        else:
            result = run_with_progress(
                analyze_steps(
                    read_image(path),
                    model=args.model,
                    classifier=args.classifier,
                    device=args.device,
                    source_path=str(path),
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
    write_case_csv(args.out, rows, ranking, karyotype)
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

    folders = [f for f in _case_inputs(args.folders) if (f / ANNOTATIONS).is_file()]
    out = export_training_set(
        folders,
        args.out,
        val_fraction=args.val_fraction,
        seed=args.seed,
        include_model_only=args.include_model_only,
        read_folder=read_any_result,
    )
    items = import_training_set(out)
    n_val = sum(split == "val" for _, _, split in items)
    print(
        f"{len(items)} images ({len(items) - n_val} train, {n_val} val, split by case), "
        f"{sum(r.count for _, r, _ in items)} objects -> {out}"
    )
    return 0


def add_commands(sub) -> None:
    a = sub.add_parser("analyze", help="segment and name the chromosomes of metaphase spreads")
    a.add_argument("images", nargs="+", help="spread images (TIFF, PNG, JPEG, BMP)")
    a.add_argument("--out", required=True, help="output folder; results go to OUT/<image stem>/")
    a.add_argument("--model", help="segmentation model file (default: the bundled one)")
    a.add_argument("--classifier", help="chromosome classifier model file (default: the bundled one)")
    a.add_argument("--clusters", help="cluster-type model file (default: the bundled one)")
    a.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    a.add_argument("--overwrite", action="store_true", help="replace results that hold user corrections")
    a.set_defaults(func=cmd_analyze)

    c = sub.add_parser("classify", help="name single-chromosome crops")
    c.add_argument("crops", nargs="+", help="crop images, one chromosome each (a folder's crops: one cell)")
    c.add_argument("--out", required=True, help="CSV with columns path,class,score")
    c.add_argument("--model", help="classifier model file (default: the bundled one)")
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
    k.add_argument("--model", help="segmentation model file (default: the bundled one)")
    k.add_argument("--classifier", help="chromosome classifier model file (default: the bundled one)")
    k.add_argument("--device", help="auto (default), cpu, cuda, cuda:N or mps")
    k.set_defaults(func=cmd_case)

    e = sub.add_parser(
        "export-training", help="export corrected results as a training set (COCO, TIFFs, CSV, splits)"
    )
    e.add_argument("folders", nargs="+", help="result folders of `analyze` holding corrections")
    e.add_argument("--out", required=True, help="training set folder")
    e.add_argument("--val-fraction", type=float, default=0.2, help="share of cases for validation (0.2)")
    e.add_argument("--seed", type=int, default=0, help="seed of the split by case")
    e.add_argument(
        "--include-model-only", action="store_true", help="also results nobody corrected or accepted"
    )
    e.set_defaults(func=cmd_export_training)
