"""RFC 7983 demultiplexing: what a UDP payload (or a TCP-framed message) carries, from its first bytes.

RFC 7983 §7 (updating RFC 5764 §5.1.2), first byte B:

    0..3     STUN          16..19   ZRTP         20..63   DTLS
    64..79   TURN ChannelData (RFC 8656 §12)     128..191 RTP / RTCP

and RTCP is told from RTP by the second byte (RFC 5761 §4: payload types 192..223 with the marker bit
folded in). Each range is checked a little further so that a stray datagram is not called media: a STUN
message needs the magic cookie (or, for RFC 3489, an exact 4-aligned length), a ChannelData message a length that
fits, ZRTP its ``ZRTP`` cookie, a DTLS 1.0/1.2 record a DTLS version byte.

:func:`classify` works on one payload; :func:`classify_array` applies the same rules to many payloads
inside one buffer at once (the fast path). Both must agree; the tests check that on real captures.
"""

from __future__ import annotations

import numpy as np

# Categories of the `packets.cls` column, in declared order (codes used inside the fast path).
CLASSES = ("stun", "dtls", "rtp", "rtcp", "turn_channel", "zrtp", "tls", "http", "websocket", "sip", "other")
STUN, DTLS, RTP, RTCP, TURN_CHANNEL, ZRTP, TLS, HTTP, WEBSOCKET, SIP, OTHER = range(len(CLASSES))
CODE = {name: i for i, name in enumerate(CLASSES)}

STUN_MAGIC = 0x2112A442
ZRTP_MAGIC = b"ZRTP"

# UDP ports whose traffic is never WebRTC media even when its first byte falls in a media range.
NOT_MEDIA_UDP_PORTS = frozenset({53, 67, 68, 123, 137, 138, 161, 162, 514, 1900, 3702, 5353, 5355})
SIP_PORTS = frozenset({5060, 5061})


def stun_by_content(data: bytes | memoryview) -> bool:
    """STUN recognised by its content alone (RFC 8489 magic cookie and a length that fits): wins over a
    well-known port (TURN servers listen on 53 and 123 to pass firewalls; SIP user agents send STUN keepalives
    on their SIP flow, RFC 5626 §4.4.1)."""
    return len(data) >= 20 and bytes(data[4:8]) == STUN_MAGIC.to_bytes(4, "big") and classify(data) == STUN


def classify(data: bytes | memoryview) -> int:
    """Class code (index into :data:`CLASSES`) of one payload (a UDP payload or one framed TCP message)."""
    n = len(data)
    if n == 0:
        return OTHER
    b0 = data[0]
    if b0 <= 3:
        if n < 20:
            return OTHER
        mlen = (data[2] << 8) | data[3]
        cookie = int.from_bytes(data[4:8], "big")
        # RFC 5389+: magic cookie (lengths not a multiple of 4 exist in the wild, e.g. WhatsApp: keep them);
        # RFC 3489: no cookie, so insist on an exact, 4-aligned length
        if (cookie == STUN_MAGIC and mlen + 20 <= n) or (mlen % 4 == 0 and mlen + 20 == n):
            return STUN
        return OTHER
    if 16 <= b0 <= 19:
        return ZRTP if n >= 12 and bytes(data[4:8]) == ZRTP_MAGIC else OTHER
    if 20 <= b0 <= 25:
        return DTLS if n >= 13 and data[1] in (0xFE, 0x01) else OTHER
    if 32 <= b0 <= 63:  # RFC 9147 §4 unified header 001CSLEE
        return DTLS if n >= 2 else OTHER
    if 64 <= b0 <= 79:
        if n < 4:
            return OTHER
        clen = (data[2] << 8) | data[3]
        pad = n - 4 - clen
        return TURN_CHANNEL if 0 <= pad < 4 else OTHER
    if 128 <= b0 <= 191:
        if n >= 2 and 192 <= data[1] <= 223:
            words = (data[2] << 8) | data[3] if n >= 4 else 0
            return RTCP if n >= 8 and (words + 1) * 4 <= n else OTHER
        return RTP if n >= 12 else OTHER
    return OTHER


