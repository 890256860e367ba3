"""The `signalling` frame: HTTP, WebSocket and SIP messages, read through tshark (control plane only).

tshark is fed only the control-plane frames the fast path listed (``cap.dissection.control_frames``), copied
into a temporary capture, or the whole file with a display filter when that list is not available
(``dissect.tshark.export``); ``dissect.control`` turns its export into messages, ``dissect.http`` and
``dissect.sip`` read their headers and bodies. This module caches the messages on the capture (:func:`messages`,
read by the `sdp` and `candidates` builders) and builds the frame.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..capture import Capture, register_frame
from ..dissect import tshark as _tshark
from ..dissect.control import build_messages
from ..dissect.http import (  # noqa: F401 - re-exported: the signalling message and its readers
    SECRET_HEADERS,
    SECRET_KEYS,
    Message,
    header_auth,
    multipart_parts,
    redact_url,
)
from ..dissect.http import classify_body as _classify_body
from ..dissect.http import headers as _headers  # noqa: F401
from ..dissect.sip import SipMessage, is_sip, parse_sip  # noqa: F401
from ..errors import DecodeError, ToolError
from ..schema import frame_schema

BODY_KINDS = ("none", "sdp", "candidate", "ice", "sip", "json", "form", "text", "binary", "unknown")

SIGNALLING = frame_schema(
    "signalling",
    "HTTP / WebSocket / SIP messages (one row per message; TLS connections whose content could not be read "
    "are one row each with transport 'tls').",
    [
        ("msg_index", "Int64", "message number in this capture (sdp.signalling_msg refers to it)"),
        ("frame", "Int64", "Wireshark frame number (the last frame of a reassembled message)"),
        ("ts", "ts", "capture time of that frame (UTC)"),
        (
            "transport",
            "category:http,websocket,sip,tls",
            "signalling protocol (tls: TLS connection not readable)",
        ),
        ("ip_proto", "category:tcp,udp", "transport-layer protocol"),
        ("src", "string", "sender IP address"),
        ("sport", "Int32", "sender port"),
        ("dst", "string", "receiver IP address"),
        ("dport", "Int32", "receiver port"),
        ("flow_id", "Int64", "flow of the frame (packets.flow_id), when the packets frame is available"),
        ("tcp_stream", "Int64", "tshark tcp.stream index"),
        ("tls", "boolean", "carried inside TLS"),
        ("decrypted", "boolean", "inside TLS and read after decryption with the keylog / embedded secrets"),
        (
            "tls_version",
            "string",
            "TLS version the server chose on this connection (e.g. 'TLS 1.2'), when seen",
        ),
        ("tls_cipher_suite", "string", "TLS cipher suite the server chose (IANA name), when seen"),
        ("sni", "string", "TLS server name indication of this connection"),
        (
            "direction",
            "category:request,response,client_to_server,server_to_client",
            "HTTP/SIP request or response; WebSocket message direction",
        ),
        ("method", "string", "HTTP/SIP request method"),
        ("status", "Int32", "HTTP/SIP response status code"),
        (
            "url",
            "string",
            (
                "request URL (for WebSocket messages the upgrade URL, ws:// or wss://); secret query "
                "values redacted"
            ),
        ),
        ("host", "string", "HTTP Host header (or TLS SNI)"),
        ("content_type", "string", "Content-Type of the body"),
        ("user_agent", "string", "User-Agent (for WebSocket messages: of the upgrade request)"),
        ("server", "string", "Server header"),
        ("origin", "string", "Origin header (for WebSocket messages: of the upgrade request)"),
        ("ws_opcode", "Int32", "WebSocket opcode (1 text, 2 binary)"),
        ("ws_compressed", "boolean", "WebSocket message was permessage-deflate compressed"),
        ("body_len", "Int64", "body length in bytes (after de-chunking / decompression)"),
        (
            "body_kind",
            "category:" + ",".join(BODY_KINDS),
            (
                "what the body carries: sdp (a description, also inside JSON), candidate (trickled candidates, "
                "sdpfrag), ice (ICE/DTLS parameters without SDP), sip, json, form, text, binary, none"
            ),
        ),
        ("sdp_count", "Int32", "session descriptions found in the body"),
        ("candidate_count", "Int32", "trickled candidates found in the body"),
        (
            "auth_present",
            "boolean",
            ("authentication material present (Authorization, Cookie, token, password, TURN credential)"),
        ),
        (
            "auth_kinds",
            "object",
            (
                "list of kinds of authentication material, e.g. 'authorization/bearer', "
                "'cookie', 'url:token', 'json:credential'"
            ),
        ),
        ("auth_sha256", "object", "list of sha-256 prefixes of those values (comparable, not reversible)"),
        ("sip_call_id", "string", "SIP Call-ID"),
        ("sip_cseq", "string", "SIP CSeq"),
        (
            "client_endpoint",
            "string",
            "ip:port of the client: the side that opened the TCP connection (its SYN; without one in the capture, "
            "the sender of the TLS ClientHello, WebSocket upgrade or first HTTP request), for SIP over UDP the "
            "sender of the request (the receiver of a response)",
        ),
        (
            "server_endpoint",
            "string",
            "ip:port of the server: the listener, the other end from client_endpoint",
        ),
        ("sip_cseq_num", "Int64", "SIP CSeq sequence number"),
        ("sip_cseq_method", "string", "SIP CSeq method (of the request a response answers)"),
        ("sip_from_tag", "string", "SIP From tag (dialog id, RFC 3261 §12)"),
        ("sip_to_tag", "string", "SIP To tag (dialog id; NA in an initial request)"),
        (
            "sip_via_count",
            "Int32",
            "number of SIP Via entries (1: straight from the user agent; more: via proxies)",
        ),
        (
            "sip_via_bottom_host",
            "string",
            "sent-by host of the bottom Via: the user agent that originated the request (RFC 3261 §8.1.1.7)",
        ),
        ("sip_contact", "string", "first SIP Contact URI (userinfo password redacted)"),
        (
            "sip_record_route",
            "boolean",
            "a Record-Route header is present (a proxy stays on the dialog's path)",
        ),
        (
            "x_forwarded_for",
            "string",
            "X-Forwarded-For header (HTTP, SIP; for WebSocket messages: of the upgrade request): a proxy relayed it",
        ),
        (
            "x_forwarded_proto",
            "string",
            "X-Forwarded-Proto header: 'https' on a cleartext message is the back-end leg of a TLS-terminating proxy",
        ),
        (
            "answers_frame",
            "Int64",
            "for an SDP answer in SIP: frame of the offer it answers, paired by Call-ID, From tag, CSeq number and "
            "method (across 401/407 retries, re-INVITE, UPDATE, 183/200), never by adjacency",
        ),
    ],
)

# Logical tshark fields (dissect.tshark.FIELDS) this builder reads.
TSHARK_FIELDS = _tshark.SIGNALLING_FIELDS
DISPLAY_FILTER = _tshark.SIGNALLING_FILTER


# -- anomalies ----------------------------------------------------------------------------------------


def add_anomaly(
    cap: Capture, layer: str, name: str, detail: str, frame: int | None = None, ts_ns: int | None = None
) -> None:
    """Record an anomaly row on the capture's log (raise instead when the capture is strict)."""
    if cap.strict:
        raise DecodeError(name, detail)
    cap.dissection.anomalies.add(layer, name, detail, frame=frame, ts_ns=ts_ns)


