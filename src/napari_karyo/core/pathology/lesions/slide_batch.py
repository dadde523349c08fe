"""Whole-slide lesion prediction for many stacks: band jobs (rows of tiles) then one assembly job per stack, in
this process or on a dask.distributed cluster (`registration.batch.run_jobs`, the path `register` takes), with a
manifest (`<out>/manifest.json`, rewritten atomically after every job) that makes a rerun skip finished stacks,
bands and tiles. One slide and a thousand take the same path."""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

from napari_karyo.core.errors import KaryoError, LesionError
from napari_karyo.core.pathology.lesions.slide import SlidePlan, bands, check_tiles, classify_band, make_plan
from napari_karyo.core.pathology.lesions.slide_outputs import assemble
from napari_karyo.core.pathology.registration.batch import run_jobs
from napari_karyo.core.storage.atomic import write_json
from napari_karyo.core.storage.model_files import load_card

MANIFEST = "manifest.json"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def band_job(plan: SlidePlan, first: int, last: int) -> dict:
    """Classify one band of a stack's tiles; a dict for the manifest. Runs on any worker."""
    try:
        entry = classify_band(plan, first, last)
    except KaryoError as exc:  # e.g. stains the model does not know: this stack fails, the batch goes on
        return {"status": "failed", "message": str(exc), "tiles_classified": 0, "seconds": 0.0}
    return dict(entry, status="done", peak_rss_mb=_peak_mb())


def assemble_job(plan: SlidePlan) -> dict:
    """The stack's pyramids and lesions.json from its tiles. Runs on any worker."""
    t0, cpu = time.perf_counter(), time.process_time()
    card = load_card(plan.model)[0]
    summary = assemble(plan, card["classes"], card["stains"])
    return {
        "status": "done",
        "pixels": summary["pixels"],
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - cpu,
        "peak_rss_mb": _peak_mb(),
    }


def _same_plan(entry: dict, plan: SlidePlan) -> bool:
    mine = json.loads(json.dumps(plan.__dict__))
    theirs = dict(entry.get("plan", {}))
    return {k: v for k, v in mine.items() if k != "device"} == {
        k: v for k, v in theirs.items() if k != "device"
    }


def predict_slides(
    stacks,
    model,
    out_dir,
    *,
    scale=None,
    tile=512,
    stride=8,
    region=None,
    device=None,
    scheduler=None,
    workers=2,
    n_bands=None,
    progress=print,
) -> dict:
    """stacks: (stack path, transforms file or None, label) each; results -> out_dir/<label>/. `workers` 0: in
    this process; `n_bands`: band jobs per stack (default: one per worker). Returns the manifest."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mpath = out / MANIFEST
    manifest = json.loads(mpath.read_text()) if mpath.is_file() else {"stacks": {}}
    labels = [label for _, _, label in stacks]
    if len(set(labels)) != len(labels):
        raise LesionError(f"two stacks are both named {labels}: their outputs would collide; rename one")
    plans = {}
    for path, tfile, label in stacks:
        plan = make_plan(
            path,
            tfile,
            model,
            out / label,
            scale=scale,
            tile=tile,
            stride=stride,
            region=region,
            device=device,
        )
        entry = manifest["stacks"].get(str(path), {})
        if entry.get("status") == "done" and _same_plan(entry, plan):
            continue
        if not _same_plan(entry, plan):
            entry = {}
        entry.update(plan=json.loads(json.dumps(plan.__dict__)), status="running")
        entry.setdefault("bands", {})
        manifest["stacks"][str(path)] = entry
        check_tiles(plan)
        plans[str(path)] = plan
    write_json(mpath, manifest)
    n = n_bands or max(1, workers if scheduler is None else 4)
    jobs = []
    for key, plan in plans.items():
        for first, last in bands(plan, n):
            if manifest["stacks"][key]["bands"].get(f"{first}-{last}", {}).get("status") != "done":
                jobs.append((plan, first, last))

    def record_band(job, entry):
        plan, first, last = job
        manifest["stacks"][plan.stack]["bands"][f"{first}-{last}"] = entry
        if entry["status"] == "failed":
            manifest["stacks"][plan.stack].update(status="failed", message=entry["message"])
        write_json(mpath, manifest)
        progress(
            f"{plan.stack} tile rows {first}-{last}: {entry['tiles_classified']} tiles ({entry['seconds']:.0f} s)"
        )

    def record_stack(job, entry):
        manifest["stacks"][job[0].stack].update(entry, outputs=str(job[0].out))
        write_json(mpath, manifest)
        progress(f"{job[0].stack}: pyramids -> {job[0].out} ({entry['seconds']:.0f} s)")

    run_jobs(band_job, jobs, record_band, scheduler=scheduler, workers=workers)
    # assembly reads every tile of a stack: on a remote cluster a worker near the files does it, else this process
    local = 0 if scheduler is None else workers
    ready = [(p,) for k, p in plans.items() if manifest["stacks"][k]["status"] != "failed"]
    run_jobs(assemble_job, ready, record_stack, scheduler=scheduler, workers=local)
    return manifest
