"""sample_captures/cloned_identity/ (lab/scenarios/cloned_identity.py): two separate aiortc calls, alice→bob
and carol→dave, in which carol presents alice's very DTLS key and certificate (loaded from the PEM alice's
aiortc made). A case holding both captures must report ``dtls-certificate-reused`` (CASE003) naming alice's
and carol's addresses, both captures and that certificate's SHA-256 — and neither bob nor dave, who made
their own.

The pair sits in a subfolder, so the per-sample tests (top-level ``*.truth.json``) do not run on it; the
tshark checks of tests/test_truth.py that matter here (truth file shape, DTLS certificate hashes on the wire,
``a=fingerprint`` in the clear signalling) are run on it below, through that module's own functions.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import test_truth
from samples import load_truth, sample_path

from rtcforensics import open_case
from rtcforensics.case.ingestion import ingest
from rtcforensics.checks.registry import Severity

pytest.importorskip("duckdb")
pytest.importorskip("pyarrow")

FOLDER = "cloned_identity"
NAMES = [f"{FOLDER}/call_ab", f"{FOLDER}/call_cd"]


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both captures (their keylogs found beside them) ingested into one case."""
    d = tmp_path_factory.mktemp("cloned") / "c"
    res = ingest([sample_path(n) for n in NAMES], d)
    assert [r["status"] for r in res.rows] == ["ok", "ok"]
    return d


@pytest.fixture(scope="module")
def case_findings(case_dir: Path) -> tuple[list[Any], list[Any]]:
    from rtcforensics.case.correlate import run_case_checks

    return run_case_checks(open_case(case_dir))


def test_truth_states_one_certificate_on_two_hosts() -> None:
    """The truth files (from the peers' own aiortc/OpenSSL) agree: one certificate, alice's and carol's."""
    ab, cd = (load_truth(n) for n in NAMES)
    assert ab["identity"] == cd["identity"] and ab["case_findings"] == cd["case_findings"]
    ident = ab["identity"]
    assert [h["name"] for h in ident["presented_by"]] == ["alice", "carol"]
    assert ident["presented_by"][0]["address"] != ident["presented_by"][1]["address"]
    assert ident["cert_sha256"] not in {o["cert_sha256"] for o in ident["not_shared"]}
    for t, holder in zip((ab, cd), ident["presented_by"], strict=True):
        # the offerer announced it in its SDP and presented it as DTLS server (aiortc answers setup:active)
        assert t["sdp"][0]["fingerprint"]["sha-256"] == ident["cert_sha256"]
        assert [d["server_cert_sha256"] for d in t["dtls"]] == [ident["cert_sha256"]]
        assert [d["server"] for d in t["dtls"]] == [h["endpoint"] for h in holder["handshakes"]]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
@pytest.mark.parametrize("name", NAMES)
def test_truth_against_the_wire(name: str) -> None:
    """tshark reads the certificate hashes and the a=fingerprint the truth states (test_truth.py's checks)."""
    test_truth.test_truth_file_shape(name)
    test_truth.test_dtls_handshakes(name)
    test_truth.test_sdp_fingerprints_in_readable_signalling(name)


@pytest.mark.slow
def test_case_reports_the_cloned_certificate(case_findings: tuple[list[Any], list[Any]]) -> None:
    findings, coverage = case_findings
    want = load_truth(NAMES[0])["case_findings"]
    assert [w["slug"] for w in want] == ["dtls-certificate-reused"]
    want = want[0]
    reused = [f for f in findings if f.slug == "dtls-certificate-reused"]
    assert len(reused) == 1, [(f.endpoints, f.evidence) for f in reused]
    f = reused[0]
    # exactly alice's and carol's addresses: not bob's, not dave's (each made a certificate of its own)
    assert f.endpoints == want["endpoints"] == ["192.0.2.31", "203.0.113.133"]
    assert f.evidence["hosts"] == want["endpoints"]
    assert not set(want["not_endpoints"]) & set(f.endpoints)
    assert not any(b in str(f.evidence) or b in f.message for b in want["not_endpoints"])
    assert f.evidence["cert_sha256"] == want["cert_sha256"]
    assert sorted(f.evidence["captures"]) == want["captures"] == ["call_ab.pcapng", "call_cd.pcapng"]
    assert f.evidence["subject"] == load_truth(NAMES[0])["identity"]["subject"]
    # two hosts (not only two calls of one host): high severity, high confidence; the handshakes' frames
    assert f.severity == "high" and f.confidence == "high"
    assert len(f.frames) == 2
    status = {c.slug: c.status for c in coverage}
    assert status["dtls-certificate-reused"] == "found"
    # nothing else is shared between the two calls
    assert [x.slug for x in findings] == ["dtls-certificate-reused"]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_per_capture_findings_match_the_truth(case_dir: Path, name: str) -> None:
    """What the ingest stored per capture: the truth's findings, nothing above info it says is absent."""
    t = load_truth(name)
    got = open_case(case_dir).sql(
        "select f.slug, f.severity, f.endpoints from findings f join manifest m using (capture) "
        "where m.name = ?",
        [Path(name).name + ".pcapng"],
    )
    loud = {s for s, sev in zip(got["slug"], got["severity"]) if Severity.parse(sev) > Severity.INFO}
    assert loud == {w["slug"] for w in t["findings"]}
    for w in t["findings"]:
        eps = [list(e) for s, e in zip(got["slug"], got["endpoints"]) if s == w["slug"]]
        assert all(set(w["endpoints"]) <= set(e) for e in eps) and eps
    assert not loud & set(t["absent_findings"])
