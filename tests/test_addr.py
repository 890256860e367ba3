"""Address scope, embedded IPv4, EUI-64 and mDNS (rtcforensics/addr.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import rtcforensics
from rtcforensics.addr import (
    classify,
    endpoint,
    endpoint_array,
    eui64_mac,
    is_mdns,
    normalise,
    parse_ip,
    scope,
)


@pytest.mark.parametrize(
    "addr,expected",
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.20.0.11", "private"),
        ("172.16.5.4", "private"),
        ("172.32.0.1", "public"),
        ("192.168.1.130", "private"),
        ("100.64.0.1", "cgnat"),
        ("100.127.255.254", "cgnat"),
        ("100.128.0.1", "public"),
        ("169.254.169.254", "link_local"),
        ("fe80::21a:a0ff:fe07:32e0", "link_local"),
        ("fd00::2", "ula"),
        ("fc12::1", "ula"),
        # documentation ranges stand for the Internet in test networks (RFC 5737, RFC 3849)
        ("192.0.2.10", "public"),
        ("198.51.100.20", "public"),
        ("203.0.113.50", "public"),
        ("2001:db8:1::20", "public"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.22", "multicast"),
        ("ff02::16", "multicast"),
        ("8.8.8.8", "public"),
        ("2a00:1450::1", "public"),
        ("4f7b2a3c-1d2e-4f5a-9b8c-7d6e5f4a3b2c.local", "mdns"),
        ("not an address", "invalid"),
    ],
)
def test_scope(addr: str, expected: str) -> None:
    assert scope(addr) == expected


@pytest.mark.parametrize(
    "addr,ip,how,sc",
    [
        ("::ffff:10.0.0.1", "10.0.0.1", "ipv4_mapped", "private"),
        ("::ffff:192.0.2.1", "192.0.2.1", "ipv4_mapped", "public"),
        ("::10.1.2.3", "10.1.2.3", "ipv4_compatible", "private"),
        ("2002:c0a8:0101::1", "192.168.1.1", "6to4", "private"),
        ("2002:cb00:7107::1", "203.0.113.7", "6to4", "public"),
        ("64:ff9b::a00:5", "10.0.0.5", "nat64", "private"),
        ("64:ff9b:1::7f00:1", "127.0.0.1", "nat64", "loopback"),
    ],
)
def test_embedded_ipv4_normalised_before_scope(addr: str, ip: str, how: str, sc: str) -> None:
    a = classify(addr)
    assert (a.ip, a.embedded, a.scope, a.family) == (ip, how, sc, 4)
    assert normalise(addr) == ip


def test_eui64_mac_from_truth(truth) -> None:
    t = truth("ipv6_eui64")
    c = next(c for c in t["candidates"] if c.get("eui64_mac"))
    a = classify(c["address"])
    assert a.eui64 and a.mac == c["eui64_mac"] and a.scope == c["scope"]
    plain = next(c for c in t["candidates"] if not c.get("eui64_mac"))
    assert classify(plain["address"]).mac is None


def test_eui64_rfc4291_example() -> None:
    # RFC 4291 App. A: MAC 34:56:78:9a:bc:de -> interface id 3656:78ff:fe9a:bcde (U/L bit flipped)
    a = parse_ip("2001:db8::3656:78ff:fe9a:bcde")
    assert eui64_mac(a) == "34:56:78:9a:bc:de"
    assert eui64_mac(parse_ip("2001:db8::1")) is None


def test_mdns_and_zone_ids() -> None:
    assert (
        is_mdns("abcd.local")
        and is_mdns("ABCD.LOCAL.")
        and not is_mdns(".local")
        and not is_mdns("a.localhost")
    )
    assert classify("fe80::1%eth0").scope == "link_local"
    assert classify("[2001:db8::1]").scope == "public"


def test_endpoint_array_is_endpoint_column_wise(realcaps: Path) -> None:
    # a client-side TURN call (veondigital): IPv4 flows, IPv6 mDNS on port 5353, ICMPv6 with no ports (the
    # endpoint is the bracketed address alone)
    p = rtcforensics.load(
        realcaps / "veondigital_srtp_decoder/udp_call_02_03_client.pcap", progress=False
    ).packets
    got = endpoint_array(p["src"], p["sport"])
    want = [endpoint(ip, port) for ip, port in zip(p["src"], p["sport"])]
    assert [None if e is pd.NA else e for e in got] == want
    assert {"[fe80::1480:8018:deed:77bc]:5353", "[fe80::8c5:9f9a:34f8:7b7e]", "192.168.88.86"} <= set(want)
