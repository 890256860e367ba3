"""STUN / TURN / ICE messages (RFC 8489, 5389, 3489 classic; TURN RFC 8656, 6062, 6156; ICE RFC 8445;
RFC 5780, 7635; Google and Microsoft (MS-TURN, MS-ICE2) attributes where their codes are known).

One table, :data:`ATTRIBUTES`, maps each attribute code to its IANA name and its value decoder; it drives
both :meth:`StunMessage.parse` and :meth:`StunMessage.format`. Every attribute on the wire is kept, in
order, including unknown ones (their raw value is kept and comprehension-required unknowns are flagged).

Errors are :class:`~rtcforensics.errors.DecodeError` with a stable anomaly name, e.g.
``DecodeError("stun_attr_length", "STUN XOR-MAPPED-ADDRESS has invalid length for IPv4")``.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import ipaddress
import socket
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..errors import DecodeError, TruncatedError

MAGIC_COOKIE = 0x2112A442
HEADER_LENGTH = 20
FINGERPRINT_XOR = 0x5354554E  # RFC 8489 §14.7: CRC-32 XOR "STUN"


class StunClass(enum.IntEnum):
    """The 2-bit message class C1C0 (RFC 8489 §5)."""

    REQUEST = 0b00
    INDICATION = 0b01
    SUCCESS = 0b10
    ERROR = 0b11

    @property
    def label(self) -> str:
        return _CLASS_LABELS[self]


_CLASS_LABELS = {
    StunClass.REQUEST: "request",
    StunClass.INDICATION: "indication",
    StunClass.SUCCESS: "success",
    StunClass.ERROR: "error",
}


class StunMethod(enum.IntEnum):
    """Methods, values are the 12-bit wire codes (IANA "STUN Methods")."""

    BINDING = 0x001
    SHARED_SECRET = 0x002  # RFC 3489, reserved since RFC 5389
    ALLOCATE = 0x003  # RFC 8656
    REFRESH = 0x004
    SEND = 0x006
    DATA = 0x007
    CREATE_PERMISSION = 0x008
    CHANNEL_BIND = 0x009
    CONNECT = 0x00A  # RFC 6062
    CONNECTION_BIND = 0x00B
    CONNECTION_ATTEMPT = 0x00C
    GOOG_PING = 0x080  # Google, IANA registered


METHOD_NAMES: dict[int, str] = {
    StunMethod.BINDING: "Binding",
    StunMethod.SHARED_SECRET: "SharedSecret",
    StunMethod.ALLOCATE: "Allocate",
    StunMethod.REFRESH: "Refresh",
    StunMethod.SEND: "Send",
    StunMethod.DATA: "Data",
    StunMethod.CREATE_PERMISSION: "CreatePermission",
    StunMethod.CHANNEL_BIND: "ChannelBind",
    StunMethod.CONNECT: "Connect",
    StunMethod.CONNECTION_BIND: "ConnectionBind",
    StunMethod.CONNECTION_ATTEMPT: "ConnectionAttempt",
    StunMethod.GOOG_PING: "GOOG-PING",
}

#: TURN methods (RFC 8656, 6062): messages to a relay, where usernames may be TURN REST credentials.
TURN_METHODS = frozenset(
    {
        StunMethod.ALLOCATE,
        StunMethod.REFRESH,
        StunMethod.SEND,
        StunMethod.DATA,
        StunMethod.CREATE_PERMISSION,
        StunMethod.CHANNEL_BIND,
        StunMethod.CONNECT,
        StunMethod.CONNECTION_BIND,
        StunMethod.CONNECTION_ATTEMPT,
    }
)


def method_name(method: int) -> str:
    """IANA name of a method code, ``"0x0nn"`` when unknown."""
    return METHOD_NAMES.get(method, f"0x{method:03x}")


class AttrType(enum.IntEnum):
    """Attribute types, values are the wire codes (IANA "STUN Attributes")."""

    MAPPED_ADDRESS = 0x0001
    RESPONSE_ADDRESS = 0x0002  # RFC 3489
    CHANGE_REQUEST = 0x0003  # RFC 5780
    SOURCE_ADDRESS = 0x0004  # RFC 3489
    CHANGED_ADDRESS = 0x0005  # RFC 3489
    USERNAME = 0x0006
    PASSWORD = 0x0007  # RFC 3489 (a secret: never stored)
    MESSAGE_INTEGRITY = 0x0008
    ERROR_CODE = 0x0009
    UNKNOWN_ATTRIBUTES = 0x000A
    REFLECTED_FROM = 0x000B  # RFC 3489
    CHANNEL_NUMBER = 0x000C  # RFC 8656
    LIFETIME = 0x000D
    MAGIC_COOKIE = 0x000F  # MS-TURN
    BANDWIDTH = 0x0010  # MS-TURN, TURN drafts
    DESTINATION_ADDRESS = 0x0011  # MS-TURN
    XOR_PEER_ADDRESS = 0x0012
    DATA = 0x0013
    REALM = 0x0014
    NONCE = 0x0015
    XOR_RELAYED_ADDRESS = 0x0016
    REQUESTED_ADDRESS_FAMILY = 0x0017  # RFC 8656 / 6156
    EVEN_PORT = 0x0018
    REQUESTED_TRANSPORT = 0x0019
    DONT_FRAGMENT = 0x001A
    ACCESS_TOKEN = 0x001B  # RFC 7635
    MESSAGE_INTEGRITY_SHA256 = 0x001C  # RFC 8489
    PASSWORD_ALGORITHM = 0x001D
    USERHASH = 0x001E
    XOR_MAPPED_ADDRESS = 0x0020
    RESERVATION_TOKEN = 0x0022
    PRIORITY = 0x0024  # RFC 8445
    USE_CANDIDATE = 0x0025
    PADDING = 0x0026  # RFC 5780
    RESPONSE_PORT = 0x0027
    CONNECTION_ID = 0x002A  # RFC 6062
    ADDITIONAL_ADDRESS_FAMILY = 0x8000  # RFC 8656
    ADDRESS_ERROR_CODE = 0x8001
    PASSWORD_ALGORITHMS = 0x8002  # RFC 8489
    ALTERNATE_DOMAIN = 0x8003
    ICMP = 0x8004  # RFC 8656
    MS_VERSION = 0x8008  # MS-TURN
    MS_XOR_MAPPED_ADDRESS = 0x8020  # MS-TURN (pre-RFC 5389 code of XOR-MAPPED-ADDRESS)
    SOFTWARE = 0x8022
    ALTERNATE_SERVER = 0x8023
    TRANSACTION_TRANSMIT_COUNTER = 0x8025  # RFC 7982
    CACHE_TIMEOUT = 0x8027  # RFC 5780
    FINGERPRINT = 0x8028
    ICE_CONTROLLED = 0x8029  # RFC 8445
    ICE_CONTROLLING = 0x802A
    RESPONSE_ORIGIN = 0x802B  # RFC 5780
    OTHER_ADDRESS = 0x802C
    ECN_CHECK_STUN = 0x802D  # RFC 6679
    THIRD_PARTY_AUTHORIZATION = 0x802E  # RFC 7635
    MOBILITY_TICKET = 0x8030  # RFC 8016
    MS_SEQUENCE_NUMBER = 0x8050  # MS-TURN
    MS_CANDIDATE_IDENTIFIER = 0x8054  # MS-ICE2
    MS_SERVICE_QUALITY = 0x8055  # MS-TURN
    MS_IMPLEMENTATION_VERSION = 0x8070  # MS-ICE2
    MS_ALTERNATE_MAPPED_ADDRESS = 0x8090  # MS-TURN
    GOOG_NETWORK_INFO = 0xC057  # Google (IANA)
    GOOG_LAST_ICE_CHECK_RECEIVED = 0xC058
    GOOG_MISC_INFO = 0xC059
    GOOG_OBSOLETE_1 = 0xC05A
    GOOG_CONNECTION_ID = 0xC05B
    GOOG_DELTA = 0xC05C
    GOOG_DELTA_ACK = 0xC05D
    GOOG_DELTA_SYNC_REQ = 0xC05E
    GOOG_MESSAGE_INTEGRITY_32 = 0xC060
    META_DTLS_IN_STUN = 0xC070  # Chromium experiment: DTLS handshake piggybacked on STUN
    META_DTLS_IN_STUN_ACK = 0xC071


def comprehension_required(code: int) -> bool:
    """RFC 8489 §14: 0x0000-0x7FFF must be understood by the receiver."""
    return code < 0x8000


# -- attribute values --------------------------------------------------------------------------------


class Address(NamedTuple):
    """A transport address from an address attribute (already de-XORed for XOR-* attributes)."""

    family: int  # 4 or 6
    ip: str
    port: int

    def __str__(self) -> str:
        return f"[{self.ip}]:{self.port}" if self.family == 6 else f"{self.ip}:{self.port}"


class ErrorCode(NamedTuple):
    code: int  # class * 100 + number, e.g. 401
    reason: str

    def __str__(self) -> str:
        return f"{self.code} {self.reason}"


# A decoder gets (value bytes, context) and returns the decoded value or raises DecodeError.
# The context is the 16 bytes after the type/length: magic cookie + transaction id (the XOR key).
Decoder = Callable[[bytes, "AttrSpec", bytes], Any]


@dataclass(frozen=True)
class AttrSpec:
    code: int
    name: str  # IANA name, verbatim
    decode: Decoder
    secret: bool = False  # value never kept (RFC 3489 PASSWORD)


def _length_error(spec: AttrSpec, detail: str) -> DecodeError:
    return DecodeError("stun_attr_length", f"STUN {spec.name} {detail}")


_XOR_PORT = MAGIC_COOKIE >> 16
_inet_ntoa = socket.inet_ntoa
_tuple_new = tuple.__new__  # Address(...) through NamedTuple's Python-level __new__ costs 4x more


def _address(value: bytes, spec: AttrSpec, xor_port: int, key: bytes | None) -> Address:
    """An address attribute value; XORed (RFC 8489 §14.2) when ``key`` (magic cookie + transaction id) is
    given: the port with the cookie's top 16 bits, IPv4 with the cookie, IPv6 with cookie + transaction id."""
    n = len(value)
    if n < 4:
        raise _length_error(spec, "is too short for an address")
    family = value[1]
    port = ((value[2] << 8) | value[3]) ^ xor_port
    if family == 0x01:
        if n != 8:
            raise _length_error(spec, "has invalid length for IPv4")
        raw = value[4:8]
        if key is not None:
            raw = (int.from_bytes(raw, "big") ^ MAGIC_COOKIE).to_bytes(4, "big")
        return _tuple_new(Address, (4, _inet_ntoa(raw), port))
    if family == 0x02:
        if n != 20:
            raise _length_error(spec, "has invalid length for IPv6")
        raw = value[4:20]
        if key is not None:
            raw = (int.from_bytes(raw, "big") ^ int.from_bytes(key[:16], "big")).to_bytes(16, "big")
        return _tuple_new(Address, (6, str(ipaddress.IPv6Address(raw)), port))
    raise DecodeError("stun_address_family", f"STUN {spec.name} has unknown address family 0x{family:02x}")


