"""sample_captures/sip_gateway: the truth (from Kamailio's sipdump, baresip's trace, rtpengine's statistics and
Chromium's getStats) checked against the capture with tshark: the SIP transactions and SDPs per Call-ID on both
of Kamailio's legs, RTP per SSRC on both sides of rtpengine, the digest challenge, the proxy's forwarding headers,
and the software strings that nginx and Kamailio only relayed."""

from __future__ import annotations

import functools
import shutil
from collections import Counter
from typing import Any

import pytest
from samples import load_truth, sample_path
from test_checks import sample_report

from lab.truthlib import WireFrame, tshark_frames
from lab.truthlib import first_values as first

NAME = "sip_gateway"
pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


# one tshark pass for all the signalling (SIP, SDP, HTTP) and one for RTP, shared by the tests below
SIGNALLING = (
    "ip.src",
    "ip.dst",
    "sip.Call-ID",
    "sip.CSeq",
    "sip.Method",
    "sip.Status-Code",
    "sip.Proxy-Authenticate",
    "sip.Proxy-Authorization",
    "sip.User-Agent",
    "sip.Server",
    "sdp.owner",
    "sdp.media.proto",
    "sdp.media_attr",
    "http.request.line",
    "http.x_forwarded_for",
    "http.user_agent",
)
RTP = ("ip.src", "udp.srcport", "ip.dst", "udp.dstport", "rtp.ssrc", "rtp.p_type")


@functools.cache
def truth() -> dict[str, Any]:
    return load_truth(NAME)


@functools.cache
def frames(fields: tuple[str, ...], flt: str) -> list[WireFrame]:
    return tshark_frames(sample_path(NAME), fields, display_filter=flt)


def signalling(proto: str) -> list[WireFrame]:
    """The frames that carry ``proto`` (as tshark's display filter ``proto`` would select them)."""
    return [f for f in frames(SIGNALLING, "sip || sdp || http") if proto in f["frame.protocols"]]


def rtp() -> list[WireFrame]:
    return frames(RTP, "rtp && !rtcp && !icmp")


def _host(name: str) -> list[str]:
    a = truth()["hosts"][name]["address"]
    return a if isinstance(a, list) else [a]


def _key(start: str) -> str:
    return start.split()[1] if start.startswith("SIP/") else start.split()[0]


def test_every_sip_message_kamailio_logged_is_on_the_wire() -> None:
    kam = _host("sip")[0]
    wire = [
        first(f, "ip.src", "ip.dst", "sip.Call-ID", "sip.CSeq", "sip.Method", "sip.Status-Code")
        for f in signalling("sip")
    ]
    seen = Counter((r[0], r[1], r[2], r[3], r[4] or r[5]) for r in wire if kam in (r[0], r[1]))
    logged = Counter(
        (m["src"].rsplit(":", 1)[0], m["dst"].rsplit(":", 1)[0], m["call_id"], m["cseq"], _key(m["start"]))
        for m in truth()["sip"]["kamailio"]
    )
    assert seen == logged
    # one dialog: the 407-challenged INVITE, the authorised INVITE, hold and resume re-INVITEs, BYE
    cseqs = [
        m["cseq"] for m in truth()["sip"]["page"] if m["dir"] == "send" and not m["start"].startswith("ACK")
    ]
    assert cseqs == ["1 INVITE", "2 INVITE", "3 INVITE", "4 INVITE", "5 BYE"]
    assert len({m["call_id"] for m in truth()["sip"]["kamailio"]}) == 1


def test_baresip_trace_matches_kamailio_udp_leg() -> None:
    t = truth()
    udp = [(m["start"], m["cseq"]) for m in t["sip"]["kamailio"] if m["proto"] == "udp"]
    assert sorted(udp) == sorted((m["start"], m["cseq"]) for m in t["sip"]["baresip"])


def test_offer_answer_per_call_id_on_the_wire() -> None:
    """Each INVITE's SDP offer and its 200 OK's answer, as Kamailio logged them, are on that leg (o= line), and
    the WebSocket leg carries the browser's DTLS-SRTP SDPs while the UDP leg carries plain RTP/AVP."""
    wire = [
        (*first(f, "ip.src", "ip.dst", "sip.Call-ID", "sip.CSeq", "sip.Status-Code", "sdp.owner"), f)
        for f in signalling("sdp")
    ]
    by = {(r[0], r[2], r[3], r[5]): r for r in wire}
    pairs = truth()["offer_answer"]
    answered = [p for p in pairs if p["answer"]]
    assert len(answered) == 6  # INVITE 2, 3, 4 on each of the two legs (the 407-challenged 1 has no answer)
    for p in answered:
        for side, who in (("offer", "offer_from"), ("answer", "answer_from")):
            r = by.get((p[who].rsplit(":", 1)[0], p["call_id"], p["cseq"], p[side]["origin"]))
            assert r, (p["leg"], p["cseq"], side)
            assert r[6]["sdp.media.proto"] == p[side]["protos"]
        want = ["RTP/AVP"] if "UDP" in p["leg"] else ["UDP/TLS/RTP/SAVPF"]
        assert p["offer"]["protos"] == p["answer"]["protos"] == want
    # the DTLS fingerprints of both ends travel in clear behind the TLS-terminating proxy
    proxy = _host("proxy")[1]
    fps = " ".join(
        a.lower()
        for f in signalling("sdp")
        if proxy in (first(f, "ip.src") + first(f, "ip.dst"))
        for a in f["sdp.media_attr"]
    )
    for p in answered:
        if "WebSocket" in p["leg"]:
            for side in ("offer", "answer"):
                assert "fingerprint:" + p[side]["fingerprint"].lower() in fps, (p["cseq"], side)
    dirs = [(p["offer"]["direction"], p["answer"]["direction"]) for p in answered if "UDP" in p["leg"]]
    assert dirs == [("sendrecv", "sendrecv"), ("sendonly", "recvonly"), ("sendrecv", "sendrecv")]


