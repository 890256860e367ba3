"""SRTP005 srtp-e2ee-payload on a real end-to-end-encrypted browser call (sample_captures/browsers_e2ee:
Firefox ESR 153 calls Chromium 156, both pages seal every encoded audio/video frame with AES-GCM in an
RTCRtpScriptTransform, lab/web/e2ee_worker.js), against the same call without E2EE
(browsers_firefox_chromium).

Every expected value comes from the browsers (truth file: the transform worker's frame counters and the SSRCs
it saw, getStats), never from our parser."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest
from samples import SAMPLES, load_truth, sample_path

import rtcforensics
from rtcforensics.checks.analyze import analyze
from rtcforensics.srtp.decrypt import _e2ee_suspected, _entropy, _probe_opus, _rtp_payload

pytest.importorskip("pylibsrtp")
pytest.importorskip("av")

E2EE = "browsers_e2ee"
PLAIN = "browsers_firefox_chromium"
ONLY = ["srtp-auth-failure", "srtp-e2ee-payload"]


def _keylog(name: str):
    return SAMPLES / load_truth(name)["keylog"]


@pytest.fixture(scope="module")
def e2ee_decrypted():
    return rtcforensics.load(sample_path(E2EE), keylog=_keylog(E2EE), progress=False).decrypt()


def _sealed(truth: dict, kind: str) -> dict[int, dict]:
    """SSRC -> the sending browser's transform counters, for every stream of ``kind`` the pages sealed."""
    out = {}
    for side in truth["e2ee"]["sides"].values():
        for t in side["transforms"]:
            if t["side"] == "send" and t["kind"] == kind:
                assert len(t["ssrcs"]) == 1 and t["failures"] == 0
                out[t["ssrcs"][0]] = t
    return out


def _flag(v) -> bool | None:
    """e2ee_suspected cell as a plain bool (pandas gives numpy bools), None when undecided."""
    return None if v is None or v is pd.NA else bool(v)


def _payloads(res, ssrc: int) -> list[bytes]:
    st = next(s for s in res.states.values() if s.ssrc == ssrc)
    pt = Counter(r[3] for r in st.plain).most_common(1)[0][0]
    return [_rtp_payload(r[6]) for r in sorted(st.plain, key=lambda r: r[0]) if r[3] == pt]


def test_truth_says_both_browsers_sealed_and_opened_every_audio_frame():
    t = load_truth(E2EE)
    sides = t["e2ee"]["sides"]
    assert {s["api"] for s in sides.values()} == {"RTCRtpScriptTransform"}
    # the pages report only the secret's length (the secret itself is under "secrets", for the wire checks)
    for form in ("e2ee_secret_hex", "e2ee_secret_b64url"):
        assert t["secrets"][form] not in str(sides)
    assert {s["secret_bytes"] for s in sides.values()} == {16}
    audio = _sealed(t, "audio")
    assert len(audio) == 2
    for side in sides.values():
        opened = {
            x["ssrcs"][0]: x for x in side["transforms"] if x["side"] == "receive" and x["kind"] == "audio"
        }
        for ssrc, rx in opened.items():
            assert rx["failures"] == 0 and rx["frames"] == audio[ssrc]["frames"] > 100
        # the decrypted audio played: the receiver decoded samples
        assert side["inbound_after_decrypt"]["audio"]["totalSamplesReceived"] > 48000


def test_with_the_keylog_e2ee_audio_authenticates_yet_is_flagged(e2ee_decrypted):
    t = load_truth(E2EE)
    rtp = {r["ssrc"]: r for r in t["rtp"]}
    streams = e2ee_decrypted.streams
    for ssrc, sealed in _sealed(t, "audio").items():
        row = streams[streams.ssrc == ssrc].iloc[0]
        # SRTP (hop by hop) is fully open with the keylog: every packet's tag verifies
        assert row.status == "authenticated" and row.auth_failed == 0
        assert row.authenticated == row.rtp_packets + row.rtcp_packets
        assert row.key_source.startswith("dtls-srtp:") and row.profile == t["dtls"][0]["srtp_profile"]
        # one sealed Opus frame per RTP packet, as the browser counted them
        assert row.rtp_packets == rtp[ssrc]["packets"] == sealed["frames"]
        assert row.codec == "opus"
        # ... but what is inside is still ciphertext
        assert _flag(row.e2ee_suspected) is True and row.payload_entropy > 7.95


