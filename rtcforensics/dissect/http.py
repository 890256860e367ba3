"""Signalling message bodies and headers (HTTP, WebSocket payloads, SIP bodies): what a body carries (SDP,
trickled candidates, ICE parameters — inside JSON at any depth, Socket.IO frames, multipart MIME, forms),
authentication material in headers, URLs and JSON (recorded as kinds plus sha-256 prefixes), and URLs with
their secret query values redacted.

Decoders report what they could not read through ``report(layer, name, detail, frame, ts_ns)``; the table
builder turns that into an anomaly row.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ..errors import DecodeError
from . import jsonsdp
from .jsonsdp import Found
from .sdp import looks_like_sdp, secret_hash
from .sip import Dialog, is_sip

Report = Callable[[str, str, str, "int | None", "int | None"], None]

SECRET_KEYS = {
    "token",
    "access_token",
    "accesstoken",
    "auth_token",
    "authtoken",
    "id_token",
    "jwt",
    "password",
    "passwd",
    "pwd",
    "pass",
    "secret",
    "client_secret",
    "credential",
    "credentials",
    "apikey",
    "api_key",
    "api-key",
    "key",
    "auth",
    "authorization",
    "session_token",
    "sessiontoken",
    "sig",
    "signature",
}
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
    client_endpoint: str | None = None  # ip:port of the side that opened the connection / sent the request
    server_endpoint: str | None = None  # ip:port of the listener
    sip: Dialog | None = None  # SIP dialog identifiers and path headers
    answers_frame: int | None = None  # for an SDP answer: frame of the offer it answers (SIP pairing)
    x_forwarded_for: str | None = None
    x_forwarded_proto: str | None = None
    items: list[Found] = field(default_factory=list)  # SDP / candidates / ICE params found in the body
    tls_version: str | None = None
    tls_cipher_suite: str | None = None
    sni: str | None = None


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
        pbody = chunk[hend + sep :]
        if pbody.endswith(b"\r\n"):
            pbody = pbody[:-2]
        parts.append((ctype, pbody))
    return parts


# -- body classification ----------------------------------------------------------------------------------


def text(b: bytes | str | None) -> str | None:
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
                    _json_secrets(jsonsdp.json_loads(v), out, depth + 1)
                except (json.JSONDecodeError, RecursionError):
                    pass
    elif isinstance(obj, list):
        for v in obj:
            _json_secrets(v, out, depth + 1)


def classify_body(
    report: Report, msg: Message, body: str | None, content_type: str | None, raw: bytes | None = None
) -> None:
    """Set ``msg.body_kind``, ``msg.items`` and JSON-borne auth material from a message body."""
    ct = (content_type or "").split(";")[0].strip().lower()
    if raw is not None and ct.startswith("multipart/"):
        for pct, pbody in multipart_parts(content_type or "", raw):
            sub = Message(**{**msg.__dict__, "items": [], "auth": []})
            classify_body(report, sub, text(pbody), pct, pbody)
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
        s = s[sio.end() :]  # Socket.IO / Engine.IO packet: '42["offer",{...}]', '42/room,["ice",{...}]'
    if s[:1] in "{[" or ct.endswith("json"):
        try:
            obj = jsonsdp.json_loads(s)
        except (json.JSONDecodeError, RecursionError) as e:
            report(
                "signalling",
                "json_invalid",
                f"{msg.transport} JSON message is invalid: {e}",
                msg.frame,
                msg.ts_ns,
            )
            msg.body_kind = "text"
            return
        try:
            msg.items.extend(jsonsdp.find(obj))
        except DecodeError as e:
            report("signalling", e.name, e.detail, msg.frame, msg.ts_ns)
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


def headers(lines: Iterable[str]) -> list[tuple[str, str]]:
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
    return url.split("?", 1)[0] + "?" + "&".join(out) + (
        f"#{parts.fragment}" if parts.fragment else ""
    ), found
