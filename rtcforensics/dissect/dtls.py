"""DTLS: records, handshake reassembly and handshake messages (RFC 6347 DTLS 1.0/1.2, RFC 9147 DTLS 1.3).

Layers, each usable alone:

- :func:`parse_records` splits one datagram into records: ``DTLSPlaintext`` headers (13 bytes; RFC 9146
  ``tls12_cid`` records with their connection ID) and DTLS 1.3 unified headers (RFC 9147 §4: ``001CSLEE``).
- :func:`parse_fragments` splits a handshake record into fragments; :class:`Reassembler` rebuilds messages
  from fragments and drops retransmissions.
- ``parse_client_hello`` / ``parse_server_hello`` / ``parse_hello_verify_request`` /
  ``parse_certificate`` / ``parse_alert`` / :func:`decode_extensions` read message bodies.
- :class:`DtlsTracker` follows every flow and direction through a capture and gathers one
  :class:`Handshake` per handshake (decrypting with a keylog through ``dissect.dtls13`` when given one).

Names (cipher suites, SRTP profiles, groups, ...) come from the IANA tables in ``data/tls_iana.json``.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from ..addr import endpoint as _endpoint
from ..anomalies import AnomalyLog
from ..errors import DecodeError, TruncatedError
from .model import Datagram

if TYPE_CHECKING:  # pragma: no cover
    from .keylog import KeyLog

# ---------------------------------------------------------------------------------------------------------
# IANA names


@lru_cache(maxsize=1)
def _iana() -> dict[str, dict[int, str]]:
    raw = json.loads(resources.files("rtcforensics").joinpath("data/tls_iana.json").read_text())
    return {k: {int(c, 16): n for c, n in v.items()} for k, v in raw.items() if not k.startswith("_")}


def iana_name(table: str, code: int) -> str:
    """IANA name of ``code`` in ``table`` (cipher_suites, extensions, groups, signature_schemes,
    srtp_profiles, alerts, handshake_types, content_types, versions); ``0x....`` when unassigned."""
    name = _iana()[table].get(code)
    if name is not None:
        return name
    if table in ("extensions", "groups", "signature_schemes", "cipher_suites") and is_grease(code):
        return f"GREASE 0x{code:04x}"
    return f"0x{code:04x}"


def is_grease(v: int) -> bool:
    """RFC 8701 GREASE values: 0x?a?a with both bytes equal."""
    return (v & 0x0F0F) == 0x0A0A and (v >> 8) == (v & 0xFF)


class ContentType(IntEnum):
    CHANGE_CIPHER_SPEC = 20
    ALERT = 21
    HANDSHAKE = 22
    APPLICATION_DATA = 23
    HEARTBEAT = 24
    TLS12_CID = 25  # RFC 9146
    ACK = 26  # RFC 9147 §7


class HandshakeType(IntEnum):
    HELLO_REQUEST = 0
    CLIENT_HELLO = 1
    SERVER_HELLO = 2
    HELLO_VERIFY_REQUEST = 3
    NEW_SESSION_TICKET = 4
    END_OF_EARLY_DATA = 5
    ENCRYPTED_EXTENSIONS = 8
    REQUEST_CONNECTION_ID = 9
    NEW_CONNECTION_ID = 10
    CERTIFICATE = 11
    SERVER_KEY_EXCHANGE = 12
    CERTIFICATE_REQUEST = 13
    SERVER_HELLO_DONE = 14
    CERTIFICATE_VERIFY = 15
    CLIENT_KEY_EXCHANGE = 16
    FINISHED = 20
    KEY_UPDATE = 24


class Ext(IntEnum):
    SERVER_NAME = 0
    SUPPORTED_GROUPS = 10
    EC_POINT_FORMATS = 11
    SIGNATURE_ALGORITHMS = 13
    USE_SRTP = 14
    ALPN = 16
    EXTENDED_MASTER_SECRET = 23
    SUPPORTED_VERSIONS = 43
    COOKIE = 44
    KEY_SHARE = 51
    CONNECTION_ID = 54
    RENEGOTIATION_INFO = 0xFF01


DTLS1_0, DTLS1_2, DTLS1_3 = 0xFEFF, 0xFEFD, 0xFEFC
TLS_EMPTY_RENEGOTIATION_INFO_SCSV = 0x00FF
# RFC 8446 §4.1.3: a ServerHello with this random is a HelloRetryRequest (SHA-256 of "HelloRetryRequest").
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")


def endpoint(ip: str, port: int) -> str:
    """``ip:port``, IPv6 in brackets (the project's endpoint notation, :func:`rtcforensics.addr.endpoint`)."""
    return _endpoint(ip, port) or ""


def version_name(v: int | None) -> str | None:
    return None if v is None else iana_name("versions", v)


# ---------------------------------------------------------------------------------------------------------
# bounded reading


class _Reader:
    __slots__ = ("data", "pos", "what")

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n > len(self.data) - self.pos:
            raise TruncatedError("dtls_truncated", f"DTLS {self.what} is truncated")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vec(self, lenbytes: int) -> bytes:
        return self.take(self.uint(lenbytes))

    def u16_list(self, lenbytes: int) -> list[int]:
        raw = self.vec(lenbytes)
        if len(raw) % 2:
            raise DecodeError("dtls_odd_list", f"DTLS {self.what} has an odd-length list of 16-bit values")
        return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]


