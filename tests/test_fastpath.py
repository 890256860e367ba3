"""The fast path on real captures, checked against tshark: RTP per SSRC (UDP, TURN ChannelData, TURN-TCP,
RFC 4571, IPv6, Linux cooked), STUN/DTLS/RTCP datagrams, link types and IP fragments made from real packets,
damaged captures."""

from __future__ import annotations

import collections
import hashlib
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from media_tshark import (
    LINKTYPE,
    epoch_ns,
    fields,
    fragment_ipv4,
    fragment_ipv6,
    frame_count,
    records,
    relink,
    ssrc_counts,
    write_pcap,
)

from rtcforensics.dissect.fastpath import dissect
from rtcforensics.errors import DecodeError
from rtcforensics.tables.packets import packets_frame


def our_ssrc_counts(d) -> collections.Counter[int]:
    return collections.Counter(int(s) for s in d.rtp["ssrc"])


def tshark_streams(path: Path, *args: str) -> collections.Counter[int]:
    """tshark's RTP packets per SSRC, without the SSRCs it saw in one packet only: tshark's heuristic takes a
    single datagram whose first byte looks like RTP; we claim RTP only for a stream (issue 14 item 3)."""
    return collections.Counter({s: n for s, n in ssrc_counts(path, *args).items() if n > 1})


# (capture, tshark Decode-As needed for what its heuristics cannot see)
SSRC_CASES = [
    ("veondigital_srtp_decoder/udp_call_02_03_client.pcap", ()),  # TURN ChannelData over UDP
    ("veondigital_srtp_decoder/TCP_call_1.pcap", ()),  # TURN-TCP: STUN Data indications + ChannelData
    ("nDPI/stun_dtls_rtp.pcapng", ()),  # TURN-TCP Send/Data indications
    ("nDPI/stun_dtls_rtp_unidir.pcapng", ()),
    ("nDPI/rtp.pcapng", ("-d", "tcp.port==5000,rtp")),  # RFC 4571 RTP over TCP
    ("ogolosovskiy_srtp_decoder/WebRTC_PCMA_p2p_SDES_Call_1.pcap", ("-d", "tcp.port==49310,rtp")),  # ICE-TCP
    ("ogolosovskiy_srtp_decoder/webrtc_opus_p2p.pcap", ()),
    ("nDPI/stun_google_meet.pcapng", ("-d", "udp.port==19305,rtp")),  # IPv4 + IPv6, SRTP with padding bit
    ("sipcapture_heplify/rtp_rtcp_sip_ipv4_udp.pcap", ()),
    ("nDPI/discord.pcap", ()),
    ("nDPI/wa_voice.pcap", ()),
    ("nDPI/stun_wa_call.pcapng", ()),
    ("nDPI/geforcenow.pcapng", ()),
]


@pytest.mark.parametrize("name,decode_as", SSRC_CASES)
def test_rtp_per_ssrc_matches_tshark(realcaps: Path, name: str, decode_as: tuple[str, ...]) -> None:
    path = realcaps / name
    d = dissect(path, progress=False)
    want = tshark_streams(path, *decode_as)
    assert want and our_ssrc_counts(d) == want


def test_sample_captures_rtp_per_ssrc(sample) -> None:
    from samples import sample_names

    names = [n for n in sample_names() if n != "weak_dtls"]
    if not names:
        pytest.skip("no sample captures yet")
    for name in names:
        path = sample(name)
        assert our_ssrc_counts(dissect(path, progress=False)) == tshark_streams(path), name


def test_channeldata_over_udp(realcaps: Path) -> None:
    path = realcaps / "veondigital_srtp_decoder/udp_call_02_03_client.pcap"
    d = dissect(path, progress=False)
    chan_frames = {int(r[0]) for r in fields(path, ["frame.number"], display_filter="stun.channel")}
    via = packets_frame(d)["via_turn"] == "channel"
    assert set(packets_frame(d).loc[via, "frame"].astype(int)) == chan_frames
    # every RTP packet of this call is relayed: in ChannelData, Send or Data indications
    for code, flt in ((0, "stun.channel"), (1, "stun.type==0x0017"), (2, "stun.type==0x0016")):
        assert (d.rtp["via_turn"] == code).sum() == len(
            fields(path, ["frame.number"], display_filter=f"rtp && {flt}")
        )
    assert (d.rtp["via_turn"] >= 0).sum() == 3171
    # ChannelBind requests name the peer of each channel (XOR-PEER-ADDRESS, de-XORed by tshark)
    binds = {
        (int(r[1], 16), f"{r[2]}:{r[3]}")
        for r in fields(
            path,
            ["frame.number", "stun.att.channelnum", "stun.att.ipv4", "stun.att.port"],
            display_filter="stun.type==0x0009",
        )
    }
    peers = {
        (dg.turn_channel, dg.turn_peer) for dg in [*d.rtcp, *d.dtls, *d.stun] if dg.via_turn == "channel"
    }
    assert peers and peers <= binds


