"""The call ladder (Wireshark's VoIP flow sequence, for WebRTC): one column per host, time downwards.

Signalling messages (offer/answer, candidates, SIP requests and responses), ICE checks summarised per pair,
DTLS handshakes, media start and stop per stream, TURN allocations and permissions — each an arrow between
the columns of the hosts that exchanged it; an arrow whose frames a finding cites is drawn in the finding's
severity colour with its slug. :func:`ladder_events` is pure (tested without a kernel); :func:`draw_ladder`
takes an ``ax`` and returns it; :func:`ladder_widget` adds a finding picker.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..values import host, records
from . import _avail, _safe
from .select import finding_frames, finding_label, findings_frame, role_of, severity_rank
from .timeline import SEVERITY_COLOURS

KIND_COLOURS = {
    "signalling": "#54a24b",
    "ice": "#72b7b2",
    "turn": "#b279a2",
    "dtls": "#f58518",
    "media": "#4c78a8",
}
EVENT_COLUMNS = ["ts", "src", "dst", "kind", "label", "frames", "severity", "slugs"]
TURN_METHODS = ("Allocate", "Refresh", "CreatePermission", "ChannelBind")


def _signalling_events(sig: pd.DataFrame | None) -> list[dict[str, Any]]:
    out = []
    for r in records(sig) if sig is not None else ():
        what = r.get("method") or (f"{r['status']}" if r.get("status") is not None else None) or "message"
        if r.get("sdp_count"):
            what += " + SDP"
        if r.get("candidate_count"):
            what += f" + {r['candidate_count']} cand."
        tls = " (TLS)" if r.get("tls") else ""
        out.append(
            {
                "ts": r["ts"],
                "src": r["src"],
                "dst": r["dst"],
                "kind": "signalling",
                "label": f"{r.get('transport')}: {what}{tls}",
                "frames": [int(r["frame"])],
            }
        )
    return out


def _stun_events(stun: pd.DataFrame | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if stun is None or not len(stun):
        return out
    method = stun["method"].astype(str)
    binding = stun[method == "Binding"]
    # ICE checks: one arrow per (requester, responder) host pair, at the first request
    req = binding[binding["cls"].astype(str) == "request"]
    ok = binding[binding["cls"].astype(str) == "success"]
    for (src, dst), g in req.groupby(["src", "dst"], sort=False):
        answered = int(((ok["src"] == dst) & (ok["dst"] == src)).sum())
        out.append(
            {
                "ts": g["ts"].min(),
                "src": src,
                "dst": dst,
                "kind": "ice",
                "label": f"ICE/STUN Binding x{len(g)} ({answered} answered)",
                "frames": sorted(int(f) for f in g["frame"]),
            }
        )
    turn = stun[method.isin(TURN_METHODS)]
    for r in records(turn):
        cls = str(r["cls"])
        what = {"request": "", "success": " ok", "error": f" {r.get('error_code') or 'error'}"}.get(
            cls, f" {cls}"
        )
        if r.get("xor_relayed") and cls == "success":
            what += f" relayed {r['xor_relayed']}"
        if r.get("xor_peer") and cls == "request":
            what += f" peer {r['xor_peer']}"
        out.append(
            {
                "ts": r["ts"],
                "src": r["src"],
                "dst": r["dst"],
                "kind": "turn",
                "label": f"TURN {r['method']}{what}",
                "frames": [int(r["frame"])],
            }
        )
    return out


def _dtls_events(dtls: pd.DataFrame | None) -> list[dict[str, Any]]:
    out = []
    for r in records(dtls) if dtls is not None else ():
        what = f"{r.get('version') or 'DTLS'} handshake" + ("" if r.get("completed") else " (incomplete)")
        if r.get("srtp_profile"):
            what += f", {r['srtp_profile']}"
        out.append(
            {
                "ts": r["ts_first"],
                "src": host(r["client"]),
                "dst": host(r["server"]),
                "kind": "dtls",
                "label": what,
                "frames": [int(f) for f in (r.get("frames") or [r["first_frame"]])],
            }
        )
    return out


def _media_events(streams: pd.DataFrame | None) -> list[dict[str, Any]]:
    out = []
    for r in records(streams) if streams is not None else ():
        src, dst = host(r["src"]), host(r["dst"])
        name = f"RTP {int(r['ssrc']):#010x} {r.get('codec') or 'PT ' + str(r.get('pt'))} ({r.get('keying')})"
        out.append(
            {
                "ts": r["first_ts"],
                "src": src,
                "dst": dst,
                "kind": "media",
                "label": f"{name} starts, {r['packets']} pkts",
                "frames": [int(r["first_frame"])],
            }
        )
        if r.get("last_frame") and r["last_frame"] != r["first_frame"]:
            out.append(
                {
                    "ts": r["last_ts"],
                    "src": src,
                    "dst": dst,
                    "kind": "media",
                    "label": f"{name} stops",
                    "frames": [int(r["last_frame"])],
                }
            )
    return out


def ladder_events(
    *,
    signalling: pd.DataFrame | None = None,
    stun: pd.DataFrame | None = None,
    dtls: pd.DataFrame | None = None,
    rtp_streams: pd.DataFrame | None = None,
    findings: Any = None,
) -> pd.DataFrame:
    """The ladder's arrows in time order (``EVENT_COLUMNS``); ``severity`` and ``slugs`` name the findings
    that cite one of an arrow's frames (the most severe first)."""
    rows = (
        _signalling_events(signalling) + _stun_events(stun) + _dtls_events(dtls) + _media_events(rtp_streams)
    )
    df = pd.DataFrame(rows, columns=EVENT_COLUMNS[:6])
    fd = findings_frame(findings)
    cited = [(set(finding_frames(f)), str(f["severity"]), str(f["slug"])) for _, f in fd.iterrows()]
    sev, slugs = [], []
    for frames in df["frames"]:
        hit = sorted((c for c in cited if c[0] & set(frames)), key=lambda c: -severity_rank(c[1]))
        sev.append(hit[0][1] if hit else None)
        slugs.append(list(dict.fromkeys(c[2] for c in hit)))
    df["severity"] = sev
    df["slugs"] = slugs
    df = df[df["src"].notna() & df["dst"].notna()]
    return df.sort_values("ts", kind="stable").reset_index(drop=True)