# ---------------------------------------------------------------------------------------------------------
# records


@dataclass(slots=True)
class Record:
    """One DTLS record. For a DTLS 1.3 unified-header record (``unified``), ``content_type`` is None
    (it travels encrypted), ``epoch`` holds the two low epoch bits and ``seq`` the 8 or 16 low sequence
    bits as sent (encrypted with the record-number key, RFC 9147 §4.2.3)."""

    offset: int
    content_type: int | None
    version: int | None
    epoch: int
    seq: int
    header: bytes
    payload: bytes
    cid: bytes | None = None
    unified: bool = False
    seq_bits: int = 48


def parse_records(data: bytes, cid_len: int | None = None) -> Iterator[Record]:
    """Yield the records of one datagram; raise DecodeError at the first one that cannot be read
    (the records yielded before it stay valid). ``cid_len``: length of the connection ID this sender
    puts in its records, when negotiated (needed for RFC 9146 ``tls12_cid`` and unified headers with C)."""
    pos = 0
    n = len(data)
    while pos < n:
        first = data[pos]
        if first & 0xE0 == 0x20:  # RFC 9147 §4: 0b001CSLEE
            c, s, ln = first & 0x10, first & 0x08, first & 0x04
            hp = pos + 1
            cid = None
            if c:
                if cid_len is None:
                    raise DecodeError(
                        "dtls_cid_unknown", "DTLS 1.3 record carries a connection ID of unknown length"
                    )
                cid = data[hp : hp + cid_len]
                hp += cid_len
            seq_len = 2 if s else 1
            if hp + seq_len + (2 if ln else 0) > n:
                raise TruncatedError("dtls_record_truncated", "DTLS 1.3 unified header is truncated")
            seq = int.from_bytes(data[hp : hp + seq_len], "big")
            hp += seq_len
            if ln:
                length = int.from_bytes(data[hp : hp + 2], "big")
                hp += 2
            else:
                length = n - hp
            if hp + length > n:
                raise TruncatedError("dtls_record_truncated", "DTLS record length exceeds the datagram")
            yield Record(
                pos,
                None,
                None,
                first & 0x03,
                seq,
                data[pos:hp],
                data[hp : hp + length],
                cid,
                True,
                seq_len * 8,
            )
            pos = hp + length
            continue
        if n - pos < 13:
            raise TruncatedError("dtls_record_truncated", "DTLS record header is truncated")
        ctype = first
        if ctype < 20 or ctype > 27:
            raise DecodeError("dtls_bad_content_type", f"DTLS record has unknown content type {ctype}")
        version = int.from_bytes(data[pos + 1 : pos + 3], "big")
        epoch = int.from_bytes(data[pos + 3 : pos + 5], "big")
        seq = int.from_bytes(data[pos + 5 : pos + 11], "big")
        hp = pos + 11
        cid = None
        if ctype == ContentType.TLS12_CID:
            if cid_len is None:
                raise DecodeError(
                    "dtls_cid_unknown", "DTLS tls12_cid record has a connection ID of unknown length"
                )
            cid = data[hp : hp + cid_len]
            hp += cid_len
        if hp + 2 > n:
            raise TruncatedError("dtls_record_truncated", "DTLS record header is truncated")
        length = int.from_bytes(data[hp : hp + 2], "big")
        hp += 2
        if hp + length > n:
            raise TruncatedError("dtls_record_truncated", "DTLS record length exceeds the datagram")
        yield Record(pos, ctype, version, epoch, seq, data[pos:hp], data[hp : hp + length], cid)
        pos = hp + length


# ---------------------------------------------------------------------------------------------------------
# handshake fragments and reassembly


@dataclass(slots=True)
class Fragment:
    msg_type: int
    length: int
    message_seq: int
    frag_offset: int
    frag_length: int
    body: bytes