def test_video_streams_are_flagged_too_and_rtx_is_not_judged(e2ee_decrypted):
    t = load_truth(E2EE)
    streams = e2ee_decrypted.streams
    for ssrc in _sealed(t, "video"):
        row = streams[streams.ssrc == ssrc].iloc[0]
        assert row.status == "authenticated" and row.codec == "red" and _flag(row.e2ee_suspected) is True
    for r in t["rtp"]:
        if "rtx_of" in r and r["packets"]:
            assert _flag(streams[streams.ssrc == r["ssrc"]].iloc[0].e2ee_suspected) is None


def test_check_reports_the_ssrcs_the_browsers_reported():
    t = load_truth(E2EE)
    r = analyze(rtcforensics.load(sample_path(E2EE), keylog=_keylog(E2EE)), only=ONLY)
    got = {f.evidence["ssrc"]: f for f in r.findings if f.slug == "srtp-e2ee-payload"}
    want = {f["evidence"]["ssrc"]: f for f in t["findings"] if f["slug"] == "srtp-e2ee-payload"}
    assert set(got) == set(want) == set(_sealed(t, "audio")) | set(_sealed(t, "video"))
    cap = rtcforensics.load(sample_path(E2EE))
    rtp = cap.rtp
    for ssrc, f in got.items():
        assert f.endpoints == want[ssrc]["endpoints"] and f.severity == "info"
        # the frames to open: the stream's first packets on the wire (same SSRC, from the sender)
        first = rtp[rtp.ssrc == ssrc].frame.head(5).tolist()
        assert f.frames == first and len(first) == 5
    assert {c.slug: c.status for c in r.coverage} == {
        "srtp-auth-failure": "clean",
        "srtp-e2ee-payload": "found",
    }


def test_without_the_keylog_the_check_is_not_observable():
    r = analyze(rtcforensics.load(sample_path(E2EE)), only=ONLY)
    assert not r.findings
    for c in r.coverage:
        assert c.status == "not observable" and "no SRTP keys" in c.reason


def test_the_same_call_without_e2ee_is_not_flagged():
    r = analyze(rtcforensics.load(sample_path(PLAIN), keylog=_keylog(PLAIN)), only=ONLY)
    assert not r.findings
    assert {c.slug: c.status for c in r.coverage} == {
        "srtp-auth-failure": "clean",
        "srtp-e2ee-payload": "clean",
    }
    res = rtcforensics.load(sample_path(PLAIN), keylog=_keylog(PLAIN), progress=False).decrypt()
    media = res.streams[res.streams.codec.isin(["opus", "red"])]
    assert len(media) == 4 and [_flag(v) for v in media.e2ee_suspected] == [False] * 4


def test_libopus_alone_would_miss_it_past_the_first_headers(e2ee_decrypted):
    """The SFrame-style header's first byte reads as an Opus TOC; once the counter no longer fits in it
    (9th frame on), it is a frame-count code 0 TOC and libopus decodes the ciphertext without complaint. The
    uniformity test still flags that window; real Opus from the same browsers stays unflagged."""
    t = load_truth(E2EE)
    for ssrc in _sealed(t, "audio"):
        later = _payloads(e2ee_decrypted, ssrc)[8:]
        assert _probe_opus(109, later) == ("opus?", 48000)
        assert _e2ee_suspected(("opus", 48000), 109, later, _entropy(later)) is True
    plain = rtcforensics.load(sample_path(PLAIN), keylog=_keylog(PLAIN), progress=False).decrypt()
    for r in load_truth(PLAIN)["rtp"]:
        if r.get("kind") == "audio":
            p = _payloads(plain, r["ssrc"])[8:]
            assert _e2ee_suspected(("opus", 48000), 109, p, _entropy(p)) is False


def test_the_shared_secret_never_reaches_the_wire_nor_the_report():
    from rtcforensics.report.jsonout import document

    t = load_truth(E2EE)
    hexkey = t["secrets"]["e2ee_secret_hex"]
    forms = [bytes.fromhex(hexkey), hexkey.encode(), t["secrets"]["e2ee_secret_b64url"].encode()]
    data = sample_path(E2EE).read_bytes()
    assert not [f for f in forms if f in data]
    r = analyze(rtcforensics.load(sample_path(E2EE), keylog=_keylog(E2EE)))
    shown = str(document(r, show_secrets=True))
    assert not [f for f in forms[1:] if f.decode() in shown]
