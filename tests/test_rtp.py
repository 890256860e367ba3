"""RTP / RTCP decoders on real packets, checked field by field against tshark; malformed packets made by
mutating real ones raise DecodeError with stable names and words."""

from __future__ import annotations

from pathlib import Path

import pytest
from media_tshark import fields

from rtcforensics.dissect.fastpath import dissect
from rtcforensics.dissect.rtp import decode_rtcp_compound, decode_rtp
from rtcforensics.errors import DecodeError


def _udp_rtp(path: Path, *args: str, flt: str = "rtp") -> list[tuple[int, bytes, list[str]]]:
    names = [
        "frame.number",
        "udp.payload",
        "rtp.ssrc",
        "rtp.seq",
        "rtp.timestamp",
        "rtp.p_type",
        "rtp.marker",
        "rtp.padding",
        "rtp.ext",
        "rtp.cc",
        "rtp.csrc.item",
        "rtp.ext.profile",
        "rtp.ext.rfc5285.id",
        "rtp.ext.rfc5285.len",
    ]
    return [
        (int(r[0]), bytes.fromhex(r[1]), r) for r in fields(path, names, *args, display_filter=flt) if r[1]
    ]


def test_rtp_headers_match_tshark(realcaps: Path) -> None:
    cases = [
        (realcaps / "nDPI/stun_google_meet.pcapng", ("-d", "udp.port==19305,rtp")),
        (realcaps / "sipcapture_heplify/rtp_rtcp_sip_ipv4_udp.pcap", ()),
        (realcaps / "nDPI/rtp.pcapng", ()),
    ]
    n_ext = n_csrc = 0
    for path, args in cases:
        for frame, payload, r in _udp_rtp(
            path,
            *args,
            flt="rtp && udp && !icmp && rtp.version==2 && !_ws.malformed && !_ws.expert.severity>=error",
        ):
            p = decode_rtp(payload)
            assert (p.ssrc, p.sequence_number, p.timestamp, p.payload_type) == (
                int(r[2], 16),
                int(r[3]),
                int(r[4]),
                int(r[5]),
            ), frame
            assert (p.marker, p.padding, p.extension) == (
                r[6] in ("1", "True"),
                r[7] in ("1", "True"),
                r[8] in ("1", "True"),
            )
            assert len(p.csrc) == int(r[9])
            if r[10]:
                assert p.csrc == [int(x, 16) for x in r[10].split(",")]
                n_csrc += 1
            if r[11]:
                assert p.extension_profile == int(r[11], 16)
            if r[12] and p.extension_error is None:  # RFC 8285 one-byte elements: ids and lengths
                assert [e[0] for e in p.extensions] == [int(x) for x in r[12].split(",")]
                assert [len(e[1]) for e in p.extensions] == [int(x) for x in r[13].split(",")]
                n_ext += 1
    assert n_ext > 100 and n_csrc > 10


def _one_rtp(realcaps: Path) -> bytes:
    rows = fields(
        realcaps / "nDPI/stun_google_meet.pcapng",
        ["udp.payload"],
        "-d",
        "udp.port==19305,rtp",
        display_filter="rtp.ext==1 && rtp.ext.len==3 && rtp.padding==0 && rtp.cc==0",
    )
    return bytes.fromhex(rows[0][0])


def test_rtp_errors_on_mutated_packets(realcaps: Path) -> None:
    good = _one_rtp(realcaps)
    decode_rtp(good)
    with pytest.raises(DecodeError, match="^RTP packet length is less than 12 bytes$") as e:
        decode_rtp(good[:11])
    assert e.value.name == "rtp_truncated"
    with pytest.raises(DecodeError, match="^RTP packet has invalid version 1$"):
        decode_rtp(bytes([0x50]) + good[1:])
    with pytest.raises(DecodeError, match="^RTP packet has truncated CSRC$") as e:
        decode_rtp(bytes([good[0] | 0x0F]) + good[1:28])
    assert e.value.name == "rtp_truncated_csrc"
    with pytest.raises(DecodeError, match="^RTP packet has truncated extension value$") as e:
        decode_rtp(good[:14] + b"\xff\xff" + good[16:])  # extension length 65535 words
    assert e.value.name == "rtp_truncated_extension"
    with pytest.raises(DecodeError, match="^RTP packet has truncated extension profile / length$"):
        decode_rtp(good[:14])
    # element id 1 claiming 16 bytes in a 12-byte body: the header stays decoded, the error is kept
    p = decode_rtp(good[:16] + b"\x1f" + good[17:])
    assert p.ssrc == decode_rtp(good).ssrc
    assert p.extension_error is not None and p.extension_error.name == "rtp_extension_element"
    assert str(p.extension_error) == "RTP header extension element 1 is truncated"


