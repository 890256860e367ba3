"""Issue 14 item 3 beyond RTP: calling a flow RTCP or DTLS needs more than the first byte (RFC 7983).
RTCP: assigned packet types whose lengths fit their count fields, on a flow that corroborates them; DTLS: a
handshake message read in clear, or protected records of a DTLS version in one coherent epoch. What fails
is not in the `rtcp` / `dtls` frames, never keys an RTP stream as DTLS-SRTP, and is an anomaly row with
the reason. Values come from the captures (tshark reads the same packets)."""

from __future__ import annotations

import pytest
from stun_realcaps import udp_payloads

import rtcforensics
from rtcforensics.anomalies import AnomalyLog
from rtcforensics.dissect.model import Datagram
from rtcforensics.tables.dtls import analyze_datagrams, dtls_frame

pytestmark = pytest.mark.realcaps

NOISE = [
    "nDPI/quic.pcap",
    "nDPI/quic-29.pcap",
    "nDPI/youtube_quic.pcap",
    "nDPI/zoom.pcap",
    "nDPI/zoom2.pcap",
    "nDPI/telegram.pcap",
]


def _anomalies(cap: rtcforensics.Capture, name: str) -> list[tuple[int, str]]:
    a = cap.anomalies
    a = a[a["name"] == name]
    return [(int(f), str(d)) for f, d in zip(a["frame"], a["detail"])]


@pytest.mark.parametrize("rel", NOISE)
def test_quic_and_proprietary_udp_is_neither_rtcp_nor_dtls(realcaps, rel):
    cap = rtcforensics.load(realcaps / rel, progress=False)
    assert (len(cap.rtcp), len(cap.dtls), len(cap.rtp_streams)) == (0, 0, 0)
    encrypted_flows = [
        f for f in cap.flows.to_dict("records") if f["encrypted"] is True and "tls" not in f["classes"]
    ]
    assert encrypted_flows == []


def test_telegram_payloads_offered_as_dtls_are_not_called_dtls(realcaps):
    """Telegram's call packets (nDPI/telegram.pcap): 743 UDP payloads start with a byte of the DTLS range
    (20-63). Offered to the DTLS table as candidates, the two that even parse as records (frames 698, 711)
    carry record version 0x7381: no row, an anomaly with the reason."""
    payloads = [(f, p) for f, p in udp_payloads(realcaps / "nDPI/telegram.pcap") if p and 20 <= p[0] <= 63]
    assert len(payloads) == 743
    dgs = [
        Datagram(
            frame=f,
            ts_ns=0,
            flow_id=0,
            src="10.0.0.1",
            sport=1,
            dst="10.0.0.2",
            dport=2,
            transport="udp",
            data=p,
        )
        for f, p in payloads
    ]
    log = AnomalyLog()
    t = analyze_datagrams(dgs, log)
    assert [hs.frames for hs in t.handshakes] == [[698, 711]]  # what the first byte and record parser let in
    assert len(dtls_frame(t.handshakes, log)) == 0
    a = log.frame()
    a = a[a["name"] == "dtls_uncorroborated"]
    assert [(int(f), d) for f, d in zip(a["frame"], a["detail"])] == [
        (
            698,
            "2 datagram(s) look like DTLS by their first byte but show record version 0x7381, which no DTLS "
            "version uses: classed other",
        )
    ]


def test_whatsapp_sr_whose_length_cannot_hold_its_reports_is_not_rtcp(realcaps):
    """nDPI/stun_wa_call.pcapng frames 505 and 507: first bytes 0x91 0xc8 (an SR with 17 report blocks) and
    a length field of 76 bytes, where 17 blocks need 436: not RTCP. The other 23 candidates of the call are."""
    cap = rtcforensics.load(realcaps / "nDPI/stun_wa_call.pcapng", progress=False)
    assert len(cap.dissection.rtcp) == 25
    assert cap.rtcp["frame"].nunique() == 23 and not {505, 507} & set(cap.rtcp["frame"])
    assert _anomalies(cap, "rtcp_invalid") == [
        (f, "not RTCP: SR with count 17 needs 436 bytes, its length field says 76; classed other")
        for f in (505, 507)
    ]


@pytest.mark.parametrize(
    ("rel", "rtcp_frames", "dtls_rows"),
    [
        ("nDPI/discord.pcap", 16, 0),  # SRTCP on the RTP flows (Discord encrypts RTCP): kept
        ("nDPI/skype-conference-call.pcap", 155, 0),  # MS SRTCP, 22 sender SSRCs of one conference
        ("nDPI/stun_google_meet.pcapng", 29, 3),  # one handshake row is records only (epoch 1, mid-session)
        ("nDPI/stun_dtls_rtp.pcapng", 2, 2),  # one SRTCP each on the RTP flows (XR; 0xfa17fa17 via TURN)
    ],
)
def test_real_rtcp_and_dtls_stay(realcaps, rel, rtcp_frames, dtls_rows):
    cap = rtcforensics.load(realcaps / rel, progress=False)
    assert (cap.rtcp["frame"].nunique(), len(cap.dtls)) == (rtcp_frames, dtls_rows)
    assert not _anomalies(cap, "rtcp_uncorroborated") and not _anomalies(cap, "dtls_uncorroborated")


def test_call_with_noise_keeps_its_call(sample):
    """sample_captures/call_with_noise: the aiortc call's RTCP (21 datagrams) and DTLS (1 handshake) on
    flow 23 stay amid the noise; its streams are DTLS-SRTP keyed."""
    cap = rtcforensics.load(sample("call_with_noise"), progress=False)
    assert (cap.rtcp["frame"].nunique(), set(cap.rtcp["flow_id"])) == (21, {23})
    assert list(cap.dtls["flow_id"]) == [23]
    assert set(cap.rtp_streams["keying"]) == {"dtls-srtp"}
    assert not _anomalies(cap, "rtcp_uncorroborated") and not _anomalies(cap, "dtls_uncorroborated")
