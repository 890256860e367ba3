"""The verdict card: the answer to "what happened in this capture" on one screen.

Who talked to whom, through which relays, SFUs and signalling servers; for every media leg and signalling leg
whether an observer on the path could read it and how we know (handshake seen, decrypted with the keylog,
SDES key in clear, plain RTP); the suspect hosts and the top findings in severity colours. The verdicts are
the checks' (``Report``); the card only arranges them. Pure functions over frames and the report, tested
without a kernel; :func:`verdict_card` returns static HTML that survives saving.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pandas as pd

from ..checks.analyze import Report
from ..values import ep, host, records
from . import _avail, _safe
from ._static import StaticHTML
from .labs import readable_streams
from .select import SEVERITIES, role_of, severity_rank
from .timeline import SEVERITY_COLOURS

STATE_COLOURS = {"readable": "#c62828", "protected": "#2e7d32", "unknown": "#6d6d6d"}
RELAY_ROLES = ("turn_server", "media_server", "signalling_server", "stun_server")


def media_legs(
    rtp_streams: pd.DataFrame | None, srtp_streams: pd.DataFrame | None, report: Report | None
) -> pd.DataFrame:
    """One row per RTP stream: ``leg`` (sender → receiver), ``ssrc``, ``via_turn``, ``state`` (readable /
    protected / unknown) and ``how`` we know."""
    cols = ["leg", "flow_id", "ssrc", "codec", "via_turn", "state", "how"]
    if rtp_streams is None or not len(rtp_streams):
        return pd.DataFrame({c: [] for c in cols})
    readable = dict(
        zip(readable_streams(report, rtp_streams)["ssrc"], readable_streams(report, rtp_streams)["why"])
    )
    srtp = (
        {int(r["ssrc"]): r for r in records(srtp_streams)}
        if srtp_streams is not None and len(srtp_streams)
        else {}
    )
    rows = []
    for r in records(rtp_streams):
        ssrc, keying = int(r["ssrc"]), str(r.get("keying") or "unknown")
        dec = srtp.get(ssrc)
        decrypted = dec is not None and dec.get("status") in ("authenticated", "partly authenticated")
        if ssrc in readable:
            state = "readable"
            how = (
                "plain RTP: no SRTP keying, payload looks like " + (str(r.get("codec") or "media"))
                if readable[ssrc] == "plain"
                else "SDES: its key crossed the wire in clear inside the SDP"
            )
        elif keying == "dtls-srtp":
            state, how = "protected", "DTLS-SRTP: handshake seen on the flow"
        elif keying == "sdes":
            state, how = "protected", "SDES: key in signalling that was not readable on the wire"
        elif keying == "none":
            state, how = "readable", "plain RTP negotiated (RTP/AVP)"
        else:
            state, how = "unknown", "no DTLS handshake or SDP seen for it"
        if decrypted:
            how += f"; decrypted here ({dec.get('key_source') or 'keylog'})"  # type: ignore[union-attr]
        rows.append(
            {
                "leg": f"{r.get('src')} → {r.get('dst')}",
                "flow_id": r.get("flow_id"),
                "ssrc": f"{ssrc:#010x}",
                "codec": r.get("codec"),
                "via_turn": r.get("via_turn"),
                "state": state,
                "how": how,
            }
        )
    return pd.DataFrame(rows, columns=cols)


def signalling_legs(signalling: pd.DataFrame | None) -> pd.DataFrame:
    """One row per signalling connection: ``leg`` (client → server), ``transport``, ``state`` and ``how``
    (clear on the wire, inside TLS, decrypted with the keylog), ``messages``, ``descriptions`` (SDPs)."""
    cols = ["leg", "flow_id", "transport", "state", "how", "messages", "descriptions"]
    if signalling is None or not len(signalling):
        return pd.DataFrame({c: [] for c in cols})
    rows = []
    for fid, g in signalling.groupby("flow_id", sort=True):
        first = g[g["direction"].astype(str).isin(["request", "client_to_server"])]
        r = (first if len(first) else g).iloc[0]
        to_server = str(r["direction"]) in ("request", "client_to_server")
        client = r["src"] if to_server else r["dst"]
        server = ep(r["dst"], r["dport"]) if to_server else ep(r["src"], r["sport"])
        tls = bool(g["tls"].fillna(False).any())
        decrypted = bool(g["decrypted"].fillna(False).any())
        version = next((str(v) for v in g["tls_version"].dropna()), "TLS")
        if not tls:
            state, how = "readable", "in clear on the wire"
        else:
            state, how = (
                "protected",
                f"inside {version}" + ("; decrypted here with the keylog" if decrypted else ""),
            )
        transports = "/".join(sorted({str(t) for t in g["transport"].dropna()}))
        rows.append(
            {
                "leg": f"{client} → {server}",
                "flow_id": fid,
                "transport": transports,
                "state": state,
                "how": how,
                "messages": len(g),
                "descriptions": int(g["sdp_count"].fillna(0).sum()),
            }
        )
    return pd.DataFrame(rows, columns=cols)


def hosts_by_role(graph: Any) -> dict[str, list[str]]:
    """Hosts of the topology graph per role (a host with several roles is listed under each)."""
    out: dict[str, list[str]] = {}
    if graph is None:
        return out
    for n, d in graph.nodes(data=True):
        roles = [role_of({"role": r}) for r in (d.get("roles") or [d.get("role")])] or ["unknown"]
        for r in dict.fromkeys(roles):
            out.setdefault(r, []).append(str(n))
    return {r: sorted(v) for r, v in out.items()}


def suspect_hosts(report: Report | None, min_severity: str = "high") -> list[tuple[str, int, str]]:
    """``(host, findings, worst severity)`` of the hosts named by findings at or above ``min_severity``,
    most findings first."""
    floor = severity_rank(min_severity)
    count: Counter[str] = Counter()
    worst: dict[str, int] = {}
    for f in getattr(report, "findings", ()):
        rank = severity_rank(f.severity)
        if rank < floor:
            continue
        for h in {host(e) for e in f.endpoints} - {None}:
            count[str(h)] += 1
            worst[str(h)] = max(worst.get(str(h), -1), rank)
    return [
        (h, n, SEVERITIES[worst[h]])
        for h, n in sorted(count.items(), key=lambda x: (-worst[x[0]], -x[1], x[0]))
    ]


def _badge(text: str, colour: str) -> str:
    return (
        f"<span style='background:{colour};color:white;border-radius:3px;padding:0 5px;font-size:85%'>"
        f"{_safe.escape(text)}</span>"
    )


def _legs_html(df: pd.DataFrame, empty: str) -> str:
    if not len(df):
        return f"<p><i>{_safe.escape(empty)}</i></p>"
    items = []
    for r in records(df):
        extra = (
            f" <code>{_safe.escape(r['ssrc'])}</code>"
            if "ssrc" in r
            else f" ({_safe.escape(r['transport'])})"
        )
        turn = " via TURN" if r.get("via_turn") else ""
        items.append(
            f"<li>{_badge(r['state'], STATE_COLOURS[r['state']])} {_safe.escape(r['leg'])}{extra}"
            f"{_safe.escape(turn)} — {_safe.escape(_safe.redact_text(r['how']))}</li>"
        )
    return "<ul style='margin:0'>" + "".join(items) + "</ul>"


def card_html(cap: Any, report: Report | None, *, top: int = 5) -> str:
    """The verdict card's HTML (escaped, secrets redacted)."""
    graph, _ = _avail.graph(cap)
    streams, _ = _avail.frame(cap, "rtp_streams")
    sig, _ = _avail.frame(cap, "signalling")
    try:
        srtp = cap.get_frame("srtp_streams") if "srtp_streams" in cap.frame_names() else None
    except ImportError:  # the srtp extra is not installed: nothing was decrypted
        srtp = None
    roles = hosts_by_role(graph)
    # hosts that sent or received media are call participants even where the graph saw no ICE (plain SIP/SDES)
    media_hosts = {str(host(e)) for c in ("src", "dst") for e in (streams[c] if streams is not None else ())}
    roles["peer"] = sorted(
        set(roles.get("peer", []))
        | (media_hosts - set(roles.get("turn_server", [])) - set(roles.get("media_server", [])))
    )
    name = getattr(getattr(cap, "path", None), "name", "capture")
    media = media_legs(streams, srtp, report)
    signalling = signalling_legs(sig)
    parts = [
        f"<div class='rtcf-verdict' style='border:1px solid #ccc;border-radius:6px;padding:8px 12px'>"
        f"<h3 style='margin-top:0'>Verdict — {_safe.escape(name)}</h3>"
    ]
    peers = ", ".join(roles.get("peer", [])) or "none identified"
    parts.append(f"<p><b>Who talked to whom.</b> Peers: {_safe.escape(peers)}.")
    through = [f"{r.replace('_', ' ')}: {', '.join(roles[r])}" for r in RELAY_ROLES if roles.get(r)]
    parts.append(f" Through: {_safe.escape('; '.join(through) or 'no relay, SFU or server seen')}.</p>")
    n_read = int((media["state"] == "readable").sum()) + int((signalling["state"] == "readable").sum())
    parts.append(
        "<p><b>Could an observer on the path read it?</b> "
        + (
            _badge(f"{n_read} leg(s) readable", STATE_COLOURS["readable"])
            if n_read
            else _badge("no readable leg seen", STATE_COLOURS["protected"])
        )
        + "</p>"
    )
    parts.append("<p><b>Media legs</b></p>" + _legs_html(media, "no RTP stream in this capture"))
    parts.append(
        "<p><b>Signalling legs</b></p>"
        + _legs_html(
            signalling, "no readable signalling in this capture (absent, or inside TLS without keylog)"
        )
    )
    suspects = suspect_hosts(report)
    if suspects:
        parts.append(
            "<p><b>Suspect hosts</b> (named by high or critical findings): "
            + ", ".join(
                f"{_badge(sev, SEVERITY_COLOURS[sev])} {_safe.escape(h)} ({n})" for h, n, sev in suspects
            )
            + "</p>"
        )
    findings = list(getattr(report, "findings", ()))[:top]
    if report is None:
        parts.append("<p><i>the checks could not run on this capture</i></p>")
    elif findings:
        parts.append(
            "<p><b>Top findings</b></p><ul style='margin:0'>"
            + "".join(
                f"<li>{_badge(str(f.severity), SEVERITY_COLOURS.get(str(f.severity), '#000'))} "
                f"<b>{_safe.escape(f.slug)}</b> — {_safe.escape(_safe.redact_text(f.message)[:200])}</li>"
                for f in findings
            )
            + "</ul>"
        )
    else:
        parts.append("<p>" + _badge("no findings", STATE_COLOURS["protected"]) + "</p>")
    return "".join(parts) + "</div>"


def verdict_card(cap: Any, report: Report | None = None) -> StaticHTML:
    """The verdict card of ``cap`` (the checks' report computed once per capture when not given)."""
    if report is None:
        report, _ = _avail.report(cap)
    return StaticHTML(card_html(cap, report))
