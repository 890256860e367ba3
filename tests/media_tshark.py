"""tshark as the reference for the media-plane tests, and rewriting of real captures (link layer, byte order,
fragmentation) so that every link type and format is exercised with real packets.

Used by tests/test_{pcapio,demux,fastpath,rtp,tables_packets,tables_rtp}.py."""

from __future__ import annotations

import collections
import shutil
import struct
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pytest

from rtcforensics.dissect.pcapio import CaptureReader

HEURISTICS = ("--enable-heuristic", "rtp_udp", "--enable-heuristic", "rtp_stun")


def need_tshark() -> str:
    exe = shutil.which("tshark")
    if exe is None:
        pytest.skip("tshark not installed")
    return exe


def fields(
    path: Path | str,
    names: Iterable[str],
    *args: str,
    display_filter: str | None = None,
    heuristics: bool = True,
) -> list[list[str]]:
    """``tshark -T fields`` rows (one list of strings per displayed frame)."""
    exe = need_tshark()
    cmd = [
        exe,
        "-r",
        str(path),
        "-n",
        *(HEURISTICS if heuristics else ()),
        *args,
        "-T",
        "fields",
        "-E",
        "separator=\t",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
    ]
    for n in names:
        cmd += ["-e", n]
    if display_filter:
        cmd += ["-Y", display_filter]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False).stdout
    return [line.split("\t") for line in out.splitlines()]


def frame_count(path: Path | str) -> int:
    return len(fields(path, ["frame.number"], heuristics=False))


def ssrc_counts(path: Path | str, *args: str) -> collections.Counter[int]:
    """RTP packets per SSRC as tshark dissects them (heuristics + any Decode-As in ``args``); RTP quoted
    inside ICMP errors is not media and is left out."""
    c: collections.Counter[int] = collections.Counter()
    for (ssrcs,) in fields(path, ["rtp.ssrc"], *args, display_filter="rtp && !icmp && !icmpv6"):
        for s in ssrcs.split(","):
            if s:
                c[int(s, 16)] += 1
    return c


def epoch_ns(s: str) -> int:
    """tshark's frame.time_epoch ("1234.123456789") to integer nanoseconds, exactly."""
    sec, _, frac = s.partition(".")
    return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])


# -- rewriting real captures -------------------------------------------------------------------
def records(path: Path | str) -> list[tuple[int, bytes, int]]:
    """(ts_ns, packet bytes, original length) of every record, via our reader."""
    out = []
    for b in CaptureReader(path).batches():
        for i in range(len(b)):
            out.append((int(b.ts_ns[i]), b.packet(i), int(b.origlen[i])))
    return out


