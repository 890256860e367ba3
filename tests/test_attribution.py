"""Issue 14 item 1 on the WebRTC-SIP gateway capture (sip_gateway: browser → nginx (TLS) → Kamailio (SIP over
WebSocket in clear) → baresip, media through rtpengine): a header a proxy only relayed is never blamed on the
proxy, and the plain leg behind the media relay is keyed by its own SDP, not by the SSRC the relay kept."""

from __future__ import annotations

import functools

from samples import SAMPLES, load_truth, sample_path

import rtcforensics
from rtcforensics.checks.analyze import Report
from rtcforensics.tables.origins import header_authors


@functools.cache
def _gateway() -> tuple[rtcforensics.Capture, Report]:
    cap = rtcforensics.load(sample_path("sip_gateway"), keylog=SAMPLES / "sip_gateway.keylog")
    return cap, rtcforensics.analyze(cap, only=["software-disclosure", "outdated-component"])


def _host(e: str) -> str:
    return e.rsplit(":", 1)[0] if e.count(":") == 1 else e


def _values(ev: dict) -> set[str]:
    return {str(x) for v in ev.values() for x in (v if isinstance(v, list) else [v])}


def test_relayed_headers_are_not_blamed_on_the_relay():
    t = load_truth("sip_gateway")
    _, r = _gateway()
    for rh in t["relayed_headers"]:
        relays = rh["relayed_by"] if isinstance(rh["relayed_by"], list) else [rh["relayed_by"]]
        holding = [f for f in r.findings if rh["value"] in _values(f.evidence)]
        assert holding, rh
        for f in holding:
            assert not {_host(e) for e in f.endpoints} & set(relays), (rh["header"], f.endpoints)
        # the host that wrote it is named, and the relays that forwarded it are said to be relays
        named = [f for f in holding if rh["originated_by"] in {_host(e) for e in f.endpoints}]
        assert named and set(relays) <= set(named[0].evidence["relayed_by"]), (
            rh,
            [f.evidence for f in named],
        )


def test_back_end_legs_of_the_proxy_are_found_from_the_sip_transactions():
    cap, _ = _gateway()
    a = header_authors(cap.signalling)
    flows = cap.flows.set_index("flow_id")
    back = {(flows.loc[b, "a_ip"], flows.loc[b, "b_ip"]) for b in a.front_leg}
    # nginx's back end to Kamailio (WebSocket) and Kamailio's SIP leg to baresip relay the browser's requests
    assert {frozenset(x) for x in back} == {
        frozenset({"10.0.0.5", "10.0.0.20"}),
        frozenset({"10.0.0.20", "10.0.0.40"}),
    }


def test_plain_leg_behind_the_media_relay_is_keyed_none():
    t = load_truth("sip_gateway")
    cap, _ = _gateway()
    st = cap.rtp_streams
    plain = next(f for f in t["findings"] if f["slug"] == "rtp-unencrypted")
    for ssrc in plain["evidence"]["ssrc"]:
        rows = st[st.ssrc == ssrc]
        legs = {(str(r.keying), frozenset({r.src, r.dst})) for r in rows.itertuples()}
        # the same SSRC crosses the browser's DTLS-SRTP leg and rtpengine's plain RTP/AVP leg
        assert ("none", frozenset(plain["endpoints"])) in legs and any(k == "dtls-srtp" for k, _ in legs), (
            legs
        )


def test_clear_back_end_of_the_tls_proxy_is_said_to_be_one():
    t = load_truth("sip_gateway")
    cap, _ = _gateway()
    r = rtcforensics.analyze(cap, only=["signalling-plaintext"])
    browser = t["hosts"]["alice"]["address"]
    proxy_front = next(a for a in t["hosts"]["proxy"]["address"] if a.startswith("203."))
    for tf in (f for f in t["findings"] if f["slug"] == "signalling-plaintext"):
        f = next(f for f in r.findings if set(tf["endpoints"]) <= {f.endpoints[0], *f.endpoints})
        # the browser's own leg to nginx was TLS: these clear legs are inside the operator's network
        assert f.severity == "medium" and f.evidence["behind_tls_proxy"] is True
        assert f.evidence["tls_front_legs"] == [f"{browser} → {proxy_front}:443"]


def test_ice_password_in_clear_is_a_secret_exposed():
    # issue 14 item 6: a=ice-pwd readable on the wire (aiortc's JSON SDP over plain WebSocket) is
    # signalling-secret-exposed, info when it is the flow's only secret (the clear signalling is the finding)
    t = load_truth("ws_plaintext_private")
    r = rtcforensics.analyze(
        rtcforensics.load(sample_path("ws_plaintext_private")), only=["signalling-secret-exposed"]
    )
    offers = [d for d in t["sdp"] if not d.get("tls")]
    got = [f for f in r.findings if f.evidence["kinds"] == ["ice-pwd"]]
    assert offers and len(got) == 2 and all(f.severity == "info" and f.evidence["in_clear"] for f in got)
    servers = {f.endpoints[-1] for f in got}
    assert len(servers) == 1 and servers <= {
        tf["endpoints"][-1] for tf in t["findings"] if tf["slug"] == "signalling-plaintext"
    }


@functools.cache
def _gateway_without_keylog() -> rtcforensics.Capture:
    return rtcforensics.load(sample_path("sip_gateway"))


def test_forwarded_headers_name_the_client_when_the_tls_front_leg_is_unreadable():
    # without the keylog the browser's TLS leg to nginx is opaque: the first readable copy of every header is
    # nginx's back end (10.0.0.5). nginx's X-Forwarded-For / X-Forwarded-Proto and the SIP bottom Via still say
    # who wrote them and that the front leg was TLS (a first-copy inference alone would blame nginx).
    t = load_truth("sip_gateway")
    cap = _gateway_without_keylog()
    r = rtcforensics.analyze(cap, only=["software-disclosure", "signalling-plaintext"])
    browser = t["hosts"]["alice"]["address"]
    for rh in t["relayed_headers"]:
        if rh["originated_by"] != browser:
            continue
        holding = [
            f for f in r.findings if f.slug == "software-disclosure" and rh["value"] in _values(f.evidence)
        ]
        assert holding and all({_host(e) for e in f.endpoints} == {browser} for f in holding), rh
        assert all("10.0.0.5" in f.evidence["relayed_by"] for f in holding), [f.evidence for f in holding]
    plain = [f for f in r.findings if f.slug == "signalling-plaintext"]
    assert len(plain) == 2 and all(f.severity == "medium" and f.evidence["behind_tls_proxy"] for f in plain)
    assert {x for f in plain for x in f.evidence["tls_front_legs"]} == {f"{browser} → 10.0.0.5"}
