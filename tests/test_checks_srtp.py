"""The SRTP checks that run on top of decryption (checks/srtp.py: srtp-auth-failure, srtp-e2ee-payload), on the
SDES sample capture, on a copy of it with one byte of one SRTP packet flipped (what an on-path injector or a
corrupting link leaves), and on the DTLS-SRTP sample call with and without its keylog."""

from __future__ import annotations

from pathlib import Path

import pytest
from corrupt import tampered_sdes_capture
from samples import SAMPLES, load_truth, sample_path

import rtcforensics
from rtcforensics.checks.analyze import analyze

pytest.importorskip("pylibsrtp")


def _sdes_stream() -> dict:
    return next(s for s in load_truth("sdes_plain_rtp")["rtp"] if s["keying"] == "sdes")


@pytest.fixture(scope="module")
def tampered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    sample_path("sdes_plain_rtp")  # skips when absent
    return tampered_sdes_capture(tmp_path_factory.mktemp("tampered") / "sdes_one_byte_flipped.pcapng")


def _coverage(report, slug: str):
    return next(c for c in report.coverage if c.slug == slug)


def test_flipped_byte_is_an_auth_failure_in_a_keyed_stream(tampered):
    path, victim = tampered
    s = _sdes_stream()
    r = analyze(rtcforensics.load(path), only=["srtp-auth-failure", "srtp-e2ee-payload"])
    got = [f for f in r.findings if f.slug == "srtp-auth-failure"]
    assert len(got) == 1
    f = got[0]
    assert f.frames == [victim] and f.severity == "high"
    assert f.endpoints == [s["src"], s["dst"]]
    # the other packets of the stream still verify with the key from the SDP
    assert f.evidence["auth_failed"] == 1 and f.evidence["authenticated"] == s["packets"] - 1
    assert f.evidence["ssrc"] == s["ssrc"] and f.evidence["key_source"].startswith("sdes:frame ")
    assert _coverage(r, "srtp-e2ee-payload").status == "clean"


def test_untouched_capture_stays_quiet_and_decrypts_once():
    cap = rtcforensics.load(sample_path("sdes_plain_rtp"))
    r = analyze(cap, only=["srtp-auth-failure", "srtp-e2ee-payload"])
    assert not r.findings
    assert {c.slug: c.status for c in r.coverage} == {
        "srtp-auth-failure": "clean",
        "srtp-e2ee-payload": "clean",
    }
    # the decryption both checks used is cached on the capture (PCMU decrypts to audio, not random bytes)
    res = cap.cached("decrypt", lambda: pytest.fail("decryption ran again"))
    st = res.streams
    row = st[(st.ssrc == _sdes_stream()["ssrc"]) & (st.rtp_packets > 0)].iloc[0]
    assert row.codec == "PCMU" and not row.e2ee_suspected and row.payload_entropy < 7.5


def test_without_keys_the_checks_are_not_observable():
    r = analyze(rtcforensics.load(sample_path("clean_call")), only=["srtp-auth-failure", "srtp-e2ee-payload"])
    for slug in ("srtp-auth-failure", "srtp-e2ee-payload"):
        c = _coverage(r, slug)
        assert c.status == "not observable" and "no SRTP keys" in c.reason


def test_with_the_keylog_the_dtls_call_is_examined_and_clean():
    t = load_truth("clean_call")
    r = analyze(
        rtcforensics.load(sample_path("clean_call"), keylog=SAMPLES / t["keylog"]),
        only=["srtp-auth-failure", "srtp-e2ee-payload"],
    )
    assert {c.slug: c.status for c in r.coverage} == {
        "srtp-auth-failure": "clean",
        "srtp-e2ee-payload": "clean",
    }


def test_tamper_helper_changes_exactly_one_byte(tampered):
    path, _ = tampered
    a, b = sample_path("sdes_plain_rtp").read_bytes(), path.read_bytes()
    assert len(a) == len(b) and sum(x != y for x, y in zip(a, b)) == 1


def test_srtp_streams_is_a_frame_the_checks_and_decrypt_share():
    # issue 18: decryption results are the registered frame `srtp_streams`; cap.decrypt() without arguments
    # returns the same (one decryption per capture), and its rows are the streams SRTP004/005 judged
    cap = rtcforensics.load(sample_path("sdes_plain_rtp"))
    assert "srtp_streams" in cap.frame_names()
    st = cap.srtp_streams
    s = _sdes_stream()
    row = st[(st.ssrc == s["ssrc"]) & (st.rtp_packets > 0)].iloc[0]
    assert row.status == "authenticated" and row.authenticated == s["packets"] and row.auth_failed == 0
    assert row.key_source.startswith("sdes:frame ") and row.codec == "PCMU"
    assert cap.decrypt().streams is st


def test_srtp_streams_without_keys_is_empty_and_costs_no_decryption():
    cap = rtcforensics.load(sample_path("clean_call"))
    assert len(cap.srtp_streams) == 0
    assert "decrypt" not in cap._cache
