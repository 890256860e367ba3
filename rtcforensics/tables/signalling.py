"""The `signalling` frame: HTTP, WebSocket and SIP messages, read through tshark (control plane only).

tshark does TCP reassembly, TLS decryption (``cap.keylog`` or secrets embedded in pcapng), HTTP
de-chunking and decompression, WebSocket reassembly and permessage-deflate; it is fed only the
control-plane frames the fast path listed (``cap.dissection.control_frames``), copied into a temporary
capture, or the whole file with a display filter when that list is not available. SIP text (over UDP,
TCP or inside WebSocket) is split and read here, including multipart bodies.

What each message carries (SDP, trickled candidates, ICE parameters) is extracted once here and kept
in :func:`messages` for the `sdp` and `candidates` builders. Authentication material (Authorization,
Cookie, tokens in URLs and JSON, TURN credentials) is recorded as kinds plus sha-256 prefixes; URLs
keep their secret query values redacted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pandas as pd

from ..capture import Capture, register_frame
from ..dissect import jsonsdp
from ..dissect.jsonsdp import Found
from ..dissect.sdp import looks_like_sdp, secret_hash
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
        ("transport", "category:http,websocket,sip,tls", "signalling protocol (tls: TLS connection not readable)"),
        ("ip_proto", "category:tcp,udp", "transport-layer protocol"),
        ("src", "string", "sender IP address"),
        ("sport", "Int32", "sender port"),
        ("dst", "string", "receiver IP address"),
        ("dport", "Int32", "receiver port"),
        ("flow_id", "Int64", "flow of the frame (packets.flow_id), when the packets frame is available"),
        ("tcp_stream", "Int64", "tshark tcp.stream index"),
        ("tls", "boolean", "carried inside TLS"),
        ("decrypted", "boolean", "inside TLS and read after decryption with the keylog / embedded secrets"),
        ("tls_version", "string", "TLS version the server chose on this connection (e.g. 'TLS 1.2'), when seen"),
        ("tls_cipher_suite", "string", "TLS cipher suite the server chose (IANA name), when seen"),
        ("sni", "string", "TLS server name indication of this connection"),
        ("direction", "category:request,response,client_to_server,server_to_client",
         "HTTP/SIP request or response; WebSocket message direction"),
        ("method", "string", "HTTP/SIP request method"),
        ("status", "Int32", "HTTP/SIP response status code"),
        ("url", "string", ("request URL (for WebSocket messages the upgrade URL, ws:// or wss://); secret query "
                          "values redacted")),
        ("host", "string", "HTTP Host header (or TLS SNI)"),
        ("content_type", "string", "Content-Type of the body"),
        ("user_agent", "string", "User-Agent (for WebSocket messages: of the upgrade request)"),
        ("server", "string", "Server header"),
        ("origin", "string", "Origin header (for WebSocket messages: of the upgrade request)"),
        ("ws_opcode", "Int32", "WebSocket opcode (1 text, 2 binary)"),
        ("ws_compressed", "boolean", "WebSocket message was permessage-deflate compressed"),
        ("body_len", "Int64", "body length in bytes (after de-chunking / decompression)"),
        ("body_kind", "category:" + ",".join(BODY_KINDS),
         ("what the body carries: sdp (a description, also inside JSON), candidate (trickled candidates, "
         "sdpfrag), ice (ICE/DTLS parameters without SDP), sip, json, form, text, binary, none")),
        ("sdp_count", "Int32", "session descriptions found in the body"),
        ("candidate_count", "Int32", "trickled candidates found in the body"),
        ("auth_present", "boolean", ("authentication material present (Authorization, Cookie, token, password, "
                                    "TURN credential)")),
        ("auth_kinds", "object", ("list of kinds of authentication material, e.g. 'authorization/bearer', "
                                 "'cookie', 'url:token', 'json:credential'")),
        ("auth_sha256", "object", "list of sha-256 prefixes of those values (comparable, not reversible)"),
        ("sip_call_id", "string", "SIP Call-ID"),
        ("sip_cseq", "string", "SIP CSeq"),
    ],
)

# Logical tshark fields (dissect.tshark.FIELDS) this builder reads.
TSHARK_FIELDS = (
    "frame", "time_epoch", "protocols", "ip_src", "ip_dst", "ipv6_src", "ipv6_dst", "tcp_srcport", "tcp_dstport",
    "udp_srcport", "udp_dstport", "tcp_stream", "tls_hs_type",
    "tls_hs_version", "tls_supported_version", "tls_cipher", "tls_sni", "http_method", "http_uri",
    "http_full_uri", "http_status", "http_request_lines", "http_response_lines", "http_body",
    "http_response_for_uri", "ws_opcode", "ws_pmc", "ws_text", "data",
)
DISPLAY_FILTER = "http || websocket || sip || tls.handshake.type == 1 || tls.handshake.type == 2"

SECRET_KEYS = {"token", "access_token", "accesstoken", "auth_token", "authtoken", "id_token", "jwt", "password",
               "passwd", "pwd", "pass", "secret", "client_secret", "credential", "credentials", "apikey", "api_key",
               "api-key", "key", "auth", "authorization", "session_token", "sessiontoken", "sig", "signature"}
SECRET_HEADERS = {"x-api-key", "x-auth-token", "x-access-token", "api-key", "x-token", "token"}


@dataclass
class Message:
    """One signalling message (internal; the public view is the `signalling` frame)."""

    index: int
    frame: int
    ts_ns: int | None
    transport: str
    ip_proto: str
    src: str | None
    sport: int | None
    dst: str | None
    dport: int | None
    tcp_stream: int | None
    tls: bool
    decrypted: bool
    direction: str | None = None
    method: str | None = None
    status: int | None = None
    url: str | None = None
    host: str | None = None
    content_type: str | None = None
    user_agent: str | None = None
    server: str | None = None
    origin: str | None = None
    ws_opcode: int | None = None
    ws_compressed: bool | None = None
    body: str | None = None
    body_len: int | None = None
    body_kind: str = "none"
    auth: list[tuple[str, str]] = field(default_factory=list)
    sip_call_id: str | None = None
    sip_cseq: str | None = None
    items: list[Found] = field(default_factory=list)  # SDP / candidates / ICE params found in the body
    tls_version: str | None = None
    tls_cipher_suite: str | None = None
    sni: str | None = None


# -- anomalies ----------------------------------------------------------------------------------------

def add_anomaly(cap: Capture, layer: str, name: str, detail: str, frame: int | None = None,
                ts_ns: int | None = None) -> None:
    """Record an anomaly row on the capture's log (raise instead when the capture is strict)."""
    if cap.strict:
        raise DecodeError(name, detail)
    cap.dissection.anomalies.add(layer, name, detail, frame=frame, ts_ns=ts_ns)


