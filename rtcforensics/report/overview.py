"""Who talked to whom, when, through which relays, encrypted or not: the call overview the reports open
with. Built from whatever frames are available (each part is optional; what is missing is said)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..checks.analyze import _plain

MEDIA = {"stun", "dtls", "rtp", "rtcp", "turn_channel", "zrtp"}
STREAM_COLUMNS = ("flow_id", "ssrc", "src", "dst", "packets", "pt", "pt_set", "codec", "keying", "encrypted",
                  "jitter_ms", "kbps", "lost", "plaintext_score", "plaintext_evidence", "first_ts", "last_ts")


def _frame(cap: Any, name: str, notes: list[str]) -> pd.DataFrame | None:
    try:
        if name not in cap.frame_names():
            notes.append(f"{name}: not available in this version")
            return None
        return cap.get_frame(name)
    except Exception as e:  # noqa: BLE001 - the overview never stops a report; say why a part is missing
        notes.append(f"{name}: could not be built ({type(e).__name__}: {e})")
        return None


def _iso(v: Any) -> str | None:
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    return pd.Timestamp(v).isoformat()


def build_overview(cap: Any) -> dict[str, Any]:
    """A JSON-able overview: period, media legs, relays, signalling, DTLS handshakes, RTP streams."""
    notes: list[str] = []
    out: dict[str, Any] = {"period": None, "legs": [], "relays": [], "signalling": [], "handshakes": [],
                           "streams": [], "identifiers": {}, "notes": notes}
    if cap is None or not hasattr(cap, "frame_names"):
        notes.append("no capture object")
        return out
    pk = _frame(cap, "packets", notes)
    if pk is not None and len(pk):
        out["period"] = {"first": _iso(pk["ts"].min()), "last": _iso(pk["ts"].max()), "packets": len(pk)}
    fl = _frame(cap, "flows", notes)
    if fl is not None and len(fl):
        for _, r in fl.iterrows():
            classes = [str(c) for c in (r.get("classes") or [])]
            if not MEDIA & set(classes):
                continue
            enc = r.get("encrypted")
            out["legs"].append({"flow_id": _plain(r.get("flow_id")), "a": r.get("a"), "b": r.get("b"),
                                "transport": _plain(r.get("transport")), "classes": classes,
                                "packets": _plain(r.get("packets")), "first": _iso(r.get("first_ts")),
                                "last": _iso(r.get("last_ts")), "via_turn": _plain(r.get("via_turn")),
                                "encrypted": None if enc is None or pd.isna(enc) else bool(enc)})
    st = _frame(cap, "stun", notes)
    if st is not None and len(st):
        ok = st[(st["method"].astype(str) == "Allocate") & (st["cls"].astype(str) == "success")]
        seen = set()
        for _, r in ok.iterrows():
            server = f"{r['src']}:{r['sport']}" if ":" not in str(r["src"]) else f"[{r['src']}]:{r['sport']}"
            key = (server, _plain(r.get("xor_relayed")))
            if key in seen:
                continue
            seen.add(key)
            out["relays"].append({"server": server, "client": f"{r['dst']}:{r['dport']}",
                                  "relayed": _plain(r.get("xor_relayed")), "software": _plain(r.get("software")),
                                  "transport": _plain(r.get("transport")), "frame": _plain(r.get("frame"))})
    sg = _frame(cap, "signalling", notes)
    if sg is not None and len(sg):
        from ..checks.sig import client_server

        groups: dict[tuple[Any, ...], dict[str, Any]] = {}
        for _, r in sg.iterrows():
            c, s = client_server(r)
            g = groups.setdefault((c, s), {"client": c, "server": s, "transports": set(), "tls": set(),
                                           "messages": 0, "first": _iso(r.get("ts"))})
            g["transports"].add(str(r.get("transport")))
            g["tls"].add(_plain(r.get("tls")))
            g["messages"] += 1
        for g in groups.values():
            tls = g.pop("tls")
            g["transports"] = sorted(g["transports"])
            g["encrypted"] = True if tls == {True} else False if tls == {False} else None
            out["signalling"].append(g)
    dt = _frame(cap, "dtls", notes)
    if dt is not None and len(dt):
        for _, r in dt.iterrows():
            out["handshakes"].append({k: _plain(r.get(k)) for k in ("flow_id", "client", "server", "version",
                                                                     "cipher_suite", "srtp_profile", "completed",
                                                                     "first_frame")})
    ids: dict[str, set[str]] = {"certificate": set(), "turn_server": set(), "turn_username": set(),
                                "address": set()}
    if dt is not None and len(dt):
        for side in ("client", "server"):
            ids["certificate"] |= {str(v) for v in dt.get(f"{side}_cert_sha256", []) if isinstance(v, str)}
    ids["turn_server"] |= {r["server"] for r in out["relays"]}
    if st is not None and len(st) and "username" in st.columns:
        turn = st[st["method"].astype(str).isin(["Allocate", "Refresh", "CreatePermission", "ChannelBind"])]
        ids["turn_username"] |= {str(u) for u in turn["username"].dropna()}
    if fl is not None and len(fl):
        ids["address"] |= {str(a) for col in ("a_ip", "b_ip") if col in fl.columns for a in fl[col].dropna()}
    out["identifiers"] = {k: sorted(v) for k, v in ids.items()}
    rs = _frame(cap, "rtp_streams", notes)
    if rs is not None and len(rs):
        for _, r in rs.iterrows():
            out["streams"].append({k: _plain(r.get(k)) for k in STREAM_COLUMNS if k in rs.columns})
    return out
