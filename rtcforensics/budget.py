"""The memory budget: how much resident memory a run may use, checked by the package itself at points where
stopping is clean (issue 19: hitting a limit is an anomaly and an incomplete run, never an OOM kill).

Memory is a process-wide resource, so the budget is one per process: :func:`set_limit` (``None``: no budget),
:func:`limited` for a block of code, :func:`limit` to read it. Its default is :data:`DEFAULT_SHARE` (75 %) of
the memory available to the process: the cgroup's limit (v2 ``memory.max``, v1 ``memory.limit_in_bytes``)
when one is set, else the machine's ``MemTotal``. Resident memory is read from ``/proc/self/statm`` (a few
microseconds); where there is no ``/proc``, the peak resident size of ``getrusage`` stands in (never below the
current size, so the budget only errs on the safe side).

Where it is checked, and what happens (never an address-space limit: under ``RLIMIT_AS`` numpy raises
``MemoryError`` but pyarrow's C++ aborts the process):

- reading (``dissect.pcapio.CaptureReader``), once per batch of records: the read stops when resident memory
  reaches :func:`read_threshold` — :data:`READ_SHARE` of what was free of the budget when the read began less
  :data:`RESERVE`, because the frames built from what was read need several times as much again — with a
  ``memory_limit`` anomaly and ``truncated`` set, like ``--max-packets``: the run is incomplete and keeps the
  findings of the packets read. The first chunk is always read (16 MiB; under a tight budget, 1/256 of the
  budget, at least 1 MiB).
- frames (``Capture.get_frame``), before a frame is built: above the budget the frame is not built;
  ``FrameUnavailable`` says why, the checks that need it are "not observable" with that reason and a
  ``memory_limit`` anomaly makes the run incomplete. A frame already built stays usable.
- a batch of captures in worker processes (``analyze DIR --jobs N``, ``ingest --jobs N``): each worker gets
  the budget divided by the number of workers.
"""

from __future__ import annotations

import functools
import os
import resource
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

MIB = 1 << 20
# The default budget: this share of the memory available to the process (cgroup limit, else MemTotal).
DEFAULT_SHARE = 0.75
# What a run needs after its read whatever the capture (a 20-packet sample peaks at 252 MB, 145 MB above the
# interpreter with the package imported: tshark's export of the control plane, the frames' and reports' own
# modules). The read leaves it free.
RESERVE = 160 * MIB
# The share of the budget left free when a read begins (less RESERVE) that the read itself may use: the frames
# and checks built from what was read need the rest. Measured on the worst case, the flood of one-packet
# flows (fuzz/hostile.py many_udp_flows), where every packet is a flow and a STUN message: the frames and
# checks took up to three times the read's growth again beyond RESERVE (10^6 flows, 1 GiB, a third for the
# read: 115 -> 460 MiB read, 1,598 MiB peak), and the read overshoots its share by up to a chunk. With a
# fifth (and the compact datagram store of 2026-12-07): 115 -> 284 MiB read, 620 MiB peak.
READ_SHARE = 1 / 5

_UNSET = object()
_limit: int | object | None = _UNSET  # bytes; None: no budget; _UNSET: the default, computed on first use


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().split()[0]
    except (OSError, IndexError):
        return None
    return int(text) if text.isdigit() else None


def _cgroup_limit(membership: str = "/proc/self/cgroup", root: str = "/sys/fs/cgroup") -> int | None:
    """The memory limit of this process's cgroup (v2 ``memory.max`` or v1 ``memory.limit_in_bytes``), if any:
    the smallest of its own and its parents' (v2), read from the cgroup file system mounted at ``root``."""
    try:
        lines = Path(membership).read_text().splitlines()
    except OSError:
        return None
    found: list[int] = []
    for line in lines:
        _id, controllers, rel = (line.split(":", 2) + ["", ""])[:3]
        rel = rel.strip("/")
        if controllers == "":  # v2 unified hierarchy: the limit of this cgroup or of any parent
            parts = rel.split("/") if rel else []
            for k in range(len(parts), -1, -1):
                v = _read_int("/".join([root, *parts[:k], "memory.max"]))
                if v is not None:
                    found.append(v)
        elif "memory" in controllers.split(","):
            for base in (f"{root}/memory/{rel}", f"{root}/memory"):
                v = _read_int(f"{base.rstrip('/')}/memory.limit_in_bytes")
                if v is not None:
                    found.append(v)
                    break
    real = [v for v in found if 0 < v < 1 << 60]  # v1 says "no limit" with a number near 2^63
    return min(real) if real else None


