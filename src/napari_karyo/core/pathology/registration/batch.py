"""Many stacks: one job per (stack, moving stain), run in this process or on a dask.distributed cluster, with a
manifest that makes a rerun skip what is done.

A job registers one stain onto its stack's reference (`slide.register_slide_pair`), saves that transform and, when
asked, writes the stain warped onto the reference's full-resolution pyramid. The manifest (JSON, rewritten
atomically after every job) records per stack and stain: status, transform, outputs, timing, messages; a stack's
`transforms.json` is written once all its stains are done. The same function runs for one slide and for a
thousand; a cluster only changes where the jobs run.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

from napari_karyo.core.errors import KaryoError
from napari_karyo.core.pathology.registration.slide import register_slide_pair, write_warped
from napari_karyo.core.pathology.stack import load_stack
from napari_karyo.core.pathology.transform import Transform, save_transforms
from napari_karyo.core.storage.atomic import write_json

MANIFEST = "manifest.json"


def stack_key(path: str | Path) -> str:
    p = Path(path)
    return p.name.split(".")[0] or p.resolve().name


def register_job(stack_path: str, stain: str, out_dir: str, warp: bool, low_side: int, mid_side: int) -> dict:
    """Register one stain of a stack (and write it warped); a dict for the manifest. Runs on any worker."""
    t0, cpu = time.perf_counter(), time.process_time()
    stack = load_stack(stack_path)
    fixed, moving = stack[stack.reference], stack[stain]
    try:
        res = register_slide_pair(fixed, moving, low_side=low_side, mid_side=mid_side)
    except KaryoError as exc:  # e.g. a stain without tissue: that job fails, the batch goes on
        return {
            "status": "failed",
            "message": str(exc),
            "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - cpu,
            "peak_rss_mb": _peak_mb(),
        }
    entry = {
        "status": "done" if res.ok else "failed",
        "message": res.message,
        "transform": res.transform.to_dict(),
        "quality": {k: float(v) for k, v in res.quality.items()},
        "register_seconds": res.seconds,
    }
    if res.ok and warp:
        folder = Path(out_dir) / stack_key(stack_path)
        folder.mkdir(parents=True, exist_ok=True)
        entry["warped"] = str(write_warped(folder / f"{stain}.ome.tif", fixed, moving, res.transform))
    entry["seconds"] = time.perf_counter() - t0
    entry["cpu_seconds"] = time.process_time() - cpu
    entry["peak_rss_mb"] = _peak_mb()
    return entry


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _load_manifest(path: Path) -> dict:
    import json

    if path.is_file():
        return json.loads(path.read_text())
    return {"stacks": {}}


def plan(stacks: list[str], manifest: dict) -> list[tuple[str, str]]:
    """(stack, stain) jobs not yet done, reading each stack's stain names (cheap: headers only)."""
    todo = []
    for path in stacks:
        stack = load_stack(path)
        entry = manifest["stacks"].setdefault(str(path), {"reference": stack.reference, "stains": {}})
        for stain in stack.names:
            if stain != stack.reference and entry["stains"].get(stain, {}).get("status") != "done":
                todo.append((str(path), stain))
    return todo


def _finish_stack(out_dir: Path, path: str, entry: dict) -> None:
    """All stains done: the stack's transforms.json (moving -> reference, full-resolution pixels)."""
    stains = entry["stains"]
    if any(s.get("status") is None for s in stains.values()):
        return
    transforms = {entry["reference"]: Transform.identity()}
    transforms |= {n: Transform.from_dict(s["transform"]) for n, s in stains.items() if s["status"] == "done"}
    target = out_dir / stack_key(path) / "transforms.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    failed = {n: s["message"] for n, s in stains.items() if s["status"] != "done"}
    save_transforms(target, transforms, {"reference": entry["reference"], "stack": path, "failed": failed})
    entry["transforms"] = str(target)


def run_batch(
    stacks, out_dir, *, warp=True, scheduler=None, workers=2, low_side=1024, mid_side=2048, progress=print
) -> dict:
    """Register every stack; `scheduler`: a dask.distributed address, else `workers` local worker processes
    (0: run here, one job after another). Returns the manifest."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mpath = out / MANIFEST
    manifest = _load_manifest(mpath)
    jobs = plan([str(s) for s in stacks], manifest)
    for path in manifest["stacks"]:
        for stain in load_stack(path).names:
            if stain != manifest["stacks"][path]["reference"]:
                manifest["stacks"][path]["stains"].setdefault(stain, {})
    args = [(p, s, str(out), warp, low_side, mid_side) for p, s in jobs]

    def record(job, entry):
        stack_entry = manifest["stacks"][job[0]]
        stack_entry["stains"][job[1]] = entry
        _finish_stack(out, job[0], stack_entry)
        write_json(mpath, manifest)
        progress(f"{job[0]} {job[1]}: {entry['status']} ({entry['seconds']:.0f} s)")

    for path, entry in manifest["stacks"].items():
        _finish_stack(out, path, entry)
    if not args:
        write_json(mpath, manifest)
        return manifest
    run_jobs(register_job, args, record, scheduler=scheduler, workers=workers)
    return manifest


def run_jobs(fn, args: list[tuple], record, *, scheduler=None, workers: int = 2) -> None:
    """fn(*a) for every a in `args`, `record(a, result)` as each finishes (in this process, so the caller's
    manifest is the one place that is written). `scheduler`: a dask.distributed address; else `workers` local
    worker processes (0: here, one after another). The registration and lesion batches share it."""
    if scheduler is None and workers == 0:
        for a in args:
            record(a, fn(*a))
        return
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = (
        None
        if scheduler
        else LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    )
    with Client(scheduler or cluster) as client:
        futures = {client.submit(fn, *a, pure=False): a for a in args}
        for fut in as_completed(futures):
            record(futures[fut], fut.result())
    if cluster is not None:
        cluster.close()
