"""RFC 7983 classification on real payloads: scalar and vectorised agree, and agree with tshark."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from media_tshark import fields

from rtcforensics.dissect.demux import (
    CLASSES,
    DTLS,
    RTCP,
    RTP,
    STUN,
    TURN_CHANNEL,
    classify,
    classify_array,
    tcp_kind,
)

CAPS = [
    "veondigital_srtp_decoder/udp_call_02_03_client.pcap",
    "nDPI/stun_google_meet.pcapng",
    "nDPI/stun_zoom.pcapng",
    "sipcapture_heplify/rtp_rtcp_sip_ipv4_udp.pcap",
    "nDPI/discord.pcap",
    "nDPI/rtcp_multiple_pkts_in_the_same_datagram.pcap",
    "zeek/dtls13-wolfssl.pcap",
    "nDPI/wa_voice.pcap",
]


def _udp_payloads(path: Path) -> list[tuple[int, str, bytes]]:
    rows = fields(path, ["frame.number", "frame.protocols", "udp.payload"], display_filter="udp && !icmp")
    return [(int(r[0]), r[1], bytes.fromhex(r[2])) for r in rows if len(r) == 3]


@pytest.mark.parametrize("name", CAPS)
def test_scalar_and_vectorised_agree(realcaps: Path, name: str) -> None:
    payloads = [p for _, _, p in _udp_payloads(realcaps / name)]
    assert payloads
    buf = np.frombuffer(b"".join(payloads) + b"\0" * 8, dtype=np.uint8)
    lens = np.array([len(p) for p in payloads], dtype=np.int64)
    offs = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    vec = classify_array(buf, offs, lens)
    assert vec.tolist() == [classify(p) for p in payloads]


# tshark's outermost media protocol above UDP -> our class
TSHARK_CLASS = {"stun": STUN, "dtls": DTLS, "rtp": RTP, "rtcp": RTCP, "turnchannel": TURN_CHANNEL}


@pytest.mark.parametrize("name", CAPS)
def test_classes_agree_with_tshark(realcaps: Path, name: str) -> None:
    checked = 0
    for frame, protocols, payload in _udp_payloads(realcaps / name):
        layers = protocols.split(":")
        above = layers[layers.index("udp") + 1] if "udp" in layers and layers[-1] != "udp" else None
        if above == "rtp" and "rtcp" in layers:
            above = "rtcp"  # tshark's RTP heuristic hands RFC 5761-muxed RTCP on to RTCP
        if above not in TSHARK_CLASS or (above == "stun" and payload[:1] and 64 <= payload[0] <= 79):
            continue  # tshark 4.0 shows ChannelData under "stun"
        got = classify(payload)
        assert CLASSES[got] == CLASSES[TSHARK_CLASS[above]], f"frame {frame}: tshark {protocols}"
        checked += 1
    assert checked > 0


def _first_segment(path: Path, stream: int, srcport: int) -> bytes:
    rows = fields(
        path,
        ["tcp.payload"],
        display_filter=f"tcp.stream=={stream} && tcp.srcport=={srcport} && tcp.len>0",
        heuristics=False,
    )
    return bytes.fromhex(rows[0][0])


@pytest.mark.parametrize(
    "name,stream,srcport,kind",
    [
        ("veondigital_srtp_decoder/TCP_call_1.pcap", 8, None, "turn"),
        ("nDPI/stun_dtls_rtp.pcapng", 0, 50221, "turn"),
        ("nDPI/rtp.pcapng", None, 40252, "rfc4571"),  # RTP over TCP, RFC 4571
        ("ogolosovskiy_srtp_decoder/WebRTC_PCMA_p2p_SDES_Call_1.pcap", None, 63101, "rfc4571"),  # ICE-TCP
        ("zeek/websocket.pcap", 0, None, "http"),
        ("veondigital_srtp_decoder/udp_call_02_03_client.pcap", None, 443, "tls"),
    ],
)
def test_tcp_kind_of_real_streams(
    realcaps: Path, name: str, stream: int | None, srcport: int | None, kind: str
) -> None:
    path = realcaps / name
    flt = (
        "tcp.len>0"
        + (f" && tcp.stream=={stream}" if stream is not None else "")
        + (f" && tcp.srcport=={srcport}" if srcport is not None else "")
    )
    rows = fields(path, ["tcp.payload"], display_filter=flt, heuristics=False)
    first = bytes.fromhex(rows[0][0])
    # undecided while the first frame is incomplete: feed segments as the fast path would
    buf = first
    k = 1
    got = tcp_kind(buf)
    while got is None and k < len(rows):
        buf += bytes.fromhex(rows[k][0])
        k += 1
        got = tcp_kind(buf)
    assert got == kind


def test_tcp_kind_mid_stream_tls_is_not_media(realcaps: Path) -> None:
    # capture starts inside a TLS stream (frames 3 and 196 of this capture looked like RFC 4571 once)
    rows = fields(
        realcaps / "ogolosovskiy_srtp_decoder/WebRTC_PCMA_p2p_SDES_Call_1.pcap",
        ["tcp.payload"],
        display_filter="tcp.srcport==63098 && tcp.len>0",
        heuristics=False,
    )
    buf = b"".join(bytes.fromhex(r[0]) for r in rows[:4])
    assert tcp_kind(buf, final=True) == "other"
