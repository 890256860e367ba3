"""Test helper for the DTLS tests: DTLS datagrams of a capture as ``Datagram`` objects.

tshark's ``udp.payload`` export (innermost UDP layer) carries the payload bytes, filtered by first byte as
RFC 7983 says; our code does all the parsing. The decoder tests thus run independently of the fast path and
also reach the GTP-tunnelled DTLS of nDPI/dtls.pcap, which the fast path does not unwrap. The end-to-end
tests (``rtcforensics.load``) use the fast path.
"""

from __future__ import annotations

import subprocess
from functools import lru_cache
from pathlib import Path

from rtcforensics.dissect.model import Datagram


@lru_cache(maxsize=64)
def _tshark_datagrams(path: str, display_filter: str) -> tuple[Datagram, ...]:
    fields = [
        "frame.number",
        "frame.time_epoch",
        "ip.src",
        "ipv6.src",
        "udp.srcport",
        "ip.dst",
        "ipv6.dst",
        "udp.dstport",
        "udp.payload",
    ]
    cmd = ["tshark", "-r", path, "-Y", display_filter, "-T", "fields", "-E", "occurrence=l"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    flows: dict[tuple[str, ...], int] = {}
    dgs = []
    for line in out.splitlines():
        num, t, ip4s, ip6s, sport, ip4d, ip6d, dport, payload = line.split("\t")
        src, dst = ip4s or ip6s, ip4d or ip6d
        if not payload or not 20 <= int(payload[:2], 16) <= 63:  # RFC 7983: 20..63 -> DTLS
            continue
        key = tuple(sorted([f"{src}:{sport}", f"{dst}:{dport}"]))
        flow_id = flows.setdefault(key, len(flows) + 1)
        sec, _, frac = t.partition(".")
        ts_ns = int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])
        dgs.append(
            Datagram(
                int(num), ts_ns, flow_id, src, int(sport), dst, int(dport), "udp", bytes.fromhex(payload)
            )
        )
    return tuple(dgs)


def dtls_datagrams(path: Path, display_filter: str = "udp") -> list[Datagram]:
    return list(_tshark_datagrams(str(path), display_filter))
