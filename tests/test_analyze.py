"""analyze(): coverage semantics (found / clean / not observable / failed), strict mode, parameters,
deduplication and the findings frame — on real sample captures."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
from samples import load_truth, sample_path

import rtcforensics
from rtcforensics.checks.analyze import FINDING_COLUMNS
from rtcforensics.checks.registry import REGISTRY, load_catalogue


class WithoutFrame:
    """A real capture seen through a filter: one frame is missing (as in a build without its builder) or its
    builder raises (as a builder bug would)."""

    def __init__(self, cap, missing=(), broken=()):
        self.cap, self.missing, self.broken = cap, set(missing), set(broken)
        self.path = cap.path

    def frame_names(self):
        return [n for n in self.cap.frame_names() if n not in self.missing]

    def get_frame(self, name):
        if name in self.broken:
            raise RuntimeError(f"{name} builder exploded")
        return self.cap.get_frame(name)

    def sha256(self):
        return self.cap.sha256()


@pytest.fixture(scope="module")
def weak():
    return rtcforensics.load(sample_path("weak_dtls"))


def _cov(report, cid):
    return next(c for c in report.coverage if c.id == cid)


def test_analyze_is_exported_and_covers_every_check(weak):
    r = rtcforensics.analyze(weak)
    assert [c.id for c in r.coverage] == list(load_catalogue())
    assert _cov(r, "DTLS002").status == "found" and _cov(r, "DTLS004").status == "clean"
    # no signalling in this capture: not observable with the reason, never clean
    c = _cov(r, "SIG001")
    assert c.status == "not observable" and "signalling" in c.reason
    assert r.capture["sha256"] == weak.sha256()


def test_absent_frame_is_not_observable(weak):
    r = rtcforensics.analyze(WithoutFrame(weak, missing={"dtls"}))
    for cid in ("DTLS002", "DTLS003", "DTLS004", "DTLS005"):
        c = _cov(r, cid)
        assert c.status == "not observable" and "frame 'dtls' is not available" in c.reason
    assert not [f for f in r.findings if f.id.startswith("DTLS")]


def test_broken_builder_fails_the_checks_that_need_it_and_the_run_goes_on(weak):
    r = rtcforensics.analyze(WithoutFrame(weak, broken={"dtls"}))
    c = _cov(r, "DTLS003")
    assert c.status == "failed" and "dtls builder exploded" in c.reason
    assert (r.anomalies["name"] == "check_failed").sum() == 4  # DTLS002..005 need dtls
    assert set(r.anomalies["layer"].astype(str)) == {"check"}
    # SRTP002 reads dtls optionally: it cannot see it, says so, and the other checks still ran
    assert _cov(r, "SRTP002").status in ("not observable", "clean")
    assert _cov(r, "COMP001").status != "failed"


def test_raising_check_is_failed_and_strict_reraises(weak, monkeypatch):
    def boom(ctx):
        raise ZeroDivisionError("deliberate")

    monkeypatch.setitem(REGISTRY, "SRTP002", dataclasses.replace(REGISTRY["SRTP002"], fn=boom))
    r = rtcforensics.analyze(weak)
    c = _cov(r, "SRTP002")
    assert c.status == "failed" and "ZeroDivisionError: deliberate" in c.reason
    assert r.anomalies["detail"].str.contains("SRTP002").any()
    assert _cov(r, "DTLS003").status == "found"  # the run went on
    with pytest.raises(ZeroDivisionError):
        rtcforensics.analyze(weak, strict=True)


def test_params_override_thresholds(weak):
    default = rtcforensics.analyze(weak, only=["DTLS005"])
    assert [f.evidence["key_bits"] for f in default.findings] == [1024]
    lax = rtcforensics.analyze(weak, only=["dtls-cert-weak"], params={"DTLS005.min_rsa_bits": 1024})
    assert not lax.findings and _cov(lax, "DTLS005").status == "clean"
    with pytest.raises(ValueError, match="unknown check parameter"):
        rtcforensics.analyze(weak, params={"DTLS005.no_such": 1})


def test_same_certificate_on_two_handshakes_is_one_finding(weak):
    r = rtcforensics.analyze(weak, only=["DTLS005"])
    (f,) = r.findings
    assert f.endpoints == ["192.0.2.40:4433", "192.0.2.40:4434"]
    truth = next(t for t in load_truth("weak_dtls")["findings"] if t["slug"] == "dtls-cert-weak")
    assert f.evidence["cert_sha256"] == truth["evidence"]["cert_sha256"]
    assert f.evidence["key_bits"] == truth["evidence"]["key_bits"] == 1024


def test_identity_is_stable_and_excludes_message_and_frames(weak):
    a = rtcforensics.analyze(weak).findings
    b = rtcforensics.analyze(rtcforensics.load(sample_path("weak_dtls"))).findings
    assert [f.identity for f in a] == [f.identity for f in b]
    assert len({f.identity for f in a}) == len(a)
    assert all(f.identity.startswith(f.id + ":") for f in a)


def test_findings_frame_types(weak):
    df = rtcforensics.analyze(weak).findings_frame
    assert list(df.columns) == FINDING_COLUMNS
    assert isinstance(df["severity"].dtype, pd.CategoricalDtype) and df["severity"].cat.ordered
    assert df["severity"].max() == "medium" and str(df["flow_id"].dtype) == "Int64"
    assert sorted(df["slug"]) == sorted(
        [
            "dtls-weak-version",
            "dtls-weak-cipher",
            "dtls-weak-cipher",
            "dtls-cert-weak",
            "srtp-weak-profile",
            "srtp-weak-profile",
        ]
    )


def test_unreadable_capture_is_the_users_error(tmp_path):
    bad = tmp_path / "notacapture.pcap"
    bad.write_bytes(b"hello, this is not a capture at all")
    with pytest.raises(rtcforensics.CaptureError, match="notacapture.pcap"):
        rtcforensics.analyze(rtcforensics.load(bad))


def test_dtls13_without_keylog_is_not_observable_not_clean():
    """Chromium negotiates DTLS 1.3: certificates and the SRTP profile travel encrypted. Without a keylog
    the checks that need them say so instead of calling the call clean."""
    cap = rtcforensics.load(sample_path("browsers_chromium"))
    assert (cap.dtls["version"] == "DTLS 1.3").all()
    r = rtcforensics.analyze(cap)
    for cid in ("SRTP001", "SRTP002"):
        c = _cov(r, cid)
        assert c.status == "not observable" and "encrypted" in c.reason and "--keylog" in c.reason
    assert _cov(r, "DTLS005").status == "not observable"
    c = _cov(r, "DTLS001")  # descriptions could still be compared across legs: clean, with the caveat
    assert c.status == "clean" and "no certificate readable" in c.reason


def test_a_failed_check_makes_the_run_incomplete(weak):
    # issue 19: a failure must never look like "nothing found"; the Report says why it is incomplete
    assert rtcforensics.analyze(weak).incomplete == []
    r = rtcforensics.analyze(WithoutFrame(weak, broken={"dtls"}))
    assert r.is_incomplete
    assert [x for x in r.incomplete if x.startswith("check DTLS003 (dtls-weak-cipher) failed:")]
    # a frame that is merely absent in this version is not observable, not an incomplete run
    assert not rtcforensics.analyze(WithoutFrame(weak, missing={"dtls"})).incomplete


def test_a_check_that_breaks_midway_keeps_what_it_found(weak, monkeypatch):
    # issue 19: one bad item must not drop the findings before it; the run says it is incomplete
    real = REGISTRY["DTLS003"].fn
    whole = [f for f in rtcforensics.analyze(weak, only=["DTLS003"]).findings]
    assert len(whole) >= 2

    def breaks_after_one(ctx):
        it = iter(real(ctx))
        yield next(it)
        raise ValueError("a poisoned row")

    monkeypatch.setitem(REGISTRY, "DTLS003", dataclasses.replace(REGISTRY["DTLS003"], fn=breaks_after_one))
    r = rtcforensics.analyze(weak, only=["DTLS003"])
    assert len(r.findings) == 1 and r.findings[0].identity in {f.identity for f in whole}
    c = _cov(r, "DTLS003")
    assert c.status == "failed" and c.findings == 1 and "a poisoned row" in c.reason
    assert r.is_incomplete