def frame_flow_map(cap: Capture) -> dict[int, int]:
    """frame → flow_id from the packets frame ({} when the packets frame is not available)."""
    def make() -> dict[int, int]:
        try:
            p = cap.packets
        except (ImportError, AttributeError, KeyError):
            return {}
        if "frame" not in p.columns or "flow_id" not in p.columns:
            return {}
        ok = p["flow_id"].notna()
        return dict(zip(p["frame"][ok].astype("int64"), p["flow_id"][ok].astype("int64")))

    return cap.cached("frame_flow_map", make)


# -- SIP text -------------------------------------------------------------------------------------------

_SIP_COMPACT = {"c": "content-type", "l": "content-length", "i": "call-id", "f": "from", "t": "to",
                "m": "contact", "v": "via", "k": "supported", "s": "subject", "e": "content-encoding"}
_SIP_START = re.compile(r"^(?:([A-Z]+) (\S+) SIP/2\.0|SIP/2\.0 (\d{3})(?: .*)?)$")


@dataclass
class SipMessage:
    method: str | None
    uri: str | None
    status: int | None
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None


def is_sip(data: bytes | str) -> bool:
    head = data[:200].decode("latin-1") if isinstance(data, bytes) else data[:200]
    first = head.split("\n", 1)[0].rstrip("\r")
    return bool(_SIP_START.match(first))


