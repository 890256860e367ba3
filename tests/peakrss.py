"""Run a command under a wall bound and measure its own peak resident memory.

Why not ``wait4`` on a child of the test process: Linux keeps, across ``exec``, the high-water mark of the memory
the child had before it (the test process's, shared after ``fork``/``vfork``), so a child of a pytest process that
holds 600 MB reports at least 600 MB whatever it used (measured: ``python -c pass`` spawned by a process holding
600 MB reports 611 MB). Here the command is forked by a small intermediate process (this file run as a program),
which reports the command's own ``ru_maxrss`` in a file and ends the way the command ended (same exit code, same
signal).

``run_measured(argv, timeout, cwd=, preexec_fn=)`` -> (exit code or None when the wall bound was hit, stdout,
stderr, peak RSS in MB). ``preexec_fn`` (resource limits) applies to the intermediate and so to the command; the
intermediate leads a new session, which a time-out kills whole.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve()


def run_measured(
    argv: list[str], timeout: float, cwd: Path | None = None, preexec_fn: Callable[[], None] | None = None
) -> tuple[int | None, str, str, float]:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.TemporaryDirectory() as d:
        peak_file = Path(d) / "peak"
        p = subprocess.Popen(
            [sys.executable, str(HERE), str(peak_file), *argv],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            preexec_fn=preexec_fn,
            start_new_session=preexec_fn is None,  # a preexec_fn given calls setsid itself when it wants one
        )
        deadline = time.monotonic() + timeout
        code: int | None = None
        while True:
            pid, status, _ = os.wait4(p.pid, os.WNOHANG)
            if pid:
                code = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                os.killpg(p.pid, signal.SIGKILL)
                os.wait4(p.pid, 0)
                break
            time.sleep(0.05)
        p.returncode = -9 if code is None else code  # already reaped: keep Popen from waiting again
        peak_kib = int(peak_file.read_text()) if peak_file.is_file() else 0
        out.seek(0)
        err.seek(0)
        return (
            code,
            out.read().decode("utf-8", "replace"),
            err.read().decode("utf-8", "replace"),
            peak_kib / 1024,
        )


def _main(peak_file: str, argv: list[str]) -> None:
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    _, status, ru = os.wait4(pid, 0)
    Path(peak_file).write_text(str(ru.ru_maxrss))
    if os.WIFSIGNALED(status):  # end the same way: the caller sees the command's signal
        sig = os.WTERMSIG(status)
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2:])
