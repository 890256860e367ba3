"""Test helpers: STUN messages and tshark's own view of them, read from third-party captures with tshark.

Used by tests/test_stun.py, test_tables_stun.py and test_drill.py until the fast path hands out Datagrams;
nothing here is package code. tshark's ``stun.type.class`` is the C1/C0 bits written as hex digits
(0x0000, 0x0001, 0x0010, 0x0011), not the RFC 2-bit class: :data:`TSHARK_CLASS` converts it.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from functools import cache
from pathlib import Path

from rtcforensics.dissect.model import Datagram

TSHARK_CLASS = {0x0000: "request", 0x0001: "indication", 0x0010: "success", 0x0011: "error"}

# Every realcap with STUN in it: Coturn 4.4.5.4 / 4.5.0.3, Google Meet and Google TURN over TCP, ICE-TCP,
# several Allocates in one TCP segment, WhatsApp's proprietary STUN, Zoom, GeForce NOW.
STUN_CAPTURES = [
    "nDPI/stun_dtls_rtp_unidir.pcapng",
    "nDPI/stun_google_meet.pcapng",
    "ogolosovskiy_srtp_decoder/WebRTC_PCMA_p2p_SDES_Call_1.pcap",
    "veondigital_srtp_decoder/udp_call_02_03_client.pcap",
    "nDPI/stun_dtls_rtp.pcapng",
    "nDPI/stun_tcp_multiple_msgs_same_pkt.pcap",
    "nDPI/stun_wa_call.pcapng",
    "nDPI/wa_voice.pcap",
    "nDPI/stun_zoom.pcapng",
    "nDPI/geforcenow.pcapng",
    "nDPI/stun_dtls_unidirectional_client.pcap",
    "nDPI/stun_dtls_unidirectional_server.pcap",
    "ogolosovskiy_srtp_decoder/webrtc_opus_p2p.pcap",
    "veondigital_srtp_decoder/TCP_call_1.pcap",
]


def _tshark(args: list[str]) -> str:
    out = subprocess.run(["tshark", *args], capture_output=True, text=True, timeout=120, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"tshark {' '.join(args)} failed: {out.stderr[-500:]}")
    return out.stdout


@cache
def udp_payloads(path: Path) -> tuple[tuple[int, bytes], ...]:
    """(frame number, UDP payload) for every UDP packet, whatever tshark thinks it is."""
    rows = []
    for line in _tshark(
        ["-r", str(path), "-Y", "udp && !icmp", "-T", "fields", "-e", "frame.number", "-e", "udp.payload"]
    ).splitlines():
        num, _, hexdata = line.partition("\t")
        rows.append((int(num), bytes.fromhex(hexdata)))
    return tuple(rows)


@cache
def tshark_counts(path: Path) -> Counter:
    """tshark's STUN message counts by (method code, class label), every STUN layer of every frame."""
    counts: Counter = Counter()
    for line in _tshark(
        [
            "-r",
            str(path),
            "-Y",
            "stun && !icmp && !icmpv6",
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-e",
            "stun.type.method",
            "-e",
            "stun.type.class",
        ]
    ).splitlines():
        methods, _, classes = line.partition("\t")
        if not methods:  # TURN ChannelData: tshark's STUN layer, but no STUN message
            continue
        for m, c in zip(methods.split(","), classes.split(",")):
            counts[(int(m, 16), TSHARK_CLASS[int(c, 16)])] += 1
    return counts


def _flatten(x: object) -> list:
    # With --no-duplicate-keys a layer seen twice in a frame becomes a list of its values.
    if isinstance(x, list) and x and isinstance(x[0], list):
        return x
    return [x] if x else []


@cache
def stun_datagrams(path: Path) -> tuple[Datagram, ...]:
    """One Datagram per STUN message tshark dissects (its own bytes, 5-tuple of the frame)."""
    packets = json.loads(_tshark(["-r", str(path), "-Y", "stun", "-T", "json", "-x", "--no-duplicate-keys"]))
    out = []
    flows: dict[tuple, int] = {}
    for p in packets:
        L = p["_source"]["layers"]
        if "icmp" in L or "icmpv6" in L:  # a STUN message quoted inside an ICMP error
            continue
        frame = L["frame"]
        num = int(frame["frame.number"])
        ts_ns = round(float(frame["frame.time_epoch"]) * 1e9)
        ip = L.get("ip") or L.get("ipv6")
        fam = "ip" if "ip" in L else "ipv6"
        src, dst = ip[f"{fam}.src"], ip[f"{fam}.dst"]
        if isinstance(src, list):  # tunnelled (GTP): the innermost header
            src, dst = src[-1], dst[-1]
        transport = "udp" if "udp" in L else "tcp"
        t = L[transport]
        sport, dport = int(t[f"{transport}.srcport"]), int(t[f"{transport}.dstport"])
        key = (transport, frozenset({(src, sport), (dst, dport)}))
        flow = flows.setdefault(key, len(flows) + 1)
        raws = _flatten(L.get("stun_raw"))
        for raw_field in raws:
            raw = bytes.fromhex(raw_field[0])
            if transport == "tcp" and int.from_bytes(raw[:2], "big") == len(raw) - 2:
                raw = raw[2:]  # RFC 4571 framing (ICE-TCP): tshark's STUN layer includes the length
            if raw[:1] and 0x40 <= raw[0] <= 0x4F:  # TURN ChannelData, not a STUN message
                continue
            # tshark 4.0 does not dissect STUN carried inside TURN Data/Send indications or ChannelData,
            # so these are the messages on the wire (several per TCP segment at times).
            out.append(Datagram(num, ts_ns, flow, src, sport, dst, dport, transport, raw))
    return tuple(out)
