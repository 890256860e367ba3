"""Write decrypted RTP as a classic pcap (raw IP, LINKTYPE 101) that Wireshark plays as plain RTP.

Each packet keeps its original frame time and endpoints; IP and UDP headers are rebuilt for the shorter
plaintext (no auth tag). UDP checksums are zero (allowed for IPv4; Wireshark does not complain for IPv6 either
when checksum validation is off, its default)."""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from ..addr import split_endpoint

LINKTYPE_RAW = 101


def _split(text: str) -> tuple[str, int]:
    host, port = split_endpoint(text)
    return host, port or 0


def _ip_udp(src: str, dst: str, payload: bytes) -> bytes:
    (sh, sp), (dh, dp) = _split(src), _split(dst)
    udp = struct.pack("!HHHH", sp, dp, 8 + len(payload), 0) + payload
    s, d = ipaddress.ip_address(sh), ipaddress.ip_address(dh)
    if s.version == 4 and d.version == 4:
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0, s.packed, d.packed)
        csum = sum(struct.unpack("!10H", hdr))
        while csum >> 16:
            csum = (csum & 0xFFFF) + (csum >> 16)
        hdr = hdr[:10] + struct.pack("!H", ~csum & 0xFFFF) + hdr[12:]
        return hdr + udp
    s6 = s if s.version == 6 else ipaddress.IPv6Address(f"::ffff:{s}")
    d6 = d if d.version == 6 else ipaddress.IPv6Address(f"::ffff:{d}")
    return struct.pack("!IHBB16s16s", 6 << 28, len(udp), 17, 64, s6.packed, d6.packed) + udp


def write_rtp_pcap(path: Path, packets: Iterable[tuple[int, str, str, bytes]]) -> int:
    """``packets``: (ts_ns, sender ip:port, receiver ip:port, plaintext RTP). Returns the count written."""
    n = 0
    with open(path, "wb") as fh:
        _header(fh)
        for ts_ns, src, dst, rtp in packets:
            data = _ip_udp(src, dst, rtp)
            sec, nsec = divmod(ts_ns, 1_000_000_000)
            fh.write(struct.pack("<IIII", sec, nsec // 1000, len(data), len(data)))
            fh.write(data)
            n += 1
    return n


def _header(fh: BinaryIO) -> None:
    fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_RAW))