def _report(cap: Capture) -> Any:
    """The ``report`` callback the dissect readers take: anomaly rows on this capture."""

    def report(
        layer: str, name: str, detail: str, frame: int | None = None, ts_ns: int | None = None
    ) -> None:
        add_anomaly(cap, layer, name, detail, frame, ts_ns)

    return report


def classify_body(
    cap: Capture, msg: Message, body: str | None, content_type: str | None, raw: bytes | None = None
) -> None:
    """``dissect.http.classify_body`` with problems recorded as anomaly rows on ``cap``."""
    _classify_body(_report(cap), msg, body, content_type, raw)


def frame_flow_map(cap: Capture) -> dict[int, int]:
    """frame → flow_id for the frames of the signalling messages (:func:`messages`), looked up in the packets
    frame ({} when it is not available). Only those frames: a map of every packet cost ~140 MB at 10^6
    packets and was held as long as the capture."""

    def make() -> dict[int, int]:
        wanted = np.unique(np.array([m.frame for m in messages(cap) if m.frame is not None], dtype=np.int64))
        if not len(wanted):
            return {}
        try:
            p = cap.packets
        except (ImportError, AttributeError, KeyError):
            return {}
        if "frame" not in p.columns or "flow_id" not in p.columns:
            return {}
        known = p["flow_id"].notna().to_numpy(bool)
        frames = p["frame"].to_numpy(dtype=np.int64, na_value=-1)
        order = None if bool((np.diff(frames) >= 0).all()) else np.argsort(frames, kind="stable")
        sorted_frames = frames if order is None else frames[order]
        at = np.minimum(np.searchsorted(sorted_frames, wanted), len(frames) - 1)
        rows = at if order is None else order[at]
        hit = (sorted_frames[at] == wanted) & known[rows]
        flow_ids = p["flow_id"].to_numpy(dtype=np.int64, na_value=-1)[rows[hit]]
        return dict(zip(wanted[hit].tolist(), flow_ids.tolist()))

    return cap.cached("frame_flow_map", make)