def _plain_address(value: bytes, spec: AttrSpec, key: bytes) -> Address:
    return _address(value, spec, 0, None)


def _xor_address(value: bytes, spec: AttrSpec, key: bytes) -> Address:
    return _address(value, spec, _XOR_PORT, key)


def _text(value: bytes, spec: AttrSpec, key: bytes) -> str:
    # Not every stack sends UTF-8 (WhatsApp); keep bytes visible rather than fail the message.
    return value.decode("utf-8", errors="backslashreplace")


def _raw(value: bytes, spec: AttrSpec, key: bytes) -> bytes:
    return value


def _secret(value: bytes, spec: AttrSpec, key: bytes) -> None:
    return None


def _fixed(size: int | tuple[int, ...]) -> Decoder:
    sizes = (size,) if isinstance(size, int) else size

    def decode(value: bytes, spec: AttrSpec, key: bytes) -> bytes:
        if len(value) not in sizes:
            raise _length_error(spec, f"has invalid length {len(value)}")
        return value

    return decode


def _empty(value: bytes, spec: AttrSpec, key: bytes) -> bool:
    if value:
        raise _length_error(spec, f"has invalid length {len(value)} (expected 0)")
    return True


def _uint(size: int) -> Decoder:
    unpack = struct.Struct({1: "!B", 2: "!H", 4: "!I", 8: "!Q"}[size]).unpack

    def decode(value: bytes, spec: AttrSpec, key: bytes) -> int:
        if len(value) != size:
            raise _length_error(spec, f"has invalid length {len(value)} (expected {size})")
        return unpack(value)[0]

    return decode