def parse_sip(data: bytes) -> list[SipMessage]:
    """Split ``data`` into SIP messages (RFC 3261 §7; Content-Length frames them on streams).

    Raises DecodeError(sip_malformed) when the start is not a SIP start line; a body shorter than its
    Content-Length raises TruncatedError-like DecodeError(sip_truncated) after the complete messages."""
    out: list[SipMessage] = []
    pos = 0
    while pos < len(data):
        while data[pos:pos + 2] == b"\r\n":  # keep-alive CRLFs (RFC 5626)
            pos += 2
        if pos >= len(data):
            break
        end = data.find(b"\r\n\r\n", pos)
        sep = 4
        if end < 0:
            end, sep = data.find(b"\n\n", pos), 2
        if end < 0:
            raise DecodeError("sip_truncated", "SIP message headers end before the blank line")
        head = data[pos:end].decode("utf-8", "replace").replace("\r\n", "\n").split("\n")
        m = _SIP_START.match(head[0].strip())
        if not m:
            raise DecodeError("sip_malformed", f"SIP start line not recognised: {head[0][:80]!r}")
        headers: list[tuple[str, str]] = []
        for ln in head[1:]:
            if ln[:1] in (" ", "\t") and headers:  # folded header line
                headers[-1] = (headers[-1][0], headers[-1][1] + " " + ln.strip())
                continue
            k, _, v = ln.partition(":")
            k = k.strip().lower()
            headers.append((_SIP_COMPACT.get(k, k), v.strip()))
        clen = next((v for k, v in headers if k == "content-length"), None)
        body_start = end + sep
        if clen is not None and clen.strip().isdigit():
            n = int(clen.strip())
        else:
            n = len(data) - body_start  # datagram: the body runs to the end
        body = data[body_start:body_start + n]
        msg = SipMessage(m.group(1), m.group(2), int(m.group(3)) if m.group(3) else None, headers, body)
        out.append(msg)
        if len(body) < n:
            raise _Partial(out, DecodeError("sip_truncated",
                                            f"SIP body shorter ({len(body)} bytes) than Content-Length {n}"))
        pos = body_start + n
    return out


class _Partial(DecodeError):
    def __init__(self, done: list[SipMessage], err: DecodeError) -> None:
        super().__init__(err.name, err.detail)
        self.done = done


