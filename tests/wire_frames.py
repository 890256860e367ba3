"""One tshark pass per capture and set of options, kept for the whole test session.

Truth tests that read a capture several ways (RTP, STUN, DTLS, signalling text) ask for every field they need
in one pass (lab.truthlib.tshark_frames) and apply each test's display filter in Python on the frames. The
cache lives as long as the process (one pytest session); the frames it returns are shared: do not mutate.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from pathlib import Path

from lab.truthlib import WireFrame, tshark_frames

# tshark prints a string field's control characters (and other unprintables) as backslash escapes such as
# \r, \n, \x1f or \302: none is longer than this, backslash included
ESCAPE_MAX = 10


@functools.cache
def frames_once(
    cap: Path, fields: tuple[str, ...], keylog: Path | None = None, extra: tuple[str, ...] = ()
) -> tuple[WireFrame, ...]:
    """Every frame of ``cap`` with ``fields`` (lab.truthlib.tshark_frames, WebRTC heuristics on), read once
    per (capture, fields, keylog, extra options) in a session."""
    return tuple(tshark_frames(cap, fields, extra=list(extra), keylog=keylog))


def has(frame: WireFrame, protocol: str) -> bool:
    """What the display filter ``protocol`` (e.g. "rtp", "icmp") tests: the protocol is in the frame's stack."""
    return protocol in frame["frame.protocols"]


def joined(frame: WireFrame, fields: Iterable[str]) -> list[str]:
    """Each field's values joined by "," ('' when absent): the row tshark -T fields prints with
    ``-E occurrence=a -E aggregator=,`` (lab.truthlib.tshark_fields)."""
    return [",".join(frame[f]) for f in fields]


def literal_runs(shown: str) -> str:
    """tshark's display form of a string with every escape blanked out: each backslash and the
    ESCAPE_MAX - 1 characters after it become one NUL. What is left are characters the string holds, in
    runs that were contiguous in it, so a needle without NUL or backslash found here is in the string."""
    pieces, kept_from = [], 0
    for m in re.finditer(r"\\", shown):
        if m.start() >= kept_from:
            pieces.append(shown[kept_from : m.start()])
        kept_from = max(kept_from, m.start() + ESCAPE_MAX)
    pieces.append(shown[kept_from:])
    return "\0".join(pieces)


def text_has(values: Iterable[str], needle: str, *, ignore_case: bool = False) -> bool:
    """Whether a string field value (as tshark prints it) holds ``needle``, as the display filter
    ``field contains "needle"`` (or ``matches "(?i)needle"`` with ``ignore_case``) finds it. Only sure
    answers are yes: a needle cut by an escape reads as no (callers fall back to tshark's own filter)."""
    if not needle or "\\" in needle or "\0" in needle:
        raise ValueError(f"needle {needle!r} cannot be searched in tshark's escaped output")
    pattern = re.compile(re.escape(needle), re.IGNORECASE if ignore_case else 0)
    return any(pattern.search(literal_runs(v)) for v in values)
