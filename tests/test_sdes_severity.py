"""SDP001 sdes-key-exposed reasons its severity per instance, on real captures (lab/scenarios/ffmpeg_sdes.py):

- critical: the SDP with ``a=crypto inline:`` crossed the wire in clear (``sdes_plain_rtp``, plain HTTP);
- medium: it was read only after TLS decryption with the keylog (``sdes_https``, HTTPS / TLS 1.3);
- not observable: the same HTTPS capture without its keylog (no SDP, no SDES key, no SRTP decryption);
- low: the SDP came from a side file (``load(..., signalling=[...])``), here the real ffmpeg offer taken out of
  ``sdes_plain_rtp``'s POST by tshark, beside a capture with no SDP of its own (``weak_dtls``).

What each capture holds comes from its truth file (the lab's stacks) and from tshark, not from our parser.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from samples import SAMPLES, load_truth, sample_path

import rtcforensics
from rtcforensics.checks.analyze import Report

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark needed for the cross-checks")

SLUG = "sdes-key-exposed"


@functools.cache
def report(name: str, keylog: bool, side: tuple[str, ...] = ()) -> Report:
    k = SAMPLES / f"{name}.keylog" if keylog else None
    return rtcforensics.analyze(
        rtcforensics.load(sample_path(name), keylog=k, signalling=list(side) or None, progress=False)
    )


def truth_finding(name: str, slug: str) -> dict:
    return next(f for f in load_truth(name)["findings"] if f["slug"] == slug)


def sdes_hits(r: Report) -> list:
    return [f for f in r.findings if f.slug == SLUG]


def coverage(r: Report, slug: str):
    return next(c for c in r.coverage if c.slug == slug)


def tshark_http_bodies(name: str, keylog: bool, flt: str = "http.file_data") -> list[str]:
    """HTTP bodies as tshark reads them (JSON output: the real text, not tshark's escaped field form)."""
    argv = ["tshark", "-n", "-r", str(sample_path(name)), "-Y", flt, "-T", "json", "-e", "http.file_data"]
    if keylog:
        argv += ["-o", f"tls.keylog_file:{SAMPLES / f'{name}.keylog'}", "-d", "tcp.port==8443,tls"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True).stdout
    return [
        body for pkt in json.loads(out or "[]") for body in pkt["_source"]["layers"].get("http.file_data", [])
    ]


# -- in clear: critical ------------------------------------------------------------------------------------------


def test_clear_sdp_is_critical():
    tf = truth_finding("sdes_plain_rtp", SLUG)
    assert tf["severity"] == "critical"
    hits = sdes_hits(report("sdes_plain_rtp", keylog=False))
    assert hits and {f.severity for f in hits} == {"critical"}
    f = hits[0]
    assert f.endpoints == tf["endpoints"] and set(tf["frames"]) <= set(f.frames)
    assert f.evidence["exposure"] == "clear"


# -- inside TLS, read with the keylog: medium --------------------------------------------------------------------


def test_https_truth_facts():
    t = load_truth("sdes_https")
    assert t["keylog"] == "sdes_https.keylog" and (SAMPLES / t["keylog"]).exists()
    assert all(s["tls"] for s in t["sdp"]) and [s["role"] for s in t["sdp"]] == ["offer", "answer"]
    assert t["signalling"]["tls_version"] == "TLS 1.3"
    assert {"signalling-plaintext", "signalling-weak-tls"} <= set(t["absent_findings"])
    # tshark reads both SDPs (with their a=crypto) only with the keylog
    with_keys = [b for b in tshark_http_bodies("sdes_https", keylog=True) if "a=crypto:" in b]
    assert len(with_keys) == 2
    assert not tshark_http_bodies("sdes_https", keylog=False)
    # ... and the inline keys are nowhere in the capture bytes
    data = sample_path("sdes_https").read_bytes()
    for s in t["secrets"]["sdes"]:
        assert s["inline"].encode() not in data
        assert any(f"inline:{s['inline']}" in b for b in with_keys)


def test_tls_decrypted_sdp_is_medium():
    tf = truth_finding("sdes_https", SLUG)
    assert tf["severity"] == "medium"
    r = report("sdes_https", keylog=True)
    hits = sdes_hits(r)
    assert hits and {f.severity for f in hits} == {"medium"}
    f = hits[0]
    assert f.endpoints == tf["endpoints"] and set(tf["frames"]) <= set(f.frames)
    assert f.evidence["exposure"] == "decrypted"
    # the bearer token and cookie behind TLS: info, not the high of the clear case; no plaintext, no weak TLS
    sec = [f for f in r.findings if f.slug == "signalling-secret-exposed"]
    assert sec and {f.severity for f in sec} == {"info"} and sec[0].evidence["in_clear"] is False
    assert not [f for f in r.findings if f.slug in ("signalling-plaintext", "signalling-weak-tls")]
    assert coverage(r, "signalling-weak-tls").status == "clean"


def test_without_keylog_not_observable_and_no_srtp_key():
    r = report("sdes_https", keylog=False)
    assert not sdes_hits(r)
    c = coverage(r, SLUG)
    assert c.status == "not observable", (c.status, c.reason)
    assert "--keylog" in c.reason
    t = load_truth("sdes_https")
    res = rtcforensics.load(sample_path("sdes_https"), progress=False).decrypt()
    rtp = res.streams[res.streams.rtp_packets > 0]
    assert {int(s) for s in rtp.ssrc} == {s["ssrc"] for s in t["rtp"]}
    assert set(rtp.status) == {"no key"} and (rtp.authenticated == 0).all()


def test_keys_from_decrypted_sdp_authenticate_the_sdes_stream():
    pytest.importorskip("pylibsrtp")
    t = load_truth("sdes_https")
    cap = rtcforensics.load(sample_path("sdes_https"), keylog=SAMPLES / "sdes_https.keylog", progress=False)
    offer_frame = next(s["frame"] for s in t["sdp"] if s["role"] == "offer")
    res = cap.decrypt()
    streams = {int(r.ssrc): r for r in res.streams.itertuples() if r.rtp_packets}
    for s in t["rtp"]:
        row = streams[s["ssrc"]]
        assert row.rtp_packets == s["packets"]
        if s["keying"] == "sdes":
            assert row.status == "authenticated"
            assert row.authenticated == s["packets"] + (row.rtcp_packets or 0)
            assert row.key_source == f"sdes:frame {offer_frame}"
            assert row.profile == "SRTP_AES128_CM_HMAC_SHA1_80"
        else:  # the plain RTP/AVP PCMA stream has no key
            assert row.status == "no key" and row.authenticated == 0


# -- from a side file: low ---------------------------------------------------------------------------------------


def test_side_file_sdp_is_low(tmp_path: Path):
    # the real ffmpeg offer, as tshark reads it from sdes_plain_rtp's WHIP POST
    bodies = tshark_http_bodies("sdes_plain_rtp", keylog=False, flt='http.request.method == "POST"')
    assert len(bodies) == 1
    offer = bodies[0]
    key = next(s["inline"] for s in load_truth("sdes_plain_rtp")["secrets"]["sdes"] if s["sdp"] == "offer")
    assert offer.startswith("v=0") and f"inline:{key}" in offer
    side = tmp_path / "offer.sdp"
    side.write_text(offer)
    # weak_dtls has no SDP of its own: SDP001 cannot be observed there until the side file is given
    assert coverage(report("weak_dtls", keylog=True), SLUG).status == "not observable"
    cap = rtcforensics.load(
        sample_path("weak_dtls"), keylog=SAMPLES / "weak_dtls.keylog", signalling=[side], progress=False
    )
    assert list(cap.sdp.source) == ["offer.sdp"]
    hits = sdes_hits(rtcforensics.analyze(cap))
    assert len(hits) == 1
    f = hits[0]
    assert f.severity == "low"
    assert f.evidence["exposure"] == "side" and f.evidence["role"] == "offer"
    assert f.evidence["side_file"] == "offer.sdp"  # which file to look at
    assert f.evidence["crypto_suites"] == ["AES_CM_128_HMAC_SHA1_80"]


def test_secret_kinds_survive_redaction_in_reports():
    """The finding names what was exposed (a bearer token, cookies) in words the redactor leaves alone, and
    the rendered report still holds no token or cookie value."""
    from rtcforensics.report import jsonout, table

    t = load_truth("sdes_plain_rtp")
    doc = jsonout.document(rtcforensics.analyze(rtcforensics.load(sample_path("sdes_plain_rtp"))))
    f = next(f for f in doc["findings"] if f["slug"] == "signalling-secret-exposed")
    assert f["evidence"]["kinds"] == ["authorization/bearer", "cookie", "set-cookie"]
    assert f["message"].startswith("authorization/bearer, cookie, set-cookie readable in clear in ")
    text = table.render(doc) + json.dumps(doc)
    assert "<redacted>" not in f["message"]
    for secret in t["secrets"]["whip"].values():
        assert secret not in text
