"""SDP parser (dissect/sdp.py) against descriptions made by real stacks: aiortc in-process, the SIP user
agents of the heplify captures (cross-checked with tshark's SDP dissector) and Chromium (truth file)."""

from __future__ import annotations

import asyncio
import functools
import operator
import subprocess

import pytest

from rtcforensics.dissect.sdp import (
    normalise_fingerprint,
    parse_candidate,
    parse_crypto,
    parse_sdp,
    recognise_stack,
    secret_hash,
)
from rtcforensics.errors import DecodeError


def _aiortc_offer_answer() -> tuple[str, str, list]:
    aiortc = pytest.importorskip("aiortc")

    async def run() -> tuple[str, str, list]:
        a, b = aiortc.RTCPeerConnection(), aiortc.RTCPeerConnection()
        a.addTransceiver("audio")
        a.addTransceiver("video")
        a.createDataChannel("chat")
        await a.setLocalDescription(await a.createOffer())
        await b.setRemoteDescription(a.localDescription)
        await b.setLocalDescription(await b.createAnswer())
        from aiortc.sdp import SessionDescription as AioSD

        ref = [AioSD.parse(a.localDescription.sdp), AioSD.parse(b.localDescription.sdp)]
        offer, answer = a.localDescription.sdp, b.localDescription.sdp
        await a.close()
        await b.close()
        return offer, answer, ref

    return asyncio.run(run())


@pytest.fixture(scope="module")
def aiortc_sdp() -> tuple[str, str, list]:
    return _aiortc_offer_answer()


def test_aiortc_offer_and_answer_agree_with_aiortcs_own_parser(aiortc_sdp) -> None:
    offer, answer, ref = aiortc_sdp
    for text, aio in zip((offer, answer), ref):
        sd = parse_sdp(text)
        assert not sd.problems
        assert [m.kind for m in sd.media] == [m.kind for m in aio.media]
        assert [m.proto for m in sd.media] == [m.profile for m in aio.media]
        assert [m.mid for m in sd.media] == [
            m.rtp.muxId if m.kind != "application" else "2" for m in aio.media
        ]
        m0 = aio.media[0]
        assert sd.ufrags() == [m0.ice.usernameFragment]
        assert sd.pwds_secret() == [m0.ice.password]
        assert sd.all_fingerprints() == [
            (f.algorithm, f.value.replace(":", "").lower()) for f in m0.dtls.fingerprints
        ]
        assert len(sd.all_candidates()) == sum(len(m.ice_candidates) for m in aio.media)
        for m, am in zip(sd.media, aio.media):
            for c, ac in zip(m.candidates, am.ice_candidates):
                assert (c.address, c.port, c.type, c.priority, c.foundation) == (
                    ac.ip,
                    ac.port,
                    ac.type,
                    ac.priority,
                    ac.foundation,
                )
        assert recognise_stack(sd) == ("aiortc", None)
    assert parse_sdp(offer).setups() == ["actpass"]
    assert parse_sdp(answer).setups() == ["active"]
    assert parse_sdp(offer).media[0].ssrcs == [s.ssrc for s in ref[0].media[0].ssrc]


def test_truncated_and_mutated_descriptions_keep_what_was_read(aiortc_sdp) -> None:
    offer = aiortc_sdp[0]
    cut = offer[: offer.index("m=video")]
    sd = parse_sdp(cut)
    assert [m.kind for m in sd.media] == ["audio"] and sd.ufrags()
    bad = offer.replace("a=fingerprint:sha-256 ", "a=fingerprint:sha-256 ZZ", 1).replace(
        "\r\nt=0 0", "\r\nnonsense"
    )
    sd = parse_sdp(bad)
    names = [n for n, _ in sd.problems]
    assert names.count("sdp_fingerprint_malformed") == 1 and "sdp_line_malformed" in names
    assert len(sd.media) == 3  # parsing went on
    with pytest.raises(DecodeError) as e:
        parse_sdp("hello\r\nworld")
    assert e.value.name == "sdp_not_sdp"


def test_candidate_lines_and_errors() -> None:
    c = parse_candidate(
        "candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 10.0.0.5 "
        "rport 46154 generation 0 ufrag EsAw network-id 1 network-cost 10"
    )
    assert (c.type, c.raddr, c.rport, c.ufrag, c.network_id, c.network_cost) == (
        "srflx",
        "10.0.0.5",
        46154,
        "EsAw",
        1,
        10,
    )
    t = parse_candidate("a=candidate:1 1 TCP 1518280447 192.0.2.1 9 typ host tcptype active")
    assert (t.transport, t.tcptype) == ("tcp", "active")
    good = "candidate:1 1 udp 2122260223 192.0.2.1 5000 typ host"
    for bad in (good[:-5], good.replace("5000", "50x0"), good.replace("5000", "70000")):
        with pytest.raises(DecodeError) as e:
            parse_candidate(bad)
        assert e.value.name == "sdp_candidate_malformed"


