"""The `sessions` frame joins SDP ↔ STUN ↔ flow ↔ DTLS ↔ RTP on every sample capture (truth files)."""

from __future__ import annotations

import pandas as pd
import pytest
from samples import SAMPLES, load_truth, sample_names, sample_path

import rtcforensics


def _cap(name: str, keylog: bool = True) -> rtcforensics.Capture:
    p = sample_path(name)
    kl = p.with_suffix(".keylog")
    return rtcforensics.load(p, keylog=kl if keylog and kl.exists() else None)


def _readable(name: str, t: dict) -> bool:
    sdps = t.get("sdp") or []
    return (bool(sdps) and all(not e.get("tls") for e in sdps)) or (SAMPLES / f"{name}.keylog").exists()


ICE_CALLS = [
    n
    for n in sample_names()
    if any(e.get("ice_ufrag") for e in load_truth(n).get("sdp") or [])
    and load_truth(n).get("dtls")
    and _readable(n, load_truth(n))
]


@pytest.mark.parametrize("name", ICE_CALLS)
def test_session_joins_sdp_stun_dtls_rtp(name: str) -> None:
    t = load_truth(name)
    cap = _cap(name)
    s = cap.sessions
    offer = next(e for e in t["sdp"] if e["role"] == "offer")
    answer = next(e for e in t["sdp"] if e["role"] == "answer")
    row = s[(s["offer_ufrag"] == offer["ice_ufrag"]) & (s["answer_ufrag"] == answer["ice_ufrag"])]
    assert len(row) == 1, name
    r = row.iloc[0]
    assert r["kind"] == "ice"
    assert {
        f"{offer['ice_ufrag']}:{answer['ice_ufrag']}",
        f"{answer['ice_ufrag']}:{offer['ice_ufrag']}",
    } >= set(r["stun_usernames"]) and len(r["stun_usernames"])
    # the DTLS handshake of the truth is the one on the session's selected flow
    hs = t["dtls"][0]
    d = cap.dtls
    linked = d[(d["flow_id"] == r["dtls_flow_id"]) & (d["first_frame"] == r["dtls_first_frame"])].iloc[0]
    assert (linked["client"], linked["server"]) == (hs["client"], hs["server"])
    if t.get("turn") or t.get("turn_legs"):
        # relayed: the handshake crosses both client<->TURN legs; the session keeps the real client's leg
        assert r["dtls_flow_id"] in set(r["flow_id"]) and r["selected_flow_id"] == r["nominated_flow_id"]
    else:
        assert r["dtls_flow_id"] == r["selected_flow_id"] == r["nominated_flow_id"]
    assert r["dtls_client"] == hs["client"]
    for side, col in ((offer, "offer_fingerprints_sha256"), (answer, "answer_fingerprints_sha256")):
        if "sha-256" in side["fingerprint"]:  # a description may carry only a weaker hash (fingerprint_sha1)
            assert side["fingerprint"]["sha-256"] in r[col]
        else:
            assert r[col] == [] or r[col] is None
    certs_visible = not hs.get("encrypted_handshake") or (SAMPLES / f"{name}.keylog").exists()
    if (
        certs_visible
        and r["client_cert_sha256"] is not None
        and r["client_cert_sha256"] == r["client_cert_sha256"]
    ):
        assert (r["client_cert_sha256"], r["server_cert_sha256"]) == (
            hs["client_cert_sha256"],
            hs["server_cert_sha256"],
        )
        expected = "mismatch" if t.get("mitm") else "match"
        assert r["fingerprint_status"] == expected
        assert r["offerer_dtls_role"] == ("server" if answer["setup"] == "active" else "client")
    else:
        assert r["fingerprint_status"] == "not_observable"
        assert "dtls_certificates" in r["missing"]
    # streams sent from outside the call (``foreign``: an attacker's probe, no ICE with either peer) are not its
    want_ssrcs = {x["ssrc"] for x in t.get("rtp") or [] if not x.get("foreign")}
    if t.get("sfu"):  # a conference: this session is one PeerConnection with the SFU, its streams only
        pair = set(str(r["selected_pair"]).split(" <-> "))
        want_ssrcs = {x["ssrc"] for x in t["rtp"] if {x["src"], x["dst"]} & pair}
    assert want_ssrcs <= set(r["rtp_ssrcs"])
    for link in ("offer", "answer", "stun_checks", "stun_success", "nominated_pair", "dtls"):
        assert link in r["observed"], (name, link)