def columns(events: pd.DataFrame, graph: Any = None) -> list[str]:
    """Hosts left to right: the first peer, then servers and relays, then the other peers (first appearance
    order within each group)."""
    seen = list(dict.fromkeys(list(events["src"]) + list(events["dst"])))
    if graph is None:
        return seen
    peers = [h for h in seen if h in graph and role_of(graph.nodes[h]) in ("peer", "unknown")]
    others = [h for h in seen if h not in peers]
    return peers[:1] + others + peers[1:]


def draw_ladder(
    events: pd.DataFrame,
    ax: Axes,
    *,
    hosts: list[str] | None = None,
    highlight: Iterable[int] = (),
    max_events: int = 80,
) -> Axes:
    """Draw ``events`` (``ladder_events``) on ``ax``: a lifeline per host, one arrow per event, time going
    down; arrows cited by findings in their severity colour with the slugs; arrows carrying a frame in
    ``highlight`` drawn thick. Returns ``ax``."""
    ax.set_axis_off()
    if events is None or not len(events):
        ax.text(
            0.5,
            0.5,
            "no signalling, ICE, DTLS, TURN or media seen",
            ha="center",
            va="center",
            transform=ax.transAxes,
            parse_math=False,
        )
        return ax
    ev = events.head(max_events)
    hosts = hosts or columns(ev)
    x = {h: i for i, h in enumerate(hosts)}
    n = len(ev)
    t0 = ev["ts"].min()
    hl = set(highlight)
    for h, i in x.items():
        ax.plot([i, i], [0.2, n + 0.5], color="#bbbbbb", linewidth=1, zorder=0)
        ax.text(
            i,
            -0.1,
            _safe.redact_text(h),
            ha="center",
            va="bottom",
            fontsize=8,
            weight="bold",
            parse_math=False,
        )
    for k, r in enumerate(ev.itertuples(index=False), start=1):
        if r.src not in x or r.dst not in x:
            continue
        x1, x2 = x[r.src], x[r.dst]
        colour = (
            SEVERITY_COLOURS.get(r.severity, KIND_COLOURS[r.kind])
            if r.severity in ("medium", "high", "critical")
            else KIND_COLOURS[r.kind]
        )
        width = 3.0 if hl & set(r.frames) else (1.8 if r.severity else 1.0)
        if x1 == x2:
            ax.plot([x1], [k], marker="o", color=colour)
        else:
            ax.annotate(
                "",
                xy=(x2, k),
                xytext=(x1, k),
                arrowprops={"arrowstyle": "-|>", "color": colour, "linewidth": width},
            )
        label = _safe.redact_text(r.label)
        if len(label) > 70:
            label = label[:69] + "…"
        if r.slugs and severity_rank(r.severity) >= severity_rank("medium"):
            label += "  ⚑ " + ", ".join(r.slugs[:2])
        ax.text(
            (x1 + x2) / 2,
            k - 0.12,
            label,
            ha="center",
            va="bottom",
            fontsize=6.5,
            color=colour,
            parse_math=False,
        )
        ax.text(
            -0.55,
            k,
            f"+{(r.ts - t0).total_seconds():.3f}s  #{r.frames[0]}",
            ha="right",
            va="center",
            fontsize=6,
            color="#555555",
            parse_math=False,
        )
    ax.set_xlim(-1.6, max(len(hosts) - 0.5, 1.0))
    ax.set_ylim(n + 0.8, -0.6)
    handles = [Line2D([], [], color=c, label=k) for k, c in KIND_COLOURS.items() if k in set(ev["kind"])]
    sevs = sorted({s for s in ev["severity"] if s in ("medium", "high", "critical")}, key=severity_rank)
    handles += [
        Line2D([], [], color=SEVERITY_COLOURS[s], linewidth=1.8, label=f"cited by a {s} finding")
        for s in sevs
    ]
    ax.legend(
        handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=4, fontsize=7, frameon=False
    )
    if len(events) > max_events:
        ax.text(
            0.5,
            0.0,
            f"… {len(events) - max_events} later events not drawn",
            transform=ax.transAxes,
            ha="center",
            va="top",
            fontsize=7,
            parse_math=False,
        )
    return ax