def _uint_prefix(size: int, total: int) -> Decoder:
    """An unsigned int in the first ``size`` bytes of a ``total``-byte value (the rest RFFU)."""
    fmt = {1: "!B", 2: "!H", 4: "!I"}[size]

    def decode(value: bytes, spec: AttrSpec, key: bytes) -> int:
        if len(value) != total:
            raise _length_error(spec, f"has invalid length {len(value)} (expected {total})")
        return int(struct.unpack_from(fmt, value)[0])

    return decode


def _error_code(value: bytes, spec: AttrSpec, key: bytes) -> ErrorCode:
    if len(value) < 4:
        raise _length_error(spec, f"has invalid length {len(value)}")
    cls, number = value[2] & 0x07, value[3]
    if not 3 <= cls <= 6 or number > 99:  # RFC 8489 §14.8
        raise DecodeError("stun_error_code", f"STUN ERROR-CODE has invalid value class {cls} number {number}")
    return ErrorCode(cls * 100 + number, value[4:].decode("utf-8", errors="backslashreplace").rstrip("\x00"))


def _uint16_list(value: bytes, spec: AttrSpec, key: bytes) -> list[int]:
    if len(value) % 2:
        raise _length_error(spec, f"has odd length {len(value)}")
    return list(struct.unpack(f"!{len(value) // 2}H", value))


def _change_request(value: bytes, spec: AttrSpec, key: bytes) -> dict[str, bool]:
    if len(value) != 4:
        raise _length_error(spec, f"has invalid length {len(value)} (expected 4)")
    flags = value[3]
    return {"change_ip": bool(flags & 0x04), "change_port": bool(flags & 0x02)}


def _even_port(value: bytes, spec: AttrSpec, key: bytes) -> bool:
    if len(value) != 1:
        raise _length_error(spec, f"has invalid length {len(value)} (expected 1)")
    return bool(value[0] & 0x80)  # R bit: reserve the next port


