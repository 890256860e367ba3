"""The `candidates` frame: ICE candidates from SDP, from trickle messages and side files, and addresses
observed in STUN/TURN (XOR-MAPPED, MAPPED, XOR-RELAYED, XOR-PEER), each with its address scope.

Scope, embedded IPv4, EUI-64 and mDNS come from :mod:`rtcforensics.addr` (documentation ranges count
as public). ``in_clear`` says whether the address crossed the wire readable by an eavesdropper:
plaintext signalling or STUN (true), TLS-protected signalling even when we decrypted it (false),
side files (NA).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..addr import SCOPES, classify
from ..capture import Capture, register_frame
from ..dissect.sdp import Candidate, parse_candidate
from ..errors import DecodeError
from ..schema import frame_schema
from .sdp import descriptions
from .signalling import add_anomaly, frame_flow_map, messages

_SCOPE_CATS = ",".join(SCOPES)

CANDIDATES = frame_schema(
    "candidates",
    "ICE candidates (SDP, trickle, side files) and addresses observed in STUN/TURN, one row each "
    "(STUN-observed addresses: one row per attribute, address and flow, with the number of messages).",
    [
        ("frame", "Int64", "Wireshark frame that carried it (first one for STUN-observed addresses)"),
        ("ts", "ts", "capture time of that frame, or the side file's time (UTC)"),
        ("origin", "category:sdp,trickle,stun", "where it was learned"),
        ("source", "string", "'wire' or the side file's name"),
        ("sdp_index", "Int64", "sdp.sdp_index of the description that holds it (origin sdp)"),
        ("signalling_msg", "Int64", "signalling.msg_index of the carrying message"),
        (
            "stun_attr",
            "category:MAPPED-ADDRESS,XOR-MAPPED-ADDRESS,XOR-RELAYED-ADDRESS,XOR-PEER-ADDRESS",
            "STUN attribute it was read from (origin stun)",
        ),
        ("stun_messages", "Int32", "STUN messages that carried this address on this flow (origin stun)"),
        (
            "role",
            "category:offer,answer,pranswer,rollback",
            "role of the description that holds it (sdp) or that its sender sent last on that connection (trickle)",
        ),
        ("mid", "string", "a=mid / sdpMid"),
        ("mline_index", "Int32", "m-line index / sdpMLineIndex"),
        (
            "ufrag",
            "string",
            "ICE ufrag the candidate belongs to (description's, usernameFragment or ufrag ext)",
        ),
        ("foundation", "string", "candidate foundation"),
        ("component", "Int32", "component id (1 RTP, 2 RTCP)"),
        ("transport", "category:udp,tcp,tls,ssltcp", "candidate transport (STUN: the flow's)"),
        ("priority", "UInt32", "candidate priority"),
        ("address", "string", "connection address as written (IP or mDNS name)"),
        ("port", "Int32", "port"),
        (
            "type",
            "category:host,srflx,prflx,relay,peer",
            "candidate type; for STUN: XOR-MAPPED/MAPPED → srflx, XOR-RELAYED → relay, XOR-PEER → peer",
        ),
        ("raddr", "string", "related address"),
        ("rport", "Int32", "related port"),
        ("tcptype", "string", "active/passive/so (RFC 6544)"),
        ("generation", "Int32", "generation extension"),
        ("network_id", "Int32", "network-id extension"),
        ("network_cost", "Int32", "network-cost extension"),
        ("mdns", "boolean", "address is an mDNS .local name (RFC 8828)"),
        ("ip", "string", "normalised IP (IPv4 when an IPv6 address embeds one); NA for mDNS names"),
        ("family", "Int32", "4 or 6 (of ip)"),
        ("scope", "category:" + _SCOPE_CATS, "address scope (see rtcforensics.addr)"),
        (
            "embedded",
            "category:ipv4_mapped,ipv4_compatible,6to4,nat64",
            "how an IPv6 address carried an IPv4 one",
        ),
        ("eui64", "boolean", "IPv6 interface id is EUI-64 (reveals the MAC)"),
        ("mac", "string", "the MAC address an EUI-64 interface id reveals"),
        ("raddr_ip", "string", "normalised related address"),
        ("raddr_scope", "category:" + _SCOPE_CATS, "scope of the related address"),
        ("raddr_mac", "string", "MAC revealed by an EUI-64 related address"),
        (
            "in_clear",
            "boolean",
            (
                "crossed the wire readable: plaintext signalling or STUN (false inside TLS, even "
                "when decrypted; NA for side files)"
            ),
        ),
        ("sender", "string", "IP address that sent the carrying message"),
        ("flow_id", "Int64", "flow of the carrying frame"),
    ],
)


def _addr_cols(c: Candidate) -> dict[str, Any]:
    a = classify(c.address)
    row: dict[str, Any] = {
        "foundation": c.foundation,
        "component": c.component,
        "transport": c.transport,
        "priority": c.priority,
        "address": c.address,
        "port": c.port,
        "type": c.type if c.type in ("host", "srflx", "prflx", "relay") else None,
        "raddr": c.raddr,
        "rport": c.rport,
        "tcptype": c.tcptype,
        "generation": c.generation,
        "network_id": c.network_id,
        "network_cost": c.network_cost,
        "mdns": a.mdns,
        "ip": a.ip,
        "family": a.family,
        "scope": a.scope,
        "embedded": a.embedded,
        "eui64": a.eui64,
        "mac": a.mac,
    }
    if c.raddr:
        r = classify(c.raddr)
        row.update({"raddr_ip": r.ip, "raddr_scope": r.scope, "raddr_mac": r.mac})
    return row


def _split_ep(ep: str) -> tuple[str, int | None]:
    s = ep.strip()
    if s.startswith("["):
        host, _, rest = s[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if s.count(":") == 1:
        host, _, port = s.partition(":")
        return host, int(port) if port.isdigit() else None
    return s, None


@register_frame(CANDIDATES)
def build_candidates(cap: Capture) -> pd.DataFrame:
    from ..sidefiles import side_items

    rows: list[dict[str, Any]] = []
    for d in descriptions(cap):
        r0 = d.row
        in_clear = None if r0.get("source") != "wire" else (not r0.get("tls"))
        for mid, mline, c in d.candidates():
            rows.append(
                {
                    "frame": r0.get("frame"),
                    "ts": r0.get("ts"),
                    "origin": "sdp",
                    "source": r0.get("source"),
                    "sdp_index": d.index,
                    "signalling_msg": r0.get("signalling_msg"),
                    "role": r0.get("role"),
                    "mid": mid,
                    "mline_index": mline,
                    "ufrag": c.ufrag or _ufrag_of(d, mline),
                    "in_clear": in_clear,
                    "sender": r0.get("src"),
                    "flow_id": r0.get("flow_id"),
                    **_addr_cols(c),
                }
            )
    msgs = messages(cap)
    flows = frame_flow_map(cap) if msgs else {}
    # a trickled candidate without usernameFragment belongs to the last description its sender sent on the
    # same signalling connection (RFC 8838 §4: candidates follow their description)
    last_desc: dict[tuple[Any, ...], Any] = {}
    by_msg: dict[Any, list[Any]] = {}
    for d in descriptions(cap):
        if d.row.get("signalling_msg") is not None:
            by_msg.setdefault(d.row["signalling_msg"], []).append(d)
    trickles: list[tuple[Any, dict[str, Any]]] = []
    for m in msgs:
        key = (m.tcp_stream, m.src, m.sport)
        if m.index in by_msg:
            # one description: candidates follow it; several in one message (a log upload): ambiguous
            last_desc[key] = by_msg[m.index][0] if len(by_msg[m.index]) == 1 else None
        for f in m.items:
            if f.kind != "candidate":
                continue
            prev = last_desc.get(key)
            ufrag = f.ufrag or (_ufrag_of(prev, f.mline_index) if prev is not None else None)
            trickles.append(
                (
                    f,
                    {
                        "frame": m.frame,
                        "ts": m.ts_ns,
                        "source": "wire",
                        "signalling_msg": m.index,
                        "in_clear": not m.tls,
                        "sender": m.src,
                        "flow_id": flows.get(m.frame),
                        "ufrag": ufrag,
                        "role": prev.row.get("role") if prev is not None else None,
                    },
                )
            )
    trickles += [
        (it.found, {"frame": None, "ts": it.ts_ns, "source": it.source, "in_clear": None})
        for it in side_items(cap)
        if it.found.kind == "candidate"
    ]
    for f, ctx in trickles:
        if not f.text:
            continue  # end-of-candidates
        try:
            c = parse_candidate(f.text)
        except DecodeError as e:
            add_anomaly(cap, "sdp", e.name, e.detail, ctx.get("frame"), ctx.get("ts"))
            continue
        rows.append(
            {
                **ctx,
                "origin": "trickle",
                "mid": f.mid,
                "mline_index": f.mline_index,
                "ufrag": c.ufrag or f.ufrag or ctx.get("ufrag"),
                **_addr_cols(c),
            }
        )
    rows += _stun_rows(cap)
    return CANDIDATES.from_records(rows)


def _ufrag_of(d: Any, mline: int | None) -> str | None:
    sd = d.sd
    if sd is None:
        return d.row.get("ice_ufrag")
    if mline is not None and 0 <= mline < len(sd.media) and sd.media[mline].ice_ufrag:
        return sd.media[mline].ice_ufrag
    return sd.ice_ufrag


_STUN_ATTRS = (
    ("xor_mapped", "XOR-MAPPED-ADDRESS", "srflx"),
    ("mapped", "MAPPED-ADDRESS", "srflx"),
    ("xor_relayed", "XOR-RELAYED-ADDRESS", "relay"),
    ("xor_peer", "XOR-PEER-ADDRESS", "peer"),
)


def _stun_rows(cap: Capture) -> list[dict[str, Any]]:
    """Addresses the STUN/TURN messages reveal (the `stun` frame), one row per (attribute, address, flow)."""
    if "stun" not in cap.frame_names():
        return []
    try:
        st = cap.stun
    except ImportError:
        return []
    cols = [c for c, _, _ in _STUN_ATTRS if c in st.columns]
    if not len(st) or not cols:
        return []
    seen: dict[tuple[str, str, Any], dict[str, Any]] = {}
    # only the messages with an address attribute become records (a capture of 10^6 Binding requests has none)
    with_addr = st[cols].notna().any(axis=1).to_numpy()
    recs = st.loc[with_addr, ["frame", "ts", "flow_id", "src", "transport", *cols]].to_dict("records")
    for r in recs:
        for col, attr, typ in _STUN_ATTRS:
            v = r.get(col)
            if col not in cols or v is None or v is pd.NA or not isinstance(v, str) or not v:
                continue
            for ep in v.split(","):
                key = (attr, ep.strip(), r.get("flow_id"))
                if key in seen:
                    seen[key]["stun_messages"] += 1
                    continue
                host, port = _split_ep(ep)
                a = classify(host)
                seen[key] = {
                    "frame": r.get("frame"),
                    "ts": r.get("ts"),
                    "origin": "stun",
                    "source": "wire",
                    "stun_attr": attr,
                    "stun_messages": 1,
                    "transport": r.get("transport"),
                    "address": host,
                    "port": port,
                    "type": typ,
                    "mdns": False,
                    "ip": a.ip,
                    "family": a.family,
                    "scope": a.scope,
                    "embedded": a.embedded,
                    "eui64": a.eui64,
                    "mac": a.mac,
                    "in_clear": True,
                    "sender": r.get("src"),
                    "flow_id": r.get("flow_id"),
                }
    out = list(seen.values())
    for o in out:
        ts = o.get("ts")
        if isinstance(ts, pd.Timestamp):
            o["ts"] = ts.value
    return out