def _mem_total() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def available() -> int | None:
    """Memory available to this process: its cgroup's limit when one is set (and below the machine's
    memory), else the machine's memory; None when neither can be read."""
    got = [v for v in (_cgroup_limit(), _mem_total()) if v]
    return min(got) if got else None


def default_limit() -> int | None:
    """:data:`DEFAULT_SHARE` of :func:`available` (None when the memory cannot be read: no budget)."""
    avail = available()
    return None if avail is None else int(avail * DEFAULT_SHARE)


def limit() -> int | None:
    """The budget in bytes (None: no budget)."""
    global _limit
    if _limit is _UNSET:
        _limit = default_limit()
    return _limit  # type: ignore[return-value]


def set_limit(value: int | None) -> None:
    """Set the process's budget in bytes (None: no budget). The default is :func:`default_limit`."""
    global _limit
    if value is not None and value < 1:
        raise ValueError(f"a memory budget must be at least 1 byte (None: no budget), not {value}")
    _limit = value


def reset() -> None:
    """Back to the default budget (:func:`default_limit`)."""
    global _limit
    _limit = _UNSET


@contextmanager
def limited(value: int | None) -> Iterator[None]:
    """Run a block under budget ``value`` bytes (None: no budget), then restore the one before."""
    global _limit
    before = _limit
    set_limit(value)
    try:
        yield
    finally:
        _limit = before


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident() -> int:
    """Resident memory of this process in bytes (``/proc/self/statm``; else the peak from ``getrusage``)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc: nothing to give back this way
        return None


def give_back() -> None:
    """Hand the C heap's free pages back to the system (glibc ``malloc_trim``; elsewhere nothing). Building a
    frame frees many small objects that glibc keeps in its heap: at 10^6 one-packet flows, 408 -> 294 MB
    resident after the read and 847 -> 504 MB after the ``stun`` frame. Called after the read and after each
    frame is built, so that resident memory, which the budget reads, is what is in use."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def mib(n: int) -> str:
    return f"{n / MIB:,.0f} MiB"


@dataclass(frozen=True)
class Overrun:
    """Resident memory found at or above a threshold of the budget."""

    resident: int
    threshold: int
    limit: int


def over(threshold: int | None = None) -> Overrun | None:
    """An :class:`Overrun` when resident memory has reached ``threshold`` (default: the budget itself), else
    None (also when there is no budget)."""
    lim = limit()
    if lim is None:
        return None
    at = lim if threshold is None else threshold
    now = resident()
    return Overrun(now, at, lim) if now >= at else None


def read_threshold(start: int | None = None, share: float | None = None) -> int | None:
    """Resident memory at which a read that began with ``start`` bytes resident (default: now) stops:
    :data:`READ_SHARE` of what was free of the budget then, less :data:`RESERVE` (when nothing was free,
    ``start``: the read stops after its first chunk); ``share`` instead of READ_SHARE (a streamed read, whose
    frames are not held, may take more); None: no budget."""
    lim = limit()
    if lim is None:
        return None
    base = resident() if start is None else start
    return min(base, lim) + int(max(lim - base - RESERVE, 0) * (READ_SHARE if share is None else share))


# How the reason of a frame refused for the budget begins (checks/analyze.py looks for it).
FRAME_REFUSED = "memory budget: resident memory"


def frame_refused(name: str, got: Overrun) -> str:
    """Why frame ``name`` was not built (the words ``memory budget`` make the run incomplete)."""
    return (
        f"{FRAME_REFUSED} {mib(got.resident)} was at or above the memory budget of "
        f"{mib(got.limit)} (--max-memory) when frame {name!r} was to be built"
    )


class BudgetExceeded(MemoryError):
    """A pass over the capture stopped at the memory budget where its caller needs the whole capture (the
    SRTP collection for decryption). A MemoryError: the run is incomplete (exit 3), not a usage error."""


def per_worker(total: int | None, workers: int) -> int | None:
    """Each of ``workers`` processes' share of budget ``total`` (None: no budget)."""
    return None if total is None else max(total // max(workers, 1), 1)


__all__ = [
    "DEFAULT_SHARE",
    "FRAME_REFUSED",
    "READ_SHARE",
    "RESERVE",
    "BudgetExceeded",
    "Overrun",
    "available",
    "default_limit",
    "frame_refused",
    "limit",
    "limited",
    "over",
    "per_worker",
    "read_threshold",
    "reset",
    "resident",
    "set_limit",
]