def _family(value: bytes, spec: AttrSpec, key: bytes) -> int:
    if len(value) != 4:
        raise _length_error(spec, f"has invalid length {len(value)} (expected 4)")
    if value[0] not in (0x01, 0x02):
        raise DecodeError(
            "stun_address_family", f"STUN {spec.name} has unknown address family 0x{value[0]:02x}"
        )
    return 4 if value[0] == 0x01 else 6


def _address_error(value: bytes, spec: AttrSpec, key: bytes) -> tuple[int, ErrorCode]:
    if len(value) < 4:
        raise _length_error(spec, f"has invalid length {len(value)}")
    family = 4 if value[0] == 0x01 else 6 if value[0] == 0x02 else value[0]
    cls, number = value[2] & 0x07, value[3]
    return family, ErrorCode(cls * 100 + number, value[4:].decode("utf-8", errors="backslashreplace"))


def _password_algorithms(value: bytes, spec: AttrSpec, key: bytes) -> list[int]:
    """RFC 8489 §14.11/12: algorithm (2) + params length (2) + params padded to 4."""
    algs, off = [], 0
    while off < len(value):
        if off + 4 > len(value):
            raise _length_error(spec, "has a truncated algorithm entry")
        alg, plen = struct.unpack_from("!HH", value, off)
        off += 4 + plen + (-plen % 4)
        if off > len(value):
            raise _length_error(spec, "has a truncated algorithm entry")
        algs.append(alg)
    return algs


def _password_algorithm(value: bytes, spec: AttrSpec, key: bytes) -> int:
    algs = _password_algorithms(value, spec, key)
    if len(algs) != 1:
        raise _length_error(spec, "does not hold exactly one algorithm")
    return algs[0]


def _goog_network_info(value: bytes, spec: AttrSpec, key: bytes) -> dict[str, int]:
    if len(value) != 4:
        raise _length_error(spec, f"has invalid length {len(value)} (expected 4)")
    net_id, cost = struct.unpack("!HH", value)
    return {"network_id": net_id, "network_cost": cost}


def _icmp(value: bytes, spec: AttrSpec, key: bytes) -> dict[str, int]:
    if len(value) != 8:
        raise _length_error(spec, f"has invalid length {len(value)} (expected 8)")
    return {"type": value[2], "code": value[3], "error_data": struct.unpack_from("!I", value, 4)[0]}


