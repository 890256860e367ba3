"""Side inputs (``load(..., signalling=[...])``): SDP the capture cannot show, e.g. behind TLS without keys.

Accepted, recognised by content:

- an SDP file (``v=0`` ...);
- a chrome://webrtc-internals dump (JSON with ``PeerConnections`` → ``updateLog`` entries such as
  ``setLocalDescription`` = ``"type: offer, sdp: v=0..."`` and ``icecandidate`` /
  ``addIceCandidate`` = ``"sdpMid: 0, sdpMLineIndex: 0, candidate: candidate:..."``; ``UserAgent``
  names the local browser);
- a JSON document or a JSON-lines message log (one signalling message per line; SDP and candidates
  are found at any depth as on the wire; a ``ts``/``time``/``timestamp`` field gives the time).

Their SDPs and candidates join the `sdp` and `candidates` frames with ``source`` = the file name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from .capture import Capture
from .dissect import jsonsdp
from .dissect.jsonsdp import Found
from .dissect.sdp import looks_like_sdp
from .errors import DecodeError, InputError

MAX_SIDE_FILE = 256 * 1024 * 1024


@dataclass
class SideItem:
    """One SDP / candidate / parameter set found in a side file."""

    found: Found
    source: str
    source_kind: str  # sdp_file | webrtc_internals | jsonl | json_file
    ts_ns: int | None = None
    direction: str | None = None  # local | remote (webrtc-internals)
    user_agent: str | None = None
    line: int | None = None


def _anomaly(cap: Capture, name: str, detail: str) -> None:
    from .tables.signalling import add_anomaly

    add_anomaly(cap, "signalling", name, detail)


def side_items(cap: Capture) -> list[SideItem]:
    """Everything found in the capture's side files (cached)."""

    def make() -> list[SideItem]:
        out: list[SideItem] = []
        for p in cap.signalling_files:
            out += read_side_file(p, cap)
        return out

    return cap.cached("side_items", make)


