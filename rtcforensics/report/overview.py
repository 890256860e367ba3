"""Who talked to whom, when, through which relays, encrypted or not: the call overview the reports open
with. Built from whatever frames are available (each part is optional; what is missing is said)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..tables.legs import opaque_legs
from ..values import host, parties, plain, records

MEDIA = {"stun", "dtls", "rtp", "rtcp", "turn_channel", "zrtp"}
MAX_ROWS = 1000  # legs, relays, handshakes, streams listed in a report (the frames hold them all)
STREAM_COLUMNS = (
    "flow_id",
    "ssrc",
    "src",
    "dst",
    "packets",
    "pt",
    "pt_set",
    "codec",
    "keying",
    "encrypted",
    "jitter_ms",
    "kbps",
    "lost",
    "plaintext_score",
    "plaintext_evidence",
    "first_ts",
    "last_ts",
)


def _is(col: pd.Series, values: list[str]) -> np.ndarray:
    """Rows of a string or categorical column whose value is one of ``values`` (NA: no), without a text copy of
    the column (a flood's stun frame has a million rows); select them with ``iloc`` (a boolean mask over a
    frame copies more)."""
    return np.asarray(col.isin(values).fillna(False), dtype=bool)


def _names(cell: Any) -> set[str]:
    """The class names of one flows.classes cell (a list; an array when read back from Parquet; NA: none)."""
    if cell is None or isinstance(cell, (str, float)):
        return set()
    return {str(c) for c in cell}


def _has_media(classes: pd.Series) -> np.ndarray:
    """Flows whose class list holds a media class. The flows frame shares one list per distinct set of classes,
    so each distinct list object is read once (a list per row, as read back from a file, is read per row)."""
    ids = np.fromiter((id(c) for c in classes), dtype=np.int64, count=len(classes))
    uniq, first, inv = np.unique(ids, return_index=True, return_inverse=True)
    cells = classes.to_numpy(dtype=object)
    media = np.array([bool(MEDIA & _names(cells[i])) for i in first.tolist()], dtype=bool)
    return media[inv.reshape(-1)] if len(uniq) else np.zeros(0, dtype=bool)


def _frame(cap: Any, name: str, notes: list[str]) -> pd.DataFrame | None:
    try:
        if name not in cap.frame_names():
            notes.append(f"{name}: not available in this version")
            return None
        return cap.get_frame(name)
    except Exception as e:
        notes.append(f"{name}: could not be built ({type(e).__name__}: {e})")
        return None


def _iso(v: Any) -> str | None:
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    return pd.Timestamp(v).isoformat()


HOP_BY_HOP = (
    "media is encrypted hop by hop: each leg ends at this server, which decrypts and re-encrypts "
    "it, so the server can read the media; it is not end-to-end encrypted between the participants"
)


def _media_servers(cap: Any, notes: list[str]) -> list[str]:
    """Hosts the sessions frame names as ``media_server`` (an SFU / conference server at the hub of the call)."""
    ss = _frame(cap, "sessions", notes)
    if ss is None or not len(ss) or "media_server" not in ss.columns:
        return []
    return sorted({str(v) for v in ss["media_server"].dropna()})


def empty_overview() -> dict[str, Any]:
    """The overview's shape with nothing in it (also what a report of a capture that failed carries)."""
    return {
        "period": None,
        "legs": [],
        "relays": [],
        "signalling": [],
        "handshakes": [],
        "streams": [],
        "identifiers": {},
        "media_servers": [],
        "opaque_legs": [],
        "notes": [],
    }


def _datachannels(cap: Any, notes: list[str]) -> list[dict[str, Any]]:
    """Data channels read from decrypted DTLS (needs a keylog): one entry per flow and channel."""
    dc = _frame(cap, "datachannels", notes)
    if dc is None or not len(dc):
        return []
    out = []
    for (flow, ch), g in dc.groupby(["flow_id", "channel"], sort=True, dropna=False):
        labels = g["label"].dropna()
        user = g[~g["kind"].astype(str).isin(["dcep_open", "dcep_ack"])]  # not the channel set-up
        out.append(
            {
                "flow_id": plain(flow),
                "channel": plain(ch),
                "label": plain(labels.iloc[0]) if len(labels) else None,
                "messages": len(user),
                "bytes": int(user["size"].fillna(0).sum()),
                "first_frame": plain(g["frame"].min()),
            }
        )
    return out[:MAX_ROWS]


