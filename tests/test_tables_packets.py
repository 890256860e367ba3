"""The `packets` and `flows` frames against tshark's per-frame fields and conversation statistics."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest
from media_tshark import epoch_ns, fields, need_tshark

import rtcforensics
from rtcforensics.tables.packets import FLOWS, PACKETS

CAPS = [
    "veondigital_srtp_decoder/TCP_call_1.pcap",
    "nDPI/stun_google_meet.pcapng",
    "sipcapture_heplify/rtp_rtcp_sip_ipv4_udp.pcap",
    "nDPI/rtcp_multiple_pkts_in_the_same_datagram.pcap",
]


@pytest.mark.parametrize("name", CAPS)
def test_packets_rows_match_tshark(realcaps: Path, name: str) -> None:
    path = realcaps / name
    p = rtcforensics.load(path, progress=False).packets
    rows = fields(
        path,
        [
            "frame.number",
            "frame.time_epoch",
            "frame.len",
            "ip.src",
            "ipv6.src",
            "ip.dst",
            "ipv6.dst",
            "udp.srcport",
            "tcp.srcport",
            "udp.dstport",
            "tcp.dstport",
            "icmp.type",
            "icmpv6.type",
        ],
        heuristics=False,
    )
    assert len(p) == len(rows)
    assert p["frame"].tolist() == [int(r[0]) for r in rows]
    assert p["ts"].astype("int64").tolist() == [epoch_ns(r[1]) for r in rows]
    assert p["length"].tolist() == [int(r[2]) for r in rows]
    for (_, row), r in zip(p.iterrows(), rows):
        if r[11] or r[12]:  # ICMP errors quote another packet's headers: tshark lists those too
            continue
        src = (r[3] or r[4]).split(",")[0] or None
        dst = (r[5] or r[6]).split(",")[0] or None
        assert (None if row["src"] is pd.NA else row["src"]) == src, row["frame"]
        assert (None if row["dst"] is pd.NA else row["dst"]) == dst, row["frame"]
        sport = (r[7] or r[8]).split(",")[0]
        dport = (r[9] or r[10]).split(",")[0]
        assert (None if row["sport"] is pd.NA else int(row["sport"])) == (int(sport) if sport else None)
        assert (None if row["dport"] is pd.NA else int(row["dport"])) == (int(dport) if dport else None)


def test_packets_schema(realcaps: Path) -> None:
    p = rtcforensics.load(realcaps / "nDPI/stun_google_meet.pcapng", progress=False).packets
    assert list(p.columns) == PACKETS.names
    assert (PACKETS.conform(p).dtypes == p.dtypes).all()
    f = rtcforensics.load(realcaps / "nDPI/stun_google_meet.pcapng", progress=False).flows
    assert list(f.columns) == FLOWS.names


def _tshark_conversations(path: Path, proto: str) -> dict[frozenset[str], tuple[int, int]]:
    """{frozenset(endpoints): (frames, bytes)} from `tshark -z conv,udp|tcp`."""
    exe = need_tshark()
    out = subprocess.run(
        [exe, "-r", str(path), "-n", "-q", "-z", f"conv,{proto}"], capture_output=True, text=True, timeout=300
    ).stdout
    convs = {}
    for line in out.splitlines():
        t = line.split()
        if len(t) < 12 or t[1] != "<->":
            continue  # columns: a <-> b  frames bytes unit (<-)  frames bytes unit (->)  frames bytes unit (total)
        # tshark may list one endpoint pair several times (SNMP request/response pairs here): add them up
        f0, b0 = convs.get(frozenset({t[0], t[2]}), (0, 0))
        nbytes = int(t[10]) if t[11] == "bytes" and b0 >= 0 else -1
        convs[frozenset({t[0], t[2]})] = (f0 + int(t[9]), b0 + nbytes if nbytes >= 0 else -1)
    return convs


@pytest.mark.parametrize(
    "name", ["veondigital_srtp_decoder/TCP_call_1.pcap", "sipcapture_heplify/rtp_rtcp_sip_ipv4_udp.pcap"]
)
def test_flows_match_tshark_conversations(realcaps: Path, name: str) -> None:
    path = realcaps / name
    f = rtcforensics.load(path, progress=False).flows
    for proto in ("udp", "tcp"):
        convs = _tshark_conversations(path, proto)
        ours = f[f["transport"] == proto]
        assert len(ours) == len(convs) > 0
        for _, row in ours.iterrows():
            frames, nbytes = convs[frozenset({row["a"], row["b"]})]
            assert row["packets"] == frames
            if nbytes >= 0:
                assert row["bytes"] == nbytes


def test_flows_classes_and_encryption(realcaps: Path, sample) -> None:
    f = rtcforensics.load(realcaps / "nDPI/stun_google_meet.pcapng", progress=False).flows
    media = f[f["classes"].map(lambda c: "dtls" in c and "rtp" in c)]
    assert len(media) > 0 and media["encrypted"].all()
    f = rtcforensics.load(realcaps / "sipcapture_heplify/rtp_rtcp_sip_ipv4_udp.pcap", progress=False).flows
    sip = f[f["classes"].map(lambda c: c == ["sip"])]
    assert len(sip) > 0 and (sip["encrypted"] == False).all()
    rtp_only = f[f["classes"].map(lambda c: c == ["rtp"])]
    assert len(rtp_only) > 0 and rtp_only["encrypted"].isna().all()  # keying decides, not the flow
    f = rtcforensics.load(
        realcaps / "veondigital_srtp_decoder/udp_call_02_03_client.pcap", progress=False
    ).flows
    relayed = f[f["via_turn"]].set_index("transport")
    # the UDP allocation carries the call; the TURN-TCP one (tshark: Send/Data indications from frame 1054 on
    # tcp/3478) only relayed connectivity checks
    assert sorted(relayed.index) == ["tcp", "udp"]
    assert {"rtp", "rtcp", "stun"} <= set(relayed.loc["udp", "classes"])
    assert relayed.loc["tcp", "classes"] == ["other", "stun"]


def test_flows_classes_are_the_packets_classes_one_list_per_set(realcaps: Path) -> None:
    cap = rtcforensics.load(realcaps / "veondigital_srtp_decoder/udp_call_02_03_client.pcap", progress=False)
    f, p = cap.flows, cap.packets
    seen = p.dropna(subset=["flow_id"]).groupby("flow_id")["cls"].agg(lambda c: sorted(set(c.astype(str))))
    assert f.set_index("flow_id")["classes"].to_dict() == seen.to_dict()
    # the TURN allocation over UDP carries the call (tshark: 3399 ChannelData frames of RTP and RTCP, and STUN)
    call = f.loc[f["packets"].idxmax()]
    assert (call["a"], call["b"], call["classes"]) == (
        "192.168.88.240:60003",
        "54.145.233.59:3478",
        ["rtcp", "rtp", "stun"],
    )
    # a million flows hold a handful of distinct sets: one list per set, shared by its flows (not mutated)
    assert len({id(c) for c in f["classes"]}) == len({tuple(c) for c in f["classes"]}) < len(f)