def parse_fragments(payload: bytes) -> list[Fragment]:
    """Handshake fragments of one handshake record (RFC 6347 §4.2.2: 12-byte header each)."""
    out = []
    r = _Reader(payload, "handshake fragment")
    while r.remaining():
        if r.remaining() < 12:
            raise TruncatedError("dtls_fragment_truncated", "DTLS handshake fragment header is truncated")
        msg_type, length, seq, off, flen = r.uint(1), r.uint(3), r.uint(2), r.uint(3), r.uint(3)
        if off + flen > length:
            raise DecodeError("dtls_fragment_overrun", "DTLS handshake fragment exceeds message length")
        if flen > r.remaining():
            raise TruncatedError("dtls_fragment_truncated", "DTLS handshake fragment is truncated")
        out.append(Fragment(msg_type, length, seq, off, flen, r.take(flen)))
    return out


@dataclass
class _Partial:
    """One handshake message being rebuilt. Memory follows the bytes that arrived (a declared length alone
    allocates nothing) and coverage is kept as merged spans found by bisection, so a message sent as
    thousands of tiny fragments costs time linear in its fragments, not quadratic."""

    msg_type: int
    length: int
    pieces: list[tuple[int, bytes]] = field(default_factory=list)  # (offset, bytes) in arrival order
    starts: list[int] = field(default_factory=list)  # merged, sorted, disjoint spans [start, end)
    ends: list[int] = field(default_factory=list)
    covered: int = 0
    buf: bytes = b""  # the whole message, once done
    done: bool = False

    def add(self, off: int, data: bytes) -> None:
        if data:
            self.pieces.append((off, data))
            self._cover(off, off + len(data))
        if self.length == 0 or self.covered >= self.length:
            body = bytearray(self.length)
            for o, d in self.pieces:  # later bytes win, as on a buffer written in arrival order
                body[o : o + len(d)] = d
            self.buf, self.pieces, self.done = bytes(body), [], True

    def _cover(self, s: int, e: int) -> None:
        starts, ends = self.starts, self.ends
        i = bisect.bisect_left(ends, s)  # first span that ends at or after s: it may touch [s, e)
        j = bisect.bisect_right(starts, e)  # spans before j start at or before e
        if i < j:
            s, e = min(s, starts[i]), max(e, ends[j - 1])
            self.covered -= sum(ends[k] - starts[k] for k in range(i, j))
        starts[i:j] = [s]
        ends[i:j] = [e]
        self.covered += e - s


MAX_MESSAGE = 1 << 20  # no real handshake message comes near; a hostile length must not allocate 16 MiB


class Reassembler:
    """Rebuilds handshake messages of one sender (one direction of one flow) from fragments.

    A fragment that repeats bytes of a message already complete is a retransmission and is counted,
    not returned again; a fragment of a completed ``message_seq`` with different bytes starts that
    message anew (a new handshake on the same 5-tuple)."""

    def __init__(self) -> None:
        self._msgs: dict[int, _Partial] = {}
        self.retransmissions = 0

    def add(self, frag: Fragment) -> tuple[int, int, bytes] | None:
        """Return ``(msg_type, message_seq, body)`` when this fragment completes a message."""
        p = self._msgs.get(frag.message_seq)
        if p is not None and p.done:
            same = (
                p.msg_type == frag.msg_type
                and p.length == frag.length
                and bytes(p.buf[frag.frag_offset : frag.frag_offset + frag.frag_length]) == frag.body
            )
            if same:
                self.retransmissions += 1
                return None
            p = None
        if p is not None and (p.msg_type != frag.msg_type or p.length != frag.length):
            raise DecodeError(
                "dtls_fragment_mismatch", "DTLS handshake fragments of one message disagree on type or length"
            )
        if p is None:
            if frag.length > MAX_MESSAGE:
                raise DecodeError(
                    "dtls_message_too_long",
                    f"DTLS handshake message declares {frag.length} bytes (limit {MAX_MESSAGE})",
                )
            p = _Partial(frag.msg_type, frag.length)
            self._msgs[frag.message_seq] = p
        p.add(frag.frag_offset, frag.body)
        if p.done:
            return p.msg_type, frag.message_seq, bytes(p.buf)
        return None

    def incomplete(self) -> list[tuple[int, int]]:
        """``(message_seq, msg_type)`` of messages still missing bytes."""
        return [(s, p.msg_type) for s, p in self._msgs.items() if not p.done]


# ---------------------------------------------------------------------------------------------------------
# extensions


@dataclass
class ExtFacts:
    """What the extensions of one hello (or EncryptedExtensions) say. Lists keep wire order and GREASE."""

    types: list[int] = field(default_factory=list)
    supported_versions: list[int] | None = None  # ClientHello list, or [selected] from ServerHello
    supported_groups: list[int] | None = None
    key_share_groups: list[int] | None = None  # ClientHello shares, or [chosen] (ServerHello / HRR)
    signature_algorithms: list[int] | None = None
    ec_point_formats: list[int] | None = None
    alpn: list[str] | None = None
    sni: str | None = None
    srtp_profiles: list[int] | None = None
    srtp_mki: bytes | None = None
    ems: bool = False
    renegotiation_info: bytes | None = None
    connection_id: bytes | None = None
    cookie: bytes | None = None


