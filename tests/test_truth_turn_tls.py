"""turn_tls_relay: the truth of each TURN leg checked against the capture with tshark (not our parser).

- TURN-TLS (alice <-> coturn :5349): a TLS handshake with the version and suite alice's Python ssl reported;
  nothing inside readable, even with the scenario's keylog (it holds no keys for that leg).
- TURN-TCP (bob <-> coturn :3478/tcp): every STUN message and ChannelData frame bob's aioice wrote and read,
  per direction; USERNAME, the 401's REALM and coturn's SOFTWARE in clear; coturn's relay-side usage counters.
- UDP between the relays: each RTP packet once per direction, the DTLS handshake, and each RTP packet once
  more inside ChannelData on the TCP leg.
"""

from __future__ import annotations

import functools
import shutil
from collections import Counter
from typing import Any

import pytest
from samples import SAMPLES, load_truth, sample_path

from lab.truthlib import WireFrame, stun_key_from_type, tshark_frames
from lab.truthlib import first_values as first

NAME = "turn_tls_relay"
pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
TLS_VERSIONS = {"TLSv1.3": "0x0304", "TLSv1.2": "0x0303"}
TLS13_SUITES = {
    "TLS_AES_128_GCM_SHA256": "0x1301",
    "TLS_AES_256_GCM_SHA384": "0x1302",
    "TLS_CHACHA20_POLY1305_SHA256": "0x1303",
}


# one tshark pass (no keylog) for everything the tests below read; each applies its own filter in Python
FIELDS = (
    "ip.src",
    "ip.dst",
    "tcp.srcport",
    "tcp.dstport",
    "udp.srcport",
    "udp.dstport",
    "tls.handshake.type",
    "tls.handshake.extensions.supported_version",
    "tls.handshake.ciphersuite",
    "tls.record.content_type",
    "tls.record.opaque_type",
    "stun.type",
    "stun.channel",
    "stun.att.username",
    "stun.att.realm",
    "stun.att.error.class",
    "stun.att.error",
    "stun.att.software",
    "rtp.ssrc",
    "dtls.handshake.type",
    "dtls.handshake.random",
)
INSIDE = ("stun", "rtp", "dtls", "rtcp")  # what a TURN leg carries, if tshark can read into it


@functools.cache
def wire() -> list[WireFrame]:
    return tshark_frames(sample_path(NAME), FIELDS, display_filter="tls || " + " || ".join(INSIDE))


@functools.cache
def inside_tls_leg_with_keylog(port: str) -> list[WireFrame]:
    """Frames of the TLS leg in which tshark, given the scenario's keylog, reads STUN/RTP/DTLS/RTCP."""
    flt = f"tcp.port=={port} && ({' || '.join(INSIDE)})"
    return tshark_frames(
        sample_path(NAME), (), display_filter=flt, keylog=SAMPLES / load_truth(NAME)["keylog"]
    )


def on_stream(src: str, dst: str, proto: str) -> list[WireFrame]:
    """``proto`` frames of the TCP stream from ``src`` to ``dst`` (ip:port each)."""
    (sa, sp), (da, dp) = src.rsplit(":", 1), dst.rsplit(":", 1)
    return [
        f
        for f in wire()
        if proto in f["frame.protocols"]
        and first(f, "ip.src", "tcp.srcport", "ip.dst", "tcp.dstport") == (sa, sp, da, dp)
    ]


def leg(transport: str) -> dict[str, Any]:
    return next(lg for lg in load_truth(NAME)["turn_legs"] if lg["transport"] == transport)


def test_turn_tls_leg_handshake_matches_the_client_stack() -> None:
    lg = leg("tls")
    hello = [f for f in on_stream(lg["client"], lg["server"], "tls") if "1" in f["tls.handshake.type"]]
    assert len(hello) == 1
    sh = [f for f in on_stream(lg["server"], lg["client"], "tls") if "2" in f["tls.handshake.type"]]
    assert len(sh) == 1
    version, suite = first(sh[0], "tls.handshake.extensions.supported_version", "tls.handshake.ciphersuite")
    assert version == TLS_VERSIONS[lg["tls_version"]]
    assert suite == TLS13_SUITES[lg["tls_cipher"]]


def test_turn_tls_leg_is_opaque_even_with_the_keylog() -> None:
    lg = leg("tls")
    assert lg["readable_without_keys"] is False
    port = lg["server"].rsplit(":", 1)[1]
    leg_frames = [f for f in wire() if port in f["tcp.srcport"] + f["tcp.dstport"]]
    assert not [f for f in leg_frames if set(INSIDE) & set(f["frame.protocols"])]
    assert inside_tls_leg_with_keylog(port) == []
    # and yet the leg carried every message alice's aioice wrote: TLS records flowed both ways
    app = [
        first(f, "ip.src")
        for f in leg_frames
        if "23" in f["tls.record.content_type"] + f["tls.record.opaque_type"]
    ]
    sent_by_client = sum(1 for (src,) in app if src == lg["client"].rsplit(":", 1)[0])
    assert sent_by_client > 0 and len(app) - sent_by_client > 0
    assert sum(lg["stack_messages_sent"].values()) > 0