def test_turn_tcp_framing(realcaps: Path) -> None:
    path = realcaps / "veondigital_srtp_decoder/TCP_call_1.pcap"
    d = dissect(path, progress=False)
    types = collections.Counter()
    for (t,) in fields(path, ["stun.type"], display_filter="tcp && stun"):
        for x in t.split(","):
            if x:
                types[int(x, 16)] += 1
    outer = [dg for dg in d.stun if dg.transport == "tcp" and dg.via_turn is None]
    assert len(outer) == sum(types.values()) == 164
    ours = collections.Counter(int.from_bytes(dg.data[:2], "big") for dg in outer)
    assert ours == types
    # Data indications carrying RTP/RTCP were unwrapped
    assert sum(dg.via_turn == "data_indication" for dg in d.rtcp) > 0
    assert 0x0017 in ours and (d.rtp["via_turn"] == 1).sum() > 0


def test_turn_tcp_channeldata_rows(sample: Callable[[str], Path]) -> None:
    # bob's leg of turn_tls_relay is TURN-TCP to coturn on 3478: every segment tshark sees ChannelData in is a
    # packets row unwrapped from a channel (the TCP path used to drop the via of what it unwrapped)
    path = sample("turn_tls_relay")
    df = packets_frame(dissect(path, progress=False))
    ours = set(df.frame[df.via_turn == "channel"].astype(int))
    theirs = {
        int(r[0]) for r in fields(path, ["frame.number"], display_filter="tcp.port==3478 && stun.channel")
    }
    assert ours == theirs and len(ours) == 268


def test_linux_cooked_dtls(realcaps: Path) -> None:
    path = realcaps / "pion_dtls/capture-chrome-Chromium_123.0.6312.0_.pcap"
    d = dissect(path, progress=False)
    rows = fields(path, ["frame.number", "ip.src", "udp.srcport", "ip.dst", "udp.dstport", "udp.payload"])
    assert [(dg.frame, dg.src, dg.sport, dg.dst, dg.dport, dg.data.hex()) for dg in d.dtls] == [
        (int(r[0]), r[1], int(r[2]), r[3], int(r[4]), r[5]) for r in rows
    ]
    assert d.info["link_types"] == ["linux_sll"]


def test_compound_rtcp_datagrams(realcaps: Path) -> None:
    path = realcaps / "nDPI/rtcp_multiple_pkts_in_the_same_datagram.pcap"
    d = dissect(path, progress=False)
    rows = fields(path, ["frame.number", "udp.payload"], display_filter="rtcp")
    assert [(dg.frame, dg.data.hex()) for dg in d.rtcp] == [(int(r[0]), r[1]) for r in rows]


@pytest.mark.parametrize("kind", sorted(LINKTYPE))
def test_link_types_from_rewritten_real_packets(realcaps: Path, tmp_path: Path, kind: str) -> None:
    src = realcaps / "nDPI/stun_google_meet.pcapng"  # IPv4 and IPv6 media
    out = write_pcap(tmp_path / f"{kind}.pcap", LINKTYPE[kind], relink(records(src), kind))
    d = dissect(out, progress=False)
    want = ssrc_counts(out, "-d", "udp.port==19305,rtp")
    assert our_ssrc_counts(d) == want == our_ssrc_counts(dissect(src, progress=False))
    assert len(d.stun) == len(fields(out, ["frame.number"], display_filter="stun"))