def render_png(
    events: pd.DataFrame,
    *,
    hosts: list[str] | None = None,
    highlight: Iterable[int] = (),
    max_events: int = 80,
) -> bytes:
    """The ladder as PNG bytes (a Figure of its own: pyplot's global state is not touched)."""
    n = min(len(events), max_events) if events is not None else 0
    ncols = len(hosts) if hosts else 3
    fig = Figure(figsize=(max(7.0, 2.2 * ncols + 2.5), 1.6 + 0.28 * n), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    draw_ladder(events, ax, hosts=hosts, highlight=highlight, max_events=max_events)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def capture_events(cap: Any, findings: Any = None) -> pd.DataFrame:
    """:func:`ladder_events` of a capture's frames (and its report's findings when not given)."""
    if findings is None:
        findings, _ = _avail.report(cap)
    frames = {n: _avail.frame(cap, n)[0] for n in ("signalling", "stun", "dtls", "rtp_streams")}
    return ladder_events(findings=findings, **frames)


def ladder_widget(cap: Any, findings: Any = None) -> Any:
    """The ladder image with a finding picker: picking a finding thickens the arrows of the frames it cites."""
    import ipywidgets as w

    from ._static import LiveBox

    if findings is None:
        findings, _ = _avail.report(cap)
    events = capture_events(cap, findings)
    graph, _ = _avail.graph(cap)
    hosts = columns(events, graph) if len(events) else []
    fdf = findings_frame(findings)
    options = [("(no finding selected)", -1)] + [
        (_safe.redact_text(finding_label(r)), i) for i, r in fdf.iterrows()
    ]
    picker = w.Dropdown(options=options, value=-1, description="Finding", layout=w.Layout(width="95%"))
    image = w.Image(value=render_png(events, hosts=hosts), format="png", layout=w.Layout(max_width="100%"))
    box = LiveBox([picker, image])
    box.add_class("rtcf-ladder")

    def on_pick(change: Any) -> None:
        i = change["new"]
        frames = finding_frames(fdf.loc[i]) if i is not None and i >= 0 else []
        image.value = render_png(events, hosts=hosts, highlight=frames)
        box.refresh_static()

    picker.observe(on_pick, names="value")
    return box