def test_rewritten_fingerprint_fails_to_link() -> None:
    t = load_truth("fingerprint_rewrite")
    r = _cap("fingerprint_rewrite").sessions.iloc[0]
    assert r["fingerprint_status"] == "mismatch" and bool(r["fingerprint_rewritten"])
    # the answerer (DTLS client, a=setup:active) presented the certificate of the original answer, which the
    # relay replaced in the copy it forwarded
    assert r["client_cert_sha256"] == t["mitm"]["answer_fingerprint_sha256"]
    assert not r["answer_fingerprint_match"] and r["offer_fingerprint_match"]
    assert set(r["answer_fingerprints_sha256"]) == {
        t["mitm"]["answer_fingerprint_sha256"],
        t["mitm"]["fake_fingerprint_sha256"],
    }


def test_clean_call_without_keylog_links_through_stun_only() -> None:
    # WSS signalling unreadable: the session is still found from STUN USERNAMEs and joined to DTLS and RTP
    t = load_truth("clean_call")
    s = _cap("clean_call", keylog=False).sessions
    assert list(s["kind"]) == ["stun_only"]
    r = s.iloc[0]
    assert {r["offer_ufrag"], r["answer_ufrag"]} == {e["ice_ufrag"] for e in t["sdp"]}
    assert r["dtls_client"] == t["dtls"][0]["client"] and r["fingerprint_status"] == "not_observable"
    assert {"offer", "answer"} <= set(r["missing"])


@pytest.mark.parametrize("keylog", [False, True])
def test_turn_relayed_call(keylog: bool) -> None:
    t = load_truth("turn_relay_longterm")
    cap = _cap("turn_relay_longterm", keylog=keylog)
    s = cap.sessions
    # WSS signalling: without the keylog only STUN ties the call together; with it, the SDPs join in
    assert list(s["kind"]) == (["ice"] if keylog else ["stun_only"])
    r = s.iloc[0]
    if keylog:
        assert {r["offer_ufrag"], r["answer_ufrag"]} == {e["ice_ufrag"] for e in t["sdp"]}
        assert r["fingerprint_status"] == "match"
    relays = {f"{c['address']}:{c['port']}" for c in t["candidates"] if c["type"] == "relay"}
    assert r["relay"] and r["relayed_address"] in relays and set(r["turn_peers"]) == relays
    assert r["turn_server"] == t["turn"]["server"]
    assert r["dtls_client"] == t["dtls"][0]["client"]
    assert {x["ssrc"] for x in t["rtp"]} <= set(r["rtp_ssrcs"])


def test_turn_allocation_without_session() -> None:
    t = load_truth("turn_internal_peer_allowed")
    s = _cap("turn_internal_peer_allowed").sessions
    r = s[s["kind"] == "turn_only"].iloc[0]
    assert r["turn_server"] == t["turn"]["server"]
    assert r["relayed_address"] == "{}:{}".format(*t["turn"]["relayed_address"])
    assert set(r["turn_peers"]) == {p["peer"] for p in t["turn"]["peers"]}
    assert r["observed"] == ["turn_allocation"]


def test_sdes_session_joined_by_media_endpoints() -> None:
    t = load_truth("sdes_plain_rtp")
    r = _cap("sdes_plain_rtp").sessions.iloc[0]
    assert r["kind"] == "sdp" and "media_endpoints" in r["observed"]
    assert {x["ssrc"] for x in t["rtp"]} <= set(r["rtp_ssrcs"])
    assert "dtls" not in r["missing"]  # SDES: no DTLS expected


