"""Batch analysis of an archive: many spreads -> `OUT/<name>/` result folders and `OUT/manifest.csv`.

Inputs are folders, glob patterns and list files (`storage.inputs`); the same file named twice is analysed once;
inputs sharing a stem get distinct folders. A re-run skips inputs whose folder is complete and was made from the
same image by the same models (`SpreadResult.model` names each model's weights hash), so a killed batch resumes.
One bad input is one failed row; the others go on. Work runs in this process, in a local pool of processes, or
on a dask.distributed cluster; each worker process loads the models once (they are cached per process) and the
results do not depend on where a spread ran. Karyogram PNG and PDF report are rendered only when asked
(`report=True`): they cost more than the analysis.
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from napari_karyo.core.device import pick_device
from napari_karyo.core.errors import KaryoError
from napari_karyo.core.jobs import run_to_end
from napari_karyo.core.karyotype.batch_resume import finished_row, models_key
from napari_karyo.core.karyotype.infer.predict import analyze_steps, detect_many, models_used
from napari_karyo.core.karyotype.mfish.analyze import CellJob, write_class_map
from napari_karyo.core.karyotype.report.exports import write_karyotype_files
from napari_karyo.core.karyotype.report.headline import headline
from napari_karyo.core.storage import atomic
from napari_karyo.core.storage.images import check_spread, read_image
from napari_karyo.core.storage.inputs import (
    check_out_dir,
    clean_stale_parts,
    expand_inputs,
    output_names,
    split_duplicates,
)
from napari_karyo.core.storage.multichannel import adir_planes, is_multichannel, read_cell, result_name
from napari_karyo.core.storage.result_files import write_result

MANIFEST = "manifest.csv"
COLUMNS = ("path", "output", "status", "count", "iscn", "review", "warnings", "seconds", "error")
MANIFEST_EVERY = 20.0  # seconds between rewrites of the manifest while a batch runs
SPREADS_PER_WORKER = 200  # pool workers are replaced by fresh processes after this many spreads each
PRIMITIVE_CACHE = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"  # see _prepare_process


@dataclass(frozen=True)
class Options:
    """What every spread of a batch is analysed with (sent to each worker)."""

    out: str
    model: str | None = None
    classifier: str | None = None
    clusters: str | None = None
    device: str | None = None
    overwrite: bool = False
    report: bool = False  # karyogram.png, report.pdf and measurements.csv too
    threads: int | None = None  # torch threads per worker (None: torch's default)
    kit: str | None = None  # M-FISH cells: the probe kit (default: from the channel names)
    kit_model: str | None = None  # M-FISH cells: a kit model file (default: the bundled one of the kit)
    dapi_only: bool = False  # M-FISH cells: name from the DAPI plane alone
    colour_split: bool = True  # M-FISH cells: split and add objects by colour
    keep_ringed: bool = False  # grey spreads: keep the objects the lab ringed in red (lab_marks.py)
    # grey spreads per forward pass of the detector, in-process batches only (None: 4 on a GPU, else 1)
    spreads_per_pass: int | None = None


@dataclass(frozen=True)
class Job:
    path: str
    name: str  # folder under Options.out


def plan(items: Iterable[str], opts: Options, redo: bool = False) -> tuple[list[Job], list[dict]]:
    """(jobs to run, rows already settled: duplicates and complete outputs). Paths are made absolute: workers
    may run in other folders or on other machines (sharing the file system)."""
    paths, dupes = split_duplicates([Path(os.path.abspath(p)) for p in expand_inputs(list(items))])
    paths, planes = _one_per_cell(paths)
    names = output_names(paths)
    taken = set(names.values())
    for p in paths:  # an M-FISH cell is named after the cell, not its first plane or its .ome suffix
        cell = result_name(p) if is_multichannel(p) else names[p]
        if cell != names[p] and cell not in taken:
            taken.add(cell)
            names[p] = cell
    keys = {(opts.model, opts.classifier): models_used(opts.model, opts.classifier, opts.clusters)}
    jobs, settled = [], []
    for p in paths:
        folder = Path(opts.out) / names[p]
        done = None if redo else finished_row(folder, p, models_key(p, opts, keys), opts.report)
        if done is None:
            jobs.append(Job(str(p), names[p]))
        else:
            settled.append(
                dict(
                    done,
                    path=str(p),
                    output=names[p],
                    status="skipped",
                    error="done before by the same models",
                )
            )
    for p, first in dupes.items():
        settled.append(_row(p, "", status="skipped", error=f"the same file as {first}: analysed once"))
    for p, first in planes.items():
        settled.append(
            _row(p, "", status="skipped", error=f"a plane of the M-FISH cell of {first}: analysed once")
        )
    return jobs, settled


def _one_per_cell(paths: list[Path]) -> tuple[list[Path], dict[Path, Path]]:
    """(inputs, {other plane: the first plane of its cell}): the planes of an ADIR cell are one input."""
    seen: dict[tuple[Path, str], Path] = {}
    kept, planes = [], {}
    for p in paths:
        key = (p.parent, result_name(p)) if adir_planes(p) else None
        if key is not None and key in seen:
            planes[p] = seen[key]
            continue
        if key is not None:
            seen[key] = p
        kept.append(p)
    return kept, planes


def _analyze(job: Job, opts: Options, ahead: tuple | None = None):
    """(image shown in reports, result, M-FISH class map or None) of one input: a grey spread or an M-FISH cell.
    `ahead`: (image, Detected) of a grey spread read and detected with others (`analyze_group`)."""
    kw = {"model": opts.model, "cluster_model": opts.clusters, "device": opts.device, "source_path": job.path}
    if is_multichannel(job.path):
        cell = CellJob(read_cell(job.path), kit=opts.kit, kit_model=opts.kit_model, dapi_only=opts.dapi_only,
                       split=opts.colour_split, fill=opts.colour_split)  # fmt: skip
        result = run_to_end(cell.steps(**kw))
        return cell.dapi, result, cell.class_map()
    image, detected = ahead or (read_image(job.path), None)
    steps = analyze_steps(
        image, classifier=opts.classifier, detected=detected, keep_ringed=opts.keep_ringed, **kw
    )
    return image, run_to_end(steps), None


def _row(path, output: str, **fields) -> dict:
    return {**dict.fromkeys(COLUMNS, ""), "path": str(path), "output": output, **fields}


def analyze_one(job: Job, opts: Options, ahead: tuple | None = None, shared_s: float = 0.0) -> dict:
    """Analyse one spread and write its folder; a manifest row (status ok or failed), never an exception for a
    problem with the input or the output folder. Runs in whichever process or worker holds the job. `ahead`,
    `shared_s`: its image and detections made with others, and its share of their time."""
    t0 = time.perf_counter() - shared_s
    row = _row(job.path, job.name, status="failed")
    _prepare_process(opts)
    try:
        image, result, class_map = _analyze(job, opts, ahead)

        def extras(folder: Path) -> None:
            write_class_map(folder, class_map)
            if opts.report:
                write_karyotype_files(folder, image, result)

        write_result(result, opts.out, job.name, overwrite=opts.overwrite, extras=extras)
    except KaryoError as exc:
        row["error"] = str(exc)
    except OSError as exc:  # the output folder: disk full, file size limit, permissions changed mid-batch
        row["error"] = (
            f"{Path(opts.out) / job.name}: cannot write the results ({exc.strerror or exc}); free "
            "disk space or check the folder's permissions, then run the batch again"
        )
    except MemoryError:
        row["error"] = f"{job.path}: out of memory; run with fewer --workers or on a larger machine"
    else:
        row.update(
            status="ok",
            count=result.count,
            iscn=result.iscn,
            headline=headline(result),
            warnings=" | ".join(result.warnings),
            review=sum(bool(c.review) for c in result.chromosomes),
            device=result.device,
            classes=result.class_counts(),
        )
    row["seconds"] = round(time.perf_counter() - t0, 2)
    _return_freed_memory()
    return row


def analyze_group(jobs: list[Job], opts: Options) -> list[dict]:
    """Rows of several jobs whose grey spreads go through the detector together (one forward pass per size: a
    GPU's batch); a spread that cannot be read, or a batch that fails, falls back to one job at a time, which
    reports the error as that input's row."""
    t0 = time.perf_counter()
    _prepare_process(opts)
    images = {}  # job: (the image as read, for reports; as analysed)
    for job in jobs:
        if not is_multichannel(job.path):
            with suppress(KaryoError):
                image = read_image(job.path)
                images[job] = image, check_spread(image, job.path)
    ahead: dict[Job, tuple] = {}
    if len(images) > 1:
        try:
            found = detect_many([checked for _, checked in images.values()], opts.model, opts.device)
        except (KaryoError, RuntimeError):  # e.g. out of GPU memory: each spread alone then
            pass
        else:
            ahead = {job: (images[job][0], d) for job, d in zip(images, found, strict=True)}
    share = (time.perf_counter() - t0) / max(len(ahead), 1)
    return [analyze_one(job, opts, ahead.get(job), share if job in ahead else 0.0) for job in jobs]


def _prepare_process(opts: Options) -> None:
    """Torch threads as asked, and no oneDNN primitive cache unless the user set one: oneDNN (torch's CPU
    convolutions) keeps each convolution it set up, per input shape, up to 1,024 of them, and every spread has
    its own working size, so a process grew ~15 MB per spread (1.55 GB peaks per worker over 200 spreads).
    Without the cache a worker stays at ~1.1 GB, and a 1,000-spread batch ran faster, not slower. oneDNN reads
    the setting at the process's first convolution."""
    os.environ.setdefault(PRIMITIVE_CACHE, "0")
    if opts.threads:
        import torch

        torch.set_num_threads(opts.threads)


def spreads_per_pass(opts: Options) -> int:
    """Spreads per detector pass: as asked, else 4 on a GPU (its throughput grows with the batch), 1 on the CPU
    (no gain there)."""
    if opts.spreads_per_pass:
        return opts.spreads_per_pass
    return 4 if pick_device(opts.device).type == "cuda" else 1


def _return_freed_memory() -> None:
    """Hand the freed heap of the last spread back to the system: glibc keeps it, and a worker's memory climbed
    over a batch (6 G-band spreads in one process: peak 1.30 GB without, 1.22 GB with; no time cost). (Mapping
    every buffer of 1 MiB or more on its own with mallopt instead cost 60% more CPU time in page faults.)"""
    import ctypes

    with suppress(OSError, AttributeError):  # not glibc (macOS, Windows, musl): nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def run(
    jobs: list[Job],
    opts: Options,
    workers: int = 1,
    scheduler: str | None = None,
    on_row: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Rows of `jobs` (in job order) run here (workers=1; on a GPU several spreads per detector pass), in a local
    process pool (each worker replaced after SPREADS_PER_WORKER spreads), or on the dask cluster at `scheduler`.
    `on_row` sees each row as it finishes."""
    on_row = on_row or (lambda row: None)
    if scheduler:
        return _gather_dask(jobs, opts, scheduler, on_row)
    if workers <= 1 or len(jobs) <= 1:
        rows, step = [], spreads_per_pass(opts)
        for i in range(0, len(jobs), step):
            for row in analyze_group(jobs[i : i + step], opts) if step > 1 else [analyze_one(jobs[i], opts)]:
                rows.append(row)
                on_row(row)
        return rows
    return _gather_pool(jobs, opts, workers, on_row)


def _gather_pool(jobs: list[Job], opts: Options, workers: int, on_row) -> list[dict]:
    """Rounds of SPREADS_PER_WORKER spreads per worker, each round in fresh worker processes, so a worker's memory
    cannot creep over an archive. (Not max_tasks_per_child: on Python 3.11-3.13 the pool then stops replacing
    its workers and hangs, CPython gh-115634.)"""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    rows: list[dict | None] = [None] * len(jobs)
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold torch threads
    per_round = SPREADS_PER_WORKER * workers
    for start in range(0, len(jobs), per_round):
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = {
                pool.submit(analyze_one, jobs[i], opts): i
                for i in range(start, min(start + per_round, len(jobs)))
            }
            for fut in as_completed(futures):
                rows[futures[fut]] = _settle(fut, jobs[futures[fut]], on_row)
    return rows


def _gather_dask(jobs: list[Job], opts: Options, address: str, on_row) -> list[dict]:
    try:
        from distributed import Client, as_completed
    except ImportError as exc:
        raise KaryoError("--scheduler needs dask.distributed: pip install distributed") from exc
    rows: list[dict | None] = [None] * len(jobs)
    try:
        client = Client(address, timeout="20s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise KaryoError(
            f"{address}: no dask scheduler answers there ({exc}); start one with `dask scheduler` "
            "and workers with `dask worker ADDRESS`"
        ) from exc
    with client, client.as_current():
        futures = client.map(analyze_one, jobs, opts=opts, pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        for fut in as_completed(futures):
            rows[index[fut.key]] = _settle(fut, jobs[index[fut.key]], on_row)
    return rows


def _settle(fut, job: Job, on_row) -> dict:
    """A finished future's row; a worker that died or raised is that input's failed row, not the batch's end."""
    try:
        row = fut.result()
    except Exception as exc:  # noqa: BLE001 - a crashed worker process must not stop the other inputs
        row = _row(
            job.path,
            job.name,
            status="failed",
            error=f"{job.path}: the worker failed ({type(exc).__name__}: "
            f"{exc}); run this image alone to see why",
        )
    on_row(row)
    return row


def manifest_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def run_batch(
    items: Iterable[str],
    opts: Options,
    workers: int = 1,
    scheduler: str | None = None,
    redo: bool = False,
    on_row: Callable[[dict], None] | None = None,
) -> tuple[list[dict], Path]:
    """The whole command: check the output folder first, plan, run, and keep OUT/manifest.csv current (rewritten
    every MANIFEST_EVERY seconds and at the end). Returns (rows in input order, manifest path)."""
    out = check_out_dir(opts.out).resolve()
    opts = Options(**{**opts.__dict__, "out": str(out)})  # workers may run elsewhere: absolute paths only
    clean_stale_parts(out)
    jobs, settled = plan(items, opts, redo)
    order: dict[str, int] = {}
    for p in expand_inputs(list(items)):
        order.setdefault(os.path.abspath(p), len(order))
    done: list[dict] = list(settled)
    last = [time.monotonic()]

    def record(row: dict) -> None:
        done.append(row)
        if on_row:
            on_row(row)
        if time.monotonic() - last[0] > MANIFEST_EVERY:
            atomic.write_text(
                out / MANIFEST, manifest_text(sorted(done, key=lambda r: order.get(r["path"], 0)))
            )
            last[0] = time.monotonic()

    for row in settled:
        if on_row:
            on_row(row)
    run(jobs, opts, workers, scheduler, record)
    rows = sorted(done, key=lambda r: order.get(r["path"], 0))
    return rows, atomic.write_text(out / MANIFEST, manifest_text(rows))