def write_pcap(
    path: Path,
    linktype: int,
    recs: Iterable[tuple[int, bytes, int]],
    *,
    nanos: bool = False,
    big_endian: bool = False,
) -> Path:
    e = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    with path.open("wb") as fh:
        fh.write(struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype))
        for ts, data, orig in recs:
            frac = ts % 1_000_000_000 if nanos else (ts % 1_000_000_000) // 1000
            fh.write(struct.pack(e + "IIII", ts // 1_000_000_000, frac, len(data), max(orig, len(data))))
            fh.write(data)
    return path


def relink(recs: list[tuple[int, bytes, int]], kind: str) -> list[tuple[int, bytes, int]]:
    """Replace the Ethernet header of real packets by another link layer's header."""
    out = []
    for ts, data, orig in recs:
        etype, payload = data[12:14], data[14:]
        ip6 = etype == b"\x86\xdd"
        if kind == "null":  # BSD loopback, host byte order (little-endian here): AF_INET 2, AF_INET6 30
            hdr = struct.pack("<I", 30 if ip6 else 2)
        elif kind == "loop":  # OpenBSD loopback, network order: AF_INET 2, AF_INET6 24
            hdr = struct.pack(">I", 24 if ip6 else 2)
        elif kind == "sll2":  # Linux cooked v2: protocol, reserved, ifindex, arphrd, pkttype, addr len, addr
            hdr = etype + b"\x00\x00" + struct.pack(">IHBB", 2, 1, 0, 6) + data[6:12] + b"\x00\x00"
        elif kind == "sll":  # Linux cooked v1: pkttype, arphrd, addr len, addr(8), protocol
            hdr = struct.pack(">HHH", 0, 1, 6) + data[6:12] + b"\x00\x00" + etype
        elif kind == "vlan":  # one 802.1Q tag
            hdr = data[:12] + b"\x81\x00\x00\x64" + etype
        elif kind == "qinq":  # 802.1ad outer tag + 802.1Q inner tag
            hdr = data[:12] + b"\x88\xa8\x00\x0a\x81\x00\x00\x64" + etype
        elif kind == "raw":
            hdr = b""
        else:
            raise ValueError(kind)
        out.append((ts, hdr + payload, orig - len(data) + len(hdr) + len(payload)))
    return out


def write_pcapng(path: Path, linktype: int, recs: Iterable[tuple[int, bytes, int]], block: str) -> Path:
    """A one-interface pcapng (if_tsresol 10^-9) whose packets are in ``block`` blocks: "epb", "spb" (no
    timestamp) or "opb" (obsolete Packet Block)."""

    def blk(btype: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    with path.open("wb") as fh:
        fh.write(blk(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
        opts = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)  # if_tsresol = 9, end of options
        fh.write(blk(1, struct.pack("<HHI", linktype, 0, 262144) + opts))
        for ts, data, orig in recs:
            if block == "epb":
                fh.write(blk(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(data), orig) + data))
            elif block == "opb":
                fh.write(
                    blk(2, struct.pack("<HHIIII", 0, 0, ts >> 32, ts & 0xFFFFFFFF, len(data), orig) + data)
                )
            else:
                fh.write(blk(3, struct.pack("<I", orig) + data))
    return path


LINKTYPE = {"null": 0, "loop": 108, "sll2": 276, "sll": 113, "vlan": 1, "qinq": 1, "raw": 101}


def fragment_ipv4(data: bytes, l3: int, sizes: list[int]) -> list[bytes]:
    """Split the IPv4 datagram at ``l3`` in real packet ``data`` into fragments carrying ``sizes`` bytes of
    payload each (multiples of 8; the rest goes in a last fragment); header checksum recomputed."""
    ihl = (data[l3] & 0x0F) * 4
    hdr, payload = (
        bytearray(data[l3 : l3 + ihl]),
        data[l3 + ihl : l3 + struct.unpack_from("!H", data, l3 + 2)[0]],
    )
    frags, off = [], 0
    cuts = sizes + [len(payload) - sum(sizes)]
    for k, size in enumerate(cuts):
        h = bytearray(hdr)
        more = k < len(cuts) - 1
        struct.pack_into("!H", h, 2, ihl + size)
        struct.pack_into("!H", h, 6, (0x2000 if more else 0) | (off // 8))
        struct.pack_into("!H", h, 10, 0)
        struct.pack_into("!H", h, 10, _checksum(bytes(h)))
        frags.append(data[:l3] + bytes(h) + payload[off : off + size])
        off += size
    return frags


def fragment_ipv6(data: bytes, l3: int, sizes: list[int], ident: int = 0x1234) -> list[bytes]:
    """Split the IPv6 packet at ``l3`` (no extension headers) into fragments (RFC 8200 §4.5) carrying
    ``sizes`` bytes of its payload each (multiples of 8; the rest in a last fragment)."""
    hdr, nh = bytearray(data[l3 : l3 + 40]), data[l3 + 6]
    payload = data[l3 + 40 : l3 + 40 + struct.unpack_from("!H", data, l3 + 4)[0]]
    frags, off = [], 0
    cuts = sizes + [len(payload) - sum(sizes)]
    for k, size in enumerate(cuts):
        h = bytearray(hdr)
        struct.pack_into("!H", h, 4, 8 + size)
        h[6] = 44
        more = k < len(cuts) - 1
        fh = struct.pack("!BBHI", nh, 0, off | int(more), ident)
        frags.append(data[:l3] + bytes(h) + fh + payload[off : off + size])
        off += size
    return frags


def _checksum(b: bytes) -> int:
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