_SPECS: list[tuple[int, str, Decoder]] = [
    (AttrType.MAPPED_ADDRESS, "MAPPED-ADDRESS", _plain_address),
    (AttrType.RESPONSE_ADDRESS, "RESPONSE-ADDRESS", _plain_address),
    (AttrType.CHANGE_REQUEST, "CHANGE-REQUEST", _change_request),
    (AttrType.SOURCE_ADDRESS, "SOURCE-ADDRESS", _plain_address),
    (AttrType.CHANGED_ADDRESS, "CHANGED-ADDRESS", _plain_address),
    (AttrType.USERNAME, "USERNAME", _text),
    (AttrType.PASSWORD, "PASSWORD", _secret),
    (AttrType.MESSAGE_INTEGRITY, "MESSAGE-INTEGRITY", _fixed(20)),
    (AttrType.ERROR_CODE, "ERROR-CODE", _error_code),
    (AttrType.UNKNOWN_ATTRIBUTES, "UNKNOWN-ATTRIBUTES", _uint16_list),
    (AttrType.REFLECTED_FROM, "REFLECTED-FROM", _plain_address),
    (AttrType.CHANNEL_NUMBER, "CHANNEL-NUMBER", _uint_prefix(2, 4)),
    (AttrType.LIFETIME, "LIFETIME", _uint(4)),
    (AttrType.MAGIC_COOKIE, "MAGIC-COOKIE", _uint(4)),
    (AttrType.BANDWIDTH, "BANDWIDTH", _uint(4)),
    (AttrType.DESTINATION_ADDRESS, "DESTINATION-ADDRESS", _plain_address),
    (AttrType.XOR_PEER_ADDRESS, "XOR-PEER-ADDRESS", _xor_address),
    (AttrType.DATA, "DATA", _raw),
    (AttrType.REALM, "REALM", _text),
    (AttrType.NONCE, "NONCE", _text),
    (AttrType.XOR_RELAYED_ADDRESS, "XOR-RELAYED-ADDRESS", _xor_address),
    (AttrType.REQUESTED_ADDRESS_FAMILY, "REQUESTED-ADDRESS-FAMILY", _family),
    (AttrType.EVEN_PORT, "EVEN-PORT", _even_port),
    (AttrType.REQUESTED_TRANSPORT, "REQUESTED-TRANSPORT", _uint_prefix(1, 4)),
    (AttrType.DONT_FRAGMENT, "DONT-FRAGMENT", _empty),
    (AttrType.ACCESS_TOKEN, "ACCESS-TOKEN", _raw),
    (AttrType.MESSAGE_INTEGRITY_SHA256, "MESSAGE-INTEGRITY-SHA256", _fixed((16, 20, 24, 28, 32))),
    (AttrType.PASSWORD_ALGORITHM, "PASSWORD-ALGORITHM", _password_algorithm),
    (AttrType.USERHASH, "USERHASH", _fixed(32)),
    (AttrType.XOR_MAPPED_ADDRESS, "XOR-MAPPED-ADDRESS", _xor_address),
    (AttrType.RESERVATION_TOKEN, "RESERVATION-TOKEN", _fixed(8)),
    (AttrType.PRIORITY, "PRIORITY", _uint(4)),
    (AttrType.USE_CANDIDATE, "USE-CANDIDATE", _empty),
    (AttrType.PADDING, "PADDING", _raw),
    (AttrType.RESPONSE_PORT, "RESPONSE-PORT", _uint_prefix(2, 4)),
    (AttrType.CONNECTION_ID, "CONNECTION-ID", _uint(4)),
    (AttrType.ADDITIONAL_ADDRESS_FAMILY, "ADDITIONAL-ADDRESS-FAMILY", _family),
    (AttrType.ADDRESS_ERROR_CODE, "ADDRESS-ERROR-CODE", _address_error),
    (AttrType.PASSWORD_ALGORITHMS, "PASSWORD-ALGORITHMS", _password_algorithms),
    (AttrType.ALTERNATE_DOMAIN, "ALTERNATE-DOMAIN", _text),
    (AttrType.ICMP, "ICMP", _icmp),
    (AttrType.MS_VERSION, "MS-VERSION", _uint(4)),
    (AttrType.MS_XOR_MAPPED_ADDRESS, "MS-XOR-MAPPED-ADDRESS", _xor_address),
    (AttrType.SOFTWARE, "SOFTWARE", _text),
    (AttrType.ALTERNATE_SERVER, "ALTERNATE-SERVER", _plain_address),
    (AttrType.TRANSACTION_TRANSMIT_COUNTER, "TRANSACTION_TRANSMIT_COUNTER", _fixed(4)),
    (AttrType.CACHE_TIMEOUT, "CACHE-TIMEOUT", _uint(4)),
    (AttrType.FINGERPRINT, "FINGERPRINT", _uint(4)),
    (AttrType.ICE_CONTROLLED, "ICE-CONTROLLED", _uint(8)),
    (AttrType.ICE_CONTROLLING, "ICE-CONTROLLING", _uint(8)),
    (AttrType.RESPONSE_ORIGIN, "RESPONSE-ORIGIN", _plain_address),
    (AttrType.OTHER_ADDRESS, "OTHER-ADDRESS", _plain_address),
    (AttrType.ECN_CHECK_STUN, "ECN-CHECK STUN", _fixed(4)),
    (AttrType.THIRD_PARTY_AUTHORIZATION, "THIRD-PARTY-AUTHORIZATION", _text),
    (AttrType.MOBILITY_TICKET, "MOBILITY-TICKET", _raw),
    (AttrType.MS_SEQUENCE_NUMBER, "MS-SEQUENCE-NUMBER", _fixed(24)),
    (AttrType.MS_CANDIDATE_IDENTIFIER, "MS-CANDIDATE-IDENTIFIER", _raw),
    (AttrType.MS_SERVICE_QUALITY, "MS-SERVICE-QUALITY", _fixed(4)),
    (AttrType.MS_IMPLEMENTATION_VERSION, "MS-IMPLEMENTATION-VERSION", _uint(4)),
    (AttrType.MS_ALTERNATE_MAPPED_ADDRESS, "MS-ALTERNATE-MAPPED-ADDRESS", _plain_address),
    (AttrType.GOOG_NETWORK_INFO, "GOOG-NETWORK-INFO", _goog_network_info),
    (AttrType.GOOG_LAST_ICE_CHECK_RECEIVED, "GOOG-LAST-ICE-CHECK-RECEIVED", _raw),
    (AttrType.GOOG_MISC_INFO, "GOOG-MISC-INFO", _uint16_list),
    (AttrType.GOOG_OBSOLETE_1, "GOOG-OBSOLETE-1", _raw),
    (AttrType.GOOG_CONNECTION_ID, "GOOG-CONNECTION-ID", _raw),
    (AttrType.GOOG_DELTA, "GOOG-DELTA", _raw),
    (AttrType.GOOG_DELTA_ACK, "GOOG-DELTA-ACK", _raw),
    (AttrType.GOOG_DELTA_SYNC_REQ, "GOOG-DELTA-SYNC-REQ", _raw),
    (AttrType.GOOG_MESSAGE_INTEGRITY_32, "GOOG-MESSAGE-INTEGRITY-32", _fixed(4)),
    (AttrType.META_DTLS_IN_STUN, "META-DTLS-IN-STUN", _raw),
    (AttrType.META_DTLS_IN_STUN_ACK, "META-DTLS-IN-STUN-ACK", _raw),
]