# -- tshark export (cached per capture) -------------------------------------------------------------------


def _control_frames(cap: Capture) -> Any:
    """Frames to give tshark: the fast path's control-plane list, or None for the whole file."""
    try:
        d = cap.dissection
    except ImportError:
        return None
    cf = getattr(d, "control_frames", None)
    if cf is None:
        return None
    if len(cf) == 0:
        pk = cap.packets
        if not (pk["transport"] == "tcp").any():
            return cf  # no TCP at all: only UDP SIP could be signalling, and the fast path lists it
        return None
    return cf


def _decode_as(cap: Capture) -> list[str]:
    """``-d tcp.port==P,sip`` for SIP over TCP on ports tshark would give to another dissector (e.g. 6060,
    which it reads as X11): the fast path's classification of the flow decides."""
    try:
        fl = cap.flows
    except (ImportError, AttributeError, KeyError):
        return []
    if not {"classes", "transport", "a_port", "b_port"} <= set(fl.columns):
        return []
    ports: set[int] = set()
    for r in fl[fl["transport"].astype(str) == "tcp"].itertuples():
        classes = r.classes if isinstance(r.classes, (list, tuple)) else []
        if "sip" in classes and not {int(r.a_port), int(r.b_port)} & {5060, 5061}:
            ports.add(min(int(r.a_port), int(r.b_port)))
    out: list[str] = []
    for port in sorted(ports)[:50]:
        out += ["-d", f"tcp.port=={port},sip"]
    return out


def export_control_plane(cap: Capture) -> list[Any]:
    """tshark field export of the control plane, cached on the capture."""

    def make() -> list[Any]:
        frames = _control_frames(cap)
        if frames is not None and len(frames) == 0:
            return []
        warnings: list[str] = []
        out = _tshark.export(
            cap.path,
            TSHARK_FIELDS,
            display_filter=DISPLAY_FILTER,
            keylog=cap.keylog,
            frames=frames,
            extra_opts=_decode_as(cap),
            warnings=warnings,
        )
        for w in warnings:
            add_anomaly(cap, "tshark", "tshark_capture_damaged", f"signalling read up to the damage: {w}")
        return out

    return cap.cached("tshark_control_plane", make)


def export_sip_raw(cap: Capture) -> dict[int, list[bytes]]:
    """The bytes of every SIP message as tshark's SIP layer saw them (after TCP reassembly, TLS decryption,
    WebSocket unmasking), per frame; cached."""

    def make() -> dict[int, list[bytes]]:
        frames = _control_frames(cap)
        return _tshark.export_raw(
            cap.path,
            "sip",
            display_filter="sip",
            keylog=cap.keylog,
            frames=frames,
            extra_opts=_decode_as(cap),
        )

    return cap.cached("tshark_sip_raw", make)


def messages(cap: Capture) -> list[Message]:
    """Every signalling message of the capture (cached; the `signalling` frame is its public view)."""
    return cap.cached("signalling_messages", lambda: _build_messages(cap))