def build_overview(cap: Any) -> dict[str, Any]:
    """A JSON-able overview: period, media legs, relays, signalling, DTLS handshakes, RTP streams."""
    out = empty_overview()
    notes: list[str] = out["notes"]
    if cap is None or not hasattr(cap, "frame_names"):
        notes.append("no capture object")
        return out
    pk = _frame(cap, "packets", notes)
    if pk is not None and len(pk):
        out["period"] = {"first": _iso(pk["ts"].min()), "last": _iso(pk["ts"].max()), "packets": len(pk)}
    servers = _media_servers(cap, notes)
    out["media_servers"] = [
        {"host": m, "role": "SFU / media server", "encryption": HOP_BY_HOP} for m in servers
    ]
    fl = _frame(cap, "flows", notes)
    if fl is not None and len(fl):
        legs = np.flatnonzero(_has_media(fl["classes"]))  # rows; only the listed ones are copied
        for r in records(fl.iloc[legs[:MAX_ROWS]]):
            enc = r.get("encrypted")
            out["legs"].append(
                {
                    "flow_id": plain(r.get("flow_id")),
                    "a": r.get("a"),
                    "b": r.get("b"),
                    "transport": plain(r.get("transport")),
                    "classes": [str(c) for c in (r.get("classes") or [])],
                    "packets": plain(r.get("packets")),
                    "first": _iso(r.get("first_ts")),
                    "last": _iso(r.get("last_ts")),
                    "via_turn": plain(r.get("via_turn")),
                    "encrypted": None if enc is None else bool(enc),
                    "media_server": next(
                        (h for h in (host(r.get("a")), host(r.get("b"))) if h in servers), None
                    ),
                }
            )
        if len(legs) > MAX_ROWS:
            notes.append(f"{len(legs) - MAX_ROWS} more media legs not listed (see the flows frame)")
    st = _frame(cap, "stun", notes)
    if st is not None and len(st):
        ok = st.iloc[np.flatnonzero(_is(st["method"], ["Allocate"]) & _is(st["cls"], ["success"]))]
        seen = set()
        for r in records(ok.head(MAX_ROWS)):
            server = f"{r['src']}:{r['sport']}" if ":" not in str(r["src"]) else f"[{r['src']}]:{r['sport']}"
            key = (server, plain(r.get("xor_relayed")))
            if key in seen:
                continue
            seen.add(key)
            out["relays"].append(
                {
                    "server": server,
                    "client": f"{r['dst']}:{r['dport']}",
                    "relayed": plain(r.get("xor_relayed")),
                    "software": plain(r.get("software")),
                    "transport": plain(r.get("transport")),
                    "frame": plain(r.get("frame")),
                }
            )
    sg = _frame(cap, "signalling", notes)
    if sg is not None and len(sg):
        unread = opaque_legs(sg)
        out["opaque_legs"] = [
            {
                "client": o.client,
                "server": o.server,
                "flow_id": plain(o.flow_id),
                "first_frame": plain(o.first_frame),
                "turn": o.turn,
                "why": o.text,
            }
            for o in unread
        ]
        turn_legs = {(o.client, o.server) for o in unread if o.turn}  # relay connections, not signalling
        groups: dict[tuple[Any, ...], dict[str, Any]] = {}
        for r in records(sg):
            if (r.get("client_endpoint"), r.get("server_endpoint")) in turn_legs:
                continue
            c, s = parties(r)
            g = groups.setdefault(
                (c, s),
                {
                    "client": c,
                    "server": s,
                    "transports": set(),
                    "tls": set(),
                    "messages": 0,
                    "first": _iso(r.get("ts")),
                },
            )
            g["transports"].add(str(r.get("transport")))
            g["tls"].add(plain(r.get("tls")))
            g["messages"] += 1
        for g in groups.values():
            tls = g.pop("tls")
            g["transports"] = sorted(g["transports"])
            g["encrypted"] = True if tls == {True} else False if tls == {False} else None
            out["signalling"].append(g)
    dt = _frame(cap, "dtls", notes)
    if dt is not None and len(dt):
        for r in records(dt.head(MAX_ROWS)):
            out["handshakes"].append(
                {
                    k: plain(r.get(k))
                    for k in (
                        "flow_id",
                        "client",
                        "server",
                        "version",
                        "cipher_suite",
                        "srtp_profile",
                        "completed",
                        "first_frame",
                    )
                }
            )
        channels = _datachannels(cap, notes)
        if channels:  # the key only when a keylog opened data channels
            out["datachannels"] = channels
    ids: dict[str, set[str]] = {
        "certificate": set(),
        "turn_server": set(),
        "turn_username": set(),
        "address": set(),
    }
    if dt is not None and len(dt):
        for side in ("client", "server"):
            ids["certificate"] |= {str(v) for v in dt.get(f"{side}_cert_sha256", []) if isinstance(v, str)}
    ids["turn_server"] |= {r["server"] for r in out["relays"]}
    if st is not None and len(st) and "username" in st.columns:
        turn = st.iloc[
            np.flatnonzero(_is(st["method"], ["Allocate", "Refresh", "CreatePermission", "ChannelBind"]))
        ]
        ids["turn_username"] |= {str(u) for u in turn["username"].dropna()}
    if fl is not None and len(fl):
        ids["address"] |= {
            str(a)
            for col in ("a_ip", "b_ip")
            if col in fl.columns
            for a in fl[col].unique()
            if not pd.isna(a)
        }
    out["identifiers"] = {k: sorted(v) for k, v in ids.items()}
    rs = _frame(cap, "rtp_streams", notes)
    if rs is not None and len(rs):
        for r in records(rs.head(MAX_ROWS)):
            out["streams"].append({k: plain(r.get(k)) for k in STREAM_COLUMNS if k in rs.columns})
    return out
