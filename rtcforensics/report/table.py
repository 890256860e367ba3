"""The terminal report: a responder reads it in thirty seconds. Every capture-derived string goes through
:func:`safe.for_terminal_line` (no escape sequence from a capture reaches the terminal)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .jsonout import input_warnings
from .safe import for_terminal_line as t

ORDER = ("critical", "high", "medium", "low", "info")


def _short(s: Any, n: int = 110) -> str:
    s = t(s)
    return s if len(s) <= n else s[: n - 1] + "…"


def _enc(v: Any) -> str:
    return "encrypted" if v is True else "CLEAR" if v is False else "unknown"


def frames_text(frames: list[int], limit: int = 12) -> str:
    if not frames:
        return "-"
    shown = ", ".join(str(f) for f in frames[:limit])
    more = f" (+{len(frames) - limit} more)" if len(frames) > limit else ""
    return f"{shown}{more}   [Wireshark: frame.number in {{{' '.join(str(f) for f in frames[:limit])}}}]"


def render_overview(doc: dict[str, Any]) -> str:
    """Who talked to whom, when, through which relays, encrypted or not on each leg."""
    return "\n".join(_overview_lines(doc)) + "\n"


def _section(
    title: str, items: list[dict[str, Any]] | None, line: Callable[[dict[str, Any]], str]
) -> list[str]:
    """A titled block of the overview, one indented line per item (nothing when there are none)."""
    return [title, *(f"  {line(x)}" for x in items)] if items else []


def _overview_lines(doc: dict[str, Any]) -> list[str]:
    out: list[str] = []
    cap, ov = doc["capture"], doc["overview"]
    out.append(
        f"rtcforensics {t(doc['tool']['version'])} — {t(cap.get('name') or cap.get('path'))}"
        + (f"  sha256 {t(cap['sha256'][:16])}…" if cap.get("sha256") else "")
    )
    out += [f"WARNING   {_short(w, 300)}" for w in input_warnings(doc)]
    if ov.get("period"):
        p = ov["period"]
        out.append(f"period    {t(p['first'])} → {t(p['last'])}  ({p['packets']} packets)")
    out += _section(
        "signalling",
        ov.get("signalling"),
        lambda s: (
            f"{t(s['client'])} → {t(s['server'])}  {t('/'.join(s['transports']))}  "
            f"{_enc(s['encrypted'])}  {s['messages']} message(s)"
        ),
    )
    out += _section(
        "relays (TURN)",
        ov.get("relays"),
        lambda r: (
            f"{t(r['client'])} → {t(r['server'])}  relayed {t(r['relayed'])}"
            + (f"  [{_short(r['software'], 40)}]" if r.get("software") else "")
        ),
    )
    for ms in ov.get("media_servers", []):
        out.append(f"media server  {t(ms['host'])}  {t(ms['role'])}: {_short(ms['encryption'], 200)}")
    if ov.get("legs"):
        out.append("media legs")
        for leg in ov["legs"][:20]:
            out.append(
                f"  {t(leg['a'])} ↔ {t(leg['b'])}  {t(leg['transport'])}  {t(','.join(leg['classes']))}  "
                f"{leg['packets']} pkts  {_enc(leg['encrypted'])}"
                + ("  via TURN" if leg.get("via_turn") else "")
                + (f"  to SFU {t(leg['media_server'])} (hop by hop)" if leg.get("media_server") else "")
            )
        if len(ov["legs"]) > 20:
            out.append(f"  … {len(ov['legs']) - 20} more legs")
    out += _section(
        "DTLS",
        ov.get("handshakes"),
        lambda h: (
            f"{t(h['client'])} → {t(h['server'])}  {t(h['version'] or '?')}  "
            f"{t(h['cipher_suite'] or '?')}  {t(h['srtp_profile'] or '-')}  "
            f"{'completed' if h['completed'] else 'NOT completed' if h['completed'] is False else '?'}"
        ),
    )
    out += _section(
        "data channels (decrypted)",
        ov.get("datachannels"),
        lambda d: (
            f"flow {t(d['flow_id'])}  channel {t(d['channel'])}  label {_short(d['label'] or '-', 60)}  "
            f"{d['messages']} message(s), {d['bytes']} bytes"
        ),
    )
    if ov.get("opaque_legs"):
        out.append("not examined (could not see into)")
        out += [f"  {_short(o['why'], 200)}" for o in ov["opaque_legs"]]
    for n in ov.get("notes", []):
        out.append(f"  (note: {_short(n, 100)})")
    return out


def render(doc: dict[str, Any]) -> str:
    out = _overview_lines(doc)
    counts = doc["summary"]["findings"]
    out.append("")
    out.append("findings  " + ", ".join(f"{counts.get(s, 0)} {s}" for s in ORDER))
    if not doc["findings"]:
        out.append("  none")
    for f in doc["findings"]:
        out.append(
            f"  {f['severity'].upper():8} {t(f['id']):7} {t(f['slug'])}  (confidence {t(f['confidence'])})"
        )
        out.append(f"           {_short(f['message'], 140)}")
        if f["endpoints"]:
            out.append(f"           endpoints: {_short(', '.join(f['endpoints']), 140)}")
        out.append(f"           frames: {frames_text(f['frames'])}")
    cov = doc["summary"]["coverage"]
    out.append("")
    out.append(
        "coverage  "
        + ", ".join(f"{cov.get(k, 0)} {k}" for k in ("found", "clean", "not observable", "failed"))
    )
    for c in doc["coverage"]:
        if c["status"] in ("not observable", "failed"):
            out.append(f"  {c['status']:14} {t(c['id']):7} {t(c['slug'])}: {_short(c['reason'], 100)}")
    if doc.get("secrets_shown"):
        out.append("")
        out.append("WARNING: secrets shown (--show-secrets)")
    return "\n".join(out) + "\n"


def render_cross(cross: dict[str, Any]) -> str:
    if not cross:
        return ""
    out = ["", "across captures"]
    for kind, items in cross.items():
        for value, caps in items.items():
            out.append(
                f"  {t(kind)} {_short(value, 60)} seen in {len(caps)} captures: {_short(', '.join(caps), 80)}"
            )
    return "\n".join(out) + "\n"


def evidence_text(f: dict[str, Any]) -> str:
    return t(json.dumps(f["evidence"], ensure_ascii=False, sort_keys=True))