#: The one attribute table: wire code -> (IANA name, decoder). Parsing and printing both read it.
ATTRIBUTES: dict[int, AttrSpec] = {
    int(code): AttrSpec(int(code), name, dec, secret=(code == AttrType.PASSWORD))
    for code, name, dec in _SPECS
}
ATTRIBUTE_CODES: dict[str, int] = {spec.name: code for code, spec in ATTRIBUTES.items()}


def attr_name(code: int) -> str:
    """IANA name of an attribute code; unknown codes as ``"0xc0de"``."""
    spec = ATTRIBUTES.get(code)
    return spec.name if spec else f"0x{code:04x}"


_NAMES: dict[int, str] = {code: spec.name for code, spec in ATTRIBUTES.items()}
_TYPE_LENGTH = struct.Struct("!HH").unpack_from


def walk_attributes(data: bytes, end: int) -> tuple[list[tuple[int, int, int]], DecodeError | None]:
    """The attribute framing of a STUN message (RFC 8489 §14), values not decoded.

    Returns ``(type, value offset, value length)`` of each attribute between the 20-byte header and ``end``
    (20 + the header's length field), in wire order, and the :class:`DecodeError` that stopped the walk
    early (a truncated attribute header, or a value running past ``end``), None when it reached ``end``.
    Values are padded to 4 bytes; [MS-TURN] (Teams, Skype for Business) does not pad: when the padded walk
    fails and an unpadded one reaches ``end`` exactly, the unpadded spans are returned with the deviation
    ``stun_attr_unpadded`` (every attribute read, USERNAME and MESSAGE-INTEGRITY included).
    The one walk over attributes: :meth:`StunMessage.parse` decodes what it finds, and the fast path uses
    it to unwrap TURN Send/Data indications."""
    spans, err = _walk(data, end, True)
    if err is not None:
        bare, bare_err = _walk(data, end, False)
        if bare_err is None:
            odd = next((attr_name(t) for t, _o, n in bare if n % 4), "?")
            return bare, DecodeError(
                "stun_attr_unpadded",
                f"STUN attributes are not padded to 4 bytes ([MS-TURN]; first: {odd}); read unpadded",
            )
    return spans, err


def _walk(data: bytes, end: int, padded: bool) -> tuple[list[tuple[int, int, int]], DecodeError | None]:
    spans: list[tuple[int, int, int]] = []
    off = HEADER_LENGTH
    while off < end:
        if off + 4 > end:
            return spans, DecodeError("stun_attr_truncated", "STUN attribute header is truncated")
        atype, alen = _TYPE_LENGTH(data, off)
        off += 4
        if off + alen > end:
            return spans, DecodeError(
                "stun_attr_overflow",
                f"STUN {attr_name(atype)} length {alen} runs past the end of the message",
            )
        spans.append((atype, off, alen))
        off += alen + (-alen % 4 if padded else 0)  # values are padded to 4 bytes (RFC 8489 §14)
    return spans, None


def xor_address(value: bytes, key: bytes) -> Address:
    """An XOR-*-ADDRESS value (RFC 8489 §14.2) de-XORed with ``key`` (magic cookie + transaction id, the
    16 bytes after the message length); raises :class:`DecodeError` like the attribute decoder."""
    return _xor_address(value, ATTRIBUTES[AttrType.XOR_PEER_ADDRESS], key)


# -- message ------------------------------------------------------------------------------------------


@dataclass(slots=True)
class StunAttribute:
    type: int
    value: Any  # decoded value; raw bytes for unknown or undecodable attributes; None for secrets
    offset: int  # offset of the attribute header in the message
    length: int  # declared value length (before padding)
    raw: bytes = field(default=b"", repr=False)  # value bytes (empty for secrets)
    known: bool = True
    error: DecodeError | None = None

    @property
    def name(self) -> str:
        return attr_name(self.type)

    @property
    def comprehension_required(self) -> bool:
        return comprehension_required(self.type)


