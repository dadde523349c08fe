"""A dask.distributed cluster on this machine's loopback address, started with dask's own commands
(`dask_scheduler`, `dask_worker`) exactly as on a real cluster: for the tests, the batch benchmark, and for trying
`--scheduler` on one machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def loopback_cluster(folder: str | Path, workers: int = 2) -> Iterator[tuple[str, list[int]]]:
    """Yield (scheduler address, worker pids) of a scheduler and `workers` single-threaded workers on 127.0.0.1;
    they import this Python's path (PYTHONPATH) and are stopped on exit. `folder` holds the scheduler file."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), OMP_NUM_THREADS="1")
    info = Path(folder) / "scheduler.json"
    quiet = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0"]
    procs = [subprocess.Popen([*scheduler, "--no-dashboard", "--scheduler-file", str(info)], **quiet)]
    try:
        for _ in range(600):
            if info.exists() and info.stat().st_size:
                break
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        worker = [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1"]
        procs += [
            subprocess.Popen([*worker, "--host", "127.0.0.1", "--no-dashboard", "--no-nanny"], **quiet)
            for _ in range(workers)
        ]
        from distributed import Client

        with Client(address, timeout="60s") as client:
            client.wait_for_workers(workers, timeout=180)
        yield address, [p.pid for p in procs[1:]]
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:  # a worker busy closing its connections: stop it hard
                p.kill()
                p.wait(timeout=30)
