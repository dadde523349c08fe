"""Whole-slide registration benchmark: one multi-stain stack of test pyramids (scripts/make_test_pyramids.py),
registered (low level ~1024 px, refined at ~2048 px) and every stain warped onto the reference's full-resolution
pyramid (tiled OME-TIFF, tile by tile). Wall time, CPU time (all processes) and peak memory (largest process),
in this process (--workers 0) or on a local dask.distributed cluster (--workers N, one job per stain).

    python scripts/make_test_pyramids.py --out /tmp/pyr --side 20000
    OMP_NUM_THREADS=1 python benchmarks/registration_slide.py --stack /tmp/pyr/ome --workers 0 --out /tmp/reg0 \
        --json out/bench/registration_slide_w0.json
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import sys
import time

from bench_common import parser
from napari_karyo.core.pathology.registration.batch import run_batch
from napari_karyo.core.storage.atomic import write_json


def main(argv=None) -> int:
    p = parser(__doc__, "registration_slide")
    p.add_argument("--stack", required=True, help="a stack of whole-slide files (folder or file)")
    p.add_argument("--out", required=True, help="output folder (emptied first)")
    p.add_argument("--workers", type=int, default=0, help="0: this process; N: local cluster of N workers")
    p.add_argument("--no-warp", action="store_true")
    args = p.parse_args(argv)
    shutil.rmtree(args.out, ignore_errors=True)
    t0, cpu0 = time.perf_counter(), time.process_time()
    manifest = run_batch([args.stack], args.out, warp=not args.no_warp, workers=args.workers)
    wall = time.perf_counter() - t0
    entries = next(iter(manifest["stacks"].values()))["stains"]
    here = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    jobs_cpu = sum(e["cpu_seconds"] for e in entries.values())
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the end",
        "stack": args.stack,
        "workers": args.workers,
        "wall_seconds": wall,
        "cpu_seconds": jobs_cpu + (time.process_time() - cpu0 if args.workers else 0.0),
        "peak_rss_mb": max([here] + [e["peak_rss_mb"] for e in entries.values()]),
        "stains": {
            n: {
                k: e.get(k)
                for k in (
                    "status",
                    "seconds",
                    "cpu_seconds",
                    "register_seconds",
                    "peak_rss_mb",
                    "quality",
                    "warped",
                )
            }
            for n, e in entries.items()
        },
    }
    print(f"wall {wall:.0f} s, cpu {result['cpu_seconds']:.0f} s, peak {result['peak_rss_mb']:.0f} MB")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