def decode_extensions(raw: bytes, context: str) -> ExtFacts:
    """Read an extensions block. ``context``: client_hello, server_hello, hello_retry_request or
    encrypted_extensions (some extensions differ in shape between a client's offer and a server's choice)."""
    facts = ExtFacts()
    r = _Reader(raw, "extensions block")
    client = context == "client_hello"
    while r.remaining():
        etype = r.uint(2)
        data = r.vec(2)
        facts.types.append(etype)
        name = iana_name("extensions", etype)
        e = _Reader(data, f"{name} extension")
        if etype == Ext.SUPPORTED_VERSIONS:
            facts.supported_versions = e.u16_list(1) if client else [e.uint(2)]
        elif etype == Ext.SUPPORTED_GROUPS:
            facts.supported_groups = e.u16_list(2)
        elif etype == Ext.KEY_SHARE:
            if client:
                shares = _Reader(e.vec(2), "key_share client_shares")
                groups = []
                while shares.remaining():
                    groups.append(shares.uint(2))
                    shares.vec(2)
                facts.key_share_groups = groups
            else:  # ServerHello: KeyShareEntry; HelloRetryRequest: selected_group only
                facts.key_share_groups = [e.uint(2)]
        elif etype == Ext.SIGNATURE_ALGORITHMS:
            facts.signature_algorithms = e.u16_list(2)
        elif etype == Ext.EC_POINT_FORMATS:
            facts.ec_point_formats = list(e.vec(1))
        elif etype == Ext.ALPN:
            lst = _Reader(e.vec(2), "ALPN protocol list")
            protos = []
            while lst.remaining():
                protos.append(lst.vec(1).decode("latin-1"))
            facts.alpn = protos
        elif etype == Ext.SERVER_NAME and data:
            lst = _Reader(e.vec(2), "server_name list")
            while lst.remaining():
                kind, host = lst.uint(1), lst.vec(2)
                if kind == 0 and facts.sni is None:
                    facts.sni = host.decode("latin-1")
        elif etype == Ext.USE_SRTP:  # RFC 5764 §4.1.1
            facts.srtp_profiles = e.u16_list(2)
            facts.srtp_mki = e.vec(1)
        elif etype == Ext.EXTENDED_MASTER_SECRET:
            facts.ems = True
        elif etype == Ext.RENEGOTIATION_INFO:
            facts.renegotiation_info = e.vec(1)
        elif etype == Ext.CONNECTION_ID:  # RFC 9146 §3
            facts.connection_id = e.vec(1)
        elif etype == Ext.COOKIE:
            facts.cookie = e.vec(2)
    return facts


# ---------------------------------------------------------------------------------------------------------
# messages


@dataclass
class ClientHello:
    version: int
    random: bytes
    session_id: bytes
    cookie: bytes
    cipher_suites: list[int]
    compression: list[int]
    ext: ExtFacts
    raw_extensions: bool  # the extensions block was present


@dataclass
class ServerHello:
    version: int
    random: bytes
    session_id: bytes
    cipher_suite: int
    compression: int
    ext: ExtFacts

    @property
    def is_hello_retry_request(self) -> bool:
        return self.random == HRR_RANDOM

    @property
    def selected_version(self) -> int:
        sv = self.ext.supported_versions
        return sv[0] if sv else self.version


def parse_client_hello(body: bytes) -> ClientHello:
    """DTLS ClientHello (RFC 6347 §4.2.1: TLS's with a cookie after the session id)."""
    r = _Reader(body, "ClientHello")
    version = r.uint(2)
    random = r.take(32)
    session_id = r.vec(1)
    cookie = r.vec(1)
    suites = r.u16_list(2)
    compression = list(r.vec(1))
    has_ext = r.remaining() > 0
    ext = decode_extensions(r.vec(2), "client_hello") if has_ext else ExtFacts()
    return ClientHello(version, random, session_id, cookie, suites, compression, ext, has_ext)


def parse_server_hello(body: bytes) -> ServerHello:
    r = _Reader(body, "ServerHello")
    version = r.uint(2)
    random = r.take(32)
    session_id = r.vec(1)
    suite = r.uint(2)
    compression = r.uint(1)
    context = "hello_retry_request" if random == HRR_RANDOM else "server_hello"
    ext = decode_extensions(r.vec(2), context) if r.remaining() else ExtFacts()
    return ServerHello(version, random, session_id, suite, compression, ext)


