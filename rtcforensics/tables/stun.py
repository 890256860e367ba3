"""The `stun` frame: one row per STUN/TURN message (outer messages and messages unwrapped from TURN)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import pandas as pd

from ..anomalies import AnomalyLog
from ..capture import Capture, register_frame
from ..dissect.model import Datagram
from ..dissect.stun import TURN_METHODS, AttrType, StunClass, StunMessage
from ..errors import DecodeError
from ..schema import frame_schema

STUN = frame_schema(
    "stun",
    "One row per STUN/TURN message (RFC 8489/5389/3489, TURN RFC 8656/6062, ICE RFC 8445), in capture "
    "order. A TURN Send/Data indication is a row; a STUN message it carries (an ICE check through the relay) "
    "is another row with via_turn set. Addresses are 'ip:port' ('[ip]:port' for IPv6), XOR attributes "
    "already de-XORed. Secrets are never stored: MESSAGE-INTEGRITY is reported by presence only and an "
    "RFC 3489 PASSWORD attribute only appears in attr_names.",
    [
        ("frame", "Int64", "Wireshark frame number"),
        ("ts", "ts", "capture time (UTC)"),
        ("flow_id", "Int64", "flow (bidirectional 5-tuple on the wire) the message travelled in"),
        ("src", "string", "source IP on the wire (the TURN client or server for relayed messages)"),
        ("sport", "Int32", "source port"),
        ("dst", "string", "destination IP on the wire"),
        ("dport", "Int32", "destination port"),
        ("transport", "category:udp,tcp", "transport on the wire"),
        ("via_turn", "category:channel,data_indication,send_indication",
         "how the message was wrapped in TURN; NA when it travelled bare"),
        ("turn_peer", "string", "peer ip:port on the far side of the relay, for messages via TURN"),
        ("turn_channel", "Int32", "TURN channel number, for messages that travelled in ChannelData"),
        ("method", "string", ("IANA method name (Binding, Allocate, Refresh, Send, Data, CreatePermission, "
                              "ChannelBind, ...); unknown codes as '0x0nn'")),
        ("cls", "category:request,success,error,indication", "message class (RFC 8489 §5 C1C0 bits)"),
        ("txid", "string", "transaction id, lowercase hex (12 bytes; 16 for classic RFC 3489 messages)"),
        ("classic", "boolean", "no magic cookie: an RFC 3489 message"),
        ("username", "string", "USERNAME (ICE 'ufrag:ufrag', TURN user or REST 'expiry:user'); not a secret"),
        ("realm", "string", "REALM"),
        ("nonce_present", "boolean", "a NONCE attribute is present"),
        ("software", "string", "SOFTWARE (implementation and version)"),
        ("error_code", "Int32", "ERROR-CODE number (e.g. 401, 437)"),
        ("error_reason", "string", "ERROR-CODE reason phrase"),
        ("mapped", "string", "MAPPED-ADDRESS"),
        ("xor_mapped", "string", ("XOR-MAPPED-ADDRESS (0x0020; the MS-TURN/pre-RFC code 0x8020 when only that "
                                  "is present)")),
        ("xor_relayed", "string", "XOR-RELAYED-ADDRESS"),
        ("xor_peer", "string", ("every XOR-PEER-ADDRESS in wire order, joined with ',' (split on ',' to get "
                                "the list; IPv6 is bracketed so it never contains ',')")),
        ("xor_peer_count", "Int32", "number of XOR-PEER-ADDRESS attributes (0 when none)"),
        ("lifetime_s", "Int64", "LIFETIME in seconds"),
        ("channel", "Int32", "CHANNEL-NUMBER (0x4000-0x4FFF)"),
        ("priority", "UInt32", "ICE PRIORITY"),
        ("use_candidate", "boolean", "USE-CANDIDATE present (ICE nomination)"),
        ("ice_role", "category:controlling,controlled", "ICE-CONTROLLING / ICE-CONTROLLED present"),
        ("tiebreaker", "UInt64", "the ICE role attribute's 64-bit tie-breaker"),
        ("has_integrity", "boolean", "MESSAGE-INTEGRITY (HMAC-SHA1) present"),
        ("has_integrity_sha256", "boolean", "MESSAGE-INTEGRITY-SHA256 present"),
        ("has_fingerprint", "boolean", "FINGERPRINT present"),
        ("fingerprint_ok", "boolean", "FINGERPRINT CRC-32 verified; NA when there is no FINGERPRINT"),
        ("unknown_attrs", "object", "list of attribute codes we do not know, as '0xnnnn' (kept, not dropped)"),
        ("unknown_required", "boolean", "an unknown attribute is in the comprehension-required range (< 0x8000)"),
        ("attr_names", "object", ("list of attribute names in wire order (IANA names; '0xnnnn' when unknown); "
                                  "not 'attrs', which pandas reserves (DataFrame.attrs)")),
        ("requested_transport", "string", "REQUESTED-TRANSPORT: 'udp', 'tcp' or 'proto N'"),
        ("rest_expiry", "ts", "TURN REST credential expiry, from a TURN-method USERNAME '<unix expiry>:<user>'"),
        ("rtt_ms", "float64", ("request to response time in ms, by transaction id and method on the same flow "
                               "(any flow when none there): on a response row "
                               "from the last transmission of its request before it; on that request row the same "
                               "value (earlier retransmissions: NA)")),
        ("response_frame", "Int64", "on a request row: frame of the first response matched to it"),
        ("request_frame", "Int64", "on a response row: frame of the request transmission it is timed from"),
    ],
)

_REST_USERNAME = re.compile(r"^(\d{9,11}):")
_TRANSPORTS = {17: "udp", 6: "tcp"}


def _row(d: Datagram, msg: StunMessage) -> dict[str, Any]:
    g = msg.get
    err = g(AttrType.ERROR_CODE)
    xmapped = g(AttrType.XOR_MAPPED_ADDRESS) or g(AttrType.MS_XOR_MAPPED_ADDRESS)
    peers = msg.get_all(AttrType.XOR_PEER_ADDRESS)
    role, tiebreaker = None, None
    if msg.has(AttrType.ICE_CONTROLLING):
        role, tiebreaker = "controlling", g(AttrType.ICE_CONTROLLING)
    elif msg.has(AttrType.ICE_CONTROLLED):
        role, tiebreaker = "controlled", g(AttrType.ICE_CONTROLLED)
    username = g(AttrType.USERNAME)
    rest_expiry = None
    if username and msg.method in TURN_METHODS:
        m = _REST_USERNAME.match(username)
        if m:
            rest_expiry = int(m.group(1)) * 1_000_000_000  # ns, like ts
    transport = g(AttrType.REQUESTED_TRANSPORT)
    return {
        "frame": d.frame, "ts": d.ts_ns, "flow_id": d.flow_id, "src": d.src, "sport": d.sport, "dst": d.dst,
        "dport": d.dport, "transport": d.transport, "via_turn": d.via_turn, "turn_peer": d.turn_peer,
        "turn_channel": d.turn_channel,
        "method": msg.method_name, "cls": msg.class_name, "txid": msg.txid, "classic": msg.classic,
        "username": username, "realm": g(AttrType.REALM), "nonce_present": msg.has(AttrType.NONCE),
        "software": g(AttrType.SOFTWARE),
        "error_code": err.code if err else None, "error_reason": err.reason if err else None,
        "mapped": _addr(g(AttrType.MAPPED_ADDRESS)), "xor_mapped": _addr(xmapped),
        "xor_relayed": _addr(g(AttrType.XOR_RELAYED_ADDRESS)),
        "xor_peer": ",".join(str(p) for p in peers) if peers else None, "xor_peer_count": len(peers),
        "lifetime_s": g(AttrType.LIFETIME), "channel": g(AttrType.CHANNEL_NUMBER),
        "priority": g(AttrType.PRIORITY), "use_candidate": msg.has(AttrType.USE_CANDIDATE),
        "ice_role": role, "tiebreaker": tiebreaker,
        "has_integrity": msg.has(AttrType.MESSAGE_INTEGRITY),
        "has_integrity_sha256": msg.has(AttrType.MESSAGE_INTEGRITY_SHA256),
        "has_fingerprint": msg.has(AttrType.FINGERPRINT), "fingerprint_ok": msg.fingerprint_ok,
        "unknown_attrs": [f"0x{c:04x}" for c in msg.unknown_attributes], "unknown_required": msg.unknown_required,
        "attr_names": msg.attribute_names,
        "requested_transport": None if transport is None else _TRANSPORTS.get(transport, f"proto {transport}"),
        "rest_expiry": rest_expiry,
    }


def _addr(a: Any) -> str | None:
    return None if a is None else str(a)


def _match_transactions(rows: list[dict[str, Any]]) -> None:
    """Fill rtt_ms / response_frame / request_frame, in capture order.

    A response is matched to requests with its transaction id and method on the same flow (a message relayed
    by TURN is seen once per leg, each leg with its own flow); only when there is none, on any flow."""
    same_flow: dict[tuple[Any, str, str], list[dict[str, Any]]] = {}
    any_flow: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        key = (r["txid"], r["method"])
        if r["cls"] == "request":
            same_flow.setdefault((r["flow_id"], *key), []).append(r)
            any_flow.setdefault(key, []).append(r)
        elif r["cls"] in ("success", "error"):
            sent = same_flow.get((r["flow_id"], *key)) or any_flow.get(key, [])
            sent = [q for q in sent if q["ts"] <= r["ts"]]
            if not sent:
                continue
            last = sent[-1]  # Karn: time from the last transmission, the only unambiguous one
            rtt = (r["ts"] - last["ts"]) / 1e6
            r["request_frame"], r["rtt_ms"] = last["frame"], rtt
            if last.get("rtt_ms") is None:
                last["rtt_ms"] = rtt
            for q in sent:
                if q.get("response_frame") is None:
                    q["response_frame"] = r["frame"]


def build_stun(datagrams: Iterable[Datagram], anomalies: AnomalyLog | None = None) -> pd.DataFrame:
    """The `stun` frame from Datagrams each holding one whole STUN message.

    A message that cannot be parsed at all becomes an anomaly row only; attribute problems become
    anomaly rows and the message keeps its row with everything that could be read."""
    rows: list[dict[str, Any]] = []
    for d in datagrams:
        try:
            msg = StunMessage.parse(d.data, strict=False)
        except DecodeError as e:
            if anomalies is not None:
                anomalies.add("stun", e.name, e.detail, frame=d.frame, ts_ns=d.ts_ns, flow_id=d.flow_id)
            continue
        if anomalies is not None:
            for err in msg.errors:
                anomalies.add("stun", err.name, err.detail, frame=d.frame, ts_ns=d.ts_ns, flow_id=d.flow_id)
        rows.append(_row(d, msg))
    _match_transactions(rows)
    if not rows:
        return STUN.empty()
    df = pd.DataFrame.from_records(rows, columns=STUN.names)
    # 64-bit values must not pass through float64 (NA in an object column would make them floats)
    df["tiebreaker"] = pd.array([r["tiebreaker"] for r in rows], dtype="UInt64")
    return STUN.conform(df)


@register_frame(STUN)
def _build(cap: Capture) -> pd.DataFrame:
    dis = cap.dissection
    return build_stun(dis.stun, dis.anomalies)


__all__ = ["STUN", "StunClass", "build_stun"]