def test_ipv4_fragments_reassembled(realcaps: Path, tmp_path: Path) -> None:
    src = realcaps / "sipcapture_heplify/rtp_rtcp_sip_ipv4_udp.pcap"
    recs = records(src)[:900]
    target = next(
        i for i, (_, data, _) in enumerate(recs) if len(data) == 214 and i > 300
    )  # a PCMA RTP packet
    ts, data, _ = recs[target]
    frags = fragment_ipv4(data, 14, [96, 64])  # 3 fragments
    out_recs = recs[:target] + [(ts, f, len(f)) for f in (frags[1], frags[0], frags[2])] + recs[target + 1 :]
    out = write_pcap(tmp_path / "frag.pcap", 1, out_recs)
    d = dissect(out, progress=False)
    assert (
        our_ssrc_counts(d)
        == ssrc_counts(out)
        == our_ssrc_counts(dissect(write_pcap(tmp_path / "orig.pcap", 1, recs), progress=False))
    )
    last = target + 3  # frame number of the last fragment: the datagram is reassembled there
    assert last in set(d.rtp["frame"].tolist())
    row = packets_frame(d).iloc[last - 1]
    assert row["cls"] == "rtp" and row["transport"] == "udp"
    first = packets_frame(d).iloc[target]
    assert (
        first["cls"] == "other" and first["transport"] == "udp" and first["sport"] is __import__("pandas").NA
    )
    # drop the last fragment: an anomaly, not a crash
    out2 = write_pcap(tmp_path / "frag2.pcap", 1, recs[:target] + [(ts, f, len(f)) for f in frags[:2]])
    d2 = dissect(out2, progress=False)
    assert [r["name"] for r in d2.anomalies.rows] == ["ip_fragments_incomplete"]


def test_ipv6_fragments_reassembled(realcaps: Path, tmp_path: Path) -> None:
    src = realcaps / "nDPI/stun_google_meet.pcapng"
    recs = records(src)
    # a large IPv6 SRTP video packet
    target = next(
        i
        for i, (_, data, _) in enumerate(recs)
        if data[12:14] == b"\x86\xdd" and data[20] == 17 and len(data) > 1000
    )
    ts, data, _ = recs[target]
    frags = fragment_ipv6(data, 14, [504, 304])
    out_recs = recs[:target] + [(ts, f, len(f)) for f in frags] + recs[target + 1 :]
    out = write_pcap(tmp_path / "frag6.pcap", 1, out_recs)
    d = dissect(out, progress=False)
    want = ssrc_counts(out, "-d", "udp.port==19305,rtp")
    assert our_ssrc_counts(d) == want == our_ssrc_counts(dissect(src, progress=False))
    assert packets_frame(d).iloc[target + 2]["cls"] in (
        "rtp",
        "rtcp",
        "dtls",
        "stun",
    )  # reassembled in the last one
    assert packets_frame(d).iloc[target]["cls"] == "other" and not d.anomalies.rows


def test_snaplen_truncated_packets(realcaps: Path, tmp_path: Path) -> None:
    src = realcaps / "veondigital_srtp_decoder/TCP_call_1.pcap"
    out = tmp_path / "snap.pcap"
    subprocess.run(["editcap", "-s", "60", str(src), str(out)], check=True, capture_output=True)
    d = dissect(out, progress=False)
    assert len(packets_frame(d)) == 1378
    names = collections.Counter(r["name"] for r in d.anomalies.rows)
    assert names["ip_truncated"] > 0
    with pytest.raises(DecodeError):
        dissect(out, progress=False, strict=True)


def test_malformed_rtp_from_real_packet(realcaps: Path, tmp_path: Path) -> None:
    src = realcaps / "sipcapture_heplify/rtp_rtcp_sip_ipv4_udp.pcap"
    recs = records(src)[:900]
    k = next(i for i, (_, data, _) in enumerate(recs) if len(data) == 214 and i > 300)
    ts, data, _ = recs[k]
    bad = bytearray(data)
    bad[42] = 0x8F  # RTP byte 0: version 2, CC = 15 -> 60 bytes of CSRC in a 172-byte packet is fine ...
    bad = bad[: 42 + 12 + 20]  # ... until the packet is cut to 32 bytes
    struct_len = len(bad) - 14
    bad[16:18] = struct_len.to_bytes(2, "big")
    bad[38:40] = (len(bad) - 34).to_bytes(2, "big")
    out = write_pcap(tmp_path / "bad.pcap", 1, recs[:k] + [(ts, bytes(bad), len(bad))] + recs[k + 1 :])
    d = dissect(out, progress=False)
    assert [(r["frame"], r["name"], r["detail"]) for r in d.anomalies.rows] == [
        (k + 1, "rtp_truncated_csrc", "RTP packet has truncated CSRC")
    ]
    assert k + 1 not in set(d.rtp["frame"].tolist())


def test_info(realcaps: Path) -> None:
    path = realcaps / "nDPI/stun_google_meet.pcapng"
    d = dissect(path, progress=False)
    rows = fields(path, ["frame.time_epoch"], heuristics=False)
    assert d.info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert d.info["packets"] == len(rows) == len(packets_frame(d))
    assert d.info["first_ts"].value == epoch_ns(rows[0][0])
    assert d.info["last_ts"].value == epoch_ns(rows[-1][0])
    assert d.info["link_types"] == ["ethernet"] and d.info["format"] == "pcapng"
    assert d.info["size"] == path.stat().st_size


