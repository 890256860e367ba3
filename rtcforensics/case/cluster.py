"""A Dask distributed cluster on loopback, made of the real commands (``dask scheduler``, ``dask worker``):
for trying ``ingest --scheduler`` on one machine, for the tests and for the benchmark.

On several machines, the same two commands do it (the workers need the package and the captures' paths, and
the case directory, on a shared file system)::

    dask scheduler --host 0.0.0.0 --port 8786                       # on one machine
    dask worker tcp://SCHEDULER:8786 --nthreads 1 --nworkers auto   # on each worker machine
    rtcforensics ingest /shared/captures --case /shared/case --scheduler tcp://SCHEDULER:8786

One capture is one task; a worker process ingests one capture at a time (``--nthreads 1``: the work is
Python and holds the GIL), so throughput grows with worker processes until the shared disk is the limit.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import ToolError


def dask_command() -> str:
    """The ``dask`` command of this Python environment (beside the interpreter), else the one on PATH."""
    beside = Path(sys.executable).with_name("dask")
    if beside.exists():
        return str(beside)
    found = shutil.which("dask")
    if not found:
        raise ToolError("the dask command is not installed (pip install 'dask[distributed]')")
    return found


def stop(procs: list[subprocess.Popen[bytes]], timeout: float = 20) -> None:
    """Stop processes started by :func:`loopback_cluster` (their own process groups): TERM, then KILL."""
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=timeout)


@contextmanager
def loopback_cluster(
    workers: int = 2, workdir: str | os.PathLike[str] | None = None, timeout: float = 90
) -> Iterator[str]:
    """Start a scheduler and ``workers`` single-threaded workers on 127.0.0.1 (random free ports); yield the
    scheduler's address; stop them all on exit, whatever happened. Their output goes to ``workdir/log.txt``."""
    with tempfile.TemporaryDirectory(prefix="rtcf-dask-") as td:
        d = Path(workdir) if workdir is not None else Path(td)
        d.mkdir(parents=True, exist_ok=True)
        exe = dask_command()
        sched_file = d / "scheduler.json"
        sched_file.unlink(missing_ok=True)
        procs: list[subprocess.Popen[bytes]] = []
        with (d / "log.txt").open("ab") as log:

            def start(args: list[str]) -> None:
                procs.append(
                    subprocess.Popen(
                        [exe, *args], stdout=log, stderr=subprocess.STDOUT, cwd=d, start_new_session=True
                    )
                )

            try:
                start(
                    [
                        "scheduler",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        "0",
                        "--dashboard-address",
                        "127.0.0.1:0",
                        "--scheduler-file",
                        str(sched_file),
                    ]
                )
                deadline = time.monotonic() + timeout
                while not sched_file.exists():
                    if procs[0].poll() is not None or time.monotonic() > deadline:
                        raise ToolError(f"dask scheduler did not start (see {d / 'log.txt'})")
                    time.sleep(0.2)
                address = str(json.loads(sched_file.read_text())["address"])
                for i in range(workers):
                    start(
                        [
                            "worker",
                            address,
                            "--nthreads",
                            "1",
                            "--nworkers",
                            "1",
                            "--host",
                            "127.0.0.1",
                            "--no-dashboard",
                            "--name",
                            f"w{i}",
                            "--local-directory",
                            str(d / f"w{i}"),
                        ]
                    )
                from distributed import Client

                with Client(address, timeout=f"{int(timeout)}s") as client:
                    client.wait_for_workers(workers, timeout=timeout)
                yield address
            finally:
                stop(procs)
