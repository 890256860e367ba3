"""sample_captures/call_with_noise: the noise flows the truth lists (from aioquic, dig/dnsmasq, chronyd and the
burst sender) exist as tshark sees them — QUIC, DNS, NTP, random datagrams — with the packet counts the stacks
gave, none of them shares a 5-tuple with the call, and the call's RTP stays on the call's flows."""

from __future__ import annotations

import functools
import shutil
from collections import Counter
from typing import Any

import pytest
from samples import SAMPLES, load_truth, sample_path
from test_checks import sample_report

from lab.truthlib import WireFrame, tshark_fields, tshark_frames
from lab.truthlib import first_values as first

NAME = "call_with_noise"
pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
DISSECTOR = {"quic": "quic", "dns": "dns", "ntp": "ntp"}


@functools.cache
def truth() -> dict[str, Any]:
    return load_truth(NAME)


UDP = ("ip.src", "udp.srcport", "ip.dst", "udp.dstport")
# one tshark pass (no heuristics: they would read some noise as RTP) for what the tests below read
FIELDS = (*UDP, "udp.payload", "quic.stream.stream_id", "dns.flags.response", "dns.qry.name", "dns.a")


@functools.cache
def wire() -> list[WireFrame]:
    return tshark_frames(sample_path(NAME), FIELDS, display_filter="udp", heuristics=False)


@functools.cache
def quic_streams_with_keylog() -> Counter:
    """The flows of the frames whose QUIC STREAM 0 tshark decrypts with the scenario's keylog."""
    rows = tshark_frames(
        sample_path(NAME),
        UDP,
        display_filter="quic.stream.stream_id == 0",
        keylog=SAMPLES / truth()["keylog"],
        heuristics=False,
    )
    return flow_counts(rows)


def flow_counts(frames: list[WireFrame]) -> Counter:
    """(src ip:port, dst ip:port) -> frames."""
    return Counter(
        ("{}:{}".format(*ep[:2]), "{}:{}".format(*ep[2:])) for ep in (first(f, *UDP) for f in frames)
    )


def flows(proto: str) -> Counter:
    """Per flow, the frames tshark dissects as ``proto`` (not ICMP errors quoting them)."""
    return flow_counts(
        [f for f in wire() if proto in f["frame.protocols"] and "icmp" not in f["frame.protocols"]]
    )


def test_each_kind_of_noise_is_there() -> None:
    kinds = Counter(f["proto"] for f in truth()["noise_flows"])
    assert kinds["quic"] == 4 and kinds["random"] == 1
    assert kinds["dns"] == 2 * sum(len(d["dns"]) for d in truth()["noise_drivers"].values())
    assert kinds["ntp"] >= 4


@pytest.mark.parametrize("proto", ["quic", "dns", "ntp"])
def test_noise_flows_as_tshark_sees_them(proto: str) -> None:
    seen = flows(DISSECTOR[proto])
    mine = [f for f in truth()["noise_flows"] if f["proto"] == proto]
    for f in mine:
        assert seen[(f["src"], f["dst"])] == f["packets"] > 0, f
    # and nothing else of that protocol on the wire
    assert sum(seen.values()) == sum(f["packets"] for f in mine)


def test_quic_decrypts_with_the_keylog_and_carries_http3() -> None:
    """aioquic's secrets are in the keylog: tshark decrypts the QUIC payload (STREAM frames) of every connection."""
    streams = quic_streams_with_keylog()
    clients = {f["src"] for f in truth()["noise_flows"] if f["proto"] == "quic" and f["dst"].endswith(":443")}
    assert clients and all(any(k[0] == c for k in streams) for c in clients)
    assert not [f for f in wire() if "0" in f["quic.stream.stream_id"]]  # without the keylog nothing of it


def test_dns_names_and_answers() -> None:
    got = sorted(
        (",".join(f["dns.qry.name"]), ",".join(f["dns.a"])) for f in wire() if "1" in f["dns.flags.response"]
    )
    want = sorted((q["name"], q["answer"][0]) for d in truth()["noise_drivers"].values() for q in d["dns"])
    assert got == want


def test_random_burst_first_bytes() -> None:
    burst = next(f for f in truth()["noise_flows"] if f["proto"] == "random")
    src, sport = burst["src"].rsplit(":", 1)
    dst, dport = burst["dst"].rsplit(":", 1)
    payloads = [
        first(f, "udp.payload")[0]
        for f in wire()
        if first(f, *UDP) == (src, sport, dst, dport) and "icmp" not in f["frame.protocols"]
    ]
    assert [int(p[:2], 16) for p in payloads] == burst["first_bytes"]
    assert {b >> 6 for b in burst["first_bytes"][::2]} == {2}  # RTP version 2 in the top bits
    assert all(20 <= b <= 63 for b in burst["first_bytes"][1::2])  # DTLS content-type range (RFC 7983)


def test_call_rtp_only_on_call_flows_and_no_shared_tuples() -> None:
    t = truth()
    call = {(f["src"], f["dst"]) for f in t["call_flows"] if f["proto"] == "udp"}
    assert not call & {(f["src"], f["dst"]) for f in t["noise_flows"]}
    ssrcs = {r["ssrc"] for r in t["rtp"]}
    rows = tshark_fields(
        sample_path(NAME),
        ["rtp.ssrc", "ip.src", "udp.srcport", "ip.dst", "udp.dstport"],
        display_filter="rtp && !rtcp && !icmp",
        first_only=True,
    )
    on = Counter((f"{r[1]}:{r[2]}", f"{r[3]}:{r[4]}") for r in rows if r[0] and int(r[0], 16) in ssrcs)
    assert set(on) == call
    assert sum(on.values()) == sum(r["packets"] for r in t["rtp"])


def test_tool_leaves_noise_flows_alone() -> None:
    """Nothing above info names a noise flow's endpoint: QUIC, DNS, NTP and the random burst stay 'other'."""
    t = truth()
    rep = sample_report(NAME)  # the report test_checks.py made of this sample (cached), not a second analysis
    noise_eps = {e for f in t["noise_flows"] for e in (f["src"], f["dst"])}
    loud = [
        (f.slug, f.severity, f.endpoints, f.frames[:5])
        for f in rep.findings
        if set(f.endpoints) & noise_eps and f.severity not in ("info",)
    ]
    assert not loud
