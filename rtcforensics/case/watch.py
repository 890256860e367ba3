"""Watch a directory where a ring buffer is written (dumpcap ``-b files:N``, editcap ``-c``) and ingest each
file once it is closed.

A file is ready when a newer file has appeared in the directory (the writer has moved on to it: dumpcap
names its files ``<prefix>_<NNNNN>_<YYYYmmddHHMMSS>.pcapng``, in order) or when the watch stops (the last file
is then complete too, unless the writer is still on it — stop the writer first). Files already in the case
(same sha256) are skipped, so a watch can be restarted at any time. SIGINT (Ctrl-C) and SIGTERM stop it
cleanly: the capture being ingested is finished (or, on a second Ctrl-C, abandoned and cleaned up at the
next start), and everything ingested so far is kept.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from ..errors import RtcForensicsError
from .ingestion import (
    CAPTURE_SUFFIXES,
    KEYLOG_AUTO,
    IngestOptions,
    IngestResult,
    Progress,
    _quiet,
    ingest_files,
    writing,
)
from .store import CaseStore


def _order_key(p: Path) -> tuple[float, str]:
    # ring-buffer names sort in writing order; the modification time breaks ties between writers
    return (0.0, p.name) if _ring_name(p) else (p.stat().st_mtime, p.name)


def _ring_name(p: Path) -> bool:
    parts = p.name.split("_")
    return len(parts) >= 3 and parts[-2].isdigit()


def candidates(directory: Path, pattern: str = "*") -> list[Path]:
    """Capture files in ``directory`` (matching ``pattern``), oldest first."""
    out = [
        p
        for p in directory.glob(pattern)
        if p.is_file() and p.name.lower().endswith(CAPTURE_SUFFIXES) and not p.name.startswith(".")
    ]
    try:
        return sorted(out, key=_order_key)
    except FileNotFoundError:  # a file rotated away while we looked: look again next time
        return sorted((p for p in out if p.exists()), key=lambda p: p.name)


class _Stop:
    """SIGINT / SIGTERM → a flag (finish what is ready, then stop); a second signal raises KeyboardInterrupt
    (abandon the capture being ingested: its staging is removed by the next ingest or watch)."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _Stop:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def watch(
    directory: str | os.PathLike[str],
    case: str | os.PathLike[str],
    *,
    interval: float = 2.0,
    pattern: str = "*",
    jobs: int = 1,
    scheduler: str | None = None,
    keylog: str | None = KEYLOG_AUTO,
    show_secrets: bool = False,
    params: Mapping[str, Any] | None = None,
    exit_after: float | None = None,
    progress: Progress = _quiet,
) -> IngestResult:
    """Ingest closed ring-buffer files from ``directory`` into ``case`` until SIGINT/SIGTERM (or
    ``exit_after`` seconds); on stop, the files not yet ingested (the last one too) are ingested."""
    d = Path(directory)
    if not d.is_dir():
        raise RtcForensicsError(f"{d}: not a directory")
    opts = IngestOptions(
        jobs=jobs, scheduler=scheduler, keylog=keylog, show_secrets=show_secrets, params=dict(params or {})
    )
    opts.check()
    store = CaseStore(case)
    result = IngestResult(Path(case))
    seen: set[Path] = set()  # handled in this watch (ingested, failed or skipped)
    deadline = None if exit_after is None else time.monotonic() + exit_after

    def ingest_ready(files: list[Path]) -> None:
        ingest_files(store, files, result, opts, progress)
        seen.update(files)

    with writing(store, progress), _Stop() as stop:
        progress(f"watching {d} → {case} (Ctrl-C to stop)")
        while not stop.requested and (deadline is None or time.monotonic() < deadline):
            files = [p for p in candidates(d, pattern) if p.resolve() not in seen]
            ready = [p.resolve() for p in files[:-1]]  # every file but the newest has been closed
            if ready:
                ingest_ready(ready)
            end = time.monotonic() + interval
            while not stop.requested and time.monotonic() < end:
                time.sleep(min(0.1, interval))
        # stopping: the newest file is complete now (the writer is expected to have stopped first)
        rest = [p.resolve() for p in candidates(d, pattern) if p.resolve() not in seen]
        if rest:
            progress(f"stopping: ingesting {len(rest)} remaining file(s)")
            ingest_ready(rest)
    return result
