"""Whole-slide pipeline benchmark: one multi-stain stack of test pyramids (scripts/make_test_pyramids.py) registered
(estimated at ~1024 px, refined at ~2048 px), every moving stain warped onto the reference's full-resolution
pyramid (tiled OME-TIFF, tile by tile), then a lesion class map + probability pyramids tile by tile
(`lesions predict --tiles`). Wall time, CPU seconds (this process + the jobs), peak resident memory (largest
process), in this process (--workers 0) or on a local dask.distributed cluster (--workers N).

The lesion model is the shipped architecture (28 px patches, 64 filters, 512 features, SE fusion) with untrained
weights unless --model is given: the class map's content means nothing, its cost is the real one.

    python scripts/make_test_pyramids.py --out /tmp/pyr --side 20000 --formats ome
    OMP_NUM_THREADS=1 python benchmarks/slide_pipeline.py --stack /tmp/pyr/ome --out /tmp/slide0 --workers 0 \
        --json out/bench/slide_pipeline_w0.json
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import sys
import time
from pathlib import Path

from bench_common import parser
from napari_karyo.core.pathology.lesions.slide_batch import predict_slides
from napari_karyo.core.pathology.registration.batch import run_batch, stack_key
from napari_karyo.core.pathology.stack import load_stack
from napari_karyo.core.storage.atomic import write_json


def untrained_model(path: Path, stains: list[str]) -> Path:
    import torch

    from napari_karyo.core.pathology.lesions.fusion import build_fusion_net, save_fusion_model

    torch.manual_seed(0)
    net = build_fusion_net(len(stains), 3, 3, "se")
    card = {"stains": stains, "classes": ["normal", "tumour", "stroma"], "note": "untrained: benchmark only"}
    return save_fusion_model(net, card, path)


def _usage() -> tuple[float, float]:
    """CPU seconds of this process and of its finished children (local cluster workers), peak RSS (MB) here."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime, me.ru_maxrss / 1024


def main(argv=None) -> int:
    p = parser(__doc__, "slide_pipeline")
    p.add_argument("--stack", required=True, help="a stack of whole-slide files (folder or file)")
    p.add_argument("--out", required=True, help="output folder (emptied first)")
    p.add_argument("--workers", type=int, default=0, help="0: this process; N: local cluster of N workers")
    p.add_argument("--model", help="lesion model (default: untrained weights of the shipped architecture)")
    p.add_argument("--stride", type=int, default=8)
    p.add_argument("--scale", type=float, help="lesion grid factor (default: the working grid, <= 4096 px)")
    args = p.parse_args(argv)
    shutil.rmtree(args.out, ignore_errors=True)
    out = Path(args.out)
    out.mkdir(parents=True)
    stack = load_stack(args.stack)
    model = Path(args.model) if args.model else untrained_model(out / "model.safetensors", stack.names)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    manifest = run_batch([args.stack], out / "registered", workers=args.workers, progress=print)
    t_reg = time.perf_counter() - t0
    entry = manifest["stacks"][str(args.stack)]
    lesions = predict_slides(
        [(args.stack, entry["transforms"], stack_key(args.stack))],
        model,
        out / "lesions",
        scale=args.scale,
        stride=args.stride,
        workers=args.workers,
    )
    wall = time.perf_counter() - t0
    cpu, here_mb = _usage()
    les = lesions["stacks"][str(args.stack)]
    jobs = list(entry["stains"].values()) + list(les["bands"].values()) + [les]
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "load": [load0, os.getloadavg()[0]],
        "stack": args.stack,
        "shape": list(stack[stack.reference].shape),
        "workers": args.workers,
        "wall_seconds": wall,
        "register_and_warp_wall": t_reg,
        "lesions_wall": wall - t_reg,
        "cpu_seconds": cpu,
        "jobs_cpu_seconds": sum(j.get("cpu_seconds", 0.0) for j in jobs),
        "peak_rss_mb": max([here_mb] + [j.get("peak_rss_mb", 0.0) for j in jobs]),
        "registration": {
            n: {k: e.get(k) for k in ("status", "seconds", "cpu_seconds", "register_seconds", "peak_rss_mb")}
            for n, e in entry["stains"].items()
        },
        "lesion_grid": les["plan"]["shape"],
        "lesion_bands": les["bands"],
        "lesion_pixels": les.get("pixels"),
    }
    print(
        f"wall {wall:.0f} s (register+warp {t_reg:.0f} s), cpu {cpu:.0f} s, peak {result['peak_rss_mb']:.0f} MB, "
        f"load {load0:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
