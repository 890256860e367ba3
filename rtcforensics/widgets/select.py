"""Selection and filtering behind the widgets: pure functions over frames, no kernel, no widgets.

Everything here takes frames (``pandas.DataFrame``) or plain values and returns frames or plain values, so
it is tested on real captures without Jupyter. The widgets only wire these to controls.

Column names are the ones the frames' schemas declare (``rtcforensics.schema.SCHEMAS``); :func:`declared`
checks each name against its schema when this module is imported, so a renamed column fails loudly here
instead of silently emptying a view.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .. import tables as _tables  # noqa: F401  (importing the builders registers the frames' schemas)
from ..checks.analyze import FINDING_COLUMNS as _FINDING_COLUMNS
from ..schema import SCHEMAS
from ..tables.rtp import STATIC_PT

SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")

# Demux classes (DESIGN §3 `packets`) grouped into the protocol filters an analyst picks from.
PROTOCOL_GROUPS: dict[str, tuple[str, ...]] = {
    "stun/turn": ("stun", "turn_channel"),
    "dtls": ("dtls",),
    "media": ("rtp", "rtcp", "zrtp"),
    "signalling": ("tls", "http", "websocket", "sip"),
    "other": ("other",),
}

# Timeline phases: which demux classes make which phase of a flow.
PHASES: dict[str, tuple[str, ...]] = {
    "stun": ("stun",),
    "dtls": ("dtls",),
    "media": ("rtp", "rtcp", "zrtp", "turn_channel"),
    "signalling": ("tls", "http", "websocket", "sip"),
}

# RTP clock rates: the static payload types' from the rtp tables (RFC 3551); the usual dynamic codecs' when no SDP
# says (rtp_streams.clock_rate is preferred when the frame has it).
STATIC_CLOCK: dict[int, int] = {pt: rate for pt, (_, rate) in STATIC_PT.items()}
CODEC_CLOCK: dict[str, int] = {
    "opus": 48000,
    "pcmu": 8000,
    "pcma": 8000,
    "g722": 8000,
    "vp8": 90000,
    "vp9": 90000,
    "h264": 90000,
    "av1": 90000,
    "h265": 90000,
    "telephone-event": 8000,
}


# -- column access ------------------------------------------------------------------------------------------
def declared(frame: str, column: str) -> str:
    """``column``, after checking that the schema of ``frame`` declares it (KeyError otherwise)."""
    SCHEMAS[frame].column(column)
    return column


CLS = declared("packets", "cls")  # the demux class of a packet
SESSION_KEY = declared("sessions", "session_id")
PAYLOAD_LEN = declared("rtp", "payload_len")


def class_column(packets: pd.DataFrame | None) -> str | None:
    """Name of the demux-class column of the ``packets`` frame (None when ``packets`` lacks it)."""
    return CLS if packets is not None and CLS in packets.columns else None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, float) and np.isnan(value):
        return []
    if value is pd.NA:
        return []
    if isinstance(value, (str, bytes)):
        return [value]
    if isinstance(value, Mapping):
        return list(value.values())
    if isinstance(value, Iterable):
        return [v for v in value if v is not None and v is not pd.NA]
    return [value]


def _to_ts(value: Any) -> pd.Timestamp | None:
    if value is None or value is pd.NA:
        return None
    ts = pd.Timestamp(value)
    if pd.isna(ts):
        return None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


# -- severities and findings --------------------------------------------------------------------------------
def severity_rank(severity: Any) -> int:
    """0 (info) … 4 (critical); accepts names in any case, ``Severity`` members and ints; -1 when unknown."""
    if severity is None or severity is pd.NA:
        return -1
    if isinstance(severity, (int, np.integer)) and not isinstance(severity, bool):
        return int(severity) if 0 <= int(severity) < len(SEVERITIES) else -1
    name = str(severity).strip().lower()
    if "." in name:  # "Severity.HIGH"
        name = name.rsplit(".", 1)[1]
    return SEVERITIES.index(name) if name in SEVERITIES else -1


# the Finding record's fields, in order: one definition (checks.analyze)
FINDING_COLUMNS = tuple(_FINDING_COLUMNS)


def findings_frame(findings: Any) -> pd.DataFrame:
    """Findings as a frame with the DESIGN §4 columns, from a ``Report``, a frame, or a list of records.

    Accepts ``Report`` objects (``.findings``), frames, lists of dicts, and lists of dataclass-like records
    (``to_dict()`` / ``__dict__``). Severity is normalised to its lowercase name."""
    if findings is None:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in FINDING_COLUMNS})
    if hasattr(findings, "findings") and not isinstance(findings, pd.DataFrame):
        findings = findings.findings
    if isinstance(findings, pd.DataFrame):
        df = findings.copy()
    else:
        rows = []
        for f in findings:
            if isinstance(f, Mapping):
                rows.append(dict(f))
            elif hasattr(f, "to_dict"):
                rows.append(dict(f.to_dict()))
            else:
                rows.append(dict(vars(f)))
        df = pd.DataFrame.from_records(rows)
    for c in FINDING_COLUMNS:
        if c not in df.columns:
            df[c] = pd.Series([None] * len(df), index=df.index, dtype=object)
    df["severity"] = [
        SEVERITIES[severity_rank(s)] if severity_rank(s) >= 0 else str(s) for s in df["severity"]
    ]
    for c in ("confidence",):
        df[c] = [None if v is None or v is pd.NA else (str(v).rsplit(".", 1)[-1].lower()) for v in df[c]]
    return df.reset_index(drop=True)


def filter_findings(
    findings: pd.DataFrame,
    *,
    min_severity: Any = None,
    slugs: Iterable[str] | None = None,
    flow_ids: Iterable[int] | None = None,
    text: str | None = None,
) -> pd.DataFrame:
    """Findings at or above ``min_severity``, with one of ``slugs``, touching one of ``flow_ids``, whose
    title/message/slug contains ``text`` (case-insensitive). ``None`` means no constraint."""
    df = findings_frame(findings)
    keep = pd.Series(True, index=df.index)
    if min_severity is not None and str(min_severity) not in ("", "any", "all"):
        floor = severity_rank(min_severity)
        if floor < 0:
            raise ValueError(f"unknown severity {min_severity!r} (one of: {', '.join(SEVERITIES)})")
        keep &= df["severity"].map(severity_rank) >= floor
    if slugs is not None:
        wanted = set(slugs)
        keep &= df["slug"].isin(wanted)
    if flow_ids is not None:
        wanted_flows = {int(f) for f in flow_ids}
        keep &= pd.Series(
            [bool(finding_flow_ids(row) & wanted_flows) for _, row in df.iterrows()],
            index=df.index,
            dtype=bool,
        )
    if text:
        t = text.lower()
        hay = (
            df["slug"].astype(str) + " " + df["title"].astype(str) + " " + df["message"].astype(str)
        ).str.lower()
        keep &= hay.str.contains(t, regex=False)
    out = df[keep]
    order = out["severity"].map(severity_rank).sort_values(ascending=False, kind="stable").index
    return out.loc[order].reset_index(drop=True)


def finding_frames(finding: Mapping[str, Any] | pd.Series) -> list[int]:
    """The Wireshark frame numbers a finding cites, sorted, without duplicates."""
    frames = finding.get("frames") if hasattr(finding, "get") else None
    out: set[int] = set()
    for v in _as_list(frames):
        try:
            out.add(int(v))
        except (TypeError, ValueError):
            continue
    return sorted(out)


def finding_flow_ids(finding: Mapping[str, Any] | pd.Series, packets: pd.DataFrame | None = None) -> set[int]:
    """Flows a finding concerns: its ``flow_id`` plus, given ``packets``, the flows of the frames it cites."""
    out: set[int] = set()
    for v in _as_list(finding.get("flow_id") if hasattr(finding, "get") else None):
        try:
            out.add(int(v))
        except (TypeError, ValueError):
            continue
    if packets is not None and len(packets) and "frame" in packets.columns and "flow_id" in packets.columns:
        frames = finding_frames(finding)
        if frames:
            hit = packets.loc[packets["frame"].isin(frames), "flow_id"].dropna()
            out.update(int(x) for x in hit.unique())
    return out


def finding_label(finding: Mapping[str, Any] | pd.Series) -> str:
    """One line naming a finding for a picker (unescaped: escape where it is rendered as HTML)."""
    sev = str(finding.get("severity") or "?").upper()
    title = finding.get("title") or finding.get("slug") or "?"
    eps = ", ".join(str(e) for e in _as_list(finding.get("endpoints"))[:2])
    return f"[{sev}] {title}" + (f" — {eps}" if eps else "")


# -- packets, flows, sessions -------------------------------------------------------------------------------
def protocol_classes(groups: Iterable[str]) -> set[str]:
    """Demux classes for protocol-filter names (``PROTOCOL_GROUPS`` keys, or demux classes themselves)."""
    out: set[str] = set()
    for g in groups:
        out.update(PROTOCOL_GROUPS.get(g, (g,)))
    return out


def time_bounds(df: pd.DataFrame | None) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """First and last ``ts`` of a frame (None when it has no timestamps)."""
    if df is None or "ts" not in df.columns or not len(df):
        return None
    ts = df["ts"].dropna()
    if not len(ts):
        return None
    return _to_ts(ts.min()), _to_ts(ts.max())  # type: ignore[return-value]


def filter_packets(
    packets: pd.DataFrame,
    *,
    protocols: Iterable[str] | None = None,
    start: Any = None,
    end: Any = None,
    flow_ids: Iterable[int] | None = None,
    relative: bool = False,
) -> pd.DataFrame:
    """Packets whose demux class is in ``protocols`` (group names or classes), with ``start <= ts <= end``,
    in ``flow_ids``. With ``relative=True``, ``start``/``end`` are seconds from the first packet."""
    df = packets
    keep = pd.Series(True, index=df.index)
    if protocols is not None:
        ccol = class_column(df)
        classes = protocol_classes(protocols)
        if ccol is None:
            keep &= False
        else:
            keep &= df[ccol].astype(object).isin(classes)
    if (start is not None or end is not None) and "ts" in df.columns:
        t0 = time_bounds(df)
        if relative and t0 is not None:
            base = t0[0]
            start = None if start is None else base + pd.to_timedelta(float(start), unit="s")
            end = None if end is None else base + pd.to_timedelta(float(end), unit="s")
        s, e = _to_ts(start), _to_ts(end)
        if s is not None:
            keep &= df["ts"] >= s
        if e is not None:
            keep &= df["ts"] <= e
    if flow_ids is not None and "flow_id" in df.columns:
        keep &= df["flow_id"].isin([int(f) for f in flow_ids])
    return df[keep.fillna(False).astype(bool)]


def flows_of_frames(packets: pd.DataFrame, frames: Iterable[int]) -> set[int]:
    """Flow ids of the given Wireshark frame numbers."""
    if packets is None or not len(packets) or "flow_id" not in packets.columns:
        return set()
    hit = packets.loc[packets["frame"].isin(list(frames)), "flow_id"].dropna()
    return {int(x) for x in hit.unique()}


def session_key_column(sessions: pd.DataFrame | None) -> str | None:
    return SESSION_KEY if sessions is not None and SESSION_KEY in sessions.columns else None


def session_options(sessions: pd.DataFrame | None) -> list[tuple[str, Any]]:
    """``(label, key)`` pairs for a session picker; the first is ``("all sessions", None)``."""
    opts: list[tuple[str, Any]] = [("all sessions", None)]
    key = session_key_column(sessions)
    if sessions is None or key is None:
        return opts
    for _, row in sessions.iterrows():
        label = f"session {row[key]}"
        ufrags = [
            str(row[c])
            for c in ("offer_ufrag", "answer_ufrag")
            if c in sessions.columns and row[c] is not None and row[c] is not pd.NA
        ]
        if ufrags:
            label += f" ({':'.join(ufrags)})"
        if "kind" in sessions.columns and row["kind"] is not None and row["kind"] is not pd.NA:
            label += f" {row['kind']}"
        opts.append((label, row[key]))
    return opts


_SESSION_FLOW_COLUMNS = tuple(
    declared("sessions", c) for c in ("flow_id", "nominated_flow_id", "selected_flow_id", "dtls_flow_id")
)


def session_flow_ids(sessions: pd.DataFrame | None, session: Any) -> set[int] | None:
    """Flows that belong to ``session`` (a key from :func:`session_options`); ``None`` = no constraint."""
    if session is None or sessions is None:
        return None
    key = session_key_column(sessions)
    if key is None:
        return None
    rows = sessions[sessions[key] == session]
    out: set[int] = set()
    for c in _SESSION_FLOW_COLUMNS:
        if c in rows.columns:
            for v in rows[c]:
                for x in _as_list(v):
                    try:
                        out.add(int(x))
                    except (TypeError, ValueError):
                        continue
    return out


# -- timeline -----------------------------------------------------------------------------------------------
def flow_phases(packets: pd.DataFrame, flow_ids: Iterable[int] | None = None) -> pd.DataFrame:
    """One row per (flow, phase) with ``start``, ``end``, ``packets`` and ``first_frame``.

    Phases are ``stun``, ``dtls``, ``media`` and ``signalling`` (``PHASES``) taken from the packets' demux
    class; a flow that never carried a class has no row for that phase."""
    cols = ["flow_id", "phase", "start", "end", "packets", "first_frame"]
    ccol = class_column(packets)
    if packets is None or ccol is None or not len(packets) or "flow_id" not in packets.columns:
        return pd.DataFrame({c: [] for c in cols})
    df = packets
    if flow_ids is not None:
        df = df[df["flow_id"].isin(list(flow_ids))]
    cls = df[ccol].astype(object)
    rows = []
    for phase, classes in PHASES.items():
        part = df[cls.isin(classes)]
        if not len(part):
            continue
        g = part.groupby("flow_id", observed=True)
        agg = pd.DataFrame(
            {
                "start": g["ts"].min(),
                "end": g["ts"].max(),
                "packets": g.size(),
                "first_frame": g["frame"].min(),
            }
        )
        agg["phase"] = phase
        rows.append(agg.reset_index())
    if not rows:
        return pd.DataFrame({c: [] for c in cols})
    out = pd.concat(rows, ignore_index=True)[cols]
    out["flow_id"] = out["flow_id"].astype(int)
    order = {p: i for i, p in enumerate(PHASES)}
    return out.sort_values(
        ["flow_id", "phase"], key=lambda s: s.map(order) if s.name == "phase" else s
    ).reset_index(drop=True)


def phase_segments(
    packets: pd.DataFrame, flow_ids: Iterable[int] | None = None, gap_s: float | None = None
) -> pd.DataFrame:
    """Like :func:`flow_phases`, but each phase split where its packets pause for more than ``gap_s``
    seconds (default: 2% of the capture's span, at least 0.25 s), so a DTLS handshake and its closing
    alert, or ICE checks and later consent checks, show as separate bursts."""
    cols = ["flow_id", "phase", "start", "end", "packets", "first_frame"]
    ccol = class_column(packets)
    if packets is None or ccol is None or not len(packets) or "flow_id" not in packets.columns:
        return pd.DataFrame({c: [] for c in cols})
    df = packets[packets["flow_id"].notna()]
    if flow_ids is not None:
        df = df[df["flow_id"].isin(list(flow_ids))]
    if gap_s is None:
        b = time_bounds(packets)
        span = (b[1] - b[0]).total_seconds() if b else 0.0
        gap_s = max(0.25, span / 50)
    phase_of = {c: p for p, cs in PHASES.items() for c in cs}
    ph = df[ccol].astype(object).map(phase_of)
    df = df.assign(_phase=ph)[ph.notna()].sort_values(["flow_id", "_phase", "ts"])
    if not len(df):
        return pd.DataFrame({c: [] for c in cols})
    gap = df.groupby(["flow_id", "_phase"], observed=True)["ts"].diff().dt.total_seconds()
    seg = (gap.isna() | (gap > gap_s)).cumsum()
    g = df.groupby(seg)
    out = pd.DataFrame(
        {
            "flow_id": g["flow_id"].first().astype(int),
            "phase": g["_phase"].first(),
            "start": g["ts"].min(),
            "end": g["ts"].max(),
            "packets": g.size(),
            "first_frame": g["frame"].min(),
        }
    )
    return out[cols].sort_values(["flow_id", "start"]).reset_index(drop=True)


def finding_marks(findings: Any, packets: pd.DataFrame) -> pd.DataFrame:
    """Where findings sit on the timeline: one row per (finding, flow) at the first cited frame's time."""
    cols = ["flow_id", "ts", "slug", "severity", "frame", "finding"]
    df = findings_frame(findings)
    if not len(df) or packets is None or not len(packets):
        return pd.DataFrame({c: [] for c in cols})
    by_frame = packets.set_index("frame") if "frame" in packets.columns else None
    rows = []
    for i, f in df.iterrows():
        frames = finding_frames(f)
        flows = finding_flow_ids(f, packets)
        for fl in sorted(flows):
            ts = None
            frame = None
            if by_frame is not None:
                cited = [
                    n
                    for n in frames
                    if n in by_frame.index
                    and pd.notna(by_frame.at[n, "flow_id"])
                    and int(by_frame.at[n, "flow_id"]) == fl
                ]
                if cited:
                    frame = cited[0]
                    ts = by_frame.at[frame, "ts"]
            if ts is None:
                fp = packets[packets["flow_id"] == fl]
                if not len(fp):
                    continue
                ts = fp["ts"].min()
                frame = int(fp["frame"].min())
            rows.append(
                {
                    "flow_id": fl,
                    "ts": ts,
                    "slug": f["slug"],
                    "severity": f["severity"],
                    "frame": frame,
                    "finding": i,
                }
            )
    if not rows:
        return pd.DataFrame({c: [] for c in cols})
    return pd.DataFrame(rows, columns=cols)


# -- RTP streams --------------------------------------------------------------------------------------------
def stream_options(rtp_streams: pd.DataFrame | None) -> list[tuple[str, tuple[int, int]]]:
    """``(label, (flow_id, ssrc))`` for each RTP stream, largest first."""
    if rtp_streams is None or not len(rtp_streams) or "ssrc" not in rtp_streams.columns:
        return []
    pk = "packets" if "packets" in rtp_streams.columns else None
    df = rtp_streams.sort_values(pk, ascending=False) if pk else rtp_streams
    out = []
    for _, r in df.iterrows():
        codec = r.get("codec")
        codec_s = (
            ""
            if codec is None or codec is pd.NA or (isinstance(codec, float) and np.isnan(codec))
            else f" {codec}"
        )
        n = f", {int(r[pk])} pkts" if pk else ""
        out.append(
            (
                f"flow {int(r['flow_id'])} ssrc 0x{int(r['ssrc']):08x}{codec_s}{n}",
                (int(r["flow_id"]), int(r["ssrc"])),
            )
        )
    return out


def clock_rate(pt: int | None, codec: str | None = None, default: int = 90000) -> int:
    """RTP clock rate: from the codec name (``opus/48000`` or ``opus``) if known, else the static payload type."""
    if codec:
        c = str(codec).strip().lower()
        if "/" in c:
            try:
                return int(c.split("/")[1])
            except ValueError:
                pass
        if c in CODEC_CLOCK:
            return CODEC_CLOCK[c]
    if pt is not None and int(pt) in STATIC_CLOCK:
        return STATIC_CLOCK[int(pt)]
    if pt is not None and int(pt) == 111:  # Chrome and Firefox put Opus on 111
        return 48000
    return default


def _unwrap16(seq: np.ndarray) -> np.ndarray:
    """Extend 16-bit sequence numbers across wrap-around (RFC 3550 A.1)."""
    if not len(seq):
        return seq.astype(np.int64)
    d = np.diff(seq.astype(np.int64))
    d = np.where(d < -32768, d + 65536, np.where(d > 32768, d - 65536, d))
    return np.concatenate([[int(seq[0])], int(seq[0]) + np.cumsum(d)])


def _unwrap32(ts: np.ndarray) -> np.ndarray:
    if not len(ts):
        return ts.astype(np.int64)
    d = np.diff(ts.astype(np.int64))
    d = np.where(d < -(1 << 31), d + (1 << 32), np.where(d > (1 << 31), d - (1 << 32), d))
    return np.concatenate([[int(ts[0])], int(ts[0]) + np.cumsum(d)])


def stream_packets(rtp: pd.DataFrame, flow_id: int, ssrc: int) -> pd.DataFrame:
    """The RTP packets of one stream in capture order."""
    if rtp is None or not len(rtp):
        return rtp
    return rtp[(rtp["flow_id"] == flow_id) & (rtp["ssrc"] == ssrc)].sort_values("frame")


def stream_series(
    rtp: pd.DataFrame,
    flow_id: int,
    ssrc: int,
    *,
    bin_s: float = 1.0,
    clock: int | None = None,
    codec: str | None = None,
) -> pd.DataFrame:
    """Per time bin of one RTP stream: ``t_s`` (bin start, seconds from the stream's first packet),
    ``packets``, ``lost`` (sequence numbers skipped, wrap-around aware), ``jitter_ms`` (RFC 3550 §6.4.1
    interarrival jitter, value at the end of the bin) and ``kbps`` (RTP payload bits per second)."""
    cols = ["t_s", "packets", "lost", "jitter_ms", "kbps"]
    p = stream_packets(rtp, flow_id, ssrc)
    if p is None or not len(p):
        return pd.DataFrame({c: [] for c in cols})
    arrival = (p["ts"] - p["ts"].iloc[0]).dt.total_seconds().to_numpy(dtype=float)
    seq = _unwrap16(p["seq"].to_numpy(dtype=np.int64))
    if clock is None:
        pt = p["pt"].dropna()
        clock = clock_rate(int(pt.iloc[0]) if len(pt) else None, codec)
    # Gaps: a packet whose extended sequence jumps by k > 1 over the highest seen so far means k-1 lost
    # (reordered and duplicate packets do not count).
    highest = np.maximum.accumulate(seq)
    prev_high = np.concatenate([[seq[0] - 1], highest[:-1]])
    gaps = np.clip(seq - prev_high - 1, 0, None)
    # RFC 3550 §6.4.1: D(i-1,i) = (R_i - R_{i-1}) - (S_i - S_{i-1}) in timestamp units; J += (|D| - J)/16
    rts = _unwrap32(p["rtp_ts"].to_numpy(dtype=np.int64)).astype(float)
    r_units = arrival * clock
    jit = np.zeros(len(p))
    j = 0.0
    for i in range(1, len(p)):
        d = (r_units[i] - r_units[i - 1]) - (rts[i] - rts[i - 1])
        j += (abs(d) - j) / 16.0
        jit[i] = j
    jitter_ms = jit / clock * 1000.0
    size = p[PAYLOAD_LEN].fillna(0).to_numpy(dtype=float) if PAYLOAD_LEN in p.columns else np.zeros(len(p))
    b = np.floor(arrival / bin_s).astype(int)
    frame = pd.DataFrame({"bin": b, "lost": gaps, "jitter_ms": jitter_ms, "bytes": size})
    g = frame.groupby("bin")
    out = pd.DataFrame(
        {
            "packets": g.size(),
            "lost": g["lost"].sum(),
            "jitter_ms": g["jitter_ms"].last(),
            "kbps": g["bytes"].sum() * 8 / 1000.0 / bin_s,
        }
    )
    full = pd.RangeIndex(0, int(b.max()) + 1)
    out = out.reindex(full)
    out["packets"] = out["packets"].fillna(0).astype(int)
    out["lost"] = out["lost"].fillna(0).astype(int)
    out["kbps"] = out["kbps"].fillna(0.0)
    out["jitter_ms"] = out["jitter_ms"].ffill()
    out.insert(0, "t_s", out.index.to_numpy() * bin_s)
    return out.reset_index(drop=True)[cols]


# -- topology -----------------------------------------------------------------------------------------------
ROLE_COLOURS: dict[str, str] = {
    "peer": "#4c78a8",
    "turn_server": "#f58518",
    "stun_server": "#72b7b2",
    "signalling_server": "#54a24b",
    "media_server": "#b279a2",
    "unknown": "#bab0ac",
}
ENCRYPTION_STYLES: dict[str, str] = {"encrypted": "solid", "plaintext": "dashed", "unknown": "dotted"}


def role_of(attrs: Mapping[str, Any]) -> str:
    """Normalised role name of a topology node (``peer``, ``turn_server`` …; ``unknown`` otherwise)."""
    raw = attrs.get("role")
    if raw is None:
        roles = _as_list(attrs.get("roles"))
        raw = roles[0] if roles else None
    if raw is None:
        return "unknown"
    r = str(raw).strip().lower().replace(" ", "_").replace("-", "_")
    aliases = {
        "turn": "turn_server",
        "stun": "stun_server",
        "signalling": "signalling_server",
        "signaling_server": "signalling_server",
        "signaling": "signalling_server",
        "sfu": "media_server",
        "media": "media_server",
        "client": "peer",
        "host": "peer",
        "relay": "turn_server",
    }
    r = aliases.get(r, r)
    return r if r in ROLE_COLOURS else "unknown"


def encryption_of(attrs: Mapping[str, Any]) -> str:
    """``encrypted`` / ``plaintext`` / ``unknown`` for a topology edge (or a ``flows`` row)."""
    v = attrs.get("encrypted", attrs.get("encryption"))
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return "unknown"
    if isinstance(v, (bool, np.bool_)):
        return "encrypted" if v else "plaintext"
    s = str(v).strip().lower()
    if s in ("true", "yes", "encrypted", "dtls-srtp", "srtp", "tls", "dtls"):
        return "encrypted"
    if s in ("false", "no", "plaintext", "plain", "none", "clear", "cleartext"):
        return "plaintext"
    return "unknown"


def edge_flow_ids(attrs: Mapping[str, Any]) -> set[int]:
    out: set[int] = set()
    for k in ("flow_id", "flow_ids", "flows"):
        for v in _as_list(attrs.get(k)):
            try:
                out.add(int(v))
            except (TypeError, ValueError):
                continue
    return out


def highlighted_edges(graph: Any, flow_ids: Iterable[int]) -> list[tuple[Any, Any, Any]]:
    """Edges ``(u, v, key)`` of a (Multi)DiGraph that carry one of ``flow_ids``."""
    wanted = {int(f) for f in flow_ids}
    if not wanted:
        return []
    out = []
    if graph.is_multigraph():
        for u, v, k, d in graph.edges(keys=True, data=True):
            if edge_flow_ids(d) & wanted:
                out.append((u, v, k))
    else:
        for u, v, d in graph.edges(data=True):
            if edge_flow_ids(d) & wanted:
                out.append((u, v, 0))
    return out


def topology_summary(graph: Any) -> dict[str, Any]:
    """Counts a topology view shows: hosts per role, edges per encryption state."""
    roles: dict[str, int] = {}
    for _, d in graph.nodes(data=True):
        r = role_of(d)
        roles[r] = roles.get(r, 0) + 1
    enc: dict[str, int] = {}
    for *_, d in graph.edges(data=True):
        e = encryption_of(d)
        enc[e] = enc.get(e, 0) + 1
    return {
        "nodes": graph.number_of_nodes(),
        "edges": graph.number_of_edges(),
        "roles": roles,
        "encryption": enc,
    }


def frames_page(frames: Sequence[int], page: int = 0, size: int = 20) -> list[int]:
    """One page of a frame list for the drill-down picker."""
    start = max(0, int(page)) * size
    return list(frames[start : start + size])


# -- the explorer's view ------------------------------------------------------------------------------------
def apply_view(
    packets: pd.DataFrame,
    findings: Any = None,
    sessions: pd.DataFrame | None = None,
    *,
    protocols: Iterable[str] | None = None,
    start_s: float | None = None,
    end_s: float | None = None,
    min_severity: Any = None,
    session: Any = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What the explorer shows for its controls: ``(packets, findings)`` filtered by protocol group, time
    window (seconds from the first packet), minimum severity and session. A finding stays when it
    touches a flow that is left after filtering packets, or cites no flow at all and no session is set."""
    flows = session_flow_ids(sessions, session)
    pk = filter_packets(packets, protocols=protocols, start=start_s, end=end_s, flow_ids=flows, relative=True)
    fd = filter_findings(findings_frame(findings), min_severity=min_severity)
    if len(fd):
        kept_flows = {int(x) for x in pk["flow_id"].dropna().unique()} if "flow_id" in pk.columns else set()
        narrowed = protocols is not None or start_s is not None or end_s is not None or flows is not None
        if narrowed:
            keep = []
            for _, f in fd.iterrows():
                ff = finding_flow_ids(f, packets)
                keep.append(bool(ff & kept_flows) if ff else flows is None)
            fd = fd[pd.Series(keep, index=fd.index, dtype=bool)].reset_index(drop=True)
    return pk, fd