@dataclass(slots=True)
class StunMessage:
    """One STUN message (RFC 8489 §5); ``classic`` when it has no magic cookie (RFC 3489)."""

    method: int
    cls: StunClass
    transaction_id: bytes  # 12 bytes, or 16 for a classic (RFC 3489) message
    classic: bool = False
    attributes: list[StunAttribute] = field(default_factory=list)
    errors: list[DecodeError] = field(default_factory=list)
    raw: bytes = field(default=b"", repr=False)
    #: first attribute of each type, by type code (what :meth:`get` / :meth:`has` read)
    first: dict[int, StunAttribute] = field(default_factory=dict, repr=False, compare=False)
    #: decoded value of the first attribute of each type, when it decoded (what :meth:`get` reads)
    values: dict[int, Any] = field(default_factory=dict, repr=False, compare=False)

    # -- parsing ---------------------------------------------------------------------------------
    @classmethod
    def parse(cls, data: bytes, *, strict: bool = True) -> StunMessage:
        """Parse one whole STUN message.

        A header that is not STUN, or a message shorter than its declared length, always raises
        :class:`DecodeError`. Attribute problems raise when ``strict``; otherwise they are collected in
        ``errors``, the offending attribute is kept with its raw bytes and parsing continues where the
        framing still allows, so a table builder keeps everything that could be read."""
        data = bytes(data)
        if len(data) < HEADER_LENGTH:
            raise TruncatedError(
                "stun_truncated", f"STUN message is shorter than its header ({len(data)} bytes)"
            )
        msg_type, length, cookie = _HEADER(data)
        if msg_type & 0xC000:
            raise DecodeError("stun_not_stun", f"STUN message type 0x{msg_type:04x} has the top two bits set")
        if length % 4 and cookie != MAGIC_COOKIE:
            raise DecodeError("stun_length", f"STUN message length {length} is not a multiple of 4")
        if HEADER_LENGTH + length > len(data):
            raise TruncatedError(
                "stun_truncated",
                f"STUN message declares {length} bytes of attributes but {len(data) - 20} remain",
            )
        if HEADER_LENGTH + length < len(data):
            raise DecodeError(
                "stun_trailing_data",
                f"STUN message has {len(data) - 20 - length} bytes after its declared length",
            )
        classic = cookie != MAGIC_COOKIE
        method_class = _TYPES.get(msg_type) or _split_type(msg_type)
        msg = cls(*method_class, data[4:20] if classic else data[8:20], classic, [], [], data, {}, {})
        if length % 4:  # RFC 8489 §6: always a multiple of 4; WhatsApp sends others (tshark accepts them)
            msg._fail(
                DecodeError("stun_length", f"STUN message length {length} is not a multiple of 4"), strict
            )
        key = data[4:20]
        spans, framing_error = walk_attributes(data, HEADER_LENGTH + length)
        attrs, first, values = msg.attributes, msg.first, msg.values
        table = ATTRIBUTES
        for atype, vstart, alen in spans:
            value = data[vstart : vstart + alen]
            spec = table.get(atype)
            if spec is None:
                attr = StunAttribute(atype, value, vstart - 4, alen, value, False)
            elif spec.secret:
                attr = StunAttribute(atype, None, vstart - 4, alen, b"")
            else:
                try:
                    attr = StunAttribute(atype, spec.decode(value, spec, key), vstart - 4, alen, value)
                except DecodeError as e:
                    attr = StunAttribute(atype, value, vstart - 4, alen, value, True, e)
                    msg._fail(e, strict)
            attrs.append(attr)
            if atype not in first:
                first[atype] = attr
                if attr.error is None:
                    values[atype] = attr.value
        if framing_error is not None:
            msg._fail(framing_error, strict)
        return msg

    def _fail(self, err: DecodeError, strict: bool) -> None:
        if strict:
            raise err
        self.errors.append(err)

    # -- access ----------------------------------------------------------------------------------
    @property
    def method_name(self) -> str:
        return method_name(self.method)

    @property
    def class_name(self) -> str:
        return self.cls.label

    @property
    def txid(self) -> str:
        return self.transaction_id.hex()

    def __iter__(self) -> Iterator[StunAttribute]:
        return iter(self.attributes)

    def has(self, atype: int) -> bool:
        return atype in self.first

    def get(self, atype: int, default: Any = None) -> Any:
        """Decoded value of the first attribute of that type (``default`` when absent or undecodable)."""
        return self.values.get(atype, default)

    def get_all(self, atype: int) -> list[Any]:
        return [a.value for a in self.attributes if a.type == atype and a.error is None]

    @property
    def attribute_names(self) -> list[str]:
        names = _NAMES
        return [names.get(a.type) or attr_name(a.type) for a in self.attributes]

    @property
    def unknown_attributes(self) -> list[int]:
        return [a.type for a in self.attributes if not a.known]

    @property
    def unknown_required(self) -> bool:
        """An attribute we do not know in the comprehension-required range (RFC 8489 §14)."""
        return any(not a.known and a.comprehension_required for a in self.attributes)

    @property
    def fingerprint_ok(self) -> bool | None:
        """FINGERPRINT verified (RFC 8489 §14.7); None when the message has none."""
        a = self.first.get(AttrType.FINGERPRINT)
        if a is None:
            return None
        if a.error is not None:
            return False
        return fingerprint(self.raw[: a.offset]) == a.value

    def check_integrity(self, key: bytes) -> bool | None:
        """Verify MESSAGE-INTEGRITY (HMAC-SHA1) or, failing that, MESSAGE-INTEGRITY-SHA256 with ``key``
        (short-term: the password; long-term: MD5(username:realm:password)). None when absent.
        The key is used and forgotten, never stored."""
        for a in self.attributes:
            if a.type in (AttrType.MESSAGE_INTEGRITY, AttrType.MESSAGE_INTEGRITY_SHA256) and a.error is None:
                # RFC 8489 §14.5: the header length covers everything up to the end of this attribute.
                head = bytearray(self.raw[: a.offset])
                struct.pack_into("!H", head, 2, a.offset + 4 + a.length - HEADER_LENGTH)
                algo = hashlib.sha1 if a.type == AttrType.MESSAGE_INTEGRITY else hashlib.sha256
                mac = hmac.new(key, bytes(head), algo).digest()[: a.length]
                return hmac.compare_digest(mac, a.value)
        return None

    # -- printing --------------------------------------------------------------------------------
    def format(self) -> str:
        """Multi-line human rendering, attribute names from the attribute table."""
        head = f"{self.method_name} {self.class_name} txid={self.txid}" + (
            " (classic RFC 3489)" if self.classic else ""
        )
        lines = [head]
        for a in self.attributes:
            flag = (
                ""
                if a.known
                else (" [unknown, comprehension-required]" if a.comprehension_required else " [unknown]")
            )
            if a.error is not None:
                flag += f" [error: {a.error.detail}]"
            lines.append(f"  {a.name}: {_show(a)}{flag}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def _show(a: StunAttribute) -> str:
    v = a.value
    if a.type == AttrType.PASSWORD:
        return "<redacted>"
    if isinstance(v, (bytes, bytearray)):
        return v[:32].hex() + ("…" if len(v) > 32 else "") + f" ({len(v)} bytes)"
    if isinstance(v, str):
        return repr(v)
    if a.type == AttrType.FINGERPRINT and isinstance(v, int):
        return f"0x{v:08x}"
    if isinstance(v, list) and a.type == AttrType.UNKNOWN_ATTRIBUTES:
        return ", ".join(attr_name(c) for c in v)
    return str(v)


def long_term_key(username: str, realm: str, password: str) -> bytes:
    """RFC 8489 §9.2.2 long-term credential key MD5(username ":" realm ":" password), for
    :meth:`StunMessage.check_integrity`. The caller applies OpaqueString/SASLprep to a non-ASCII password;
    nothing here keeps the password."""
    return hashlib.md5(f"{username}:{realm}:{password}".encode()).digest()


def _method_of(msg_type: int) -> int:
    # RFC 8489 §5: M11..M7 | C1 | M6..M4 | C0 | M3..M0
    return (msg_type & 0x000F) | ((msg_type & 0x00E0) >> 1) | ((msg_type & 0x3E00) >> 2)


_CLASSES = (StunClass.REQUEST, StunClass.INDICATION, StunClass.SUCCESS, StunClass.ERROR)
_HEADER = struct.Struct("!HHI").unpack_from
_TYPES: dict[int, tuple[int, StunClass]] = {}  # message type -> (method, class), filled as types are met


def _split_type(msg_type: int) -> tuple[int, StunClass]:
    split = _TYPES[msg_type] = (_method_of(msg_type), _class_of(msg_type))
    return split


def _class_of(msg_type: int) -> StunClass:
    return _CLASSES[((msg_type & 0x0100) >> 7) | ((msg_type & 0x0010) >> 4)]


def message_type(method: int, cls: StunClass) -> int:
    """The 14-bit message type field for a method and class (inverse of the split above)."""
    return (
        (method & 0x000F)
        | ((method & 0x0070) << 1)
        | ((method & 0x0F80) << 2)
        | ((cls & 0b10) << 7)
        | ((cls & 0b01) << 4)
    )


def fingerprint(before: bytes) -> int:
    """FINGERPRINT value over ``before`` (the message up to the FINGERPRINT attribute); the header
    length must already count the FINGERPRINT attribute, as it does on the wire."""
    return (zlib.crc32(before) ^ FINGERPRINT_XOR) & 0xFFFFFFFF


# -- TURN ChannelData ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelData:
    """A TURN ChannelData message (RFC 8656 §12.4): 2-byte channel number, 2-byte length, data."""

    channel: int
    data: bytes
    padding: int  # bytes after the data (padding to 4 is mandatory over TCP, optional over UDP)

    @classmethod
    def parse(cls, data: bytes) -> ChannelData:
        if len(data) < 4:
            raise TruncatedError(
                "turn_channel_truncated", f"TURN ChannelData is shorter than its header ({len(data)} bytes)"
            )
        channel, length = struct.unpack_from("!HH", data)
        if not 0x4000 <= channel <= 0x4FFF:
            raise DecodeError(
                "turn_channel_number", f"TURN ChannelData has invalid channel number 0x{channel:04x}"
            )
        if 4 + length > len(data):
            raise TruncatedError(
                "turn_channel_length", f"TURN ChannelData declares {length} bytes but {len(data) - 4} remain"
            )
        return cls(channel, bytes(data[4 : 4 + length]), len(data) - 4 - length)


__all__ = [
    "ATTRIBUTES",
    "ATTRIBUTE_CODES",
    "MAGIC_COOKIE",
    "METHOD_NAMES",
    "TURN_METHODS",
    "Address",
    "AttrSpec",
    "AttrType",
    "ChannelData",
    "ErrorCode",
    "StunAttribute",
    "StunClass",
    "StunMessage",
    "StunMethod",
    "attr_name",
    "comprehension_required",
    "fingerprint",
    "message_type",
    "method_name",
    "walk_attributes",
    "xor_address",
]
