"""The must-show sweep of issue 14 as a regression test (helpers: tests/realcaps_sweep.py; run
``python -m tests.realcaps_sweep`` for the whole table).

1. On every third-party capture and every sample capture, the facts of ``stun``, ``dtls`` and ``rtp_streams``
   equal tshark's reading of the same packets (tshark 4.0 cannot read DTLS 1.3: its version is not compared).
2. On every third-party capture, the medium+ findings are exactly the reviewed ones below, each with the hosts
   it names. Each was checked against the packets (tshark) before it was written here:
   - DTLS weak version / suite: the ServerHello (or, client-only captures, a ClientHello offering at most
     DTLS 1.0) shows it; relayed through TURN the finding names the peer behind the relay (10.0.0.147), not the
     TURN server that only forwarded the handshake.
   - rtp-unencrypted on nDPI/rtp.pcapng: PCMA with a G.711 byte distribution, H.263 with RFC 2190 headers and
     picture start codes in clear (00 70 00 00 | 00 00 83 ..), Opus with one TOC byte in every packet.
   - outdated-component: Coturn SOFTWARE read from the TURN server's own responses; Firefox 54 read from the
     browser's own User-Agent (192.168.0.5 sends it).
   - webex: a SIP REGISTER in clear to 172.16.1.75:5060; servers that chose TLS 1.0 (tshark: ServerHello 0x0301).
   - heplify: SIP and RTP/AVP in clear; the cookie is sent by 200.57.7.204 to the HTTP server 200.57.7.194;
     200.57.7.196 relays the PCMA streams (the same SSRC on both of its legs), each finding names the sender first.
   Captures absent from the table have no medium+ finding (QUIC, Zoom, Telegram, Teams/Skype, Meet, WhatsApp...).
"""

from __future__ import annotations

import pytest
from realcaps_sweep import realcap_paths, sample_paths, sweep

pytestmark = [pytest.mark.realcaps]

WEBEX_TLS10_SERVERS = [
    "114.29.200.11",
    "114.29.202.139",
    "114.29.204.49",
    "173.243.0.110",
    "173.243.4.76",
    "209.197.222.159",
    "23.44.253.243",
    "54.241.32.14",
    "62.109.224.120",
    "62.109.229.158",
    "62.109.231.3",
    "64.68.104.140",
    "64.68.105.103",
    "64.68.105.103",
    "64.68.105.97",
    "64.68.105.98",
    "64.68.121.100",
    "64.68.121.153",
    "64.68.121.99",
    "80.74.110.68",
]

# capture -> (severity, slug, hosts the finding names, in its order)
REVIEWED = {
    "nDPI/dtls_certificate_fragments.pcap": [
        ("medium", "dtls-weak-cipher", "10.186.198.149,35.210.59.134"),
        ("medium", "dtls-weak-version", "10.186.198.149,35.210.59.134"),
    ],
    "nDPI/dtls_old_version.pcapng": [
        ("medium", "dtls-weak-cipher", "37.188.4.115,70.66.6.128"),
        ("medium", "dtls-weak-version", "37.188.4.115,70.66.6.128"),
    ],
    "nDPI/rtp.pcapng": [
        ("high", "rtp-unencrypted", "172.16.168.24,172.16.168.64"),
        ("medium", "rtp-unencrypted", "10.140.67.167,148.153.85.97"),
        ("medium", "rtp-unencrypted", "10.204.220.71,10.204.220.171"),
    ],
    "nDPI/stun_dtls_rtp_unidir.pcapng": [
        ("high", "outdated-component", "10.1.0.3"),
        ("high", "turn-open-relay", "10.10.0.1,10.1.0.3"),
        ("medium", "dtls-weak-cipher", "10.10.0.1,10.0.0.147"),
        ("medium", "dtls-weak-version", "10.10.0.1,10.0.0.147"),
        ("medium", "dtls-weak-version", "10.10.0.1,10.0.0.147"),
    ],
    "nDPI/stun_dtls_unidirectional_client.pcap": [
        ("medium", "dtls-weak-version", "26.83.9.81,33.35.223.103"),
    ],
    "nDPI/stun_dtls_unidirectional_server.pcap": [
        ("medium", "dtls-weak-cipher", "26.83.9.81,33.35.223.103"),
        ("medium", "dtls-weak-version", "26.83.9.81,33.35.223.103"),
    ],
    "nDPI/webex.pcap": [
        ("high", "signalling-plaintext", "10.8.0.1,172.16.1.75"),  # SIP REGISTER over UDP
        # every server below chose TLS 1.0 (0x0301) with TLS_RSA_WITH_AES_256_CBC_SHA or RC4 (0x0004)
        *[("medium", "signalling-weak-tls", f"10.8.0.1,{s}") for s in WEBEX_TLS10_SERVERS],
    ],
    "ogolosovskiy_srtp_decoder/WebRTC_PCMA_p2p_SDES_Call_1.pcap": [
        ("high", "outdated-component", "54.175.233.40"),
    ],
    "ogolosovskiy_srtp_decoder/webrtc_opus_p2p.pcap": [
        ("high", "outdated-component", "54.175.233.40"),
    ],
    "sipcapture_heplify/rtp_rtcp_sip_ipv4_udp.pcap": [
        ("high", "rtp-unencrypted", "200.57.7.196,200.57.7.204"),
        ("high", "rtp-unencrypted", "200.57.7.199,200.57.7.196"),
        ("high", "rtp-unencrypted", "200.57.7.202,200.57.7.196"),
        ("high", "rtp-unencrypted", "200.57.7.204,200.57.7.196"),
        ("high", "sdp-plain-rtp-offered", "200.57.7.195,200.57.7.204"),
        ("high", "signalling-plaintext", "200.57.7.195,200.57.7.204"),
        ("high", "signalling-plaintext", "200.57.7.204,200.57.7.195"),
        ("high", "signalling-plaintext", "200.57.7.205,200.57.7.195"),
        ("high", "signalling-secret-exposed", "200.57.7.204,200.57.7.194"),
        ("medium", "rtp-unencrypted", "200.57.7.196,200.57.7.199"),
    ],
    "sipcapture_heplify/sip_ipv4_tcp_fragmented.pcap": [
        ("high", "sdp-plain-rtp-offered", "10.186.205.131,10.186.207.1"),
        ("high", "sdp-plain-rtp-offered", "10.186.207.1,10.186.205.131"),
        ("high", "sdp-plain-rtp-offered", "10.186.207.1,10.186.205.133"),
        ("high", "signalling-plaintext", "10.186.205.131,10.186.207.1"),
        ("high", "signalling-plaintext", "10.186.205.133,10.186.207.1"),
        ("high", "signalling-plaintext", "10.186.207.1,10.186.205.131"),
        ("high", "signalling-plaintext", "10.186.207.1,10.186.205.133"),
    ],
    "sipcapture_heplify/sip_ipv6_udp.pcap": [
        ("high", "sdp-plain-rtp-offered", "fe80::21a:a0ff:fe07:32e0,fec0::216:d3ff:fe0d:22c"),
        ("high", "signalling-plaintext", "fe80::21a:a0ff:fe07:32e0,fec0::216:d3ff:fe0d:22c"),
    ],
    "veondigital_srtp_decoder/TCP_call_1.pcap": [
        ("high", "outdated-component", "54.145.233.59"),
    ],
    "veondigital_srtp_decoder/udp_call_02_03_client.pcap": [
        ("high", "outdated-component", "54.145.233.59"),
    ],
    "zeek/dtls1_0.pcap": [
        ("medium", "dtls-weak-cipher", "192.168.6.86,104.236.167.107"),
        ("medium", "dtls-weak-version", "192.168.6.86,104.236.167.107"),
    ],
    "zeek/websocket.pcap": [
        ("high", "outdated-component", "192.168.0.5"),
    ],
}