def parse_hello_verify_request(body: bytes) -> tuple[int, bytes]:
    """(server_version, cookie) of a HelloVerifyRequest (RFC 6347 §4.2.1)."""
    r = _Reader(body, "HelloVerifyRequest")
    return r.uint(2), r.vec(1)


def parse_certificate(body: bytes, tls13: bool) -> list[bytes]:
    """DER certificates of a Certificate message, leaf first (TLS 1.2 list, or TLS 1.3 entries)."""
    r = _Reader(body, "Certificate")
    if tls13:
        r.vec(1)  # certificate_request_context
    lst = _Reader(r.vec(3), "certificate_list")
    certs = []
    while lst.remaining():
        certs.append(lst.vec(3))
        if tls13:
            lst.vec(2)  # per-certificate extensions
    return certs


def parse_encrypted_extensions(body: bytes) -> ExtFacts:
    return decode_extensions(_Reader(body, "EncryptedExtensions").vec(2), "encrypted_extensions")


def parse_server_key_exchange_group(body: bytes) -> int | None:
    """Named group of an ECDHE ServerKeyExchange (RFC 8422 §5.4: curve_type 3 = named_curve)."""
    if len(body) >= 3 and body[0] == 3:
        return int.from_bytes(body[1:3], "big")
    return None


def parse_alert(payload: bytes) -> tuple[int, int]:
    if len(payload) < 2:
        raise TruncatedError("dtls_alert_truncated", "DTLS alert is truncated")
    return payload[0], payload[1]


# ---------------------------------------------------------------------------------------------------------
# following handshakes through a capture


@dataclass
class Handshake:
    """Everything observed about one DTLS handshake (one row of the `dtls` frame)."""

    flow_id: int
    client: str | None = None  # ip:port that sent the ClientHello
    server: str | None = None
    via_turn: str | None = None
    turn_peer: str | None = None
    frames: list[int] = field(default_factory=list)
    ts_first_ns: int | None = None
    ts_last_ns: int | None = None
    client_hello: ClientHello | None = None
    client_hellos: int = 0  # ClientHellos sent (distinct, i.e. excluding retransmissions)
    hello_verify_cookie: bytes | None = None
    hello_retry: ServerHello | None = None
    server_hello: ServerHello | None = None
    encrypted_extensions: ExtFacts | None = None
    certs: dict[str, list[bytes]] = field(default_factory=dict)  # "client"/"server" -> DER chain
    sources: dict[str, str] = field(default_factory=dict)  # fact -> "clear" | "decrypted"
    kx_group: int | None = None  # ECDHE group from ServerKeyExchange (DTLS <= 1.2)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    ccs: set[str] = field(default_factory=set)  # sides that sent ChangeCipherSpec
    messages: list[tuple[int, str, str, str]] = field(default_factory=list)  # (frame, side, message, source)
    encrypted_records: dict[str, int] = field(default_factory=dict)  # side -> count of encrypted records
    epochs_seen: dict[str, set[int]] = field(default_factory=dict)  # side -> epochs (or 1.3 epoch bits)
    finished: set[str] = field(default_factory=set)  # sides whose Finished was seen (clear or decrypted)
    retransmissions: int = 0
    decryption: str = "none"  # none | decrypted | undecryptable
    decryption_detail: str | None = None
    decrypt_errors: dict[str, int] = field(default_factory=dict)
    early_records: list[tuple[Datagram, str, Record]] = field(default_factory=list)
    decryptor: Any = None  # dtls13.Dtls13Decryptor / Dtls12Decryptor when keys are known
    app_data: list[tuple[int, int, str, bytes]] = field(
        default_factory=list
    )  # (frame, ts_ns, side, plaintext)
    peers: list[str] = field(default_factory=list)  # the two ip:ports, first record's sender first
    record_version: int | None = None  # version field of the last DTLSPlaintext record with epoch > 0
    app_records: dict[str, int] = field(default_factory=dict)  # side -> epoch > 0 application_data records

    @property
    def version(self) -> int | None:
        """The version the handshake negotiated (ServerHello / HelloRetryRequest); None when not seen."""
        if self.server_hello is not None:
            return self.server_hello.selected_version
        if self.hello_retry is not None:
            return self.hello_retry.selected_version
        return None

    @property
    def handshake_seen(self) -> bool:
        """Some handshake message of this session is in the capture (False: it starts mid-session and only
        protected records are seen; version and endpoints then come from the record headers)."""
        return (
            self.client_hellos > 0
            or self.server_hello is not None
            or self.hello_retry is not None
            or self.hello_verify_cookie is not None
            or any(m not in _NOT_HANDSHAKE for (_, _, m, _) in self.messages)
        )

    @property
    def is_dtls13(self) -> bool:
        return self.version == DTLS1_3

    def side_of(self, sender: str) -> str:
        if self.client is not None:
            return "client" if sender == self.client else "server"
        if self.server is not None:
            return "server" if sender == self.server else "client"
        return "unknown"


