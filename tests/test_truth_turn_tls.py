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

from lab.truthlib import stun_key_from_type, tshark_fields

NAME = "turn_tls_relay"
pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
TLS_VERSIONS = {"TLSv1.3": "0x0304", "TLSv1.2": "0x0303"}
TLS13_SUITES = {
    "TLS_AES_128_GCM_SHA256": "0x1301",
    "TLS_AES_256_GCM_SHA384": "0x1302",
    "TLS_CHACHA20_POLY1305_SHA256": "0x1303",
}


@functools.cache
def rows(fields: tuple[str, ...], flt: str, keylog: bool = False) -> list[list[str]]:
    t = load_truth(NAME)
    return tshark_fields(
        sample_path(NAME), list(fields), display_filter=flt, keylog=SAMPLES / t["keylog"] if keylog else None
    )


def leg(transport: str) -> dict[str, Any]:
    return next(lg for lg in load_truth(NAME)["turn_legs"] if lg["transport"] == transport)


def tcp_filter(src: str, dst: str) -> str:
    (sa, sp), (da, dp) = src.rsplit(":", 1), dst.rsplit(":", 1)
    return f"ip.src=={sa} && tcp.srcport=={sp} && ip.dst=={da} && tcp.dstport=={dp}"


def test_turn_tls_leg_handshake_matches_the_client_stack() -> None:
    lg = leg("tls")
    hello = rows(
        ("tls.handshake.type",), tcp_filter(lg["client"], lg["server"]) + " && tls.handshake.type==1"
    )
    assert len(hello) == 1
    sh = rows(
        ("tls.handshake.extensions.supported_version", "tls.handshake.ciphersuite"),
        tcp_filter(lg["server"], lg["client"]) + " && tls.handshake.type==2",
    )
    assert len(sh) == 1
    version, suite = sh[0]
    assert version.split(",")[0] == TLS_VERSIONS[lg["tls_version"]]
    assert suite.split(",")[0] == TLS13_SUITES[lg["tls_cipher"]]


def test_turn_tls_leg_is_opaque_even_with_the_keylog() -> None:
    lg = leg("tls")
    assert lg["readable_without_keys"] is False
    port = lg["server"].rsplit(":", 1)[1]
    for keylog in (False, True):
        inside = rows(("frame.number",), f"tcp.port=={port} && (stun || rtp || dtls || rtcp)", keylog)
        assert inside == []
    # and yet the leg carried every message alice's aioice wrote: TLS records flowed both ways
    app = rows(("ip.src",), f"tcp.port=={port} && tls.app_data")
    sent_by_client = sum(1 for (src,) in app if src == lg["client"].rsplit(":", 1)[0])
    assert sent_by_client > 0 and len(app) - sent_by_client > 0
    assert sum(lg["stack_messages_sent"].values()) > 0


def _stream_messages(src: str, dst: str) -> Counter:
    seen: Counter = Counter()
    for types, channels in rows(("stun.type", "stun.channel"), tcp_filter(src, dst) + " && stun"):
        for t in filter(None, types.split(",")):
            seen[stun_key_from_type(int(t, 16))] += 1
        seen["ChannelData"] += len([c for c in channels.split(",") if c])
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
    req = rows(("stun.att.username",), tcp_filter(lg["client"], lg["server"]) + " && stun.att.username")
    assert {r[0] for r in req} == {creds["username"]}
    err = rows(
        ("stun.att.realm", "stun.att.error.class", "stun.att.error", "stun.att.software"),
        tcp_filter(lg["server"], lg["client"]) + " && stun.att.error",
    )
    assert [(r[0], int(r[1]) * 100 + int(r[2])) for r in err] == [(creds["realm"], 401)]
    assert err[0][3] == t["turn_servers"]["tcp"]["software"]
    assert (
        lg["coturn_session"]["user"] == creds["username"] and lg["coturn_session"]["realm"] == creds["realm"]
    )
    assert leg("tls")["coturn_session"]["user"] == creds["username"]


def test_rtp_on_the_relay_leg_and_inside_channeldata_on_the_tcp_leg() -> None:
    t = load_truth(NAME)
    seen: Counter = Counter()
    for ssrcs, s, us, ts, d, ud, td in rows(
        ("rtp.ssrc", "ip.src", "udp.srcport", "tcp.srcport", "ip.dst", "udp.dstport", "tcp.dstport"),
        "rtp && !icmp",  # every RTP header: a TCP segment may carry several ChannelData (RTP and RTCP)
    ):
        for x in filter(None, ssrcs.split(",")):
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
    hellos = rows(
        ("ip.src", "udp.srcport", "ip.dst", "udp.dstport", "tcp.srcport"),
        f"dtls.handshake.type==1 && dtls.handshake.random=={d['client_random']}",
    )
    legs = {(f"{r[0]}:{r[1] or r[4]}", f"{r[2]}:{r[3]}" if r[3] else r[2]) for r in hellos}
    assert (d["client"], d["server"]) in legs  # relay -> relay, UDP
    # the same ClientHello also crosses bob's TURN-TCP stream (inside ChannelData); never the TLS leg
    assert any(r[4] for r in hellos)
    assert not any(r[4] == leg("tls")["server"].rsplit(":", 1)[1] for r in hellos)
