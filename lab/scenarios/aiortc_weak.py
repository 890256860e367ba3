"""aiortc calls with one weakness each: fingerprint_sha1, stun_no_integrity, tls10_signalling.

Same peers (lab/peer.py) and signalling server (lab/signalling_server.py) as aiortc_calls.py, with one option
changing what the real stack sends:
- fingerprint_sha1: the offerer announces its certificate with ``a=fingerprint:sha-1`` only (computed from
  its own DTLS certificate, replacing aiortc's sha-256/384/512 lines before the SDP is sent). aiortc 1.16
  does not accept sha-1 fingerprints: the answerer completes the DTLS handshake on the wire, then finds no
  fingerprint it can verify and fails (the offerer, which verified the answer, still reports connected).
- stun_no_integrity: the offerer's aioice sends its ICE connectivity checks without MESSAGE-INTEGRITY
  (FINGERPRINT kept); the answerer's aioice rejects each with 400 Bad Request and ICE fails.
- tls10_signalling: HTTPS + WSS signalling negotiated at TLS 1.0 (Python ssl, min = max = TLSv1,
  @SECLEVEL=0, on the server and both peers); TLS and DTLS keys in the keylog.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lab import truthlib as T
from lab.netns import Lab
from lab.scenarios.aiortc_calls import (
    absent,
    candidates_truth,
    cross_check_rtp,
    dedupe_keylog,
    dtls_truth,
    http_offer_options,
    load,
    rtp_truth,
    start_signalling,
    stun_truth,
    three_hosts,
    two_peers,
)

TLS_IANA = {"TLSv1": "TLS 1.0", "TLSv1.1": "TLS 1.1", "TLSv1.2": "TLS 1.2", "TLSv1.3": "TLS 1.3"}


def _core(offer: dict, answer: dict, transport: str, tls: bool) -> dict[str, Any]:
    return {
        "sdp": [
            T.sdp_facts(offer["local_sdp"], "offer", transport, tls),
            T.sdp_facts(answer["local_sdp"], "answer", transport, tls),
        ],
        # a DTLS transport whose ICE never connected has a client random in memory but sent nothing
        "dtls": [d for d in dtls_truth(offer, answer) if d["client"]],
        "rtp": rtp_truth(offer, answer),
        "stun": stun_truth(offer, answer),
        "candidates": candidates_truth(("offer", offer), ("answer", answer)),
    }


def fingerprint_sha1(out: Path) -> dict[str, Any]:
    name = "fingerprint_sha1"
    w = T.workdir(name)
    cap, keylog = out / f"{name}.pcapng", out / f"{name}.keylog"
    with Lab(name) as lab:
        sig, alice, bob = three_hosts(lab)
        base = {
            "signal": f"ws://{sig.ip}:8080",
            "media": "audio",
            "keylog": str(keylog),
            "duration": 1,
            "timeout": 12,
        }
        offer, answer = two_peers(
            lab,
            w,
            cap,
            alice,
            bob,
            {**base, "fingerprint_hash": "sha-1"},
            base,
            servers=[lambda: start_signalling(sig, w, tls=False)],
        )
    dedupe_keylog(keylog)
    core = _core(offer, answer, "websocket", False)
    rw = offer.get("fingerprint_rewritten")
    if not rw:
        raise RuntimeError("offerer did not rewrite its fingerprint")
    if core["sdp"][0]["fingerprint"] != {"sha-1": rw["value"]}:
        raise RuntimeError(f"offer as sent has {core['sdp'][0]['fingerprint']}, expected sha-1 only")
    offer_cert = {h.get("local_cert_sha256") for h in offer["dtls"]} - {None}
    if offer_cert != {rw["cert_sha256"]}:
        raise RuntimeError("sha-1 fingerprint was not computed from the certificate the offerer used in DTLS")
    ans_fp = core["sdp"][1]["fingerprint"].get("sha-256")
    if {h.get("local_cert_sha256") for h in answer["dtls"]} - {None} != {ans_fp}:
        raise RuntimeError("answer's SDP fingerprint != its DTLS certificate")
    if not core["dtls"]:
        raise RuntimeError("no DTLS handshake recorded")
    cross_check_rtp(cap, core["rtp"])
    states = {h["role"]: h["state"] for p in (offer, answer) for h in p["dtls"]}
    return {
        "description": "aiortc audio call whose offer announces the offerer's DTLS certificate with "
        "a=fingerprint:sha-1 only (correct SHA-1 of its certificate, aiortc's sha-256/384/512 lines "
        "replaced before sending); plain WebSocket signalling. aiortc 1.16 cannot verify sha-1: the DTLS "
        "handshake completes on the wire, then the answerer (DTLS client) finds no fingerprint it can "
        "check and fails; the offerer, which verified the answer's sha-256, reports connected and sends "
        "audio the answerer never decrypts. DTLS master secrets in keylog",
        "keylog": keylog.name if keylog.exists() else None,
        "findings": [
            {
                "slug": "fingerprint-weak-hash",
                "endpoints": [f"{sig.ip}:8080"],
                "hash": "sha-1",
                "role": "offer",
                "other_hashes": [],
            },
            {"slug": "signalling-plaintext", "endpoints": [f"{sig.ip}:8080"]},
        ],
        "absent_findings": [
            s
            for s in absent("fingerprint-weak-hash", "signalling-plaintext")
            # the call fails after the handshake (answerer's fingerprint check): whether a check calls that a
            # mismatch or a failed handshake is the checks' business, not asserted here
            if s not in ("dtls-fingerprint-mismatch", "dtls-handshake-failed")
        ],
        **core,
        "outcome": {
            "offer_connected": offer["connected"],
            "answer_connected": answer["connected"],
            "dtls_states": states,
            "offer_states": offer.get("states", []),
            "answer_states": answer.get("states", []),
            "aiortc_accepts_sha1": False,
        },
        "fingerprint_sha1": {
            "offer_cert_sha256": rw["cert_sha256"],
            "sha1": rw["value"],
            "sdp_as_generated_hashes": sorted(
                T.sdp_facts(offer["sdp_as_generated"], "", "", False)["fingerprint"]
            ),
        },
        "notes": "The offer's SDP as aiortc generated it carried sha-256, sha-384 and sha-512 fingerprints; "
        "the lab peer replaced them with one sha-1 line computed from the same certificate before sending. "
        "aiortc only verifies sha-256/384/512 (X509_DIGEST_ALGORITHMS): with no verifiable fingerprint the "
        "answerer's RTCDtlsTransport goes to 'failed' after the handshake.",
    }


def stun_no_integrity(out: Path) -> dict[str, Any]:
    name = "stun_no_integrity"
    w = T.workdir(name)
    cap = out / f"{name}.pcapng"
    with Lab(name) as lab:
        alice = lab.host("alice", "192.0.2.10/24")
        bob = lab.host("bob", "192.0.2.20/24")
        via_offer, via_answer = http_offer_options(bob, w)
        offer, answer = two_peers(
            lab,
            w,
            cap,
            alice,
            bob,
            {**via_offer, "media": "audio", "no_integrity": True, "duration": 1, "timeout": 8, "linger": 0.5},
            {**via_answer, "media": "audio", "duration": 1, "timeout": 8, "linger": 0.5},
        )
    if not offer.get("checks_without_integrity"):
        raise RuntimeError("offerer sent no check without MESSAGE-INTEGRITY")
    core = _core(offer, answer, "http", False)
    rejected = dict(offer.get("check_errors", {}))
    sent_400 = answer["stun_sent_direct"].get("Binding/error", 0)
    if not sent_400:
        raise RuntimeError("answerer did not reject the unauthenticated checks")
    # tshark: Binding requests with USERNAME but no MESSAGE-INTEGRITY, from the offerer
    rows = T.tshark_fields(
        cap,
        ["ip.src", "udp.srcport", "ip.dst", "udp.dstport"],
        display_filter="stun.type == 0x0001 && stun.att.username && !stun.att.hmac && !icmp",
    )
    if len(rows) != offer["checks_without_integrity"]:
        raise RuntimeError(
            f"tshark sees {len(rows)} checks without MESSAGE-INTEGRITY, aioice sent "
            f"{offer['checks_without_integrity']}"
        )
    flows = sorted({f"{r[0]}:{r[1]}" for r in rows} | {f"{r[2]}:{r[3]}" for r in rows})
    return {
        "description": "two aiortc peers (offer in one plain HTTP POST); the offerer's aioice sends its ICE "
        "connectivity checks (Binding requests with USERNAME, PRIORITY, ICE-CONTROLLING) without "
        "MESSAGE-INTEGRITY; the answerer's aioice rejects each with 400 Bad Request, the answerer's own "
        "(authenticated) checks succeed, the offerer nominates nothing and ICE fails: no DTLS, no media",
        "keylog": None,
        "findings": [
            {"slug": "stun-no-integrity", "endpoints": flows, "requests": offer["checks_without_integrity"]},
            {"slug": "signalling-plaintext", "endpoints": [f"{bob.ip}:8080"]},
        ],
        "absent_findings": [
            s
            for s in absent("stun-no-integrity", "signalling-plaintext")
            if s not in ("dtls-handshake-failed",)
        ],
        **core,
        "ice": {
            "checks_without_integrity": offer["checks_without_integrity"],
            "rejections_seen_by_offerer": rejected,
            "errors_sent_by_answerer": sent_400,
            "offer_connected": offer["connected"],
            "answer_connected": answer["connected"],
            "offer_ice_state": offer.get("ice_connection_state"),
            "answer_ice_state": answer.get("ice_connection_state"),
        },
        "notes": "The lab peer (--no-integrity) drops the integrity key of aioice's outgoing ICE Binding "
        "requests (FINGERPRINT still added); aioice's request_received answers them with 400 Bad Request "
        "(RFC 8489 §9.1.3), unsigned, with FINGERPRINT. Counts from aioice's own send hooks; tshark "
        "confirms the number of Binding requests carrying USERNAME but no MESSAGE-INTEGRITY.",
    }


def tls10_signalling(out: Path) -> dict[str, Any]:
    name = "tls10_signalling"
    w = T.workdir(name)
    cap, keylog = out / f"{name}.pcapng", out / f"{name}.keylog"
    with Lab(name) as lab:
        sig, alice, bob = three_hosts(lab)
        base = {
            "signal": f"wss://{sig.ip}:8443",
            "config_url": f"https://{sig.ip}:8443/config",
            "cafile": str(w / "signal.crt"),
            "tls10": True,
            "keylog": str(keylog),
            "media": "audio",
            "duration": 1,
        }
        offer, answer = two_peers(
            lab,
            w,
            cap,
            alice,
            bob,
            base,
            base,
            servers=[
                lambda: start_signalling(sig, w, tls=True, extra=["--tls10", "--log", str(w / "sig.json")])
            ],
        )
    dedupe_keylog(keylog)
    if not (offer["connected"] and answer["connected"]):
        raise RuntimeError(f"{name} did not connect")
    core = _core(offer, answer, "websocket", True)
    for p, facts in ((offer, core["sdp"][0]), (answer, core["sdp"][1])):
        for hs in p["dtls"]:
            if facts["fingerprint"].get("sha-256") != hs["local_cert_sha256"]:
                raise RuntimeError("SDP fingerprint as sent != DTLS certificate")
    cross_check_rtp(cap, core["rtp"])
    tls_log = [e for e in load(w / "sig.json")["events"] if e["event"] == "tls"]
    versions = {e["version"] for e in tls_log}
    ciphers = sorted({e["cipher"] for e in tls_log})
    if versions != {"TLSv1"} or len(tls_log) < 4:
        raise RuntimeError(f"signalling TLS not all 1.0: {tls_log}")
    iana = [T.openssl_iana_names().get(c, c) for c in ciphers]
    # tshark: every ServerHello on 8443 says TLS 1.0 (0x0301)
    hellos = T.tshark_fields(
        cap,
        ["tls.handshake.version", "tls.handshake.ciphersuite"],
        display_filter="tls.handshake.type == 2 && tcp.srcport == 8443",
    )
    if not hellos or {h[0] for h in hellos} != {"0x0301"}:
        raise RuntimeError(f"tshark ServerHello versions: {hellos}")
    return {
        "description": "aiortc audio call over DTLS-SRTP; signalling (HTTPS GET /config, then WSS) negotiated "
        "at TLS 1.0 (Python ssl on aiohttp server and both peers, min = max TLSv1, @SECLEVEL=0); the "
        "SDP offer/answer travel inside TLS 1.0; TLS and DTLS keys in keylog",
        "keylog": keylog.name,
        "findings": [
            {
                "slug": "signalling-weak-tls",
                "endpoints": [f"{sig.ip}:8443"],
                "tls_version": "TLS 1.0",
                "cipher_suites": iana,
            },
        ],
        "absent_findings": absent("signalling-weak-tls"),
        **core,
        "signalling": {
            "server": f"{sig.ip}:8443",
            "tls": True,
            "tls_version": "TLS 1.0",
            "cipher_suites": iana,
            "connections": tls_log,
            "urls": ["/config", "/ws/lab/offer", "/ws/lab/answer"],
        },
        "notes": "TLS facts from the server's ssl objects (version(), cipher() per connection); tshark "
        "confirms every ServerHello from :8443 is TLS 1.0 (0x0301) and, with the keylog, reads both SDPs.",
    }


SCENARIOS = {
    "fingerprint_sha1": fingerprint_sha1,
    "stun_no_integrity": stun_no_integrity,
    "tls10_signalling": tls10_signalling,
}