def _stream_messages(src: str, dst: str) -> Counter:
    seen: Counter = Counter()
    for f in on_stream(src, dst, "stun"):
        for t in f["stun.type"]:
            seen[stun_key_from_type(int(t, 16))] += 1
        seen["ChannelData"] += len(f["stun.channel"])
    return +seen


def test_turn_tcp_leg_carries_exactly_what_the_stack_wrote_and_read() -> None:
    lg = leg("tcp")
    assert _stream_messages(lg["client"], lg["server"]) == Counter(lg["stack_messages_sent"])
    assert _stream_messages(lg["server"], lg["client"]) == Counter(lg["stack_messages_received"])
    # coturn's relay-side counters: what it relayed for this client ~ the ChannelData frames on the stream (the
    # last few may be in flight when the first peer closes)
    usage = lg["coturn_session"]["peer_usage"]
    assert abs(usage["sp"] - lg["stack_messages_sent"]["ChannelData"]) <= 3
    assert abs(usage["rp"] - lg["stack_messages_received"]["ChannelData"]) <= 3


def test_turn_tcp_leg_credentials_and_software_in_clear() -> None:
    t = load_truth(NAME)
    lg = leg("tcp")
    creds = t["turn_credentials"]
    req = [f for f in on_stream(lg["client"], lg["server"], "stun") if f["stun.att.username"]]
    assert req and {first(f, "stun.att.username")[0] for f in req} == {creds["username"]}
    err = [
        first(f, "stun.att.realm", "stun.att.error.class", "stun.att.error", "stun.att.software")
        for f in on_stream(lg["server"], lg["client"], "stun")
        if f["stun.att.error"]
    ]
    assert [(r[0], int(r[1]) * 100 + int(r[2])) for r in err] == [(creds["realm"], 401)]
    assert err[0][3] == t["turn_servers"]["tcp"]["software"]
    assert (
        lg["coturn_session"]["user"] == creds["username"] and lg["coturn_session"]["realm"] == creds["realm"]
    )
    assert leg("tls")["coturn_session"]["user"] == creds["username"]


def test_rtp_on_the_relay_leg_and_inside_channeldata_on_the_tcp_leg() -> None:
    t = load_truth(NAME)
    seen: Counter = Counter()
    # every RTP header: a TCP segment may carry several ChannelData (RTP and RTCP)
    for f in wire():
        if "rtp" not in f["frame.protocols"] or "icmp" in f["frame.protocols"]:
            continue
        s, us, ts, d, ud, td = first(
            f, "ip.src", "udp.srcport", "tcp.srcport", "ip.dst", "udp.dstport", "tcp.dstport"
        )
        for x in f["rtp.ssrc"]:
            seen[(int(x, 16), f"{s}:{us or ts}", f"{d}:{ud or td}")] += 1
    want: Counter = Counter()
    for r in t["rtp"]:
        want[(r["ssrc"], r["src"], r["dst"])] += r["packets"]
        want[(r["ssrc"], r["tcp_leg"]["src"], r["tcp_leg"]["dst"])] += r["tcp_leg"]["packets"]
        if r["sender"] == "alice":  # bob, who closes last, read every packet alice sent
            assert r["received_by_other_stack"] == r["packets"]
    assert seen == want
    relay = leg("udp")
    assert {f"{r['src']}->{r['dst']}": r["packets"] for r in t["rtp"]} == relay["rtp_packets"]


def test_dtls_handshake_between_the_relays() -> None:
    t = load_truth(NAME)
    (d,) = t["dtls"]
    hellos = [
        first(f, "ip.src", "udp.srcport", "ip.dst", "udp.dstport", "tcp.srcport")
        for f in wire()
        if "1" in f["dtls.handshake.type"]
        and d["client_random"] in [r.replace(":", "") for r in f["dtls.handshake.random"]]
    ]
    legs = {(f"{r[0]}:{r[1] or r[4]}", f"{r[2]}:{r[3]}" if r[3] else r[2]) for r in hellos}
    assert (d["client"], d["server"]) in legs  # relay -> relay, UDP
    # the same ClientHello also crosses bob's TURN-TCP stream (inside ChannelData); never the TLS leg
    assert any(r[4] for r in hellos)
    assert not any(r[4] == leg("tls")["server"].rsplit(":", 1)[1] for r in hellos)
