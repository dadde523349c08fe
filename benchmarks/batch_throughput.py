"""Batch throughput of `analyze` (the whole command's work: read, analyse, write every output folder and the
manifest; no karyogram/report, which are rendered only with --report): one process, a local pool of 2 workers
and a dask.distributed cluster of 2 workers on 127.0.0.1, in spreads per hour, with peak memory per worker
(RSS sampled every 0.2 s; USS, the memory only that worker holds (its RSS without the shared libraries' pages that
all workers share), and PSS (its USS plus its share of the shared pages: the workers' PSS add up to what they use
together), every second), its growth from the first quarter of the batch to the end, and its peak RSS in each
tenth of the batch (flat memory over a long batch).

Spreads: the real clinical G-banded spreads of gband_icbr (752x572 RGB), copied as distinct files and cycled up to
--spreads (speed only: no accuracy is measured, so no split applies).

    OMP_NUM_THREADS=1 python benchmarks/batch_throughput.py --spreads 60 --json bench_results/batch_throughput.json
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from bench_common import data_missing, parser, report
from napari_karyo.core.karyotype.batch import Options, run_batch
from napari_karyo.core.loopback_cluster import loopback_cluster


class Sampler:
    """Peak RSS and USS per process of `pids()` and the RSS over time, sampled in a thread."""

    def __init__(self, pids) -> None:
        self.pids, self.peak, self.peak_uss, self.peak_pss, self.trace = pids, {}, {}, {}, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        tick = 0
        while not self._stop.is_set():
            for pid in self.pids():
                try:
                    process = psutil.Process(pid)
                    rss = process.memory_info().rss
                    if tick % 5 == 0:  # reading the page maps costs CPU the workers need
                        full = process.memory_full_info()
                        self.peak_uss[pid] = max(self.peak_uss.get(pid, 0), full.uss)
                        self.peak_pss[pid] = max(self.peak_pss.get(pid, 0), getattr(full, "pss", 0))
                except psutil.Error:
                    continue
                self.peak[pid] = max(self.peak.get(pid, 0), rss)
                self.trace.append((time.monotonic(), pid, rss))
            tick += 1
            time.sleep(0.2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _inputs(data: str, n: int, folder: Path) -> list[str]:
    spreads = sorted((Path(data) / "gband_icbr" / "spreads").glob("*.png"))
    folder.mkdir(parents=True)
    out = []
    for i in range(n):
        target = folder / f"{i:05d}-{spreads[i % len(spreads)].name}"
        shutil.copy(spreads[i % len(spreads)], target)
        out.append(str(target))
    return out


def _measure(name: str, items, out: Path, pids, **kw) -> dict:
    done: list[float] = []
    t0 = time.monotonic()
    with Sampler(pids) as sampler:
        rows, _ = run_batch(
            items,
            Options(out=str(out), threads=kw.pop("threads", None)),
            on_row=lambda r: done.append(time.monotonic()),
            **kw,
        )
    wall = time.monotonic() - t0
    ok = sum(r["status"] == "ok" for r in rows)
    quarter = done[len(done) // 4] if done else t0
    growth = {}
    for pid in sampler.peak:
        early = [rss for t, p, rss in sampler.trace if p == pid and t <= quarter]
        growth[pid] = (sampler.peak[pid] - max(early)) / 2**20 if early else 0.0
    tenths = []  # peak RSS of any worker while each tenth of the spreads finished
    for k in range(10 if len(done) >= 10 else 0):
        lo = done[len(done) * k // 10 - 1] if k else t0
        hi = done[len(done) * (k + 1) // 10 - 1]
        tenths.append(round(max((rss for t, _, rss in sampler.trace if lo <= t <= hi), default=0) / 2**20))
    steady = (len(done) - 1) / (done[-1] - done[0]) * 3600 if len(done) > 1 else 0.0
    return {
        "config": name,
        "spreads": len(rows),
        "ok": ok,
        "wall_s": round(wall, 1),
        "spreads_per_hour": round(len(rows) / wall * 3600),
        "steady_spreads_per_hour": round(steady),
        "peak_mb_per_worker": round(max(sampler.peak.values(), default=0) / 2**20),
        "peak_uss_mb_per_worker": round(max(sampler.peak_uss.values(), default=0) / 2**20),
        "peak_pss_mb_per_worker": round(max(sampler.peak_pss.values(), default=0) / 2**20),
        "peak_rss_mb_by_tenth": tenths,
        "growth_mb_after_first_quarter": round(max(growth.values(), default=0.0), 1),
    }


def run(data: str, n: int, configs: list[str]) -> dict:
    me = os.getpid()
    results = []
    with tempfile.TemporaryDirectory(prefix="throughput-") as tmp:
        tmp = Path(tmp)
        items = _inputs(data, n, tmp / "in")
        if "single" in configs:
            results.append(
                _measure("1 process (torch threads: 2)", items, tmp / "o1", lambda: [me], threads=2)
            )
        if "pool" in configs:
            kids = lambda: [c.pid for c in psutil.Process(me).children(recursive=True)]  # noqa: E731
            results.append(
                _measure("local pool, 2 workers x 1 thread", items, tmp / "o2", kids, threads=1, workers=2)
            )
        if "dask" in configs:
            with loopback_cluster(tmp, workers=2) as (address, pids):
                results.append(
                    _measure(
                        "dask cluster, 2 workers x 1 thread",
                        items,
                        tmp / "o3",
                        lambda: pids,
                        threads=1,
                        scheduler=address,
                    )
                )
    return {"spreads": n, "cpu_cores": os.cpu_count(), "load_before": os.getloadavg()[0], "results": results}


def table(result: dict) -> str:
    head = (
        f"{'config':<36} {'spreads':>7} {'wall s':>7} {'spreads/h':>9} {'steady/h':>9} {'peak MB':>8} "
        f"{'USS MB':>7} {'PSS MB':>7} {'growth MB':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in result["results"]:
        lines.append(
            f"{r['config']:<36} {r['spreads']:>7} {r['wall_s']:>7} {r['spreads_per_hour']:>9} "
            f"{r['steady_spreads_per_hour']:>9} {r['peak_mb_per_worker']:>8} {r['peak_uss_mb_per_worker']:>7} "
            f"{r['peak_pss_mb_per_worker']:>7} {r['growth_mb_after_first_quarter']:>9}"
        )
        lines.append(f"{'':<4}peak RSS MB by tenth of the batch: {r['peak_rss_mb_by_tenth']}")
    return "\n".join(lines)


def main() -> int:
    p = parser(__doc__, "batch_throughput")
    p.add_argument("--spreads", type=int, default=60)
    p.add_argument(
        "--configs", nargs="+", default=["single", "pool", "dask"], choices=["single", "pool", "dask"]
    )
    args = p.parse_args()
    if data_missing(args.data):
        return 2
    result = run(args.data, args.spreads, args.configs)
    return report(result, table(result), args.json)


if __name__ == "__main__":
    sys.exit(main())