def read_side_file(path: str | Path, cap: Capture | None = None) -> list[SideItem]:
    """Read one side file. Unreadable files raise InputError naming the file; bad content becomes
    anomaly rows on ``cap`` (or DecodeError when there is no capture to record them on)."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_SIDE_FILE:
            raise InputError(p, f"side file larger than {MAX_SIDE_FILE >> 20} MiB")
        text = p.read_bytes().decode("utf-8", "replace")
    except OSError as e:
        raise InputError(p, f"cannot be read ({e.strerror or e})") from None
    name = p.name

    def problem(err: DecodeError) -> None:
        detail = f"{name}: {err.detail}"
        if cap is None:
            raise DecodeError(err.name, detail)
        _anomaly(cap, err.name, detail)

    stripped = text.lstrip("\ufeff \t\r\n")
    if looks_like_sdp(stripped):
        low = name.lower()
        role = "offer" if "offer" in low else "answer" if "answer" in low else None
        return [SideItem(Found("sdp", "file", text=stripped, role=role, envelope="plain"), name, "sdp_file")]
    try:
        doc: Any = jsonsdp.loads(stripped)
    except DecodeError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("PeerConnections"), dict):
        return _webrtc_internals(doc, name, problem)
    if doc is not None:
        try:
            return _from_message(doc, name, "json_file", None)
        except DecodeError as e:
            problem(e)
            return []
    out: list[SideItem] = []
    nonblank = 0
    for i, line in enumerate(stripped.splitlines(), start=1):
        s = line.strip()
        if not s:
            continue
        nonblank += 1
        try:
            out += _from_message(jsonsdp.loads(s), name, "jsonl", i)
        except DecodeError as e:
            problem(DecodeError(e.name, f"line {i}: {e.detail}"))
    if nonblank == 0:
        problem(DecodeError("side_file_empty", "side file is empty"))
    return out


def _from_message(obj: Any, name: str, kind: str, line: int | None) -> list[SideItem]:
    """Items of one logged JSON message; a top-level ts/time/timestamp and direction/dir apply to them."""
    ts = direction = None
    if isinstance(obj, dict):
        ts = _ts(obj.get("ts", obj.get("time", obj.get("timestamp"))))
        d = obj.get("direction", obj.get("dir"))
        direction = str(d) if d is not None else None
    return [SideItem(f, name, kind, ts, direction, line=line) for f in jsonsdp.find(obj)]


_SDP_VALUE = re.compile(r"^\s*type:\s*(\w+),\s*sdp:\s*(v=0.*)$", re.DOTALL)
_CAND_VALUE = re.compile(
    r"sdpMid:\s*([^,]*),\s*sdpMLineIndex:\s*(\d+),\s*candidate:\s*(\S.*?)\s*$", re.DOTALL
)
_LOCAL = {
    "setLocalDescription",
    "createOfferOnSuccess",
    "createAnswerOnSuccess",
    "icecandidate",
    "onicecandidate",
}
_REMOTE = {"setRemoteDescription", "addIceCandidate", "addIceCandidateSuccess"}


def _webrtc_internals(doc: dict[str, Any], name: str, problem: Any) -> list[SideItem]:
    ua = doc.get("UserAgent") if isinstance(doc.get("UserAgent"), str) else None
    out: list[SideItem] = []
    for pc_id, pc in doc["PeerConnections"].items():
        if not isinstance(pc, dict):
            continue
        log = pc.get("updateLog") or []
        if isinstance(log, dict):
            log = list(log.values())
        entries = [e for e in log if isinstance(e, dict)]
        has_set = any(e.get("type") in ("setLocalDescription", "setRemoteDescription") for e in entries)
        seen: set[tuple[str, str]] = set()
        for i, e in enumerate(entries):
            etype, value = str(e.get("type", "")), e.get("value")
            if not isinstance(value, str):
                continue
            direction = "local" if etype in _LOCAL else "remote" if etype in _REMOTE else None
            m = _SDP_VALUE.match(value)
            if m:
                if has_set and etype not in ("setLocalDescription", "setRemoteDescription"):
                    continue
                key = (direction or "", m.group(2))
                if key in seen:
                    continue
                seen.add(key)
                out.append(
                    SideItem(
                        Found(
                            "sdp",
                            f"PeerConnections.{pc_id}.updateLog[{i}]",
                            text=m.group(2),
                            role=m.group(1).lower(),
                            envelope="webrtc_internals",
                        ),
                        name,
                        "webrtc_internals",
                        _ts(e.get("time")),
                        direction,
                        ua if direction == "local" else None,
                    )
                )
                continue
            c = _CAND_VALUE.search(value)
            if c and etype in (_LOCAL | _REMOTE) and not etype.endswith("Success"):
                mline = int(c.group(2))
                out.append(
                    SideItem(
                        Found(
                            "candidate",
                            f"PeerConnections.{pc_id}.updateLog[{i}]",
                            text=c.group(3),
                            envelope="webrtc_internals",
                            mid=c.group(1).strip() or None,
                            mline_index=mline,
                        ),
                        name,
                        "webrtc_internals",
                        _ts(e.get("time")),
                        direction,
                    )
                )
    if not out:
        problem(DecodeError("side_file_no_sdp", "webrtc-internals dump has no descriptions or candidates"))
    return out


NS_LIMIT = Decimal(2) ** 63


def _ts(v: Any) -> int | None:
    """A time in a side file as ns since the epoch: epoch seconds or ms (number or digits), or ISO 8601."""
    if v is None or isinstance(v, bool):
        return None
    try:
        x = Decimal(str(v))  # exact: 1764140400.25 s is 1764140400250000000 ns, not ...249999872
    except (InvalidOperation, ValueError):
        x = None
    if x is not None and x.is_finite():
        if x > Decimal(10) ** 17:
            x_ns = x  # already ns
        elif x > Decimal(10) ** 14:
            x_ns = x * 1000  # µs
        elif x > Decimal(10) ** 11:
            x_ns = x * 1_000_000  # ms
        else:
            x_ns = x * 1_000_000_000
        return int(x_ns) if abs(x_ns) < NS_LIMIT else None  # beyond datetime64[ns] (1677-2262): no time
    try:
        dt = datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    ns = int(dt.timestamp() * 1e9)
    return ns if abs(ns) < NS_LIMIT else None