def test_rtp_on_both_sides_of_rtpengine() -> None:
    wire = Counter(
        (int(ssrc, 16), f"{r[0]}:{r[1]}", f"{r[2]}:{r[3]}")
        for f in rtp()
        for r in [first(f, "ip.src", "udp.srcport", "ip.dst", "udp.dstport")]
        for ssrc in f["rtp.ssrc"][:1]
    )
    legs = truth()["media_legs"]
    assert {leg["leg"] for leg in legs} == {
        "browser->rtpengine",
        "rtpengine->baresip",
        "baresip->rtpengine",
        "rtpengine->browser",
    }
    for leg in legs:
        assert wire[(leg["ssrc"], leg["src"], leg["dst"])] == leg["wire_packets"] > 100, leg
        # a final counter equals the wire; a snapshot (taken before the BYE stopped baresip) is at most 5 short
        late = leg["wire_packets"] - leg["stack_packets"]
        assert late == 0 if leg["stack_final"] else 0 <= late <= 5, leg
    # rtpengine keeps each SSRC across the bridge
    assert len({leg["ssrc"] for leg in legs}) == 2
    _pub, priv = _host("media")
    assert {
        leg["encryption"] for leg in legs if leg["src"].startswith(priv) or leg["dst"].startswith(priv)
    } == {"none"}
    # the plain leg's payload is PCMU audio anyone can play; the browser leg's is SRTP
    plain = [f["rtp.p_type"] for f in rtp() if first(f, "ip.src") == (priv,)]
    assert plain and {pt for pts in plain for pt in pts} == {"0"}


def test_digest_challenge_and_credentials_in_clear_behind_the_proxy() -> None:
    kam = _host("sip")[0]
    proxy_priv = _host("proxy")[1]
    ch = [
        first(f, "ip.src", "sip.Proxy-Authenticate")
        for f in signalling("sip")
        if "407" in f["sip.Status-Code"]
    ]
    assert [r[0] for r in ch] == [kam] and truth()["sip"]["digest"]["realm"] in ch[0][1]
    cred = [
        first(f, "ip.src", "ip.dst", "sip.CSeq") for f in signalling("sip") if f["sip.Proxy-Authorization"]
    ]
    assert (proxy_priv, kam, truth()["sip"]["digest"]["authorized_cseq"]) in {tuple(r) for r in cred}


def test_proxy_adds_forwarding_headers() -> None:
    browser = _host("alice")[0]
    up = [
        first(f, "ip.src", "http.x_forwarded_for")
        for f in signalling("http")
        if any("X-Forwarded-Proto: https" in line for line in f["http.request.line"])
    ]
    assert up == [(_host("proxy")[1], browser)]


def test_relayed_software_strings_are_seen_from_the_relay() -> None:
    """The trap is real: each string the truth says was only relayed travels in a frame sent by the relay."""
    for h in truth()["relayed_headers"]:
        relays = h["relayed_by"] if isinstance(h["relayed_by"], list) else [h["relayed_by"]]
        for relay in relays:
            got = [
                f
                for f in signalling("sip") + signalling("http")
                if first(f, "ip.src") == (relay,)
                and h["value"] in f["http.user_agent"] + f["sip.User-Agent"] + f["sip.Server"]
            ]
            assert got, (h["header"], relay)


def test_tool_does_not_blame_relays_for_relayed_software() -> None:
    """A software-disclosure carrying a string that nginx or Kamailio only relayed names the host it came from."""
    t = truth()
    rep = sample_report(NAME)  # the report test_checks.py made of this sample (cached), not a second analysis
    wrong = []
    for f in rep.findings:
        if f.slug != "software-disclosure":
            continue
        values = {str(x) for v in f.evidence.values() for x in (v if isinstance(v, list) else [v])}
        addrs = {e.rsplit(":", 1)[0] for e in f.endpoints}
        for h in t["relayed_headers"]:
            if h["value"] in values and h["originated_by"] not in addrs:
                wrong.append((f.endpoints, h["value"], f.frames[:5]))
    assert not wrong