def multipart_parts(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    """(content-type, body) of each part of a multipart body (RFC 2046 §5.1); [] when not multipart."""
    m = re.search(r'boundary="?([^";]+)"?', content_type, re.IGNORECASE)
    if not content_type.lower().startswith("multipart/") or not m:
        return []
    delim = b"--" + m.group(1).encode()
    parts: list[tuple[str, bytes]] = []
    for chunk in body.split(delim)[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk.lstrip(b"\n")
        hend = chunk.find(b"\r\n\r\n")
        sep = 4
        if hend < 0:
            hend, sep = chunk.find(b"\n\n"), 2
        if hend < 0:
            continue
        ctype = "text/plain"
        for ln in chunk[:hend].decode("latin-1").splitlines():
            k, _, v = ln.partition(":")
            if k.strip().lower() == "content-type":
                ctype = v.strip()
        pbody = chunk[hend + sep:]
        if pbody.endswith(b"\r\n"):
            pbody = pbody[:-2]
        parts.append((ctype, pbody))
    return parts


# -- body classification ----------------------------------------------------------------------------------

def _text(b: bytes | str | None) -> str | None:
    if b is None:
        return None
    if isinstance(b, str):
        return b
    return b.decode("utf-8", "replace")


def _json_secrets(obj: Any, out: list[tuple[str, str]], depth: int = 0) -> None:
    if depth > 64:
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            kl = str(k).lower()
            if isinstance(v, str) and v and kl in SECRET_KEYS:
                out.append((f"json:{kl}", secret_hash(v)))
            elif isinstance(v, (dict, list)):
                _json_secrets(v, out, depth + 1)
            elif isinstance(v, str) and v[:1] in "{[":
                try:
                    _json_secrets(json.loads(v), out, depth + 1)
                except (json.JSONDecodeError, RecursionError):
                    pass
    elif isinstance(obj, list):
        for v in obj:
            _json_secrets(v, out, depth + 1)


def classify_body(cap: Capture, msg: Message, body: str | None, content_type: str | None,
                  raw: bytes | None = None) -> None:
    """Set ``msg.body_kind``, ``msg.items`` and JSON-borne auth material from a message body."""
    ct = (content_type or "").split(";")[0].strip().lower()
    if raw is not None and ct.startswith("multipart/"):
        for pct, pbody in multipart_parts(content_type or "", raw):
            sub = Message(**{**msg.__dict__, "items": [], "auth": []})
            classify_body(cap, sub, _text(pbody), pct, pbody)
            msg.items.extend(sub.items)
            msg.auth.extend(sub.auth)
        _set_kind(msg, "text" if body else "none")
        return
    if not body or not body.strip():
        msg.body_kind = "none"
        return
    s = body.strip()
    if ct == "application/trickle-ice-sdpfrag":
        for ln in s.replace("\r\n", "\n").split("\n"):
            if ln.startswith("a=candidate:"):
                msg.items.append(Found("candidate", "sdpfrag", text=ln[2:], envelope="whip"))
        msg.body_kind = "candidate"
        return
    if ct == "application/sdp" or looks_like_sdp(s):
        env = {"http": "whip", "sip": "sip"}.get(msg.transport, "plain")
        msg.items.append(Found("sdp", "body", text=body, envelope=env))
        msg.body_kind = "sdp"
        return
    sio = _SOCKETIO.match(s)
    if sio and not ct:
        s = s[sio.end():]  # Socket.IO / Engine.IO packet: '42["offer",{...}]', '42/room,["ice",{...}]'
    if s[:1] in "{[" or ct.endswith("json"):
        try:
            obj = json.loads(s)
        except (json.JSONDecodeError, RecursionError) as e:
            add_anomaly(cap, "signalling", "json_invalid",
                        f"{msg.transport} JSON message is invalid: {e}", msg.frame, msg.ts_ns)
            msg.body_kind = "text"
            return
        try:
            msg.items.extend(jsonsdp.find(obj))
        except DecodeError as e:
            add_anomaly(cap, "signalling", e.name, e.detail, msg.frame, msg.ts_ns)
        _json_secrets(obj, msg.auth)
        _set_kind(msg, "json")
        return
    if msg.transport == "websocket" and is_sip(s):
        msg.body_kind = "sip"
        return
    if ct == "application/x-www-form-urlencoded":
        for k, v in parse_qsl(s, keep_blank_values=False):
            if k.lower() in SECRET_KEYS:
                msg.auth.append((f"form:{k.lower()}", secret_hash(v)))
        msg.body_kind = "form"
        return
    msg.body_kind = "text"


_SOCKETIO = re.compile(r"^\d{1,2}(?:/[^,\[{]*,)?\d*(?=[\[{])")


def _set_kind(msg: Message, default: str) -> None:
    kinds = {f.kind for f in msg.items}
    if "sdp" in kinds:
        msg.body_kind = "sdp"
    elif "candidate" in kinds:
        msg.body_kind = "candidate"
    elif "params" in kinds:
        msg.body_kind = "ice"
    else:
        msg.body_kind = default


def _headers(lines: Iterable[str]) -> list[tuple[str, str]]:
    out = []
    for ln in lines:
        k, sep, v = ln.partition(":")
        if sep:
            out.append((k.strip().lower(), v.strip()))
    return out


def header_auth(headers: list[tuple[str, str]], prefix: str = "") -> list[tuple[str, str]]:
    out = []
    for k, v in headers:
        if not v:
            continue
        if k in ("authorization", "proxy-authorization"):
            scheme = v.split(" ", 1)[0].lower() if " " in v else "token"
            # "authorization/bearer", not "authorization:bearer": a kind is a name, and "Authorization: ..."
            # at the start of a line is what reports redact as a header value
            out.append((f"{prefix}{k}/{scheme}", secret_hash(v)))
        elif k in ("cookie", "set-cookie"):
            out.append((f"{prefix}{k}", secret_hash(v)))
        elif k in SECRET_HEADERS:
            out.append((f"{prefix}header:{k}", secret_hash(v)))
    return out


def redact_url(url: str | None) -> tuple[str | None, list[tuple[str, str]]]:
    """(URL with secret query values replaced by ``<redacted:sha256-prefix>``, [(kind, hash)])."""
    if not url or "?" not in url:
        return url, []
    parts = urlsplit(url)
    found: list[tuple[str, str]] = []
    out = []
    for pair in parts.query.split("&"):
        k, sep, v = pair.partition("=")
        if sep and v and k.lower() in SECRET_KEYS:
            h = secret_hash(v)
            found.append((f"url:{k.lower()}", h))
            out.append(f"{k}=<redacted:{h}>")
        else:
            out.append(pair)
    return url.split("?", 1)[0] + "?" + "&".join(out) + (f"#{parts.fragment}" if parts.fragment else ""), found


# -- tshark export → messages ------------------------------------------------------------------------------

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
        pk = getattr(d, "packets", None)
        if pk is not None and "transport" in pk.columns and not (pk["transport"].astype(str) == "tcp").any():
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
    from ..dissect import tshark

    def make() -> list[Any]:
        frames = _control_frames(cap)
        if frames is not None and len(frames) == 0:
            return []
        warnings: list[str] = []
        out = tshark.export(cap.path, TSHARK_FIELDS, display_filter=DISPLAY_FILTER, keylog=cap.keylog,
                            frames=frames, extra_opts=_decode_as(cap), warnings=warnings)
        for w in warnings:
            add_anomaly(cap, "tshark", "tshark_capture_damaged", f"signalling read up to the damage: {w}")
        return out

    return cap.cached("tshark_control_plane", make)


def export_sip_raw(cap: Capture) -> dict[int, list[bytes]]:
    """The bytes of every SIP message as tshark's SIP layer saw them (after TCP reassembly, TLS decryption,
    WebSocket unmasking), per frame; cached."""
    from ..dissect import tshark

    def make() -> dict[int, list[bytes]]:
        frames = _control_frames(cap)
        return tshark.export_raw(cap.path, "sip", display_filter="sip", keylog=cap.keylog, frames=frames,
                                 extra_opts=_decode_as(cap))

    return cap.cached("tshark_sip_raw", make)


def _proto_chain(p: Any) -> list[str]:
    return str(p.get("protocols") or "").split(":")


@dataclass
class _Conn:
    client: tuple[str | None, int | None] | None = None
    url: str | None = None
    user_agent: str | None = None
    origin: str | None = None
    host: str | None = None
    tls_version: str | None = None
    tls_cipher_suite: str | None = None
    sni: str | None = None
    tls_client: tuple[str | None, int | None] | None = None
    tls_frame: int | None = None
    tls_ts: int | None = None
    tls_server: tuple[str | None, int | None] | None = None
    readable: bool = False
    ws_deflate: bool = False
    auth: list[tuple[str, str]] = field(default_factory=list)


def messages(cap: Capture) -> list[Message]:
    """Every signalling message of the capture (cached; the `signalling` frame is its public view)."""
    return cap.cached("signalling_messages", lambda: _build_messages(cap))


def _build_messages(cap: Capture) -> list[Message]:
    from ..dissect.dtls import iana_name
    from ..dissect.tshark import parse_time

    try:
        pkts = export_control_plane(cap)
    except ToolError as e:
        if cap.strict:
            raise
        add_anomaly(cap, "tshark", "tshark_failed", str(e))
        return []
    try:
        sip_raw = export_sip_raw(cap) if any("sip" in _proto_chain(p) for p in pkts) else {}
    except ToolError as e:
        if cap.strict:
            raise
        add_anomaly(cap, "tshark", "tshark_failed", str(e))
        sip_raw = {}
    conns: dict[int, _Conn] = {}
    out: list[Message] = []
    sip_offers: dict[str, bool] = {}  # Call-ID → an offer is outstanding

    for p in pkts:
        chain = _proto_chain(p)
        frame = p.frame
        ts = parse_time(str(p.get("time_epoch") or ""))
        v6 = p.get("ipv6_src") is not None and p.get("ip_src") is None
        src = p.get("ipv6_src") if v6 else p.get("ip_src")
        dst = p.get("ipv6_dst") if v6 else p.get("ip_dst")
        is_tcp = "tcp" in chain
        sport = p.get("tcp_srcport") if is_tcp else p.get("udp_srcport")
        dport = p.get("tcp_dstport") if is_tcp else p.get("udp_dstport")
        stream = p.get("tcp_stream") if is_tcp else None
        conn = conns.setdefault(stream, _Conn()) if stream is not None else _Conn()
        tls = "tls" in chain
        types = p.all("tls_hs_type")
        if 1 in types:
            conn.tls_client = (src, sport)
            conn.tls_server = (dst, dport)
            conn.sni = p.get("tls_sni") or conn.sni
            conn.tls_frame, conn.tls_ts = frame, ts
        if 2 in types and 1 not in types:
            sv = p.all("tls_supported_version")
            ver = sv[0] if sv else p.get("tls_hs_version")
            if isinstance(ver, int):
                conn.tls_version = iana_name("versions", ver)
            cs = p.get("tls_cipher")
            if isinstance(cs, int):
                conn.tls_cipher_suite = iana_name("cipher_suites", cs)
        tail = chain[chain.index("tls") + 1:] if tls else chain
        decrypted = tls and any(x in tail for x in ("http", "websocket", "sip"))

        where = {"frame": frame, "ts_ns": ts, "ip_proto": "tcp" if is_tcp else "udp", "src": src, "sport": sport,
                 "dst": dst, "dport": dport, "tcp_stream": stream, "tls": tls, "decrypted": decrypted}

        def new(transport: str, where: dict[str, Any] = where, **kw: Any) -> Message:
            m = Message(index=len(out), transport=transport, **where, **kw)
            out.append(m)
            return m

        if "websocket" in chain:
            conn.readable = True
            client = conn.client
            direction = None
            if client is not None:
                direction = "client_to_server" if (src, sport) == client else "server_to_client"
            texts = p.all("ws_text")
            opcodes = p.all("ws_opcode")
            if "sip" in chain[chain.index("websocket"):]:
                # RFC 7118: the SIP dissector took the payload; read the unmasked SIP bytes instead
                for sip_bytes in sip_raw.get(frame, []):
                    m = new("websocket", direction=direction, url=conn.url, user_agent=conn.user_agent,
                            origin=conn.origin, host=conn.host, ws_opcode=1, ws_compressed=bool(p.get("ws_pmc")))
                    m.body_len = len(sip_bytes)
                    m.body_kind = "sip"
                    _sip_into(cap, m, sip_bytes, sip_offers)
                continue
            for i, t in enumerate(texts):
                m = new("websocket", direction=direction, url=conn.url, user_agent=conn.user_agent,
                        origin=conn.origin, host=conn.host, ws_opcode=1, ws_compressed=bool(p.get("ws_pmc")))
                m.body = t
                m.body_len = len(t.encode("utf-8", "surrogateescape"))
                classify_body(cap, m, t, None)
                if m.body_kind == "sip":
                    _sip_into(cap, m, t.encode("utf-8", "surrogateescape"), sip_offers)
            if not texts and 2 in opcodes:
                data = p.all("data")
                m = new("websocket", direction=direction, url=conn.url, user_agent=conn.user_agent,
                        origin=conn.origin, host=conn.host, ws_opcode=2, ws_compressed=bool(p.get("ws_pmc")))
                m.body_kind = "binary"
                m.body_len = sum(len(d) for d in data if isinstance(d, bytes)) or None
            continue
        if "http" in chain:
            conn.readable = True
            method = p.get("http_method")
            status = p.get("http_status")
            if method is None and status is None:
                continue
            req_lines = _headers(p.all("http_request_lines"))
            resp_lines = _headers(p.all("http_response_lines"))
            hdrs = req_lines if method is not None else resp_lines
            hd = dict(hdrs)
            body = p.get("http_body")
            raw: bytes | None = body if isinstance(body, bytes) else (body.encode("utf-8", "surrogateescape") if body else None)
            text = _text(body)
            url = p.get("http_full_uri") if method is not None else p.get("http_response_for_uri")
            if url is None and method is not None:
                url = p.get("http_uri")
            if tls and url and url.startswith("http://"):
                url = "https://" + url[len("http://"):]
            url, url_auth = redact_url(url)
            m = new("http", direction="request" if method is not None else "response", method=method,
                    status=status if isinstance(status, int) else None, url=url, host=hd.get("host"),
                    content_type=hd.get("content-type"), user_agent=hd.get("user-agent"),
                    server=hd.get("server"), origin=hd.get("origin"))
            m.auth.extend(url_auth)
            m.auth.extend(header_auth(hdrs))
            m.body = text
            m.body_len = len(raw) if raw else (0 if method is not None or status else None)
            classify_body(cap, m, text, m.content_type, raw)
            if method == "GET" and hd.get("upgrade", "").lower() == "websocket":
                conn.client = (src, sport)
                conn.url = url.replace("https://", "wss://").replace("http://", "ws://") if url else None
                conn.user_agent, conn.origin, conn.host = m.user_agent, m.origin, m.host
                conn.ws_deflate = "permessage-deflate" in hd.get("sec-websocket-extensions", "")
            continue
        if "sip" in chain:
            for sip_bytes in sip_raw.get(frame, []):
                m = new("sip")
                _sip_into(cap, m, sip_bytes, sip_offers, out)
            continue

    # TLS connections whose content was not readable: one row each
    for stream, c in conns.items():
        if c.tls_client is None or c.readable:
            continue
        out.append(Message(index=len(out), frame=c.tls_frame or 0, ts_ns=c.tls_ts, transport="tls", ip_proto="tcp",
                           src=c.tls_client[0], sport=c.tls_client[1], dst=c.tls_server[0] if c.tls_server else None,
                           dport=c.tls_server[1] if c.tls_server else None, tcp_stream=stream, tls=True,
                           decrypted=False, host=c.sni, body_kind="unknown"))
    # TLS facts of the connection on every message it carried
    for m in out:
        cc = conns.get(m.tcp_stream) if m.tcp_stream is not None else None
        if cc is not None and m.tls:
            m.tls_version, m.tls_cipher_suite, m.sni = cc.tls_version, cc.tls_cipher_suite, cc.sni
    out.sort(key=lambda m: (m.frame, m.index))
    for i, m in enumerate(out):
        m.index = i
    return out


def _sip_into(cap: Capture, first: Message, raw: bytes, offers: dict[str, bool],
              out: list[Message] | None = None) -> None:
    """Fill ``first`` (and further Messages appended to ``out`` for coalesced messages) from SIP text."""
    err: DecodeError | None = None
    try:
        sips = parse_sip(raw)
    except _Partial as e:
        sips, err = e.done, e
    except DecodeError as e:
        sips, err = [], e
    if err is not None:
        add_anomaly(cap, "signalling", err.name, f"{err.detail} (frame {first.frame})", first.frame, first.ts_ns)
    for i, s in enumerate(sips):
        if i == 0:
            m = first
        else:
            m = Message(**{**first.__dict__, "items": [], "auth": [], "index": len(out) if out is not None else 0})
            if out is not None:
                out.append(m)
        m.method, m.status = s.method, s.status
        if first.transport == "sip":
            m.direction = "request" if s.method else "response"
            m.url, url_auth = redact_url(s.uri)
            m.auth.extend(url_auth)
        m.user_agent = s.header("user-agent") or (m.user_agent if first.transport == "websocket" else None)
        m.server = s.header("server")
        m.sip_call_id, m.sip_cseq = s.header("call-id"), s.header("cseq")
        m.auth.extend(header_auth(s.headers, prefix="sip-" if first.transport == "websocket" else ""))
        ct = s.header("content-type")
        if first.transport == "sip":
            m.content_type = ct
            m.body_len = len(s.body)
        sub = Message(**{**m.__dict__, "items": [], "auth": []})
        sub.transport = "sip"
        classify_body(cap, sub, _text(s.body), ct, s.body)
        role = _sip_role(s, offers, any(f.kind == "sdp" for f in sub.items))
        for f in sub.items:
            if f.kind == "sdp" and f.role is None:
                f.role = role
            f.envelope = "sip"
        m.items.extend(sub.items)
        m.auth.extend(sub.auth)
        if first.transport == "sip":
            m.body_kind = sub.body_kind if s.body else "none"


def _sip_role(s: SipMessage, offers: dict[str, bool], has_sdp: bool) -> str | None:
    """RFC 3264 offer/answer inside SIP (RFC 6337): the first SDP of an exchange is the offer."""
    if not has_sdp:
        return None
    cid = s.header("call-id") or ""
    cseq = (s.header("cseq") or "").split()
    meth = s.method or (cseq[1] if len(cseq) > 1 else "")
    key = f"{cid}|{meth if meth != 'ACK' else 'INVITE'}"
    if offers.get(key):
        offers[key] = False
        return "answer"
    offers[key] = True
    return "offer"


@register_frame(SIGNALLING)
def build_signalling(cap: Capture) -> pd.DataFrame:
    msgs = messages(cap)
    flows = frame_flow_map(cap) if msgs else {}
    rows = []
    for m in msgs:
        rows.append({
            "msg_index": m.index, "frame": m.frame, "ts": m.ts_ns, "transport": m.transport,
            "ip_proto": m.ip_proto, "src": m.src, "sport": m.sport, "dst": m.dst, "dport": m.dport,
            "flow_id": flows.get(m.frame), "tcp_stream": m.tcp_stream, "tls": m.tls, "decrypted": m.decrypted,
            "tls_version": m.tls_version, "tls_cipher_suite": m.tls_cipher_suite, "sni": m.sni,
            "direction": m.direction, "method": m.method, "status": m.status, "url": m.url, "host": m.host,
            "content_type": m.content_type, "user_agent": m.user_agent, "server": m.server, "origin": m.origin,
            "ws_opcode": m.ws_opcode, "ws_compressed": m.ws_compressed, "body_len": m.body_len,
            "body_kind": m.body_kind, "sdp_count": sum(f.kind == "sdp" for f in m.items),
            "candidate_count": sum(f.kind == "candidate" and bool(f.text) for f in m.items),
            "auth_present": bool(m.auth), "auth_kinds": sorted({k for k, _ in m.auth}),
            "auth_sha256": sorted({h for _, h in m.auth}), "sip_call_id": m.sip_call_id, "sip_cseq": m.sip_cseq,
        })
    df = SIGNALLING.from_records(rows)
    return df
