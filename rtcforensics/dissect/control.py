"""Control-plane messages from tshark's field export: HTTP requests and responses, WebSocket messages (with the
upgrade request's URL, User-Agent and Origin), SIP over UDP, TCP, TLS and WebSocket (RFC 7118), and TLS
connections whose content could not be read (one message each). tshark does TCP reassembly, TLS decryption,
HTTP de-chunking and decompression and WebSocket unmasking; the bodies are read by ``http`` and ``sip``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..addr import endpoint
from ..errors import DecodeError
from .dtls import iana_name
from .http import Message, Report, classify_body, header_auth, headers, redact_url, text
from .sip import OfferAnswer, SipPartial, dialog, parse_sip, redact_sip_uri
from .tshark import WS_TEXT_LIMIT, Packet, parse_time


def _whole_text(t: str, whole: list[bytes], report: Report, frame: int, ts: int | None) -> str:
    """``t`` as tshark gave it, or the whole message when tshark cut it at ``WS_TEXT_LIMIT`` bytes."""
    raw = t.encode("utf-8", "surrogateescape")
    if len(raw) < WS_TEXT_LIMIT - 4:  # a cut may end before a multi-byte character
        return t
    head = raw[:4096]
    for i, w in enumerate(whole):
        if w.startswith(head):
            del whole[i]
            return w.decode("utf-8", "replace")
    report(
        "tshark",
        "websocket_text_limit",
        f"WebSocket text message of {len(raw):,}+ bytes cut by tshark at its {WS_TEXT_LIMIT:,}-byte field limit "
        "and not readable whole (compressed or sent unmasked): its signalling is read from the first "
        f"{WS_TEXT_LIMIT:,} bytes only",
        frame,
        ts,
    )
    return t


def proto_chain(p: Any) -> list[str]:
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
    http_client: tuple[str | None, int | None] | None = None  # sender of the first HTTP request seen
    x_forwarded_for: str | None = None  # of the WebSocket upgrade request
    x_forwarded_proto: str | None = None
    auth: list[tuple[str, str]] = field(default_factory=list)


def build_messages(
    pkts: list[Packet],
    sip_raw: dict[int, list[bytes]],
    report: Report,
    openers: Mapping[frozenset[str], tuple[str, str]] | None = None,
    ws_whole: Mapping[int, list[bytes]] | None = None,
) -> list[Message]:
    """Messages from tshark's export of the control plane (``pkts``, fields as in ``tshark.SIGNALLING_FIELDS``)
    and the raw SIP bytes per frame (``sip_raw``, from ``tshark.export_raw(..., "sip")``).

    ``ws_whole``: whole payloads of the WebSocket messages tshark cut at its field limit (from
    ``tshark.export_ws_whole``); a text at the limit is read from them, or reported (``websocket_text_limit``)
    when they do not hold it.

    ``openers``: for TCP connections whose SYN the capture holds, {endpoint pair: (client, server)} (from the
    fast path); other connections take their client from what the messages show (see :func:`assign_ends`)."""
    conns: dict[int, _Conn] = {}
    out: list[Message] = []
    sip_offers = OfferAnswer()

    for p in pkts:
        chain = proto_chain(p)
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
        tail = chain[chain.index("tls") + 1 :] if tls else chain
        decrypted = tls and any(x in tail for x in ("http", "websocket", "sip"))

        where = {
            "frame": frame,
            "ts_ns": ts,
            "ip_proto": "tcp" if is_tcp else "udp",
            "src": src,
            "sport": sport,
            "dst": dst,
            "dport": dport,
            "tcp_stream": stream,
            "tls": tls,
            "decrypted": decrypted,
        }

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

            def ws_message(
                opcode: int = 1, direction: str | None = direction, p: Any = p, conn: _Conn = conn
            ) -> Message:
                """A WebSocket message of this connection (opcode 1 text, 2 binary)."""
                return new(
                    "websocket",
                    direction=direction,
                    url=conn.url,
                    user_agent=conn.user_agent,
                    origin=conn.origin,
                    host=conn.host,
                    ws_opcode=opcode,
                    ws_compressed=bool(p.get("ws_pmc")),
                )

            if "sip" in chain[chain.index("websocket") :]:
                # RFC 7118: the SIP dissector took the payload; read the unmasked SIP bytes instead
                for sip_bytes in sip_raw.get(frame, []):
                    m = ws_message()
                    m.body_len = len(sip_bytes)
                    m.body_kind = "sip"
                    sip_into(report, m, sip_bytes, sip_offers)
                continue
            whole = list(ws_whole.get(frame, [])) if ws_whole else []
            for t in texts:
                t = _whole_text(t, whole, report, frame, ts)
                m = ws_message()
                m.body = t
                m.body_len = len(t.encode("utf-8", "surrogateescape"))
                classify_body(report, m, t, None)
                if m.body_kind == "sip":
                    sip_into(report, m, t.encode("utf-8", "surrogateescape"), sip_offers)
            if not texts and 2 in opcodes:
                data = p.all("data")
                m = ws_message(2)
                m.body_kind = "binary"
                m.body_len = sum(len(d) for d in data if isinstance(d, bytes)) or None
            continue
        if "http" in chain:
            conn.readable = True
            method = p.get("http_method")
            status = p.get("http_status")
            if method is None and status is None:
                continue
            req_lines = headers(p.all("http_request_lines"))
            resp_lines = headers(p.all("http_response_lines"))
            hdrs = req_lines if method is not None else resp_lines
            hd = dict(hdrs)
            body = p.get("http_body")
            raw: bytes | None = (
                body
                if isinstance(body, bytes)
                else (body.encode("utf-8", "surrogateescape") if body else None)
            )
            body_text = text(body)
            url = p.get("http_full_uri") if method is not None else p.get("http_response_for_uri")
            if url is None and method is not None:
                url = p.get("http_uri")
            if tls and url and url.startswith("http://"):
                url = "https://" + url[len("http://") :]
            url, url_auth = redact_url(url)
            m = new(
                "http",
                direction="request" if method is not None else "response",
                method=method,
                status=status if isinstance(status, int) else None,
                url=url,
                host=hd.get("host"),
                content_type=hd.get("content-type"),
                user_agent=hd.get("user-agent"),
                server=hd.get("server"),
                origin=hd.get("origin"),
            )
            m.auth.extend(url_auth)
            m.auth.extend(header_auth(hdrs))
            m.x_forwarded_for, m.x_forwarded_proto = hd.get("x-forwarded-for"), hd.get("x-forwarded-proto")
            if method is not None and conn.http_client is None:
                conn.http_client = (src, sport)
            m.body = body_text
            m.body_len = len(raw) if raw else (0 if method is not None or status else None)
            classify_body(report, m, body_text, m.content_type, raw)
            if method == "GET" and hd.get("upgrade", "").lower() == "websocket":
                conn.client = (src, sport)
                conn.url = url.replace("https://", "wss://").replace("http://", "ws://") if url else None
                conn.user_agent, conn.origin, conn.host = m.user_agent, m.origin, m.host
                conn.ws_deflate = "permessage-deflate" in hd.get("sec-websocket-extensions", "")
                conn.x_forwarded_for, conn.x_forwarded_proto = m.x_forwarded_for, m.x_forwarded_proto
            continue
        if "sip" in chain:
            for sip_bytes in sip_raw.get(frame, []):
                m = new("sip")
                sip_into(report, m, sip_bytes, sip_offers, out)
            continue

    # TLS connections whose content was not readable: one row each
    for stream, c in conns.items():
        if c.tls_client is None or c.readable:
            continue
        out.append(
            Message(
                index=len(out),
                frame=c.tls_frame or 0,
                ts_ns=c.tls_ts,
                transport="tls",
                ip_proto="tcp",
                src=c.tls_client[0],
                sport=c.tls_client[1],
                dst=c.tls_server[0] if c.tls_server else None,
                dport=c.tls_server[1] if c.tls_server else None,
                tcp_stream=stream,
                tls=True,
                decrypted=False,
                host=c.sni,
                body_kind="unknown",
            )
        )
    assign_ends(out, conns, openers or {})
    # TLS facts of the connection on every message it carried
    for m in out:
        cc = conns.get(m.tcp_stream) if m.tcp_stream is not None else None
        if cc is not None and m.tls:
            m.tls_version, m.tls_cipher_suite, m.sni = cc.tls_version, cc.tls_cipher_suite, cc.sni
    out.sort(key=lambda m: (m.frame, m.index))
    for i, m in enumerate(out):
        m.index = i
    return out


def sip_into(
    report: Report, first: Message, raw: bytes, offers: OfferAnswer, out: list[Message] | None = None
) -> None:
    """Fill ``first`` (and further Messages appended to ``out`` for coalesced messages) from SIP text."""
    err: DecodeError | None = None
    try:
        sips = parse_sip(raw)
    except SipPartial as e:
        sips, err = e.done, e
    except DecodeError as e:
        sips, err = [], e
    if err is not None:
        report("signalling", err.name, f"{err.detail} (frame {first.frame})", first.frame, first.ts_ns)
    for i, s in enumerate(sips):
        if i == 0:
            m = first
        else:
            m = Message(
                **{**first.__dict__, "items": [], "auth": [], "index": len(out) if out is not None else 0}
            )
            if out is not None:
                out.append(m)
        m.method, m.status = s.method, s.status
        if first.transport == "sip":
            m.direction = "request" if s.method else "response"
            m.url, url_auth = redact_url(redact_sip_uri(s.uri))
            m.auth.extend(url_auth)
        m.user_agent = s.header("user-agent") or (m.user_agent if first.transport == "websocket" else None)
        m.server = s.header("server")
        m.sip_call_id, m.sip_cseq = s.header("call-id"), s.header("cseq")
        m.sip = dialog(s)
        m.x_forwarded_for = m.sip.x_forwarded_for or m.x_forwarded_for
        m.x_forwarded_proto = m.sip.x_forwarded_proto or m.x_forwarded_proto
        m.auth.extend(header_auth(s.headers, prefix="sip-" if first.transport == "websocket" else ""))
        ct = s.header("content-type")
        if first.transport == "sip":
            m.content_type = ct
            m.body_len = len(s.body)
        sub = Message(**{**m.__dict__, "items": [], "auth": []})
        sub.transport = "sip"
        classify_body(report, sub, text(s.body), ct, s.body)
        leg = frozenset(e for e in (endpoint(m.src, m.sport), endpoint(m.dst, m.dport)) if e)
        role, m.answers_frame = offers.role(s, m.sip, m.frame, any(f.kind == "sdp" for f in sub.items), leg)
        for f in sub.items:
            if f.kind == "sdp" and f.role is None:
                f.role = role
            f.envelope = "sip"
        m.items.extend(sub.items)
        m.auth.extend(sub.auth)
        if first.transport == "sip":
            m.body_kind = sub.body_kind if s.body else "none"


def _ep(where: tuple[str | None, int | None] | None) -> str | None:
    return endpoint(where[0], where[1]) if where is not None else None


def assign_ends(
    out: list[Message], conns: Mapping[int, _Conn], openers: Mapping[frozenset[str], tuple[str, str]]
) -> None:
    """``client_endpoint`` / ``server_endpoint`` of every message. TCP: the side that sent the SYN (``openers``); without it,
    the sender of the TLS ClientHello, of the WebSocket upgrade or of the first HTTP request on the connection.
    SIP over UDP (no connection), and TCP where none of that was seen: the request's sender is the client
    (for a response, its receiver); failing that, the lower port is the listener's."""
    for m in out:
        a, b = endpoint(m.src, m.sport), endpoint(m.dst, m.dport)
        if a is None or b is None:
            continue
        conn = conns.get(m.tcp_stream) if m.tcp_stream is not None else None
        client: str | None = None
        if m.ip_proto == "tcp":
            known = openers.get(frozenset((a, b)))
            if known is not None:
                client = known[0]
            elif conn is not None:
                client = _ep(conn.tls_client) or _ep(conn.client) or _ep(conn.http_client)
            if conn is not None and m.transport == "websocket" and m.x_forwarded_for is None:
                m.x_forwarded_for, m.x_forwarded_proto = conn.x_forwarded_for, conn.x_forwarded_proto
        if client not in (a, b):
            if m.direction in ("request", "client_to_server"):
                client = a
            elif m.direction in ("response", "server_to_client"):
                client = b
            elif (
                m.method is not None or m.status is not None
            ):  # SIP inside WebSocket: no direction of its own
                client = a if m.method is not None else b
            else:
                client = a if (m.sport or 0) >= (m.dport or 0) else b
        m.client_endpoint, m.server_endpoint = client, (b if client == a else a)
