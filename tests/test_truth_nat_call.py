"""sample_captures/nat_call: two aiortc peers on private LANs, each behind its own NAT router, tapped on the
public segment. The tool's frames and verdicts agree with what the stacks and the routers' conntrack said:
the private host candidates (and the srflx candidates' raddr) are read from the clear signalling with private
scope and the NAT that forwarded them as sender; the private addresses never appear in an IP header; media
runs peer-to-peer between the two NATs' public mappings; the private-address exposure names each address with
the host behind the NAT that revealed it, known on the wire by its NAT's public address."""

from __future__ import annotations

import functools
from typing import Any

from samples import load_truth
from test_checks import sample_report

from rtcforensics.checks.analyze import Report

NAME = "nat_call"


@functools.cache
def truth() -> dict[str, Any]:
    return load_truth(NAME)


def report() -> Report:
    return sample_report(NAME)  # cached: shared with test_checks.py in one run


def hosts() -> list[dict[str, Any]]:
    return truth()["nat"]["hosts"]


def test_the_truth_describes_two_natted_peers() -> None:
    """Sanity of the truth itself: the STUN server and conntrack agree on each peer's public mapping."""
    for h in hosts():
        mapped = {m["mapped"] for m in h["stun_mapped"]}
        outside = {m["outside"] for m in h["nat_mappings"]}
        assert mapped and mapped <= outside
        assert {a.rsplit(":", 1)[0] for a in outside} == {h["nat_public_address"]}


def test_candidates_read_from_the_signalling_with_their_scope_and_sender() -> None:
    c = report().cap.candidates
    sdp = c[c["origin"] == "sdp"]
    for want in truth()["candidates"]:
        rows = sdp[(sdp["address"] == want["address"]) & (sdp["port"] == want["port"])]
        assert len(rows), want
        assert set(rows["type"]) == {want["type"]} and set(rows["scope"]) == {want["scope"]}
        assert rows["in_clear"].all()
        if want.get("raddr"):
            assert set(rows["raddr_ip"]) == {want["raddr"]} and set(rows["raddr_scope"]) == {"private"}
    for h in hosts():
        mine = sdp[sdp["address"] == h["private_address"]]
        assert set(mine["scope"]) == {"private"} and set(mine["type"]) == {"host"}
        # first sent by the peer itself, i.e. from its NAT's public address; the other NAT never sends it
        first = mine.sort_values("frame").iloc[0]
        assert first["sender"] == h["nat_public_address"]
        others = {o["nat_public_address"] for o in hosts()} - {h["nat_public_address"]}
        assert not set(mine["sender"]) & others


def test_private_addresses_never_in_an_ip_header() -> None:
    f = report().cap.flows
    on_wire = set(f["a_ip"].astype(str)) | set(f["b_ip"].astype(str))
    assert {h["nat_public_address"] for h in hosts()} <= on_wire
    assert not {h["private_address"] for h in hosts()} & on_wire


def test_media_runs_between_the_two_nat_mappings() -> None:
    s = report().cap.rtp_streams
    got = {(int(r.ssrc), str(r.src), str(r.dst), int(r.packets)) for r in s.itertuples()}
    want = {(r["ssrc"], r["src"], r["dst"], r["packets"]) for r in truth()["rtp"]}
    assert got == want
    publics = {h["nat_public_address"] for h in hosts()}
    assert {ep.rsplit(":", 1)[0] for _, src, dst, _ in got for ep in (src, dst)} == publics
    sess = report().cap.sessions
    assert len(sess) == 1
    row = sess.iloc[0]
    assert not row["relay"] and row["keying"] == ["dtls-srtp"]
    assert set(str(row["selected_pair"]).split(" <-> ")) == {
        ep for p in truth()["nat"]["media_pairs"] for ep in p
    }
    assert row["dtls_client"] == truth()["dtls"][0]["client"]


def findings(slug: str) -> list[Any]:
    return [f for f in report().findings if f.slug == slug]


def test_signalling_plaintext_names_each_peer_by_its_nat() -> None:
    sig = truth()["signalling"]["server"]
    clients = {e for f in findings("signalling-plaintext") if sig in f.endpoints for e in f.endpoints} - {sig}
    assert clients == {h["nat_public_address"] for h in hosts()}


def exposure() -> Any:
    got = findings("ice-private-ip-exposed")
    assert len(got) == 1
    return got[0]


def test_private_ip_exposure_names_the_addresses_and_the_peer_behind_each_nat() -> None:
    want = next(f for f in truth()["findings"] if f["slug"] == "ice-private-ip-exposed")
    f = exposure()
    assert sorted(f.endpoints) == sorted(want["endpoints"])
    addrs = f.evidence["addresses"]
    assert set(addrs) == set(want["endpoints"])
    for h in want["hosts"]:
        ev = addrs[h["private_address"]]
        assert ev["scope"] == "private" and set(ev["as"]) == {"address", "raddr"}
        assert h["seen_on_wire_as"] in ev["sent_by"]
        others = {x["seen_on_wire_as"] for x in want["hosts"]} - {h["seen_on_wire_as"]}
        assert not set(ev["sent_by"]) & others  # never blamed on the other peer's NAT


def test_private_ip_exposure_names_only_the_revealing_host() -> None:
    want = next(f for f in truth()["findings"] if f["slug"] == "ice-private-ip-exposed")
    addrs = exposure().evidence["addresses"]
    for h in want["hosts"]:
        assert addrs[h["private_address"]]["sent_by"] == [h["seen_on_wire_as"]]
