"""gstreamer_peer: webrtcbin's and Chromium's account of their call checked against the capture with tshark.

- one ICE pair, one DTLS 1.2 handshake in clear (Chromium the client) whose certificates are the ones each
  side's SDP announced on the plain WebSocket;
- each stack's RTP counters equal tshark's per SSRC and direction, and the other stack received them all;
- the data channel: messages inside DTLS (not readable without keys), both stacks counted them;
- webrtcbin's EUI-64 IPv6 link-local candidate: its interface id is the MAC its frames carry.
"""

from __future__ import annotations

import functools
import hashlib
import shutil
from collections import Counter
from typing import Any

import pytest
from samples import load_truth, sample_path

from lab.truthlib import WireFrame, tshark_frames
from lab.truthlib import first_values as first

NAME = "gstreamer_peer"
pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


# one tshark pass for everything the tests below read; each applies its own filter in Python
FIELDS = (
    "eth.src",
    "ip.src",
    "ipv6.src",
    "udp.srcport",
    "ip.dst",
    "udp.dstport",
    "udp.payload",
    "http.request.method",
    "dtls.handshake.certificate",
    "dtls.record.content_type",
    "rtp.ssrc",
    "websocket.payload.text",
)


@functools.cache
def wire() -> list[WireFrame]:
    return tshark_frames(sample_path(NAME), FIELDS, display_filter="udp || ipv6 || websocket")


def carrying(*protos: str, without: tuple[str, ...] = ()) -> list[WireFrame]:
    """Frames that carry every one of ``protos`` and none of ``without`` (a display filter's protocol test)."""
    return [
        f
        for f in wire()
        if all(p in f["frame.protocols"] for p in protos)
        and not any(p in f["frame.protocols"] for p in without)
    ]


def truth() -> dict[str, Any]:
    return load_truth(NAME)


def test_one_udp_media_flow_between_the_two_stacks() -> None:
    t = truth()
    g, c = t["selected_pair"]["gstreamer"], t["selected_pair"]["chromium"]
    flows = Counter(
        (f"{s}:{sp}", f"{d}:{dp}")
        for s, sp, d, dp in (
            first(f, "ip.src", "udp.srcport", "ip.dst", "udp.dstport")
            for f in carrying("udp", "ip", without=("icmp", "mdns"))
        )
    )
    unicast = {f for f in flows if not f[1].startswith("239.")}
    assert unicast == {(g, c), (c, g)}
    # libnice's UPnP IGD discovery (gupnp-igd): SSDP M-SEARCH to 239.255.255.250:1900 from webrtcbin's host only
    assert {(f[0].rsplit(":", 1)[0], f[1]) for f in set(flows) - unicast} == {
        (g.rsplit(":", 1)[0], "239.255.255.250:1900")
    }
    assert {first(f, "http.request.method")[0] for f in carrying("ssdp")} == {"M-SEARCH"}


def test_dtls_certificates_are_the_ones_the_sdps_announced() -> None:
    t = truth()
    (d,) = t["dtls"]
    assert d["version"] == "DTLS 1.2" and not d["encrypted_handshake"] and d["client_is"] == "chromium"
    certs: dict[str, set[str]] = {}
    for f in wire():
        for der in f["dtls.handshake.certificate"]:  # every certificate sent, not only the first
            certs.setdefault("{}:{}".format(*first(f, "ip.src", "udp.srcport")), set()).add(
                hashlib.sha256(bytes.fromhex(der.replace(":", ""))).hexdigest()
            )
    assert certs == {d["client"]: {d["client_cert_sha256"]}, d["server"]: {d["server_cert_sha256"]}}
    by_sender = {s["sent_by"]: s["fingerprint"]["sha-256"] for s in t["sdp"]}
    assert by_sender == {"chromium": d["client_cert_sha256"], "gstreamer": d["server_cert_sha256"]}


def test_rtp_counters_of_both_stacks_match_the_wire() -> None:
    t = truth()
    wire: Counter = Counter()
    for ssrc, s, sp, d, dp in (
        first(f, "rtp.ssrc", "ip.src", "udp.srcport", "ip.dst", "udp.dstport")
        for f in carrying("rtp", without=("rtcp",))
    ):
        wire[(int(ssrc, 16), f"{s}:{sp}", f"{d}:{dp}")] += 1
    want = Counter({(r["ssrc"], r["src"], r["dst"]): r["packets"] for r in t["rtp"]})
    assert wire == want
    senders = Counter((r["sender"], r["kind"]) for r in t["rtp"])
    assert senders == Counter({(s, k): 1 for s in ("gstreamer", "chromium") for k in ("audio", "video")})
    for r in t["rtp"]:
        got = r.get("getstats_packets_received_by_chromium", r.get("webrtcbin_packets_received"))
        assert 0 < got <= r["packets"]
        if r["sender"] == "gstreamer":  # webrtcbin stopped first: Chromium received every packet it sent
            assert got == r["packets"]


def test_datachannel_messages_counted_by_both_and_sealed_on_the_wire() -> None:
    t = truth()
    sent, echoed = (ch["messages"] for ch in t["datachannels"])
    assert echoed == [f"echo: {m}" for m in sent]
    (dc,) = t["datachannel_stats"]["chromium"]
    assert (dc["label"], dc["messages_received"], dc["messages_sent"]) == ("chat", len(sent), len(echoed))
    blob = b"".join(bytes.fromhex(x.replace(":", "")) for f in carrying("udp") for x in f["udp.payload"])
    assert not any(m.encode() in blob for m in sent + echoed)
    assert [f for f in wire() if "23" in f["dtls.record.content_type"]]  # application data records


def test_eui64_link_local_candidate_names_the_mac_on_the_wire() -> None:
    t = truth()
    (f,) = [f for f in t["findings"] if f["slug"] == "ice-ipv6-eui64"]
    (addr,) = f["endpoints"]
    assert addr.startswith("fe80::")
    assert {first(w, "eth.src")[0] for w in wire() if addr in w["ipv6.src"]} == {f["mac"]}
    # the candidate travelled in the clear signalling
    assert [w for w in wire() if any(addr in text for text in w["websocket.payload.text"])]
