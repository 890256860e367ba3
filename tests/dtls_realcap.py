"""Test helper for the DTLS tests: DTLS datagrams of a capture as ``Datagram`` objects.

Uses the fast path (``dissect.fastpath``) when it exists, otherwise tshark's ``udp.payload`` export (the
innermost UDP layer, so GTP-tunnelled DTLS in nDPI/dtls.pcap is reached too). The payload bytes are the
same either way; tshark is only the transport for them, our code does the parsing.
"""

from __future__ import annotations

import subprocess
from functools import lru_cache
from pathlib import Path

from rtcforensics.dissect.model import Datagram


@lru_cache(maxsize=64)
def _tshark_datagrams(path: str, display_filter: str) -> tuple[Datagram, ...]:
    fields = ["frame.number", "frame.time_epoch", "ip.src", "ipv6.src", "udp.srcport", "ip.dst", "ipv6.dst",
              "udp.dstport", "udp.payload"]
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
        dgs.append(Datagram(int(num), ts_ns, flow_id, src, int(sport), dst, int(dport), "udp",
                            bytes.fromhex(payload)))
    return tuple(dgs)


def dtls_datagrams(path: Path, display_filter: str = "udp") -> list[Datagram]:
    return list(_tshark_datagrams(str(path), display_filter))
