"""RTP (RFC 3550 §5.1, RFC 8285 header extensions) and compound RTCP (RFC 3550 §6, RFC 4585, RFC 3611).

Scalar decoders that raise :class:`DecodeError` with stable anomaly names; the fast path extracts the
fixed RTP header vectorised (``fastpath``) and uses :func:`decode_rtp` only for packets it could not take
in bulk. SRTP leaves the RTP header in clear, so everything here also reads SRTP headers; SRTCP leaves
the first 8 bytes of the compound in clear, so :func:`decode_rtcp_compound` reports a compound that does
not parse to its end as encrypted and keeps only the clear header.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import DecodeError, TruncatedError

RTCP_PT_NAMES = {
    192: "FIR",
    193: "NACK",
    195: "IJ",
    200: "SR",
    201: "RR",
    202: "SDES",
    203: "BYE",
    204: "APP",
    205: "RTPFB",
    206: "PSFB",
    207: "XR",
    208: "AVB",
    209: "RSI",
    210: "TOKEN",
    211: "IDMS",
    212: "RGRS",
    213: "SNM",
}
SDES_ITEMS = {
    1: "cname",
    2: "name",
    3: "email",
    4: "phone",
    5: "loc",
    6: "tool",
    7: "note",
    8: "priv",
    9: "h323_caddr",
    10: "apsi",
    11: "rgrp",
    12: "mid",
    13: "rtp_stream_id",
    14: "repaired_rtp_stream_id",
}
# RFC 4585 §6.2 / §6.3 and later registrations (FMT values per PT)
RTPFB_FMT = {
    1: "NACK",
    3: "TMMBR",
    4: "TMMBN",
    5: "RTCP-SR-REQ",
    6: "RAMS",
    7: "TLLEI",
    8: "RTCP-ECN-FB",
    9: "PAUSE-RESUME",
    10: "DBI",
    11: "CCFB",
    15: "TWCC",
}
PSFB_FMT = {
    1: "PLI",
    2: "SLI",
    3: "RPSI",
    4: "FIR",
    5: "TSTR",
    6: "TSTN",
    7: "VBCM",
    8: "PSLEI",
    9: "ROI",
    10: "LRR",
    15: "AFB",
}
XR_BLOCKS = {
    1: "loss_rle",
    2: "duplicate_rle",
    3: "packet_receipt_times",
    4: "receiver_reference_time",
    5: "dlrr",
    6: "statistics_summary",
    7: "voip_metrics",
}


@dataclass(slots=True)
class RtpPacket:
    version: int
    padding: bool
    extension: bool
    marker: bool
    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    csrc: list[int] = field(default_factory=list)
    extension_profile: int | None = None  # 0xBEDE one-byte, 0x100x two-byte (RFC 8285), else RFC 3550
    extensions: list[tuple[int, bytes]] = field(default_factory=list)  # (id, value) for RFC 8285 elements
    extension_data: bytes = b""  # raw header-extension body
    extension_error: DecodeError | None = None  # RFC 8285 elements that did not parse (e.g. encrypted)
    padding_len: int = 0  # 0 when the padding count does not fit (SRTP: it is encrypted)
    payload_offset: int = 12
    payload: bytes = b""


def decode_rtp(data: bytes | memoryview) -> RtpPacket:
    """Decode one RTP (or SRTP, header only) packet. Raises DecodeError on malformed input."""
    data = bytes(data)
    n = len(data)
    if n < 12:
        raise TruncatedError("rtp_truncated", "RTP packet length is less than 12 bytes")
    b0, b1 = data[0], data[1]
    version = b0 >> 6
    if version != 2:
        raise DecodeError("rtp_version", f"RTP packet has invalid version {version}")
    pkt = RtpPacket(
        version=version,
        padding=bool(b0 & 0x20),
        extension=bool(b0 & 0x10),
        marker=bool(b1 & 0x80),
        payload_type=b1 & 0x7F,
        sequence_number=int.from_bytes(data[2:4], "big"),
        timestamp=int.from_bytes(data[4:8], "big"),
        ssrc=int.from_bytes(data[8:12], "big"),
    )
    cc = b0 & 0x0F
    pos = 12 + 4 * cc
    if pos > n:
        raise TruncatedError("rtp_truncated_csrc", "RTP packet has truncated CSRC")
    pkt.csrc = [int.from_bytes(data[12 + 4 * i : 16 + 4 * i], "big") for i in range(cc)]
    if pkt.extension:
        if pos + 4 > n:
            raise TruncatedError(
                "rtp_truncated_extension", "RTP packet has truncated extension profile / length"
            )
        profile = int.from_bytes(data[pos : pos + 2], "big")
        elen = int.from_bytes(data[pos + 2 : pos + 4], "big") * 4
        pos += 4
        if pos + elen > n:
            raise TruncatedError("rtp_truncated_extension", "RTP packet has truncated extension value")
        pkt.extension_profile = profile
        pkt.extension_data = data[pos : pos + elen]
        try:
            pkt.extensions = _decode_extension_elements(profile, pkt.extension_data)
        except DecodeError as e:  # the fixed header is still good: keep it, say what was wrong
            pkt.extension_error = e
        pos += elen
    if pkt.padding and n > pos:
        # RFC 3550 §5.1: the last byte counts the padding. In SRTP it lies inside the encrypted part and
        # the packet ends with the auth tag, so a count that does not fit means "unknown", not an error.
        plen = data[-1]
        if 0 < plen <= n - pos:
            pkt.padding_len = plen
    pkt.payload_offset = pos
    pkt.payload = data[pos : n - pkt.padding_len]
    return pkt


def _decode_extension_elements(profile: int, body: bytes) -> list[tuple[int, bytes]]:
    """RFC 8285 §4.2 (one-byte, profile 0xBEDE) and §4.3 (two-byte, profile 0x100x) elements."""
    out: list[tuple[int, bytes]] = []
    i, n = 0, len(body)
    if profile == 0xBEDE:
        while i < n:
            b = body[i]
            if b == 0:  # padding
                i += 1
                continue
            eid, ln = b >> 4, (b & 0x0F) + 1
            if eid == 15:  # reserved: stop processing (RFC 8285 §4.2)
                break
            if i + 1 + ln > n:
                raise TruncatedError(
                    "rtp_extension_element", f"RTP header extension element {eid} is truncated"
                )
            out.append((eid, body[i + 1 : i + 1 + ln]))
            i += 1 + ln
    elif profile & 0xFFF0 == 0x1000:
        while i < n:
            eid = body[i]
            if eid == 0:
                i += 1
                continue
            if i + 2 > n:
                raise TruncatedError(
                    "rtp_extension_element", f"RTP header extension element {eid} is truncated"
                )
            ln = body[i + 1]
            if i + 2 + ln > n:
                raise TruncatedError(
                    "rtp_extension_element", f"RTP header extension element {eid} is truncated"
                )
            out.append((eid, body[i + 2 : i + 2 + ln]))
            i += 2 + ln
    return out


@dataclass(slots=True)
class ReportBlock:
    ssrc: int
    fraction_lost: float  # 0..1 (the 8-bit fixed-point value / 256)
    cumulative_lost: int  # signed 24-bit
    highest_seq: int  # extended highest sequence number received
    jitter: int  # interarrival jitter, RTP timestamp units
    lsr: int
    dlsr: int


@dataclass(slots=True)
class RtcpPacket:
    """One packet of a compound RTCP datagram. Fields not carried by the type stay None / empty."""

    packet_type: int
    count: int  # RC / SC / FMT field
    length: int  # bytes, header included
    ssrc: int | None = None  # sender SSRC (SR/RR/FB/APP/XR), first chunk/source for SDES/BYE
    reports: list[ReportBlock] = field(default_factory=list)
    sender_info: dict[str, int] | None = None  # SR: ntp_ts (64-bit), rtp_ts, packets, octets
    sdes: list[dict[str, Any]] = field(default_factory=list)  # per chunk: {"ssrc": .., "cname": .., ...}
    bye_ssrcs: list[int] = field(default_factory=list)
    bye_reason: str | None = None
    app_name: str | None = None
    media_ssrc: int | None = None  # RTPFB/PSFB
    fb_name: str | None = None
    xr_blocks: list[str] = field(default_factory=list)
    padding: bool = False

    @property
    def name(self) -> str:
        return RTCP_PT_NAMES.get(self.packet_type, str(self.packet_type))


@dataclass(slots=True)
class RtcpCompound:
    packets: list[RtcpPacket]
    encrypted: bool  # the compound does not parse to its end: SRTCP (only the first header is clear)
    trailer_len: int = 0  # bytes after the last packet that parsed (SRTCP index + tag when encrypted)
    error: DecodeError | None = None  # why parsing stopped, when it did


# Least length (bytes, header included) of each RTCP packet type for its count field (RFC 3550 §6.4-6.6,
# RFC 4585 §6.1, RFC 3611 §2): a packet shorter than this is not the type its header names.
_RTCP_MIN_LEN = {
    200: lambda c: 28 + 24 * c,  # SR: header, sender SSRC, sender info, report blocks
    201: lambda c: 8 + 24 * c,  # RR
    202: lambda c: 4 + 8 * c,  # SDES: a chunk is at least SSRC + end item padded to 4
    203: lambda c: 4 + 4 * c,  # BYE
    204: lambda c: 12,  # APP: SSRC + name
    205: lambda c: 12,  # RTPFB: sender and media SSRC
    206: lambda c: 12,  # PSFB
    207: lambda c: 8,  # XR
}


def rtcp_problem(comp: RtcpCompound) -> str | None:
    """Why a candidate RTCP datagram is not RTCP (None when its structure holds): every packet read (only
    the clear first header of SRTCP) must be of an assigned type whose length fits its count field, and an
    SRTCP compound must leave room after its first packet for the SRTCP index (4 bytes) and a tag."""
    for p in comp.packets:
        if p.packet_type not in RTCP_PT_NAMES:
            return f"packet type {p.packet_type} is not an assigned RTCP type"
        least = _RTCP_MIN_LEN.get(p.packet_type, lambda c: 8)(p.count)
        if p.length < least:
            return f"{p.name} with count {p.count} needs {least} bytes, its length field says {p.length}"
    if comp.encrypted and comp.trailer_len < 8:
        return f"SRTCP leaves {comp.trailer_len} bytes after the first packet, too few for index and tag"
    return None


def _report_blocks(data: bytes, pos: int, count: int, end: int) -> list[ReportBlock]:
    if pos + 24 * count > end:
        raise TruncatedError("rtcp_truncated_report", "RTCP packet has truncated report block")
    out = []
    for k in range(count):
        p = pos + 24 * k
        lost = int.from_bytes(data[p + 5 : p + 8], "big")
        if lost & 0x800000:
            lost -= 1 << 24
        out.append(
            ReportBlock(
                ssrc=int.from_bytes(data[p : p + 4], "big"),
                fraction_lost=data[p + 4] / 256.0,
                cumulative_lost=lost,
                highest_seq=int.from_bytes(data[p + 8 : p + 12], "big"),
                jitter=int.from_bytes(data[p + 12 : p + 16], "big"),
                lsr=int.from_bytes(data[p + 16 : p + 20], "big"),
                dlsr=int.from_bytes(data[p + 20 : p + 24], "big"),
            )
        )
    return out


def decode_rtcp(data: bytes, pos: int = 0) -> RtcpPacket:
    """Decode the RTCP packet starting at ``pos``. Raises DecodeError."""
    n = len(data)
    if pos + 4 > n:
        raise TruncatedError("rtcp_truncated", "RTCP packet header is truncated")
    b0, pt = data[pos], data[pos + 1]
    if b0 >> 6 != 2:
        raise DecodeError("rtcp_version", f"RTCP packet has invalid version {b0 >> 6}")
    length = (int.from_bytes(data[pos + 2 : pos + 4], "big") + 1) * 4
    end = pos + length
    if end > n:
        raise TruncatedError("rtcp_length", f"RTCP packet length {length} exceeds the {n - pos} bytes left")
    count = b0 & 0x1F
    pkt = RtcpPacket(packet_type=pt, count=count, length=length, padding=bool(b0 & 0x20))
    if pkt.padding:
        plen = data[end - 1]
        if plen == 0 or pos + 4 + plen > end:
            raise DecodeError("rtcp_padding", "RTCP packet padding length is invalid")
        end -= plen
    body = pos + 4

    def u32(p: int) -> int:
        if p + 4 > end:
            raise TruncatedError("rtcp_truncated", f"RTCP {pkt.name} packet is truncated")
        return int.from_bytes(data[p : p + 4], "big")

    if pt == 200:  # SR
        pkt.ssrc = u32(body)
        if body + 24 > end:
            raise TruncatedError("rtcp_truncated_sender_info", "RTCP SR packet has truncated sender info")
        pkt.sender_info = {
            "ntp_ts": int.from_bytes(data[body + 4 : body + 12], "big"),
            "rtp_ts": u32(body + 12),
            "packets": u32(body + 16),
            "octets": u32(body + 20),
        }
        pkt.reports = _report_blocks(data, body + 24, count, end)
    elif pt == 201:  # RR
        pkt.ssrc = u32(body)
        pkt.reports = _report_blocks(data, body + 4, count, end)
    elif pt == 202:  # SDES
        p = body
        for _ in range(count):
            chunk: dict[str, Any] = {"ssrc": u32(p)}
            p += 4
            while True:
                if p >= end:
                    raise TruncatedError("rtcp_sdes_truncated", "RTCP SDES chunk is truncated")
                itype = data[p]
                if itype == 0:
                    p = (p + 4) & ~3  # null item, then pad to a 32-bit boundary
                    break
                if p + 2 > end or p + 2 + data[p + 1] > end:
                    raise TruncatedError("rtcp_sdes_truncated", "RTCP SDES item is truncated")
                ilen = data[p + 1]
                chunk[SDES_ITEMS.get(itype, f"item_{itype}")] = data[p + 2 : p + 2 + ilen].decode(
                    "utf-8", "replace"
                )
                p += 2 + ilen
            pkt.sdes.append(chunk)
        if pkt.sdes:
            pkt.ssrc = pkt.sdes[0]["ssrc"]
    elif pt == 203:  # BYE
        pkt.bye_ssrcs = [u32(body + 4 * k) for k in range(count)]
        pkt.ssrc = pkt.bye_ssrcs[0] if pkt.bye_ssrcs else None
        p = body + 4 * count
        if p < end:
            rlen = data[p]
            if p + 1 + rlen > end:
                raise TruncatedError("rtcp_bye_truncated", "RTCP BYE reason is truncated")
            pkt.bye_reason = data[p + 1 : p + 1 + rlen].decode("utf-8", "replace")
    elif pt == 204:  # APP
        pkt.ssrc = u32(body)
        if body + 8 > end:
            raise TruncatedError("rtcp_truncated", "RTCP APP packet is truncated")
        pkt.app_name = data[body + 4 : body + 8].decode("ascii", "replace")
    elif pt in (205, 206):  # RTPFB / PSFB (RFC 4585 §6.1)
        pkt.ssrc = u32(body)
        pkt.media_ssrc = u32(body + 4)
        names = RTPFB_FMT if pt == 205 else PSFB_FMT
        pkt.fb_name = names.get(count, f"fmt_{count}")
        if pt == 206 and count == 15 and data[body + 8 : body + 12] == b"REMB":
            pkt.fb_name = "REMB"
    elif pt == 207:  # XR (RFC 3611 §3)
        pkt.ssrc = u32(body)
        p = body + 4
        while p + 4 <= end:
            bt = data[p]
            blen = (int.from_bytes(data[p + 2 : p + 4], "big") + 1) * 4
            if p + blen > end:
                raise TruncatedError("rtcp_xr_truncated", "RTCP XR report block is truncated")
            pkt.xr_blocks.append(XR_BLOCKS.get(bt, f"type_{bt}"))
            p += blen
    elif body + 4 <= end:
        pkt.ssrc = u32(body)
    return pkt


def decode_rtcp_compound(data: bytes | memoryview) -> RtcpCompound:
    """Decode every packet of a compound RTCP datagram (RFC 3550 §6.1).

    A compound that does not parse to its end is SRTCP (RFC 3711 §3.4): the first 8 bytes (header and
    sender SSRC) are clear, the rest is ciphertext followed by the E flag + index and the auth tag. Then
    only the first packet's clear fields are returned (``encrypted=True``). Raises DecodeError only when
    not even the first header is readable."""
    data = bytes(data)
    n = len(data)
    first = _clear_header(data)
    packets: list[RtcpPacket] = []
    pos = 0
    while pos < n:
        if not any(data[pos:]):  # zero bytes after the last packet: padding some stacks add, not SRTCP
            break
        try:
            pkt = decode_rtcp(data, pos)
        except DecodeError as e:
            return RtcpCompound(packets=[first], encrypted=True, trailer_len=n - first.length, error=e)
        packets.append(pkt)
        pos += pkt.length
    return RtcpCompound(packets=packets, encrypted=False)


def _clear_header(data: bytes) -> RtcpPacket:
    """The part of the first RTCP packet that SRTCP leaves in clear: V/P/count, PT, length, SSRC."""
    if len(data) < 8:
        raise TruncatedError("rtcp_truncated", "RTCP packet header is truncated")
    if data[0] >> 6 != 2:
        raise DecodeError("rtcp_version", f"RTCP packet has invalid version {data[0] >> 6}")
    length = (int.from_bytes(data[2:4], "big") + 1) * 4
    if length > len(data):
        raise TruncatedError("rtcp_length", f"RTCP packet length {length} exceeds the {len(data)} bytes left")
    return RtcpPacket(
        packet_type=data[1],
        count=data[0] & 0x1F,
        length=length,
        ssrc=int.from_bytes(data[4:8], "big"),
        padding=bool(data[0] & 0x20),
    )