def classify_array(arr: np.ndarray, off: np.ndarray, plen: np.ndarray) -> np.ndarray:
    """:func:`classify` for many payloads at once: ``arr`` is the uint8 buffer, ``off``/``plen`` the
    payloads' offsets and lengths in it. Returns int8 class codes."""
    n = len(off)
    out = np.full(n, OTHER, dtype=np.int8)
    if n == 0:
        return out
    last = len(arr) - 1

    def byte(k: int) -> np.ndarray:
        return arr[np.minimum(off + k, last)].astype(np.int64)

    b0, b1, b2, b3 = byte(0), byte(1), byte(2), byte(3)
    has = plen > 0
    be16 = (b2 << 8) | b3
    # STUN
    cookie = (byte(4) << 24) | (byte(5) << 16) | (byte(6) << 8) | byte(7)
    stun = (
        has
        & (b0 <= 3)
        & (plen >= 20)
        & (((cookie == STUN_MAGIC) & (be16 + 20 <= plen)) | ((be16 % 4 == 0) & (be16 + 20 == plen)))
    )
    out[stun] = STUN
    # ZRTP
    zr = has & (b0 >= 16) & (b0 <= 19) & (plen >= 12) & (cookie == int.from_bytes(ZRTP_MAGIC, "big"))
    out[zr] = ZRTP
    # DTLS
    dt = has & (
        ((b0 >= 20) & (b0 <= 25) & (plen >= 13) & ((b1 == 0xFE) | (b1 == 0x01)))
        | ((b0 >= 32) & (b0 <= 63) & (plen >= 2))
    )
    out[dt] = DTLS
    # ChannelData
    pad = plen - 4 - be16
    ch = has & (b0 >= 64) & (b0 <= 79) & (plen >= 4) & (pad >= 0) & (pad < 4)
    out[ch] = TURN_CHANNEL
    # RTP / RTCP
    media = has & (b0 >= 128) & (b0 <= 191)
    is_rtcp_pt = (b1 >= 192) & (b1 <= 223) & (plen >= 2)
    out[media & ~is_rtcp_pt & (plen >= 12)] = RTP
    out[media & is_rtcp_pt & (plen >= 8) & ((be16 + 1) * 4 <= plen)] = RTCP
    return out


TCP_DECIDE_BYTES = 4096  # bytes of a TCP direction looked at before deciding how it is framed


def tcp_kind(first: bytes, final: bool = False) -> str | None:
    """How a TCP direction's byte stream is framed, from its first bytes (None: need more bytes).

    ``"turn"``: TURN-TCP (RFC 8656 §12.5: STUN messages and ChannelData, padded to 4), recognised by a
    STUN message with the magic cookie at the start; ``"rfc4571"``: RFC 4571 §2 (16-bit length, then
    RTP/RTCP/STUN/DTLS), recognised when every complete frame in the first bytes is media and at least
    one is; otherwise the control-plane class name: ``"tls"``, ``"http"``, ``"sip"`` or ``"other"``.
    ``final``: no more bytes will come (decide with what there is)."""
    n = len(first)
    if n >= 20 and first[0] <= 3 and int.from_bytes(first[4:8], "big") == STUN_MAGIC:
        return "turn"
    pos, frames = 0, 0
    while pos + 2 <= n:
        flen = (first[pos] << 8) | first[pos + 1]
        if flen < 2 or classify(first[pos + 2 : pos + 2 + flen]) not in (STUN, DTLS, RTP, RTCP):
            frames = -1
            break
        if pos + 2 + flen > n:
            break
        frames += 1
        pos += 2 + flen
    if frames > 0 and (pos == n or frames >= 2):
        return "rfc4571"
    if frames >= 0 and n < TCP_DECIDE_BYTES and not final:
        return None  # plausible so far: wait for the frame to complete
    if frames > 0:
        return "rfc4571"
    if n >= 3 and first[0] in (0x14, 0x15, 0x16, 0x17) and first[1] == 0x03:
        return "tls"
    head = bytes(first[:12]).upper()
    if head.startswith(
        (b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"OPTIONS ", b"PATCH ", b"HTTP/", b"CONNECT ")
    ):
        return "http"
    if head.startswith(
        (
            b"INVITE ",
            b"REGISTER ",
            b"ACK ",
            b"BYE ",
            b"CANCEL ",
            b"SIP/2.0",
            b"SUBSCRIBE ",
            b"NOTIFY ",
            b"MESSAGE ",
            b"REFER ",
            b"INFO ",
            b"UPDATE ",
            b"PRACK ",
            b"PUBLISH ",
        )
    ):
        return "sip"
    return "other"