def test_rtp_padding_of_plain_and_srtp(realcaps: Path) -> None:
    # SRTP (Meet) with the padding bit: the count is encrypted, so padding stays unknown (0), no error
    rows = fields(
        realcaps / "nDPI/stun_google_meet.pcapng",
        ["udp.payload"],
        "-d",
        "udp.port==19305,rtp",
        display_filter="rtp.padding==1",
    )
    assert rows
    for (hexdata,) in rows:
        p = decode_rtp(bytes.fromhex(hexdata))
        assert p.padding and p.padding_len == len(bytes.fromhex(hexdata)) - p.payload_offset - len(p.payload)


def _rtcp_rows(path: Path) -> list[list[str]]:
    return fields(
        path,
        [
            "frame.number",
            "udp.payload",
            "rtcp.pt",
            "rtcp.senderssrc",
            "rtcp.ssrc.fraction",
            "rtcp.ssrc.cum_nr",
            "rtcp.ssrc.jitter",
            "rtcp.sdes.text",
            "rtcp.timestamp.rtp",
            "rtcp.sender.packetcount",
            "rtcp.sender.octetcount",
            "rtcp.ssrc.high_seq",
        ],
        display_filter="rtcp",
    )


@pytest.mark.parametrize(
    "name",
    ["nDPI/rtcp_multiple_pkts_in_the_same_datagram.pcap", "sipcapture_heplify/rtp_rtcp_sip_ipv4_udp.pcap"],
)
def test_compound_rtcp_matches_tshark(realcaps: Path, name: str) -> None:
    rows = _rtcp_rows(realcaps / name)
    assert rows
    for r in rows:
        comp = decode_rtcp_compound(bytes.fromhex(r[1]))
        assert not comp.encrypted
        assert [p.packet_type for p in comp.packets] == [int(x) for x in r[2].split(",")]
        blocks = [b for p in comp.packets for b in p.reports]
        if r[4]:
            assert [round(b.fraction_lost * 256) for b in blocks] == [int(x) for x in r[4].split(",")]
            assert [b.cumulative_lost for b in blocks] == [int(x) for x in r[5].split(",")]
            assert [b.jitter for b in blocks] == [int(x) for x in r[6].split(",")]
            assert [b.highest_seq & 0xFFFF for b in blocks] == [int(x) for x in r[11].split(",")]
        items = [v for p in comp.packets for chunk in p.sdes for k, v in chunk.items() if k != "ssrc"]
        if r[7]:
            assert items == r[7].split(",")
        srs = [p.sender_info for p in comp.packets if p.sender_info]
        if r[8]:
            assert [s["rtp_ts"] for s in srs] == [int(x) for x in r[8].split(",")]
            assert [s["packets"] for s in srs] == [int(x) for x in r[9].split(",")]
            assert [s["octets"] for s in srs] == [int(x) for x in r[10].split(",")]


def test_srtcp_is_marked_encrypted(realcaps: Path) -> None:
    d = dissect(realcaps / "veondigital_srtp_decoder/udp_call_02_03_client.pcap", progress=False)
    assert len(d.rtcp) == 29
    for dg in d.rtcp:
        comp = decode_rtcp_compound(dg.data)
        assert comp.encrypted and len(comp.packets) == 1
        assert comp.packets[0].packet_type in (200, 201)  # the clear first header of SRTCP


def test_rtcp_errors_on_mutated_packets(realcaps: Path) -> None:
    (payload,) = fields(
        realcaps / "nDPI/rtcp_multiple_pkts_in_the_same_datagram.pcap",
        ["udp.payload"],
        display_filter="frame.number==1",
    )[0]
    good = bytes.fromhex(payload)
    with pytest.raises(DecodeError, match="^RTCP packet header is truncated$"):
        decode_rtcp_compound(good[:7])
    with pytest.raises(DecodeError, match="^RTCP packet has invalid version 0$"):
        decode_rtcp_compound(bytes([good[0] & 0x3F]) + good[1:])
    with pytest.raises(DecodeError, match="^RTCP packet length 52 exceeds the 40 bytes left$"):
        decode_rtcp_compound(good[:40])
    # a damaged second packet: the compound no longer parses to its end
    comp = decode_rtcp_compound(good[:-3])
    assert comp.encrypted and comp.error is not None and comp.error.name == "rtcp_length"