_NOT_HANDSHAKE = frozenset({"change_cipher_spec", "ack", "encrypted_handshake"})


@dataclass
class _FlowState:
    handshakes: list[Handshake] = field(default_factory=list)
    reassemblers: dict[tuple[str, int], Reassembler] = field(default_factory=dict)
    cid_len: dict[str, int] = field(default_factory=dict)  # sender -> length of the CID it puts in records


class DtlsTracker:
    """Follow DTLS through datagrams in capture order; :attr:`handshakes` holds one entry per handshake.

    Malformed units become rows in ``anomalies`` (layer ``dtls``); whatever was read before stays."""

    def __init__(
        self, anomalies: AnomalyLog | None = None, keylog: KeyLog | None = None, strict: bool = False
    ) -> None:
        self.anomalies = anomalies if anomalies is not None else AnomalyLog()
        self.keylog = keylog
        self.strict = strict
        self.flows: dict[int, _FlowState] = {}
        self.handshakes: list[Handshake] = []
        self.unattached_records = 0

    # -- input ---------------------------------------------------------------------------------
    def feed_all(self, datagrams: Iterable[Datagram]) -> DtlsTracker:
        for dg in datagrams:
            self.feed(dg)
        self.finish()
        return self

    def _anomaly(self, err: DecodeError, dg: Datagram) -> None:
        if self.strict:
            raise err
        self.anomalies.add("dtls", err.name, err.detail, frame=dg.frame, ts_ns=dg.ts_ns, flow_id=dg.flow_id)

    def feed(self, dg: Datagram) -> None:
        fs = self.flows.setdefault(dg.flow_id, _FlowState())
        sender = endpoint(dg.src, dg.sport)
        try:
            for rec in parse_records(dg.data, fs.cid_len.get(sender)):
                try:
                    self._record(fs, dg, sender, rec)
                except DecodeError as e:
                    self._anomaly(e, dg)
        except DecodeError as e:
            self._anomaly(e, dg)

    def _decrypt_error(self, hs: Handshake, err: DecodeError, dg: Datagram) -> None:
        """One anomaly per handshake and error kind: a wrong key fails every record alike."""
        if self.strict:
            raise err
        if err.name not in hs.decrypt_errors:
            self._anomaly(err, dg)
        hs.decrypt_errors[err.name] = hs.decrypt_errors.get(err.name, 0) + 1

    def finish(self) -> None:
        """Record what stayed incomplete and settle each handshake's decryption status (call once, at the end)."""
        for hs in self.handshakes:
            d = hs.decryptor
            if d is not None and d.ok == 0 and d.failed > 0:
                hs.decryption = "undecryptable"
                hs.decryption_detail = (
                    f"no record could be decrypted with the keylog's secrets "
                    f"({d.failed} failed: wrong or mismatched keylog lines?)"
                )
            elif d is not None and hs.decrypt_errors:
                hs.decryption_detail = "some records failed: " + ", ".join(
                    f"{k} x{v}" for k, v in sorted(hs.decrypt_errors.items())
                )
        for flow_id, fs in self.flows.items():
            for (sender, _epoch), ra in fs.reassemblers.items():
                for seq, mtype in ra.incomplete():
                    self.anomalies.add(
                        "dtls",
                        "dtls_handshake_incomplete",
                        f"DTLS {iana_name('handshake_types', mtype)} (message_seq {seq}) from "
                        f"{sender} never completed: fragments missing",
                        flow_id=flow_id,
                    )

    # -- per record ----------------------------------------------------------------------------
    def _new_handshake(self, fs: _FlowState, dg: Datagram) -> Handshake:
        hs = Handshake(flow_id=dg.flow_id, via_turn=dg.via_turn, turn_peer=dg.turn_peer)
        fs.handshakes.append(hs)
        self.handshakes.append(hs)
        fs.reassemblers.clear()
        return hs

    @staticmethod
    def _touch(hs: Handshake, dg: Datagram) -> None:
        if not hs.frames or hs.frames[-1] != dg.frame:
            hs.frames.append(dg.frame)
            if len(hs.peers) < 2:
                for ep in (endpoint(dg.src, dg.sport), endpoint(dg.dst, dg.dport)):
                    if ep not in hs.peers:
                        hs.peers.append(ep)
        if hs.ts_first_ns is None:
            hs.ts_first_ns = dg.ts_ns
        hs.ts_last_ns = dg.ts_ns

    def _record(self, fs: _FlowState, dg: Datagram, sender: str, rec: Record) -> None:
        if rec.unified:
            hs = fs.handshakes[-1] if fs.handshakes else None
            if hs is None:
                self.unattached_records += 1
                return
            self._touch(hs, dg)
            self._encrypted13(fs, hs, dg, sender, rec)
            return
        ctype = rec.content_type
        if ctype == ContentType.HANDSHAKE and rec.epoch == 0:
            for frag in parse_fragments(rec.payload):
                if frag.msg_type == HandshakeType.CLIENT_HELLO and frag.frag_offset == 0:
                    self._maybe_new_client_hello(fs, dg, sender, frag)
                hs = fs.handshakes[-1] if fs.handshakes else self._new_handshake(fs, dg)
                self._touch(hs, dg)
                ra = fs.reassemblers.setdefault((sender, 0), Reassembler())
                before = ra.retransmissions
                done = ra.add(frag)
                hs.retransmissions += ra.retransmissions - before
                if done is not None:
                    self._message(fs, hs, dg, sender, done[0], done[2], "clear")
            return
        hs = fs.handshakes[-1] if fs.handshakes else self._new_handshake(fs, dg)
        self._touch(hs, dg)
        side = hs.side_of(sender)
        hs.epochs_seen.setdefault(side, set()).add(rec.epoch)
        if ctype == ContentType.CHANGE_CIPHER_SPEC:
            hs.ccs.add(side)
            hs.messages.append((dg.frame, side, "change_cipher_spec", "clear"))
            return
        if ctype == ContentType.ALERT and rec.epoch == 0:
            level, desc = parse_alert(rec.payload)
            self._alert(hs, dg, side, level, desc, "clear")
            return
        if ctype == ContentType.ACK and rec.epoch == 0:  # RFC 9147 §7: ACKs of the first flight go in clear
            hs.messages.append((dg.frame, side, "ack", "clear"))
            return
        # epoch > 0 (DTLS <= 1.2): encrypted handshake (Finished), alert or application data
        hs.encrypted_records[side] = hs.encrypted_records.get(side, 0) + 1
        if rec.epoch > 0:
            hs.record_version = rec.version
        if ctype == ContentType.APPLICATION_DATA:
            hs.app_records[side] = hs.app_records.get(side, 0) + 1
        if hs.decryptor is not None and not hs.is_dtls13:
            try:
                plain = hs.decryptor.decrypt_record(rec, side)
            except DecodeError as e:
                self._decrypt_error(hs, e, dg)
                plain = None
            if plain is not None:
                self._decrypted(fs, hs, dg, sender, side, ctype or 0, rec.epoch, plain)
                return
        if ctype == ContentType.HANDSHAKE:
            hs.finished.add(side)  # the first encrypted handshake message after CCS is Finished
            hs.messages.append((dg.frame, side, "encrypted_handshake", "encrypted"))
        elif ctype == ContentType.ALERT:
            hs.alerts.append(
                {"frame": dg.frame, "side": side, "level": None, "description": None, "encrypted": True}
            )

    def _maybe_new_client_hello(self, fs: _FlowState, dg: Datagram, sender: str, frag: Fragment) -> None:
        """Start a new handshake when a ClientHello carries a client random other than the current one's."""
        hs = fs.handshakes[-1] if fs.handshakes else None
        random = frag.body[2:34] if len(frag.body) >= 34 else None
        if hs is None:
            self._new_handshake(fs, dg)
            return
        if hs.client_hello is not None and random is not None and random != hs.client_hello.random:
            self._new_handshake(fs, dg)

    def _alert(self, hs: Handshake, dg: Datagram, side: str, level: int, desc: int, source: str) -> None:
        hs.alerts.append(
            {
                "frame": dg.frame,
                "side": side,
                "level": "fatal" if level == 2 else ("warning" if level == 1 else str(level)),
                "description": iana_name("alerts", desc),
                "encrypted": False,
                "source": source,
            }
        )

    def _encrypted13(self, fs: _FlowState, hs: Handshake, dg: Datagram, sender: str, rec: Record) -> None:
        side = hs.side_of(sender)
        hs.encrypted_records[side] = hs.encrypted_records.get(side, 0) + 1
        hs.epochs_seen.setdefault(side, set()).add(rec.epoch)
        if hs.decryptor is None:
            if self.keylog is not None and hs.server_hello is None and len(hs.early_records) < 64:
                hs.early_records.append((dg, sender, rec))  # arrived before the ServerHello: keep for later
            return
        self._decrypt13(fs, hs, dg, sender, side, rec)

    def _decrypt13(
        self, fs: _FlowState, hs: Handshake, dg: Datagram, sender: str, side: str, rec: Record
    ) -> None:
        try:
            ctype, epoch, plain = hs.decryptor.decrypt_unified(rec, side)
        except DecodeError as e:
            self._decrypt_error(hs, e, dg)
            return
        self._decrypted(fs, hs, dg, sender, side, ctype, epoch, plain)

    def _decrypted(
        self,
        fs: _FlowState,
        hs: Handshake,
        dg: Datagram,
        sender: str,
        side: str,
        ctype: int,
        epoch: int,
        plain: bytes,
    ) -> None:
        if ctype == ContentType.HANDSHAKE:
            ra = fs.reassemblers.setdefault((sender, epoch), Reassembler())
            for frag in parse_fragments(plain):
                before = ra.retransmissions
                done = ra.add(frag)
                hs.retransmissions += ra.retransmissions - before
                if done is not None:
                    self._message(fs, hs, dg, sender, done[0], done[2], "decrypted")
        elif ctype == ContentType.ALERT:
            level, desc = parse_alert(plain)
            self._alert(hs, dg, side, level, desc, "decrypted")
        elif ctype == ContentType.APPLICATION_DATA:
            hs.app_data.append((dg.frame, dg.ts_ns, side, plain))
        elif ctype == ContentType.ACK:
            hs.messages.append((dg.frame, side, "ack", "decrypted"))

    # -- per handshake message -----------------------------------------------------------------
    def _message(
        self, fs: _FlowState, hs: Handshake, dg: Datagram, sender: str, mtype: int, body: bytes, source: str
    ) -> None:
        receiver = endpoint(dg.dst, dg.dport)
        if mtype == HandshakeType.CLIENT_HELLO:
            ch = parse_client_hello(body)
            hs.client_hellos += 1
            if hs.client_hello is None or ch.cookie or ch.random != hs.client_hello.random:
                hs.client_hello = ch
            if hs.client is None or hs.client_hellos == 1:
                hs.client, hs.server = sender, receiver
            if ch.ext.connection_id is not None:  # the CID the client wants to receive: server sends it
                fs.cid_len[receiver] = len(ch.ext.connection_id)
        elif mtype == HandshakeType.HELLO_VERIFY_REQUEST:
            _, cookie = parse_hello_verify_request(body)
            hs.hello_verify_cookie = cookie
            hs.server, hs.client = hs.server or sender, hs.client or receiver
        elif mtype == HandshakeType.SERVER_HELLO:
            sh = parse_server_hello(body)
            if hs.client is None:
                hs.client, hs.server = receiver, sender
            if sh.is_hello_retry_request:
                hs.hello_retry = sh
            else:
                hs.server_hello = sh
                hs.sources.setdefault("server_hello", source)
                if sh.ext.connection_id is not None:  # the CID the server wants to receive
                    fs.cid_len[receiver] = len(sh.ext.connection_id)
                self._start_decryption(fs, hs)
        elif mtype == HandshakeType.ENCRYPTED_EXTENSIONS:
            hs.encrypted_extensions = parse_encrypted_extensions(body)
            hs.sources["encrypted_extensions"] = source
        elif mtype == HandshakeType.CERTIFICATE:
            side = hs.side_of(sender)
            hs.certs[side] = parse_certificate(body, tls13=hs.is_dtls13)
            hs.sources[f"{side}_cert"] = source
        elif mtype == HandshakeType.SERVER_KEY_EXCHANGE:
            if hs.server_hello is not None and "ECDHE" in iana_name(
                "cipher_suites", hs.server_hello.cipher_suite
            ):
                hs.kx_group = parse_server_key_exchange_group(body)
        elif mtype == HandshakeType.FINISHED:
            hs.finished.add(hs.side_of(sender))
        hs.messages.append((dg.frame, hs.side_of(sender), iana_name("handshake_types", mtype), source))

    def _start_decryption(self, fs: _FlowState, hs: Handshake) -> None:
        if self.keylog is None or hs.client_hello is None or hs.server_hello is None:
            return
        from .dtls13 import make_decryptor

        try:
            hs.decryptor = make_decryptor(self.keylog, hs.client_hello, hs.server_hello)
        except DecodeError as e:
            hs.decryption, hs.decryption_detail = "undecryptable", e.detail
            return
        if hs.decryptor is not None:
            hs.decryption = "decrypted"
            early, hs.early_records = hs.early_records, []
            if hs.is_dtls13:
                for dg, sender, rec in early:
                    try:
                        self._decrypt13(fs, hs, dg, sender, hs.side_of(sender), rec)
                    except DecodeError as e:
                        self._anomaly(e, dg)


def handshakes_from_datagrams(
    datagrams: Iterable[Datagram],
    anomalies: AnomalyLog | None = None,
    keylog: KeyLog | None = None,
    strict: bool = False,
) -> list[Handshake]:
    return DtlsTracker(anomalies, keylog, strict).feed_all(datagrams).handshakes