def test_connectivity_checks_decide_the_pairing(tmp_path) -> None:
    # A second call's answer (clean_call's, read with its keylog) logged between this call's offer and
    # answer: time order alone would pair it with this offer; the STUN USERNAMEs prove the real pair.
    import json

    from rtcforensics.tables.signalling import messages

    other = _cap("clean_call")
    raw, other_ufrag = next(
        (f.text, f.text.split("a=ice-ufrag:")[1].split()[0])
        for m in messages(other)
        for f in m.items
        if f.kind == "sdp" and f.role == "answer"
    )
    base = _cap("ws_plaintext_private").sdp
    t_offer = base[base["role"] == "offer"]["ts"].min().value
    t_answer = base[base["role"] == "answer"]["ts"].min().value
    log = tmp_path / "other_call.jsonl"
    log.write_text(
        json.dumps({"ts": (t_offer + t_answer) // 2, "msg": {"type": "answer", "sdp": raw}}) + "\n"
    )
    t = load_truth("ws_plaintext_private")
    cap = rtcforensics.load(sample_path("ws_plaintext_private"), signalling=[log])
    s = cap.sessions
    offer = next(e for e in t["sdp"] if e["role"] == "offer")
    answer = next(e for e in t["sdp"] if e["role"] == "answer")
    r = s[s["offer_ufrag"] == offer["ice_ufrag"]].iloc[0]
    assert r["answer_ufrag"] == answer["ice_ufrag"] and r["fingerprint_status"] == "match"
    stray = s[s["answer_ufrag"] == other_ufrag]
    assert len(stray) == 1 and list(stray["offer_sdp"].iloc[0]) == []


def test_datachannel_only_session_expects_no_media() -> None:
    t = load_truth("datachannel_only")
    r = _cap("datachannel_only").sessions.iloc[0]
    assert list(r["missing"]) == [] and list(r["rtp_ssrcs"]) == []
    assert r["dtls_client"] == t["dtls"][0]["client"] and r["fingerprint_status"] == "match"


@pytest.mark.realcaps
def test_sip_answers_pair_with_the_offer_they_answer(realcaps) -> None:
    # FreeSWITCH trace with many interleaved calls (heplify's sip_ipv4_tcp_fragmented): an answer is paired with
    # the offer of its own dialog and CSeq (signalling.answers_frame), not with the previous unanswered offer
    cap = rtcforensics.load(realcaps / "sipcapture_heplify" / "sip_ipv4_tcp_fragmented.pcap")
    sdp = cap.sdp.set_index("sdp_index")
    checked = 0
    for s in cap.sessions.itertuples():
        if not len(s.offer_sdp) or not len(s.answer_sdp):
            continue
        offer_frames = {int(sdp.loc[i, "frame"]) for i in s.offer_sdp}
        answered = {
            int(sdp.loc[i, "answers_frame"]) for i in s.answer_sdp if not pd.isna(sdp.loc[i, "answers_frame"])
        }
        assert answered and answered & offer_frames, (s.offer_frame, s.answer_frame, answered)
        checked += 1
    assert checked >= 25


def test_retransmitted_checks_are_credited_with_every_success(realcaps) -> None:
    # Zoom (nDPI): two ufrag pairs, checks retransmitted with the same transaction id and answered several times;
    # each request counts every success response of its transaction (tshark: frames 1-54 of stun_zoom)
    s = rtcforensics.load(realcaps / "nDPI/stun_zoom.pcapng", progress=False).sessions
    assert list(s["kind"]) == ["stun_only", "stun_only"]
    assert [(r.checks, r.check_successes) for r in s.itertuples()] == [(4, 6), (8, 22)]
    assert [list(f) for f in s["flow_id"]] == [[0], [1]]
    assert list(s["nominated_flow_id"]) == list(s["selected_flow_id"]) == [0, 1]
    assert s["stun_usernames"].iloc[1] == [
        "7F420B35-B16A-05D7-12FA-BE9FB6B15BB0:2040F7EC-3FBF-61F7-1AC2-AAD5D4610A8E"
    ]
    assert (s["offer_ufrag"].iloc[1], s["answer_ufrag"].iloc[1]) == (
        "2040F7EC-3FBF-61F7-1AC2-AAD5D4610A8E",
        "7F420B35-B16A-05D7-12FA-BE9FB6B15BB0",
    )
    assert s["selected_pair"].iloc[1] == "192.168.43.169:53065 <-> 134.224.90.111:8801"
    assert str(s["first_ts"].iloc[0]) == "2022-08-22 11:58:55.535091486+00:00"
