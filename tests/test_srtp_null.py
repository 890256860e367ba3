"""srtp-null-cipher on GnuTLS's DTLS handshakes (sample ``srtp_null``): two negotiate a NULL SRTP profile, one
only offers it. Expected values come from gnutls-cli's own printout and the profile lists each side was given."""

from __future__ import annotations

import pytest
from samples import load_truth, sample_path

import rtcforensics
from rtcforensics.checks.analyze import analyze


@pytest.fixture(scope="module")
def truth() -> dict:
    return load_truth("srtp_null")


@pytest.fixture(scope="module")
def report(truth):
    return analyze(
        rtcforensics.load(sample_path("srtp_null")), only=["srtp-null-cipher", "srtp-weak-profile"]
    )


def test_dtls_frame_reads_offered_and_chosen_profiles(truth):
    d = rtcforensics.load(sample_path("srtp_null")).dtls
    for hs in truth["dtls"]:
        row = d[d.client_random == hs["client_random"]]
        assert len(row) == 1, hs["client"]
        r = row.iloc[0]
        assert (r.client, r.server) == (hs["client"], hs["server"])
        assert r.srtp_profile == hs["srtp_profile"]
        assert list(r.srtp_profiles_offered) == hs["srtp_profiles_offered"]


def test_negotiated_null_profiles_are_high(truth, report):
    want = {
        (d["client"], d["server"], d["srtp_profile"]) for d in truth["dtls"] if "NULL" in d["srtp_profile"]
    }
    got = {
        (*f.endpoints, f.evidence["srtp_profile"])
        for f in report.findings
        if f.slug == "srtp-null-cipher" and f.severity == "high"
    }
    assert len(want) == 2 and got == want
    assert all(f.evidence["negotiated"] for f in report.findings if f.severity == "high")


def test_offered_but_not_chosen_is_info(truth, report):
    hs = next(d for d in truth["dtls"] if "NULL" not in d["srtp_profile"])
    info = [f for f in report.findings if f.slug == "srtp-null-cipher" and f.severity == "info"]
    assert len(info) == 1
    f = info[0]
    assert f.endpoints == [hs["client"], hs["server"]]
    assert f.evidence["negotiated"] is False and f.evidence["srtp_profile"] == hs["srtp_profile"]
    assert f.evidence["null_offered"] == [p for p in hs["srtp_profiles_offered"] if "NULL" in p]


def test_null_32_is_not_also_called_a_weak_tag(report):
    # SRTP_NULL_HMAC_SHA1_32 has the short tag too, but it is reported once, as the worse problem
    assert not [f for f in report.findings if f.slug == "srtp-weak-profile"]
    assert next(c for c in report.coverage if c.slug == "srtp-weak-profile").status == "clean"
