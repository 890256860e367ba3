"""Shared fixtures: sample captures, their truth files, third-party captures (skipped when absent), and
``cli_series``: several ``rtcforensics`` command lines in one Python process."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from samples import REALCAPS, load_truth, sample_path

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def realcaps() -> Path:
    if not REALCAPS.is_dir():
        pytest.skip("../shared/realcaps not present")
    return REALCAPS


@pytest.fixture
def sample() -> Callable[[str], Path]:
    return sample_path


@pytest.fixture
def truth() -> Callable[[str], dict[str, Any]]:
    return load_truth


# ``cli_series``: several ``rtcforensics`` command lines run by ONE child process, which imports what
# ``rtcforensics analyze`` imports once and calls ``rtcforensics.cli.main`` (what ``python -m rtcforensics.cli``
# calls) for each, with file descriptors 1 and 2 on files of the run's own (the worker processes of ``--jobs``
# and the tools write there too) and the run's own exit code. Two ways:
#
# - one after the other in the child itself (``jobs=0``). ``analyze`` command lines that differ only in
#   ``--format``, ``-o`` or ``--fail-on`` share one analysis: the first makes the JSON documents of its captures
#   (redacted as ``--show-secrets`` says), the next ones get a deep copy of them, so that each format is still
#   rendered, written and given its exit code by the CLI. Nothing else is shared (``summary`` and ``export``
#   load their capture afresh);
# - each in a fork of the child (``jobs=N``: N at a time): its own session (killed with its tools when it
#   outlives ``timeout`` seconds), stdin on /dev/null, and its peak RSS (from wait4).
_SERIES_CHILD = r"""
import copy, json, os, resource, signal, sys, time, traceback
import rtcforensics.checks, rtcforensics.checks.analyze, rtcforensics.report.jsonout
from rtcforensics import cli

spec = json.loads(open(sys.argv[1], encoding="utf-8").read())
runs = spec["runs"]
results = [None] * len(runs)


def main(run):
    try:
        return cli.main(run["argv"])
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1
    except BaseException:  # as the interpreter would end the run
        traceback.print_exc()
        return 1


def redirect(run):
    for fd, path, flags in ((1, run["out"], os.O_WRONLY | os.O_CREAT), (2, run["err"], os.O_WRONLY | os.O_CREAT)):
        new = os.open(path, flags, 0o600)
        os.dup2(new, fd)
        os.close(new)


def flush():
    sys.stdout.flush()
    sys.stderr.flush()


def forked(run):
    code = 1
    try:
        os.setsid()
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        redirect(run)
        code = main(run)
    finally:
        try:
            flush()
        finally:
            os._exit(code)


if spec["jobs"]:
    pending = list(enumerate(runs))
    running = {}
    while pending or running:
        while pending and len(running) < spec["jobs"]:
            i, run = pending.pop(0)
            flush()
            pid = os.fork()
            if pid == 0:
                forked(run)
            running[pid] = (i, time.monotonic() + spec["timeout"])
        pid, status, ru = os.wait4(-1, os.WNOHANG)
        if pid:
            i, _ = running.pop(pid)
            results[i] = [os.waitstatus_to_exitcode(status), ru.ru_maxrss / 1024]
            continue
        for pid, (i, deadline) in list(running.items()):
            if time.monotonic() > deadline:
                os.killpg(pid, signal.SIGKILL)
                _, _, ru = os.wait4(pid, 0)
                del running[pid]
                results[i] = [None, ru.ru_maxrss / 1024]
        time.sleep(0.05)
else:
    analysed = {}
    real_serial, real_parallel = cli._analyze_serial, cli._analyze_parallel

    def key(kind, paths, a, params):
        return json.dumps([kind, [str(p) for p in paths], a.keylog, a.signalling, a.show_secrets, params,
                           a.max_packets, a.max_bytes], sort_keys=True, default=str)

    def serial(paths, a, params):
        k = key("serial", paths, a, params)
        if k not in analysed:
            analysed.clear()  # only the last analysis is kept: its formats come one after the other
            analysed[k] = real_serial(paths, a, params)
        docs, caps = analysed[k]
        return copy.deepcopy(docs), caps

    def parallel(paths, a, params):
        k = key("parallel", paths, a, params)
        if k not in analysed:
            analysed.clear()
            analysed[k] = real_parallel(paths, a, params)
        return copy.deepcopy(analysed[k])

    cli._analyze_serial, cli._analyze_parallel = serial, parallel
    for i, run in enumerate(runs):
        flush()
        saved = os.dup(1), os.dup(2)
        redirect(run)
        try:
            code = main(run)
        finally:
            flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        results[i] = [code, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024]
with open(spec["results"], "w", encoding="utf-8") as fh:
    json.dump(results, fh)
"""

CliResult = tuple[int | None, str, str, float]  # exit code (None: timed out), stdout, stderr, peak RSS in MB


def run_cli_series(
    runs: Sequence[Sequence[str]], timeout: float = 600, jobs: int = 0, errors: str = "strict"
) -> list[CliResult]:
    """``rtcforensics ARGV`` for each ARGV of ``runs`` in one child process (see ``_SERIES_CHILD``): one after
    the other (``jobs=0``; ``timeout`` for all), or each in a fork, ``jobs`` at a time (``timeout`` for each).
    Stdout and stderr are decoded as UTF-8 (``errors``: what to do with what is not)."""
    with tempfile.TemporaryDirectory(prefix="cli_series") as tmp:
        d = Path(tmp)
        spec = {
            "runs": [
                {"argv": list(argv), "out": str(d / f"{i}.out"), "err": str(d / f"{i}.err")}
                for i, argv in enumerate(runs)
            ],
            "jobs": jobs,
            "timeout": timeout,
            "results": str(d / "results.json"),
        }
        (d / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
        cp = subprocess.run(
            [sys.executable, "-c", _SERIES_CHILD, str(d / "spec.json")],
            capture_output=True,
            text=True,
            timeout=timeout * (len(runs) if jobs else 1) + 60,
            cwd=ROOT,
            check=False,
        )
        assert cp.returncode == 0, (
            f"the CLI series process failed (exit {cp.returncode}):\n{cp.stderr[-3000:]}"
        )
        results = json.loads((d / "results.json").read_text(encoding="utf-8"))
        return [
            (
                code,
                (d / f"{i}.out").read_bytes().decode("utf-8", errors),
                (d / f"{i}.err").read_bytes().decode("utf-8", errors),
                rss,
            )
            for i, (code, rss) in enumerate(results)
        ]


@pytest.fixture(scope="session")
def cli_series() -> Callable[..., list[CliResult]]:
    return run_cli_series
