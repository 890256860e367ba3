"""The `candidates` frame: truth candidates with scope, EUI-64 MAC, in-clear flag; STUN-observed addresses."""

from __future__ import annotations

import pytest
from samples import SAMPLES, load_truth, sample_names, sample_path

import rtcforensics


def _cap(name: str, keylog: bool = True) -> rtcforensics.Capture:
    p = sample_path(name)
    kl = p.with_suffix(".keylog")
    return rtcforensics.load(p, keylog=kl if keylog and kl.exists() else None)


def _signalling_readable(t: dict, name: str) -> bool:
    sdps = t.get("sdp") or []
    return bool(sdps) and (not any(e.get("tls") for e in sdps) or (SAMPLES / f"{name}.keylog").exists())


WITH_CANDS = [n for n in sample_names() if load_truth(n).get("candidates")]


@pytest.mark.parametrize("name", WITH_CANDS)
def test_truth_candidates(name: str) -> None:
    t = load_truth(name)
    df = _cap(name).candidates
    readable = _signalling_readable(t, name)
    for c in t["candidates"]:
        rows = df[(df["address"] == c["address"]) & (df["port"] == c["port"])]
        if readable:
            rows = rows[rows["origin"].isin(["sdp", "trickle"])]
            assert len(rows), (name, c)
            assert set(rows["type"]) == {c["type"]}
            assert set(rows["transport"]) == {c["transport"]}
        else:
            # signalling unreadable: the address is still seen in STUN/TURN (relay: XOR-RELAYED-ADDRESS)
            rows = rows[rows["origin"] == "stun"]
            assert len(rows), (name, c)
            assert c["type"] in set(rows["type"]) or c["type"] == "host"
        assert set(rows["scope"]) == {c["scope"]}, (name, c)
        if c.get("mdns"):
            assert rows["mdns"].all() and rows["ip"].isna().all()
        if c.get("eui64_mac"):
            assert set(rows["mac"]) == {c["eui64_mac"]} and rows["eui64"].all()
        if c.get("raddr") and readable:
            assert set(rows["raddr"]) == {c["raddr"]}


def test_in_clear_plain_vs_tls() -> None:
    plain = _cap("ws_plaintext_private").candidates
    sig = plain[plain["origin"].isin(["sdp", "trickle"])]
    assert len(sig) and sig["in_clear"].all() and set(sig["scope"]) == {"private"}
    tls = _cap("clean_call").candidates
    sig = tls[tls["origin"].isin(["sdp", "trickle"])]
    assert len(sig) and not sig["in_clear"].any()  # decrypted with the keylog, but not readable on the wire


@pytest.mark.parametrize("name", ["browsers_chromium", "browsers_firefox_chromium", "ws_plaintext_private"])
def test_trickled_candidates_carry_their_ufrag(name: str) -> None:
    # from usernameFragment (Chromium) or from the description their sender sent before (Firefox, aiortc)
    t = load_truth(name)
    cap = _cap(name)
    df = cap.candidates
    ws = set(cap.signalling[cap.signalling["transport"] == "websocket"]["msg_index"])
    tr = df[(df["origin"] == "trickle") & df["signalling_msg"].isin(ws)]
    by_addr = {(c["address"], c["port"]): c["side"] for c in t["candidates"]}
    ufrag_of_role = {e["role"]: e["ice_ufrag"] for e in t["sdp"]}
    assert len(tr) and tr["ufrag"].notna().all()
    for r in tr.itertuples():
        assert r.ufrag == ufrag_of_role[r.role]
        side = by_addr[(r.address, r.port)]
        assert (r.role, side) in {
            ("offer", "offer"),
            ("offer", "caller"),
            ("answer", "answer"),
            ("answer", "callee"),
        }


def test_stun_observed_addresses_match_stun_frame() -> None:
    cap = _cap("turn_relay_longterm")
    st = cap.stun
    df = cap.candidates
    stun_rows = df[df["origin"] == "stun"]
    relayed = set(st["xor_relayed"].dropna())
    got = {
        f"{a}:{p}"
        for a, p in zip(
            stun_rows[stun_rows["stun_attr"] == "XOR-RELAYED-ADDRESS"]["address"],
            stun_rows[stun_rows["stun_attr"] == "XOR-RELAYED-ADDRESS"]["port"],
        )
    }
    assert got == relayed and len(relayed) == 2
    mapped = stun_rows[stun_rows["stun_attr"] == "XOR-MAPPED-ADDRESS"]
    assert mapped["stun_messages"].sum() == st["xor_mapped"].notna().sum()
    assert stun_rows["in_clear"].all()


def test_turn_internal_peers_scoped() -> None:
    t = load_truth("turn_internal_peer_allowed")
    df = _cap("turn_internal_peer_allowed").candidates
    peers = df[df["stun_attr"] == "XOR-PEER-ADDRESS"]
    want = {p["peer"] for p in t["turn"]["peers"]}
    got = {f"{a}:{p}" for a, p in zip(peers["address"], peers["port"])}
    assert got == want
    assert set(peers["scope"]) == {"loopback", "private", "link_local"}