def _build_messages(cap: Capture) -> list[Message]:
    try:
        pkts = export_control_plane(cap)
    except ToolError as e:
        if cap.strict:
            raise
        add_anomaly(cap, "tshark", "tshark_failed", str(e))
        return []
    try:
        sip_raw = (
            export_sip_raw(cap)
            if any("sip" in str(p.get("protocols") or "").split(":") for p in pkts)
            else {}
        )
    except ToolError as e:
        if cap.strict:
            raise
        add_anomaly(cap, "tshark", "tshark_failed", str(e))
        sip_raw = {}
    ws_whole: dict[int, list[bytes]] = {}
    if any(_at_ws_limit(t) for p in pkts for t in p.all("ws_text")):
        try:
            ws_whole = export_ws_whole(cap)
        except ToolError as e:
            if cap.strict:
                raise
            add_anomaly(cap, "tshark", "tshark_failed", str(e))
    return build_messages(pkts, sip_raw, _report(cap), _openers(cap), ws_whole)


def _at_ws_limit(t: Any) -> bool:
    limit = _tshark.WS_TEXT_LIMIT - 4  # a cut may end before a multi-byte character
    return isinstance(t, str) and len(t) >= limit // 4 and len(t.encode("utf-8", "surrogateescape")) >= limit


def export_ws_whole(cap: Capture) -> dict[int, list[bytes]]:
    """Whole payloads of the WebSocket messages over tshark's 256 KiB text-field limit, per frame; cached."""

    def make() -> dict[int, list[bytes]]:
        return _tshark.export_ws_whole(
            cap.path, keylog=cap.keylog, frames=_control_frames(cap), extra_opts=_decode_as(cap)
        )

    return cap.cached("tshark_ws_whole", make)


def _openers(cap: Capture) -> dict[frozenset[str], tuple[str, str]]:
    """{endpoint pair: (client, server)} of the TCP connections whose SYN the fast path saw."""
    try:
        known = cap.dissection.tcp_openers
    except ImportError:
        return {}
    return {frozenset(pair): pair for pair in known.values()}


@register_frame(SIGNALLING)
def build_signalling(cap: Capture) -> pd.DataFrame:
    msgs = messages(cap)
    flows = frame_flow_map(cap) if msgs else {}
    rows = []
    for m in msgs:
        d = m.sip
        rows.append(
            {
                "msg_index": m.index,
                "frame": m.frame,
                "ts": m.ts_ns,
                "transport": m.transport,
                "ip_proto": m.ip_proto,
                "src": m.src,
                "sport": m.sport,
                "dst": m.dst,
                "dport": m.dport,
                "flow_id": flows.get(m.frame),
                "tcp_stream": m.tcp_stream,
                "tls": m.tls,
                "decrypted": m.decrypted,
                "tls_version": m.tls_version,
                "tls_cipher_suite": m.tls_cipher_suite,
                "sni": m.sni,
                "direction": m.direction,
                "method": m.method,
                "status": m.status,
                "url": m.url,
                "host": m.host,
                "content_type": m.content_type,
                "user_agent": m.user_agent,
                "server": m.server,
                "origin": m.origin,
                "ws_opcode": m.ws_opcode,
                "ws_compressed": m.ws_compressed,
                "body_len": m.body_len,
                "body_kind": m.body_kind,
                "sdp_count": sum(f.kind == "sdp" for f in m.items),
                "candidate_count": sum(f.kind == "candidate" and bool(f.text) for f in m.items),
                "auth_present": bool(m.auth),
                "auth_kinds": sorted({k for k, _ in m.auth}),
                "auth_sha256": sorted({h for _, h in m.auth}),
                "sip_call_id": m.sip_call_id,
                "sip_cseq": m.sip_cseq,
                "client_endpoint": m.client_endpoint,
                "server_endpoint": m.server_endpoint,
                "sip_cseq_num": d.cseq_num if d else None,
                "sip_cseq_method": d.cseq_method if d else None,
                "sip_from_tag": d.from_tag if d else None,
                "sip_to_tag": d.to_tag if d else None,
                "sip_via_count": d.via_count if d else None,
                "sip_via_bottom_host": d.via_bottom_host if d else None,
                "sip_contact": d.contact if d else None,
                "sip_record_route": d.record_route if d else None,
                "x_forwarded_for": m.x_forwarded_for,
                "x_forwarded_proto": m.x_forwarded_proto,
                "answers_frame": m.answers_frame,
            }
        )
    df = SIGNALLING.from_records(rows)
    return df