def test_control_frames_for_tshark(realcaps: Path) -> None:
    ws = realcaps / "zeek/websocket.pcap"
    d = dissect(ws, progress=False)
    assert d.control_frames.tolist() == list(range(1, frame_count(ws) + 1))
    call = realcaps / "veondigital_srtp_decoder/TCP_call_1.pcap"
    d = dissect(call, progress=False)
    tls = {int(r[0]) for r in fields(call, ["frame.number"], display_filter="tls", heuristics=False)}
    turn = {
        int(r[0]) for r in fields(call, ["frame.number"], display_filter="tcp.port==3478", heuristics=False)
    }
    ctl = set(d.control_frames.tolist())
    assert tls <= ctl and not (turn & ctl)
    sip = realcaps / "sipcapture_heplify/rtp_rtcp_sip_ipv4_udp.pcap"
    sip_frames = {
        int(r[0]) for r in fields(sip, ["frame.number"], display_filter="sip && udp", heuristics=False)
    }
    assert sip_frames <= set(dissect(sip, progress=False).control_frames.tolist())


def test_progress_bar(realcaps: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = realcaps / "nDPI/discord.pcap"
    dissect(path, progress=False)
    assert capsys.readouterr().err == ""
    dissect(path, progress=True)
    assert "dissecting" in capsys.readouterr().err


def test_flow_ids_by_first_appearance(realcaps: Path) -> None:
    d = dissect(realcaps / "veondigital_srtp_decoder/udp_call_02_03_client.pcap", progress=False)
    f = packets_frame(d)["flow_id"].dropna().astype(int).to_numpy()
    _, first = np.unique(f, return_index=True)
    assert (np.diff(first) > 0).all() and f[first].tolist() == list(range(len(first)))


def test_noise_is_not_media(sample, truth, realcaps: Path) -> None:
    # call_with_noise: an aiortc call plus QUIC, DNS, NTP and 40 random datagrams whose first bytes look like
    # RTP or DTLS; only the call's SSRCs (aiortc's own records) are RTP, the burst is 'other' with a reason
    path = sample("call_with_noise")
    d = dissect(path, progress=False)
    assert set(our_ssrc_counts(d)) == {r["ssrc"] for r in truth("call_with_noise")["rtp"]}
    p = packets_frame(d)
    burst = p[p["dport"] == 47000]
    assert len(burst) == 40 and set(burst["cls"]) == {"other"}
    why = [r for r in d.anomalies.rows if r["name"] == "rtp_uncorroborated"]
    assert why and {int(r["flow_id"]) for r in why} == set(burst["flow_id"].astype(int))
    # third-party QUIC and proprietary UDP (tshark's heuristic calls some of Telegram's datagrams RTP)
    for name in ("nDPI/telegram.pcap", "nDPI/quic.pcap", "nDPI/youtube_quic.pcap", "nDPI/zoom2.pcap"):
        d = dissect(realcaps / name, progress=False)
        assert len(d.rtp["ssrc"]) == 0 and not (packets_frame(d)["cls"] == "rtp").any(), name


def test_stun_recognised_by_content_on_well_known_ports(realcaps: Path, tmp_path: Path) -> None:
    # issue 19: TURN servers listen on 53 and 123; a real ICE check moved to those ports stays STUN, while an
    # RTP packet moved there is not taken for media
    src = realcaps / "nDPI/stun_google_meet.pcapng"
    recs = records(src)
    d0 = dissect(src, progress=False)
    stun = next(
        dg.frame for dg in d0.stun if dg.transport == "udp" and dg.via_turn is None and dg.src.count(".") == 3
    )
    rtp = next(
        int(f)
        for f, v in zip(d0.rtp["frame"], d0.rtp["via_turn"])
        if v < 0 and recs[int(f) - 1][1][12:14] == b"\x08\x00"
    )
    out = list(recs)
    for frame, port in ((stun, 53), (rtp, 123)):
        ts, data, orig = recs[frame - 1]
        b = bytearray(data)
        ihl = (b[14] & 0x0F) * 4
        b[14 + ihl + 2 : 14 + ihl + 4] = port.to_bytes(2, "big")
        out[frame - 1] = (ts, bytes(b), orig)
    d = dissect(write_pcap(tmp_path / "ports.pcap", 1, out), progress=False)
    p = packets_frame(d)
    assert stun in {dg.frame for dg in d.stun} and p.iloc[stun - 1]["cls"] == "stun"
    assert p.iloc[stun - 1]["dport"] == 53
    assert p.iloc[rtp - 1]["cls"] == "other" and rtp not in set(d.rtp["frame"].tolist())