def test_sdes_crypto_from_sample_capture_truth(sample, truth) -> None:
    t = truth("sdes_plain_rtp")
    import rtcforensics

    cap = rtcforensics.load(sample("sdes_plain_rtp"))
    for sec in t["secrets"]["sdes"]:
        row = cap.sdp[cap.sdp["role"] == sec["sdp"]].iloc[0]
        assert sec["suite"] in row["crypto_suites"]
        assert secret_hash(sec["inline"]) in row["crypto_key_sha256"]
    c = parse_crypto("1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:32")
    assert (c.tag, c.suite, c.key_secret, c.lifetime, c.mki) == (
        1,
        "AES_CM_128_HMAC_SHA1_80",
        "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
        "2^20",
        "1:32",
    )


def test_fingerprint_normalised() -> None:
    assert normalise_fingerprint("SHA-256 AB:cd:01") == ("sha-256", "abcd01")
    with pytest.raises(DecodeError):
        normalise_fingerprint("sha-256")


def _tshark_sdp(path, *fields: str, decode: list[str] = ()) -> list[list[str]]:
    out = subprocess.run(
        [
            "tshark",
            "-n",
            "-r",
            str(path),
            *decode,
            "-Y",
            "sdp",
            "-T",
            "fields",
            "-E",
            "separator=|",
            *functools.reduce(operator.iadd, (["-e", f] for f in fields), []),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [ln.split("|") for ln in out.splitlines()]


@pytest.mark.realcaps
def test_sip_sdp_matches_tshark_on_tcp_fragmented_capture(realcaps) -> None:
    # 75 SDP bodies of SIP over TCP (port 6060, IP fragments, segments): owner session ids, media protos
    import rtcforensics

    path = realcaps / "sipcapture_heplify" / "sip_ipv4_tcp_fragmented.pcap"
    ref = _tshark_sdp(
        path, "frame.number", "sdp.owner.sessionid", "sdp.media.proto", decode=["-d", "tcp.port==6060,sip"]
    )
    cap = rtcforensics.load(path)
    got = cap.sdp
    assert len(got) == len(ref) == 75
    assert list(got["frame"]) == [int(r[0]) for r in ref]
    assert list(got["session_id"]) == [r[1] for r in ref]
    assert [",".join(p) for p in got["protos"]] == [r[2] for r in ref]


@pytest.mark.realcaps
def test_sip_ipv6_sdp(realcaps) -> None:
    import rtcforensics

    path = realcaps / "sipcapture_heplify" / "sip_ipv6_udp.pcap"
    ref = _tshark_sdp(
        path, "frame.number", "sdp.connection_info.address", "sdp.owner.username", "sdp.media.port"
    )
    cap = rtcforensics.load(path)
    got = cap.sdp
    # tshark types only the INVITE body as SDP; the 200 OK (frame 3) carries its SDP without Content-Type,
    # which we still recognise by content. Its c= line as tshark shows the message body:
    assert [int(r[0]) for r in ref] == [1]
    assert list(got["frame"]) == [1, 3]
    assert ref[0][1] == got["connection"][0].split()[2] and ref[0][2] == got["origin_username"][0]
    body = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-Y", "frame.number==3", "-V"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    c_line = next(ln.strip()[:-4] for ln in body.splitlines() if ln.strip().startswith("c=IN IP6"))
    assert got["connection"][1] == c_line[2:]
    assert list(got["role"]) == ["offer", "answer"]  # INVITE offer, 200 OK answer (RFC 3264)


def test_chromium_sdp_recognised(sample, truth) -> None:
    import rtcforensics

    t = truth("browsers_chromium")
    cap = rtcforensics.load(sample("browsers_chromium"))
    df = cap.sdp
    sent = df[(df["transport"] == "websocket") & (df["direction"] == "client_to_server")]
    assert len(sent) and set(sent["stack"]) == {"Chrome"}
    # Chromium sends a reduced User-Agent (Chrome/156.0.0.0): only the major version is real
    assert {v.split(".")[0] for v in sent["stack_version"]} == {t["stacks"]["chromium"].split(".")[0]}
    relayed = df[(df["transport"] == "websocket") & (df["direction"] == "server_to_client")]
    assert set(relayed["stack"]) == {"libwebrtc"}  # the o= line alone says libwebrtc; the UA says which


def test_firefox_offer_recognised_with_user_agent_version(sample, truth) -> None:
    import rtcforensics

    t = truth("browsers_firefox_chromium")
    df = rtcforensics.load(sample("browsers_firefox_chromium")).sdp
    ff = df[df["origin_username"].fillna("").str.startswith("mozilla...THIS_IS_SDPARTA-")]
    assert len(ff) and set(ff["stack"]) == {"Firefox"}
    # o= says SDPARTA-99.0 (frozen since Firefox 100); the sender's User-Agent gives the real major version
    sent = ff[ff["direction"] == "client_to_server"]
    assert {v.split(".")[0] for v in sent["stack_version"]} == {t["stacks"]["firefox-esr"].split(".")[0]}
    relayed = ff[ff["direction"] == "server_to_client"]
    assert set(relayed["stack_version"]) == {"99.0"}