@pytest.fixture(scope="module")
def realcap_results():
    paths = realcap_paths()
    if not paths:
        pytest.skip("../shared/realcaps not present")
    return list(sweep([(p, True) for p in paths]))


@pytest.mark.slow
def test_realcap_facts_equal_tshark(realcap_results):
    unequal = {
        r.capture: [r.error, *r.stun.diffs, *r.dtls.diffs, *r.rtp.diffs][:5]
        for r in realcap_results
        if not r.equal
    }
    assert not unequal
    compared = sum(r.stun.compared + r.dtls.compared + r.rtp.compared for r in realcap_results)
    assert compared > 900  # the comparison really ran (STUN frames, DTLS handshakes, RTP streams)


@pytest.mark.slow
def test_realcap_medium_plus_findings_are_the_reviewed_ones(realcap_results):
    got = {r.capture: r.findings for r in realcap_results if r.findings}
    assert got == {k: sorted(v) for k, v in REVIEWED.items()}


@pytest.mark.slow
def test_sample_facts_equal_tshark():
    results = list(sweep([(p, False) for p in sample_paths()]))
    if not results:
        pytest.skip("no sample capture")
    unequal = {
        r.capture: [r.error, *r.stun.diffs, *r.dtls.diffs, *r.rtp.diffs][:5] for r in results if not r.equal
    }
    assert not unequal


def test_relayed_dtls_names_the_peer_behind_turn_not_the_relay(realcaps):
    """nDPI/stun_dtls_rtp_unidir: the DTLS 1.0 handshake of 10.10.0.1 runs through the Coturn relay
    10.1.0.3:5853 to the peer 10.0.0.147:60770 (XOR-PEER-ADDRESS), which chose the CBC suite."""
    import rtcforensics
    from rtcforensics.checks.analyze import analyze

    cap = rtcforensics.load(realcaps / "nDPI/stun_dtls_rtp_unidir.pcapng", progress=False)
    weak = [f for f in analyze(cap, only=["DTLS003"]).findings if f.severity == "medium"]
    assert [(f.endpoints, f.evidence["cipher_suite"]) for f in weak] == [
        (["10.10.0.1:2808", "10.0.0.147:60770"], "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA")
    ]


def test_h263_plaintext_is_called_h263(realcaps):
    """nDPI/rtp.pcapng SSRC 0x1646, PT 34: RFC 2190 mode A headers 00 70 00 00 then picture start codes."""
    import rtcforensics

    cap = rtcforensics.load(realcaps / "nDPI/rtp.pcapng", progress=False)
    s = cap.rtp_streams.set_index("ssrc").loc[0x1646]
    assert (int(s["pt"]), float(s["plaintext_score"])) == (34, 0.75)
    assert s["plaintext_reason"].startswith("H.263 payload headers (RFC 2190)")
